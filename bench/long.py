"""One long file through the whole stage: peak memory, wall time, and whether the worker kept its partitions.

    .venv/bin/python -m bench.long [--seconds 3600 | --file F] [--profile whisper-1-fast] [--json F] [--plot DIR]

The default file is an hour of the sample clips (spoken by espeak-ng) with 1.5 s pauses, looped and
encoded as a 48 kbit/s mp3 (about 21 MB) under ``STACK_DIR/long/``; it is made once and kept there.

- **stage**: a real ``fwv2 worker`` process (result cache off, INFO logs) takes one short event to
  join its group and warm up, then the long one. Its RSS is sampled every 0.5 s from the start, and
  its kernel high-water mark (VmHWM) read before it stops, so no peak between samples is missed; the
  JSON keeps one sample a second (``rss_series``), which ``--plot`` draws against time.
  The worker's log must show no ``partitions_revoked`` and no second ``partitions_assigned`` after
  the warm-up event: the group never took its partitions away while the hour was transcribed.
- **bare**: a process with the same model, threads and profile options that warms up on a second of
  silence and runs ``WhisperModel.transcribe(path)`` (faster-whisper decodes the file itself).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

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
    peak_rss_bytes,
    rebalances,
    rss_bytes,
    say,
    start_worker,
    stop_worker,
    transcript_of,
    write_json,
)
from consumer.client import ResultReader, new_reference, publish_references, upload
from devtools.samples import make_samples
from devtools.settings import DevSettings

PAUSE_S = 1.5


def make_long_file(directory: Path, seconds: int, samples_dir: Path) -> Path:
    """The sample clips with pauses between them, looped to ``seconds``, as a mono 16 kHz mp3."""
    target = directory / f"long-{seconds}s.mp3"
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    clips = list(make_samples(samples_dir).values())
    inputs: list[str] = []
    for clip in clips:
        inputs += ["-i", str(clip)]
    inputs += ["-f", "lavfi", "-t", str(PAUSE_S), "-i", "anullsrc=r=16000:cl=mono"]
    n = len(clips)
    graph = "".join(f"[{i}:a]aresample=16000,aformat=channel_layouts=mono[a{i}];" for i in range(n))
    graph += f"[{n}:a]asplit={n}" + "".join(f"[s{i}]" for i in range(n)) + ";"
    graph += "".join(f"[a{i}][s{i}]" for i in range(n)) + f"concat=n={2 * n}:v=0:a=1[out]"
    cycle = directory / "cycle.tmp.wav"
    ffmpeg = ["ffmpeg", "-loglevel", "error", "-y"]
    subprocess.run([*ffmpeg, *inputs, "-filter_complex", graph, "-map", "[out]", str(cycle)], check=True)
    subprocess.run(
        [
            *ffmpeg,
            "-stream_loop",
            "-1",
            "-i",
            str(cycle),
            "-t",
            str(seconds),
            "-ac",
            "1",
            "-ar",
            "16000",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "48k",
            str(target),
        ],
        check=True,
    )
    cycle.unlink()
    return target


# --- bare faster-whisper, in its own process -------------------------------------------------


def bare_child(profile_name: str, threads: int, path: str, window_s: int = 0) -> int:
    """Bare faster-whisper on the file; with ``window_s``, a prototype that bounds its memory.

    faster-whisper computes the log-mel spectrogram of the whole (speech-only) waveform at once, and
    its STFT holds several float32 and complex64 copies of it: for an hour of speech that, not the
    waveform, is the peak. The prototype decodes once (``pipeline.decode``) and transcribes
    windows of about ``window_s`` one after the other, which bounds those copies by the window. Each
    window ends at the quietest 100 ms of its last 30 s (``pipeline.windows``), so no word is cut in two;
    no window is prompted with the text before it.
    """
    import numpy as np
    from faster_whisper import WhisperModel

    from pipeline.decode import decode_audio
    from pipeline.profiles import get_profile
    from pipeline.transcribe import bundled_model_path
    from pipeline.windows import windows

    model = WhisperModel(str(bundled_model_path()), device="cpu", compute_type="int8", cpu_threads=threads)
    options = {"language": "en", **get_profile(profile_name).whisper_options()}
    list(model.transcribe(np.zeros(16_000, dtype=np.float32), **options)[0])  # warm-up, as the worker's
    ready_rss = rss_bytes()
    started = time.perf_counter()
    if window_s:
        samples = decode_audio(Path(path).read_bytes(), 4 * 3600).samples
        audio_s, words = len(samples) / 16_000, 0
        for start, end in windows(samples, window_s):  # the stage's own cuts (pipeline.windows), no prompt
            segments, _ = model.transcribe(samples[start:end], **options)
            words += sum(len(s.text.split()) for s in segments)
    else:
        segments, info = model.transcribe(path, **options)
        words = sum(len(s.text.split()) for s in segments)
        audio_s = info.duration
    wall = time.perf_counter() - started
    json.dump(
        {
            "wall_s": wall,
            "audio_s": audio_s,
            "words": words,
            "ready_rss_bytes": ready_rss,
            "peak_rss_bytes": peak_rss_bytes(),
        },
        sys.stdout,
    )
    return 0


def _series(sampler: RssSampler) -> list[tuple[float, int]]:
    """The sampled RSS, every second (of the 0.5 s samples): an hour is 3,600 points, enough to draw, small to keep.

    The peak between two kept samples is not lost: VmHWM, read at the end, is the peak reported."""
    kept: list[tuple[float, int]] = []
    for t, b in sampler.samples:
        if not kept or t - kept[-1][0] >= 1.0:
            kept.append((round(t, 1), b))
    return kept


def run_bare(profile: str, threads: int, path: Path, window_s: int = 0) -> dict[str, Any]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.long",
            "--bare-child",
            "--profile",
            profile,
            "--threads",
            str(threads),
            "--file",
            str(path),
            "--window-s",
            str(window_s),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    sampler = RssSampler(proc.pid).start()
    out, _ = proc.communicate()
    sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"bare faster-whisper failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(out)
    result["sampled_max_rss_bytes"] = sampler.max_bytes
    result["rss_series"] = _series(sampler)
    return result


# --- the stage ---------------------------------------------------------------------------------


async def run_stage(
    settings: DevSettings, path: Path, warm_clip: Path, profile: str, threads: int, log_path: Path
) -> dict[str, Any]:
    s = await fresh_topics(settings, "bench-long")
    long_obj = upload(s, path, key=f"bench-long/{s.kafka_group_id}/{path.name}")
    warm_obj = upload(s, warm_clip, key=f"bench-long/{s.kafka_group_id}/{warm_clip.name}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_bytes(b"")
    worker = start_worker(s, threads, log_path, LOG_LEVEL="INFO")
    sampler = RssSampler(worker.pid).start()
    try:
        async with ResultReader(s) as reader:
            warm = new_reference(warm_obj, profile=profile)
            await publish_references(s, [warm])
            await reader.wait_for([warm.event_id], timeout_s=300)  # joined and warmed up
            before = rebalances(log_events(log_path))
            ready_rss = rss_bytes(worker.pid)
            ref = new_reference(long_obj, profile=profile)
            started = time.perf_counter()
            await publish_references(s, [ref])
            result = (await reader.wait_for([ref.event_id], timeout_s=4 * 3600))[ref.event_id]
            wall = time.perf_counter() - started
            record = transcript_of(result, "the long event was")
            peak = peak_rss_bytes(worker.pid)
            after = rebalances(log_events(log_path))
    finally:
        sampler.stop()
        stop_worker(worker)
    return {
        "wall_s": wall,
        "audio_s": record.duration_s,
        "words": len(record.text.split()),
        "timings": asdict(record.timings),
        "ready_rss_bytes": ready_rss,
        "peak_rss_bytes": peak,
        "sampled_max_rss_bytes": sampler.max_bytes,
        "rss_series": _series(sampler),
        "rebalances_during": {k: after[k] - before[k] for k in after},
        "kept_partitions": after == before and before["assigned"] >= 1,
    }


def report(
    stage: dict[str, Any] | None,
    bare: dict[str, Any] | None,
    profile: str,
    threads: int,
    load: str,
    windowed: dict[str, Any] | None = None,
    window_s: int = 0,
) -> str:
    rows = []
    for side, r in (
        ("bare faster-whisper", bare),
        ("stage (fwv2 worker)", stage),
        (f"bare, decoded once, {window_s} s windows (prototype)", windowed),
    ):
        if r is None:
            continue
        rows.append(
            [
                side,
                f"{r['audio_s']:.0f}",
                f"{r['wall_s']:.1f}",
                f"{r['audio_s'] / r['wall_s']:.1f}",
                f"{r['ready_rss_bytes'] / MB:.0f}",
                f"{r['peak_rss_bytes'] / MB:.0f}",
                r["words"],
            ]
        )
    lines = [
        f"Profile {profile}, tiny.en int8, {threads} threads; {load}.",
        "",
        markdown_table(["side", "audio s", "wall s", "x RT", "RSS ready MB", "peak RSS MB", "words"], rows),
    ]
    if stage is not None:
        t = stage["timings"]
        lines += [
            "",
            f"Stage steps: fetch {t['fetch_s']:.1f} s, decode {t['decode_s']:.1f} s, transcribe {t['transcribe_s']:.1f} s. "
            f"Partitions kept throughout: **{'yes' if stage['kept_partitions'] else 'NO'}** "
            f"(during the long event: {stage['rebalances_during']['revoked']} revoked, "
            f"{stage['rebalances_during']['assigned']} assigned).",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.long", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=3600, help="length of the generated file")
    parser.add_argument("--file", type=Path, default=None, help="a long file of your own instead")
    parser.add_argument("--profile", default="whisper-1-fast")
    parser.add_argument(
        "--threads", type=int, default=0, help="inference threads (default CPU_THREADS, else all cores)"
    )
    parser.add_argument("--skip-bare", action="store_true", help="leave out bare faster-whisper")
    parser.add_argument("--skip-stage", action="store_true", help="leave out the stage")
    parser.add_argument("--bare-first", action="store_true", help="run bare faster-whisper before the stage")
    parser.add_argument(
        "--window-s",
        type=int,
        default=0,
        help="also run bare faster-whisper over windows of this many seconds (what bounded memory would cost)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures (and the RSS series) here")
    parser.add_argument("--plot", type=Path, default=None, help="also draw RSS against time as long.png in this folder")
    parser.add_argument("--bare-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = DevSettings()
    threads = args.threads or settings.cpu_threads or os.cpu_count() or 1
    if args.bare_child:
        return bare_child(args.profile, threads, str(args.file), args.window_s)
    with embedded_stack(settings):
        samples_dir = settings.stack_dir / "samples"
        path = args.file or make_long_file(settings.stack_dir / "long", args.seconds, samples_dir)
        warm_clip = make_samples(samples_dir)["train"]
        log_path = settings.stack_dir / "logs" / "bench-long-worker.log"
        load_before = load_average()
        stage: dict[str, Any] | None = None
        bare: dict[str, Any] | None = None
        windowed: dict[str, Any] | None = None
        for side in ("bare", "stage") if args.bare_first else ("stage", "bare"):
            if side == "bare" and not args.skip_bare:
                say(f"bare faster-whisper on {path}...")
                bare = run_bare(args.profile, threads, path)
            elif side == "stage" and not args.skip_stage:
                say(f"the stage on {path}...")
                stage = asyncio.run(run_stage(settings, path, warm_clip, args.profile, threads, log_path))
        if args.window_s:
            say(f"bare faster-whisper over {args.window_s} s windows...")
            windowed = run_bare(args.profile, threads, path, args.window_s)
        load_after = load_average()
    print(report(stage, bare, args.profile, threads, load_line(load_before, load_after), windowed, args.window_s))
    payload = {
        "benchmark": "long",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "title": f"{path.name}, {args.profile}, {threads} threads",
        "file": str(path),
        "profile": args.profile,
        "threads": threads,
        "load_before": load_before,
        "load_after": load_after,
        "machine": machine(),
        "stage": stage,
        "bare": bare,
        "window_s": args.window_s,
        "bare_windowed": windowed,
    }
    write_json(args.json, payload)
    if args.plot:
        from bench.plot import plot_run

        plot_run(payload, args.plot, "long")
    if stage is not None and not stage["kept_partitions"]:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
