"""The producer's and the downstream consumer's side: upload and submit, then read results.

Used by ``fwv2 submit`` / ``fwv2 tail``, the demo, the tests and the benchmark, so they all
speak to the stage exactly as another team would: through the bucket and the topics.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from consumer.contract.inputs import AudioReference, ObjectRef
from consumer.contract.results import Result
from consumer.contract.status import JobState, StatusEvent
from consumer.contract.wire import Wire
from consumer.plumbing.kafka import make_consumer, make_producer, partitions_for, start_consumer
from consumer.plumbing.settings import Settings
from consumer.plumbing.storage import make_client
from pipeline.render import render
from pipeline.types import Granularity


def upload(settings: Settings, path: Path, key: str | None = None, bucket: str | None = None) -> ObjectRef:
    """Stream a file into the bucket (never read whole into memory) and describe it."""
    client = make_client(settings)
    bucket = bucket or settings.s3_bucket
    key = key or f"uploads/{uuid.uuid4().hex}/{path.name}"
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    written = client.fput_object(bucket, key, str(path), content_type=content_type)
    return ObjectRef(
        bucket=bucket, key=key, etag=written.etag, content_type=content_type, size_bytes=path.stat().st_size
    )


def new_reference(obj: ObjectRef, **fields: Any) -> AudioReference:
    return AudioReference(event_id=str(uuid.uuid4()), object=obj, **fields)


async def publish_references(settings: Settings, refs: Iterable[AudioReference], fmt: str = "json") -> None:
    """Produce AudioReference events keyed by event_id, as a producer team would (JSON by default)."""
    producer = make_producer(settings, "submit")
    await producer.start()
    try:
        for ref in refs:
            value = ref.to_json() if fmt == "json" else ref.to_avro()
            await producer.send_and_wait(settings.kafka_input_topic, value=value, key=ref.event_id.encode())
    finally:
        await producer.stop()


@dataclass
class ResultReader:
    """Reads the output and dead-letter topics without a consumer group (nothing to commit)."""

    settings: Settings
    from_beginning: bool = False
    # read_committed hides transcripts of aborted transactions (exactly-once mode).
    isolation_level: str = "read_committed"
    _consumer: AIOKafkaConsumer | None = field(default=None, init=False)
    _wire: Wire = field(init=False)

    def __post_init__(self) -> None:
        self._wire = Wire.from_url(self.settings.schema_registry_url, timeout_s=self.settings.schema_registry_timeout_s)

    async def __aenter__(self) -> ResultReader:
        s = self.settings
        topics = (s.kafka_output_topic, s.kafka_dead_letter_topic)
        self._consumer = await _read_topics(s, topics, self.from_beginning, self.isolation_level)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def results(self, idle_timeout_s: float | None = None) -> AsyncIterator[Result]:
        assert self._consumer is not None
        async for rec in _records(self._consumer, self._wire, idle_timeout_s):
            yield self._decode(rec.topic, rec.partition, rec.offset, rec.value)

    async def wait_for(self, event_ids: Iterable[str], timeout_s: float) -> dict[str, Result]:
        """Collect one result per event id, or raise TimeoutError naming the missing ones."""
        wanted = set(event_ids)
        found: dict[str, Result] = {}

        async def collect() -> None:
            async for result in self.results():
                if result.event_id in wanted and result.event_id not in found:
                    found[result.event_id] = result
                    if len(found) == len(wanted):
                        return

        try:
            await asyncio.wait_for(collect(), timeout_s)
        except TimeoutError:
            missing = sorted(wanted - set(found))
            raise TimeoutError(
                f"no result within {timeout_s:.0f} s for {len(missing)} event(s): {missing[:5]}"
            ) from None
        return found

    def _decode(self, topic: str, partition: int, offset: int, value: bytes) -> Result:
        return self._wire.result(self.settings.kafka_dead_letter_topic, topic, partition, offset, value)


@dataclass
class StatusReader:
    """Reads the status topic without a consumer group: where each event stands (``StatusEvent``)."""

    settings: Settings
    from_beginning: bool = False
    _consumer: AIOKafkaConsumer | None = field(default=None, init=False)
    _wire: Wire = field(init=False)

    def __post_init__(self) -> None:
        self._wire = Wire.from_url(self.settings.schema_registry_url, timeout_s=self.settings.schema_registry_timeout_s)

    async def __aenter__(self) -> StatusReader:
        topic = self.settings.kafka_status_topic
        if not topic:
            raise ValueError("KAFKA_STATUS_TOPIC is empty: this deployment publishes no status events")
        self._consumer = await _read_topics(self.settings, (topic,), self.from_beginning, "read_committed")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def statuses(self, idle_timeout_s: float | None = None) -> AsyncIterator[StatusEvent]:
        assert self._consumer is not None
        async for rec in _records(self._consumer, self._wire, idle_timeout_s):
            yield self._wire.status(rec.value)


async def _read_topics(
    settings: Settings, topics: Iterable[str], from_beginning: bool, isolation_level: str
) -> AIOKafkaConsumer:
    """A consumer without a group on every partition of ``topics``, at their start or their end now."""
    consumer = make_consumer(settings, group_id=None, isolation_level=isolation_level)
    await start_consumer(consumer)
    partitions = [TopicPartition(topic, p) for topic in topics for p in sorted(await partitions_for(consumer, topic))]
    consumer.assign(partitions)
    if from_beginning:
        await consumer.seek_to_beginning(*partitions)
    else:
        # Fix the start position now, before anything is submitted, so no result or state is missed.
        for tp, end in (await consumer.end_offsets(partitions)).items():
            consumer.seek(tp, end)
    return consumer


async def _records(
    consumer: AIOKafkaConsumer, wire: Wire, idle_timeout_s: float | None
) -> AsyncIterator[ConsumerRecord]:
    """The records as they come, each value's schema known first; ends after ``idle_timeout_s`` without one."""
    last = time.monotonic()
    while True:
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            for rec in records:
                last = time.monotonic()
                await wire.learn(rec.value)  # a schema id not seen yet: ask the registry
                yield rec
        if idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
            return


def describe_status(event: StatusEvent) -> str:
    """One line for people: ``fwv2 tail --status``."""
    where = f"{event.event_id} [{event.pool}@{event.host} run {event.run_id}, attempt {event.attempt}]"
    if event.state is JobState.PROGRESS:
        done = f"{event.done_s or 0:.0f}/{event.audio_s or 0:.0f} s" if event.audio_s else ""
        step = event.step.value if event.step is not None else ""
        return f"# {where} progress {event.progress:.0%} {step} {done}".rstrip()
    if event.outcome is not None:
        o = event.outcome
        at = f"{o.topic}[{o.partition}]@{o.offset}" if o.partition is not None else o.topic
        return f"# {where} {event.state.value} -> {at}" + (f" ({o.code})" if o.code else "")
    return f"# {where} {event.state.value}"


def print_result(result: Result, fmt: str, granularities: frozenset[Granularity] | None = None) -> None:
    assert isinstance(result, Result)
    if result.dead_letter is not None:
        letter = result.dead_letter
        print(f"# {letter.event_id}: DEAD LETTER {letter.code}: {letter.message}", flush=True)
        return
    event = result.transcript
    assert event is not None
    if fmt == "avro-json":
        # The record as a downstream reader decodes it (timestamps as datetimes, printed by str).
        print(json.dumps(event.to_avro(), ensure_ascii=False, default=str), flush=True)
        return
    where = f"s3://{event.object.bucket}/{event.object.key}"
    header = (
        f"# {event.event_id} {where} ({event.duration_s:.1f} s, {event.profile}, "
        f"{event.timings.total_s:.2f} s in the stage)"
    )
    print(header, flush=True)
    print(render(event.to_transcript(), fmt, granularities), flush=True)
