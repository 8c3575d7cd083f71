"""What the benchmarks share: statistics, RSS sampling, worker processes on fresh topics, output.

``bench.latency``, ``bench.soak``, ``bench.long``, ``bench.scale`` and ``bench.burst`` each run real ``fwv2 worker``
processes on the embedded stack, as ``fwv2 bench`` does, and print a markdown table and, with
``--json``, write their figures. Every report carries the machine's load average, because the
machines these run on are shared and their figures only mean something beside it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumer.contract.outputs import TranscriptEvent
from consumer.contract.results import Result
from consumer.plumbing.provision import ensure_topics
from devtools.settings import DevSettings
from devtools.stack import EmbeddedStack


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def transcript_of(result: Result, what: str) -> TranscriptEvent:
    """The result's transcript; a dead letter stops the benchmark with its message (``what`` names the event)."""
    if result.dead_letter is not None:
        raise RuntimeError(f"{what} dead-lettered: {result.dead_letter.message}")
    assert result.transcript is not None
    return result.transcript


# --- statistics -------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th quantile (0..1) with linear interpolation between ranks, as numpy's default."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} is outside 0..1")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs (0 for fewer than two distinct xs)."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    n = len(xs)
    if n < 2:
        return 0.0
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx


# --- memory -----------------------------------------------------------------------------


def _status_kb(pid: int | str, field_name: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size now (VmRSS), 0 once the process is gone."""
    return _status_kb(pid, "VmRSS") * 1024


def peak_rss_bytes(pid: int | str = "self") -> int:
    """The kernel's high-water mark of the resident set (VmHWM): catches peaks between samples."""
    return _status_kb(pid, "VmHWM") * 1024


@dataclass
class RssSampler:
    """Samples a process's RSS every ``interval_s`` on a thread: (seconds since start, bytes)."""

    pid: int
    interval_s: float = 0.5
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RssSampler:
        started = time.monotonic()

        def loop() -> None:
            while not self._stop.is_set():
                value = rss_bytes(self.pid)
                if value:
                    self.samples.append((time.monotonic() - started, value))
                self._stop.wait(self.interval_s)

        self._thread = threading.Thread(target=loop, name=f"rss-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    @property
    def max_bytes(self) -> int:
        return max((b for _, b in self.samples), default=0)


# --- the machine ------------------------------------------------------------------------


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def cpu_model() -> tuple[str, bool]:
    """The CPU's model name and whether it has AVX-512 (speed differs by kind: every figure names both)."""
    model, avx512 = platform.processor() or platform.machine(), False
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name") and model in ("", platform.machine(), platform.processor()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    avx512 = avx512 or " avx512f" in line
    except OSError:
        pass
    return model, avx512


def git_commit() -> str:
    """The checkout's short commit, ``-dirty`` when tracked files differ from it: a figure names the code it measured."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        # Tracked files only: the venv and scratch files beside a checkout do not change what ran.
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=root, capture_output=True).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def machine() -> dict[str, Any]:
    model, avx512 = cpu_model()
    return {
        "cores": os.cpu_count(),
        "cpu": f"{model}, AVX-512 {'yes' if avx512 else 'no'}",
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "commit": git_commit(),
    }


def load_line(before: tuple[float, float, float], after: tuple[float, float, float]) -> str:
    fmt = "/".join
    return (
        f"load average (1/5/15 min) before {fmt(f'{x:.2f}' for x in before)}, "
        f"after {fmt(f'{x:.2f}' for x in after)}; {os.cpu_count()} cores"
    )


# --- the stack, topics and worker processes --------------------------------------------


@contextmanager
def embedded_stack(settings: DevSettings) -> Iterator[EmbeddedStack]:
    """The embedded stack, started here only if it is not running (and then stopped here)."""
    stack = EmbeddedStack(settings, echo=say)
    started_here = not stack.is_running()
    stack.up()
    try:
        yield stack
    finally:
        if started_here:
            stack.down()


async def fresh_topics(settings: DevSettings, prefix: str, partitions: int | None = None) -> DevSettings:
    """DevSettings on new input, output and dead-letter topics and a new group, created now."""
    run_id = uuid.uuid4().hex[:8]
    s = settings.model_copy(
        update={
            "kafka_input_topic": f"{prefix}.{run_id}.in",
            "kafka_output_topic": f"{prefix}.{run_id}.out",
            "kafka_dead_letter_topic": f"{prefix}.{run_id}.dlq",
            "kafka_group_id": f"{prefix}-{run_id}",
        }
    )
    loop = asyncio.get_running_loop()
    # Only the worker's own three: the pools' topics (stage_topics) are the router's, shared, and not needed here.
    topics = [s.kafka_input_topic, s.kafka_output_topic, s.kafka_dead_letter_topic]
    await ensure_topics(
        s.kafka_bootstrap_servers, topics, partitions or s.kafka_topic_partitions, loop.time() + 30, say
    )
    return s


def start_worker(settings: DevSettings, threads: int, log_path: Path, **env: str) -> subprocess.Popen[bytes]:
    """A real ``fwv2 worker`` process on the settings' topics and group, result cache off by default.

    The benchmarks repeat clips, which the result cache would answer without inference.
    """
    full_env = {
        **os.environ,
        "KAFKA_INPUT_TOPIC": settings.kafka_input_topic,
        "KAFKA_OUTPUT_TOPIC": settings.kafka_output_topic,
        "KAFKA_DEAD_LETTER_TOPIC": settings.kafka_dead_letter_topic,
        "KAFKA_GROUP_ID": settings.kafka_group_id,
        "CPU_THREADS": str(threads),
        "METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        "RESULT_CACHE_ENABLED": "false",
        **env,
    }
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "consumer.cli", "worker"], env=full_env, stdout=log, stderr=log)


def stop_worker(worker: subprocess.Popen[bytes] | None) -> None:
    if worker is not None and worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


def log_events(log_path: Path, offset: int = 0) -> list[dict[str, Any]]:
    """The JSON log lines of a worker's log from byte ``offset`` on (other lines skipped)."""
    events = []
    with open(log_path, "rb") as log:
        log.seek(offset)
        for line in log:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "event" in record:
                events.append(record)
    return events


def rebalances(events: list[dict[str, Any]]) -> dict[str, int]:
    """How many times a worker's partitions were assigned and revoked, from its log lines."""
    return {
        "assigned": sum(e["event"] == "partitions_assigned" for e in events),
        "revoked": sum(e["event"] == "partitions_revoked" for e in events),
    }


# --- output -----------------------------------------------------------------------------


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        say(f"wrote {path}")


MB = 2**20
