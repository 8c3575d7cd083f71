"""Other diarizers run on our clips and scored the same way: a peer to compare against.

For now one peer, senko 0.2.2 (https://github.com/narcotic-sh/senko, MIT), installed apart from
the project by ``scripts/install-senko.sh`` into ``~/.cache/fwv2/senko-venv`` (it needs torch,
numba and UMAP, which the service does not). This module runs in the project's venv and starts
``bench/diarization/_senko_runner.py`` with senko's interpreter; it is a benchmark tool only.

On a Linux CPU senko 0.2.2 runs Silero VAD (its pyannote segmentation-3.0 VAD is CUDA/CoreML
only), Kaldi fbank from its bundled C++ library, CAM++ (the same ``campplus_cn_en_common`` weights
as ours) on 1.5 s windows every 0.6 s, and spectral clustering (UMAP + HDBSCAN past 20 min).

Which output: senko returns ``raw_segments`` (its 1.5 s windows labelled and joined, overlaps split
at their midpoints) and ``merged_segments`` (the same after joining a speaker's turns across gaps
of up to 4 s and dropping turns of 0.78 s or less). We score ``merged_segments``: it is what senko's
README, example and ``save_rttm`` use, so it is what a user of senko gets. ``--segments raw`` scores
the other for comparison.

Timing: senko is loaded once (with its own warm-up, which runs UMAP + HDBSCAN on 4,250 random
embeddings and compiles their numba code: 40-130 s on 2 cores), diarizes the first clip once
untimed, then each clip ``repeat`` times (3); ``seconds`` per clip is the fastest run, without
model load and warm-up. Threads: 2 by default (torch, OpenMP, numba); senko's Silero VAD runs on
one thread by its own choice. CPU only. With 2 threads on 2 cores that other jobs also use,
torch's OpenMP runs vary several-fold (2-14 s for a 30 s clip); ``--threads 1`` was steady.

    .venv/bin/python -m bench.diarization.peer senko WAV [WAV ...] --out DIR [--threads 2] [--repeat 3] [--segments merged|raw]

writes ``DIR/<wav name>.rttm`` per clip and ``DIR/senko.json`` (seconds, speakers found, x real
time, and DER with a 0.25 s collar where a reference ``<wav name>.rttm`` lies beside the wav).
WAVs in any other format are converted to 16 kHz mono 16-bit with ffmpeg first (senko reads only that).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.diarization.clips import SAMPLE_RATE, Clip, Turn, read_rttm, read_wav, score, write_rttm

SENKO_VERSION = "0.2.2"
CACHE = Path(os.environ.get("CACHE_DIR", Path.home() / ".cache" / "fwv2"))
SENKO_VENV = Path(os.environ.get("SENKO_VENV", CACHE / "senko-venv"))
RUNNER = Path(__file__).with_name("_senko_runner.py")
THREADS = 2
REPEAT = 3
COLLAR = 0.25
SEGMENTS = ("merged", "raw")


@dataclass(frozen=True)
class PeerClip:
    """What a peer found in one clip."""

    name: str
    path: Path
    turns: tuple[Turn, ...]
    seconds: float  # diarizing this clip, after load and warm-up (the fastest of the repeats)
    duration: float

    @property
    def speakers(self) -> int:
        return len({t.speaker for t in self.turns})

    @property
    def x_real_time(self) -> float:
        """Audio seconds per second of diarizing."""
        return self.duration / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class PeerRun:
    peer: str
    clips: dict[str, PeerClip]
    details: dict[str, object]  # the runner's own report (versions, load time, per-clip stage timings)


def senko_python() -> Path:
    python = SENKO_VENV / "bin" / "python"
    if not python.is_file():
        raise FileNotFoundError(f"no senko venv at {SENKO_VENV}: run scripts/install-senko.sh")
    return python


def _is_senko_wav(path: Path) -> bool:
    try:
        with wave.open(str(path)) as w:
            return bool(w.getframerate() == SAMPLE_RATE and w.getnchannels() == 1 and w.getsampwidth() == 2)
    except (wave.Error, EOFError):
        return False


def _as_senko_wav(path: Path, folder: Path) -> Path:
    """``path`` if it is 16 kHz mono 16-bit wav already, else a converted copy in ``folder``."""
    if _is_senko_wav(path):
        return path
    target = folder / f"{path.stem}.wav"
    pcm16 = ["-ac", "1", "-ar", str(SAMPLE_RATE), "-acodec", "pcm_s16le"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(path), *pcm16, str(target)], check=True)
    return target


def run_senko(paths: Sequence[Path], threads: int = THREADS, segments: str = "merged", repeat: int = REPEAT) -> PeerRun:
    """Diarize every file with senko in its own venv; clips keyed by file name without suffix."""
    if segments not in SEGMENTS:
        raise ValueError(f"segments must be one of {SEGMENTS}")
    names = [Path(p).stem for p in paths]
    if len(set(names)) != len(names):
        raise ValueError("two inputs have the same name; the RTTMs would collide")
    python = senko_python()
    with tempfile.TemporaryDirectory(prefix="senko-") as tmp:
        wavs = [_as_senko_wav(Path(p), Path(tmp)) for p in paths]
        report = Path(tmp) / "report.json"
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        options = ["--threads", str(threads), "--repeat", str(repeat), "--json", str(report)]
        command = [str(python), str(RUNNER), *options, *map(str, wavs)]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"senko runner failed ({done.returncode}):\n{done.stderr[-4000:]}")
        details = json.loads(report.read_text())
    clips: dict[str, PeerClip] = {}
    for name, source, wav in zip(names, paths, wavs, strict=True):
        found = details["clips"][str(wav)]
        turns = tuple(Turn(float(s), float(e), str(spk)) for s, e, spk in found[f"{segments}_segments"])
        clips[name] = PeerClip(name, Path(source), turns, float(found["seconds"]), float(found["duration_s"]))
    return PeerRun("senko", clips, details)


def senko_turns(paths: list[Path]) -> dict[str, tuple[list[Turn], float]]:
    """senko's merged turns and seconds (after warm-up, without model load) per clip, keyed by file name without suffix."""
    run = run_senko(paths)
    return {name: (list(clip.turns), clip.seconds) for name, clip in run.clips.items()}


def cpu() -> dict[str, object]:
    """The CPU's model and whether it has AVX-512 (timings depend on both)."""
    model, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "cores": os.cpu_count(), "avx512f": "avx512f" in flags}


def der(path: Path, turns: Sequence[Turn], collar: float = COLLAR) -> float | None:
    """DER against ``<name>.rttm`` beside ``path``; None without one (``bench.diarization.clips.score``)."""
    rttm = path.with_suffix(".rttm")
    if not rttm.is_file():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        samples = read_wav(_as_senko_wav(path, Path(tmp)))
    return score(Clip(path.stem, samples, read_rttm(rttm)), turns, collar)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.diarization.peer", description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=["senko"])
    parser.add_argument("wavs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for <name>.rttm and <peer>.json")
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--repeat", type=int, default=REPEAT, help="timed runs per clip; the fastest counts")
    parser.add_argument("--segments", choices=SEGMENTS, default="merged", help="which of senko's outputs to keep")
    parser.add_argument("--collar", type=float, default=COLLAR, help="DER collar where a reference RTTM is found")
    args = parser.parse_args(argv)

    run = run_senko(args.wavs, args.threads, args.segments, args.repeat)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [f"{'clip':<24} {'duration':>8} {'seconds':>8} {'x RT':>6} {'speakers':>8} {'DER':>7}"]
    summary: dict[str, dict[str, object]] = {}
    for name, clip in run.clips.items():
        write_rttm(args.out / f"{name}.rttm", name, clip.turns)
        error = der(clip.path, clip.turns, args.collar)
        summary[name] = {
            "seconds": round(clip.seconds, 4),
            "duration_s": round(clip.duration, 3),
            "x_real_time": round(clip.x_real_time, 2),
            "speakers": clip.speakers,
            "der": None if error is None else round(error, 4),
        }
        shown = "-" if error is None else f"{error:.2%}"
        rows.append(
            f"{name:<24} {clip.duration:>7.1f}s {clip.seconds:>7.2f}s {clip.x_real_time:>6.1f} {clip.speakers:>8} {shown:>7}"
        )
    report = {
        "peer": run.peer,
        "segments": args.segments,
        "threads": args.threads,
        "repeat": args.repeat,
        "collar": args.collar,
        "cpu": cpu(),
        "clips": summary,
        "runner": run.details,
    }
    (args.out / f"{run.peer}.json").write_text(json.dumps(report, indent=1) + "\n")
    print("\n".join(rows))
    loaded = f"load {run.details['load_s']:.1f}s, warm-up {run.details['warm_up_s']:.1f}s"
    print(f"{loaded}; {args.out / (run.peer + '.json')}")


if __name__ == "__main__":
    main(sys.argv[1:])
