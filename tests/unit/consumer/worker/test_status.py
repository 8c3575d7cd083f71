"""The worker's StatusEvents, against a stand-in producer: what is sent, when, and that a failure costs nothing."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from consumer.contract.status import JobState, StatusEvent
from consumer.contract.wire import Wire
from consumer.plumbing.settings import WorkerSettings
from consumer.worker.metrics import WorkerMetrics
from consumer.worker.status import StatusPublisher


class FakeProducer:
    """Takes records as aiokafka's send does (a future per record); fails on demand."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes, StatusEvent]] = []
        self.fail = fail

    async def send(self, topic: str, value: bytes, key: bytes, headers: Any) -> asyncio.Future[Any]:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail:
            done.set_exception(RuntimeError("broker away"))
        else:
            self.sent.append((topic, key, Wire().status(value)))
            done.set_result(SimpleNamespace(partition=0, offset=len(self.sent)))
        return done

    async def flush(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def _publisher(producer: FakeProducer, **settings: Any) -> StatusPublisher:
    s = WorkerSettings(kafka_status_topic="audio.status", status_progress_interval_s=5.0, **settings)
    publisher = StatusPublisher(s, Wire(), WorkerMetrics())
    publisher._producer = producer  # type: ignore[assignment]
    publisher._queue = asyncio.Queue()
    publisher._sender = asyncio.create_task(publisher._drain(producer, publisher._queue))  # type: ignore[arg-type]
    return publisher


async def test_an_events_states_in_order_with_its_outcome() -> None:
    producer = FakeProducer()
    publisher = _publisher(producer)
    publisher.accepted("e1", 1)
    progress = publisher.progress("e1", 1, asyncio.get_running_loop())
    assert progress is not None
    await asyncio.to_thread(progress, "transcribing", 0.0, 3600.0)  # the inference thread
    await asyncio.to_thread(progress, "transcribing", 10.0, 3600.0)  # within the interval: not told
    await asyncio.to_thread(progress, "diarizing", 3600.0, 3600.0)  # a new step is always told
    outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    outcome.set_result(SimpleNamespace(partition=4, offset=77))
    publisher.finished("e1", 1, JobState.COMPLETED, "audio.transcripts", outcome, audio_s=3600.0)
    await publisher.stop()
    states = [event for _, _, event in producer.sent]
    assert [e.state for e in states] == [JobState.ACCEPTED, JobState.PROGRESS, JobState.PROGRESS, JobState.COMPLETED]
    assert {key for _, key, _ in producer.sent} == {b"e1"} and {e.run_id for e in states} == {states[0].run_id}
    assert [e.step.value for e in states[1:3] if e.step] == ["transcribing", "diarizing"]
    assert states[2].progress == 1.0 and states[1].audio_s == 3600.0
    done = states[-1].outcome
    assert done is not None and (done.topic, done.partition, done.offset) == ("audio.transcripts", 4, 77)


async def test_short_audio_gets_no_progress_and_a_new_run_after_a_lost_one() -> None:
    producer = FakeProducer()
    publisher = _publisher(producer)
    publisher.accepted("e1", 1)
    progress = publisher.progress("e1", 1, asyncio.get_running_loop())
    assert progress is not None
    progress("transcribing", 5.0, 30.0)  # under STATUS_PROGRESS_MIN_AUDIO_S
    publisher.forget("e1")  # the run ended without an outcome (the partition moved)
    publisher.accepted("e1", 1)
    await publisher.stop()
    states = [event for _, _, event in producer.sent]
    assert [e.state for e in states] == [JobState.ACCEPTED, JobState.ACCEPTED]
    assert states[0].run_id != states[1].run_id  # how a reader recognises the redelivery


async def test_a_failed_send_is_counted_and_nothing_else_happens() -> None:
    publisher = _publisher(FakeProducer(fail=True))
    publisher.accepted("e1", 1)
    publisher.finished("e1", 1, JobState.DEAD_LETTERED, "audio.dead-letters", None, code="EMPTY_AUDIO")
    await publisher.stop()
    assert publisher.metrics.status_failures._value.get() == 2


async def test_without_a_topic_nothing_is_made() -> None:
    publisher = StatusPublisher(WorkerSettings(kafka_status_topic=""), Wire(), WorkerMetrics())
    await publisher.start()
    assert publisher.progress("e1", 1, asyncio.get_running_loop()) is None
    publisher.accepted("e1", 1)  # no producer, no error
    publisher.finished("e1", 1, JobState.COMPLETED, "out")
    await publisher.stop()
    assert publisher._producer is None
