"""Where each partition of the worker's stands: a retry waiting out its backoff, or a rewind to redo outcomes.

A retriable failure pauses only its partition and seeks it back to the event, which is resumed when its
backoff is over; the other partitions go on. Outcomes given up (``NotOwner``, or an open transaction
that failed to commit) seek the partition back to the first of them, so that they are delivered again.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError
from aiokafka.structs import ConsumerRecord

from consumer.plumbing.logs import get_logger
from consumer.worker.metrics import WorkerMetrics

log = get_logger("fwv2.worker")


@dataclass(frozen=True)
class _PendingRetry:
    offset: int
    attempts: int
    due: float


class Partitions:
    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics
        self.retries: dict[TopicPartition, _PendingRetry] = {}
        # Partitions rewound because an open transaction was discarded: the offset to go back to.
        self._rewind_to: dict[TopicPartition, int] = {}

    def attempt(self, record: ConsumerRecord) -> int:
        """Which attempt at the record this is: the one its paused partition waits to retry counts on."""
        pending = self.retries.get(TopicPartition(record.topic, record.partition))
        return pending.attempts + 1 if pending and pending.offset == record.offset else 1

    def retry_later(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, attempt: int, delay_s: float
    ) -> None:
        """Pause the partition and seek it back to the event (or to a discarded transaction's first)."""
        consumer.pause(tp)
        consumer.seek(tp, min(offset, self._rewind_to.pop(tp, offset)))
        self.retries[tp] = _PendingRetry(offset, attempt, time.monotonic() + delay_s)

    def settled(self, tp: TopicPartition) -> None:
        """The partition's event has its outcome: no retry waits, and nothing before it is to be redone."""
        self.retries.pop(tp, None)
        self._rewind_to.pop(tp, None)

    def resume_due(self, consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        for tp, pending in list(self.retries.items()):
            if pending.due <= now and tp in consumer.paused():
                consumer.resume(tp)

    def revoked(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self.retries.pop(tp, None)

    def rewound(self, tp: TopicPartition) -> bool:
        """Whether the partition's earlier outcomes were discarded and it waits to be rewound to them."""
        return tp in self._rewind_to

    def discarded(
        self, consumer: AIOKafkaConsumer | None, tp: TopicPartition, first: int, event_ids: list[str], reason: str
    ) -> None:
        """An open transaction's outcomes are gone: rewind to the first of them."""
        # Remembered until the partition's next event settles: it must not commit past the rewind.
        self._rewind_to[tp] = min(first, self._rewind_to.get(tp, first))
        self._rewind(consumer, tp, first, event_ids, reason)

    def not_owner(
        self, consumer: AIOKafkaConsumer | None, tp: TopicPartition, offset: int, event_id: str | None, reason: str
    ) -> None:
        """An outcome the worker may no longer deliver: rewind, in case the partition is (again) ours.

        The event must not be passed over, nor the earlier ones of a discarded transaction. The rewind
        is done here, so it is forgotten.
        """
        first = min(offset, self._rewind_to.pop(tp, offset))
        self._rewind(consumer, tp, first, [event_id] if event_id else [], reason)

    def _rewind(
        self, consumer: AIOKafkaConsumer | None, tp: TopicPartition, first: int, event_ids: list[str], reason: str
    ) -> None:
        """Outcomes given up (``NotOwner``, a discarded transaction): say so, count them, seek back to ``first``.

        A partition no longer assigned gets its position anew from the group (the seek is refused).
        """
        log.warning("outcome_discarded", event_ids=event_ids, partition=tp.partition, offset=first, reason=reason)
        self.metrics.discarded.inc(max(1, len(event_ids)))
        if consumer is not None:
            with contextlib.suppress(IllegalStateError):
                consumer.seek(tp, first)
