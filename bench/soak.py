"""Memory over many events: does one worker's RSS stay flat?

    .venv/bin/python -m bench.soak [--events 500] [--every 50] [--profile whisper-1-fast] [--json F]

A real ``fwv2 worker`` process with the result cache off (every event is a fresh decode and
inference) takes the sample clips as events, ``--every`` at a time; after each batch has been read
back from the output topic, the worker's RSS (VmRSS) is read. The first reading is taken after one
warm-up event, when the model is loaded and has run. Reported: first, last and largest reading, the
kernel's high-water mark, and the least-squares slope in MB per 100 events, over the whole run and
over its second half (after the allocator has settled). A leak shows as a steady slope; noise as a
slope near zero.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import time
from pathlib import Path
from typing import Any

from bench.tools import (
    MB,
    RssSampler,
    embedded_stack,
    fresh_topics,
    load_average,
    load_line,
    machine,
    markdown_table,
    peak_rss_bytes,
    rss_bytes,
    say,
    slope,
    start_worker,
    stop_worker,
    transcript_of,
    write_json,
)
from consumer.client import ResultReader, new_reference, upload
from consumer.plumbing.kafka import make_producer
from devtools.samples import make_samples
from devtools.settings import DevSettings


async def run(
    settings: DevSettings, clips: list[Path], events: int, every: int, profile: str, threads: int, log_path: Path
) -> dict[str, Any]:
    s = await fresh_topics(settings, "bench-soak")
    objects = [upload(s, c, key=f"bench-soak/{s.kafka_group_id}/{c.name}") for c in clips]
    worker = start_worker(s, threads, log_path)
    sampler = RssSampler(worker.pid, interval_s=1.0).start()
    producer = make_producer(s, "bench")
    await producer.start()
    readings: list[tuple[int, int]] = []
    audio_s = 0.0
    try:
        async with ResultReader(s) as reader:
            warm = new_reference(objects[0], profile=profile)
            await producer.send_and_wait(s.kafka_input_topic, value=warm.to_json(), key=warm.event_id.encode())
            await reader.wait_for([warm.event_id], timeout_s=300)
            readings.append((0, rss_bytes(worker.pid)))
            cycle = itertools.cycle(objects)
            started = time.perf_counter()
            done = 0
            while done < events:
                refs = [new_reference(next(cycle), profile=profile) for _ in range(min(every, events - done))]
                sends = [
                    await producer.send(s.kafka_input_topic, value=r.to_json(), key=r.event_id.encode()) for r in refs
                ]
                await asyncio.gather(*sends)
                results = await reader.wait_for([r.event_id for r in refs], timeout_s=1800)
                audio_s += sum(transcript_of(r, "soak event").duration_s for r in results.values())
                done += len(refs)
                readings.append((done, rss_bytes(worker.pid)))
                say(f"  {done}/{events} events: RSS {readings[-1][1] / MB:.1f} MB")
            wall = time.perf_counter() - started
            peak = peak_rss_bytes(worker.pid)
    finally:
        sampler.stop()
        await producer.stop()
        stop_worker(worker)
    return {
        "readings": readings,
        "peak_rss_bytes": peak,
        "sampled_max_rss_bytes": sampler.max_bytes,
        "wall_s": wall,
        "audio_s": audio_s,
    }


def summarize(readings: list[tuple[int, int]]) -> dict[str, float]:
    xs = [float(n) for n, _ in readings]
    ys = [b / MB for _, b in readings]
    half = len(readings) // 2
    return {
        "first_mb": ys[0],
        "last_mb": ys[-1],
        "max_mb": max(ys),
        "growth_mb": ys[-1] - ys[0],
        "slope_mb_per_100": slope(xs, ys) * 100,
        "slope_second_half_mb_per_100": slope(xs[half:], ys[half:]) * 100,
    }


def report(raw: dict[str, Any], summary: dict[str, float], profile: str, threads: int, load: str) -> str:
    rows = [[n, f"{b / MB:.1f}"] for n, b in raw["readings"]]
    events = raw["readings"][-1][0]
    return "\n".join(
        [
            f"{events} events ({raw['audio_s']:.0f} s of audio, {raw['wall_s']:.0f} s wall), profile {profile}, tiny.en int8, "
            f"{threads} threads, result cache off; {load}.",
            "",
            markdown_table(["events done", "worker RSS MB"], rows),
            "",
            f"First {summary['first_mb']:.1f} MB, last {summary['last_mb']:.1f} MB, largest reading {summary['max_mb']:.1f} MB, "
            f"high-water mark {raw['peak_rss_bytes'] / MB:.1f} MB; growth {summary['growth_mb']:+.1f} MB; slope "
            f"**{summary['slope_mb_per_100']:+.2f} MB per 100 events** (second half: "
            f"{summary['slope_second_half_mb_per_100']:+.2f}).",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--every", type=int, default=50, help="events between RSS readings")
    parser.add_argument("--profile", default="whisper-1-fast")
    parser.add_argument(
        "--threads", type=int, default=0, help="inference threads (default CPU_THREADS, else all cores)"
    )
    parser.add_argument("--files", nargs="*", help="clips (default: the sample clips)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    settings = DevSettings()
    threads = args.threads or settings.cpu_threads or os.cpu_count() or 1
    with embedded_stack(settings):
        clips = (
            [Path(f) for f in args.files] if args.files else list(make_samples(settings.stack_dir / "samples").values())
        )
        before = load_average()
        raw = asyncio.run(
            run(
                settings,
                clips,
                args.events,
                args.every,
                args.profile,
                threads,
                settings.stack_dir / "logs" / "bench-soak-worker.log",
            )
        )
        after = load_average()
    summary = summarize(raw["readings"])
    print(report(raw, summary, args.profile, threads, load_line(before, after)))
    write_json(
        args.json,
        {
            "benchmark": "soak",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "profile": args.profile,
            "threads": threads,
            "load_before": before,
            "load_after": after,
            "machine": machine(),
            **summary,
            **raw,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
