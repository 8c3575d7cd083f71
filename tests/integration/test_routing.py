"""The router against the genuine Kafka of the embedded stack (docs/ROUTING.md).

- each class of event reaches its pool's topic exactly once, unchanged;
- overflow: a GPU group that has committed nothing, or has fallen behind, sends what may run on a CPU
  to the CPU pool until its lag is back at the low watermark; a GPU group without members is down;
- a `fwv2 router` process SIGKILLed twice mid-stream and restarted loses and duplicates nothing;
- end to end: router, then a worker per pool, and each event has one transcript from its pool.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from consumer.client import ResultReader, new_reference, upload
from consumer.contract.inputs import AudioReference, ObjectRef
from consumer.plumbing.kafka import make_consumer, make_producer, partitions_for, start_consumer
from consumer.plumbing.provision import ensure_topics, stage_topics
from consumer.router.service import Router
from devtools.settings import DevSettings
from devtools.stack import EmbeddedStack
from pipeline.stage import Pipeline
from tests.integration.conftest import PARTITIONS, running_worker
from tests.waiting import eventually

pytestmark = pytest.mark.integration

OBJ = ObjectRef(bucket="audio", key="routing/none.wav")  # routing never fetches the object


@pytest.fixture
async def rsettings(stack: EmbeddedStack) -> DevSettings:
    """Fresh input, pool, output topics and groups; quick looks at the GPU lag."""
    run = uuid.uuid4().hex[:8]
    s = DevSettings(
        kafka_input_topic=f"test.{run}.in",
        kafka_gpu_topic=f"test.{run}.gpu",
        kafka_cpu_topic=f"test.{run}.cpu",
        kafka_output_topic=f"test.{run}.out",
        kafka_dead_letter_topic=f"test.{run}.dlq",
        kafka_group_id=f"test-{run}-cpu",
        router_group_id=f"test-{run}-router",
        router_gpu_group_id=f"test-{run}-gpu",
        router_transactional_id=f"test-{run}-router",
        router_lag_interval_s=0.2,
        router_overflow_high_watermark=1000,
        router_overflow_low_watermark=5,
        router_gpu_down_after_s=3600,
        metrics_port=0,
        cpu_threads=2,
        retry_backoff_s=0.05,
    )
    loop = asyncio.get_running_loop()
    await ensure_topics(s.kafka_bootstrap_servers, stage_topics(s), PARTITIONS, loop.time() + 30, lambda _: None)
    return s


@asynccontextmanager
async def running_router(settings: DevSettings) -> AsyncIterator[Router]:
    router = Router(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(router.run(stop))
    try:
        await asyncio.wait_for(router.started.wait(), 30)
        yield router
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def produce(
    settings: DevSettings, topic: str, records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = make_producer(settings, "test")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers or None)
    finally:
        await producer.stop()


async def submit(settings: DevSettings, refs: list[AudioReference]) -> None:
    await produce(
        settings,
        settings.kafka_input_topic,
        [(r.event_id.encode(), r.to_json(), [("trace", r.event_id.encode())]) for r in refs],
    )


@dataclass(frozen=True)
class Routed:
    topic: str
    partition: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


class PoolTopics:
    """Reads both pool topics from the beginning, read_committed, as the workers do."""

    def __init__(self, settings: DevSettings) -> None:
        self.settings = settings
        self.seen: list[Routed] = []
        self._consumer = make_consumer(settings, group_id=None, isolation_level="read_committed")

    async def __aenter__(self) -> PoolTopics:
        await start_consumer(self._consumer)
        tps = [
            TopicPartition(topic, p)
            for topic in (self.settings.kafka_gpu_topic, self.settings.kafka_cpu_topic)
            for p in sorted(await partitions_for(self._consumer, topic))
        ]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def poll(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=200)
        for records in batches.values():
            self.seen += [Routed(r.topic, r.partition, r.key, r.value, tuple(r.headers)) for r in records]

    async def until(self, done: Callable[[], bool], timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, f"timed out; {len(self.seen)} records seen"
            await self.poll()

    async def settle(self, quiet_s: float = 2.0) -> None:
        """Keep reading until nothing arrives for ``quiet_s`` (a duplicate would show up by then)."""
        count, last = len(self.seen), time.monotonic()
        while time.monotonic() - last < quiet_s:
            await self.poll()
            if len(self.seen) != count:
                count, last = len(self.seen), time.monotonic()

    def by_key(self) -> dict[bytes | None, list[Routed]]:
        found: dict[bytes | None, list[Routed]] = {}
        for r in self.seen:
            found.setdefault(r.key, []).append(r)
        return found


async def input_partitions(settings: DevSettings) -> dict[bytes, int]:
    """Partition of each input record, by key."""
    consumer = make_consumer(settings, group_id=None)
    await start_consumer(consumer)
    try:
        tps = [
            TopicPartition(settings.kafka_input_topic, p)
            for p in sorted(await partitions_for(consumer, settings.kafka_input_topic))
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: dict[bytes, int] = {}

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found.update({r.key: r.partition for r in records if r.key is not None})
        return found
    finally:
        await consumer.stop()


# --- (a) each class to its pool, once, unchanged -------------------------------------------------------


async def test_each_class_reaches_its_pool_exactly_once(rsettings: DevSettings) -> None:
    s = rsettings
    expected = {
        "default": ({}, s.kafka_gpu_topic),
        "quality": ({"profile": "whisper-1-quality"}, s.kafka_gpu_topic),
        "speakers": ({"timestamp_granularities": ["segment", "speaker"]}, s.kafka_gpu_topic),
        "always": ({"profile": "whisper-1-fast", "diarization": "always"}, s.kafka_gpu_topic),
        "fast": ({"profile": "whisper-1-fast"}, s.kafka_cpu_topic),
        "fast-words": ({"profile": "whisper-1-fast", "timestamp_granularities": ["word"]}, s.kafka_cpu_topic),
        "never": ({"timestamp_granularities": ["speaker"], "diarization": "never"}, s.kafka_gpu_topic),
    }
    refs = {
        name: AudioReference(event_id=f"{name}-{uuid.uuid4().hex[:6]}", object=OBJ, **fields)
        for name, (fields, _) in expected.items()
    }
    unreadable = [(b"bad-json", b"this is not an event", []), (b"bad-fields", b'{"event_id": "x"}', [("h", b"1")])]
    async with running_router(s) as router, PoolTopics(s) as topics:
        await submit(s, list(refs.values()))
        await produce(s, s.kafka_input_topic, unreadable)
        total = len(refs) + len(unreadable)
        await topics.until(lambda: len(topics.seen) >= total)
        await topics.settle()
        assert router.routed == total
        # Every pool and reason exists at 0 from the start (so alerts see the first burst); count the ones used.
        routed_total = _samples(router, "fwv2_router_routed_total")
        counts = {(labels["pool"], labels["reason"]): v for labels, v in routed_total if v}

    found = topics.by_key()
    assert len(topics.seen) == total, Counter(r.key for r in topics.seen)
    partitions = await input_partitions(s)
    for name, ref in refs.items():
        (routed,) = found[ref.event_id.encode()]
        assert routed.topic == expected[name][1], name
        assert routed.value == ref.to_json() and routed.headers == (("trace", ref.event_id.encode()),)
        assert routed.partition == partitions[ref.event_id.encode()], "the input's partition number is kept"
    # Unreadable events go to the default pool, whose worker dead-letters them as before.
    for key, value, headers in unreadable:
        (routed,) = found[key]
        assert routed.topic == s.kafka_gpu_topic and routed.value == value and routed.headers == tuple(headers)
    assert counts == {
        ("gpu", "default"): 2, ("gpu", "quality_profile"): 1, ("gpu", "diarization"): 2, ("cpu", "fast_profile"): 2,
        ("gpu", "unreadable"): 2,
    }  # fmt: skip
    # The router's input offsets are committed (in its transactions) up to the end.
    assert await _committed_lag(s, s.router_group_id, s.kafka_input_topic) == 0


def _samples(router: Router, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for metric in router.metrics.registry.collect()
        for sample in metric.samples
        if sample.name == name
    ]


async def _committed_lag(settings: DevSettings, group: str, topic: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    consumer = make_consumer(settings, group_id=None, isolation_level="read_committed")
    await start_consumer(consumer)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await partitions_for(consumer, topic))]
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        ends = await consumer.end_offsets(tps)
        return sum(ends[tp] - committed[tp].offset for tp in tps if ends[tp] > 0)
    finally:
        await admin.close()
        await consumer.stop()


async def test_a_failed_transaction_is_retried_with_a_new_producer_and_routes_once(rsettings: DevSettings) -> None:
    s = rsettings
    refs = [AudioReference(event_id=f"retry-{i}-{uuid.uuid4().hex[:6]}", object=OBJ) for i in range(5)]
    async with running_router(s) as router, PoolTopics(s) as topics:
        producer = router._producer
        assert producer is not None
        failures = 0
        original = producer.send_offsets_to_transaction

        async def fail_once(*args: object, **kwargs: object) -> None:
            nonlocal failures
            if failures == 0:
                failures += 1
                raise KafkaConnectionError("injected: the broker went away mid-transaction")
            await original(*args, **kwargs)  # type: ignore[arg-type]

        producer.send_offsets_to_transaction = fail_once  # type: ignore[method-assign]
        await submit(s, refs)
        await topics.until(lambda: len(topics.seen) >= len(refs))
        await topics.settle()
        assert failures == 1 and router._producer is not producer, "the failed producer was replaced"
        (retries,) = [v for _, v in _samples(router, "fwv2_router_transaction_retries_total")]
        assert retries >= 1
    assert Counter(r.key for r in topics.seen) == Counter(r.event_id.encode() for r in refs)
    # The first attempt's records were written and aborted: only read_uncommitted readers see them.
    assert await _records(s, "read_uncommitted") > await _records(s, "read_committed") == len(refs)


# --- (b) overflow ---------------------------------------------------------------------------------------------


async def commit_gpu_group(
    settings: DevSettings, position: Callable[[TopicPartition], Awaitable[int]] | None = None
) -> None:
    """Commit offsets for the GPU group with a bare consumer (no member joins): the end, or ``position``."""
    consumer = make_consumer(settings, group_id=settings.router_gpu_group_id, isolation_level="read_committed")
    await start_consumer(consumer)
    try:
        tps = [
            TopicPartition(settings.kafka_gpu_topic, p)
            for p in sorted(await partitions_for(consumer, settings.kafka_gpu_topic))
        ]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.commit({tp: (await position(tp)) if position else ends[tp] for tp in tps})
    finally:
        await consumer.stop()


def fillers(count: int) -> list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]:
    return [(f"filler-{i}".encode(), b'{"filler": true}', []) for i in range(count)]


async def route_and_read(
    settings: DevSettings, topics: PoolTopics, fields: dict[str, object], count: int = 3
) -> dict[str, str]:
    """Submit ``count`` events with ``fields``; the pool topic each one landed on."""
    refs = [AudioReference(event_id=f"ev-{uuid.uuid4().hex[:8]}", object=OBJ, **fields) for _ in range(count)]
    await submit(settings, refs)
    keys = {r.event_id.encode() for r in refs}
    await topics.until(lambda: keys <= set(topics.by_key()))
    found = topics.by_key()
    return {r.event_id: found[r.event_id.encode()][0].topic for r in refs}


async def test_overflow_follows_the_gpu_lag_with_hysteresis(rsettings: DevSettings) -> None:
    s = rsettings.model_copy(update={"router_overflow_high_watermark": 20, "router_overflow_low_watermark": 5})
    gpu, cpu = s.kafka_gpu_topic, s.kafka_cpu_topic
    # A GPU group that has committed nothing, with 30 records waiting on its topic: its workers would
    # start at the earliest record, so it is 30 behind (less one offset per partition for the marker).
    await produce(s, gpu, fillers(30))
    async with running_router(s) as router, PoolTopics(s) as topics:
        await eventually("overflow to begin", lambda: router.overflow.active)
        assert router.overflow.cause == "lag" and router.observed and router.observed.lag is not None
        assert router.observed.lag >= 20
        assert set((await route_and_read(s, topics, {})).values()) == {cpu}
        # What needs a GPU stays there; fast work was the CPU's anyway.
        assert set((await route_and_read(s, topics, {"profile": "whisper-1-quality"})).values()) == {gpu}
        assert set((await route_and_read(s, topics, {"diarization": "always"})).values()) == {gpu}
        assert set((await route_and_read(s, topics, {"profile": "whisper-1-fast"})).values()) == {cpu}

        # The GPU pool catches up: overflow ends, and the default class goes to the GPU again.
        await commit_gpu_group(s)
        await eventually("overflow to end", lambda: not router.overflow.active)
        assert set((await route_and_read(s, topics, {})).values()) == {gpu}

        # It falls behind again with committed offsets this time: between the watermarks nothing changes...
        async def before_fillers(tp: TopicPartition) -> int:
            return ends_before[tp]

        probe_consumer = make_consumer(s, group_id=None, isolation_level="read_committed")
        await start_consumer(probe_consumer)
        tps = [TopicPartition(gpu, p) for p in sorted(await partitions_for(probe_consumer, gpu))]
        ends_before = await probe_consumer.end_offsets(tps)
        await probe_consumer.stop()
        await produce(s, gpu, fillers(12))
        await commit_gpu_group(s, before_fillers)
        await _observed_at_least(router, 9)
        assert not router.overflow.active, "12 behind is under the high watermark"
        assert set((await route_and_read(s, topics, {})).values()) == {gpu}
        # ... past the high watermark it overflows ...
        await produce(s, gpu, fillers(20))
        await eventually("overflow to begin again", lambda: router.overflow.active)
        assert set((await route_and_read(s, topics, {})).values()) == {cpu}
        # ... and a partial catch-up above the low watermark keeps it overflowing.
        await commit_gpu_group(s, lambda tp: _halfway(s, tp, ends_before))
        await _observed_at_most(router, 19)
        assert router.overflow.active
        assert set((await route_and_read(s, topics, {})).values()) == {cpu}
        await commit_gpu_group(s)
        await eventually("overflow to end again", lambda: not router.overflow.active)
        assert set((await route_and_read(s, topics, {})).values()) == {gpu}
        reasons = {
            labels["reason"]: v for labels, v in _samples(router, "fwv2_router_routed_total") if labels["pool"] == "cpu"
        }
        assert reasons["overflow"] == 9 and reasons["fast_profile"] == 3
        (active,) = [v for _, v in _samples(router, "fwv2_router_overflow_active")]
        assert active == 0


async def _halfway(settings: DevSettings, tp: TopicPartition, ends_before: dict[TopicPartition, int]) -> int:
    consumer = make_consumer(settings, group_id=None, isolation_level="read_committed")
    await start_consumer(consumer)
    try:
        end = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    return ends_before[tp] + (end - ends_before[tp]) // 2


async def _observed_at_least(router: Router, lag: int) -> None:
    await eventually(f"lag >= {lag}", lambda: router.observed is not None and (router.observed.lag or 0) >= lag)


async def _observed_at_most(router: Router, lag: int) -> None:
    await eventually(
        f"lag <= {lag}",
        lambda: router.observed is not None and router.observed.lag is not None and router.observed.lag <= lag,
    )


async def test_a_gpu_group_without_members_is_down_until_one_returns_and_drains(rsettings: DevSettings) -> None:
    s = rsettings.model_copy(update={"router_gpu_down_after_s": 1.0})
    gpu, cpu = s.kafka_gpu_topic, s.kafka_cpu_topic
    async with running_router(s) as router, PoolTopics(s) as topics:
        # Nothing routed yet, so no lag; but no GPU worker either.
        await eventually("the down GPU group to start overflow", lambda: router.overflow.active)
        assert router.overflow.cause == "gpu_group_down" and router.observed and router.observed.members == 0
        assert set((await route_and_read(s, topics, {})).values()) == {cpu}
        assert set((await route_and_read(s, topics, {"profile": "whisper-1-quality"}, count=2)).values()) == {gpu}
        # A GPU worker joins and works through its topic (a bare group member committing as it reads).
        member = make_consumer(s, group_id=s.router_gpu_group_id, isolation_level="read_committed")
        member.subscribe([gpu])
        await member.start()
        try:
            drained = 0
            deadline = time.monotonic() + 30
            while router.overflow.active:
                assert time.monotonic() < deadline, "overflow did not end once the GPU group was back and drained"
                for records in (await member.getmany(timeout_ms=200)).values():
                    drained += len(records)
                await member.commit()
            assert drained == 2
            assert router.observed and router.observed.members == 1
            assert set((await route_and_read(s, topics, {})).values()) == {gpu}
        finally:
            await member.stop()


# --- (c) a router killed mid-stream ----------------------------------------------------------------------------


class RouterProcess:
    def __init__(self, settings: DevSettings, log: Path) -> None:
        self.env = {
            **os.environ,
            "KAFKA_INPUT_TOPIC": settings.kafka_input_topic,
            "KAFKA_GPU_TOPIC": settings.kafka_gpu_topic,
            "KAFKA_CPU_TOPIC": settings.kafka_cpu_topic,
            "ROUTER_GROUP_ID": settings.router_group_id,
            "ROUTER_GPU_GROUP_ID": settings.router_gpu_group_id,
            "ROUTER_TRANSACTIONAL_ID": settings.router_transactional_id or "",
            "ROUTER_MAX_BATCH": "7",  # many small transactions, so a kill lands inside one
            "ROUTER_LAG_INTERVAL_S": "0.2",
            "ROUTER_OVERFLOW_HIGH_WATERMARK": "1000000",
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "METRICS_PORT": "0",
        }
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "consumer.cli", "router"], env=self.env, stdout=log, stderr=log
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(60)

    def routed(self) -> int:
        return self.log.read_text().count('"event_routed"') if self.log.exists() else 0


async def test_a_sigkilled_router_loses_and_duplicates_nothing(rsettings: DevSettings, tmp_path: Path) -> None:
    s = rsettings
    count = 1200
    refs = [
        AudioReference(
            event_id=f"k-{i:04d}-{uuid.uuid4().hex[:6]}",
            object=OBJ,
            profile=("whisper-1-fast" if i % 3 == 0 else "whisper-1"),
        )
        for i in range(count)
    ]
    await submit(s, refs)
    router = RouterProcess(s, tmp_path / "router.log")
    kills = aborted = left_open = 0
    async with PoolTopics(s) as topics, OpenTransactions(s) as open_transactions:
        # Kill the router while a transaction of its is open (its records are on the pool topics,
        # not yet committed), twice; a kill that lands between two transactions does not count.
        while aborted < 2:
            assert kills < 12, f"only {aborted} of {kills} kills landed inside a transaction"
            routed_before = router.routed()
            router.start()
            # The new router first aborts what the killed one left open (same transactional id),
            # then routes; only a transaction opened after that counts.
            await eventually("the router to route", lambda: router.routed() > routed_before, 60)
            await eventually("an open routing transaction", open_transactions.any_open, 60)
            router.kill()
            kills += 1
            # Records only read_uncommitted readers see: those of aborted or still open transactions.
            invisible = await _records(s, "read_uncommitted") - await _records(s, "read_committed")
            if invisible > left_open:
                aborted, left_open = aborted + 1, invisible
        assert router.routed() < count, "the router finished before it was killed; the test proves nothing"
        router.start()
        try:
            await topics.until(lambda: len({r.key for r in topics.seen}) >= count, timeout_s=90)
            await topics.settle(3.0)
        finally:
            assert router.terminate() == 0
    keys = Counter(r.key for r in topics.seen)
    assert len(keys) == count, f"lost {count - len(keys)} events"
    assert max(keys.values()) == 1, f"duplicated: {[k for k, n in keys.items() if n > 1][:5]}"
    expected = {
        r.event_id.encode(): (s.kafka_cpu_topic if r.profile == "whisper-1-fast" else s.kafka_gpu_topic) for r in refs
    }
    assert all(r.topic == expected[r.key] for r in topics.seen if r.key)
    # The aborted records are still in the log: only read_uncommitted readers see them.
    uncommitted = await _records(s, "read_uncommitted")
    print(f"{kills} kills, {aborted} inside a transaction; {uncommitted} records on the pool topics for {count} events")
    assert uncommitted == count + left_open


class OpenTransactions:
    """Whether some pool partition has an open transaction: its high watermark (what read_uncommitted
    readers may read) is past its last stable offset (what read_committed readers may read)."""

    def __init__(self, settings: DevSettings) -> None:
        self.settings = settings
        self._committed = make_consumer(settings, group_id=None, isolation_level="read_committed")
        self._uncommitted = make_consumer(settings, group_id=None, isolation_level="read_uncommitted")
        self._tps: list[TopicPartition] = []

    async def __aenter__(self) -> OpenTransactions:
        for consumer in (self._committed, self._uncommitted):
            await start_consumer(consumer)
        self._tps = [
            TopicPartition(topic, p)
            for topic in (self.settings.kafka_gpu_topic, self.settings.kafka_cpu_topic)
            for p in sorted(await partitions_for(self._committed, topic))
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for consumer in (self._committed, self._uncommitted):
            await consumer.stop()

    async def any_open(self) -> bool:
        stable = await self._committed.end_offsets(self._tps)
        high = await self._uncommitted.end_offsets(self._tps)
        return any(high[tp] > stable[tp] for tp in self._tps)


async def _records(settings: DevSettings, isolation_level: str) -> int:
    consumer = make_consumer(settings, group_id=None, isolation_level=isolation_level)
    await start_consumer(consumer)
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in (settings.kafka_gpu_topic, settings.kafka_cpu_topic)
            for p in sorted(await partitions_for(consumer, topic))
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        seen = 0
        deadline = time.monotonic() + 30
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            assert time.monotonic() < deadline
            seen += sum(len(records) for records in (await consumer.getmany(timeout_ms=200)).values())
        return seen
    finally:
        await consumer.stop()


# --- end to end: router and one worker per pool ------------------------------------------------------------------


async def test_each_event_is_transcribed_once_by_its_pool(
    rsettings: DevSettings, pipeline: Pipeline, samples: dict[str, Path]
) -> None:
    s = rsettings
    obj = upload(s, samples["weather"])
    refs = [
        new_reference(obj, profile="whisper-1-fast"),
        new_reference(obj, profile="whisper-1"),
        new_reference(obj, profile="whisper-1-quality"),
    ]
    bad = AudioReference(
        event_id=f"missing-{uuid.uuid4().hex[:6]}", object=ObjectRef(bucket="audio", key="routing/missing.wav")
    )
    gpu_pool = s.model_copy(
        update={"kafka_input_topic": s.kafka_gpu_topic, "kafka_group_id": s.router_gpu_group_id, "worker_pool": "gpu"}
    )
    cpu_pool = s.model_copy(update={"kafka_input_topic": s.kafka_cpu_topic, "worker_pool": "cpu"})
    async with ResultReader(s) as reader, running_router(s):
        await submit(s, [*refs, bad])
        # One pipeline, so one pool at a time: the model is not shared between threads.
        async with running_worker(gpu_pool, pipeline):
            gpu_results = await reader.wait_for([refs[1].event_id, refs[2].event_id, bad.event_id], timeout_s=120)
        async with running_worker(cpu_pool, pipeline):
            cpu_results = await reader.wait_for([refs[0].event_id], timeout_s=120)
        late = [r async for r in reader.results(idle_timeout_s=3)]
    assert late == [], "an event was transcribed twice"
    for results, pool in ((gpu_results, "gpu"), (cpu_results, "cpu")):
        for result in results.values():
            assert (result.transcript or result.dead_letter).worker.pool == pool
    assert (
        gpu_results[bad.event_id].kind == "dead_letter"
        and gpu_results[bad.event_id].dead_letter.code == "OBJECT_NOT_FOUND"
    )
    assert gpu_results[bad.event_id].dead_letter.source.topic == s.kafka_gpu_topic
    for result in (cpu_results[refs[0].event_id], gpu_results[refs[1].event_id], gpu_results[refs[2].event_id]):
        assert result.kind == "transcript" and "light breeze" in result.transcript.text.lower()
