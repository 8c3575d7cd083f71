"""Job state on the status topic: what a producer watching a long file sees (issue 23).

Real `fwv2 worker` processes and the real `fwv2 submit --wait` on the embedded stack's genuine Kafka and
MinIO. An hour of audio under exactly_once, watched through a terminal (a pty, so the progress bar is
drawn as a person sees it); and a four-minute file, under each guarantee, whose first worker is killed
mid-file: its states must show the redelivery, and exactly one transcript.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.long import make_long_file
from consumer.client import ResultReader, StatusReader, new_reference, publish_references, upload
from consumer.contract.status import JobState, StatusEvent
from consumer.plumbing.provision import ensure_topics
from devtools.settings import REPO_ROOT, DevSettings

pytestmark = pytest.mark.integration

PARTITIONS = 3


@pytest.fixture
async def status_settings(settings: DevSettings) -> DevSettings:
    """The test's topics, and a status topic of its own, read from its beginning."""
    s = settings.model_copy(update={"kafka_status_topic": f"{settings.kafka_input_topic}.status"})
    loop = asyncio.get_running_loop()
    await ensure_topics(s.kafka_bootstrap_servers, [s.kafka_status_topic], PARTITIONS, loop.time() + 30, lambda _: None)
    return s


def _env(s: DevSettings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
        "S3_ENDPOINT": s.s3_endpoint,
        "KAFKA_INPUT_TOPIC": s.kafka_input_topic,
        "KAFKA_OUTPUT_TOPIC": s.kafka_output_topic,
        "KAFKA_DEAD_LETTER_TOPIC": s.kafka_dead_letter_topic,
        "KAFKA_STATUS_TOPIC": s.kafka_status_topic,
        "KAFKA_GROUP_ID": s.kafka_group_id,
        "PROCESSING_GUARANTEE": s.processing_guarantee,
        "KAFKA_SESSION_TIMEOUT_MS": "6000",  # a killed worker's partitions move on after 6 s
        "STATUS_PROGRESS_INTERVAL_S": "1",
        "RESULT_CACHE_ENABLED": "false",
        "METRICS_PORT": "0",
        "CPU_THREADS": "2",
        **extra,
    }


class Worker:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "consumer.cli", "worker"], env=env, stdout=out, stderr=out
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


async def _states(s: DevSettings, event_id: str, until: JobState, timeout_s: float) -> list[StatusEvent]:
    """The event's states from the topic's beginning, up to the first ``until``."""
    found: list[StatusEvent] = []
    async with StatusReader(s, from_beginning=True) as reader:

        async def collect() -> None:
            async for event in reader.statuses():
                if event.event_id == event_id:
                    found.append(event)
                    if event.state is until:
                        return

        await asyncio.wait_for(collect(), timeout_s)
    return found


def _check_progress(states: list[StatusEvent], audio_s: float) -> None:
    progress = [e for e in states if e.state is JobState.PROGRESS]
    assert len(progress) >= 3, [e.state for e in states]
    shares = [e.progress for e in progress if e.step is not None and e.step.value == "transcribing"]
    assert shares == sorted(shares) and shares[-1] > shares[0], shares
    assert all(e.audio_s == pytest.approx(audio_s, abs=1.0) for e in progress)


async def test_an_hour_under_exactly_once_shows_a_moving_bar_and_its_states(
    status_settings: DevSettings, samples: dict[str, Path], workers: list[Worker], tmp_path: Path
) -> None:
    s = status_settings.model_copy(update={"processing_guarantee": "exactly_once"})
    hour = make_long_file(REPO_ROOT / ".stack" / "long", 3600, REPO_ROOT / ".stack" / "long" / "samples")
    workers.append(Worker(_env(s), tmp_path / "worker.log"))
    # A terminal for `fwv2 submit --wait`: tqdm draws its bar only where a person would see it.
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a terminal's 120 x 40
    submit = subprocess.Popen(
        [sys.executable, "-m", "consumer.cli", "submit", str(hour), "--wait", "--profile", "whisper-1-fast"]
        + ["--timeout", "900", "--format", "text"],
        env=_env(s),
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    screen = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    out, _ = await asyncio.to_thread(submit.communicate, timeout=960)
    reader.join(10)
    os.close(leader)
    terminal = screen.decode(errors="replace")
    assert submit.returncode == 0, terminal[-3000:]
    assert "long-3600s.mp3" in out.decode() and len(out.decode().split()) > 1000  # the transcript, on stdout
    # The bar moved: many distinct percentages on the way, then 100 %.
    shown = [int(p) for p in re.findall(r"long-3600s\.mp3:\s+(\d+)%", terminal)]
    moving = sorted({p for p in shown if 0 < p < 100})
    assert len(moving) >= 3 and shown[-1] == 100, shown
    assert "transcribing" in terminal and "done" in terminal
    event_id = re.search(r"\(event ([0-9a-f-]{36})\)", terminal)
    assert event_id is not None, terminal[:2000]

    states = await _states(s, event_id.group(1), JobState.COMPLETED, 60)
    assert states[0].state is JobState.ACCEPTED and states[-1].state is JobState.COMPLETED
    assert {e.run_id for e in states} == {states[0].run_id}  # one run, no redelivery
    _check_progress(states, 3600.0)
    done = states[-1].outcome
    assert done is not None and done.topic == s.kafka_output_topic and done.offset is not None
    async with ResultReader(s, from_beginning=True) as results:
        found = await results.wait_for([event_id.group(1)], 30)
    transcript = found[event_id.group(1)]
    assert (transcript.partition, transcript.offset) == (done.partition, done.offset)


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
async def test_a_worker_killed_mid_file_shows_the_redelivery_and_one_transcript(
    guarantee: str, status_settings: DevSettings, samples: dict[str, Path], workers: list[Worker], tmp_path: Path
) -> None:
    s = status_settings.model_copy(update={"processing_guarantee": guarantee})
    clip = make_long_file(tmp_path / "long", 240, tmp_path / "samples")
    workers.append(Worker(_env(s, CPU_THREADS="1"), tmp_path / "first.log"))
    ref = new_reference(upload(s, clip), profile="whisper-1-fast")
    async with StatusReader(s) as reader:
        await publish_references(s, [ref])

        async def first_progress() -> StatusEvent:
            async for event in reader.statuses():
                if event.event_id == ref.event_id and event.state is JobState.PROGRESS and event.progress > 0:
                    return event
            raise AssertionError("the status stream ended")

        seen = await asyncio.wait_for(first_progress(), 180)
    workers[0].stop(signal.SIGKILL)  # mid-file: the transcription had begun, no outcome yet
    killed_at = time.monotonic()
    workers.append(Worker(_env(s), tmp_path / "second.log"))

    states = await _states(s, ref.event_id, JobState.COMPLETED, 300)
    accepted = [e for e in states if e.state is JobState.ACCEPTED]
    assert len(accepted) == 2 and accepted[0].run_id == seen.run_id != accepted[1].run_id, states
    assert states[-1].state is JobState.COMPLETED and states[-1].run_id == accepted[1].run_id
    after = states[states.index(accepted[1]) :]
    _check_progress(after, 240.0)
    assert time.monotonic() - killed_at < 300
    async with ResultReader(s, from_beginning=True) as results:
        transcripts = [r async for r in results.results(idle_timeout_s=5) if r.event_id == ref.event_id]
    assert len(transcripts) == 1 and transcripts[0].transcript is not None
