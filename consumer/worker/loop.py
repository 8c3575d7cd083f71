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
from enum import StrEnum

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError
from aiokafka.structs import ConsumerRecord

from consumer.contract.avro import DEAD_LETTER, TRANSCRIPT_EVENT
from consumer.contract.cloudevents import input_event_id
from consumer.contract.dead_letters import DeadLetter
from consumer.contract.inputs import AudioReference, ObjectRef, peek_event_id
from consumer.contract.outputs import TranscriptEvent
from consumer.contract.registry import RegistryError, RegistryUnavailable
from consumer.contract.wire import Wire
from consumer.plumbing.health import diarization_state
from consumer.plumbing.kafka import make_consumer
from consumer.plumbing.logs import get_logger
from consumer.plumbing.retry import Abandoned, backoff
from consumer.plumbing.settings import WorkerSettings
from consumer.plumbing.storage import BlobStore
from consumer.worker import dedupe
from consumer.worker.delivery import Delivery, NotOwner, make_delivery
from consumer.worker.gpu import GpuMemory
from consumer.worker.metrics import WorkerMetrics
from consumer.worker.notifications import NotificationRules, reference_from_notification
from consumer.worker.result_cache import Lookup, ResultCache
from pipeline.errors import StageError
from pipeline.stage import Pipeline
from pipeline.types import DiarizationStatus, Transcript, TranscriptionRequest

log = get_logger("fwv2.worker")


class Status(StrEnum):
    """What became of one input record."""

    TRANSCRIBED = "transcribed"
    DEAD_LETTERED = "dead_lettered"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"  # a bucket notification about nothing this stage watches


@dataclass(frozen=True)
class Outcome:
    status: Status
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
class Job:
    """One input record, decoded once, on its way through the steps of ``Worker.handle``.

    ``ref`` and ``request`` are None when the record is a bucket notification about nothing this
    stage watches, or when it could not be decoded (``error`` says why). The fetch step fills
    ``blob`` (or ``error``); a batched pass fills ``transcript``.
    """

    record: ConsumerRecord
    attempt: int
    started: float
    event_id: str | None
    ref: AudioReference | None = None
    request: TranscriptionRequest | None = None
    error: Exception | None = None
    blob: Lookup | None = None
    fetch_s: float = 0.0
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


def _uri(ref: ObjectRef) -> str:
    """The object an event is about, as the CloudEvents ``ce_subject`` names it."""
    return f"s3://{ref.bucket}/{ref.key}"


def _names(tps: set[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}-{tp.partition}" for tp in tps)


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        pipeline: Pipeline,
        store: BlobStore | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.store = store or BlobStore(settings)
        self.metrics = metrics or WorkerMetrics()
        self.results = ResultCache(settings, self.store, pipeline, self.metrics)
        # Framing of the outputs: single-object, or Confluent with SCHEMA_REGISTRY_URL (consumer/contract/wire.py).
        self.wire = Wire.from_url(
            settings.schema_registry_url, settings.worker_pool, settings.schema_registry_timeout_s
        )
        self.idle = asyncio.Event()
        self.idle.set()
        self.started = asyncio.Event()
        self.assigned: frozenset[TopicPartition] = frozenset()
        self.retries: dict[TopicPartition, _PendingRetry] = {}
        # Partitions rewound because an open transaction was discarded: the offset to go back to.
        self._rewind_to: dict[TopicPartition, int] = {}
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
        if not await self._register_schemas(stop):
            return
        # Always read_committed: the router writes the pools' topics in transactions, and an aborted
        # copy read anyway would be transcribed (and the real one then skipped as a duplicate).
        # Records of non-transactional producers are visible at once either way.
        self._consumer = make_consumer(
            s, group_id=s.kafka_group_id, isolation_level="read_committed", fetch_max_wait_ms=s.kafka_fetch_max_wait_ms
        )
        topics = [s.kafka_input_topic, *([s.kafka_notification_topic] if s.kafka_notification_topic else [])]
        self._consumer.subscribe(topics, listener=_DrainOnRevoke(self))
        self.delivery = make_delivery(s, self._consumer, stop, self._discarded)
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
                # Outcomes waiting in an open transaction (exactly_once): look for more without waiting,
                # and commit them as soon as no record is there to join them.
                waiting = self.delivery.pending
                batches = await self._consumer.getmany(timeout_ms=0 if waiting else 200, max_records=s.batch_max_clips)
                self.last_poll = time.monotonic()
                if waiting and not batches:
                    await self.delivery.flush()
                if s.batch_max_clips > 1 and batches:
                    records = await self._fill_batch([r for rs in batches.values() for r in rs])
                    await self.warmed.wait()
                    await self._process_batch(records, stop)
                for records in batches.values() if s.batch_max_clips == 1 else ():
                    for record in records:
                        await self.warmed.wait()  # not inside _process: a revoke waits for idle
                        await self._process(record, stop)
                await self.delivery.flush(due_only=True)
                await self._update_lag()
        finally:
            self.started.clear()
            with contextlib.suppress(Exception):  # while the partitions are still ours; stop() tries again
                await self.delivery.flush()
            await self._consumer.stop()
            await self.delivery.stop()
            self._inference.shutdown(wait=False, cancel_futures=True)
            log.info("worker_stopped", processed=self.processed)

    async def _register_schemas(self, stop: asyncio.Event) -> bool:
        """Register the output schemas before any record is written (registry mode); False if stopped first.

        A registry that cannot be reached is waited for; one that refuses a schema (an incompatible
        change under the subject's rule) stops the worker, since every record would be refused too.
        """
        s = self.settings
        attempt = 0
        while True:
            try:
                ids = await asyncio.to_thread(self.wire.register, s.kafka_output_topic, s.kafka_dead_letter_topic)
            except RegistryUnavailable as exc:
                attempt += 1
                if await self._registry_wait(exc, attempt, stop, None):
                    return False
                continue
            except RegistryError as exc:
                log.error("schema_refused", error=exc.message)
                raise
            if ids:
                log.info("schemas_registered", subjects=ids, framing=self.wire.framing)
            return True

    async def _learn_schema(self, record: ConsumerRecord, stop: asyncio.Event) -> bool:
        """Look up the writer schema a Confluent-framed input names, waiting out a down registry.

        The event waits, uncommitted, rather than being dead-lettered for the registry's outage;
        False when the worker is stopped meanwhile (the record is then left for the next owner).
        """
        attempt = 0
        while True:
            try:
                await self.wire.learn(record.value)
                return True
            except RegistryUnavailable as exc:
                attempt += 1
                event_id = input_event_id(record.headers) or (record.key or b"").decode(errors="replace") or None
                if await self._registry_wait(exc, attempt, stop, event_id):
                    return False

    async def _registry_wait(
        self, exc: RegistryUnavailable, attempt: int, stop: asyncio.Event, event_id: str | None
    ) -> bool:
        """Log and count a registry outage, then back off; True when stopped meanwhile."""
        delay = backoff(self.settings, attempt)
        log.warning(
            "schema_registry_unavailable",
            event_id=event_id,
            error=exc.message,
            attempt=attempt,
            delay_s=round(delay, 2),
        )
        self.metrics.registry_unavailable.inc()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        return stop.is_set()

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
        for tp in list(self._consumer.assignment()):
            # Checked again after every await: a rebalance can take a partition between two of them,
            # and aiokafka asserts on a partition it no longer holds.
            if tp not in self._consumer.assignment():
                continue
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
            if await self._learn_schema(record, stop):
                await self._settle(self._decode(record))
        finally:
            self.metrics.active.dec()
            self.idle.set()

    def _decode(self, record: ConsumerRecord) -> Job:
        """The record as a Job: its reference and request made once, or the reason it has none."""
        tp = TopicPartition(record.topic, record.partition)
        pending = self.retries.get(tp)
        attempt = pending.attempts + 1 if pending and pending.offset == record.offset else 1
        started = time.perf_counter()
        self.metrics.consumed.labels(record.topic).inc()
        try:
            if self._notify_rules is not None and record.topic == self.settings.kafka_notification_topic:
                ref = reference_from_notification(record.value, self._notify_rules)
            else:
                ref = self.wire.reference(record.value, record.headers)
        except Exception as exc:  # noqa: BLE001 - dead-lettered by handle(), with the event id if one can be read
            event_id = peek_event_id(record.value) or input_event_id(record.headers)
            return Job(record, attempt, started, event_id, error=exc)
        if ref is None:
            return Job(record, attempt, started, None)
        return Job(record, attempt, started, ref.event_id, ref, ref.to_request())

    async def _settle(self, job: Job) -> bool:
        """Deliver one record's outcome; True when its partition was rewound (a retry) or abandoned."""
        assert self._consumer is not None
        record = job.record
        tp = TopicPartition(record.topic, record.partition)
        try:
            result = await self.handle(job)
            if isinstance(result, RetryLater):
                # Pause only this partition and rewind to the event; the others go on. Outcomes of the
                # partition's earlier events are committed first (or, failing that, redone from the first).
                await self._deliver().flush([tp])
                self._consumer.pause(tp)
                self._consumer.seek(tp, min(record.offset, self._rewind_to.pop(tp, record.offset)))
                self.retries[tp] = _PendingRetry(record.offset, job.attempt, time.monotonic() + result.delay_s)
                self.metrics.retries.labels(result.error.code.value).inc()
                return True
            self.retries.pop(tp, None)
            self._rewind_to.pop(tp, None)
            self.processed += 1
            self.metrics.last_success.set(time.time())
            return False
        except NotOwner as exc:
            # Rewind, in case the partition is (again) ours: the event must not be passed over, nor
            # the earlier ones of a discarded transaction. The rewind is done here, so it is forgotten.
            first = min(record.offset, self._rewind_to.pop(tp, record.offset))
            self._rewind(tp, first, [job.event_id] if job.event_id else [], str(exc))
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

        The same steps as one record alone: each Job is checked and fetched first (``_fetch``, which
        keeps a failure on the Job for ``handle`` to deliver), the fetched clips share one pass, then
        each Job goes through ``handle`` in offset order within its partition. After a retry rewinds
        a partition, the batch's later records of that partition are left for the consumer to fetch
        again.
        """
        self.idle.clear()
        self.metrics.active.inc(len(records))
        try:
            for record in records:
                if not await self._learn_schema(record, stop):
                    return  # stopped while the registry was down: nothing of the batch is committed
            jobs = [await self._fetch(self._decode(record)) for record in records]
            pending = [n for n, job in enumerate(jobs) if job.blob is not None and job.blob.hit is None]
            if len(pending) > 1:
                items = []
                for n in pending:
                    blob, request = jobs[n].blob, jobs[n].request
                    assert blob is not None and request is not None
                    items.append((blob.data, request))
                await self._deliver().flush()  # no transaction stays open while whisper runs
                loop = asyncio.get_running_loop()
                outcomes = await loop.run_in_executor(self._inference, self.pipeline.process_batch, items)
                self.metrics.batch_size.observe(len(items))
                for n, out in zip(pending, outcomes, strict=True):
                    # A clip that failed in the pass is transcribed again alone, in handle().
                    jobs[n] = replace(jobs[n], transcript=out if isinstance(out, Transcript) else None)
            rewound: set[TopicPartition] = set()
            for job in jobs:
                tp = TopicPartition(job.record.topic, job.record.partition)
                if tp in rewound:
                    continue
                if await self._settle(job):
                    rewound.add(tp)
        finally:
            self.metrics.active.dec(len(records))
            self.idle.set()

    # --- one event's path -----------------------------------------------------------------

    async def handle(self, job: Job) -> Outcome | RetryLater:
        """Take one Job through every step, top to bottom, to exactly one delivered outcome, or a retry later.

        decoded → (a notification of nothing: skip) → dedupe → checks and fetch (or the result cache)
        → inference (unless the cache or a batched pass has the transcript) → delivery → memory.
        """
        record = job.record
        structlog.contextvars.bind_contextvars(
            event_id=job.event_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempt=job.attempt,
        )
        try:
            if job.error is not None and job.ref is None:
                raise job.error  # the record could not be decoded
            if job.ref is None:
                await self._deliver().skip(record)
                self.metrics.notifications_ignored.inc()
                log.debug("notification_ignored", outcome=Status.IGNORED.value)
                return Outcome(Status.IGNORED)
            structlog.contextvars.bind_contextvars(profile=job.ref.profile)
            if job.ref.event_id in self.done:
                await self._deliver().skip(record)
                self.metrics.duplicates.inc()
                log.info("event_duplicate_skipped", outcome=Status.DUPLICATE.value)
                return Outcome(Status.DUPLICATE)
            job = await self._fetch(job)
            if job.error is not None:
                raise job.error
            return await self._transcribe_and_deliver(job)
        except StageError as exc:
            if exc.retriable and job.attempt < self.settings.max_attempts:
                delay = backoff(self.settings, job.attempt)
                log.warning("retry_scheduled", code=exc.code.value, error=exc.message, delay_s=round(delay, 2))
                return RetryLater(exc, delay)
            return await self._dead_letter(job, exc)
        except Abandoned:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure must end as a dead letter, not a crash
            return await self._dead_letter(job, exc)
        finally:
            structlog.contextvars.clear_contextvars()

    async def _fetch(self, job: Job) -> Job:
        """Checks, then the blob or the result cache's transcript; a failure is kept on the Job for handle()."""
        if job.ref is None or job.request is None or job.blob is not None or job.error is not None:
            return job
        if job.ref.event_id in self.done:  # handle() skips it; nothing to fetch
            return job
        try:
            profile = self.pipeline.check_request(job.request)  # resolved once: the cache key needs it too
            self.store.check_allowed(job.ref.object)
            fetch_started = time.perf_counter()
            blob = await self.results.fetch(job.ref, job.request, profile)  # a cache hit carries the transcript
            return replace(job, blob=blob, fetch_s=time.perf_counter() - fetch_started)
        except Abandoned:
            raise
        except Exception as exc:  # noqa: BLE001 - delivered by handle(): a retry or a dead letter
            return replace(job, error=exc)

    def _discarded(self, tp: TopicPartition, first: int, event_ids: list[str], reason: str) -> None:
        """An open transaction failed to commit (exactly_once): its outcomes are gone, their events are redone.

        The events are forgotten as done and the partition is rewound to the first of them, so the
        partition's owner (this worker, or the one that fenced it) delivers them again.
        """
        for event_id in event_ids:
            self.done.discard(event_id)
        # Remembered until the partition's next event settles: it must not commit past the rewind.
        self._rewind_to[tp] = min(first, self._rewind_to.get(tp, first))
        self._rewind(tp, first, event_ids, reason)

    def _rewind(self, tp: TopicPartition, first: int, event_ids: list[str], reason: str) -> None:
        """Outcomes given up (``NotOwner``, a discarded transaction): say so, count them, seek back to ``first``.

        A partition no longer assigned gets its position anew from the group (the seek is refused).
        """
        log.warning("outcome_discarded", event_ids=event_ids, partition=tp.partition, offset=first, reason=reason)
        self.metrics.discarded.inc(max(1, len(event_ids)))
        if self._consumer is not None:
            with contextlib.suppress(IllegalStateError):
                self._consumer.seek(tp, first)

    def _deliver(self) -> Delivery:
        assert self.delivery is not None, "the worker delivers only while it runs"
        return self.delivery

    async def _transcribe_and_deliver(self, job: Job) -> Outcome:
        ref, request, blob, record = job.ref, job.request, job.blob, job.record
        assert ref is not None and request is not None and blob is not None
        transcript = blob.hit or job.transcript
        if transcript is None:
            # No transaction stays open while whisper runs (exactly_once): commit what waits first.
            await self._deliver().flush()
            if TopicPartition(record.topic, record.partition) in self._rewind_to:
                raise NotOwner("this partition's earlier outcomes were discarded; it is rewound to them")
            loop = asyncio.get_running_loop()
            transcript = await loop.run_in_executor(self._inference, self.pipeline.process, blob.data, request)
        value = self.wire.encode(
            TranscriptEvent.of(
                ref,
                transcript,
                blob_etag=blob.etag,
                blob_size=blob.size,
                blob_content_type=blob.content_type,
                fetch_s=job.fetch_s,
                total_s=time.perf_counter() - job.started,
                group=self.settings.kafka_group_id,
                pool=self.settings.worker_pool,
                host=self.settings.host,
            ),
        )
        publish_started = time.perf_counter()
        headers = self.wire.headers("transcript", ref.event_id, _uri(ref.object), TRANSCRIPT_EVENT)
        await self._deliver().deliver(
            record, self.settings.kafka_output_topic, record.key or ref.event_id.encode(), value, ref.event_id, headers
        )
        publish_s = time.perf_counter() - publish_started
        self.done.add(ref.event_id)
        await self.results.remember(blob, ref, transcript)
        self._observe(transcript, job.fetch_s, publish_s)
        log.info(
            "event_transcribed",
            outcome=Status.TRANSCRIBED.value,
            audio_s=round(transcript.duration_s, 3),
            fetch_s=round(job.fetch_s, 4),
            decode_s=round(transcript.decode_s, 4),
            transcribe_s=round(transcript.transcribe_s, 4),
            diarize_s=round(transcript.diarize_s, 4),
            inference_s=round(inference_seconds(transcript), 4),
            publish_s=round(publish_s, 4),
            total_s=round(time.perf_counter() - job.started, 4),
            diarization=transcript.diarization.status.value,
            cache=f"{transcript.cache.tier}/{transcript.cache.matched_by}" if transcript.cache else None,
            warnings=list(transcript.warnings),
            attempts=job.attempt,
        )
        return Outcome(Status.TRANSCRIBED)

    def _observe(self, transcript: Transcript, fetch_s: float, publish_s: float) -> None:
        m = self.metrics
        if transcript.cache is not None:  # served from the result cache: no decode or inference to count
            m.step_duration.labels("fetch").observe(fetch_s)
            m.step_duration.labels("publish").observe(publish_s)
            m.published.labels(Status.TRANSCRIBED.value).inc()
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
        m.published.labels(Status.TRANSCRIBED.value).inc()
        if self._gpu is not None and (used := self._gpu.used_bytes()) is not None:
            m.gpu_memory.labels(str(self.settings.device_index)).set(used)

    async def _dead_letter(self, job: Job, exc: Exception) -> Outcome:
        record = job.record
        letter = DeadLetter.of(
            exc,
            event_id=job.event_id,
            key=record.key,
            value=record.value,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempts=job.attempt,
            group=self.settings.kafka_group_id,
            pool=self.settings.worker_pool,
            host=self.settings.host,
        )
        key = record.key or (job.event_id.encode() if job.event_id else None)
        value = self.wire.encode(letter)
        subject = _uri(job.ref.object) if job.ref is not None else None
        headers = self.wire.headers("dead-letter", job.event_id, subject, DEAD_LETTER)
        await self._deliver().deliver(record, self.settings.kafka_dead_letter_topic, key, value, job.event_id, headers)
        self.metrics.dead_letters.labels(letter.code).inc()
        self.metrics.published.labels(Status.DEAD_LETTERED.value).inc()
        level = log.error if letter.code in ("INTERNAL_ERROR", "TRANSCRIPTION_FAILED") else log.warning
        level(
            "event_dead_lettered",
            outcome=Status.DEAD_LETTERED.value,
            code=letter.code,
            error=letter.message,
            exception_type=letter.exception_type,
            attempts=job.attempt,
            total_s=round(time.perf_counter() - job.started, 4),
            exc_info=not isinstance(exc, StageError),
        )
        return Outcome(Status.DEAD_LETTERED, letter.code)
