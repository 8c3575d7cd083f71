"""The spectral clustering core (pipeline/diarization/spectral.py) on made-up embeddings: pure numpy."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.diarization.spectral import SpectralSettings, affinity, cluster_units, count, kmeans


def _voices(sizes: list[int], spread: float = 0.35, dim: int = 192, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Units of len(sizes) speakers: each a random direction plus noise (cosine within ~0.6-0.8)."""
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for k, n in enumerate(sizes):
        centre = rng.normal(size=dim)
        centre /= np.linalg.norm(centre)
        noise = rng.normal(size=(n, dim)) * spread / np.sqrt(dim) * 3
        rows.append(centre + noise)
        truth += [k] * n
    return np.concatenate(rows), np.array(truth)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return all(len(set(a[b == k])) == 1 for k in np.unique(b)) and len(set(a)) == len(set(b))


@pytest.mark.parametrize("sizes", [[40], [20, 20], [30, 8], [12, 12, 12], [10, 9, 11, 12, 10], [8] * 6])
def test_counts_and_separates_speakers(sizes: list[int]) -> None:
    x, truth = _voices(sizes)
    labels = cluster_units(x, SpectralSettings())
    assert _same_partition(labels, truth), (sizes, labels)


def test_one_voice_is_never_split_however_many_units() -> None:
    x, _ = _voices([300], spread=0.5, seed=3)
    assert set(cluster_units(x, SpectralSettings())) == {0}


def test_too_few_units_are_one_speaker_unless_the_event_says_more() -> None:
    x, _ = _voices([4, 4])
    assert set(cluster_units(x, SpectralSettings(min_units=10))) == {0}
    assert len(set(cluster_units(x, SpectralSettings(min_units=10), min_speakers=2))) == 2


def test_bounds_from_the_event_win_over_the_eigengap() -> None:
    x, _ = _voices([15, 15, 15, 15])
    assert len(set(cluster_units(x, SpectralSettings(), max_speakers=2))) <= 2
    assert len(set(cluster_units(x, SpectralSettings(), min_speakers=4, max_speakers=4))) == 4


def test_small_clusters_join_a_speaker_and_close_ones_merge() -> None:
    x, truth = _voices([30, 30])
    x += 2.5 * np.linalg.norm(x, axis=1).mean() * np.eye(x.shape[1])[0]  # a shared direction: centroids ~0.9 alike
    # two units of a third voice: under min_cluster_size, so not a speaker
    extra, _ = _voices([2], seed=9)
    labels = cluster_units(np.concatenate([x, extra]), SpectralSettings(min_cluster_size=4, merge_cos=0.99))
    assert len(set(labels)) == 2
    assert _same_partition(cluster_units(x, SpectralSettings(merge_cos=0.99)), truth)
    # a merge similarity below the two voices' centroid similarity makes them one
    assert set(cluster_units(x, SpectralSettings(merge_cos=0.5))) == {0}


def test_deterministic_and_subsampled_above_max_units() -> None:
    x, truth = _voices([150, 150, 100], seed=5)
    a = cluster_units(x, SpectralSettings(max_units=120))
    b = cluster_units(x, SpectralSettings(max_units=120))
    assert np.array_equal(a, b)
    assert _same_partition(a, truth)


def test_affinity_keeps_neighbours_and_is_symmetric() -> None:
    x, _ = _voices([30, 30])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    a = affinity(x, keep=0.01, min_neighbours=6)
    assert np.allclose(a, a.T)
    assert np.all(np.diag(a) == 0)
    # each unit keeps its own 6 nearest (itself among them, then zeroed) and gains those that chose it
    assert ((a > 0).sum(axis=1) >= 5).all()
    assert (a > 0).sum() <= 2 * 6 * len(x)
    nearest = np.argsort(-(x @ x.T), axis=1)[:, 1:6]
    assert all((a[i, nearest[i]] > 0).all() for i in range(len(x)))


def test_count_picks_the_largest_gap_within_bounds() -> None:
    values = np.array([0.0, 0.0, 0.01, 2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6])
    assert count(values, 1, 8) == 3
    assert count(values, 4, 8) in range(4, 9)
    assert count(values, 1, 2) in (1, 2)


def test_kmeans_finds_separated_groups() -> None:
    x = np.concatenate([np.zeros((10, 2)), np.ones((10, 2)) * 5])
    labels = kmeans(x, 2)
    assert len(set(labels[:10])) == 1 and len(set(labels[10:])) == 1 and labels[0] != labels[10]
