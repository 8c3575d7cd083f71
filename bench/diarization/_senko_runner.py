"""Runs senko on wav files and writes what it found as JSON; executed by senko's own venv, not the project's.

    ~/.cache/fwv2/senko-venv/bin/python bench/diarization/_senko_runner.py --threads 2 --json OUT.json A.wav [B.wav ...]

``bench/diarization/peer.py`` calls this and is what to use; this file imports nothing from the
project (it runs under another interpreter) and only the standard library besides senko.
Each wav must be 16 kHz mono 16-bit (peer.py converts). senko is loaded once (its own warm-up
included), then the first clip is diarized once untimed to warm what senko's warm-up leaves cold,
then every clip is diarized ``--repeat`` times and timed: ``seconds`` is the fastest of those runs
(the least disturbed by other work on the machine; ``runs_s`` has them all) and excludes model load
and warm-up. The turns are those of the last run (senko is deterministic on the CPU).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import wave
from typing import Any

VERSION = "0.2.2"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wavs", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per clip; the fastest counts")
    parser.add_argument("--json", required=True, help="where to write the results")
    args = parser.parse_args(argv)
    threads = str(args.threads)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[name] = threads  # before torch, numpy and numba are imported
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

    started = time.perf_counter()
    senko: Any = importlib.import_module("senko")
    torch: Any = importlib.import_module("torch")
    from importlib.metadata import version

    if version("senko") != VERSION:
        sys.exit(f"senko {version('senko')} found, {VERSION} expected: run scripts/install-senko.sh")
    diarizer = senko.Diarizer(device="cpu", warmup=True, quiet=True)
    # senko sets torch's threads to os.cpu_count() after its single-threaded Silero VAD; hold it at ours.
    diarizer.logical_cores = args.threads
    torch.set_num_threads(args.threads)
    load_s = time.perf_counter() - started

    started = time.perf_counter()
    diarizer.diarize(args.wavs[0])
    warm_up_s = time.perf_counter() - started

    clips = {}
    for path in args.wavs:
        with wave.open(path) as w:
            duration = w.getnframes() / w.getframerate()
        runs = []
        for _ in range(max(1, args.repeat)):
            started = time.perf_counter()
            result = diarizer.diarize(path)
            runs.append(time.perf_counter() - started)
        merged = result["merged_segments"] if result else []
        raw = result["raw_segments"] if result else []
        clips[path] = {
            "seconds": min(runs),
            "runs_s": runs,
            "duration_s": duration,
            "merged_segments": [[float(s["start"]), float(s["end"]), str(s["speaker"])] for s in merged],
            "raw_segments": [[float(s["start"]), float(s["end"]), str(s["speaker"])] for s in raw],
            "merged_speakers": int(result["merged_speakers_detected"]) if result else 0,
            "raw_speakers": int(result["raw_speakers_detected"]) if result else 0,
            "vad_segments": len(result["vad"]) if result else 0,
            "timing": {k: float(v) for k, v in (result["timing_stats"] if result else {}).items()},
        }
    out = {
        "senko": version("senko"),
        "torch": str(torch.__version__),
        "device": diarizer.device,
        "vad": diarizer.vad_model_type,
        "clustering": diarizer.clustering_location,
        "threads": args.threads,
        "repeat": args.repeat,
        "torch_threads": int(torch.get_num_threads()),
        "load_s": load_s,
        "warm_up_s": warm_up_s,
        "clips": clips,
    }
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
