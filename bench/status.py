"""``fwv2 bench --status``: what the StatusEvents cost, the stage with them against the stage without, in one run.

Rounds alternate which side goes first (a drift in the machine's speed then favours neither), on the same
clips, profile and threads: a real ``fwv2 worker`` with KAFKA_STATUS_TOPIC set (accepted, progress for audio
of a minute or more, completed) against one with it empty (no status producer at all). The clips include
one longer than STATUS_PROGRESS_MIN_AUDIO_S, so progress events are part of the cost, at the default interval.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import uuid
from pathlib import Path
from typing import Any

from bench.long import make_long_file
from bench.main import run_stage
from bench.tools import cpu_model, machine, say
from consumer.plumbing.provision import ensure_topics
from devtools.samples import make_samples
from devtools.settings import DevSettings
from devtools.stack import EmbeddedStack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.status", description=__doc__)
    parser.add_argument("--profile", default="whisper-1-fast")
    parser.add_argument("--rounds", type=int, default=4, help="rounds; each runs both sides once")
    parser.add_argument("--repeat", type=int, default=3, help="copies of the sample clips per run")
    parser.add_argument("--long-s", type=int, default=120, help="the one long clip's seconds (progress events)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    settings = DevSettings()
    stack = EmbeddedStack(settings, echo=say)
    started_here = not stack.is_running()
    stack.up()
    try:
        clips = list(make_samples(settings.stack_dir / "samples").values()) * args.repeat
        clips.append(make_long_file(settings.stack_dir / "long", args.long_s, settings.stack_dir / "samples"))
        threads = settings.cpu_threads or os.cpu_count() or 1
        log = settings.stack_dir / "logs" / "bench-status-worker.log"
        rounds: list[dict[str, Any]] = []
        for n in range(1, args.rounds + 1):
            walls: dict[str, float] = {}
            for side in ("on", "off") if n % 2 else ("off", "on"):
                topic = f"bench.{uuid.uuid4().hex[:8]}.status" if side == "on" else ""
                if topic:
                    asyncio.run(_create(settings, topic))
                say(f"[round {n}/{args.rounds}] status {side}...")
                stage = asyncio.run(
                    run_stage(settings, args.profile, threads, clips, log, extra_env={"KAFKA_STATUS_TOPIC": topic})
                )
                walls[side] = stage["wall_s"]
            rounds.append({"round": n, "on_wall_s": walls["on"], "off_wall_s": walls["off"]})
            say(f"    on {walls['on']:.2f} s, off {walls['off']:.2f} s, on/off {walls['on'] / walls['off']:.3f}")
    finally:
        if started_here:
            stack.down()
    ratios = [r["on_wall_s"] / r["off_wall_s"] for r in rounds]
    model, avx512 = cpu_model()
    print(
        f"CPU: {model}, AVX-512 {'yes' if avx512 else 'no'}; profile {args.profile}, {len(clips)} clips (one of {args.long_s} s), {threads} threads"
    )
    print("| round | status on (s) | status off (s) | on / off |")
    print("|---|---|---|---|")
    for r, ratio in zip(rounds, ratios, strict=True):
        print(f"| {r['round']} | {r['on_wall_s']:.2f} | {r['off_wall_s']:.2f} | {ratio:.3f} |")
    print(f"median on/off {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
    if args.json:
        payload = {"benchmark": "status", "machine": machine(), "profile": args.profile, "rounds": rounds}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


async def _create(settings: DevSettings, topic: str) -> None:
    loop = asyncio.get_running_loop()
    await ensure_topics(
        settings.kafka_bootstrap_servers, [topic], settings.kafka_topic_partitions, loop.time() + 30, say
    )


if __name__ == "__main__":
    raise SystemExit(main())
