"""The worker loop: consume, fetch, decode, transcribe, publish, commit.

Processing guarantee: at-least-once. An input offset is committed only after the broker
acknowledged the transcript or the dead letter (acks=all, idempotent producer). A crash
between publish and commit means the event is processed again by whoever owns the
partition next.

One event is processed at a time per worker; scale out with partitions and workers.
Inference runs in a dedicated thread, so the event loop keeps heartbeating, and a
rebalance waits for the event in flight to be published and committed before the
partitions move (``on_partitions_revoked``), so two workers never both publish it.
"""

from __future__ import annotations

import asyncio
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord

from consumer.events import (
    AudioReference,
    dead_letter_record,
    encode_dead_letter,
    encode_transcript,
    parse_audio_reference,
    peek_event_id,
    transcript_record,
)
from consumer.kafka import make_consumer, make_producer
from consumer.logs import get_logger
from consumer.settings import Settings
from consumer.storage import BlobStore
from pipeline.errors import StageError
from pipeline.stage import Pipeline

log = get_logger("fwv2.worker")


@dataclass(frozen=True)
class Outcome:
    """What became of one input record."""

    status: str  # "transcribed" | "dead_lettered"
    topic: str
    attempts: int
    code: str | None = None


class Abandoned(Exception):  # noqa: N818 - a control-flow signal, not a failure of the event
    """The worker is stopping: leave the event unpublished and uncommitted for the next owner."""


class _DrainOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # aiokafka awaits this before rejoining: finishing the event in flight here means
        # it is committed by us, not processed a second time by the partition's next owner.
        await self._worker.idle.wait()
        if revoked:
            log.info("partitions_revoked", partitions=sorted(f"{tp.topic}-{tp.partition}" for tp in revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._worker.assigned = frozenset(assigned)
        log.info("partitions_assigned", partitions=sorted(f"{tp.topic}-{tp.partition}" for tp in assigned))


class Worker:
    def __init__(self, settings: Settings, pipeline: Pipeline, store: BlobStore | None = None) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.store = store or BlobStore(settings)
        self.idle = asyncio.Event()
        self.idle.set()
        self.assigned: frozenset[TopicPartition] = frozenset()
        self.processed = 0
        # One inference thread: the model is not shared between threads, and CTranslate2
        # already spreads one call over CPU_THREADS cores.
        self._inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._stop = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; then finish the event in flight, commit and leave the group."""
        s = self.settings
        self._stop = stop
        self._producer = make_producer(s, "worker")
        self._consumer = make_consumer(s, group_id=s.kafka_group_id)
        self._consumer.subscribe([s.kafka_input_topic], listener=_DrainOnRevoke(self))
        await self._producer.start()
        try:
            await self._consumer.start()
            log.info("worker_started", group=s.kafka_group_id, topic=s.kafka_input_topic, model=self.pipeline.transcriber.info.name)
            while not stop.is_set():
                batches = await self._consumer.getmany(timeout_ms=500, max_records=1)
                for records in batches.values():
                    for record in records:
                        await self._process_and_commit(record, stop)
        finally:
            await self._consumer.stop()
            await self._producer.stop()
            self._inference.shutdown(wait=False, cancel_futures=True)
            log.info("worker_stopped", processed=self.processed)

    async def _process_and_commit(self, record: ConsumerRecord, stop: asyncio.Event) -> None:
        assert self._consumer is not None
        self.idle.clear()
        try:
            try:
                outcome = await self.handle(record, stop)
            except Abandoned:  # the dead letter itself could not be published before shutdown
                outcome = None
            if outcome is None:
                return  # abandoned during shutdown: not published, not committed, redelivered later
            tp = TopicPartition(record.topic, record.partition)
            try:
                await self._consumer.commit({tp: record.offset + 1})
            except (CommitFailedError, IllegalStateError) as exc:
                # The group moved the partition on; its next owner will see the event again.
                log.warning("commit_failed", error=str(exc), partition=record.partition, offset=record.offset)
            self.processed += 1
        finally:
            self.idle.set()

    async def handle(self, record: ConsumerRecord, stop: asyncio.Event) -> Outcome | None:
        """Turn one input record into exactly one published output; None if abandoned on shutdown."""
        started = time.perf_counter()
        event_id = peek_event_id(record.value)
        structlog.contextvars.bind_contextvars(
            event_id=event_id, topic=record.topic, partition=record.partition, offset=record.offset
        )
        attempts = 0
        try:
            ref = parse_audio_reference(record.value)
            structlog.contextvars.bind_contextvars(event_id=ref.event_id, profile=ref.profile)
            event_id = ref.event_id
            request = ref.to_request()
            self.pipeline.check_request(request)
            self.store.check_allowed(ref.object)
            while True:
                attempts += 1
                try:
                    return await self._transcribe_and_publish(record, ref, started, attempts)
                except StageError as exc:
                    if not exc.retriable or attempts >= self.settings.max_attempts:
                        raise
                    delay = self._backoff(attempts)
                    log.warning("retrying", code=exc.code.value, error=exc.message, attempt=attempts, delay_s=round(delay, 2))
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=delay)
                        return None  # shutting down: leave the event for the next owner
                    except TimeoutError:
                        pass
        except Abandoned as exc:
            log.warning("event_abandoned", reason=str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - every failure must end as a dead letter, not a crash
            return await self._dead_letter(record, exc, event_id, max(attempts, 1), started)
        finally:
            structlog.contextvars.clear_contextvars()

    async def _transcribe_and_publish(
        self, record: ConsumerRecord, ref: AudioReference, started: float, attempts: int
    ) -> Outcome:
        loop = asyncio.get_running_loop()
        fetch_started = time.perf_counter()
        blob = await asyncio.to_thread(self.store.fetch, ref.object)
        fetch_s = time.perf_counter() - fetch_started
        transcript = await loop.run_in_executor(self._inference, self.pipeline.process, blob.data, ref.to_request())
        total_s = time.perf_counter() - started
        record_value = transcript_record(
            ref,
            transcript,
            blob_etag=blob.etag,
            blob_size=blob.size,
            blob_content_type=blob.content_type,
            fetch_s=fetch_s,
            total_s=total_s,
            group=self.settings.kafka_group_id,
            pool=self.settings.worker_pool,
            host=self.settings.host,
        )
        await self._publish(self.settings.kafka_output_topic, record.key or ref.event_id.encode(), encode_transcript(record_value))
        log.info(
            "event_transcribed",
            outcome="transcribed",
            audio_s=round(transcript.duration_s, 3),
            fetch_s=round(fetch_s, 4),
            decode_s=round(transcript.decode_s, 4),
            transcribe_s=round(transcript.transcribe_s, 4),
            total_s=round(time.perf_counter() - started, 4),
            diarization=transcript.diarization.status.value,
            warnings=list(transcript.warnings),
            attempts=attempts,
        )
        return Outcome("transcribed", self.settings.kafka_output_topic, attempts)

    async def _dead_letter(
        self, record: ConsumerRecord, exc: Exception, event_id: str | None, attempts: int, started: float
    ) -> Outcome:
        value = dead_letter_record(
            exc,
            event_id=event_id,
            key=record.key,
            value=record.value,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempts=attempts,
            group=self.settings.kafka_group_id,
            pool=self.settings.worker_pool,
            host=self.settings.host,
        )
        key = record.key or (event_id.encode() if event_id else None)
        await self._publish(self.settings.kafka_dead_letter_topic, key, encode_dead_letter(value))
        level = log.error if value["code"] in ("INTERNAL_ERROR", "TRANSCRIPTION_FAILED") else log.warning
        level(
            "event_dead_lettered",
            outcome="dead_lettered",
            code=value["code"],
            error=value["message"],
            exception_type=value["exception_type"],
            attempts=attempts,
            total_s=round(time.perf_counter() - started, 4),
            exc_info=not isinstance(exc, StageError),
        )
        return Outcome("dead_lettered", self.settings.kafka_dead_letter_topic, attempts, value["code"])

    async def _publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Send and wait for the broker's acknowledgement.

        A retriable broker error (leader moving, broker restarting) is retried with backoff for
        as long as it lasts: skipping would lose the event. Only shutdown ends the wait, by
        abandoning the event uncommitted. A non-retriable error (a record too large) is raised.
        """
        assert self._producer is not None
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._producer.send_and_wait(topic, value=value, key=key)
                return
            except KafkaError as exc:
                if not exc.retriable:
                    raise
                if self._stop.is_set():
                    raise Abandoned(f"shutting down while {topic} is unavailable") from exc
                delay = self._backoff(attempt)
                log.warning("publish_retry", topic=topic, error=repr(exc), attempt=attempt, delay_s=round(delay, 2))
                await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff, capped, with "equal jitter": uniform in [ceiling / 2, ceiling]."""
        ceiling = min(self.settings.retry_backoff_max_s, self.settings.retry_backoff_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)
