"""The worker loop: poll, hand each record (or batch) down the event path, settle its partition.

This room owns the consumer: the poll, assignment and revocation, and the drain at stop. What happens
to one record is ``consumer.worker.event``; batching, ``consumer.worker.batch``; a partition's pause,
rewind and resume, ``consumer.worker.partitions``; metrics, lag and log lines, ``consumer.worker.observe``;
the schema registry, ``consumer.worker.schemas``.

One event is processed at a time per worker; scale out with partitions and workers.
Inference runs in a dedicated thread, so the event loop keeps heartbeating and serving
health checks. Delivery (publish, then commit; or both in one transaction) follows
``PROCESSING_GUARANTEE`` (``consumer.worker.delivery``).

- A rebalance waits for the event in flight to be delivered before the partitions move
  (``Worker.on_revoked``), so two workers never both publish it.
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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord

from consumer.contract.wire import Wire
from consumer.plumbing.health import diarization_state
from consumer.plumbing.kafka import make_consumer
from consumer.plumbing.logs import get_logger
from consumer.plumbing.retry import Abandoned
from consumer.plumbing.settings import WorkerSettings
from consumer.plumbing.storage import BlobStore
from consumer.worker import dedupe
from consumer.worker.batch import BatchPath
from consumer.worker.delivery import Delivery, NotOwner, make_delivery
from consumer.worker.event import EventPath
from consumer.worker.gpu import GpuMemory
from consumer.worker.job import Job, RetryLater
from consumer.worker.metrics import WorkerMetrics
from consumer.worker.observe import Observer
from consumer.worker.partitions import Partitions
from consumer.worker.result_cache import ResultCache
from consumer.worker.schemas import Schemas
from consumer.worker.status import StatusPublisher
from pipeline.stage import Pipeline

log = get_logger("fwv2.worker")


class _DrainOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka's rebalance hooks, handed to the worker's own methods."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._worker.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._worker.on_assigned(assigned)


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
        self.partitions = Partitions(self.metrics)
        self.done = dedupe.RecentEvents(settings.dedupe_capacity)
        # Set while `done` knows the current assignment's outputs. aiokafka starts fetching before
        # on_partitions_assigned returns, so without it a redelivered event could be checked
        # against a store still being filled, and transcribed twice.
        self.warmed = asyncio.Event()
        self.processed = 0
        self.last_poll = time.monotonic()
        # One inference thread: the model is not shared between threads, and CTranslate2
        # already spreads one call over CPU_THREADS cores.
        self._inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._consumer: AIOKafkaConsumer | None = None
        self.delivery: Delivery | None = None
        gpu = GpuMemory(settings.device_index) if pipeline.transcriber.info.device == "cuda" else None
        self.observer = Observer(self.metrics, gpu, settings.device_index)
        self.schemas = Schemas(settings, self.wire, self.metrics)
        self.status = StatusPublisher(settings, self.wire, self.metrics)
        self.events = EventPath(
            settings,
            pipeline,
            self.store,
            self.results,
            self.wire,
            self.done,
            self.observer,
            self._inference,
            self._deliver,
            self.partitions.rewound,
            self.status,
        )
        self.batches = BatchPath(settings, pipeline, self.events, self._inference, self.metrics, self._deliver)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; then finish the event in flight, commit and leave the group."""
        s = self.settings
        if not await self.schemas.register(stop):
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
        await self.status.start()
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
                self.partitions.resume_due(self._consumer)
                # Outcomes waiting in an open transaction (exactly_once): look for more without waiting,
                # and commit them as soon as no record is there to join them.
                waiting = self.delivery.pending
                batches = await self._consumer.getmany(timeout_ms=0 if waiting else 200, max_records=s.batch_max_clips)
                self.last_poll = time.monotonic()
                if waiting and not batches:
                    await self.delivery.flush()
                if s.batch_max_clips > 1 and batches:
                    records = await self.batches.gather(self._consumer, [r for rs in batches.values() for r in rs])
                    await self.warmed.wait()
                    await self._process_batch(records, stop)
                for records in batches.values() if s.batch_max_clips == 1 else ():
                    for record in records:
                        await self.warmed.wait()  # not inside _process: a revoke waits for idle
                        await self._process(record, stop)
                await self.delivery.flush(due_only=True)
                await self.observer.update_lag(self._consumer)
        finally:
            self.started.clear()
            with contextlib.suppress(Exception):  # while the partitions are still ours; stop() tries again
                await self.delivery.flush()
            await self._consumer.stop()
            await self.delivery.stop()
            await self.status.stop()
            self._inference.shutdown(wait=False, cancel_futures=True)
            log.info("worker_stopped", processed=self.processed)

    # --- assignment (aiokafka calls these through _DrainOnRevoke) -------------------------

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before the partitions move: the event in flight is finished, their retries forgotten."""
        # aiokafka awaits this before rejoining: finishing the event in flight here means
        # it is delivered by us, not processed a second time by the partition's next owner.
        await self.idle.wait()
        self.warmed.clear()
        self.partitions.revoked(revoked)
        if self.delivery is not None:
            await self.delivery.revoked(revoked)
        if revoked:
            log.info("partitions_revoked", partitions=_names(revoked))

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """New partitions: take their ownership, then warm the dedupe memory from their outputs."""
        self.assigned = frozenset(assigned)
        # MinIO's producer partitions by its own hash, not the output's: a notification's
        # transcript may sit in any output partition, so those assignments warm them all.
        notified = any(tp.topic == self.settings.kafka_notification_topic for tp in assigned)
        partitions = None if notified else (tp.partition for tp in assigned)
        started = time.perf_counter()
        try:
            # Ownership first (exactly_once: each partition's transactional producer, whose start fences
            # the previous owner and aborts its open transaction), so that the outputs read next are final.
            if self.delivery is not None:
                await self.delivery.assigned(assigned)
            owned = time.perf_counter()
            learned = await dedupe.warm(self.settings, self.done, partitions)
        finally:
            self.warmed.set()
        log.info(
            "partitions_assigned",
            partitions=_names(assigned),
            known_done=learned,
            ownership_s=round(owned - started, 3),
            warm_s=round(time.perf_counter() - owned, 3),
        )

    # --- records in, outcomes settled -------------------------------------------------------

    async def _process(self, record: ConsumerRecord, stop: asyncio.Event) -> None:
        with self._in_flight(1):
            if await self.schemas.learn(record, stop):
                await self._settle(self.events.decode(record, self.partitions.attempt(record)))

    async def _process_batch(self, records: list[ConsumerRecord], stop: asyncio.Event) -> None:
        """Several records at once: each decoded and fetched, their short clips in one pass (``BatchPath``).

        Then each Job is settled in offset order within its partition. After a retry rewinds a
        partition, the batch's later records of that partition are left for the consumer to fetch again.
        """
        with self._in_flight(len(records)):
            for record in records:
                if not await self.schemas.learn(record, stop):
                    return  # stopped while the registry was down: nothing of the batch is committed
            jobs = [
                await self.batches.fetch(self.events.decode(record, self.partitions.attempt(record)))
                for record in records
            ]
            rewound: set[TopicPartition] = set()
            for job in await self.batches.share_pass(jobs):
                if job.partition in rewound:
                    continue
                if await self._settle(job):
                    rewound.add(job.partition)

    @contextlib.contextmanager
    def _in_flight(self, records: int) -> Iterator[None]:
        """Busy while records are being processed: a revoke waits for idle."""
        self.idle.clear()
        self.metrics.active.inc(records)
        try:
            yield
        finally:
            self.metrics.active.dec(records)
            self.idle.set()

    async def _settle(self, job: Job) -> bool:
        """Deliver one record's outcome; True when its partition was rewound (a retry) or abandoned."""
        assert self._consumer is not None
        record, tp = job.record, job.partition
        try:
            result = await self.events.handle(job)
            if isinstance(result, RetryLater):
                # Pause only this partition and rewind to the event; the others go on. Outcomes of the
                # partition's earlier events are committed first (or, failing that, redone from the first).
                await self._deliver().flush([tp])
                self.partitions.retry_later(self._consumer, tp, record.offset, job.attempt, result.delay_s)
                self.metrics.retries.labels(result.error.code.value).inc()
                return True
            self.partitions.settled(tp)
            self.processed += 1
            self.metrics.last_success.set(time.time())
            return False
        except NotOwner as exc:
            self.partitions.not_owner(self._consumer, tp, record.offset, job.event_id, str(exc))
            return True
        except Abandoned as exc:
            log.warning("event_abandoned", reason=str(exc), partition=record.partition, offset=record.offset)
            return True

    def _discarded(self, tp: TopicPartition, first: int, event_ids: list[str], reason: str) -> None:
        """An open transaction failed to commit (exactly_once): its outcomes are gone, their events are redone.

        The events are forgotten as done and the partition is rewound to the first of them, so the
        partition's owner (this worker, or the one that fenced it) delivers them again.
        """
        for event_id in event_ids:
            self.done.discard(event_id)
        self.partitions.discarded(self._consumer, tp, first, event_ids, reason)

    def _deliver(self) -> Delivery:
        assert self.delivery is not None, "the worker delivers only while it runs"
        return self.delivery
