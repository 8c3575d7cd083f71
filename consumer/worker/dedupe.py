"""Idempotence by event_id: which events already have a transcript.

Mechanism: a bounded in-memory set of recently transcribed event_ids, warmed whenever the
worker is assigned partitions by reading the tail (``DEDUPE_WINDOW`` records) of the
same-numbered partitions of the output topic. Outputs are keyed like their inputs (input
key, else event_id) and the topics have equal partition counts, so the transcripts of an
input partition's events sit in the output partition of the same number: the output topic
itself is the durable dedupe store, and a worker that inherits a partition after a crash
learns what its predecessor already published.

Only transcripts count as done. A dead-lettered event may be replayed with the same
event_id once its cause is fixed (the object uploaded, the bucket allowed), so dead
letters do not block it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from aiokafka import TopicPartition

from consumer.contract.avro import HEADER_LEN, is_single_object
from consumer.contract.registry import CONFLUENT_HEADER, framing
from consumer.plumbing.kafka import make_consumer, partitions_for, start_consumer
from consumer.plumbing.logs import get_logger
from consumer.plumbing.settings import WorkerSettings

log = get_logger("fwv2.dedupe")


class RecentEvents:
    """A bounded set of event_ids, forgetting the oldest first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def discard(self, event_id: str) -> None:
        """Forget ``event_id`` (its outcome was not committed after all)."""
        self._ids.pop(event_id, None)

    def add(self, event_id: str) -> None:
        if self._capacity == 0:
            return
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)


def event_id_of_transcript(value: bytes | None) -> str | None:
    """The event_id of a TranscriptEvent without decoding the rest: it is the body's first field."""
    if not value:
        return None
    if is_single_object(value):
        start = HEADER_LEN
    elif framing(value) == "confluent":  # registry mode: the same body after 00 and a 4-byte schema id
        start = CONFLUENT_HEADER.size
    else:
        return None
    length, pos = _read_long(value, start)
    if length < 0 or pos + length > len(value):
        return None
    return value[pos : pos + length].decode("utf-8", errors="replace")


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    """Avro's zig-zag varint."""
    shift = result = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
    return -1, pos


async def warm(settings: WorkerSettings, store: RecentEvents, partitions: Iterable[int] | None) -> int:
    """Add the event_ids of the latest transcripts in the matching output partitions (None: all); returns how many."""
    wanted = sorted(set(partitions)) if partitions is not None else None
    if wanted == [] or settings.dedupe_window == 0 or settings.dedupe_capacity == 0:
        return 0
    consumer = make_consumer(settings, group_id=None, isolation_level="read_committed")
    await start_consumer(consumer)
    try:
        existing = await partitions_for(consumer, settings.kafka_output_topic)
        tps = [
            TopicPartition(settings.kafka_output_topic, p) for p in sorted(existing) if wanted is None or p in wanted
        ]
        if not tps:
            return 0
        ends = await consumer.end_offsets(tps)
        begins = await consumer.beginning_offsets(tps)
        starts = {tp: max(begins[tp], ends[tp] - settings.dedupe_window) for tp in tps}
        remaining = {tp: ends[tp] for tp in tps if starts[tp] < ends[tp]}
        if not remaining:
            return 0
        consumer.assign(list(remaining))
        for tp in remaining:
            consumer.seek(tp, starts[tp])
        added = 0
        while remaining:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            if not batches:
                # read_committed stops short of the end offset at a transaction marker; the
                # position, not the last record's offset, says when a partition is done.
                for tp in list(remaining):
                    if await consumer.position(tp) >= remaining[tp]:
                        del remaining[tp]
                continue
            for tp, records in batches.items():
                for rec in records:
                    event_id = event_id_of_transcript(rec.value)
                    if event_id:
                        store.add(event_id)
                        added += 1
                if tp in remaining and await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
        return added
    finally:
        await consumer.stop()
