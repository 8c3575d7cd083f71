"""The result cache's benchmark: a duplicate served from the cache against a miss, through the whole stage.

    .venv/bin/python -m bench.cache [--profile P]... [--hits N] [--files F...]

A real ``fwv2 worker`` process on the embedded stack, with the result cache on (memory, and the
S3 tier under a fresh prefix). For each clip and profile, one event at a time, each timed from
the moment its AudioReference is produced to the moment its transcript is read back:

- **miss**: the first event for a fresh object (stat, download, hash, decode, inference, publish, keep);
- **memory hit** (by object key): the same object under new event_ids, ``--hits`` times;
- **content hit**: a copy of the bytes under another key with another ETag (a one-part multipart upload);
- **S3 hit**: after the worker is replaced by a fresh one (empty memory), the same object again.

It prints per-event medians and the ratio hit / miss, end to end and in the worker's own
``timings.total_s``. The goal: a hit costs under 2 % of a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minio.datatypes import Part

from bench.tools import fresh_topics, transcript_of
from consumer.client import ResultReader, new_reference, upload
from consumer.contract.inputs import AudioReference, ObjectRef
from consumer.contract.outputs import TranscriptEvent
from consumer.plumbing.kafka import make_producer
from consumer.plumbing.storage import make_client
from devtools.samples import make_samples
from devtools.settings import DevSettings
from devtools.stack import EmbeddedStack

DEFAULT_PROFILES = ("whisper-1-fast", "whisper-1")
KINDS = ("miss", "memory hit (object)", "memory hit (content)", "s3 hit (object)")


@dataclass
class Timings:
    latency_s: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    worker_s: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    audio_s: list[float] = field(default_factory=list)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def upload_copy(settings: DevSettings, path: Path, key: str) -> ObjectRef:
    """The same bytes under another key, as a one-part multipart upload: another ETag, same content."""
    client = make_client(settings)
    upload_id = client._create_multipart_upload(settings.s3_bucket, key, {"Content-Type": "application/octet-stream"})  # noqa: SLF001
    etag = client._upload_part(settings.s3_bucket, key, path.read_bytes(), None, upload_id, 1)  # noqa: SLF001
    done = client._complete_multipart_upload(settings.s3_bucket, key, upload_id, [Part(1, etag)])  # noqa: SLF001
    return ObjectRef(bucket=settings.s3_bucket, key=key, etag=done.etag)


class Stage:
    """A worker process, a producer and a reader on fresh topics."""

    def __init__(self, settings: DevSettings, threads: int, log_path: Path) -> None:
        self.settings = settings
        self.threads = threads
        self.log_path = log_path
        self.worker: subprocess.Popen[bytes] | None = None

    def start_worker(self) -> None:
        s = self.settings
        env = {
            **os.environ,
            "KAFKA_INPUT_TOPIC": s.kafka_input_topic,
            "KAFKA_OUTPUT_TOPIC": s.kafka_output_topic,
            "KAFKA_DEAD_LETTER_TOPIC": s.kafka_dead_letter_topic,
            "KAFKA_GROUP_ID": s.kafka_group_id,
            "CPU_THREADS": str(self.threads),
            "METRICS_PORT": "0",
            "LOG_LEVEL": "WARNING",
            "RESULT_CACHE_ENABLED": "true",
            "RESULT_CACHE_PERSISTENT": "s3",
            "RESULT_CACHE_PREFIX": s.result_cache_prefix,
        }
        with open(self.log_path, "ab") as log:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "consumer.cli", "worker"], env=env, stdout=log, stderr=log
            )

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.terminate()
            self.worker.wait(60)
            self.worker = None


async def timed(
    producer: Any, reader: ResultReader, settings: DevSettings, ref: AudioReference
) -> tuple[float, TranscriptEvent]:
    """Produce one event and wait for its transcript: (seconds end to end, the transcript)."""
    started = time.perf_counter()
    await producer.send_and_wait(settings.kafka_input_topic, value=ref.to_json(), key=ref.event_id.encode())
    result = (await reader.wait_for([ref.event_id], timeout_s=600))[ref.event_id]
    elapsed = time.perf_counter() - started
    return elapsed, transcript_of(result, "bench event")


async def run(
    settings: DevSettings, files: list[Path], profiles: list[str], hits: int, threads: int, log_path: Path
) -> Timings:
    s = await fresh_topics(settings, "bench")
    run_id = s.kafka_group_id.removeprefix("bench-")
    s = s.model_copy(update={"result_cache_prefix": f"s3://fwv2-cache/bench-{run_id}/"})
    objects = [upload(s, f, key=f"bench-cache/{run_id}/{i:04d}-{f.name}") for i, f in enumerate(files)]
    copies = [upload_copy(s, f, key=f"bench-cache/{run_id}/{i:04d}-copy-{f.name}") for i, f in enumerate(files)]
    out = Timings()
    stage = Stage(s, threads, log_path)
    producer = make_producer(s, "bench")
    await producer.start()
    try:
        async with ResultReader(s) as reader:

            async def measure(kind: str, ref: AudioReference, expect: tuple[str, str] | None) -> TranscriptEvent:
                elapsed, record = await timed(producer, reader, s, ref)
                got = (record.cache.tier.value, record.cache.matched_by.value) if record.cache else None
                if got != expect:
                    raise RuntimeError(f"{kind}: expected cache {expect}, got {got}")
                out.latency_s[kind].append(elapsed)
                out.worker_s[kind].append(record.timings.total_s)
                return record

            stage.start_worker()
            # Warm-up: a profile no measured event uses, so it primes nothing measured.
            await timed(producer, reader, s, new_reference(objects[0], profile="whisper-1-quality"))
            for profile in profiles:
                for obj, copy in zip(objects, copies, strict=True):
                    record = await measure("miss", new_reference(obj, profile=profile), None)
                    out.audio_s.append(record.duration_s)
                    for _ in range(hits):
                        await measure("memory hit (object)", new_reference(obj, profile=profile), ("memory", "object"))
                    await measure("memory hit (content)", new_reference(copy, profile=profile), ("memory", "content"))
                _say(f"[{profile}] misses and memory hits done")
            stage.stop_worker()
            stage.start_worker()  # a fresh process: empty memory, the same S3 prefix
            await timed(producer, reader, s, new_reference(objects[0], profile="whisper-1-quality"))  # joined
            for profile in profiles:
                for obj in objects:
                    await measure("s3 hit (object)", new_reference(obj, profile=profile), ("s3", "object"))
            _say("s3 hits done")
    finally:
        stage.stop_worker()
        await producer.stop()
    return out


def report(t: Timings, files: list[Path], profiles: list[str], hits: int, threads: int) -> str:
    miss_e2e = statistics.median(t.latency_s["miss"])
    miss_worker = statistics.median(t.worker_s["miss"])
    rows = []
    for kind in KINDS:
        e2e, worker = statistics.median(t.latency_s[kind]), statistics.median(t.worker_s[kind])
        rows.append(
            f"| {kind} | {len(t.latency_s[kind])} | {e2e * 1000:.1f} | {worker * 1000:.1f} "
            f"| {e2e / miss_e2e:.2%} | {worker / miss_worker:.2%} |"
        )
    cpu = platform.processor() or platform.machine()
    return "\n".join(
        [
            f"Clips: {len(files)} ({statistics.mean(t.audio_s):.1f} s of audio on average), profiles "
            f"{', '.join(profiles)}, {hits} memory hits per clip and profile; tiny.en int8, {threads} threads; "
            f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}.",
            "",
            "| event | n | end to end, median ms | worker total_s, median ms | end to end / miss | worker / miss |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cache", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", action="append", help="profiles (default whisper-1-fast and whisper-1)")
    parser.add_argument("--hits", type=int, default=5, help="memory hits per clip and profile")
    parser.add_argument("--files", nargs="*", help="audio files (default: the sample clips)")
    args = parser.parse_args(argv)
    settings = DevSettings()
    stack = EmbeddedStack(settings, echo=_say)
    started_here = not stack.is_running()
    stack.up()
    try:
        files = (
            [Path(f) for f in args.files] if args.files else list(make_samples(settings.stack_dir / "samples").values())
        )
        threads = settings.cpu_threads or os.cpu_count() or 1
        profiles = args.profile or list(DEFAULT_PROFILES)
        log_path = settings.stack_dir / "logs" / "bench-cache-worker.log"
        timings = asyncio.run(run(settings, files, profiles, args.hits, threads, log_path))
    finally:
        if started_here:
            stack.down()
    print(report(timings, files, profiles, args.hits, threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
