"""The worker loop: consume, check, fetch, decode, transcribe, publish, commit.

One event is processed at a time per worker; scale out with partitions and workers.
Inference runs in a dedicated thread, so the event loop keeps heartbeating and serving
health checks. Delivery (publish, then commit; or both in one transaction) follows
``PROCESSING_GUARANTEE`` (``consumer.worker.delivery``).

- A rebalance waits for the event in flight to be delivered before the partitions move
  (``on_partitions_revoked``), so two workers never both publish it.
- A worker that lost a partition without taking part in the rebalance (frozen past its session
  timeout) discards its outcome for the partition's event (``NotOwner``): its new owner delivers it.
- A retriable failure does not block other partitions: the event's partition is paused and
  rewound to the event, and resumed when its backoff is over; other partitions go on.
- An event whose event_id already has a transcript (``consumer.worker.dedupe``) is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError
from aiokafka.structs import ConsumerRecord

from consumer.contract.events import (
    AudioReference,
    dead_letter_record,
    encode_dead_letter,
    encode_transcript,
    parse_audio_reference,
    peek_event_id,
    transcript_record,
)
from consumer.plumbing.health import diarization_state
from consumer.plumbing.kafka import make_consumer
from consumer.plumbing.logs import get_logger
from consumer.plumbing.retry import Abandoned, backoff
from consumer.plumbing.settings import Settings
from consumer.plumbing.storage import BlobStore
from consumer.worker import dedupe
from consumer.worker.delivery import Delivery, NotOwner, make_delivery
from consumer.worker.gpu import GpuMemory
from consumer.worker.metrics import WorkerMetrics
from consumer.worker.notifications import NotificationRules, reference_from_notification
from consumer.worker.result_cache import Lookup, ResultCache
from pipeline.errors import StageError
from pipeline.stage import Pipeline
from pipeline.types import DiarizationStatus, Transcript

log = get_logger("fwv2.worker")


@dataclass(frozen=True)
class Outcome:
    """What became of one input record."""

    status: str  # "transcribed" | "dead_lettered" | "duplicate" | "ignored" (a notification of nothing watched)
    code: str | None = None


@dataclass(frozen=True)
class RetryLater:
    """A retriable failure: try the same record again after ``delay_s``."""

    error: StageError
    delay_s: float


@dataclass(frozen=True)
class _PendingRetry:
    offset: int
    attempts: int
    due: float


@dataclass(frozen=True)
class _Ready:
    """A record parsed, checked and fetched ahead of a batched pass, with the pass's transcript."""

    ref: AudioReference
    blob: Lookup
    fetch_s: float
    started: float
    transcript: Transcript | None = None


class _DrainOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # aiokafka awaits this before rejoining: finishing the event in flight here means
        # it is delivered by us, not processed a second time by the partition's next owner.
        await self._worker.idle.wait()
        self._worker.warmed.clear()
        for tp in revoked:
            self._worker.retries.pop(tp, None)
        if self._worker.delivery is not None:
            await self._worker.delivery.revoked(revoked)
        if revoked:
            log.info("partitions_revoked", partitions=_names(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        worker = self._worker
        worker.assigned = frozenset(assigned)
        # MinIO's producer partitions by its own hash, not the output's: a notification's
        # transcript may sit in any output partition, so those assignments warm them all.
        notified = any(tp.topic == worker.settings.kafka_notification_topic for tp in assigned)
        partitions = None if notified else (tp.partition for tp in assigned)
        started = time.perf_counter()
        try:
            # Ownership first (exactly_once: each partition's transactional producer, whose start fences
            # the previous owner and aborts its open transaction), so that the outputs read next are final.
            if worker.delivery is not None:
                await worker.delivery.assigned(assigned)
            owned = time.perf_counter()
            learned = await dedupe.warm(worker.settings, worker.done, partitions)
        finally:
            worker.warmed.set()
        log.info(
            "partitions_assigned",
            partitions=_names(assigned),
            known_done=learned,
            ownership_s=round(owned - started, 3),
            warm_s=round(time.perf_counter() - owned, 3),
        )


def inference_seconds(transcript: Transcript) -> float:
    """The event's inference as wall time: transcription and diarization run side by side, so not their sum.

    0 for a transcript served from the result cache (no inference ran for this event). Falls back to
    whisper's own time for a transcript that carries no wall time (code that does not set inference_s).
    """
    if transcript.cache is not None:
        return 0.0
    if transcript.inference_s > 0 or transcript.transcribe_s <= 0:
        return transcript.inference_s
    return transcript.transcribe_s


def _names(tps: set[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}-{tp.partition}" for tp in tps)


class Worker:
    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        store: BlobStore | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.store = store or BlobStore(settings)
        self.metrics = metrics or WorkerMetrics()
        self.results = ResultCache(settings, self.store, pipeline, self.metrics)
        self.idle = asyncio.Event()
        self.idle.set()
        self.started = asyncio.Event()
        self.assigned: frozenset[TopicPartition] = frozenset()
        self.retries: dict[TopicPartition, _PendingRetry] = {}
        self.done = dedupe.RecentEvents(settings.dedupe_capacity)
        # Set while `done` knows the current assignment's outputs. aiokafka starts fetching before
        # on_partitions_assigned returns, so without it a redelivered event could be checked
        # against a store still being filled, and transcribed twice.
        self.warmed = asyncio.Event()
        self.processed = 0
        self.last_poll = time.monotonic()
        self._lag_updated = 0.0
        # One inference thread: the model is not shared between threads, and CTranslate2
        # already spreads one call over CPU_THREADS cores.
        self._inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._consumer: AIOKafkaConsumer | None = None
        self.delivery: Delivery | None = None
        self._gpu = GpuMemory(settings.device_index) if pipeline.transcriber.info.device == "cuda" else None
        # Bucket notifications (consumer.worker.notifications): a bad rule fails here, at start.
        self._notify_rules = NotificationRules.from_settings(settings) if settings.kafka_notification_topic else None

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; then finish the event in flight, commit and leave the group."""
        s = self.settings
        # Always read_committed: the router writes the pools' topics in transactions, and an aborted
        # copy read anyway would be transcribed (and the real one then skipped as a duplicate).
        # Records of non-transactional producers are visible at once either way.
        self._consumer = make_consumer(
            s, group_id=s.kafka_group_id, isolation_level="read_committed", fetch_max_wait_ms=s.kafka_fetch_max_wait_ms
        )
        topics = [s.kafka_input_topic, *([s.kafka_notification_topic] if s.kafka_notification_topic else [])]
        self._consumer.subscribe(topics, listener=_DrainOnRevoke(self))
        self.delivery = make_delivery(s, self._consumer, stop)
        await self.delivery.start()
        try:
            await self._consumer.start()
            self.started.set()
            log.info(
                "worker_started",
                group=s.kafka_group_id,
                topic=s.kafka_input_topic,
                guarantee=s.processing_guarantee,
                # Whether speakers can be labelled here, and how: the on-call's first question about diarization.
                diarization=diarization_state(self.pipeline.diarizer, s.enable_diarization),
            )
            while not stop.is_set():
                self._resume_due_partitions()
                batches = await self._consumer.getmany(timeout_ms=200, max_records=s.batch_max_clips)
                self.last_poll = time.monotonic()
                if s.batch_max_clips > 1 and batches:
                    records = await self._fill_batch([r for rs in batches.values() for r in rs])
                    await self.warmed.wait()
                    await self._process_batch(records, stop)
                for records in batches.values() if s.batch_max_clips == 1 else ():
                    for record in records:
                        await self.warmed.wait()  # not inside _process: a revoke waits for idle
                        await self._process(record, stop)
                await self._update_lag()
        finally:
            self.started.clear()
            await self._consumer.stop()
            await self.delivery.stop()
            self._inference.shutdown(wait=False, cancel_futures=True)
            log.info("worker_stopped", processed=self.processed)

    def _resume_due_partitions(self) -> None:
        assert self._consumer is not None
        now = time.monotonic()
        for tp, pending in list(self.retries.items()):
            if pending.due <= now and tp in self._consumer.paused():
                self._consumer.resume(tp)

    async def _update_lag(self) -> None:
        """Records behind each assigned partition's end, at most once a second."""
        assert self._consumer is not None
        if time.monotonic() - self._lag_updated < 1.0:
            return
        self._lag_updated = time.monotonic()
        for tp in self.assigned:
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await self._consumer.position(tp)
            except IllegalStateError:  # revoked since; the next assignment resets the set
                continue
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))

    async def _process(self, record: ConsumerRecord, stop: asyncio.Event) -> None:
        self.idle.clear()
        self.metrics.active.inc()
        try:
            await self._settle(record)
        finally:
            self.metrics.active.dec()
            self.idle.set()

    async def _settle(self, record: ConsumerRecord, ready: _Ready | None = None) -> bool:
        """Deliver one record's outcome; True when its partition was rewound (a retry) or abandoned."""
        assert self._consumer is not None and self.delivery is not None
        tp = TopicPartition(record.topic, record.partition)
        pending = self.retries.get(tp)
        attempt = pending.attempts + 1 if pending and pending.offset == record.offset else 1
        try:
            result = await self.handle(record, attempt, ready)
            if isinstance(result, RetryLater):
                # Pause only this partition and rewind to the event; the others go on.
                self._consumer.pause(tp)
                self._consumer.seek(tp, record.offset)
                self.retries[tp] = _PendingRetry(record.offset, attempt, time.monotonic() + result.delay_s)
                self.metrics.retries.labels(result.error.code.value).inc()
                return True
            self.retries.pop(tp, None)
            if result is not None:
                self.processed += 1
                self.metrics.last_success.set(time.time())
            return False
        except NotOwner as exc:
            # Rewind, in case the partition is (again) ours: the event must not be passed over. A
            # partition no longer assigned gets its position anew from the group.
            log.warning(
                "outcome_discarded",
                event_id=peek_event_id(record.value),
                reason=str(exc),
                partition=record.partition,
                offset=record.offset,
            )
            self.metrics.discarded.inc()
            with contextlib.suppress(IllegalStateError):
                self._consumer.seek(tp, record.offset)
            return True
        except Abandoned as exc:
            log.warning("event_abandoned", reason=str(exc), partition=record.partition, offset=record.offset)
            return True

    # --- cross-event batching (BATCH_MAX_CLIPS > 1) ---------------------------------------

    async def _fill_batch(self, records: list[ConsumerRecord]) -> list[ConsumerRecord]:
        """Wait up to BATCH_MAX_WAIT_MS, from the first record, for more to share its pass."""
        assert self._consumer is not None
        deadline = time.monotonic() + self.settings.batch_max_wait_ms / 1000
        while len(records) < self.settings.batch_max_clips and (left := deadline - time.monotonic()) > 0:
            more = await self._consumer.getmany(
                timeout_ms=max(1, int(left * 1000)), max_records=self.settings.batch_max_clips - len(records)
            )
            records.extend(r for rs in more.values() for r in rs)
        return records

    async def _process_batch(self, records: list[ConsumerRecord], stop: asyncio.Event) -> None:
        """Several records at once: their short clips share one inference pass (Pipeline.process_batch).

        Each record is still delivered on its own, in offset order within its partition. A record
        that is not a plain fetched clip (a duplicate, a bad event, a failure) takes the
        one-at-a-time way; after a retry rewinds a partition, the batch's later records of that
        partition are left for the consumer to fetch again.
        """
        self.idle.clear()
        self.metrics.active.inc(len(records))
        try:
            ready: dict[int, _Ready] = {}
            for n, record in enumerate(records):
                prepared = await self._prepare(record)
                if prepared is not None:
                    ready[n] = prepared
            pending = {n: r for n, r in ready.items() if r.blob.hit is None}
            if len(pending) > 1:
                items = [(r.blob.data, r.ref.to_request()) for r in pending.values()]
                loop = asyncio.get_running_loop()
                outcomes = await loop.run_in_executor(self._inference, self.pipeline.process_batch, items)
                self.metrics.batch_size.observe(len(items))
                for n, out in zip(pending, outcomes, strict=True):
                    # A clip that failed in the pass is done again alone, by the one-at-a-time way.
                    ready[n] = replace(ready[n], transcript=out if isinstance(out, Transcript) else None)
            rewound: set[TopicPartition] = set()
            for n, record in enumerate(records):
                tp = TopicPartition(record.topic, record.partition)
                if tp in rewound:
                    continue
                if await self._settle(record, ready.get(n)):
                    rewound.add(tp)
        finally:
            self.metrics.active.dec(len(records))
            self.idle.set()

    async def _prepare(self, record: ConsumerRecord) -> _Ready | None:
        """Parse, check and fetch ahead of a batched pass; None leaves the record to the one-at-a-time way."""
        started = time.perf_counter()
        try:
            ref = self._parse(record)
            if ref is None or ref.event_id in self.done:
                return None
            self.pipeline.check_request(ref.to_request())
            self.store.check_allowed(ref.object)
            fetch_started = time.perf_counter()
            blob = await self.results.fetch(ref)
            return _Ready(ref, blob, time.perf_counter() - fetch_started, started)
        except Exception:  # noqa: BLE001 - handled, logged and delivered by the one-at-a-time way
            return None

    async def handle(
        self, record: ConsumerRecord, attempt: int = 1, ready: _Ready | None = None
    ) -> Outcome | RetryLater:
        """Turn one input record into exactly one delivered outcome, or a request to retry it later."""
        started = ready.started if ready is not None else time.perf_counter()
        event_id = peek_event_id(record.value)
        self.metrics.consumed.labels(record.topic).inc()
        structlog.contextvars.bind_contextvars(
            event_id=event_id, topic=record.topic, partition=record.partition, offset=record.offset, attempt=attempt
        )
        try:
            ref = ready.ref if ready is not None else self._parse(record)
            if ref is None:  # a bucket notification about nothing this stage watches
                assert self.delivery is not None
                await self.delivery.skip(record)
                self.metrics.notifications_ignored.inc()
                log.debug("notification_ignored", outcome="ignored")
                return Outcome("ignored")
            event_id = ref.event_id
            structlog.contextvars.bind_contextvars(event_id=ref.event_id, profile=ref.profile)
            if ref.event_id in self.done:
                assert self.delivery is not None
                await self.delivery.skip(record)
                self.metrics.duplicates.inc()
                log.info("event_duplicate_skipped", outcome="duplicate")
                return Outcome("duplicate")
            self.pipeline.check_request(ref.to_request())
            self.store.check_allowed(ref.object)
            return await self._transcribe_and_deliver(record, ref, started, attempt, ready)
        except StageError as exc:
            if exc.retriable and attempt < self.settings.max_attempts:
                delay = backoff(self.settings, attempt)
                log.warning("retry_scheduled", code=exc.code.value, error=exc.message, delay_s=round(delay, 2))
                return RetryLater(exc, delay)
            return await self._dead_letter(record, exc, event_id, attempt, started)
        except Abandoned:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure must end as a dead letter, not a crash
            return await self._dead_letter(record, exc, event_id, attempt, started)
        finally:
            structlog.contextvars.clear_contextvars()

    def _parse(self, record: ConsumerRecord) -> AudioReference | None:
        """The record's AudioReference: an event of the input topic, or one made from a bucket notification."""
        if self._notify_rules is not None and record.topic == self.settings.kafka_notification_topic:
            return reference_from_notification(record.value, self._notify_rules)
        return parse_audio_reference(record.value)

    async def _transcribe_and_deliver(
        self, record: ConsumerRecord, ref: AudioReference, started: float, attempts: int, ready: _Ready | None = None
    ) -> Outcome:
        loop = asyncio.get_running_loop()
        if ready is not None:  # fetched ahead of a batched pass, maybe transcribed in it
            blob, fetch_s = ready.blob, ready.fetch_s
        else:
            fetch_started = time.perf_counter()
            blob = await self.results.fetch(ref)  # a result-cache hit carries the transcript and skips inference
            fetch_s = time.perf_counter() - fetch_started
        transcript = blob.hit or (ready.transcript if ready is not None else None)
        if transcript is None:
            transcript = await loop.run_in_executor(self._inference, self.pipeline.process, blob.data, ref.to_request())
        value = encode_transcript(
            transcript_record(
                ref,
                transcript,
                blob_etag=blob.etag,
                blob_size=blob.size,
                blob_content_type=blob.content_type,
                fetch_s=fetch_s,
                total_s=time.perf_counter() - started,
                group=self.settings.kafka_group_id,
                pool=self.settings.worker_pool,
                host=self.settings.host,
            )
        )
        assert self.delivery is not None
        publish_started = time.perf_counter()
        await self.delivery.deliver(
            record, self.settings.kafka_output_topic, record.key or ref.event_id.encode(), value
        )
        publish_s = time.perf_counter() - publish_started
        self.done.add(ref.event_id)
        await self.results.remember(blob, ref, transcript)
        self._observe(transcript, fetch_s, publish_s)
        log.info(
            "event_transcribed",
            outcome="transcribed",
            audio_s=round(transcript.duration_s, 3),
            fetch_s=round(fetch_s, 4),
            decode_s=round(transcript.decode_s, 4),
            transcribe_s=round(transcript.transcribe_s, 4),
            diarize_s=round(transcript.diarize_s, 4),
            inference_s=round(inference_seconds(transcript), 4),
            publish_s=round(publish_s, 4),
            total_s=round(time.perf_counter() - started, 4),
            diarization=transcript.diarization.status.value,
            cache=f"{transcript.cache.tier}/{transcript.cache.matched_by}" if transcript.cache else None,
            warnings=list(transcript.warnings),
            attempts=attempts,
        )
        return Outcome("transcribed")

    def _observe(self, transcript: Transcript, fetch_s: float, publish_s: float) -> None:
        m = self.metrics
        if transcript.cache is not None:  # served from the result cache: no decode or inference to count
            m.step_duration.labels("fetch").observe(fetch_s)
            m.step_duration.labels("publish").observe(publish_s)
            m.published.labels("transcribed").inc()
            return
        with_diarization = str(transcript.diarization.status is DiarizationStatus.APPLIED).lower()
        m.transcription_duration.labels(transcript.model, transcript.profile, with_diarization).observe(
            inference_seconds(transcript)
        )
        m.audio_seconds.labels(transcript.profile).inc(transcript.duration_s)
        # transcribe and diarize are each step's own time: they overlap, so they do not add up to the
        # event's inference (that is transcription_duration_seconds).
        for step, seconds in (
            ("fetch", fetch_s),
            ("decode", transcript.decode_s),
            ("transcribe", transcript.transcribe_s),
            ("diarize", transcript.diarize_s),
            ("publish", publish_s),
        ):
            if step != "diarize" or transcript.diarize_s > 0:
                m.step_duration.labels(step).observe(seconds)
        m.published.labels("transcribed").inc()
        if self._gpu is not None and (used := self._gpu.used_bytes()) is not None:
            m.gpu_memory.labels(str(self.settings.device_index)).set(used)

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
        assert self.delivery is not None
        await self.delivery.deliver(record, self.settings.kafka_dead_letter_topic, key, encode_dead_letter(value))
        self.metrics.dead_letters.labels(value["code"]).inc()
        self.metrics.published.labels("dead_lettered").inc()
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
        return Outcome("dead_lettered", value["code"])
