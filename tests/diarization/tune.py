"""Choose the diarization defaults on the tuning split; report them on the held-out split.

    .venv/bin/python -m tests.diarization.tune grid --split tune --with-dev # every setting, tuning clips
    .venv/bin/python -m tests.diarization.tune grid --split tune --with-dev --weights 0 0.1 --thresholds 0.3 0.5
    .venv/bin/python -m tests.diarization.tune report --split heldout       # the defaults, held-out clips
    .venv/bin/python -m tests.diarization.tune report --split heldout --baseline   # pyannote's defaults
    .venv/bin/python -m tests.diarization.tune words --split heldout        # whole stage: words' speakers

``grid`` runs segmentation and embeddings once per clip (the worker's engine), then every setting of
the segments clustering on those (clustering is milliseconds). A setting is ranked by the number of
clips whose speaker count is exact, then by mean DER at a 0.25 s collar. ``report`` runs the worker's
engine (``make_diarizer``) clip by clip and prints per-clip figures: speakers found against the
reference, DER at collar 0 and 0.25 s, seconds. ``--baseline`` is the engine before issue 12:
pyannote's SpeakerDiarization on the same weights (step 0.2, threshold 0.7, minimum cluster size 12,
its 20 % filter).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import subprocess
import time
from dataclasses import replace
from typing import Any

import numpy as np

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")


def cpu_line() -> str:
    """The CPU model and whether it has AVX-512: every figure names both (speed differs by kind)."""
    model = platform.processor() or "unknown"
    avx512 = False
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("Flags:"):
                avx512 = " avx512f " in f" {line} "
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"CPU: {model}, {os.cpu_count()} cores, AVX-512 {'yes' if avx512 else 'no'}; load {os.getloadavg()[0]:.2f}"


def _clips(split: str) -> list[Any]:
    from tests.diarization import dataset

    return list(dataset.build(split))


def _score(clip: Any, turns: Any, collar: float) -> float:
    from tests.diarization import dataset

    return float(dataset.score(clip, turns, collar))


# The engine before issue 12: pyannote's SpeakerDiarization at step 0.2, threshold 0.7, minimum
# cluster size 12 and its 20 % filter, on the same two models.
BASELINE: dict[str, Any] = {
    "clustering": "pyannote",
    "segmentation_step": 0.2,
    "threshold": 0.7,
    "min_cluster_size": 12,
    "min_active_ratio": 0.2,
}


def grid(split: str, with_dev: bool, thresholds: list[float], train: list[float], weights: list[float]) -> None:
    """Every (threshold, min_train_s, spectral_weight) of the segments clustering on one segmentation + embedding pass per clip."""
    from pipeline.diarization import make_diarizer
    from pipeline.diarization.light import turns_by_first_appearance
    from pipeline.diarization.segments import MIN_EMBED_S, Frames, cluster, find_segments, label_frames
    from pipeline.diarization.speech import find_sound, join, remap
    from tests.diarization.clips import mix4, sample4
    from tests.diarization.models import installed_config

    diarizer = make_diarizer(installed_config())
    clips = _clips(split) + ([sample4(), mix4()] if with_dev else [])
    print(cpu_line())
    cached = []
    for clip in clips:
        sound = find_sound(clip.samples)
        joined = np.ascontiguousarray(join(clip.samples, sound), dtype=np.float32)
        activity, chunk_step = diarizer._segmentation(joined, diarizer.config.segmentation_step)
        frames = Frames(chunk_step, diarizer._frame_offset, diarizer._frame_step, diarizer._frame_duration)
        segments = [s for s in find_segments(activity, frames, len(joined) / 16_000) if s.duration >= MIN_EMBED_S]
        # the stretches the engine embeds (segments.speaker_turns): each segment's middle MAX_EMBED_S
        vectors, spectra = diarizer._embed(joined, [s.embedded() for s in segments])
        cached.append((clip, sound, activity, frames, segments, vectors, spectra, len(joined) / 16_000))
    rows = []
    for threshold, min_train, weight in itertools.product(thresholds, train, weights):
        exact, ders, found = 0, [], []
        for clip, sound, activity, frames, segments, vectors, spectra, duration in cached:
            durations = np.array([s.duration for s in segments])
            labels = cluster(vectors, durations, threshold, min_train, spectra=spectra, spectral_weight=weight)
            raw = [(a, b, str(k)) for a, b, k in label_frames(activity, segments, labels, frames, duration)]
            turns = turns_by_first_appearance(remap(raw, sound))
            n = len({t.speaker for t in turns})
            exact += n == len(clip.speakers)
            found.append(n)
            ders.append(_score(clip, turns, 0.25))
        rows.append((exact, statistics.mean(ders), threshold, min_train, weight, found))
    rows.sort(key=lambda r: (-r[0], r[1]))
    print(f"clips: {', '.join(f'{c.name} ({len(c.speakers)})' for c in clips)}")
    print("| count exact | mean DER 0.25 | threshold | min train s | spectral weight | speakers found per clip |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]}/{len(clips)} | {r[1]:.1%} | {r[2]} | {r[3]} | {r[4]} | {' '.join(map(str, r[5]))} |")


def report(split: str, baseline: bool, overrides: dict[str, Any]) -> None:
    from pipeline.diarization import make_diarizer
    from tests.diarization.models import installed_config

    clips = _clips(split)
    config = installed_config()
    if baseline:
        config = replace(config, **BASELINE)
    config = replace(config, **overrides)
    diarizer = make_diarizer(config)  # the engine a worker would run with these settings
    diarizer.warm_up()
    print(cpu_line())
    print(
        f"settings: {type(diarizer).__name__}, clustering {config.clustering}, runtime {diarizer.embedding_runtime}, step {config.segmentation_step}, threshold {config.threshold}, min cluster {config.min_cluster_size}, "
        f"min train {config.min_train_s} s, spectral weight {config.spectral_weight}, min active {config.min_active_ratio}"
    )
    print("| clip | audio s | speakers (ref) | found | DER collar 0 | DER collar 0.25 s | diarize s | x real time |")
    print("|---|---|---|---|---|---|---|---|")
    exact, ders, total_audio, total_s = 0, [], 0.0, 0.0
    for clip in clips:
        started = time.perf_counter()
        turns = diarizer.diarize(clip.samples)
        took = time.perf_counter() - started
        found = len({t.speaker for t in turns})
        exact += found == len(clip.speakers)
        d0, d25 = _score(clip, turns, 0.0), _score(clip, turns, 0.25)
        if not clip.name.startswith("real"):
            ders.append(d25)
        total_audio += clip.duration
        total_s += took
        print(
            f"| {clip.name} | {clip.duration:.1f} | {len(clip.speakers)} | {found} | {d0:.1%} | {d25:.1%} | {took:.2f} | {clip.duration / took:.0f} |",
            flush=True,
        )
    print(
        f"\nspeaker count exact on {exact}/{len(clips)} clips; mean DER (collar 0.25 s) of synthetic clips "
        f"{statistics.mean(ders):.1%} (max {max(ders):.1%}); {total_audio:.0f} s of audio in {total_s:.1f} s "
        f"({total_audio / total_s:.0f}x real time)"
    )


def words(split: str) -> None:
    """The whole stage on each clip (whisper-1-fast, words + speakers): words with the right speaker."""
    import io
    import wave

    from consumer.plumbing.settings import Settings
    from consumer.worker.runner import build_pipeline
    from pipeline.types import DiarizationMode, Granularity, TranscriptionRequest

    pipeline = build_pipeline(Settings(enable_diarization=True))
    request = TranscriptionRequest(
        profile="whisper-1-fast",
        granularities=frozenset({Granularity.WORD, Granularity.SPEAKER}),
        diarization=DiarizationMode.ALWAYS,
    )
    print(cpu_line())
    print("| clip | speakers (ref / found) | words scored | words with the right speaker | stage x real time |")
    print("|---|---|---|---|---|")
    for clip in _clips(split):
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16_000)
            w.writeframes((np.clip(clip.samples, -1, 1) * 32767).astype("<i2").tobytes())
        started = time.perf_counter()
        out = pipeline.process(buf.getvalue(), request)
        took = time.perf_counter() - started
        pairs = []
        for word in (w for seg in out.segments for w in seg.words):
            mid = (word.start + word.end) / 2
            refs = {t.speaker for t in clip.turns if t.start <= mid <= t.end}
            if len(refs) == 1 and word.speaker is not None:  # overlaps and gaps are not scored
                pairs.append((word.speaker, refs.pop()))
        # Each found speaker stands for the reference speaker it shares most words with.
        votes: dict[str, dict[str, int]] = {}
        for found, ref in pairs:
            votes.setdefault(found, {}).setdefault(ref, 0)
            votes[found][ref] += 1
        best = {found: max(v, key=v.__getitem__) for found, v in votes.items()}
        right = sum(best[found] == ref for found, ref in pairs) / max(1, len(pairs))
        print(
            f"| {clip.name} | {len(clip.speakers)} / {len(out.speakers)} | {len(pairs)} | {right:.1%} | {clip.duration / took:.1f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grid")
    g.add_argument("--split", default="tune")
    g.add_argument(
        "--with-dev", action="store_true", help="also the dev calls sample4 and mix4 (tests/diarization/clips.py)"
    )
    g.add_argument("--thresholds", type=float, nargs="+", default=[0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55])
    g.add_argument("--train", type=float, nargs="+", default=[1.0, 1.5, 2.0])
    g.add_argument(
        "--weights",
        type=float,
        nargs="+",
        default=[0.0, 0.1],
        help="spectral_weight: the spectral-envelope distance beside CAM++'s",
    )
    w = sub.add_parser("words")
    w.add_argument("--split", default="heldout")
    r = sub.add_parser("report")
    r.add_argument("--split", default="heldout")
    r.add_argument("--baseline", action="store_true")
    r.add_argument("--set", nargs="*", default=[], help="config overrides, e.g. threshold=0.6 segmentation_step=0.5")
    args = parser.parse_args()
    if args.command == "words":
        words(args.split)
    elif args.command == "grid":
        grid(args.split, args.with_dev, args.thresholds, args.train, args.weights)
    else:
        overrides = {k: (int(v) if v.isdigit() else float(v)) for k, v in (s.split("=", 1) for s in args.set)}
        report(args.split, args.baseline, overrides)


if __name__ == "__main__":
    main()
