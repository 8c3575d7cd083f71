"""Nothing lost, nothing doubled: workers killed, the broker restarted, the object store down.

Workers here are real `fwv2 worker` processes; Kafka and MinIO are the embedded stack's
genuine servers, stopped and started for real. Every scenario counts the outcomes
downstream: exactly one per event.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from consumer.client import ResultReader, new_reference, publish_references, upload
from consumer.contract.errors import StorageUnavailableError
from consumer.contract.inputs import ObjectRef
from consumer.contract.outputs import TranscriptEvent
from consumer.plumbing.kafka import make_producer
from consumer.plumbing.storage import Blob, BlobStore
from consumer.worker.loop import Worker
from devtools.settings import DevSettings
from devtools.stack import EmbeddedStack
from pipeline.stage import Pipeline

pytestmark = pytest.mark.integration

GUARANTEES = ["at_least_once", "exactly_once"]


class WorkerProcess:
    """One `fwv2 worker` process of the test's group, restartable."""

    def __init__(self, settings: DevSettings, log_dir: Path, name: str) -> None:
        self.env = {
            **os.environ,
            "KAFKA_INPUT_TOPIC": settings.kafka_input_topic,
            "KAFKA_OUTPUT_TOPIC": settings.kafka_output_topic,
            "KAFKA_DEAD_LETTER_TOPIC": settings.kafka_dead_letter_topic,
            "KAFKA_GROUP_ID": settings.kafka_group_id,
            "PROCESSING_GUARANTEE": settings.processing_guarantee,
            # The broker's minimum: a killed worker's partitions move on after 6 s.
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "CPU_THREADS": "1",
            "METRICS_PORT": "0",
            # The events repeat four clips: the result cache would answer most in milliseconds, and
            # the kills and outages would meet no inference in flight.
            "RESULT_CACHE_ENABLED": "false",
        }
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "consumer.cli", "worker"], env=self.env, stdout=log, stderr=log
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            # A worker that does not drain in time must not outlive the test (it would keep a
            # group member and the machine's cores); the test fails on the exit code instead.
            self.proc.kill()
            self.proc.wait(10)
            return -9

    def transcribing(self) -> bool:
        return self.log.exists() and self.log.read_text().count("event_transcribed") > 0


async def _submit(settings: DevSettings, samples: dict[str, Path], count: int) -> list[str]:
    objects = [upload(settings, samples[name]) for name in sorted(samples)]
    refs = [new_reference(objects[i % len(objects)], profile="whisper-1-fast") for i in range(count)]
    await publish_references(settings, refs)
    return [r.event_id for r in refs]


async def _outcomes(settings: DevSettings, expected: int, timeout_s: float) -> Counter[str]:
    """Read every outcome from the beginning, read_committed, until ``expected`` distinct events have one."""
    counts: Counter[str] = Counter()
    async with ResultReader(settings, from_beginning=True) as reader:

        async def collect() -> None:
            async for result in reader.results():
                assert result.kind == "transcript", result.dead_letter
                counts[result.event_id or "?"] += 1
                if len(counts) >= expected:
                    return

        await asyncio.wait_for(collect(), timeout_s)
        # Anything late (a duplicate) would arrive within a few seconds.
        async for result in reader.results(idle_timeout_s=5):
            counts[result.event_id or "?"] += 1
    return counts


@pytest.fixture
def guarantee_settings(settings: DevSettings, request: pytest.FixtureRequest) -> DevSettings:
    return settings.model_copy(update={"processing_guarantee": request.param})


@pytest.mark.parametrize("guarantee_settings", GUARANTEES, indirect=True)
async def test_sigkill_workers_mid_transcription(
    guarantee_settings: DevSettings, samples: dict[str, Path], tmp_path: Path
) -> None:
    s = guarantee_settings
    workers = [WorkerProcess(s, tmp_path, f"w{i}") for i in range(2)]
    for w in workers:
        w.start()
    event_ids = await _submit(s, samples, 50)
    kills = 0
    rng = random.Random(7)
    try:
        # Three kills, each of a worker that has been transcribing, then a restart.
        for _ in range(3):
            await asyncio.sleep(rng.uniform(3, 6))
            victim = rng.choice([w for w in workers if w.transcribing()] or workers)
            victim.kill()
            kills += 1
            await asyncio.sleep(1)
            victim.start()
        counts = await _outcomes(s, len(event_ids), timeout_s=400)
    finally:
        codes = [w.terminate() for w in workers]
    assert set(counts) == set(event_ids), "an event was lost"
    duplicates = {e: n for e, n in counts.items() if n > 1}
    assert duplicates == {}, f"{len(duplicates)} events published more than once after {kills} kills"
    assert codes == [0, 0]  # SIGTERM drains and exits 0


async def _run_through_outage(
    s: DevSettings,
    stack: EmbeddedStack,
    samples: dict[str, Path],
    tmp_path: Path,
    *,
    events: int,
    service: str,
    after_s: float,
    down_s: float,
) -> WorkerProcess:
    """One worker, ``events`` events, and ``service`` stopped for ``down_s`` seconds mid-run."""
    worker = WorkerProcess(s, tmp_path, "w")
    worker.start()
    event_ids = await _submit(s, samples, events)
    try:
        # The outage must meet a running worker: on two busy cores its start (imports, model, warm-up)
        # can take longer than ``after_s``, and a worker that finds no broker at start exits by design.
        deadline = time.monotonic() + 180
        while "worker_started" not in (worker.log.read_text() if worker.log.exists() else ""):
            assert time.monotonic() < deadline and worker.proc is not None and worker.proc.poll() is None, (
                worker.log.read_text()[-3000:] if worker.log.exists() else "no worker log"
            )
            await asyncio.sleep(0.2)
        await asyncio.sleep(after_s)
        await asyncio.to_thread(stack.stop_service, service)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(stack.up)
        counts = await _outcomes(s, len(event_ids), timeout_s=400)
    finally:
        code = worker.terminate()
    assert set(counts) == set(event_ids), "an event was lost"
    assert max(counts.values()) == 1, "an event was published twice"
    assert code == 0
    return worker


@pytest.mark.parametrize("guarantee_settings", GUARANTEES, indirect=True)
async def test_broker_restart_mid_run(
    guarantee_settings: DevSettings, stack: EmbeddedStack, samples: dict[str, Path], tmp_path: Path
) -> None:
    # The broker is away for 5 s; its log on disk stays.
    await _run_through_outage(
        guarantee_settings, stack, samples, tmp_path, events=24, service="kafka", after_s=5, down_s=5
    )


@pytest.mark.parametrize("guarantee_settings", GUARANTEES, indirect=True)
async def test_object_store_down_for_30_seconds(
    guarantee_settings: DevSettings, stack: EmbeddedStack, samples: dict[str, Path], tmp_path: Path
) -> None:
    worker = await _run_through_outage(
        guarantee_settings, stack, samples, tmp_path, events=16, service="minio", after_s=3, down_s=30
    )
    assert "retry_scheduled" in worker.log.read_text()  # it did meet the outage, and rode it out


class FlakyStore(BlobStore):
    """The real MinIO store, except that one object answers as a 503 would, twice."""

    def __init__(self, settings: DevSettings, flaky_key: str) -> None:
        super().__init__(settings)
        self.flaky_key = flaky_key
        self.failures = 0

    def fetch(self, ref: ObjectRef) -> Blob:
        if ref.key == self.flaky_key and self.failures < 2:
            self.failures += 1
            raise StorageUnavailableError(f"object store answered 503 for {ref.key}")
        return super().fetch(ref)


async def test_a_retrying_event_does_not_hold_up_other_partitions(
    settings: DevSettings, pipeline: Pipeline, samples: dict[str, Path], reader: ResultReader
) -> None:
    s = settings.model_copy(update={"retry_backoff_s": 3.0})
    flaky = new_reference(upload(s, samples["weather"]))
    others = [new_reference(upload(s, samples[n])) for n in ("train", "kitchen", "library")]
    store = FlakyStore(s, flaky.object.key)
    worker = Worker(s, pipeline, store=store)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    producer = make_producer(s)
    await producer.start()
    try:
        # The flaky event alone on partition 0; the others on partitions 1 and 2.
        await producer.send_and_wait(s.kafka_input_topic, flaky.to_json(), partition=0)
        await asyncio.sleep(1.5)
        started = time.monotonic()
        for i, ref in enumerate(others):
            await producer.send_and_wait(s.kafka_input_topic, ref.to_json(), partition=1 + i % 2)
        arrivals: list[tuple[str, float, TranscriptEvent | None]] = []

        async def collect() -> None:
            async for r in reader.results():
                arrivals.append((r.event_id or "", time.monotonic() - started, r.transcript))
                if len(arrivals) == 4:
                    return

        await asyncio.wait_for(collect(), 120)
    finally:
        await producer.stop()
        stop.set()
        await task
    order = [a[0] for a in arrivals]
    others_ids = {o.event_id for o in others}
    # The flaky event waits out two backoffs (1.5-3 s, then 3-6 s) with its partition paused;
    # the others, on other partitions, all pass it meanwhile.
    assert store.failures == 2
    assert order[-1] == flaky.event_id and set(order[:-1]) == others_ids
    flaky_record = next(a[2] for a in arrivals if a[0] == flaky.event_id)
    assert flaky_record is not None and flaky_record.text
