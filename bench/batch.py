"""Cross-event batching against one event at a time: the same short clips through the whole stage.

    .venv/bin/python -m bench.batch --clips 8 --repeat 4 --rounds 2 --batch 8

Both sides are the real worker on the embedded stack (the result cache off), the same clips,
profile and threads, rounds alternating which side runs first. Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
from pathlib import Path

from bench.main import run_stage
from devtools.samples import make_samples
from devtools.settings import DevSettings
from devtools.stack import EmbeddedStack


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.batch")
    parser.add_argument("--profile", default="whisper-1")
    parser.add_argument("--repeat", type=int, default=5, help="copies of the sample set (4 clips of 5-8 s)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="BATCH_MAX_CLIPS of the batched side")
    parser.add_argument("--wait-ms", type=int, default=200, help="BATCH_MAX_WAIT_MS of the batched side")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    settings = DevSettings()
    stack = EmbeddedStack(settings, echo=print)
    started_here = not stack.is_running()
    stack.up()
    try:
        files = list(make_samples(settings.stack_dir / "samples").values()) * args.repeat
        threads = settings.cpu_threads or os.cpu_count() or 1
        log_path = settings.stack_dir / "logs" / "bench-batch-worker.log"
        sides = {
            "one at a time": {"BATCH_MAX_CLIPS": "1"},
            f"batched (up to {args.batch})": {
                "BATCH_MAX_CLIPS": str(args.batch),
                "BATCH_MAX_WAIT_MS": str(args.wait_ms),
            },
        }
        rows = []
        for n in range(1, args.rounds + 1):
            order = list(sides) if n % 2 else list(reversed(sides))
            for side in order:
                r = asyncio.run(run_stage(settings, args.profile, threads, files, log_path, extra_env=sides[side]))
                audio = sum(r["audio_s"])
                rows.append(
                    {
                        "round": n,
                        "side": side,
                        "clips": len(files),
                        "audio_s": audio,
                        "wall_s": r["wall_s"],
                        "x_real_time": audio / r["wall_s"],
                        "latency_p50_s": statistics.median(r["latency_s"]),
                        "peak_rss_mb": r["peak_rss_bytes"] / 2**20,
                    }
                )
                print(f"round {n} {side}: {audio / r['wall_s']:.1f}x real time", flush=True)
    finally:
        if started_here:
            stack.down()
    print(f"\nprofile {args.profile}, {len(files)} clips, {threads} threads\n")
    print("| round | side | clips | audio s | wall s | x real time | gain | latency p50 s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        base = next(r for r in rows if r["round"] == row["round"] and r["side"] == "one at a time")
        gain = base["wall_s"] / row["wall_s"]
        print(
            f"| {row['round']} | {row['side']} | {row['clips']} | {row['audio_s']:.1f} | {row['wall_s']:.2f} | "
            f"{row['x_real_time']:.1f} | {gain:.2f} | {row['latency_p50_s']:.2f} | {row['peak_rss_mb']:.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
