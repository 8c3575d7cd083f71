"""Diarization's cost on nothing and on a lot: ten minutes of silence, and a long call, with peak RSS.

    .venv/bin/python -m bench.diarization.long make /tmp/hour.wav --minutes 60   # sample.wav tiled
    .venv/bin/python -m bench.diarization.long run /tmp/hour.wav                 # one call through the stage
    .venv/bin/python -m bench.diarization.long silence                           # 600 s of digital silence

``run`` and ``silence`` run the stage's own ``Pipeline`` as a worker builds it
(``consumer.worker.runner.build_pipeline``, the settings' defaults with ``ENABLE_DIARIZATION=true``, profile
whisper-1-fast, word and speaker granularity) in a process that imports nothing else (the clip is
made beforehand by ``make``, which needs pyannote for sample.wav), and print the steps' seconds and
the process's peak RSS (``ru_maxrss``: models, the file's bytes and its decoded samples included).
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import time
import wave

import numpy as np

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")


def _wav(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def main() -> None:
    from bench.diarization.tune import cpu_line
    from consumer.plumbing.settings import Settings
    from consumer.worker.runner import build_pipeline
    from pipeline.types import DiarizationMode, Granularity, TranscriptionRequest

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["make", "run", "silence"])
    parser.add_argument("path", nargs="?")
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    if args.what == "make":
        from bench.diarization.clips import sample

        base = sample().samples
        samples = np.tile(base, int(np.ceil(args.minutes * 60 * 16_000 / len(base))))[: int(args.minutes * 60 * 16_000)]
        with open(args.path, "wb") as f:
            f.write(_wav(samples))
        return
    if args.what == "silence":
        data = _wav(np.zeros(600 * 16_000, dtype=np.float32))
    else:
        with open(args.path, "rb") as f:
            data = f.read()
    settings = Settings(enable_diarization=True, max_audio_duration_s=4 * 3600)
    pipeline = build_pipeline(settings)
    ready_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    request = TranscriptionRequest(
        profile="whisper-1-fast",
        granularities=frozenset({Granularity.WORD, Granularity.SPEAKER}),
        diarization=DiarizationMode.ALWAYS,
    )
    started = time.perf_counter()
    out = pipeline.process(data, request)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(cpu_line())
    print(
        f"{args.what}: {out.duration_s:.0f} s of audio; diarization {out.diarization.status.value}; "
        f"speakers {len(out.speakers)}; words {sum(len(s.words) for s in out.segments)}"
    )
    print(
        f"decode {out.decode_s:.2f} s, transcribe {out.transcribe_s:.2f} s, diarize {out.diarize_s:.2f} s, "
        f"inference (wall) {out.inference_s:.2f} s, whole call {wall:.2f} s"
    )
    print(f"peak RSS when ready {ready_mb:.0f} MB (the file's bytes included), peak RSS after {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
