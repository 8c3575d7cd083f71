"""A burst of events at once to two workers, per guarantee: throughput, fencing's cost, lag, RSS.

    .venv/bin/python -m bench.burst [--events 1000] [--workers 2] [--partitions 4] [--rounds 1] [--json F] [--plot DIR]

For each round and each guarantee (at_least_once, then exactly_once): fresh topics, ``--workers``
real ``fwv2 worker`` processes in one group with the result cache on, a warm-up event per sample clip
(so the cache holds them: the burst then loads Kafka and S3, not inference), then ``--events``
events produced at once. ``--no-cache`` turns the cache off, so every event runs inference: the cost
of a transaction per event beside the work it guards. Reported per guarantee:

- events per second from the first send to the last outcome read back (read_committed), and every
  event's outcome count (one each, or the run fails);
- the group's lag at the end (committed offsets against the end of the input topic);
- each worker's RSS before and after the burst and its largest reading during it;
- start-up: seconds from a worker's ``worker_started`` to its first ``partitions_assigned`` (group join,
  then ownership: one transactional producer per partition under exactly_once, then the dedupe read);
- rebalance: seconds from the second worker's ``worker_started`` to the moment both hold their
  partitions again, and the ownership step's own seconds from the log;
- producers per worker: 1 under at_least_once; one per assigned partition under exactly_once.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from bench.tools import (
    MB,
    RssSampler,
    embedded_stack,
    fresh_topics,
    load_average,
    load_line,
    log_events,
    machine,
    markdown_table,
    rss_bytes,
    say,
    start_worker,
    stop_worker,
    write_json,
)
from consumer.client import ResultReader, new_reference, upload
from consumer.plumbing.kafka import make_consumer, make_producer, start_consumer
from devtools.samples import make_samples
from devtools.settings import DevSettings

GUARANTEES = ("at_least_once", "exactly_once")


def _ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def _first(events: list[dict[str, Any]], name: str, after: float = 0.0) -> dict[str, Any] | None:
    return next((e for e in events if e["event"] == name and _ts(e) >= after), None)


async def _wait_log(path: Path, name: str, timeout_s: float, after: float = 0.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and (found := _first(log_events(path), name, after)) is not None:
            return found
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no {name} in {path} within {timeout_s} s")


async def _lag(s: DevSettings, partitions: int) -> int:
    consumer = make_consumer(s, group_id=s.kafka_group_id)
    await start_consumer(consumer)
    try:
        tps = [TopicPartition(s.kafka_input_topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        lag = 0
        for tp in tps:
            lag += ends[tp] - ((await consumer.committed(tp)) or 0)
        return lag
    finally:
        await consumer.stop()


async def run_guarantee(
    settings: DevSettings,
    guarantee: str,
    clips: list[Path],
    events: int,
    workers: int,
    partitions: int,
    log_dir: Path,
    cache: bool = True,
) -> dict[str, Any]:
    s = await fresh_topics(settings.model_copy(update={"processing_guarantee": guarantee}), "bench-burst", partitions)
    objects = [upload(s, c, key=f"bench-burst/{s.kafka_group_id}/{c.name}") for c in clips]
    env = {"PROCESSING_GUARANTEE": guarantee, "RESULT_CACHE_ENABLED": str(cache).lower(), "LOG_LEVEL": "INFO"}
    logs = [log_dir / f"{guarantee}-{s.kafka_group_id}-w{i}.log" for i in range(workers)]
    procs: list[subprocess.Popen[bytes]] = []
    samplers: list[RssSampler] = []
    producer = make_producer(s, "bench")
    await producer.start()
    try:
        # One worker first (start-up alone), then the others join (a rebalance of a working group).
        procs.append(start_worker(s, 1, logs[0], **env))
        started = await _wait_log(logs[0], "worker_started", 300)
        assigned = await _wait_log(logs[0], "partitions_assigned", 120, _ts(started))
        startup_s = _ts(assigned) - _ts(started)
        joins = []
        for n in range(1, workers):
            procs.append(start_worker(s, 1, logs[n], **env))
            joined = await _wait_log(logs[n], "worker_started", 300)
            settled = [await _wait_log(log, "partitions_assigned", 120, _ts(joined)) for log in logs[: n + 1]]
            joins.append(
                {
                    "rebalance_s": round(max(_ts(e) for e in settled) - _ts(joined), 3),
                    "ownership_s": max(float(e.get("ownership_s", 0)) for e in settled),
                    "warm_s": max(float(e.get("warm_s", 0)) for e in settled),
                    "assignment": [len(e["partitions"]) for e in settled],
                }
            )
        async with ResultReader(s) as reader:
            warm = [new_reference(o, profile="whisper-1-fast") for o in objects]
            for ref in warm:
                await producer.send_and_wait(s.kafka_input_topic, value=ref.to_json(), key=ref.event_id.encode())
            await reader.wait_for([r.event_id for r in warm], timeout_s=300)
            samplers = [RssSampler(p.pid, interval_s=0.5).start() for p in procs]
            rss_before = [rss_bytes(p.pid) for p in procs]
            refs = [new_reference(objects[i % len(objects)], profile="whisper-1-fast") for i in range(events)]
            t0 = time.perf_counter()
            sent = [await producer.send(s.kafka_input_topic, value=r.to_json(), key=r.event_id.encode()) for r in refs]
            await asyncio.gather(*sent)
            produced_s = time.perf_counter() - t0
            counts: Counter[str] = Counter()
            wanted = {r.event_id for r in refs}

            async def collect() -> None:
                async for result in reader.results():
                    if result.event_id in wanted:
                        assert result.kind == "transcript", result.dead_letter
                        counts[result.event_id or "?"] += 1
                        if len(counts) == len(wanted):
                            return

            await asyncio.wait_for(collect(), 900)
            elapsed = time.perf_counter() - t0
            async for result in reader.results(idle_timeout_s=3):  # a late duplicate would arrive now
                if result.event_id in wanted:
                    counts[result.event_id or "?"] += 1
        await asyncio.sleep(1)  # commits follow the publish
        lag = await _lag(s, partitions)
        rss_after = [rss_bytes(p.pid) for p in procs]
    finally:
        for sampler in samplers:
            sampler.stop()
        await producer.stop()
        for p in procs:
            stop_worker(p)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    return {
        "guarantee": guarantee,
        "events": events,
        "outcomes": len(counts),
        "duplicates": duplicates,
        "produce_s": round(produced_s, 3),
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(events / elapsed, 1),
        "lag_after": lag,
        "rss_before_mb": [round(b / MB) for b in rss_before],
        "rss_max_mb": [round(x.max_bytes / MB) for x in samplers],
        "rss_after_mb": [round(b / MB) for b in rss_after],
        "startup_s": round(startup_s, 3),
        "startup_ownership_s": float(assigned.get("ownership_s", 0)),
        "joins": joins,
        "producers_per_worker": (
            [1] * workers if guarantee == "at_least_once" else joins[-1]["assignment"] if joins else [partitions]
        ),
    }


async def run(settings: DevSettings, args: argparse.Namespace) -> dict[str, Any]:
    clips = sorted(make_samples(Path(args.samples)).values())
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    results = []
    before = load_average()
    for round_ in range(args.rounds):
        for guarantee in GUARANTEES:
            say(f"round {round_ + 1}: {guarantee}, {args.events} events to {args.workers} workers")
            result = await run_guarantee(
                settings, guarantee, clips, args.events, args.workers, args.partitions, log_dir, not args.no_cache
            )
            result["round"] = round_ + 1
            say(str(result))
            results.append(result)
    return {
        "benchmark": "burst",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cache": not args.no_cache,
        "machine": machine(),
        "load": load_line(before, load_average()),
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="result cache off: every event runs inference (fencing's cost beside it)",
    )
    parser.add_argument("--samples", default="/tmp/fwv2-bench-samples")
    parser.add_argument("--log-dir", default="/tmp/fwv2-bench-burst")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None, help="also draw events/s per guarantee as burst.png here")
    args = parser.parse_args(argv)
    settings = DevSettings()
    with embedded_stack(settings):
        payload = asyncio.run(run(settings, args))
    rows = [
        (
            r["round"],
            r["guarantee"],
            f"{r['outcomes']}/{r['events']}",
            r["duplicates"],
            r["events_per_s"],
            r["lag_after"],
            "/".join(map(str, r["rss_before_mb"])),
            "/".join(map(str, r["rss_max_mb"])),
            "/".join(map(str, r["rss_after_mb"])),
            r["startup_s"],
            r["startup_ownership_s"],
            "; ".join(f"{j['rebalance_s']} (ownership {j['ownership_s']})" for j in r["joins"]),
            "/".join(map(str, r["producers_per_worker"])),
        )
        for r in payload["results"]
    ]
    print(f"\n{payload['machine']}; {payload['load']}\n")
    print(
        markdown_table(
            (
                "round",
                "guarantee",
                "outcomes",
                "duplicates",
                "events/s",
                "lag after",
                "RSS before MB",
                "RSS max MB",
                "RSS after MB",
                "start-up s",
                "ownership at start s",
                "rebalance s",
                "producers/worker",
            ),
            rows,
        )
    )
    write_json(args.json, payload)
    if args.plot:
        from bench.plot import plot_run

        plot_run(payload, args.plot, "burst")
    bad = [r for r in payload["results"] if r["outcomes"] != r["events"] or r["duplicates"] or r["lag_after"]]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
