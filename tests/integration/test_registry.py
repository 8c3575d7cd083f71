"""Registry mode on real parts: Apicurio Registry 2.4.2 (built from Maven Central), the genuine Kafka.

A worker with SCHEMA_REGISTRY_URL registers its output schemas, reads inputs in every framing and
writes the Confluent wire format with CloudEvents headers, which confluent-kafka's stock
AvroDeserializer reads. Under the stack's BACKWARD rule, a compatible change to our schema
registers and an incompatible one stops the worker before it writes anything.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from bench.tools import fresh_topics
from consumer.client import ResultReader, new_reference, upload
from consumer.contract.avro import AUDIO_REFERENCE, SCHEMA_DIR, load_schema
from consumer.contract.registry import SchemaIncompatible, framing
from consumer.plumbing.kafka import make_producer
from consumer.worker.loop import Worker
from devtools.samples import SAMPLES
from devtools.settings import DevSettings
from pipeline.stage import Pipeline
from tests.integration.conftest import running_worker
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def _registry_settings(url: str, prefix: str) -> DevSettings:
    return await fresh_topics(DevSettings(schema_registry_url=url, cpu_threads=2, retry_backoff_s=0.05), prefix, 1)


def _read_stock(settings: DevSettings, url: str, count: int, timeout_s: float = 240) -> list[Any]:
    """The output topic as a downstream team reads it: librdkafka and confluent-kafka's AvroDeserializer."""
    registry = SchemaRegistryClient({"url": url})
    deserialize = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"stock-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([settings.kafka_output_topic])
    found: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            value = message.value()
            body = deserialize(value, SerializationContext(message.topic(), MessageField.VALUE))
            found.append((value, dict(message.headers() or []), body))
    finally:
        consumer.close()
    return found


async def test_a_registry_mode_worker_is_read_by_the_stock_deserializer(
    registry_url: str, pipeline: Pipeline, samples: dict[str, Path]
) -> None:
    s = await _registry_settings(registry_url, "registry")
    clip = SAMPLES[0]
    obj = upload(s, samples[clip.name])
    as_json, as_confluent, from_header = (new_reference(obj, metadata={"how": how}) for how in ("json", "cf", "ce"))
    # A producer team writing with the stock serializer: the Confluent framing, its schema auto-registered.
    serializer = AvroSerializer(
        SchemaRegistryClient({"url": registry_url}), (SCHEMA_DIR / "audio_reference.avsc").read_text()
    )
    record = load_schema(AUDIO_REFERENCE).decode(as_confluent.to_avro())
    confluent_value = serializer(record, SerializationContext(s.kafka_input_topic, MessageField.VALUE))
    assert confluent_value is not None and framing(confluent_value) == "confluent"
    # A JSON body without an event id, carried in the CloudEvents header instead.
    headless = json.loads(from_header.to_json())
    del headless["event_id"]

    async with running_worker(s, pipeline):
        producer = make_producer(s, "test")
        await producer.start()
        try:
            await producer.send_and_wait(s.kafka_input_topic, as_json.to_json(), key=as_json.event_id.encode())
            await producer.send_and_wait(s.kafka_input_topic, confluent_value, key=as_confluent.event_id.encode())
            await producer.send_and_wait(
                s.kafka_input_topic,
                json.dumps(headless).encode(),
                key=from_header.event_id.encode(),
                headers=[("ce_id", from_header.event_id.encode()), ("ce_specversion", b"1.0")],
            )
        finally:
            await producer.stop()
        read = await asyncio.to_thread(_read_stock, s, registry_url, 3)
        # Our own reader (`fwv2 tail`, the gateway's) reads the same records.
        async with ResultReader(s, from_beginning=True) as ours:
            ours_found = await ours.wait_for([as_json.event_id, as_confluent.event_id, from_header.event_id], 60)

    by_id = {body["event_id"]: (value, headers, body) for value, headers, body in read}
    assert set(by_id) == {as_json.event_id, as_confluent.event_id, from_header.event_id}
    for ref in (as_json, as_confluent, from_header):
        value, headers, body = by_id[ref.event_id]
        assert value[:1] == b"\x00" and framing(value) == "confluent"
        assert body["metadata"] == ref.metadata and clip.text.split()[0].lower() in body["text"].lower()
        assert headers["ce_id"] == ref.event_id.encode()
        assert headers["ce_specversion"] == b"1.0"
        assert headers["ce_type"] == b"io.fwv2.transcript.v1"
        assert headers["ce_source"] == f"/fwv2/{s.worker_pool}".encode()
        assert headers["ce_subject"] == f"s3://{obj.bucket}/{obj.key}".encode()
        assert headers["content-type"] == b"application/avro"
        assert b"/schemas/ids/" in headers["ce_dataschema"] and "ce_time" in headers
        assert ours_found[ref.event_id].transcript.text == body["text"]


def _without(field: str) -> str:
    schema = json.loads((SCHEMA_DIR / "transcript_event.avsc").read_text())
    older = copy.deepcopy(schema)
    older["fields"] = [f for f in schema["fields"] if f["name"] != field]
    return json.dumps(older)


async def _run_until_started_or_failed(worker: Worker) -> BaseException | None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    started = asyncio.create_task(worker.started.wait())
    await asyncio.wait({task, started}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    started.cancel()
    try:
        await asyncio.wait_for(task, 60)
    except Exception as exc:  # noqa: BLE001 - the failure is the answer
        return exc
    return None


async def test_backward_compatibility_is_enforced_before_any_record_is_written(
    registry_url: str, pipeline: Pipeline
) -> None:
    client = SchemaRegistryClient({"url": registry_url})
    assert client.get_compatibility() == "BACKWARD"  # the stack's rule

    # Compatible: the previous version lacked `warnings`, which ours adds with a default.
    fine = await _registry_settings(registry_url, "compatible")
    client.register_schema(f"{fine.kafka_output_topic}-value", Schema(_without("warnings"), "AVRO"))
    assert await _run_until_started_or_failed(Worker(fine, pipeline)) is None
    assert len(client.get_versions(f"{fine.kafka_output_topic}-value")) == 2

    # Incompatible: the previous version lacked `model`, which ours requires (no default).
    broken = await _registry_settings(registry_url, "incompatible")
    subject = f"{broken.kafka_output_topic}-value"
    client.register_schema(subject, Schema(_without("model"), "AVRO"))
    failure = await _run_until_started_or_failed(Worker(broken, pipeline))
    assert isinstance(failure, SchemaIncompatible)
    assert subject in str(failure) and "BACKWARD" in str(failure)
    assert len(client.get_versions(subject)) == 1
    found = await asyncio.to_thread(_read_stock, broken, registry_url, 1, 5)
    assert found == []  # it stopped before writing a record


class _Outage:
    """A TCP relay to the real registry that can be cut: the registry as seen across a network outage."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        # Connections the client keeps alive must be cut too, or its pool would ride out the outage.
        self._open: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_port=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._open):
                writer.transport.abort()
            self._open.clear()
            await self._server.wait_closed()
            self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._open.update((writer, upstream_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True)


def _unavailable(worker: Worker) -> float:
    return worker.metrics.registry.get_sample_value("fwv2_schema_registry_unavailable_total") or 0.0


async def test_a_registry_outage_makes_events_wait_not_dead_letters(
    registry_url: str, pipeline: Pipeline, samples: dict[str, Path]
) -> None:
    outage = _Outage(int(registry_url.split(":")[2].split("/")[0]))
    await outage.up()
    await outage.down()  # the port is known and refused: the registry is down when the worker starts
    path = registry_url.split("/apis/")[1]
    s = await _registry_settings(f"http://127.0.0.1:{outage.port}/apis/{path}", "outage")
    worker = Worker(s, pipeline)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await eventually("the worker to find the registry down", lambda: _unavailable(worker) >= 2, 60)
        assert not worker.started.is_set()  # it waits: nothing consumed, nothing written
        await outage.up()
        await asyncio.wait_for(worker.started.wait(), 60)

        # Mid-run: an input in the Confluent framing whose schema the worker must look up, while it is down.
        await outage.down()
        ref = new_reference(upload(s, samples[SAMPLES[0].name]))
        serializer = AvroSerializer(
            SchemaRegistryClient({"url": registry_url}), (SCHEMA_DIR / "audio_reference.avsc").read_text()
        )
        value = serializer(
            load_schema(AUDIO_REFERENCE).decode(ref.to_avro()),
            SerializationContext(s.kafka_input_topic, MessageField.VALUE),
        )
        before = _unavailable(worker)
        producer = make_producer(s, "test")
        await producer.start()
        try:
            await producer.send_and_wait(s.kafka_input_topic, value, key=ref.event_id.encode())
        finally:
            await producer.stop()
        await eventually("the event to wait for the registry", lambda: _unavailable(worker) >= before + 2, 60)
        assert worker.processed == 0
        await outage.up()
        async with ResultReader(s, from_beginning=True) as reader:
            result = (await reader.wait_for([ref.event_id], 240))[ref.event_id]
        assert result.kind == "transcript", result.dead_letter
        assert worker.metrics.registry.get_sample_value("fwv2_dead_letters_total", {"code": "MALFORMED_EVENT"}) in (
            None,
            0.0,
        )
    finally:
        stop.set()
        await outage.up()  # let a worker still waiting finish its start
        await asyncio.wait_for(task, 60)
        await outage.down()
