"""Publishing an outcome and committing its input offset, under the configured guarantee.

at_least_once: check that this worker still owns the event's partition in the group's current
    generation, send with acks=all, wait for the acknowledgement, then commit the offset. A crash
    between send and commit publishes the outcome again on redelivery; the dedupe store
    (``consumer.worker.dedupe``) then skips it in the normal case.
exactly_once: one Kafka transaction holds the outcome and the input offset
    (``send_offsets_to_transaction``); quick outcomes of one partition share a transaction, which is
    committed before any inference starts (``ExactlyOnce``). Each assigned input partition has its own transactional
    producer whose ``transactional.id`` is derived from group, topic and partition, the same on
    every worker. Initialising it when the partition is assigned bumps the id's epoch, which
    aborts what the previous owner left open and fences that owner's producer: a worker that lost
    the partition (frozen past its session timeout, say) can no longer commit an outcome for it.
    aiokafka sends no group generation with transactional offsets (no KIP-447), so the epoch is
    what fences.

Either way, an outcome a worker may no longer deliver (``NotOwner``) is discarded unpublished
and uncommitted: the partition's owner delivers the event. A retriable broker error is retried
with backoff for as long as it lasts, since skipping would lose the event; only shutdown ends the
wait (``Abandoned``), leaving the event uncommitted for the partition's next owner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, ProducerFenced
from aiokafka.structs import ConsumerRecord

from consumer.plumbing.kafka import make_producer
from consumer.plumbing.logs import get_logger
from consumer.plumbing.retry import Abandoned, backoff
from consumer.plumbing.settings import WorkerSettings

log = get_logger("fwv2.delivery")

T = TypeVar("T")

# A transaction spans only the send and the offset commit (inference happens before it begins),
# so it lasts milliseconds. A short timeout bounds how long the open transaction of a killed
# worker holds back read_committed readers of its output partition.
TRANSACTION_TIMEOUT_MS = 10_000


class NotOwner(Abandoned):
    """The event's partition has moved to another worker: discard this worker's outcome for it.

    The group's current generation no longer gives the partition to this worker (a commit in
    this worker's generation was refused), or a newer producer of the partition's transactional
    id fenced this one. Nothing is published or committed; the owner delivers the event.
    """


def _ready(value: Any) -> asyncio.Future[Any]:
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    done.set_result(value)
    return done


def transactional_id(settings: WorkerSettings, tp: TopicPartition) -> str:
    """The same on every worker of the group, so that a partition's new owner fences its old one."""
    return f"{settings.kafka_group_id}-{tp.topic}-{tp.partition}"


class Delivery(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def assigned(self, tps: Iterable[TopicPartition]) -> None:
        """The group gave this worker ``tps``: take ownership before any of their records is processed."""

    async def revoked(self, tps: Iterable[TopicPartition]) -> None:
        """``tps`` are leaving this worker (the event in flight is already delivered)."""

    async def deliver(
        self,
        record: ConsumerRecord,
        topic: str,
        key: bytes | None,
        value: bytes,
        event_id: str | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Awaitable[Any]:
        """Publish ``value`` and commit past ``record`` (exactly_once: at ``flush``); ``NotOwner`` if it may not.

        Returns what resolves to the record's ``RecordMetadata`` (its partition and offset): at_least_once
        has it already; exactly_once once the send leaves the producer, before the transaction commits.
        """

    async def skip(self, record: ConsumerRecord) -> None:
        """Commit past ``record`` without publishing (a duplicate)."""

    @property
    def pending(self) -> bool:
        """Whether outcomes wait in an open transaction for ``flush``."""

    async def flush(self, tps: Iterable[TopicPartition] | None = None, due_only: bool = False) -> None:
        """Commit the open transactions (of ``tps``; with ``due_only``, those past their size or age)."""


class _Base:
    def __init__(self, settings: WorkerSettings, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        self.settings = settings
        self.consumer = consumer
        self.stop_event = stop

    async def assigned(self, tps: Iterable[TopicPartition]) -> None:
        return None

    async def revoked(self, tps: Iterable[TopicPartition]) -> None:
        return None

    async def skip(self, record: ConsumerRecord) -> None:
        await self._commit(record)

    @property
    def pending(self) -> bool:
        return False

    async def flush(self, tps: Iterable[TopicPartition] | None = None, due_only: bool = False) -> None:
        return None

    async def check_owner(self, record: ConsumerRecord) -> None:
        """Raise ``NotOwner`` unless the group's current generation still gives ``record``'s partition to us.

        The check is a commit of the record's own offset (not past it, so nothing is skipped): the
        broker refuses a commit from a member whose generation is stale or who was removed from the
        group, which is the case of a worker frozen past its session timeout.
        """
        tp = TopicPartition(record.topic, record.partition)
        try:
            await self.consumer.commit({tp: record.offset})
        except (CommitFailedError, IllegalStateError) as exc:
            raise NotOwner(f"{tp.topic}-{tp.partition} is no longer this worker's: {exc}") from exc

    async def _commit(self, record: ConsumerRecord) -> None:
        tp = TopicPartition(record.topic, record.partition)
        try:
            await self.consumer.commit({tp: record.offset + 1})
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved the partition on after the outcome was published; its next owner
            # reads that outcome when it is assigned the partition and skips the event as done.
            log.warning("commit_failed", error=str(exc), partition=record.partition, offset=record.offset)

    async def _pause_before_commit(self) -> None:
        # Fault injection for tests (FAULT_PAUSE_BEFORE_COMMIT_S): a window in which a test freezes
        # the process between publishing an outcome and committing its offset.
        if self.settings.fault_pause_before_commit_s > 0:
            log.warning("fault_pause_before_commit", seconds=self.settings.fault_pause_before_commit_s)
            await asyncio.sleep(self.settings.fault_pause_before_commit_s)

    async def _retrying(self, what: str, action: Callable[[], Awaitable[T]]) -> T:
        """``action``, again after a backoff for as long as it fails with a retriable broker error."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await action()
            except KafkaError as exc:
                if not exc.retriable:
                    raise
                await self._wait_before_retry(what, exc, attempt)

    async def _wait_before_retry(self, what: str, exc: KafkaError, attempt: int) -> None:
        if self.stop_event.is_set():
            raise Abandoned(f"shutting down while {what} fails: {exc!r}") from exc
        delay = backoff(self.settings, attempt)
        log.warning("publish_retry", target=what, error=repr(exc), attempt=attempt, delay_s=round(delay, 2))
        await asyncio.sleep(delay)


class AtLeastOnce(_Base):
    def __init__(self, settings: WorkerSettings, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        super().__init__(settings, consumer, stop)
        self.producer = make_producer(settings, "worker")

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def deliver(
        self,
        record: ConsumerRecord,
        topic: str,
        key: bytes | None,
        value: bytes,
        event_id: str | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Awaitable[Any]:
        await self.check_owner(record)
        metadata = await self._retrying(
            topic, lambda: self.producer.send_and_wait(topic, value=value, key=key, headers=list(headers) or None)
        )
        await self._pause_before_commit()
        await self._commit(record)
        return _ready(metadata)


@dataclass
class _Open:
    """A partition's open transaction: the outcomes sent in it, and the input offset it will commit."""

    producer: AIOKafkaProducer
    first: int  # the first input offset whose outcome it holds
    commit_to: int
    opened: float
    events: list[str] = field(default_factory=list)
    sends: list[asyncio.Future[Any]] = field(default_factory=list)


# Called with the partition, the first input offset of a discarded transaction and its event ids:
# the worker forgets them as done and rewinds the partition, so that their owner delivers them again.
OnDiscard = Callable[[TopicPartition, int, list[str], str], None]


class ExactlyOnce(_Base):
    """One transaction holds the outcomes of several quick events of a partition, and its input offset.

    A transaction per event costs five round trips to the coordinators; outcomes that come quickly
    (result-cache hits, duplicates, dead letters of bad input) share one. It is committed before any
    inference starts (``flush`` from the worker), before a retry rewinds the partition, when no record
    is waiting, on revocation and on shutdown, and at TRANSACTION_MAX_OUTCOMES outcomes or
    TRANSACTION_MAX_MS of age: so a transaction is never open while whisper runs. A transaction that
    fails to commit (fenced, or broken) is discarded whole: ``on_discard`` rewinds its partition to its
    first event, which the partition's owner delivers again.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        consumer: AIOKafkaConsumer,
        stop: asyncio.Event,
        on_discard: OnDiscard | None = None,
    ) -> None:
        super().__init__(settings, consumer, stop)
        self.producers: dict[TopicPartition, AIOKafkaProducer] = {}
        self.open: dict[TopicPartition, _Open] = {}
        self.on_discard = on_discard

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self.revoked(list(self.producers))

    async def assigned(self, tps: Iterable[TopicPartition]) -> None:
        await asyncio.gather(*(self._open(tp) for tp in tps if tp not in self.producers))

    async def revoked(self, tps: Iterable[TopicPartition]) -> None:
        tps = list(tps)
        await self.flush(tps)  # still ours until the callback returns
        await asyncio.gather(*(self._close(tp) for tp in tps))

    async def _open(self, tp: TopicPartition) -> AIOKafkaProducer:
        producer = make_producer(
            self.settings,
            f"worker-{tp.topic}-{tp.partition}",
            transactional_id=transactional_id(self.settings, tp),
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
        )
        # start() initialises the transactional id (InitProducerId): the epoch goes up, the previous
        # owner's open transaction is aborted and its producer fenced.
        await producer.start()
        self.producers[tp] = producer
        return producer

    async def _close(self, tp: TopicPartition) -> None:
        producer = self.producers.pop(tp, None)
        if producer is not None:
            try:
                await producer.stop()
            except KafkaError as exc:  # a fenced or broken producer has nothing left to flush
                log.debug("producer_close_failed", partition=f"{tp.topic}-{tp.partition}", error=repr(exc))

    @property
    def pending(self) -> bool:
        return bool(self.open)

    async def skip(self, record: ConsumerRecord) -> None:
        txn = self.open.get(TopicPartition(record.topic, record.partition))
        if txn is not None:  # outcomes before it wait in a transaction: its offset joins them
            txn.commit_to = record.offset + 1
            return
        await self._commit(record)

    async def deliver(
        self,
        record: ConsumerRecord,
        topic: str,
        key: bytes | None,
        value: bytes,
        event_id: str | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Awaitable[Any]:
        tp = TopicPartition(record.topic, record.partition)
        attempt = 0
        while True:
            attempt += 1
            txn = self.open.get(tp)
            try:
                if txn is None:
                    txn = await self._begin(tp, record)
                future = await txn.producer.send(topic, value=value, key=key, headers=list(headers) or None)
                break
            except ProducerFenced as exc:
                self._discard(tp, exc)
                raise NotOwner(f"a newer producer of {transactional_id(self.settings, tp)} fenced ours") from exc
            except KafkaError as exc:
                # A failed transaction can leave the producer in a state only a new one clears; the
                # outcomes already in it are lost with it, and their events are delivered again.
                held = bool(txn is not None and txn.sends)
                self._discard(tp, exc)
                await self._close(tp)
                if held:
                    raise NotOwner(f"the open transaction of {tp.topic}-{tp.partition} failed: {exc!r}") from exc
                if not exc.retriable:
                    raise
                await self._wait_before_retry(topic, exc, attempt)
        txn.sends.append(future)
        txn.commit_to = record.offset + 1
        if event_id is not None:
            txn.events.append(event_id)
        if len(txn.sends) >= self.settings.transaction_max_outcomes and not await self._commit_open(tp):
            raise NotOwner(f"the transaction of {tp.topic}-{tp.partition} could not commit")
        sent: Awaitable[Any] = future
        return sent

    async def _begin(self, tp: TopicPartition, record: ConsumerRecord) -> _Open:
        producer = self.producers.get(tp)
        if producer is None:
            # Opened again after a failure (or an assignment whose opening failed): check the
            # partition is still ours first, or opening it would fence its rightful owner.
            await self.check_owner(record)
            producer = await self._retrying_open(tp)
        await producer.begin_transaction()
        txn = _Open(producer, record.offset, record.offset, time.monotonic())
        self.open[tp] = txn
        return txn

    async def flush(self, tps: Iterable[TopicPartition] | None = None, due_only: bool = False) -> None:
        now = time.monotonic()
        max_s = self.settings.transaction_max_ms / 1000
        for tp in list(self.open if tps is None else tps):
            txn = self.open.get(tp)
            if txn is not None and (not due_only or now - txn.opened >= max_s):
                await self._commit_open(tp)

    async def _commit_open(self, tp: TopicPartition) -> bool:
        txn = self.open.get(tp)
        if txn is None:
            return True
        try:
            await asyncio.gather(*txn.sends)
            await txn.producer.send_offsets_to_transaction({tp: txn.commit_to}, self.settings.kafka_group_id)
            await self._pause_before_commit()
            await txn.producer.commit_transaction()
        except KafkaError as exc:
            self._discard(tp, exc)
            await self._close(tp)
            return False
        self.open.pop(tp, None)
        return True

    def _discard(self, tp: TopicPartition, exc: Exception) -> None:
        txn = self.open.pop(tp, None)
        if txn is not None and txn.commit_to > txn.first and self.on_discard is not None:
            self.on_discard(tp, txn.first, txn.events, repr(exc))

    async def _retrying_open(self, tp: TopicPartition) -> AIOKafkaProducer:
        return await self._retrying(f"producer of {tp.topic}-{tp.partition}", lambda: self._open(tp))


def make_delivery(
    settings: WorkerSettings, consumer: AIOKafkaConsumer, stop: asyncio.Event, on_discard: OnDiscard | None = None
) -> Delivery:
    if settings.processing_guarantee == "exactly_once":
        return ExactlyOnce(settings, consumer, stop, on_discard)
    return AtLeastOnce(settings, consumer, stop)
