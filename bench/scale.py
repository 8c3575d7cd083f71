"""Scale-out: one worker against two in one consumer group, on the same cores and the same events.

    .venv/bin/python -m bench.scale [--events 40] [--partitions 4] [--rounds 2] [--json F]

Each configuration gets a fresh topic of ``--partitions`` partitions and a fresh group; the cores
are split between its workers (``--cores``, default all of this machine's):

- **1 worker**: one ``fwv2 worker`` process with CPU_THREADS = cores;
- **2 workers**: two processes in one group, CPU_THREADS = cores / 2 each.

Once every worker logs its share of the partitions, one warm-up event per partition is sent, then
``--events`` clips (the sample clips in turn, the result cache off), spread evenly over the
partitions; the clock runs from the first produced to the last transcript read back. Throughput is
audio seconds per wall second; the ratio is two workers over one. Rounds alternate which goes first.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.tools import (
    embedded_stack,
    fresh_topics,
    load_average,
    load_line,
    log_events,
    machine,
    markdown_table,
    say,
    start_worker,
    stop_worker,
    transcript_of,
    write_json,
)
from consumer.client import ResultReader, new_reference, upload
from consumer.contract.inputs import ObjectRef
from consumer.plumbing.kafka import make_producer
from devtools.samples import make_samples
from devtools.settings import DevSettings


def current_assignment(log_path: Path) -> set[str]:
    """The partitions a worker's log says it holds now (its last assignment, unless revoked since)."""
    held: set[str] = set()
    for event in log_events(log_path):
        if event["event"] == "partitions_assigned":
            held = set(event.get("partitions", []))
        elif event["event"] == "partitions_revoked":
            held -= set(event.get("partitions", []))
    return held


async def wait_for_balance(logs: list[Path], topic: str, partitions: int, timeout_s: float = 180) -> list[set[str]]:
    """Until the workers hold every partition between them, each its even share, for a second."""
    want = {f"{topic}-{p}" for p in range(partitions)}
    deadline = time.monotonic() + timeout_s
    stable_since: float | None = None
    while time.monotonic() < deadline:
        held = [current_assignment(p) for p in logs]
        balanced = set().union(*held) == want and all(len(h) == partitions // len(logs) for h in held)
        if balanced:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= 1.0:
                return held
        else:
            stable_since = None
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the workers did not share {topic}'s {partitions} partitions within {timeout_s:.0f} s")


async def run_config(
    settings: DevSettings,
    objects_for: Any,
    workers: int,
    threads: int,
    events: int,
    partitions: int,
    profile: str,
    log_dir: Path,
) -> dict[str, Any]:
    s = await fresh_topics(settings, f"bench-scale{workers}", partitions)
    objects: list[ObjectRef] = objects_for(s)
    logs = [log_dir / f"bench-scale-{workers}w-{i}.log" for i in range(workers)]
    procs = []
    for log in logs:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(b"")
        procs.append(start_worker(s, threads, log, LOG_LEVEL="INFO"))
    producer = make_producer(s, "bench")
    await producer.start()
    try:
        async with ResultReader(s) as reader:
            held = await wait_for_balance(logs, s.kafka_input_topic, partitions)

            async def send(refs: list[Any]) -> None:
                futures = [
                    await producer.send(
                        s.kafka_input_topic, value=r.to_json(), key=r.event_id.encode(), partition=i % partitions
                    )
                    for i, r in enumerate(refs)
                ]
                await asyncio.gather(*futures)

            warm = [new_reference(objects[0], profile=profile) for _ in range(partitions)]
            await send(warm)
            await reader.wait_for([r.event_id for r in warm], timeout_s=300)
            cycle = itertools.cycle(objects)
            refs = [new_reference(next(cycle), profile=profile) for _ in range(events)]
            started = time.perf_counter()
            await send(refs)
            results = await reader.wait_for([r.event_id for r in refs], timeout_s=1800)
            wall = time.perf_counter() - started
    finally:
        await producer.stop()
        for proc in procs:
            stop_worker(proc)
    transcripts = [transcript_of(r, "scale event") for r in results.values()]
    per_worker = [sum(e["event"] == "event_transcribed" for e in log_events(log)) for log in logs]
    audio_s = sum(t.duration_s for t in transcripts)
    return {
        "workers": workers,
        "threads_each": threads,
        "events": events,
        "audio_s": audio_s,
        "wall_s": wall,
        "x_rt": audio_s / wall,
        "events_per_s": events / wall,
        "partitions_held": [sorted(h) for h in held],
        "transcribed_per_worker": per_worker,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cores", type=int, default=0, help="cores to split (default all of this machine's)")
    parser.add_argument("--profile", default="whisper-1-fast")
    parser.add_argument("--files", nargs="*", help="clips (default: the sample clips)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    settings = DevSettings()
    cores = args.cores or os.cpu_count() or 2
    if cores < 2:
        parser.error("two workers need at least two cores to split")
    configs = ((1, cores), (2, cores // 2))
    runs: list[dict[str, Any]] = []
    with embedded_stack(settings):
        clips = (
            [Path(f) for f in args.files] if args.files else list(make_samples(settings.stack_dir / "samples").values())
        )
        uploaded: dict[str, list[ObjectRef]] = {}

        def objects_for(s: DevSettings) -> list[ObjectRef]:
            if "objects" not in uploaded:  # the same objects for every configuration
                uploaded["objects"] = [upload(s, c, key=f"bench-scale/{s.kafka_group_id}/{c.name}") for c in clips]
            return uploaded["objects"]

        before = load_average()
        for n in range(1, args.rounds + 1):
            for workers, threads in configs if n % 2 else configs[::-1]:
                say(f"[round {n}/{args.rounds}] {workers} worker(s) x {threads} thread(s)...")
                run = asyncio.run(
                    run_config(
                        settings,
                        objects_for,
                        workers,
                        threads,
                        args.events,
                        args.partitions,
                        args.profile,
                        settings.stack_dir / "logs",
                    )
                )
                run["round"] = n
                runs.append(run)
                say(
                    f"    {run['x_rt']:.1f}x real time, {run['events_per_s']:.2f} events/s, per worker {run['transcribed_per_worker']}"
                )
        after = load_average()
    ratios = []
    for n in range(1, args.rounds + 1):
        one = next(r for r in runs if r["round"] == n and r["workers"] == 1)
        two = next(r for r in runs if r["round"] == n and r["workers"] == 2)
        ratios.append(two["x_rt"] / one["x_rt"])
    rows = [
        [
            r["round"],
            f"{r['workers']} x {r['threads_each']}",
            r["events"],
            f"{r['audio_s']:.0f}",
            f"{r['wall_s']:.2f}",
            f"{r['x_rt']:.1f}",
            f"{r['events_per_s']:.2f}",
            " / ".join(map(str, r["transcribed_per_worker"])),
        ]
        for r in runs
    ]
    print(
        "\n".join(
            [
                f"{args.events} events over {args.partitions} partitions, profile {args.profile}, tiny.en int8, result cache off; "
                f"{load_line(before, after)}.",
                "",
                markdown_table(
                    [
                        "round",
                        "workers x threads",
                        "events",
                        "audio s",
                        "wall s",
                        "x RT",
                        "events/s",
                        "events per worker",
                    ],
                    rows,
                ),
                "",
                "Two workers / one worker, per round: "
                + ", ".join(f"{r:.2f}" for r in ratios)
                + f"; median **{statistics.median(ratios):.2f}**.",
            ]
        )
    )
    write_json(
        args.json,
        {
            "benchmark": "scale",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "profile": args.profile,
            "partitions": args.partitions,
            "load_before": before,
            "load_after": after,
            "machine": machine(),
            "runs": runs,
            "ratios": ratios,
            "median_ratio": statistics.median(ratios),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
