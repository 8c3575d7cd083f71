"""Publishing an outcome and committing its input offset, under the configured guarantee.

at_least_once: send with acks=all, wait for the acknowledgement, then commit the offset.
    A crash between the two publishes the outcome again on redelivery; the dedupe store
    (``consumer.dedupe``) then skips it in the normal case.
exactly_once: one Kafka transaction holds the outcome and the input offset
    (``send_offsets_to_transaction``); a crash aborts both, and ``read_committed``
    consumers never see the aborted copy.

In both, a retriable broker error is retried with backoff for as long as it lasts, since
skipping would lose the event; only shutdown ends the wait (``Abandoned``), leaving the
event uncommitted for the partition's next owner.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord

from consumer.kafka import make_producer
from consumer.logs import get_logger
from consumer.settings import Settings

log = get_logger("fwv2.delivery")


class Abandoned(Exception):  # noqa: N818 - a control-flow signal, not a failure of the event
    """The worker is stopping: leave the event unpublished and uncommitted for the next owner."""


def backoff(settings: Settings, attempt: int) -> float:
    """Exponential backoff, capped, with "equal jitter": uniform in [ceiling / 2, ceiling]."""
    ceiling = min(settings.retry_backoff_max_s, settings.retry_backoff_s * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


class Delivery(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def deliver(self, record: ConsumerRecord, topic: str, key: bytes | None, value: bytes) -> None:
        """Publish ``value`` to ``topic`` and commit past ``record``."""

    async def skip(self, record: ConsumerRecord) -> None:
        """Commit past ``record`` without publishing (a duplicate)."""


class _Base:
    def __init__(self, settings: Settings, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        self.settings = settings
        self.consumer = consumer
        self.stop_event = stop
        self.producer: AIOKafkaProducer = self._make_producer()

    def _make_producer(self) -> AIOKafkaProducer:
        return make_producer(self.settings, "worker")

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def skip(self, record: ConsumerRecord) -> None:
        await self._commit(record)

    async def _commit(self, record: ConsumerRecord) -> None:
        tp = TopicPartition(record.topic, record.partition)
        try:
            await self.consumer.commit({tp: record.offset + 1})
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved the partition on; its next owner sees the event again and the
            # dedupe store recognises it as done.
            log.warning("commit_failed", error=str(exc), partition=record.partition, offset=record.offset)

    async def _retrying(self, what: str, action: object) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                await action()  # type: ignore[operator]
                return
            except KafkaError as exc:
                if not exc.retriable:
                    raise
                if self.stop_event.is_set():
                    raise Abandoned(f"shutting down while {what} fails: {exc!r}") from exc
                delay = backoff(self.settings, attempt)
                log.warning("publish_retry", target=what, error=repr(exc), attempt=attempt, delay_s=round(delay, 2))
                await asyncio.sleep(delay)


class AtLeastOnce(_Base):
    async def deliver(self, record: ConsumerRecord, topic: str, key: bytes | None, value: bytes) -> None:
        async def send() -> None:
            await self.producer.send_and_wait(topic, value=value, key=key)

        await self._retrying(topic, send)
        await self._commit(record)


class ExactlyOnce(_Base):
    def _make_producer(self) -> AIOKafkaProducer:
        # One transactional id per worker process: a restarted process with the same host and
        # pid (a container restarted in its pod) fences its predecessor's open transaction.
        txn_id = f"{self.settings.kafka_group_id}-{self.settings.host}-{os.getpid()}"
        # A transaction spans only the send and the offset commit (inference happens before it
        # begins), so it lasts milliseconds. A short timeout bounds how long the open transaction
        # of a killed worker holds back read_committed readers of its output partition.
        return make_producer(self.settings, "worker", transactional_id=txn_id, transaction_timeout_ms=10_000)

    async def deliver(self, record: ConsumerRecord, topic: str, key: bytes | None, value: bytes) -> None:
        tp = TopicPartition(record.topic, record.partition)

        async def transaction() -> None:
            async with self.producer.transaction():
                await self.producer.send(topic, value=value, key=key)
                await self.producer.send_offsets_to_transaction({tp: record.offset + 1}, self.settings.kafka_group_id)

        await self._retrying(topic, transaction)


def make_delivery(settings: Settings, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> Delivery:
    if settings.processing_guarantee == "exactly_once":
        return ExactlyOnce(settings, consumer, stop)
    return AtLeastOnce(settings, consumer, stop)
