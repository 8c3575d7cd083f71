"""Bare faster-whisper over files, the baseline ``fwv2 bench`` compares the stage with.

Runs in its own process (``python -m bench.bare``) so its peak memory is its own.
It uses the same model, compute type, threads and profile options as the stage, and lets
faster-whisper decode the files itself, as a user of bare faster-whisper would.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from faster_whisper import WhisperModel

from pipeline.profiles import get_profile
from pipeline.transcribe import bundled_model_path


def peak_rss_bytes(pid: str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--compute-type", default="int8")
    # Word timestamps, as the stage computes them when speakers are asked for (same options, fair ratio).
    parser.add_argument("--words", action="store_true")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    profile = get_profile(args.profile)
    model = WhisperModel(
        args.model or str(bundled_model_path()), device="cpu", compute_type=args.compute_type, cpu_threads=args.threads
    )
    options = {"language": "en", **profile.whisper_options()}
    if args.words:
        options["word_timestamps"] = True
    list(model.transcribe(args.files[0], **options)[0])  # warm-up, as the stage's worker does

    per_file = []
    started = time.perf_counter()
    for path in args.files:
        t0 = time.perf_counter()
        segments, info = model.transcribe(path, **options)
        text = " ".join(s.text.strip() for s in segments)
        per_file.append({"file": path, "audio_s": info.duration, "wall_s": time.perf_counter() - t0, "text": text})
    wall = time.perf_counter() - started
    json.dump({"wall_s": wall, "files": per_file, "peak_rss_bytes": peak_rss_bytes()}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
