"""A segment's long-term spectral envelope, in numpy: the timbre that CAM++ does not hear.

CAM++ (trained on real speakers) puts espeak-ng voices that differ only by variant nearly on top of
each other (cosine 0.75-0.84 across voices against 0.77-0.84 within one). Those variants differ
in formant placement and spectral tilt (espeak-ng's ``voices/!v`` files: ``formant`` lines), which
a segment's average spectrum shows directly. ``spectrum`` is the mean log-mel fbank of the
segment's loud frames (within ``LOUD_DB`` of its loudest, so pauses do not count), as cepstral
coefficients 1..``CEPSTRA``: c0, the level, is left out (a speaker's loudness is no voice), and the
first few coefficients are a smoothed envelope (formants, tilt) rather than the harmonics of one
pitch. ``segments.cluster`` adds ``spectral_weight`` times their RMS difference to the cosine
distance of the CAM++ embeddings.

Off by default (``DiarizationConfig.spectral_weight`` 0), measured and rejected (docs/DIARIZATION.md):
on the tuning split and dev calls, weight 0.1 at threshold 0.5 got 13 of 16 speaker counts against
10 with CAM++ alone, but on the held-out split no count more (2 of 6) and DER(0.25) 23.5 % against
22.5 %: there the variants that CAM++ merges (``en-gb-x-rp+m2/m6``, ``en-gb+f1/f2/f4``) are no
farther apart in their envelopes than one voice is from itself. The segment's median pitch as a
further distance split a real speaker of pyannote's sample.wav (its median log-F0 moves by 0.26
from segment to segment, an espeak voice's by 0.01-0.03) at every weight tried on the tuning
split, so it is not here at all.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from pipeline.diarization.features import BINS, fbank

SAMPLE_RATE = 16_000
LOUD_DB = 30.0  # frames this far under the segment's loudest are pauses or breath, not voice
# Cepstra 1..8: on the tuning split 8, 10 and 12 did equally well (13/16), 4 and 6 worse.
CEPSTRA = 8
_LOUD = LOUD_DB / 10.0 * np.log(10.0)  # the fbank is the natural log of power


@lru_cache(maxsize=1)
def _dct() -> np.ndarray:
    """(CEPSTRA, BINS) orthonormal DCT-II rows 1..CEPSTRA."""
    k = np.arange(1, CEPSTRA + 1)[:, None]
    n = np.arange(BINS)[None, :]
    rows: np.ndarray = np.cos(np.pi * k * (n + 0.5) / BINS) * np.sqrt(2.0 / BINS)
    return rows


def spectrum(features: np.ndarray) -> np.ndarray:
    """(CEPSTRA,) envelope of a (frames, 80) log-mel fbank, not mean-normalised; NaN with no frames."""
    if len(features) == 0:
        return np.full(CEPSTRA, np.nan)
    level = features.mean(axis=1)
    loud = features[level > level.max() - _LOUD]
    envelope: np.ndarray = _dct() @ loud.mean(axis=0, dtype=np.float64)
    return envelope


def spectra(samples: np.ndarray, spans: list[tuple[float, float]]) -> np.ndarray:
    """(len(spans), CEPSTRA): ``spectrum`` of each (start, end) second span of 16 kHz ``samples``."""
    x = np.asarray(samples, dtype=np.float32)
    out = np.zeros((len(spans), CEPSTRA))
    for i, (a, b) in enumerate(spans):
        out[i] = spectrum(fbank(x[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]))
    return out


def spectral_distance(spectra: np.ndarray) -> np.ndarray:
    """(n, n) RMS difference of the cepstra; 0 where either row is NaN (no opinion)."""
    s = np.asarray(spectra, dtype=np.float64)
    d = np.sqrt(((s[:, None, :] - s[None, :, :]) ** 2).mean(axis=2))
    distances: np.ndarray = np.nan_to_num(d, nan=0.0)
    return distances


__all__ = ["CEPSTRA", "spectra", "spectral_distance", "spectrum"]
