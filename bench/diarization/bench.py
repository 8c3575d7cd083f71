"""Diarization figures for docs/DIARIZATION.md: error, speed, and the cost of sharing a process with whisper.

    .venv/bin/python -m bench.diarization.bench quality      # DER by clip, step and threshold
    .venv/bin/python -m bench.diarization.bench robustness   # the same, over five window alignments
    .venv/bin/python -m bench.diarization.bench speed        # wall time by clip, step and torch threads
    .venv/bin/python -m bench.diarization.bench contention   # after / beside faster-whisper, and the fixes
    .venv/bin/python -m bench.diarization.bench words        # the whole Pipeline: WER, words with the right speaker
    .venv/bin/python -m bench.diarization.bench embedding    # CAM++ on one thread or two, alone and beside whisper

Every measured cell runs in a fresh Python process (``_cell``), so thread pools, OpenMP state and
import order are those of a real worker. The machine is shared: each cell repeats ``--repeat`` times
and reports the median, and the load average is printed with every table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")


def _der(clip: Any, turns: Any, collar: float) -> float:
    from bench.diarization.clips import score

    return score(clip, turns, collar)


def _cpu() -> float:
    usage = os.times()
    return usage.user + usage.system


# --- one cell, in its own process -----------------------------------------------------------


def _cell(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement described by ``spec`` and return its figures."""
    if spec.get("ct2_first"):
        import ctranslate2  # noqa: F401  (own OpenMP runtime: see docs/DIARIZATION.md)
        import faster_whisper  # noqa: F401
    import torch

    from bench.diarization.clips import CLIPS
    from bench.diarization.models import installed_config
    from pipeline.diarization import Diarizer

    clip = CLIPS[spec["clip"]]()
    out: dict[str, Any] = {}
    started = time.perf_counter()
    config = installed_config(
        segmentation_step=spec.get("step", 0.5),
        threshold=spec.get("threshold", installed_config().threshold),
        num_threads=spec.get("threads", 0),
    )
    diarizer = Diarizer(config)
    out["load_s"] = time.perf_counter() - started
    started = time.perf_counter()
    diarizer.warm_up()
    out["warm_up_s"] = time.perf_counter() - started

    mode = spec.get("mode", "alone")
    transcriber = None
    if mode != "alone":
        from pipeline.config import EngineConfig
        from pipeline.transcribe import Transcriber

        transcriber = Transcriber(EngineConfig(cpu_threads=spec.get("whisper_threads", 2)))
        transcriber.warm_up()

    def transcribe() -> float:
        from pipeline.types import DecodedAudio, Granularity, TranscriptionRequest

        assert transcriber is not None
        audio = DecodedAudio(samples=clip.samples, sample_rate=16_000, duration_s=clip.duration)
        t0 = time.perf_counter()
        transcriber.transcribe(audio, TranscriptionRequest(granularities=frozenset({Granularity.WORD})))
        return time.perf_counter() - t0

    def diarize() -> tuple[float, float, Any]:
        t0, c0 = time.perf_counter(), _cpu()
        turns = diarizer.diarize(clip.samples)
        return time.perf_counter() - t0, _cpu() - c0, turns

    walls, cpus, totals, transcribes = [], [], [], []
    turns: Any = ()
    for _ in range(spec.get("repeat", 3)):
        if mode in ("alone", "after_whisper"):
            if mode == "after_whisper":
                transcribes.append(transcribe())
            wall, cpu, turns = diarize()
            walls.append(wall)
            cpus.append(cpu)
            totals.append(wall + (transcribes[-1] if transcribes else 0.0))
        elif mode == "beside_whisper":  # diarize in a thread while the main thread transcribes
            import threading

            result: dict[str, Any] = {}
            t0 = time.perf_counter()
            worker = threading.Thread(target=lambda: result.update(d=diarize()))  # noqa: B023 - joined below
            worker.start()
            transcribes.append(transcribe())
            worker.join()
            totals.append(time.perf_counter() - t0)
            wall, cpu, turns = result["d"]
            walls.append(wall)
            cpus.append(cpu)
    out.update(
        diarize_s=statistics.median(walls),
        diarize_cpu_s=statistics.median(cpus),
        total_s=statistics.median(totals),
        runs=[round(w, 2) for w in walls],
        torch_threads=torch.get_num_threads(),
        speakers=len({t.speaker for t in turns}),
        der0=_der(clip, turns, 0.0),
        der05=_der(clip, turns, 0.5),
        duration_s=clip.duration,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    if transcribes:
        out["transcribe_s"] = statistics.median(transcribes)
    return out


def _separate_process_cell(spec: dict[str, Any]) -> dict[str, Any]:
    """Transcribe here while a warm diarization worker process diarizes the same clip."""
    import multiprocessing as mp

    from bench.diarization.clips import CLIPS
    from pipeline.config import EngineConfig
    from pipeline.transcribe import Transcriber
    from pipeline.types import DecodedAudio, Granularity, TranscriptionRequest

    clip = CLIPS[spec["clip"]]()
    ctx = mp.get_context("spawn")  # a fresh interpreter: its own torch and OpenMP, no fork of CT2 state
    requests, replies = ctx.Queue(), ctx.Queue()
    worker = ctx.Process(target=_diarization_worker, args=(spec, requests, replies), daemon=True)
    worker.start()
    assert replies.get(timeout=300) == "ready"
    transcriber = Transcriber(EngineConfig(cpu_threads=spec.get("whisper_threads", 2)))
    transcriber.warm_up()
    audio = DecodedAudio(samples=clip.samples, sample_rate=16_000, duration_s=clip.duration)
    request = TranscriptionRequest(granularities=frozenset({Granularity.WORD}))
    totals, transcribes, diarizes = [], [], []
    turns: Any = ()
    for _ in range(spec.get("repeat", 3)):
        t0 = time.perf_counter()
        requests.put(clip.samples)  # pickled through a pipe: about 8 ms for 120 s of float32
        transcriber.transcribe(audio, request)
        transcribes.append(time.perf_counter() - t0)
        turns, diarize_s = replies.get(timeout=600)
        diarizes.append(diarize_s)
        totals.append(time.perf_counter() - t0)
    requests.put(None)
    worker.join(timeout=30)
    return {
        "transcribe_s": statistics.median(transcribes),
        "diarize_s": statistics.median(diarizes),
        "total_s": statistics.median(totals),
        "runs": [round(t, 2) for t in totals],
        "speakers": len({t.speaker for t in turns}),
        "der0": _der(clip, turns, 0.0),
        "der05": _der(clip, turns, 0.5),
        "duration_s": clip.duration,
    }


def _diarization_worker(spec: dict[str, Any], requests: Any, replies: Any) -> None:
    from bench.diarization.models import installed_config
    from pipeline.diarization import Diarizer

    diarizer = Diarizer(installed_config(segmentation_step=spec.get("step", 0.5), num_threads=spec.get("threads", 0)))
    diarizer.warm_up()
    replies.put("ready")
    while (samples := requests.get()) is not None:
        t0 = time.perf_counter()
        turns = diarizer.diarize(samples)
        replies.put((turns, time.perf_counter() - t0))


def run_cell(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.diarization.bench", "_cell", json.dumps(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"cell {spec} failed:\n{proc.stderr[-3000:]}")
    cell: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return cell


# --- tables -----------------------------------------------------------------------------------


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def quality(args: argparse.Namespace) -> None:
    from bench.diarization.clips import CLIPS
    from bench.diarization.models import installed_config
    from pipeline.diarization import Diarizer

    print(f"<!-- {_load()} -->")
    print("| clip | speakers (ref) | step | threshold | speakers found | DER collar 0 | DER collar 0.5 s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.clips:
        clip = CLIPS[name]()
        for step in args.steps:
            for threshold in args.thresholds:
                diarizer = Diarizer(installed_config(segmentation_step=step, threshold=threshold))
                turns = diarizer.diarize(clip.samples)
                found = len({t.speaker for t in turns})
                print(
                    f"| {name} | {len(clip.speakers)} | {step} | {threshold} | {found} | "
                    f"{_der(clip, turns, 0.0):.1%} | {_der(clip, turns, 0.5):.1%} |",
                    flush=True,
                )


def robustness(args: argparse.Namespace) -> None:
    """The same clip shifted by 0-5.2 s of leading silence: other window alignments, same speech."""
    import numpy as np

    from bench.diarization.clips import CLIPS, Clip, Turn
    from bench.diarization.models import installed_config
    from pipeline.diarization import Diarizer

    offsets = (0.0, 1.3, 2.6, 3.9, 5.2)
    print(f"<!-- {_load()} -->")
    print(
        "| clip | step | threshold | right speaker count | speakers found per offset "
        "| DER collar 0 mean (max) | DER collar 0.5 s mean | diarize s (median, 1 thread) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.clips:
        base = CLIPS[name]()
        for step in args.steps:
            for threshold in args.thresholds:
                diarizer = Diarizer(installed_config(segmentation_step=step, threshold=threshold, num_threads=1))
                found, der0, der05, walls = [], [], [], []
                for offset in offsets:
                    pad = np.zeros(int(offset * 16_000), np.float32)
                    shifted = tuple(Turn(t.start + offset, t.end + offset, t.speaker) for t in base.turns)
                    clip = Clip(name, np.concatenate([pad, base.samples]), shifted)
                    t0 = time.perf_counter()
                    turns = diarizer.diarize(clip.samples)
                    walls.append(time.perf_counter() - t0)
                    found.append(len({t.speaker for t in turns}))
                    der0.append(_der(clip, turns, 0.0))
                    der05.append(_der(clip, turns, 0.5))
                right = sum(f == len(base.speakers) for f in found)
                print(
                    f"| {name} | {step} | {threshold} | {right}/{len(offsets)} | {' '.join(map(str, found))} | "
                    f"{statistics.mean(der0):.1%} ({max(der0):.1%}) | {statistics.mean(der05):.1%} | "
                    f"{statistics.median(walls):.1f} |",
                    flush=True,
                )


def speed(args: argparse.Namespace) -> None:
    print(f"<!-- {_load()} -->")
    print(
        "| clip | audio s | step | torch threads | diarize s (median) [runs] | x real time | CPU s | load s "
        "| warm-up s | peak RSS MB | DER 0 / 0.5 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.clips:
        for step in args.steps:
            for threads in args.threads:
                r = run_cell({"clip": name, "step": step, "threads": threads, "repeat": args.repeat})
                print(
                    f"| {name} | {r['duration_s']:.0f} | {step} | {threads} | {r['diarize_s']:.2f} {r['runs']} | "
                    f"{r['duration_s'] / r['diarize_s']:.1f} | {r['diarize_cpu_s']:.2f} | {r['load_s']:.2f} | "
                    f"{r['warm_up_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['der0']:.1%} / {r['der05']:.1%} |",
                    flush=True,
                )


CONTENTION = (
    ("diarize alone", {"mode": "alone", "threads": 2}),
    ("diarize alone", {"mode": "alone", "threads": 1}),
    ("after whisper, same process (torch imported first)", {"mode": "after_whisper", "threads": 2}),
    (
        "after whisper, same process, ctranslate2 imported first",
        {"mode": "after_whisper", "threads": 2, "ct2_first": True},
    ),
    ("after whisper, same process, torch 1 thread", {"mode": "after_whisper", "threads": 1}),
    ("beside whisper (thread), torch 1 thread, whisper 2", {"mode": "beside_whisper", "threads": 1}),
    (
        "beside whisper (thread), torch 1 thread, whisper 1",
        {"mode": "beside_whisper", "threads": 1, "whisper_threads": 1},
    ),
    ("beside whisper, separate process, torch 1 thread, whisper 2", {"mode": "process", "threads": 1}),
    (
        "beside whisper, separate process, torch 1 thread, whisper 1",
        {"mode": "process", "threads": 1, "whisper_threads": 1},
    ),
)


def contention(args: argparse.Namespace) -> None:
    print(f"<!-- {_load()} -->")
    print("| scenario | transcribe s | diarize s | transcribe + diarize wall s | x real time | runs (wall s) |")
    print("|---|---|---|---|---|---|")
    for label, extra in CONTENTION:
        spec = {"clip": args.clips[0], "step": args.steps[0], "repeat": args.repeat, **extra}
        r = run_cell(spec)
        transcribe = f"{r['transcribe_s']:.2f}" if "transcribe_s" in r else "-"
        print(
            f"| {label} | {transcribe} | {r['diarize_s']:.2f} | {r['total_s']:.2f} | "
            f"{r['duration_s'] / r['total_s']:.1f} | {r['runs']} |",
            flush=True,
        )


def _speaker_share(words: list[Any], reference: Any) -> tuple[float, int]:
    """Share of words whose speaker maps to the reference speaker at the word's midpoint.

    Each found speaker is mapped to the reference speaker it shares most words with; words in
    overlaps and gaps of the reference are not scored.
    """
    pairs = [(w.speaker, reference((w.start + w.end) / 2)) for w in words]
    pairs = [(h, r) for h, r in pairs if r is not None]
    if not pairs:
        return 0.0, 0
    refs = {r for _, r in pairs}
    mapping = {h: max(refs, key=lambda r: sum(p == (h, r) for p in pairs)) for h, _ in pairs}
    return sum(mapping[h] == r for h, r in pairs) / len(pairs), len(pairs)


def _turns_reference(turns: Any) -> Any:
    def at(t: float) -> str | None:
        inside = [x for x in turns if x.start <= t <= x.end]
        return inside[0].speaker if len(inside) == 1 else None

    return at


def _stm_text(copies: int) -> str:
    import pyannote.audio

    stm = Path(pyannote.audio.__file__).parent / "sample" / "sample.stm"
    text = " ".join(line.split(maxsplit=5)[5] for line in stm.read_text().splitlines() if len(line.split()) > 5)
    return " ".join([text] * copies)


def _normalise(text: str) -> str:
    import re

    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def embedding(args: argparse.Namespace) -> None:
    """Embedding workers 1 and 2: diarization alone and beside whisper-1-fast (1 thread), one process."""
    import threading

    from bench.diarization.clips import CLIPS
    from bench.diarization.models import installed_config
    from pipeline.config import EngineConfig
    from pipeline.diarization import Diarizer
    from pipeline.transcribe import Transcriber
    from pipeline.types import DecodedAudio, Granularity, TranscriptionRequest

    clip = CLIPS[args.clips[0]]()
    transcriber = Transcriber(EngineConfig(cpu_threads=1))
    transcriber.warm_up()
    audio = DecodedAudio(samples=clip.samples, sample_rate=16_000, duration_s=clip.duration)
    request = TranscriptionRequest(profile="whisper-1-fast", granularities=frozenset({Granularity.WORD}))
    print(f"<!-- {_load()} clip {clip.name}, step {args.steps[0]} -->")
    print("| embedding workers | diarize alone s | diarize beside whisper s | DER collar 0 |")
    print("|---|---|---|---|")
    for workers in (1, 2):
        diarizer = Diarizer(installed_config(segmentation_step=args.steps[0], embedding_workers=workers))
        diarizer.warm_up()
        alone, beside = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            turns = diarizer.diarize(clip.samples)
            alone.append(time.perf_counter() - t0)
            worker = threading.Thread(target=transcriber.transcribe, args=(audio, request))
            t0 = time.perf_counter()
            worker.start()
            diarizer.diarize(clip.samples)
            beside.append(time.perf_counter() - t0)
            worker.join()
        print(
            f"| {workers} | {', '.join(f'{x:.2f}' for x in alone)} | {', '.join(f'{x:.2f}' for x in beside)} | "
            f"{_der(clip, turns, 0.0):.1%} |",
            flush=True,
        )


def words(args: argparse.Namespace) -> None:
    """The whole Pipeline (decode, whisper and diarization beside it, assignment) on encoded clips."""
    import io
    import wave

    import jiwer

    from bench.diarization.clips import CLIPS
    from consumer.plumbing.settings import Settings
    from consumer.worker.runner import build_pipeline
    from pipeline.types import DiarizationMode, Granularity, TranscriptionRequest

    pipeline = build_pipeline(Settings(enable_diarization=True, diarization_segmentation_step=args.steps[0]))
    request = TranscriptionRequest(
        profile="whisper-1-fast",
        granularities=frozenset({Granularity.WORD, Granularity.SPEAKER}),
        diarization=DiarizationMode.ALWAYS,
    )
    print(f"<!-- {_load()} step {args.steps[0]}, whisper threads {pipeline.config.cpu_threads} -->")
    print(
        "| clip | audio s | speakers (ref / found) | words scored | words with the right speaker | WER | wall s | x real time |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.clips:
        clip = CLIPS[name]()
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16_000)
            w.writeframes((clip.samples.clip(-1, 1) * 32767).astype("<i2").tobytes())
        t0 = time.perf_counter()
        out = pipeline.process(buf.getvalue(), request)
        wall = time.perf_counter() - t0
        all_words = [w for seg in out.segments for w in seg.words]
        share, scored = _speaker_share(all_words, _turns_reference(clip.turns))
        copies = {"sample": 1, "sample4": 4}.get(name)
        wer = f"{jiwer.wer(_normalise(_stm_text(copies)), _normalise(out.text)):.1%}" if copies else "-"
        print(
            f"| {name} | {clip.duration:.0f} | {len(clip.speakers)} / {len(out.speakers)} | {scored} | "
            f"{share:.1%} | {wer} | {wall:.1f} | {clip.duration / wall:.1f} |",
            flush=True,
        )
    pipeline.close()


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "_cell":
        spec = json.loads(sys.argv[2])
        result = _separate_process_cell(spec) if spec.get("mode") == "process" else _cell(spec)
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(prog="python -m bench.diarization.bench")
    parser.add_argument("what", choices=("quality", "robustness", "speed", "contention", "words", "embedding"))
    parser.add_argument("--clips", nargs="+", default=None)
    parser.add_argument("--steps", nargs="+", type=float, default=None)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--thresholds", nargs="+", type=float, default=[0.6, 0.7, 0.8])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    defaults = {
        "quality": (["sample", "sample4", "mix4"], [0.1, 0.2, 0.3, 0.4, 0.5]),
        "robustness": (["mix4"], [0.1, 0.2, 0.3, 0.4, 0.5]),
        "speed": (["sample", "sample4", "mix4"], [0.1, 0.2, 0.3, 0.4, 0.5]),
        "contention": (["sample4"], [0.2]),
        "words": (["sample", "sample4", "mix4"], [0.2]),
        "embedding": (["sample4"], [0.2]),
    }[args.what]
    args.clips = args.clips or defaults[0]
    args.steps = args.steps or defaults[1]
    {
        "quality": quality,
        "robustness": robustness,
        "speed": speed,
        "contention": contention,
        "words": words,
        "embedding": embedding,
    }[args.what](args)


if __name__ == "__main__":
    main()
