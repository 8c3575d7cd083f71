"""The spectral envelope beside CAM++ (pipeline/diarization/voice.py) and its part in ``cluster``.

What is held: the envelope ignores loudness and pauses; two synthetic voices that differ in formant
placement and tilt (as espeak-ng variants do) are far apart by it and one voice is close to itself;
with the default threshold and spectral weight they become two speakers where CAM++ alone (cosines
at the level it gives espeak variants) would merge them, and one voice stays one speaker.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from pipeline.diarization import DiarizationConfig
from pipeline.diarization.features import fbank
from pipeline.diarization.segments import cluster
from pipeline.diarization.voice import CEPSTRA, spectra, spectral_distance, spectrum

SR = 16_000
THRESHOLD, SPECTRAL_WEIGHT, MIN_TRAIN_S = 0.5, 0.1, 2.5  # the tuning split's best with the envelope
FORMANTS = ((500.0, 80.0), (1500.0, 100.0), (2500.0, 120.0))


def _voice(formant_scale: float, tilt: float, f0: float, seed: int, seconds: float = 3.0) -> np.ndarray:
    """A pulse train with a wandering pitch through three formant resonators, in syllable-like bursts."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    contour = f0 * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t + rng.uniform(0, 6)))
    x = (np.diff(np.floor(np.cumsum(contour / SR)), prepend=0) > 0).astype(float)
    x = lfilter([1.0], [1.0, -tilt], x)
    for f, bw in FORMANTS:
        r, theta = np.exp(-np.pi * bw / SR), 2 * np.pi * f * formant_scale / SR
        x = lfilter([1 - r], [1.0, -2 * r * np.cos(theta), r * r], x)
    x = x * np.sin(np.pi * t * rng.uniform(1.5, 3.0)) ** 2 + rng.normal(0, 1e-4, n)
    return (0.1 * x / np.abs(x).max()).astype(np.float32)


def _a(seed: int) -> np.ndarray:
    return _voice(1.0, 0.95, 120.0, seed)


def _b(seed: int) -> np.ndarray:
    return _voice(1.3, 0.3, 125.0, seed)  # formants 30 % higher, flatter tilt, about the same pitch


def _spans(pieces: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[float, float]]]:
    return np.concatenate(pieces), [(3.0 * i, 3.0 * i + 3.0) for i in range(len(pieces))]


def _alike(n: int, cosine: float) -> np.ndarray:
    """n unit vectors of 192 dimensions, every pair at exactly this cosine (one voice to CAM++)."""
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(192, n + 1)))[0].T
    return np.sqrt(cosine) * basis[0] + np.sqrt(1 - cosine) * basis[1:]


def test_the_envelope_ignores_loudness() -> None:
    # c0 (the level) is left out: 10 dB up or down moves the envelope by a hundredth at most (much
    # quieter, the fbank's floor starts to fill the weakest bins).
    x = _a(0)
    for gain in (0.3, 3.0):
        assert np.abs(spectrum(fbank(x)) - spectrum(fbank(x * gain))).max() < 0.02


def test_the_envelope_ignores_pauses() -> None:
    x = _a(1)
    padded = np.concatenate([np.zeros(SR, np.float32), x, np.zeros(SR, np.float32)])
    # only the frames that straddle the edges differ: less than one voice's own spread (below)
    assert np.abs(spectrum(fbank(x)) - spectrum(fbank(padded))).max() < 0.15


def test_formant_and_tilt_differences_are_far_and_one_voice_is_near() -> None:
    samples, spans = _spans([_a(i) for i in range(4)] + [_b(10 + i) for i in range(4)])
    d = spectral_distance(spectra(samples, spans))
    within = max(d[:4, :4].max(), d[4:, 4:].max())
    across = d[:4, 4:].min()
    assert within < 0.5 and across > 2.5
    assert across > 10 * within


def test_rows_without_a_spectrum_have_no_say() -> None:
    rows = np.array([[0.0] * CEPSTRA, [np.nan] * CEPSTRA, [1.0] * CEPSTRA])
    d = spectral_distance(rows)
    assert d[0, 1] == 0.0 and d[1, 2] == 0.0 and d[0, 2] == pytest.approx(1.0)
    assert spectra(np.zeros(SR, np.float32), []).shape == (0, CEPSTRA)


def test_two_voices_cam_plus_plus_merges_are_two_speakers() -> None:
    # CAM++ puts espeak-ng variants at cosine 0.75-0.84 across voices and within one: here all at 0.75.
    order = [0, 1, 0, 1, 1, 0, 0, 1]
    pieces = [(_a if g == 0 else _b)(i) for i, g in enumerate(order)]
    samples, spans = _spans(pieces)
    envelopes = spectra(samples, spans)
    embeddings = _alike(len(order), 0.75)
    durations = np.full(len(order), 3.0)
    labels = cluster(embeddings, durations, THRESHOLD, MIN_TRAIN_S, spectra=envelopes, spectral_weight=SPECTRAL_WEIGHT)
    assert labels.tolist() == order
    # CAM++ alone, at its own best threshold (the default) or this one, hears one speaker.
    for threshold in (DiarizationConfig.threshold, THRESHOLD):
        assert set(cluster(embeddings, durations, threshold, MIN_TRAIN_S).tolist()) == {0}
    assert set(cluster(embeddings, durations, THRESHOLD, MIN_TRAIN_S, spectra=envelopes).tolist()) == {0}  # weight 0


def test_one_voice_stays_one_speaker() -> None:
    # A monologue: pitch and loudness wander from segment to segment, the envelope does not; CAM++
    # a little looser than for the variants above (cosine 0.7).
    samples, spans = _spans(
        [_voice(1.0, 0.95, f0, seed) for seed, f0 in enumerate((100, 115, 130, 95, 140, 120, 110, 105))]
    )
    labels = cluster(
        _alike(8, 0.7),
        np.full(8, 3.0),
        THRESHOLD,
        MIN_TRAIN_S,
        spectra=spectra(samples, spans),
        spectral_weight=SPECTRAL_WEIGHT,
    )
    assert labels.tolist() == [0] * 8


def test_the_envelope_is_off_by_default() -> None:
    assert DiarizationConfig.spectral_weight == 0.0


def test_spectral_weight_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="spectral_weight"):
        DiarizationConfig(segmentation_path="seg.bin", embedding_path="emb.pt", spectral_weight=-0.1)
