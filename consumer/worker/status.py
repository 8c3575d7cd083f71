"""Job state for the people and services waiting on an event: ``StatusEvent`` records on KAFKA_STATUS_TOPIC.

``accepted`` when the worker takes an event (past dedupe), ``progress`` while it transcribes audio of a
minute or more (at most every STATUS_PROGRESS_INTERVAL_S), then ``completed`` or ``dead_lettered`` with
where the outcome went. Key = event id: one event's states share a partition, in order.

Outside the outcome's transaction, on purpose: progress must be readable while the event is still open,
and a status failure must never hold back or lose an outcome. So the states are sent by their own
idempotent producer, without waiting for the broker on the event's path; a failed send is logged and
counted (``fwv2_status_events_failed``), and the event goes on. Under exactly_once ``completed`` is sent
once the outcome is in its transaction, so it can precede that transaction's commit by up to
TRANSACTION_MAX_MS; if the transaction is then discarded, the event is delivered again, and its states
show a new ``accepted`` with a new ``run_id``. docs/EVENTS.md says what a reader may rely on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import uuid
from collections.abc import Awaitable
from typing import Any

from aiokafka import AIOKafkaProducer

from consumer.contract.avro import STATUS_EVENT
from consumer.contract.status import JobState, OutcomeRef, StatusEvent, Step
from consumer.contract.wire import Wire
from consumer.plumbing.kafka import make_producer
from consumer.plumbing.logs import get_logger
from consumer.plumbing.settings import WorkerSettings
from consumer.worker.metrics import WorkerMetrics
from pipeline.types import Progress

log = get_logger("fwv2.status")


class StatusPublisher:
    """The worker's status events; a no-op when KAFKA_STATUS_TOPIC is empty."""

    def __init__(self, settings: WorkerSettings, wire: Wire, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.topic = settings.kafka_status_topic
        self.wire = wire
        self.metrics = metrics
        self._producer: AIOKafkaProducer | None = None
        self._runs: dict[str, str] = {}  # event id -> run id, from accepted to its outcome
        self._pending: set[asyncio.Future[Any]] = set()  # outcomes whose offsets are awaited
        self._queue: asyncio.Queue[StatusEvent] | None = None
        self._sender: asyncio.Task[None] | None = None
        # One process, one prefix: a run id says which worker process ran the event, then which run.
        self._prefix = f"{settings.host}-{os.getpid()}"

    @property
    def enabled(self) -> bool:
        return bool(self.topic)

    async def start(self) -> None:
        if self.enabled:
            self._producer = make_producer(self.settings, "worker-status")
            await self._producer.start()
            self._queue = asyncio.Queue()
            self._sender = asyncio.create_task(self._drain(self._producer, self._queue))

    async def stop(self) -> None:
        """Send the last states of the events just finished (a few seconds at most), then close."""
        if self._producer is None or self._queue is None or self._sender is None:
            return
        if self._pending:
            await asyncio.wait(self._pending, timeout=5)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=5)
        self._sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sender
        with contextlib.suppress(Exception):
            await self._producer.flush()
        await self._producer.stop()
        self._producer = self._queue = self._sender = None

    # --- the states ------------------------------------------------------------------------
    def accepted(self, event_id: str, attempt: int) -> None:
        run = self._runs.setdefault(event_id, f"{self._prefix}-{uuid.uuid4().hex[:8]}")
        self._send(StatusEvent.now(event_id=event_id, state=JobState.ACCEPTED, run_id=run, attempt=attempt, **self._me))

    def progress(self, event_id: str, attempt: int, loop: asyncio.AbstractEventLoop) -> Progress | None:
        """A ``Progress`` for the pipeline (called on the inference thread), or None when there is no topic."""
        if not self.enabled:
            return None
        interval = self.settings.status_progress_interval_s
        least = self.settings.status_progress_min_audio_s
        lock = threading.Lock()
        last_at, last_step = [0.0], [""]  # the last one told, shared by the calls below

        def heard(step: str, done_s: float, total_s: float) -> None:
            if total_s < least:
                return
            now = time.monotonic()
            with lock:  # a step change is always told; otherwise at most one every `interval`
                if step == last_step[0] and now - last_at[0] < interval:
                    return
                last_at[0], last_step[0] = now, step
            event = StatusEvent.now(
                event_id=event_id,
                state=JobState.PROGRESS,
                run_id=self._runs.get(event_id, ""),
                attempt=attempt,
                step=Step(step) if step in Step._value2member_map_ else Step.UNKNOWN,
                progress=min(done_s / total_s, 1.0) if total_s > 0 else 0.0,
                audio_s=total_s,
                done_s=done_s,
                **self._me,
            )
            loop.call_soon_threadsafe(self._send, event)

        return heard

    def forget(self, event_id: str | None) -> None:
        """The run ends without an outcome (shutdown, or the partition moved): no state follows."""
        if event_id:
            self._runs.pop(event_id, None)

    def finished(
        self,
        event_id: str | None,
        attempt: int,
        state: JobState,
        topic: str,
        sent: Awaitable[Any] | None = None,
        code: str | None = None,
        audio_s: float | None = None,
    ) -> None:
        """``completed`` or ``dead_lettered``, with the outcome's partition and offset once its send has them."""
        if not event_id:
            return
        run = self._runs.pop(event_id, None) or f"{self._prefix}-{uuid.uuid4().hex[:8]}"
        if not self.enabled:
            return

        async def when_sent() -> None:
            partition = offset = None
            if sent is not None:
                try:
                    metadata = await asyncio.wait_for(sent, timeout=30)
                    partition, offset = getattr(metadata, "partition", None), getattr(metadata, "offset", None)
                except Exception as exc:  # noqa: BLE001 - the state still goes out, without the offset
                    log.warning("status_outcome_unknown", event_id=event_id, error=repr(exc))
            self._send(
                StatusEvent.now(
                    event_id=event_id,
                    state=state,
                    run_id=run,
                    attempt=attempt,
                    progress=1.0,
                    audio_s=audio_s,
                    done_s=audio_s,
                    outcome=OutcomeRef(topic=topic, partition=partition, offset=offset, code=code),
                    **self._me,
                )
            )

        self._track(asyncio.ensure_future(when_sent()))

    # --- sending -----------------------------------------------------------------------------
    @property
    def _me(self) -> dict[str, str]:
        return {"pool": self.settings.worker_pool, "host": self.settings.host}

    def _send(self, event: StatusEvent) -> None:
        if self._queue is not None:
            self._queue.put_nowait(event)

    async def _drain(self, producer: AIOKafkaProducer, queue: asyncio.Queue[StatusEvent]) -> None:
        """One sender, in the order the states were made: an event's states reach its partition in order."""
        while True:
            event = await queue.get()
            try:
                headers = self.wire.headers("status", event.event_id, None, STATUS_EVENT)
                sent = await producer.send(
                    self.topic,
                    value=self.wire.encode(event),
                    key=event.event_id.encode(),
                    headers=list(headers) or None,
                )
                sent.add_done_callback(
                    lambda f, state=event.state.value, eid=event.event_id: self._acked(f, state, eid)
                )
            except Exception as exc:  # noqa: BLE001 - a lost state must not stop the event
                self._failed(event.event_id, event.state.value, exc)
            finally:
                queue.task_done()

    def _acked(self, sent: asyncio.Future[Any], state: str, event_id: str) -> None:
        if sent.cancelled() or sent.exception() is not None:
            self._failed(event_id, state, sent.exception() if not sent.cancelled() else asyncio.CancelledError())
        else:
            self.metrics.status_events.labels(state).inc()

    def _failed(self, event_id: str, state: str, exc: BaseException | None) -> None:
        self.metrics.status_failures.inc()
        log.warning("status_send_failed", event_id=event_id, state=state, error=repr(exc))

    def _track(self, task: asyncio.Future[Any]) -> None:
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
