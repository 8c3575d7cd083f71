"""Kaldi's 80-bin log-mel filterbank in numpy: what CAM++ was trained on, without torch.

The same computation as ``torchaudio.compliance.kaldi.fbank`` with the options ``embedding.fbank``
passes (25 ms povey window, 10 ms shift, pre-emphasis 0.97, DC removed per frame, 512-point FFT,
power spectrum, mel bins from 20 Hz to Nyquist, dither 0, frames that fit whole), checked against it
in tests/diarization/test_engine.py. The torch-free diarizer (``light.py``) computes its features here.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16_000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
FFT = 512  # the window rounded up to a power of two, as Kaldi does
BINS = 80
LOW_HZ = 20.0
PREEMPHASIS = 0.97
EPSILON = float(np.finfo(np.float32).eps)  # Kaldi's log floor
# CAM++ halves the frame rate and needs two frames for its std pooling: below this many fbank frames
# of speech there is nothing to embed (pyannote's convention for that is a NaN embedding).
MIN_FRAMES = 8
MIN_SAMPLES = WINDOW + MIN_FRAMES * HOP


def _mel(hz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log(1.0 + hz / 700.0)


@lru_cache(maxsize=1)
def _mel_banks() -> np.ndarray:
    """(FFT // 2 + 1, BINS) triangular filters on the mel scale; the Nyquist bin gets no weight."""
    low, high = _mel(np.array(LOW_HZ)), _mel(np.array(SAMPLE_RATE / 2))
    delta = (high - low) / (BINS + 1)
    b = np.arange(BINS)[:, None]
    left, centre, right = low + b * delta, low + (b + 1) * delta, low + (b + 2) * delta
    mel = _mel(SAMPLE_RATE / FFT * np.arange(FFT // 2))[None, :]
    banks = np.maximum(0.0, np.minimum((mel - left) / (centre - left), (right - mel) / (right - centre)))
    return np.pad(banks, ((0, 0), (0, 1))).T.astype(np.float32)


@lru_cache(maxsize=1)
def _povey() -> np.ndarray:
    return ((0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / (WINDOW - 1))) ** 0.85).astype(np.float32)


def fbank(samples: np.ndarray) -> np.ndarray:
    """(samples,) float in [-1, 1] at 16 kHz -> (frames, 80) float32 log-mel fbank, not normalised."""
    x = np.asarray(samples, dtype=np.float32)
    n = 1 + (len(x) - WINDOW) // HOP if len(x) >= WINDOW else 0
    if n == 0:
        return np.zeros((0, BINS), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, WINDOW)[::HOP][:n]
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = frames - PREEMPHASIS * np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    frames = frames * _povey()
    spectrum = np.fft.rfft(frames, n=FFT, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    fbank: np.ndarray = np.log(np.maximum(power @ _mel_banks(), EPSILON))
    return fbank


__all__ = ["fbank"]
