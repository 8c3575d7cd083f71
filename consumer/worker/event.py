"""One event's path through a worker: a record decoded once into a Job, then taken to exactly one outcome.

``EventPath.handle`` is the path, top to bottom, in one function. A retriable failure comes back as
``RetryLater`` for the loop to pause and rewind the partition; every other failure is delivered as a
dead letter. The loop (``consumer.worker.loop``) decides when records come here; the batch path
(``consumer.worker.batch``) only fetches and transcribes ahead, then hands each Job to the same ``handle``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from consumer.contract.avro import DEAD_LETTER, TRANSCRIPT_EVENT
from consumer.contract.cloudevents import input_event_id
from consumer.contract.dead_letters import DeadLetter
from consumer.contract.inputs import ObjectRef, peek_event_id
from consumer.contract.outputs import TranscriptEvent
from consumer.contract.status import JobState
from consumer.contract.wire import Wire
from consumer.plumbing.logs import get_logger
from consumer.plumbing.retry import Abandoned, backoff
from consumer.plumbing.settings import WorkerSettings
from consumer.plumbing.storage import BlobStore
from consumer.worker.dedupe import RecentEvents
from consumer.worker.delivery import Delivery, NotOwner
from consumer.worker.job import (
    Decoded,
    Fetched,
    Job,
    Outcome,
    Referenced,
    Refused,
    RetryLater,
    Status,
    Undecodable,
    Unwatched,
)
from consumer.worker.notifications import NotificationRules, reference_from_notification
from consumer.worker.observe import Observer
from consumer.worker.result_cache import ResultCache
from consumer.worker.status import StatusPublisher
from pipeline.errors import StageError
from pipeline.stage import Pipeline
from pipeline.types import Transcript

log = get_logger("fwv2.worker")


def _uri(ref: ObjectRef) -> str:
    """The object an event is about, as the CloudEvents ``ce_subject`` names it."""
    return f"s3://{ref.bucket}/{ref.key}"


class EventPath:
    def __init__(
        self,
        settings: WorkerSettings,
        pipeline: Pipeline,
        store: BlobStore,
        results: ResultCache,
        wire: Wire,
        done: RecentEvents,
        observer: Observer,
        inference: ThreadPoolExecutor,
        delivery: Callable[[], Delivery],
        rewound: Callable[[TopicPartition], bool],
        status: StatusPublisher,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.store = store
        self.results = results
        self.wire = wire
        self.done = done
        self.observer = observer
        self._inference = inference
        # The loop's: the delivery exists only while the worker runs, and a partition is rewound
        # (an open transaction's outcomes discarded) by the loop.
        self._delivery = delivery
        self._rewound = rewound
        self.status = status  # job state for those waiting (consumer.worker.status), outside the outcome's path
        self._in_progress = observer.metrics.in_progress.labels(settings.worker_pool)
        # Bucket notifications (consumer.worker.notifications): a bad rule fails here, at start.
        self._notify_rules = NotificationRules.from_settings(settings) if settings.kafka_notification_topic else None

    def decode(self, record: ConsumerRecord, attempt: int) -> Job:
        """The record as a Job: its reference and request made once, or the reason it has none."""
        started = time.perf_counter()
        self.observer.metrics.consumed.labels(record.topic).inc()
        try:
            if self._notify_rules is not None and record.topic == self.settings.kafka_notification_topic:
                ref = reference_from_notification(record.value, self._notify_rules)
            else:
                ref = self.wire.reference(record.value, record.headers)
        except Exception as exc:  # noqa: BLE001 - dead-lettered by handle(), with the event id if one can be read
            event_id = peek_event_id(record.value) or input_event_id(record.headers)
            return Undecodable(record, attempt, started, event_id, exc)
        if ref is None:
            return Unwatched(record, attempt, started)
        return Decoded(record, attempt, started, ref, ref.to_request())

    async def handle(self, job: Job) -> Outcome | RetryLater:
        """Take one Job through every step, top to bottom, to exactly one delivered outcome, or a retry later.

        decoded → (a notification of nothing: skip) → dedupe → checks and fetch (or the result cache)
        → inference (unless the cache or a batched pass has the transcript) → delivery → memory.
        """
        record = job.record
        taken = False  # past dedupe: counted in progress until it ends
        structlog.contextvars.bind_contextvars(
            event_id=job.event_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempt=job.attempt,
        )
        try:
            if isinstance(job, Undecodable):
                raise job.error  # the record could not be decoded
            if isinstance(job, Unwatched):
                await self._delivery().skip(record)
                self.observer.ignored()
                return Outcome(Status.IGNORED)
            structlog.contextvars.bind_contextvars(profile=job.ref.profile)
            if job.event_id in self.done:  # dedupe
                await self._delivery().skip(record)
                self.observer.duplicate()
                return Outcome(Status.DUPLICATE)
            self.status.accepted(job.event_id, job.attempt)
            self._in_progress.inc()
            taken = True
            if isinstance(job, Decoded):  # a batched Job comes fetched already
                job = await self.fetch(job)
            if isinstance(job, Refused):
                raise job.error
            transcript = job.blob.hit or job.transcript  # the result cache's, or a batched pass's
            if transcript is None:
                transcript = await self._transcribe(job)
            publish_s, sent = await self._publish(job, transcript)
            self.status.finished(
                job.event_id,
                job.attempt,
                JobState.COMPLETED,
                self.settings.kafka_output_topic,
                sent,
                audio_s=transcript.duration_s,
            )
            self.done.add(job.event_id)  # remember: a redelivery is now a duplicate
            await self.results.remember(job.blob, job.ref, transcript)
            self.observer.transcribed(job, transcript, publish_s)
            return Outcome(Status.TRANSCRIBED)
        except StageError as exc:
            if exc.retriable and job.attempt < self.settings.max_attempts:
                delay = backoff(self.settings, job.attempt)
                log.warning("retry_scheduled", code=exc.code.value, error=exc.message, delay_s=round(delay, 2))
                return RetryLater(exc, delay)
            return await self._dead_letter(job, exc)
        except Abandoned:
            self.status.forget(job.event_id)  # this run ends here; the partition's owner starts another
            raise
        except Exception as exc:  # noqa: BLE001 - every failure must end as a dead letter, not a crash
            return await self._dead_letter(job, exc)
        finally:
            if taken:
                self._in_progress.dec()
            structlog.contextvars.clear_contextvars()

    async def fetch(self, job: Decoded) -> Fetched | Refused:
        """Checks, then the blob or the result cache's transcript; a failure is kept on the Job for handle()."""
        try:
            profile = self.pipeline.check_request(job.request)  # resolved once: the cache key needs it too
            self.store.check_allowed(job.ref.object)
            fetch_started = time.perf_counter()
            blob = await self.results.fetch(job.ref, job.request, profile)  # a cache hit carries the transcript
            return Fetched(
                job.record, job.attempt, job.started, job.ref, job.request, blob, time.perf_counter() - fetch_started
            )
        except Abandoned:
            raise
        except Exception as exc:  # noqa: BLE001 - delivered by handle(): a retry or a dead letter
            return Refused(job.record, job.attempt, job.started, job.ref, job.request, exc)

    async def _transcribe(self, job: Fetched) -> Transcript:
        # No transaction stays open while whisper runs (exactly_once): commit what waits first.
        await self._delivery().flush()
        if self._rewound(job.partition):
            raise NotOwner("this partition's earlier outcomes were discarded; it is rewound to them")
        loop = asyncio.get_running_loop()
        progress = self.status.progress(job.event_id, job.attempt, loop)
        return await loop.run_in_executor(self._inference, self.pipeline.process, job.blob.data, job.request, progress)

    async def _publish(self, job: Fetched, transcript: Transcript) -> tuple[float, Awaitable[Any]]:
        """Deliver the TranscriptEvent (and commit the input, under the guarantee).

        Returns the seconds it took, and what resolves to the record's partition and offset.
        """
        ref, blob, record = job.ref, job.blob, job.record
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
        sent = await self._delivery().deliver(
            record, self.settings.kafka_output_topic, record.key or ref.event_id.encode(), value, ref.event_id, headers
        )
        return time.perf_counter() - publish_started, sent

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
        subject = _uri(job.ref.object) if isinstance(job, Referenced) else None
        headers = self.wire.headers("dead-letter", job.event_id, subject, DEAD_LETTER)
        sent = await self._delivery().deliver(
            record, self.settings.kafka_dead_letter_topic, key, value, job.event_id, headers
        )
        self.status.finished(
            job.event_id, job.attempt, JobState.DEAD_LETTERED, self.settings.kafka_dead_letter_topic, sent, letter.code
        )
        self.observer.dead_lettered(job, letter, exc)
        return Outcome(Status.DEAD_LETTERED, letter.code)
