"""A frozen worker must not double an event: fencing (exactly_once) and the ownership check (at_least_once).

Two real `fwv2 worker` processes in one group share a one-partition topic on the genuine broker. The
worker holding the partition is frozen with SIGSTOP (as a long GC pause, a stalled VM or a hung volume
would freeze it) past its 6 s session timeout; the group gives the partition to the other worker, which
delivers the event; then the frozen one is thawed with SIGCONT and finishes what it was doing. Every
outcome is counted downstream, read_committed and read_uncommitted, and the input offset is checked.

- Frozen during inference: the thawed worker discards its outcome (``outcome_discarded``): fenced by the
  new owner's transactional producer under exactly_once, refused by the group's generation check under
  at_least_once. One transcript in both isolation levels.
- Frozen between publish and commit (``FAULT_PAUSE_BEFORE_COMMIT_S`` opens the window): under
  exactly_once the new owner's producer aborts the frozen worker's open transaction, whose commit then
  fails; read_committed readers see one transcript, read_uncommitted ones also see the aborted copy (as
  they see every aborted record). Under at_least_once the frozen worker's transcript was already
  published: the new owner finds it when the partition is assigned and skips the event as done; the
  thawed worker's commit fails. One transcript in both isolation levels (docs/RELIABILITY.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
import urllib.request
import wave
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from bench.tools import fresh_topics
from consumer.client import new_reference, publish_references, upload
from consumer.contract.wire import Wire
from consumer.plumbing.kafka import make_consumer, start_consumer
from devtools.samples import make_conversation
from devtools.settings import DevSettings
from tests.integration.test_reliability import WorkerProcess
from tests.waiting import eventually

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_S = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Member(WorkerProcess):
    """A worker process with a metrics port."""

    def __init__(self, settings: DevSettings, log_dir: Path, name: str, **env: str) -> None:
        super().__init__(settings, log_dir, name)
        self.name = name
        self.port = _free_port()
        self.env.update({"METRICS_PORT": str(self.port), **env})

    def metric(self, name: str) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                body = r.read().decode()
        except OSError:
            return -1.0
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return -1.0

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 96 s of speech (the demo's conversation twice): inference lasts long enough to freeze inside it."""
    directory = tmp_path_factory.mktemp("freeze")
    one = make_conversation(directory)
    target = directory / "twice.wav"
    with wave.open(str(one), "rb") as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(frames + frames)
    return target


@pytest.fixture
async def one_partition(settings: DevSettings, request: pytest.FixtureRequest) -> DevSettings:
    # The worker's own three topics, one partition each: two workers, one of them idle.
    s = await fresh_topics(settings.model_copy(update={"processing_guarantee": request.param}), "freeze", 1)
    return s


async def _outputs(s: DevSettings, isolation: str) -> list[str]:
    """The event_id of every transcript on the output topic ("dead letter" for each dead letter), read in ``isolation``."""
    consumer = make_consumer(
        s, s.kafka_output_topic, s.kafka_dead_letter_topic, group_id=None, isolation_level=isolation
    )
    await start_consumer(consumer)
    found: list[str] = []
    try:
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 3:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    idle_since = time.monotonic()
                    if tp.topic == s.kafka_dead_letter_topic:
                        found.append("dead letter")
                    else:
                        found.append(Wire().transcript(record.value).event_id)
    finally:
        await consumer.stop()
    return found


async def _committed(s: DevSettings) -> int | None:
    consumer = make_consumer(s, group_id=s.kafka_group_id)
    await start_consumer(consumer)
    try:
        return await consumer.committed(TopicPartition(s.kafka_input_topic, 0))
    finally:
        await consumer.stop()


async def _freeze_and_thaw(s: DevSettings, clip: Path, tmp_path: Path, *, between_publish_and_commit: bool) -> None:
    extra = {"FAULT_PAUSE_BEFORE_COMMIT_S": "5"} if between_publish_and_commit else {}
    first = Member(s, tmp_path, "first", **extra)
    first.start()
    second: Member | None = None
    try:
        await eventually(
            "the first worker to own the partition", lambda: "partitions_assigned" in first.log_text(), 120
        )
        second = Member(s, tmp_path, "second", **extra)  # either may end up owning the partition
        second.start()
        # The second worker joins, and the group settles with one member idle (one partition).
        await eventually("the second worker to join", lambda: second.log_text().count("partitions_assigned") >= 1, 120)
        await eventually("one owner of the partition", lambda: _owns(first, s) != _owns(second, s), 60)
        owner, other = _owner(first, second, s)

        ref = new_reference(upload(s, clip), profile="whisper-1-fast")
        await publish_references(s, [ref])
        if between_publish_and_commit:
            await eventually(
                "the owner to publish", lambda: "fault_pause_before_commit" in owner.log_text(), 120, every_s=0.02
            )
        else:
            await eventually(
                "the owner to be transcribing",
                lambda: owner.metric("active_transcription_requests") == 1,
                120,
                every_s=0.02,
            )
        owner.signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        # Past the session timeout the group moves the partition to the other worker, which delivers the event.
        await eventually(
            "the other worker to settle the event",
            lambda: any(m in other.log_text() for m in ("event_transcribed", "event_duplicate_skipped")),
            120,
        )
        assert time.monotonic() - frozen_at >= SESSION_TIMEOUT_S - 1
        owner.signal(signal.SIGCONT)
        # The thawed worker finishes its inference or its pause, and learns its fate.
        expected = (
            "commit_failed"
            if between_publish_and_commit and s.processing_guarantee == "at_least_once"
            else "outcome_discarded"
        )
        with contextlib.suppress(AssertionError):  # the counts below say what went wrong, if anything did
            await eventually(f"the thawed worker to log {expected}", lambda: expected in owner.log_text(), 60)
        await asyncio.sleep(2)

        committed = await _outputs(s, "read_committed")
        uncommitted = await _outputs(s, "read_uncommitted")
        assert committed == [ref.event_id], committed
        assert expected in owner.log_text()
        if between_publish_and_commit and s.processing_guarantee == "exactly_once":
            # The thawed worker's transaction was aborted: only read_uncommitted readers see its copy.
            assert Counter(uncommitted) == {ref.event_id: 2}, uncommitted
            assert "event_transcribed" in other.log_text()
        elif between_publish_and_commit:
            # at_least_once: published before the freeze, so the new owner skipped it as done.
            assert uncommitted == [ref.event_id], uncommitted
            assert "event_duplicate_skipped" in other.log_text() and "event_transcribed" in owner.log_text()
        else:
            assert uncommitted == [ref.event_id], uncommitted
            assert "event_transcribed" in other.log_text()
            if s.processing_guarantee == "at_least_once":  # refused before it sends anything
                assert "event_transcribed" not in owner.log_text()
            assert owner.metric("fwv2_outcomes_discarded_total") == 1
        assert await _committed(s) == 1, "the input offset is committed past the event, once"
    finally:
        codes = [w.terminate() for w in (first, second) if w is not None]
    assert codes.count(0) >= 1


def _owns(member: Member, s: DevSettings) -> bool:
    """Whether the member's latest assignment includes the input partition."""
    lines = [line for line in member.log_text().splitlines() if "partitions_assigned" in line]
    return bool(lines) and f"{s.kafka_input_topic}-0" in lines[-1]


def _owner(a: Member, b: Member, s: DevSettings) -> tuple[Member, Member]:
    if _owns(a, s) and not _owns(b, s):
        return a, b
    if _owns(b, s) and not _owns(a, s):
        return b, a
    raise AssertionError("no single owner of the partition:\n" + a.log_text()[-2000:] + "\n" + b.log_text()[-2000:])


GUARANTEES = ["at_least_once", "exactly_once"]


@pytest.mark.parametrize("one_partition", GUARANTEES, indirect=True)
async def test_a_worker_frozen_during_inference_does_not_publish_after_thawing(
    one_partition: DevSettings, long_clip: Path, tmp_path: Path
) -> None:
    await _freeze_and_thaw(one_partition, long_clip, tmp_path, between_publish_and_commit=False)


@pytest.mark.parametrize("one_partition", GUARANTEES, indirect=True)
async def test_a_worker_frozen_between_publish_and_commit_leaves_one_transcript(
    one_partition: DevSettings, long_clip: Path, tmp_path: Path
) -> None:
    await _freeze_and_thaw(one_partition, long_clip, tmp_path, between_publish_and_commit=True)
