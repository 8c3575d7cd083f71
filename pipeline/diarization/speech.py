"""Where there is sound worth diarizing, so that diarization time follows speech, not file length.

A cheap energy gate over 30 ms frames, run before any model: stretches of (near) silence longer than
``MIN_GAP_S`` are cut out, the rest is joined into one shorter waveform for the models, and the
speaker turns found on it are mapped back onto the clip's own timeline. Ten minutes of digital
silence then cost one pass of numpy over the samples instead of sixty segmentation windows and
their embeddings (issue 12: 33 s of diarization for 600 s of silence).

The gate only removes what is certainly not speech; telling speech from noise stays with the
segmentation model, which sees everything the gate keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
FRAME = 480  # 30 ms
# A frame is quiet below this absolute level (-60 dBFS), or 45 dB under the clip's loud frames
# (its 95th percentile), whichever is higher: quiet telephone speech sits around -35 to -45 dBFS,
# room noise between words 25-35 dB under the speech around it.
FLOOR_DB = -60.0
RELATIVE_DB = 45.0
# Gaps shorter than this stay in: the segmentation model needs the pauses between turns, and cutting
# them would join two speakers' words edge to edge.
MIN_GAP_S = 2.0
# What is kept of a cut gap on each side: breath and word onsets under the gate's level.
MARGIN_S = 0.25
# Below this much sound in total there is too little to tell voices apart (a CAM++ embedding wants
# about a second of one speaker): diarization is skipped as "no speech".
MIN_SOUND_S = 1.0
# One stretch of sound shorter than this (margins included) is one short utterance at most: a single
# voice, nothing to tell apart, so diarization is skipped too (issue 12: "a single short region").
MIN_SINGLE_SPAN_S = 2.0


@dataclass(frozen=True)
class Span:
    """One kept stretch: ``start``/``end`` on the clip, placed at ``offset`` in the joined waveform."""

    start: float
    end: float
    offset: float


@dataclass(frozen=True)
class SpeechMap:
    spans: tuple[Span, ...]

    @property
    def sound_s(self) -> float:
        return sum(s.end - s.start for s in self.spans)

    def to_clip(self, start: float, end: float) -> list[tuple[float, float]]:
        """A stretch of the joined waveform as stretches of the clip (one per span it touches)."""
        out = []
        for span in self.spans:
            length = span.end - span.start
            s, e = max(start, span.offset), min(end, span.offset + length)
            if e > s:
                out.append((span.start + s - span.offset, span.start + e - span.offset))
        return out


def too_little(speech: SpeechMap) -> bool:
    """Whether there is too little sound to diarize: under MIN_SOUND_S, or one short stretch."""
    if speech.sound_s < MIN_SOUND_S:
        return True
    return len(speech.spans) == 1 and speech.sound_s < MIN_SINGLE_SPAN_S


def frame_levels_db(samples: np.ndarray) -> np.ndarray:
    """RMS level of each 30 ms frame in dBFS (-inf-safe: silence is -120)."""
    n = len(samples) // FRAME
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    frames = samples[: n * FRAME].reshape(n, FRAME).astype(np.float32, copy=False)
    power = np.einsum("ij,ij->i", frames, frames) / FRAME
    levels: np.ndarray = (10.0 * np.log10(np.maximum(power, 1e-12))).astype(np.float32)
    return levels


def find_sound(samples: np.ndarray) -> SpeechMap:
    """The stretches of ``samples`` (16 kHz mono) that are not long silences."""
    levels = frame_levels_db(samples)
    if levels.size == 0:
        return SpeechMap(())
    loud = float(np.percentile(levels, 95))
    gate = max(FLOOR_DB, loud - RELATIVE_DB)
    active = levels > gate
    if not active.any():
        return SpeechMap(())
    frame_s = FRAME / SAMPLE_RATE
    duration = len(samples) / SAMPLE_RATE
    # Runs of active frames, then joined across gaps shorter than MIN_GAP_S.
    edges = np.flatnonzero(np.diff(np.concatenate(([0], active.astype(np.int8), [0]))))
    runs = [(edges[i] * frame_s, edges[i + 1] * frame_s) for i in range(0, len(edges), 2)]
    merged: list[list[float]] = []
    for start, end in runs:
        if merged and start - merged[-1][1] < MIN_GAP_S:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    spans = []
    offset = 0.0
    for start, end in merged:
        start, end = max(0.0, start - MARGIN_S), min(duration, end + MARGIN_S)
        spans.append(Span(round(start, 3), round(end, 3), round(offset, 3)))
        offset += round(end, 3) - round(start, 3)
    return SpeechMap(tuple(spans))


def join(samples: np.ndarray, speech: SpeechMap) -> np.ndarray:
    """The kept spans back to back (the clip itself when nothing was cut)."""
    if is_whole(speech, len(samples) / SAMPLE_RATE):
        return samples
    return np.concatenate([samples[int(s.start * SAMPLE_RATE) : int(s.end * SAMPLE_RATE)] for s in speech.spans])


def is_whole(speech: SpeechMap, duration_s: float) -> bool:
    return len(speech.spans) == 1 and speech.spans[0].start == 0.0 and speech.spans[0].end >= duration_s - 1e-3


def remap(turns: Sequence[tuple[float, float, str]], speech: SpeechMap) -> list[tuple[float, float, str]]:
    """Turns found on the joined waveform, on the clip's timeline (a turn over a cut becomes two)."""
    return [(s, e, label) for start, end, label in turns for s, e in speech.to_clip(start, end)]


__all__ = ["MIN_SOUND_S", "MIN_SINGLE_SPAN_S", "SpeechMap", "find_sound", "join", "remap", "too_little"]
