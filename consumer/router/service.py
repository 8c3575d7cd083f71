"""``fwv2 router``: hand every AudioReference to exactly one worker pool, the GPU or the CPU pool.

The router reads KAFKA_INPUT_TOPIC in its own consumer group (ROUTER_GROUP_ID) and writes each
record, unchanged (key, value, headers, partition number), to the topic of the pool that
``consumer.router.rules`` picks: KAFKA_GPU_TOPIC or KAFKA_CPU_TOPIC. The pools are ordinary
``fwv2 worker`` groups reading those topics.

- Exactly once: the routed records of one poll and the router's input offsets are written in one
  Kafka transaction, so a router killed at any moment has routed each event once or not at all
  (read_committed readers, as the workers are under PROCESSING_GUARANTEE=exactly_once, never see
  an aborted copy; at_least_once workers may, and their dedupe store skips it).
- Overflow: a background task looks at the GPU group's lag every ROUTER_LAG_INTERVAL_S and feeds
  it to the hysteresis state machine (``consumer.router.rules.advance``).
- Health and metrics on METRICS_PORT, as the workers (/healthz, /readyz, /metrics).

Design and failure modes: docs/ROUTING.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry, Counter, Gauge

from consumer.contract.inputs import parse_audio_reference, peek_event_id
from consumer.plumbing.health import HealthState, serve
from consumer.plumbing.kafka import make_admin, make_consumer, make_producer, partitions_for, start_consumer
from consumer.plumbing.logs import get_logger
from consumer.plumbing.retry import Abandoned, backoff
from consumer.plumbing.settings import RouterSettings
from consumer.router.rules import (
    GpuObservation,
    OverflowConfig,
    OverflowState,
    Pool,
    Reason,
    Route,
    RoutingPolicy,
    advance,
)
from pipeline.errors import StageError

log = get_logger("fwv2.router")

# A transaction holds one poll's worth of sends and an offset commit: milliseconds. A short
# timeout bounds how long a killed router's open transaction holds back read_committed readers
# of the pool topics, when no successor with the same transactional id aborts it sooner.
TRANSACTION_TIMEOUT_MS = 10_000


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.registry = r
        self.routed = Counter(
            "fwv2_router_routed", "Events routed, by pool and reason (docs/ROUTING.md).", ["pool", "reason"], registry=r
        )
        self.overflow_active = Gauge(
            "fwv2_router_overflow_active",
            "1 while GPU-bound events that may run on a CPU go to the CPU pool.",
            registry=r,
        )
        self.gpu_lag = Gauge(
            "fwv2_router_gpu_lag",
            "Offsets the GPU group is behind on its topic, at the last look that could tell.",
            registry=r,
        )
        self.gpu_members = Gauge("fwv2_router_gpu_members", "Members of the GPU group at the last look.", registry=r)
        self.gpu_lag_observed = Gauge(
            "fwv2_router_gpu_lag_observed_timestamp_seconds",
            "Unix time of the last look that told the GPU lag.",
            registry=r,
        )
        self.transaction_retries = Counter(
            "fwv2_router_transaction_retries", "Routing transactions that failed and were retried.", registry=r
        )
        self.ready = Gauge("fwv2_router_ready", "1 when the router is ready to route.", registry=r)
        # Every pool and reason at 0 from the start: a series born at its first count hides that count
        # from rate() and increase() (consumer/worker/metrics.py).
        for pool in Pool:
            for reason in Reason:
                self.routed.labels(pool.value, reason.value)


class GpuBacklogProbe:
    """Reads how far behind the GPU group is: its committed offsets against the GPU topic's ends."""

    def __init__(self, settings: RouterSettings) -> None:
        self.settings = settings
        self.topic = settings.kafka_gpu_topic
        self.group = settings.router_gpu_group_id
        self._admin = make_admin(settings, "router-probe")
        # Ends as a read_committed worker sees them (the last stable offset), no group.
        self._consumer = make_consumer(settings, group_id=None, isolation_level="read_committed")

    async def start(self) -> None:
        await self._admin.start()
        await start_consumer(self._consumer)

    async def stop(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def observe(self) -> GpuObservation:
        # "Unknown" is always a safe answer (the state machine holds its state), so no failure of
        # a look may take the router down with it.
        lag = members = None
        try:
            lag = await self.lag()
        except Exception as exc:  # noqa: BLE001
            log.warning("gpu_lag_unknown", group=self.group, error=repr(exc))
        try:
            members = await self.members()
        except Exception as exc:  # noqa: BLE001
            log.warning("gpu_members_unknown", group=self.group, error=repr(exc))
        return GpuObservation(lag=lag, members=members, at=time.monotonic())

    async def lag(self) -> int | None:
        # From the client's metadata each time, so that partitions added later are counted too.
        tps = [TopicPartition(self.topic, p) for p in sorted(await partitions_for(self._consumer, self.topic))]
        # Asking for the partitions by name makes a real answer list each of them (-1: nothing
        # committed). An empty answer is no answer: right after a broker start the coordinator
        # replies NOT_COORDINATOR and aiokafka returns {} rather than raising.
        committed = await self._admin.list_consumer_group_offsets(self.group, partitions=tps)
        if set(committed) != set(tps):
            return None
        ends = await self._consumer.end_offsets(tps)
        starts = await self._consumer.beginning_offsets(tps)
        total = 0
        for tp in tps:
            offset = committed[tp].offset
            # Nothing committed: the group's workers would start at the earliest record.
            position = offset if offset >= 0 else starts[tp]
            behind = ends[tp] - position
            # The router writes in transactions, so each partition ends with a commit marker that
            # no worker ever reads: a caught-up partition is one offset behind its end.
            total += max(0, behind - 1)
        return total

    async def members(self) -> int | None:
        (response,) = await self._admin.describe_consumer_groups([self.group])
        (group,) = response.groups
        error_code, members = group[0], group[5]
        return None if error_code else len(members)


class _DrainOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, router: Router) -> None:
        self._router = router

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # The transaction in flight commits offsets of these partitions; let it finish first.
        await self._router.idle.wait()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._router.assigned = frozenset(assigned)
        log.info("partitions_assigned", partitions=sorted(f"{tp.topic}-{tp.partition}" for tp in assigned))


class Router:
    def __init__(self, settings: RouterSettings, metrics: RouterMetrics | None = None) -> None:
        s = settings
        self.settings = s
        self.metrics = metrics or RouterMetrics()
        self.policy = RoutingPolicy(
            pools=frozenset(Pool(p) for p in s.router_pools),
            default_pool=Pool(s.router_default_pool),
            overflow_quality=s.router_overflow_quality,
            overflow_diarization=s.router_overflow_diarization,
        )
        self.overflow_config = OverflowConfig(
            high_watermark=s.router_overflow_high_watermark,
            low_watermark=s.router_overflow_low_watermark,
            down_after_s=s.router_gpu_down_after_s,
        )
        self.overflow = OverflowState()
        self.observed: GpuObservation | None = None
        self.transactional_id = s.router_transactional_id or f"{s.router_group_id}-{s.host}"
        self.topics = {Pool.GPU: s.kafka_gpu_topic, Pool.CPU: s.kafka_cpu_topic}
        self.idle = asyncio.Event()
        self.idle.set()
        self.started = asyncio.Event()
        self.assigned: frozenset[TopicPartition] = frozenset()
        self.routed = 0
        self.last_poll = time.monotonic()
        self._partitions: dict[Pool, set[int]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._producer_broken = False

    def _make_producer(self) -> AIOKafkaProducer:
        return make_producer(
            self.settings,
            "router",
            transactional_id=self.transactional_id,
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Route until ``stop`` is set; the transaction in flight finishes or is abandoned uncommitted."""
        s = self.settings
        # read_committed: an event its producer aborted is not an event.
        self._consumer = make_consumer(s, group_id=s.router_group_id, isolation_level="read_committed")
        self._consumer.subscribe([s.kafka_input_topic], listener=_DrainOnRevoke(self))
        self._producer = self._make_producer()
        probe = GpuBacklogProbe(s) if len(self.policy.pools) > 1 else None
        watcher: asyncio.Task[None] | None = None
        try:
            # Starting the transactional producer aborts what a predecessor with the same id left open.
            await self._producer.start()
            for pool in self.policy.pools:
                self._partitions[pool] = set(await self._producer.partitions_for(self.topics[pool]))
            if probe is not None:
                await probe.start()
                # Counts as a look for FWV2RouterBlind: a router that never manages one alerts too.
                self.metrics.gpu_lag_observed.set(time.time())
                watcher = asyncio.create_task(self._watch(probe, stop))
            await self._consumer.start()
            self.started.set()
            log.info(
                "router_started",
                group=s.router_group_id,
                topic=s.kafka_input_topic,
                pools={p.value: self.topics[p] for p in sorted(self.policy.pools)},
                transactional_id=self.transactional_id,
            )
            while not stop.is_set():
                batches = await self._consumer.getmany(timeout_ms=200, max_records=s.router_max_batch)
                self.last_poll = time.monotonic()
                if batches:
                    await self._route(batches, stop)
                if watcher is not None and watcher.done():
                    watcher.result()  # the watcher never ends by itself; surface what killed it
        finally:
            self.started.clear()
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await self._consumer.stop()
            await self._producer.stop()
            if probe is not None:
                await probe.stop()
            log.info("router_stopped", routed=self.routed)

    # --- overflow -------------------------------------------------------------------------------

    async def _watch(self, probe: GpuBacklogProbe, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.observe(await probe.observe())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.router_lag_interval_s)

    def observe(self, seen: GpuObservation) -> None:
        """Take one look at the GPU group into the overflow state."""
        before = self.overflow
        self.overflow = advance(before, seen, self.overflow_config)
        self.observed = seen
        m = self.metrics
        if seen.lag is not None:
            m.gpu_lag.set(seen.lag)
            m.gpu_lag_observed.set(time.time())
        if seen.members is not None:
            m.gpu_members.set(seen.members)
        m.overflow_active.set(1 if self.overflow.active else 0)
        if self.overflow.active != before.active:
            log.warning(
                "overflow_started" if self.overflow.active else "overflow_ended",
                cause=self.overflow.cause or before.cause,
                gpu_lag=seen.lag,
                gpu_members=seen.members,
                high_watermark=self.overflow_config.high_watermark,
                low_watermark=self.overflow_config.low_watermark,
            )

    # --- routing --------------------------------------------------------------------------------

    def decide(self, record: ConsumerRecord) -> tuple[Route, str | None]:
        try:
            ref = parse_audio_reference(record.value)
        except StageError:
            return self.policy.route(None, self.overflow.active), peek_event_id(record.value)
        return self.policy.route(ref, self.overflow.active), ref.event_id

    def _partition(self, pool: Pool, record: ConsumerRecord) -> int | None:
        # Same partition number as the input: keeps the order of each input partition within a
        # pool, and lines outputs up with inputs for the workers' dedupe (docs/RELIABILITY.md).
        # A pool topic with fewer partitions falls back to the key's partition.
        return record.partition if record.partition in self._partitions[pool] else None

    async def _route(self, batches: dict[TopicPartition, list[ConsumerRecord]], stop: asyncio.Event) -> None:
        assert self._consumer is not None
        decided = [(record, *self.decide(record)) for records in batches.values() for record in records]
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
        self.idle.clear()
        try:
            await self._transaction(decided, offsets, stop)
        except Abandoned as exc:
            # Nothing of this batch was committed; read it again from the committed offsets.
            for tp, records in batches.items():
                self._consumer.seek(tp, records[0].offset)
            log.warning("batch_abandoned", reason=str(exc), events=len(decided))
            return
        finally:
            self.idle.set()
        for record, route, event_id in decided:
            self.routed += 1
            self.metrics.routed.labels(route.pool.value, route.reason.value).inc()
            log.info(
                "event_routed",
                event_id=event_id,
                partition=record.partition,
                offset=record.offset,
                pool=route.pool.value,
                reason=route.reason.value,
                topic=self.topics[route.pool],
            )

    async def _transaction(
        self,
        decided: list[tuple[ConsumerRecord, Route, str | None]],
        offsets: dict[TopicPartition, int],
        stop: asyncio.Event,
    ) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                if self._producer_broken:
                    await self._restart_producer()
                producer = self._producer
                assert producer is not None
                async with producer.transaction():
                    sent = [
                        await producer.send(
                            self.topics[route.pool],
                            value=record.value,
                            key=record.key,
                            headers=list(record.headers) or None,
                            partition=self._partition(route.pool, record),
                        )
                        for record, route, _ in decided
                    ]
                    await asyncio.gather(*sent)
                    await producer.send_offsets_to_transaction(offsets, self.settings.router_group_id)
                return
            except ProducerFenced:
                # Another router runs with our transactional id; two would route every event twice.
                log.error("router_fenced", transactional_id=self.transactional_id)
                raise
            except KafkaError as exc:
                # A failed transaction can leave the producer in a state only a new one clears.
                self._producer_broken = True
                if stop.is_set():
                    raise Abandoned(f"stopping while routing fails: {exc!r}") from exc
                delay = backoff(self.settings, attempt)
                self.metrics.transaction_retries.inc()
                log.warning(
                    "route_retry", error=repr(exc), attempt=attempt, events=len(decided), delay_s=round(delay, 2)
                )
                await asyncio.sleep(delay)

    async def _restart_producer(self) -> None:
        """A new producer under the same transactional id; starting it aborts what the old one left open."""
        assert self._producer is not None
        with contextlib.suppress(Exception):  # the old one is being thrown away, whatever state it is in
            await self._producer.stop()
        self._producer = self._make_producer()
        await self._producer.start()  # a KafkaError here is one more failed attempt of the caller
        self._producer_broken = False


async def run_router(settings: RouterSettings, stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop``), serving /healthz, /readyz and /metrics."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    metrics = RouterMetrics()
    state = HealthState()
    state.model_loaded = True  # nothing to load
    router = Router(settings, metrics)
    state.last_poll = lambda: router.last_poll
    state.assigned = lambda: len(router.assigned)
    server = await serve(settings.metrics_port, state, metrics) if settings.metrics_port else None
    try:
        task = asyncio.create_task(router.run(stop))
        started = asyncio.create_task(router.started.wait())
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        state.consumer_started = router.started.is_set()
        started.cancel()
        try:
            await task
        except Exception as exc:
            state.worker_failed = repr(exc)
            raise
        return 0
    finally:
        if server is not None:
            server.close()
