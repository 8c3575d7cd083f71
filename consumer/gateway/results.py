"""The one reader of the output, dead-letter and status topics in a gateway process, and what it keeps.

Every replica reads every partition without a consumer group (nothing to commit, no rebalance), so
whichever replica holds a waiting request sees its answer, and any replica can answer a later GET
from its own bounded store. Only the gateway's own events are kept (their ids carry ``ID_PREFIX``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from dataclasses import replace

from aiokafka import AIOKafkaConsumer, TopicPartition

from consumer.contract.results import Result
from consumer.contract.status import StatusEvent
from consumer.contract.wire import Wire
from consumer.gateway.request import TranscriptionForm
from consumer.plumbing.kafka import make_consumer, partitions_for, start_consumer
from consumer.plumbing.logs import get_logger
from consumer.plumbing.settings import GatewaySettings

log = get_logger("fwv2.gateway.results")

ID_PREFIX = "gw-"


def new_event_id() -> str:
    return f"{ID_PREFIX}{uuid.uuid4().hex}"


class ResultStore:
    """Results and the async requests still waiting for one, each bounded, oldest evicted first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._results: OrderedDict[str, Result] = OrderedDict()
        self._requests: OrderedDict[str, TranscriptionForm] = OrderedDict()
        self._states: OrderedDict[str, StatusEvent] = OrderedDict()  # the latest, while no result is in

    def put(self, result: Result) -> None:
        event_id = result.event_id
        assert event_id is not None
        known = self._results.get(event_id)
        if known is not None and known.kind == "transcript":
            return  # a redelivered duplicate: the first transcript stands
        if result.dead_letter is not None:
            # The original bytes are for replay tools, not for callers: do not hold them in memory.
            result = replace(result, dead_letter=replace(result.dead_letter, original_key=None, original_value=None))
        self._results[event_id] = result
        self._results.move_to_end(event_id)
        while len(self._results) > self.capacity:
            self._results.popitem(last=False)

    def get(self, event_id: str) -> Result | None:
        return self._results.get(event_id)

    def remember(self, event_id: str, form: TranscriptionForm) -> None:
        """What an async request asked for, so a GET can render the result the same way."""
        self._requests[event_id] = form
        while len(self._requests) > self.capacity:
            self._requests.popitem(last=False)

    def request(self, event_id: str) -> TranscriptionForm | None:
        return self._requests.get(event_id)

    def set_state(self, event: StatusEvent) -> None:
        """A worker's StatusEvent for one of our events: the latest one is what a GET reports."""
        known = self._states.get(event.event_id)
        if known is not None and known.state.final and not event.state.final and known.run_id == event.run_id:
            return  # a late progress of a run that already ended
        self._states[event.event_id] = event
        self._states.move_to_end(event.event_id)
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)

    def state(self, event_id: str) -> StatusEvent | None:
        return self._states.get(event_id)

    def __len__(self) -> int:
        return len(self._results)


class ResultHub:
    """Reads the results, fills the store and wakes the requests waiting for them."""

    def __init__(self, settings: GatewaySettings, store: ResultStore) -> None:
        self._settings = settings
        self._wire = Wire.from_url(settings.schema_registry_url, timeout_s=settings.schema_registry_timeout_s)
        self.store = store
        self._waiters: dict[str, set[asyncio.Future[Result]]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._catch_up: dict[TopicPartition, int] = {}
        self.caught_up = False
        self.last_poll = time.monotonic()

    async def start(self) -> None:
        s = self._settings
        # read_committed: a transcript of an aborted transaction (exactly-once workers) is never served.
        consumer = make_consumer(s, group_id=None, isolation_level="read_committed")
        await start_consumer(consumer)
        try:
            topics = [
                s.kafka_output_topic,
                s.kafka_dead_letter_topic,
                *([s.kafka_status_topic] * bool(s.kafka_status_topic)),
            ]
            partitions = [
                TopicPartition(topic, p) for topic in topics for p in sorted(await partitions_for(consumer, topic))
            ]
            consumer.assign(partitions)
            begins = await consumer.beginning_offsets(partitions)
            ends = await consumer.end_offsets(partitions)
            # Read back the latest results, so a restarted replica still answers GETs for recent requests.
            back = max(1, self.store.capacity // max(1, len(partitions)))
            for tp in partitions:
                consumer.seek(tp, max(begins[tp], ends[tp] - back))
            self._catch_up = {tp: end for tp, end in ends.items() if end > begins[tp]}
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self.caught_up = not self._catch_up
        self._task = asyncio.create_task(self._run(), name="gateway-results")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()
        self._waiters.clear()

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def expect(self, event_id: str) -> asyncio.Future[Result]:
        """A future for ``event_id``'s result; register it before publishing so no answer is missed."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        known = self.store.get(event_id)
        if known is not None:
            future.set_result(known)
        else:
            self._waiters.setdefault(event_id, set()).add(future)
        return future

    def forget(self, event_id: str, future: asyncio.Future[Result]) -> None:
        futures = self._waiters.get(event_id)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self._waiters[event_id]

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def _run(self) -> None:
        try:
            await self._read()
        except asyncio.CancelledError:
            raise
        except Exception:
            # /healthz turns 503 (the reader is dead), and the orchestrator restarts the process.
            log.exception("results_reader_failed")
            raise

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            self.last_poll = time.monotonic()
            for tp, records in batches.items():
                for rec in records:
                    await self._wire.learn(rec.value)  # a schema id not seen yet: the registry, off the loop
                    self._take(rec.topic, rec.partition, rec.offset, rec.value)
                if not self.caught_up and tp in self._catch_up and records[-1].offset + 1 >= self._catch_up[tp]:
                    del self._catch_up[tp]
            if not self.caught_up and not self._catch_up:
                self.caught_up = True
                log.info("results_caught_up", stored=len(self.store))
            elif not self.caught_up:
                # Transaction markers and compaction leave offsets no record is returned for.
                for tp in list(self._catch_up):
                    if await self._consumer.position(tp) >= self._catch_up[tp]:
                        del self._catch_up[tp]

    def _take(self, topic: str, partition: int, offset: int, value: bytes | None) -> None:
        if topic == self._settings.kafka_status_topic:
            self._take_state(partition, offset, value)
            return
        try:
            result = self._decode(topic, partition, offset, value)
        except Exception as exc:  # noqa: BLE001 - a record we cannot read is someone else's; skip it
            log.warning("result_unreadable", topic=topic, partition=partition, offset=offset, error=str(exc))
            return
        if result.event_id is None or not result.event_id.startswith(ID_PREFIX):
            return
        self.store.put(result)
        for future in self._waiters.pop(result.event_id, ()):
            if not future.done():
                future.set_result(result)

    def _take_state(self, partition: int, offset: int, value: bytes | None) -> None:
        try:
            event = self._wire.status(value or b"")
        except Exception as exc:  # noqa: BLE001 - a state we cannot read only leaves a job's percentage behind
            log.warning("status_unreadable", partition=partition, offset=offset, error=str(exc))
            return
        if event.event_id.startswith(ID_PREFIX):
            self.store.set_state(event)

    def _decode(self, topic: str, partition: int, offset: int, value: bytes | None) -> Result:
        return self._wire.result(self._settings.kafka_dead_letter_topic, topic, partition, offset, value)
