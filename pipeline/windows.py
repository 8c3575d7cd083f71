"""Long audio in windows, so that faster-whisper's per-call copies stay bounded.

faster-whisper computes the log-mel spectrogram of the whole (speech-only) waveform at once, and its
STFT holds several float32 and complex64 copies of it: for an hour of speech that, not the decoded
waveform, is the peak (3.3 GB for an hour with tiny.en, docs/BENCHMARKS.md). Transcribing windows of
about ``window_s`` one after the other bounds those copies by the window. Each window ends at the
quietest 100 ms of the 30 s before its nominal end, so no word is cut in two.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000
# Where to look for a cut: the last 30 s of a window (one Whisper window), in 100 ms frames.
SEARCH_S = 30.0
FRAME = SAMPLE_RATE // 10


def quiet_cut(samples: np.ndarray, target: int, search: int = int(SEARCH_S * SAMPLE_RATE), frame: int = FRAME) -> int:
    """Where to end a window near ``target``: the middle of the quietest ``frame`` in the ``search`` before it."""
    if target >= len(samples):
        return len(samples)
    lo = max(0, target - search)
    usable = (target - lo) // frame * frame
    if usable == 0:
        return target
    frames = samples[target - usable : target].reshape(-1, frame)
    quietest = int(np.argmin(np.einsum("ij,ij->i", frames, frames)))
    return target - usable + quietest * frame + frame // 2


def windows(samples: np.ndarray, window_s: float) -> list[tuple[int, int]]:
    """(start, end) sample ranges covering ``samples`` in order, each about ``window_s`` long."""
    step = int(window_s * SAMPLE_RATE)
    if step <= 0 or len(samples) <= step:
        return [(0, len(samples))]
    spans = []
    start = 0
    while start < len(samples):
        end = quiet_cut(samples, start + step, search=min(int(SEARCH_S * SAMPLE_RATE), step // 2))
        spans.append((start, end))
        start = end
    return spans
