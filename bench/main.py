"""``fwv2 bench``: the whole stage against bare faster-whisper, on the same clips, in one run.

For each profile and round, two processes with the same model, compute type and thread
count: ``bench.bare`` transcribes the files in a loop, and a real ``fwv2 worker``
takes the same clips as events through MinIO and Kafka on the embedded stack. Both warm up
first; the clock runs from the first event produced to the last transcript received.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.bare import peak_rss_bytes
from bench.tools import fresh_topics, machine, transcript_of
from consumer.client import ResultReader, new_reference, publish_references, upload
from consumer.contract.outputs import TranscriptEvent
from devtools.samples import make_samples
from devtools.settings import DevSettings
from devtools.stack import EmbeddedStack
from pipeline.types import Granularity

DEFAULT_PROFILES = ("whisper-1-fast", "whisper-1")


@dataclass(frozen=True)
class Run:
    profile: str
    round: int
    clips: int
    audio_s: float
    bare_wall_s: float
    bare_peak_rss_mb: float
    stage_wall_s: float
    stage_peak_rss_mb: float
    stage_event_p50_s: float
    stage_event_p95_s: float
    stage_latency_p50_s: float
    stage_latency_p95_s: float
    text_agreement: float
    stage_steps_s: dict[str, float]

    @property
    def bare_rtf(self) -> float:
        return self.audio_s / self.bare_wall_s

    @property
    def stage_rtf(self) -> float:
        return self.audio_s / self.stage_wall_s

    @property
    def ratio(self) -> float:
        return self.stage_rtf / self.bare_rtf


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_bare(profile: str, threads: int, files: list[Path], words: bool = False) -> dict[str, Any]:
    argv = ["--profile", profile, "--threads", str(threads), *(["--words"] if words else []), *map(str, files)]
    out = subprocess.run(
        [sys.executable, "-m", "bench.bare", *argv],
        check=True,
        capture_output=True,
        text=True,
    )
    timings: dict[str, Any] = json.loads(out.stdout)
    return timings


async def run_stage(
    settings: DevSettings,
    profile: str,
    threads: int,
    files: list[Path],
    log_path: Path,
    speakers: bool = False,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    s = await fresh_topics(settings, "bench")
    run_id = s.kafka_group_id.removeprefix("bench-")
    objects = [upload(s, f, key=f"bench/{run_id}/{i:04d}-{f.name}") for i, f in enumerate(files)]
    env = {
        **os.environ,
        "KAFKA_INPUT_TOPIC": s.kafka_input_topic,
        "KAFKA_OUTPUT_TOPIC": s.kafka_output_topic,
        "KAFKA_DEAD_LETTER_TOPIC": s.kafka_dead_letter_topic,
        "KAFKA_GROUP_ID": s.kafka_group_id,
        # With --speakers the stage keeps its own rule (all cores but the diarization's: whisper and
        # diarization run side by side); the bare side, transcription alone, gets every core.
        "CPU_THREADS": "0" if speakers else str(threads),
        "METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
        # With --speakers the stage also diarizes every clip (the bare side only transcribes).
        "ENABLE_DIARIZATION": "true" if speakers else "false",
        "DIARIZATION_MIN_DURATION_S": "0",
        # Every clip is inference: the bench repeats clips, which the result cache would answer.
        "RESULT_CACHE_ENABLED": "false",
        **(extra_env or {}),
    }
    with open(log_path, "ab") as log:
        worker = subprocess.Popen([sys.executable, "-m", "consumer.cli", "worker"], env=env, stdout=log, stderr=log)
    try:
        async with ResultReader(s) as reader:
            granularities = (Granularity.WORD, Granularity.SPEAKER) if speakers else (Granularity.SEGMENT,)
            warm = new_reference(objects[0], profile=profile, timestamp_granularities=granularities)
            await publish_references(s, [warm])
            await reader.wait_for([warm.event_id], timeout_s=300)  # the worker has joined and warmed up

            refs = [new_reference(o, profile=profile, timestamp_granularities=granularities) for o in objects]
            sent = time.perf_counter()
            await publish_references(s, refs)
            wanted = {r.event_id for r in refs}
            arrived: dict[str, float] = {}
            records: dict[str, TranscriptEvent] = {}

            async def collect() -> None:
                async for result in reader.results():
                    if result.event_id in wanted and result.event_id not in arrived:
                        arrived[result.event_id] = time.perf_counter()
                        records[result.event_id] = transcript_of(result, "bench event")
                        if len(arrived) == len(wanted):
                            return

            await asyncio.wait_for(collect(), 1800)
        wall = max(arrived.values()) - sent
        peak = peak_rss_bytes(str(worker.pid))
    finally:
        worker.terminate()
        worker.wait(60)
    ordered = [records[r.event_id] for r in refs]
    return {
        "wall_s": wall,
        "peak_rss_bytes": peak,
        "event_s": [rec.timings.total_s for rec in ordered],
        "latency_s": [arrived[r.event_id] - sent for r in refs],
        "texts": [rec.text for rec in ordered],
        "steps_s": {
            step: sum(asdict(rec.timings)[f"{step}_s"] for rec in ordered)
            for step in ("fetch", "decode", "transcribe", "diarize", "total")
        },
        "audio_s": [rec.duration_s for rec in ordered],
    }


def _agreement(a: list[str], b: list[str]) -> float:
    """Share of clips on which the stage and bare faster-whisper wrote the same words."""
    norm = [(" ".join(x.lower().split()), " ".join(y.lower().split())) for x, y in zip(a, b, strict=True)]
    return sum(x == y for x, y in norm) / len(norm)


def run_bench(settings: DevSettings, args: argparse.Namespace) -> int:
    if getattr(args, "cache", False):  # `fwv2 bench --cache`: bench/cache.py
        from bench.cache import main as bench_cache

        profiles = [f"--profile={p}" for p in args.profile or ()]
        return bench_cache([*profiles, *(["--files", *args.files] if args.files else [])])
    stack = EmbeddedStack(settings, echo=_say)
    started_here = not stack.is_running()
    stack.up()
    try:
        if args.files:
            base = [Path(f) for f in args.files]
        else:
            base = list(make_samples(settings.stack_dir / "samples").values())
        files = base * args.repeat
        threads = settings.cpu_threads or os.cpu_count() or 1
        log_path = settings.stack_dir / "logs" / "bench-worker.log"
        runs: list[Run] = []
        for profile in args.profile or DEFAULT_PROFILES:
            for n in range(1, args.rounds + 1):
                # Alternate which side goes first, so a drift in the machine's speed during
                # the run does not always favour the same side.
                bare: dict[str, Any] = {}
                stage: dict[str, Any] = {}
                for side in ("bare", "stage") if n % 2 else ("stage", "bare"):
                    _say(f"[{profile} round {n}/{args.rounds}] {side}...")
                    if side == "bare":
                        # With --speakers the stage computes word timestamps: so does the bare side.
                        bare = run_bare(profile, threads, files, words=args.speakers)
                    else:
                        stage = asyncio.run(run_stage(settings, profile, threads, files, log_path, args.speakers))
                run = Run(
                    profile=profile,
                    round=n,
                    clips=len(files),
                    audio_s=sum(stage["audio_s"]),
                    bare_wall_s=bare["wall_s"],
                    bare_peak_rss_mb=bare["peak_rss_bytes"] / 2**20,
                    stage_wall_s=stage["wall_s"],
                    stage_peak_rss_mb=stage["peak_rss_bytes"] / 2**20,
                    stage_event_p50_s=statistics.median(stage["event_s"]),
                    stage_event_p95_s=_pct(stage["event_s"], 0.95),
                    stage_latency_p50_s=statistics.median(stage["latency_s"]),
                    stage_latency_p95_s=_pct(stage["latency_s"], 0.95),
                    text_agreement=_agreement([f["text"] for f in bare["files"]], stage["texts"]),
                    stage_steps_s=stage["steps_s"],
                )
                runs.append(run)
                _say(f"    bare {run.bare_rtf:.1f}x real time, stage {run.stage_rtf:.1f}x, ratio {run.ratio:.3f}")
                _say("    stage steps: " + ", ".join(f"{k} {v:.2f} s" for k, v in run.stage_steps_s.items()))
    finally:
        if started_here:
            stack.down()

    table = markdown_table(runs)
    print(table)
    payload = results(runs, args.speakers)
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    if args.plot:
        from bench.plot import plot_run

        plot_run(payload, args.plot, "throughput")
    if args.markdown:
        write_markdown(args.markdown, table, len(base), args.repeat, threads, runs)
    return 0


def results(runs: list[Run], speakers: bool) -> dict[str, Any]:
    """The run as ``--json`` writes it and ``bench.plot`` reads it: the rounds, the machine and the commit."""
    return {
        "benchmark": "throughput",
        "workload": "words + speakers" if speakers else "transcription",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "runs": [asdict(r) | {"ratio": r.ratio} for r in runs],
    }


def markdown_table(runs: list[Run]) -> str:
    head = (
        "| profile | round | clips | audio s | bare wall s | bare x RT | stage wall s | stage x RT | ratio "
        "| stage event p50 / p95 s | latency p50 / p95 s | peak RSS bare / stage MB | same text | stage fetch / decode / transcribe s |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [
        f"| {r.profile} | {r.round} | {r.clips} | {r.audio_s:.1f} | {r.bare_wall_s:.2f} | {r.bare_rtf:.1f} "
        f"| {r.stage_wall_s:.2f} | {r.stage_rtf:.1f} | **{r.ratio:.3f}** | {r.stage_event_p50_s:.3f} / "
        f"{r.stage_event_p95_s:.3f} | {r.stage_latency_p50_s:.2f} / {r.stage_latency_p95_s:.2f} "
        f"| {r.bare_peak_rss_mb:.0f} / {r.stage_peak_rss_mb:.0f} | {r.text_agreement:.0%} "
        f"| {r.stage_steps_s['fetch']:.2f} / {r.stage_steps_s['decode']:.2f} / {r.stage_steps_s['transcribe']:.2f} |"
        for r in runs
    ]
    return "\n".join([head, *rows])


def write_markdown(path: Path, table: str, clips: int, repeat: int, threads: int, runs: list[Run]) -> None:
    cpu = platform.processor() or platform.machine()
    medians = {
        p: statistics.median(r.ratio for r in runs if r.profile == p) for p in dict.fromkeys(r.profile for r in runs)
    }
    summary = ", ".join(f"{p}: **{v:.3f}**" for p, v in medians.items())
    section = f"""## Throughput: the stage against bare faster-whisper

Reproduce (starts and stops the embedded stack itself):

```
bash scripts/setup.sh && .venv/bin/fwv2 bench --repeat {repeat} --rounds {len(runs) // len(medians)} --markdown docs/BENCHMARKS.md
```

What runs, per profile and round, one after the other on the same machine:
- **bare**: `python -m bench.bare`, a plain loop of `WhisperModel.transcribe(path)` over the files
  (faster-whisper decodes them itself), after one warm-up pass.
- **stage**: a real `fwv2 worker` process; each clip is its own object in MinIO and its own AudioReference
  event on fresh topics; the clock runs from the first event produced to the last
  transcript read back from the output topic, after one warm-up event.
- Same model (tiny.en, int8), same profile options, same thread count ({threads}), same clips:
  the {clips} sample clips repeated {repeat} times ({runs[0].clips} events, {runs[0].audio_s:.0f} s of audio).
- *x RT* = audio seconds per wall second; *ratio* = stage x RT / bare x RT (goal: at least 0.95);
  *event* = the worker's own time per event (fetch, decode, transcribe, publish); *latency* = from producing
  the whole batch to each transcript's arrival (includes queueing behind the batch); *same text* = clips on
  which both wrote identical words. Rounds alternate which side runs first.
- The machine is shared and noisy: rounds of the same profile differ by up to 30 %; read the median.

Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, Python {platform.python_version()}.

Median ratio per profile over {len(runs) // len(medians)} rounds: {summary}.

{table}
"""
    path.write_text(replace_section(path.read_text() if path.exists() else "# Benchmarks\n", section))


def replace_section(document: str, section: str) -> str:
    """``document`` with the ``## `` section that ``section`` starts with replaced (or appended): the
    other sections of docs/BENCHMARKS.md, written by other benchmarks, stay as they are."""
    heading = section.splitlines()[0]
    lines = document.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip("\n") == heading)
    except StopIteration:
        return document.rstrip("\n") + "\n\n" + section
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    return "".join(lines[:start]) + section.rstrip("\n") + "\n" + ("\n" + tail if tail else "")
