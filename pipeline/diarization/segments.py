"""Speaker turns from a segmentation and one embedding per speech segment: the pure-numpy core.

pyannote's own pipeline embeds every (10 s window, local speaker) pair, at a step of 1-2 s: each
second of speech is embedded 5-10 times, and every embedding mixes whatever that speaker said in
the window, edges and errors included. Here the windows tile the clip (step = window), and the
embedding unit is a *segment*: a run of frames in which exactly one local speaker of the window
talks. Each second of speech is embedded once, and each embedding is as clean as the
segmentation can make it, which is what tells apart voices that differ only by an espeak
variant (cosine 0.7-0.78 across such voices, 0.77-0.9 within one; docs/DIARIZATION.md).

1. ``find_segments``: runs of one active local speaker per window (overlap frames excluded).
2. the caller embeds each segment of at least ``MIN_EMBED_S``.
3. ``cluster``: agglomerative clustering (average linkage) of the segments of at least
   ``min_train_s``, on the cosine distance of their embeddings plus ``spectral_weight`` times the
   distance of their long-term spectra (``voice.py``; 0 by default, measured and rejected); the
   ``threshold`` decides the number of speakers, ``min_speakers``/``max_speakers`` bound it.
   Shorter segments join the nearest speaker.
4. ``label_frames``: every active (window, local speaker, frame), overlaps included, takes the
   speaker of the nearest embedded segment of the same local speaker in that window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from pipeline.diarization.config import DiarizationConfig
from pipeline.diarization.spectral import SpectralSettings, cluster_units, join_nearest, unit_rows
from pipeline.diarization.voice import spectral_distance

# Shortest segment worth an embedding: CAM++ needs a few frames after its 2x downsampling, and
# below ~0.25 s the embedding is mostly the word, not the voice.
MIN_EMBED_S = 0.25
# Longest stretch of one segment that is embedded (its middle): embedding is most of diarization's
# time and grows with the length. On the tuning split and dev calls, 3 s gave the same counts and
# DER as whole segments (8/16, 16.1 %); 2 s: 7/16; 1.5 s: 4-5/16 (docs/DIARIZATION.md).
MAX_EMBED_S = 3.0
# Frames of one speaker closer than this are one turn (the segmentation's frame jitter).
MERGE_GAP_S = 0.1


@dataclass(frozen=True)
class Segment:
    """A run of ``frames`` [first, last) in ``chunk`` where only local speaker ``local`` talks."""

    chunk: int
    local: int
    first: int
    last: int
    start: float  # seconds on the waveform
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    def embedded(self) -> tuple[float, float]:
        """The stretch that is embedded: the middle MAX_EMBED_S, or all of a shorter segment."""
        if self.duration <= MAX_EMBED_S:
            return self.start, self.end
        start = self.start + (self.duration - MAX_EMBED_S) / 2
        return start, start + MAX_EMBED_S


@dataclass(frozen=True)
class Frames:
    """Timing of the segmentation output: chunk c's frame f is centred at c*chunk_step + offset + f*frame_step."""

    chunk_step: float
    frame_offset: float
    frame_step: float
    frame_duration: float

    def time(self, chunk: int, frame: int) -> float:
        return chunk * self.chunk_step + self.frame_offset + frame * self.frame_step


def find_segments(activity: np.ndarray, frames: Frames, duration_s: float) -> list[Segment]:
    """Single-speaker runs of ``activity`` (chunks, frames, local speakers) in {0, 1}."""
    out = []
    alone = activity.sum(axis=2) == 1
    half = frames.frame_step / 2
    for c in range(activity.shape[0]):
        for k in range(activity.shape[2]):
            clean = (activity[c, :, k] > 0) & alone[c]
            if not clean.any():
                continue
            edges = np.flatnonzero(np.diff(np.concatenate(([0], clean.astype(np.int8), [0]))))
            for first, last in zip(edges[::2], edges[1::2], strict=True):
                start = max(0.0, frames.time(c, first) - half)
                end = min(duration_s, frames.time(c, last - 1) + half)
                if end > start:
                    out.append(Segment(c, k, int(first), int(last), start, end))
    return out


def cluster(
    embeddings: np.ndarray,
    durations: np.ndarray,
    threshold: float,
    min_train_s: float,
    min_speakers: int = 1,
    max_speakers: int = 8,
    spectra: np.ndarray | None = None,
    spectral_weight: float = 0.0,
) -> np.ndarray:
    """A speaker index (0..n-1) per embedding row; rows of NaN get -1.

    The distance of two segments is the cosine distance of their embeddings plus
    ``spectral_weight`` times the RMS difference of their ``spectra`` (``voice.spectrum``), when
    given. ``threshold`` is the distance at which average-linkage merging stops. Segments shorter
    than ``min_train_s`` do not take part in forming speakers: they join the speaker whose segments
    are closest on average. (Letting far-off short segments form speakers of their own was tried:
    it found none of the tuning split's back-channel-only speakers and invented three in a real
    two-person call, 8 against 9 of 16 counts right; docs/DIARIZATION.md.)
    """
    labels = np.full(len(embeddings), -1, dtype=np.int64)
    valid = ~np.isnan(embeddings).any(axis=1)
    if not valid.any():
        return labels
    x = unit_rows(np.nan_to_num(embeddings))
    distance = np.clip(1.0 - x @ x.T, 0.0, 2.0)
    if spectra is not None and spectral_weight > 0:
        distance = distance + spectral_weight * spectral_distance(spectra)
    train = np.flatnonzero(valid & (durations >= min_train_s))
    if train.size == 0:
        train = np.flatnonzero(valid)  # only short segments: cluster what there is
    labels[train] = _agglomerate(distance[np.ix_(train, train)], threshold, min_speakers, max_speakers)
    rest = np.flatnonzero(valid & (labels < 0))
    if rest.size:
        labels[rest] = _mean_distance(distance, rest, labels).argmin(axis=1)
    return _by_first_use(labels)


def _mean_distance(distance: np.ndarray, rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(len(rows), speakers): each row's mean distance to each speaker's segments."""
    speakers = int(labels.max()) + 1
    return np.stack([distance[np.ix_(rows, np.flatnonzero(labels == k))].mean(axis=1) for k in range(speakers)], axis=1)


def _agglomerate(distance: np.ndarray, threshold: float, min_speakers: int, max_speakers: int) -> np.ndarray:
    """Average-linkage clusters 0..k-1 of a square distance matrix, k bounded by the speaker limits."""
    n = len(distance)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    tree = linkage(squareform(distance, checks=False), method="average")
    found = fcluster(tree, t=threshold, criterion="distance")
    k = len(np.unique(found))
    bounded = min(max(k, min_speakers), max_speakers, n)
    if bounded != k:
        found = fcluster(tree, t=bounded, criterion="maxclust")
    labels: np.ndarray = (found - 1).astype(np.int64)
    return labels


def _by_first_use(labels: np.ndarray) -> np.ndarray:
    """Relabel 0..n-1 without gaps (order of first row), keeping -1."""
    out = labels.copy()
    mapping: dict[int, int] = {}
    for i, v in enumerate(labels):
        if v >= 0:
            out[i] = mapping.setdefault(int(v), len(mapping))
    return out


def label_frames(
    activity: np.ndarray, segments: list[Segment], speakers: np.ndarray, frames: Frames, duration_s: float
) -> list[tuple[float, float, int]]:
    """Turns (start, end, speaker) of every active frame, overlaps included, from labelled segments."""
    by_local: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for seg, spk in zip(segments, speakers, strict=True):
        if spk >= 0:
            by_local.setdefault((seg.chunk, seg.local), []).append(((seg.first + seg.last) // 2, int(spk)))
    n_speakers = int(speakers.max()) + 1 if len(speakers) and speakers.max() >= 0 else 0
    if n_speakers == 0:
        return []
    step = frames.frame_step
    n_chunks, n_frames, n_local = activity.shape
    total = int(np.ceil(duration_s / step)) + 1
    grid = np.zeros((total, n_speakers), dtype=bool)
    for (c, k), centres in by_local.items():
        active = np.flatnonzero(activity[c, :, k] > 0)
        if active.size == 0:
            continue
        mids = np.array([m for m, _ in centres])
        spks = np.array([s for _, s in centres])
        # Each active frame takes the speaker of the nearest labelled segment of this local speaker.
        nearest = spks[np.abs(active[:, None] - mids[None, :]).argmin(axis=1)]
        times = c * frames.chunk_step + frames.frame_offset + active * step
        cells = np.clip(np.round(times / step).astype(np.int64), 0, total - 1)
        grid[cells, nearest] = True
    turns = []
    gap = max(1, int(round(MERGE_GAP_S / step)))
    for spk in range(n_speakers):
        on = grid[:, spk]
        if not on.any():
            continue
        edges = np.flatnonzero(np.diff(np.concatenate(([0], on.astype(np.int8), [0]))))
        runs = list(zip(edges[::2], edges[1::2], strict=True))
        merged = [list(runs[0])]
        for a, b in runs[1:]:
            if a - merged[-1][1] <= gap:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        for a, b in merged:
            start, end = max(0.0, (a - 0.5) * step), min(duration_s, (b - 0.5) * step)
            if end > start:
                turns.append((round(start, 3), round(end, 3), spk))
    return sorted(turns)


def speaker_turns(
    activity: np.ndarray,
    frames: Frames,
    duration_s: float,
    embed: Callable[[list[tuple[float, float]]], tuple[np.ndarray, np.ndarray | None]],
    threshold: float,
    min_train_s: float,
    min_speakers: int,
    max_speakers: int,
    spectral_weight: float = 0.0,
) -> list[tuple[float, float, str]]:
    """Steps 1-5 for one clip: segments of ``activity``, ``embed(spans)`` per segment, clusters, turns.

    ``embed`` returns the segments' embeddings and their ``voice.spectrum`` rows (or None).
    """
    segments = [s for s in find_segments(activity, frames, duration_s) if s.duration >= MIN_EMBED_S]
    if not segments:
        return []
    vectors, spectra = embed([s.embedded() for s in segments])
    durations = np.array([s.duration for s in segments])
    speakers = cluster(vectors, durations, threshold, min_train_s, min_speakers, max_speakers, spectra, spectral_weight)
    return [(s, e, str(k)) for s, e, k in label_frames(activity, segments, speakers, frames, duration_s)]


def cut_units(segment: Segment, frames: Frames, unit_s: float, shift_s: float, duration_s: float) -> list[Segment]:
    """``segment`` as stretches of ``unit_s`` every ``shift_s`` (the last one ends with it); a shorter segment whole."""
    per = max(1, int(round(unit_s / frames.frame_step)))
    hop = max(1, int(round(shift_s / frames.frame_step)))
    if segment.last - segment.first <= per:
        return [segment]
    starts = list(range(segment.first, segment.last - per + 1, hop))
    if starts[-1] + per < segment.last:
        starts.append(segment.last - per)
    half = frames.frame_step / 2
    c = segment.chunk
    return [
        Segment(c, segment.local, a, a + per, max(0.0, frames.time(c, a) - half),
                min(duration_s, frames.time(c, a + per - 1) + half))
        for a in starts
    ]  # fmt: skip


# What the engine embeds for the spectral clustering: per pass (a stretch of one segment, one run
# of the network), the stretch and the units inside it. The engine returns one row per unit, in order.
Passes = list[tuple[tuple[float, float], list[tuple[float, float]]]]


def middle(segment: Segment, seconds: float, frames: Frames, duration_s: float) -> Segment:
    """The middle ``seconds`` of ``segment`` (all of a shorter one), on its frames."""
    if segment.duration <= seconds:
        return segment
    n = segment.last - segment.first
    keep = max(1, min(n, int(round(seconds / frames.frame_step))))
    first = segment.first + (n - keep) // 2
    half = frames.frame_step / 2
    c = segment.chunk
    start = max(0.0, frames.time(c, first) - half)
    end = min(duration_s, frames.time(c, first + keep - 1) + half)
    return Segment(c, segment.local, first, first + keep, start, end)


def plan_units(
    segments: list[Segment], frames: Frames, duration_s: float, unit_s: float, shift_s: float, pass_s: float
) -> tuple[list[Segment], Passes]:
    """Each segment's middle ``pass_s`` as one pass, cut into units (``cut_units``)."""
    units: list[Segment] = []
    passes: Passes = []
    for segment in segments:
        stretch = middle(segment, pass_s, frames, duration_s)
        mine = cut_units(stretch, frames, unit_s, shift_s, duration_s)
        passes.append(((stretch.start, stretch.end), [(u.start, u.end) for u in mine]))
        units += mine
    return units, passes


def label_units(vectors: np.ndarray, durations: np.ndarray, settings: SpectralSettings, min_unit_s: float,
                min_speakers: int, max_speakers: int) -> np.ndarray:  # fmt: skip
    """A speaker per unit (-1 for NaN rows): units of ``min_unit_s`` or more are clustered, shorter ones
    join the nearest speaker's centroid."""
    valid = ~np.isnan(vectors).any(axis=1)
    train = valid & (durations >= min_unit_s)
    if not train.any():
        train = valid
    labels = np.full(len(vectors), -1, dtype=np.int64)
    if not train.any():
        return labels
    labels[train] = cluster_units(vectors[train], settings, min_speakers, max_speakers)
    rest = np.flatnonzero(valid & ~train)
    if rest.size:
        x = unit_rows(np.nan_to_num(vectors))
        labels[rest] = join_nearest(x, labels, rest, np.arange(int(labels.max()) + 1))
    return labels


def spectral_turns(
    activity: np.ndarray,
    frames: Frames,
    duration_s: float,
    embed_units: Callable[[Passes], np.ndarray],
    settings: SpectralSettings,
    unit_s: float,
    shift_s: float,
    min_unit_s: float,
    pass_s: float,
    min_speakers: int,
    max_speakers: int,
) -> list[tuple[float, float, str]]:
    """Turns for one clip by spectral clustering of short units of single-speaker segments.

    Every segment of at least ``MIN_EMBED_S`` is embedded over its middle ``pass_s`` in units of
    ``unit_s`` every ``shift_s`` (``plan_units``); the units are clustered (``label_units``); every
    active frame then takes the speaker of the nearest unit of its local speaker in that window,
    overlaps included (``label_frames``).
    """
    segments = [s for s in find_segments(activity, frames, duration_s) if s.duration >= MIN_EMBED_S]
    units, passes = plan_units(segments, frames, duration_s, unit_s, shift_s, pass_s)
    if not units:
        return []
    vectors = embed_units(passes)
    durations = np.array([u.duration for u in units])
    labels = label_units(vectors, durations, settings, min_unit_s, min_speakers, max_speakers)
    if (labels < 0).all():
        return []
    return [(s, e, str(k)) for s, e, k in label_frames(activity, units, labels, frames, duration_s)]


def turns(
    config: DiarizationConfig,
    activity: np.ndarray,
    frames: Frames,
    duration_s: float,
    embed: Callable[[list[tuple[float, float]]], tuple[np.ndarray, np.ndarray | None]],
    embed_units: Callable[[Passes], np.ndarray],
    min_speakers: int,
    max_speakers: int,
) -> list[tuple[float, float, str]]:
    """Turns by the clustering ``config`` names (``spectral`` or ``segments``), for either engine.

    ``embed`` embeds whole spans (segments clustering); ``embed_units`` the units of passes (spectral).
    """
    c = config
    if c.clustering == "spectral":
        return spectral_turns(
            activity, frames, duration_s, embed_units, c.spectral, c.unit_s, c.unit_shift_s,
            c.min_unit_s, c.unit_pass_s, min_speakers, max_speakers,
        )  # fmt: skip
    return speaker_turns(
        activity, frames, duration_s, embed, c.threshold, c.min_train_s, min_speakers, max_speakers,
        c.spectral_weight,
    )  # fmt: skip


__all__ = [
    "Frames",
    "MAX_EMBED_S",
    "MIN_EMBED_S",
    "Segment",
    "cluster",
    "cut_units",
    "label_units",
    "middle",
    "plan_units",
    "find_segments",
    "label_frames",
    "speaker_turns",
    "spectral_turns",
    "turns",
]
