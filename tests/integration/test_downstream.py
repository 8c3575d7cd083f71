"""Transcripts landed in PostgreSQL by stock tooling: Kafka Connect 4.4.0, Apicurio's Avro converter and
Debezium's JDBC sink, configured as deploy/connect/ says, reading what a registry-mode worker writes.

One row per event keyed by event id, upserted (a redelivery replaces the row, it adds none); the whole
event also lands as jsonb, whose words a SQL user reads through the transcript_words view.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench.tools import fresh_topics
from consumer.client import ResultReader, new_reference, publish_references, upload
from consumer.contract.wire import Wire
from consumer.plumbing.kafka import make_producer
from devtools.samples import SAMPLES
from devtools.settings import REPO_ROOT, DevSettings
from devtools.stack import EmbeddedStack
from pipeline.stage import Pipeline
from pipeline.types import Granularity
from tests.integration.conftest import running_worker
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

CONNECT = REPO_ROOT / "deploy" / "connect"


@pytest.fixture(scope="module")
def downstream(stack: EmbeddedStack) -> Iterator[EmbeddedStack]:
    servers = EmbeddedStack(
        DevSettings(), echo=lambda m: print(m, flush=True), extras=["registry", "connect", "postgres"]
    )
    running = {name for name in servers.extras if servers.node(name).pid() is not None}
    servers.up()
    servers.postgres.sql((CONNECT / "postgres.sql").read_text())
    yield servers
    for name in ("connect", "registry", "postgres"):
        if name not in running:
            servers.node(name).stop()


def _connector(servers: EmbeddedStack, name: str, topic: str, table: str | None = None) -> dict[str, str]:
    # deploy/connect's files name the default stack's ports; a test lane may run its stack on others.
    text = (CONNECT / f"{name}.json").read_text()
    text = text.replace("127.0.0.1:19432", f"127.0.0.1:{servers.postgres.port}")
    text = text.replace("http://127.0.0.1:19081/apis/registry/v2", servers.registry.native_url)
    config: dict[str, str] = json.loads(text)
    config["topics"] = topic
    if table is not None:
        config["table.name.format"] = table
    return config


def _rows(servers: EmbeddedStack, query: str) -> list[list[str]]:
    return [line.split("|") for line in servers.postgres.sql(query).splitlines() if line]


async def test_connect_lands_transcripts_in_postgres_upserted_by_event_id(
    downstream: EmbeddedStack, pipeline: Pipeline, samples: dict[str, Path]
) -> None:
    s = await fresh_topics(
        DevSettings(schema_registry_url=downstream.registry.ccompat_url, cpu_threads=2, retry_backoff_s=0.05), "sink", 1
    )
    run = uuid.uuid4().hex[:8]
    typed_table = f"transcripts_{run}"
    connectors = {f"typed-{run}": _connector(downstream, "transcripts-typed", s.kafka_output_topic, typed_table)}
    connectors[f"document-{run}"] = _connector(downstream, "transcripts-document", s.kafka_output_topic)
    for name, config in connectors.items():
        await asyncio.to_thread(downstream.connect.put_connector, name, config)
    try:
        for name in connectors:
            await asyncio.to_thread(downstream.connect.wait_running, name, 90)
        words = new_reference(
            upload(s, samples[SAMPLES[0].name]), timestamp_granularities=(Granularity.SEGMENT, Granularity.WORD)
        )
        plain = new_reference(upload(s, samples[SAMPLES[1].name]), metadata={"team": "sql"})
        async with running_worker(s, pipeline), ResultReader(s) as reader:
            await publish_references(s, [words, plain])
            sent = await reader.wait_for([words.event_id, plain.event_id], timeout_s=240)
        ids = f"'{words.event_id}', '{plain.event_id}'"

        def landed() -> bool:
            typed = _rows(downstream, f"SELECT count(*) FROM {typed_table} WHERE event_id IN ({ids})")
            documents = _rows(
                downstream,
                f"SELECT count(*) FROM transcript_documents WHERE event_id IN ({ids})",
            )
            return typed == [["2"]] and documents == [["2"]]

        await asyncio.to_thread(wait_for, "both events in both tables", _try(landed), 90, every_s=0.5)

        for ref in (words, plain):
            record = sent[ref.event_id].transcript
            row = _rows(
                downstream,
                f"SELECT text, model, profile, object_bucket, object_key, worker_pool FROM {typed_table} "
                f"WHERE event_id = '{ref.event_id}'",
            )
            assert row == [[record.text, "tiny.en", "whisper-1", ref.object.bucket, ref.object.key, "cpu"]]
            document = json.loads(
                downstream.postgres.sql(f"SELECT event FROM transcript_documents WHERE event_id = '{ref.event_id}'")
            )
            assert document["text"] == record.text and document["metadata"] == ref.metadata
            assert len(document["segments"]) == len(record.segments)

        # The words, as rows a SQL user can query: in order, and the segment's text spelled out.
        spoken = _rows(
            downstream,
            f"SELECT word FROM transcript_words WHERE event_id = '{words.event_id}' ORDER BY segment_id, word_index",
        )
        assert len(spoken) > 3
        assert "".join(w[0] for w in spoken).strip() == sent[words.event_id].transcript.text.strip()

        # A redelivery (at-least-once publishes an event again): the row is replaced, no row is added.
        again = replace(sent[plain.event_id].transcript, text="delivered again")
        wire = Wire.from_url(s.schema_registry_url)
        await asyncio.to_thread(wire.register, s.kafka_output_topic, s.kafka_dead_letter_topic)
        producer = make_producer(s, "test")
        await producer.start()
        try:
            await producer.send_and_wait(s.kafka_output_topic, wire.encode(again), key=plain.event_id.encode())
        finally:
            await producer.stop()
        query = f"SELECT count(*), max(text) FROM {typed_table} WHERE event_id = '{plain.event_id}'"
        await asyncio.to_thread(
            wait_for, "the redelivery applied", _try(lambda: _rows(downstream, query) == [["1", "delivered again"]]), 60
        )
        await asyncio.to_thread(
            wait_for,
            "the redelivery in the documents",
            _try(lambda: _rows(downstream, documents_query(plain.event_id)) == [["1", "delivered again"]]),
            60,
        )
    finally:
        for name in connectors:
            await asyncio.to_thread(downstream.connect.delete_connector, name)


def documents_query(event_id: str) -> str:
    return f"SELECT count(*), max(event->>'text') FROM transcript_documents WHERE event_id = '{event_id}'"


def _try(check: Any) -> Any:
    """A check that counts a failing query (the sink has not created its table yet) as not yet."""

    def attempt() -> Any:
        try:
            return check()
        except Exception:  # noqa: BLE001 - retried by wait_for until its deadline
            return None

    return attempt
