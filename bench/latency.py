"""Latency of one short clip through the whole stage, against bare inference of the same clip, in one run.

    .venv/bin/python -m bench.latency [--events 50] [--profile whisper-1] [--threads 2] [--json F]

The clip is one spoken sentence padded to 5.0 s, as an mp3 (``--clip`` takes another file).

- **stage**: a real ``fwv2 worker`` process (result cache off); one event at a time, each timed from
  just before its AudioReference is produced to the moment its transcript is read back from the
  output topic; the next is sent only then.
- **bare**: a second process with the same model, compute type, threads and profile options that
  decoded the clip once and times ``WhisperModel.transcribe(samples)`` (the segments consumed):
  inference alone, the floor the stage's latency is compared with.

Both load and warm up first, then take turns in blocks of ``--block`` clips, the order alternating,
so a change in the machine's load during the run touches both. The goal: stage p50 at most 1.5x bare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.tools import (
    embedded_stack,
    fresh_topics,
    load_average,
    load_line,
    machine,
    markdown_table,
    percentile,
    say,
    start_worker,
    stop_worker,
    transcript_of,
    write_json,
)
from consumer.client import ResultReader, new_reference, upload
from consumer.contract.outputs import TranscriptEvent
from consumer.plumbing.kafka import make_producer
from devtools.samples import VOICE, WORDS_PER_MINUTE, require_tools
from devtools.settings import DevSettings

CLIP_TEXT = "The next train to the city leaves from the main platform in a few minutes."
CLIP_SECONDS = 5.0


def make_clip(directory: Path) -> Path:
    """One sentence spoken by espeak-ng, padded with silence to 5.0 s, as an mp3."""
    target = directory / "latency-5s.mp3"
    if target.exists():
        return target
    require_tools()
    directory.mkdir(parents=True, exist_ok=True)
    wav = directory / "latency-5s.tmp.wav"
    subprocess.run(["espeak-ng", "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "-w", str(wav), CLIP_TEXT], check=True)
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(wav),
            "-af",
            f"apad=whole_dur={CLIP_SECONDS}",
            "-t",
            str(CLIP_SECONDS),
            "-ac",
            "1",
            "-c:a",
            "libmp3lame",
            "-q:a",
            "4",
            str(target),
        ],
        check=True,
    )
    wav.unlink()
    return target


# --- the bare side: a child process that answers "N" with N timed transcriptions ------------


def bare_child(profile_name: str, threads: int, clip: str) -> int:
    from faster_whisper import WhisperModel
    from faster_whisper.audio import decode_audio

    from pipeline.profiles import get_profile
    from pipeline.transcribe import bundled_model_path

    model = WhisperModel(str(bundled_model_path()), device="cpu", compute_type="int8", cpu_threads=threads)
    options = {"language": "en", **get_profile(profile_name).whisper_options()}
    samples = decode_audio(clip)

    def once() -> tuple[float, str]:
        started = time.perf_counter()
        segments, _ = model.transcribe(samples, **options)
        text = " ".join(s.text.strip() for s in segments)
        return time.perf_counter() - started, text

    once()  # warm-up, as the worker's
    print(json.dumps({"ready": True, "audio_s": len(samples) / 16_000}), flush=True)
    for line in sys.stdin:
        n = int(line)
        runs = [once() for _ in range(n)]
        print(json.dumps({"seconds": [r[0] for r in runs], "text": runs[-1][1] if runs else ""}), flush=True)
    return 0


class Bare:
    def __init__(self, profile: str, threads: int, clip: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.latency",
                "--bare-child",
                "--profile",
                profile,
                "--threads",
                str(threads),
                "--clip",
                str(clip),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the bare process ended (exit {self.proc.wait()})")
        return json.loads(line)  # type: ignore[no-any-return]

    def ready(self) -> dict[str, Any]:
        return self._read()

    def run(self, n: int) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)


# --- the run --------------------------------------------------------------------------------


async def measure(
    settings: DevSettings, clip: Path, events: int, block: int, profile: str, threads: int, log_path: Path
) -> dict[str, Any]:
    s = await fresh_topics(settings, "bench-latency")
    obj = upload(s, clip, key=f"bench-latency/{s.kafka_group_id}/{clip.name}")
    bare = Bare(profile, threads, clip)
    worker = start_worker(s, threads, log_path)
    producer = make_producer(s, "bench")
    await producer.start()
    stage_e2e: list[float] = []
    stage_worker: list[dict[str, float]] = []
    bare_s: list[float] = []
    texts: dict[str, str] = {}
    try:
        async with ResultReader(s) as reader:

            async def one() -> tuple[float, TranscriptEvent]:
                ref = new_reference(obj, profile=profile)
                started = time.perf_counter()
                await producer.send_and_wait(s.kafka_input_topic, value=ref.to_json(), key=ref.event_id.encode())
                result = (await reader.wait_for([ref.event_id], timeout_s=300))[ref.event_id]
                elapsed = time.perf_counter() - started
                return elapsed, transcript_of(result, "latency event")

            audio_s = bare.ready()["audio_s"]
            await one()  # the worker has joined its group and warmed up
            say(f"bare and stage ready; {events} clips of {audio_s:.2f} s in blocks of {block}")
            n = 0
            while n < events:
                size = min(block, events - n)
                order = ("bare", "stage") if (n // block) % 2 == 0 else ("stage", "bare")
                for side in order:
                    if side == "bare":
                        out = await asyncio.to_thread(bare.run, size)
                        bare_s.extend(out["seconds"])
                        texts["bare"] = out["text"]
                    else:
                        for _ in range(size):
                            elapsed, record = await one()
                            stage_e2e.append(elapsed)
                            stage_worker.append(asdict(record.timings))
                            texts["stage"] = record.text
                n += size
                say(
                    f"  {n}/{events}: stage p50 {statistics.median(stage_e2e) * 1000:.0f} ms, "
                    f"bare p50 {statistics.median(bare_s) * 1000:.0f} ms"
                )
    finally:
        await producer.stop()
        stop_worker(worker)
        bare.close()
    return {"audio_s": audio_s, "stage_s": stage_e2e, "stage_timings": stage_worker, "bare_s": bare_s, "texts": texts}


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    stage, bare = raw["stage_s"], raw["bare_s"]
    out: dict[str, Any] = {}
    for side, values in (("stage", stage), ("bare", bare)):
        out[side] = {
            "n": len(values),
            "p50_ms": percentile(values, 0.5) * 1000,
            "p95_ms": percentile(values, 0.95) * 1000,
            "mean_ms": statistics.fmean(values) * 1000,
            "max_ms": max(values) * 1000,
        }
    out["ratio_p50"] = out["stage"]["p50_ms"] / out["bare"]["p50_ms"]
    out["ratio_p95"] = out["stage"]["p95_ms"] / out["bare"]["p95_ms"]
    steps = ("fetch_s", "decode_s", "transcribe_s", "total_s")
    out["stage_worker_p50_ms"] = {
        step.removesuffix("_s"): percentile([t[step] for t in raw["stage_timings"]], 0.5) * 1000 for step in steps
    }
    out["same_text"] = " ".join(raw["texts"].get("stage", "").lower().split()) == " ".join(
        raw["texts"].get("bare", "").lower().split()
    )
    return out


def report(summary: dict[str, Any], audio_s: float, profile: str, threads: int, load: str) -> str:
    rows = [
        [
            side,
            summary[side]["n"],
            f"{summary[side]['p50_ms']:.0f}",
            f"{summary[side]['p95_ms']:.0f}",
            f"{summary[side]['mean_ms']:.0f}",
            f"{summary[side]['max_ms']:.0f}",
        ]
        for side in ("bare", "stage")
    ]
    w = summary["stage_worker_p50_ms"]
    return "\n".join(
        [
            f"Clip {audio_s:.2f} s, profile {profile}, tiny.en int8, {threads} threads; {load}.",
            "",
            markdown_table(["side", "clips", "p50 ms", "p95 ms", "mean ms", "max ms"], rows),
            "",
            f"Stage / bare: p50 **{summary['ratio_p50']:.2f}x**, p95 **{summary['ratio_p95']:.2f}x** (goal: p50 at most 1.5x). "
            f"Inside the worker (p50): fetch {w['fetch']:.0f} ms, decode {w['decode']:.0f} ms, transcribe "
            f"{w['transcribe']:.0f} ms, total {w['total']:.0f} ms; the rest of the stage's time is Kafka "
            f"(produce, fetch, publish, commit, read back). Same text: {'yes' if summary['same_text'] else 'no'}.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50, help="clips per side")
    parser.add_argument("--block", type=int, default=10, help="clips per turn; the sides alternate")
    parser.add_argument("--profile", default="whisper-1")
    parser.add_argument(
        "--threads", type=int, default=0, help="inference threads (default CPU_THREADS, else all cores)"
    )
    parser.add_argument("--clip", type=Path, default=None, help="the clip (default: a spoken 5.0 s mp3)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--bare-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = DevSettings()
    threads = args.threads or settings.cpu_threads or os.cpu_count() or 1
    if args.bare_child:
        return bare_child(args.profile, threads, str(args.clip))
    with embedded_stack(settings):
        clip = args.clip or make_clip(settings.stack_dir / "samples")
        before = load_average()
        raw = asyncio.run(
            measure(
                settings,
                clip,
                args.events,
                args.block,
                args.profile,
                threads,
                settings.stack_dir / "logs" / "bench-latency-worker.log",
            )
        )
        after = load_average()
    summary = summarize(raw)
    print(report(summary, raw["audio_s"], args.profile, threads, load_line(before, after)))
    write_json(
        args.json,
        {
            "benchmark": "latency",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "profile": args.profile,
            "threads": threads,
            "clip": str(clip),
            "audio_s": raw["audio_s"],
            "load_before": before,
            "load_after": after,
            "machine": machine(),
            **summary,
            "raw": {"stage_s": raw["stage_s"], "bare_s": raw["bare_s"]},
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
