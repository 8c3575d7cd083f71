"""A second speaker model beside CAM++, measured on the tuning split: resemblyzer's GE2E d-vector.

Measured and rejected (docs/DIARIZATION.md, "A second speaker model"); kept so the figures can be
reproduced. Nothing in ``pipeline/`` uses it.

    .venv/bin/python -m bench.diarization.ge2e_probe separation   # reference stretches: CAM++ vs GE2E
    .venv/bin/python -m bench.diarization.ge2e_probe grid         # the engine's segments, CAM++ + w x GE2E

The weights are ``resemblyzer/pretrained.pt`` inside the PyPI wheel of Resemblyzer 0.1.4 (Apache
2.0): ``pip download --no-deps`` into ``~/.cache/fwv2/models/.wheels`` (sha256 pinned), read from
the zip; resemblyzer itself is not installed. Its network (3-layer LSTM 40 -> 256, linear 256 ->
256, ReLU, L2 norm) runs on torch; its features (40-band mel *power* spectrogram, librosa's Slaney
filters, 25/10 ms) are computed here in numpy, equal to resemblyzer's own to 1e-7. An utterance is
the L2-normed mean of 1.6 s partials at 1.3 per second, after scaling it up to -30 dBFS, as
``VoiceEncoder.embed_utterance`` does. Only the tuning split and the dev calls are used.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import os
import statistics
import subprocess
import sys
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

SR = 16_000
N_FFT = 400
HOP = 160
N_MELS = 40
PARTIAL = 160  # frames of one partial utterance (1.6 s)
WHEEL = "Resemblyzer-0.1.4-py3-none-any.whl"
WHEEL_SHA256 = "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f"
MIN_STRETCH_S = 1.0
STRETCH_S = 3.0  # the engine embeds a segment's middle 3 s (segments.MAX_EMBED_S)


def wheel_path() -> Path:
    from bench.diarization.models import models_dir

    where = models_dir() / ".wheels"
    path = where / WHEEL
    if not path.is_file():
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
             "--only-binary=:all:", "-d", str(where), "resemblyzer==0.1.4"],
            check=True,
        )  # fmt: skip
    if hashlib.sha256(path.read_bytes()).hexdigest() != WHEEL_SHA256:
        raise RuntimeError(f"{path} does not match its pinned sha256")
    return path


# --- features: librosa.feature.melspectrogram(sr=16000, n_fft=400, hop_length=160, n_mels=40) ---


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / log_step, f * 3.0 / 200.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(log_step * (m - 15.0)), m * 200.0 / 3.0)


@lru_cache(maxsize=1)
def mel_basis() -> np.ndarray:
    """(40, 201) Slaney-scale, Slaney-normed triangles from 0 Hz to Nyquist (librosa's defaults)."""
    fft_hz = np.fft.rfftfreq(N_FFT, 1.0 / SR)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(SR / 2)), N_MELS + 2))
    ramps = edges[:, None] - fft_hz[None, :]
    widths = np.diff(edges)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    basis: np.ndarray = (np.maximum(0, np.minimum(lower, upper)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(
        np.float32
    )
    return basis


def mel(samples: np.ndarray) -> np.ndarray:
    """(frames, 40) mel power spectrogram: centred frames, zero padding, periodic Hann window."""
    x = np.pad(np.asarray(samples, dtype=np.float32), N_FFT // 2)
    n = 1 + (len(x) - N_FFT) // HOP
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    frames = x[np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]] * window
    mels: np.ndarray = ((np.abs(np.fft.rfft(frames, axis=1)) ** 2) @ mel_basis().T).astype(np.float32)
    return mels


def louder(samples: np.ndarray, target_dbfs: float = -30.0) -> np.ndarray:
    """Scaled up (never down) to ``target_dbfs`` RMS: the mel is not logged, so level matters."""
    rms = float(np.sqrt(np.mean((samples * 32767.0) ** 2)))
    if rms <= 0:
        return samples
    change = target_dbfs - 20 * np.log10(rms / 32767.0)
    return samples * (10 ** (change / 20)) if change > 0 else samples


def partial_starts(n_samples: int, rate: float = 1.3, min_coverage: float = 0.75) -> list[int]:
    """First frames of the partials (``VoiceEncoder.compute_partial_slices``)."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((SR / rate) / HOP))
    starts = list(range(0, max(1, n_frames - PARTIAL + step + 1), step))
    if (n_samples - starts[-1] * HOP) / (PARTIAL * HOP) < min_coverage and len(starts) > 1:
        starts.pop()
    return starts


class GE2E:
    """resemblyzer's VoiceEncoder network with its pretrained weights, on torch (CPU)."""

    def __init__(self) -> None:
        import torch
        from torch import nn

        with zipfile.ZipFile(wheel_path()) as zf:
            state = torch.load(io.BytesIO(zf.read("resemblyzer/pretrained.pt")), map_location="cpu")["model_state"]
        self._torch = torch
        self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        self.lstm.eval()

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """(256,) unit d-vector of one utterance."""
        wav = louder(np.asarray(samples, dtype=np.float32))
        starts = partial_starts(len(wav))
        need = (starts[-1] + PARTIAL) * HOP
        if need >= len(wav):
            wav = np.pad(wav, (0, need - len(wav)))
        m = mel(wav)
        batch = self._torch.from_numpy(np.stack([m[s : s + PARTIAL] for s in starts]))
        with self._torch.inference_mode():
            _, (hidden, _) = self.lstm(batch)
            raw = self._torch.relu(self.linear(hidden[-1]))
            partials = (raw / raw.norm(dim=1, keepdim=True)).numpy()
        e = partials.mean(axis=0)
        unit: np.ndarray = e / np.linalg.norm(e)
        return unit


def cosine_distances(x: np.ndarray) -> np.ndarray:
    """(n, n) cosine distances of the rows; 0 where a row is NaN (no opinion)."""
    bad = np.isnan(x).any(axis=1)
    y = np.nan_to_num(np.asarray(x, dtype=np.float64))
    y = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    d: np.ndarray = np.clip(1.0 - y @ y.T, 0.0, 2.0)
    d[bad, :] = 0.0
    d[:, bad] = 0.0
    return d


def separation(names: list[str], distance: np.ndarray) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """Per speaker the mean distance of its stretches to each other; per pair of speakers the mean across."""
    labels = np.array(names)
    speakers = sorted(set(names))
    within = {}
    for s in speakers:
        i = np.flatnonzero(labels == s)
        if len(i) > 1:
            within[s] = float(distance[np.ix_(i, i)][np.triu_indices(len(i), 1)].mean())
    across = {
        (s, t): float(distance[np.ix_(np.flatnonzero(labels == s), np.flatnonzero(labels == t))].mean())
        for s, t in itertools.combinations(speakers, 2)
    }
    return within, across


def _clips_with_voices() -> list[tuple[Any, dict[str, str]]]:
    from bench.diarization import dataset
    from bench.diarization.clips import mix4, sample4

    voices = {
        r.name: {v.label: v.voice.removeprefix("real:") + (f"/p{v.pitch}" if v.pitch else "") for v in r.speakers}
        for r in dataset.records("tune")
    }
    return [(c, voices[c.name]) for c in dataset.build("tune")] + [(sample4(), {}), (mix4(), {})]


def _campp() -> Any:
    from bench.diarization.models import installed_config
    from pipeline.diarization.features import fbank
    from pipeline.diarization.onnx import OnnxCamPlusPlus, onnx_path

    network = OnnxCamPlusPlus(onnx_path(installed_config().embedding_path))

    def embed(samples: np.ndarray) -> np.ndarray:
        f = fbank(samples)
        f -= f.mean(axis=0, keepdims=True)
        vector: np.ndarray = network(f[None])[0]
        return vector

    return embed


def separation_table() -> None:
    """Reference stretches (the middle 3 s of each single-speaker stretch of >= 1 s) of every tuning clip."""
    from bench.diarization.clips import single_speaker_pieces
    from bench.diarization.tune import cpu_line

    campp, ge2e = _campp(), GE2E()
    print(cpu_line())
    print(
        "| clip | speakers | CAM++ within max | CAM++ across min | ratio | GE2E within max | GE2E across min | ratio | closest pair (GE2E) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for clip, voices in _clips_with_voices():
        names, cam, ge = [], [], []
        for speaker, pieces in single_speaker_pieces(clip, MIN_STRETCH_S).items():
            for x in pieces:
                a = max(0, (len(x) - int(STRETCH_S * SR)) // 2)
                stretch = x[a : a + int(STRETCH_S * SR)]
                names.append(voices.get(speaker, speaker))
                cam.append(campp(stretch))
                ge.append(ge2e(stretch))
        cells = []
        for vectors in (np.array(cam), np.array(ge)):
            within, across = separation(names, cosine_distances(vectors))
            w = max(within.values()) if within else float("nan")
            b = min(across.values()) if across else float("nan")
            cells += [f"{w:.3f}", "-" if np.isnan(b) else f"{b:.3f}", "-" if np.isnan(b) else f"{b / w:.2f}"]
        pair = min(across, key=across.__getitem__) if across else ("", "")
        print(f"| {clip.name} | {len(set(names))} | {' | '.join(cells)} | {' / '.join(pair)} |", flush=True)


def grid(thresholds: list[float], train: list[float], weights: list[float]) -> None:
    """tune.grid's pass with GE2E's cosine distance (weighted) added to CAM++'s in the clustering."""
    from bench.diarization.models import installed_config
    from bench.diarization.tune import cpu_line, labelled_turns
    from pipeline.diarization import make_diarizer
    from pipeline.diarization import segments as seg
    from pipeline.diarization.segments import MIN_EMBED_S, Frames, cluster, find_segments
    from pipeline.diarization.speech import find_sound, join

    seg.spectral_distance = cosine_distances  # type: ignore[attr-defined,assignment]  # cluster(): CAM++ cosine + weight x (the "spectra" rows' cosine)
    ge2e = GE2E()
    diarizer = make_diarizer(installed_config())
    clips = [c for c, _ in _clips_with_voices()]
    print(cpu_line())
    cached = []
    for clip in clips:
        sound = find_sound(clip.samples)
        joined = np.ascontiguousarray(join(clip.samples, sound), dtype=np.float32)
        activity, chunk_step = diarizer._segmentation(joined, diarizer.config.segmentation_step)
        frames = Frames(chunk_step, diarizer._frame_offset, diarizer._frame_step, diarizer._frame_duration)
        segments = [s for s in find_segments(activity, frames, len(joined) / SR) if s.duration >= MIN_EMBED_S]
        spans = [s.embedded() for s in segments]
        vectors, _ = diarizer._embed(joined, spans)
        dvectors = np.array([ge2e(joined[int(a * SR) : int(b * SR)]) for a, b in spans])
        cached.append((clip, sound, activity, frames, segments, vectors, dvectors, len(joined) / SR))
    rows = []
    for threshold, min_train, weight in itertools.product(thresholds, train, weights):
        exact, ders, found = 0, [], []
        for clip, sound, activity, frames, segments, vectors, dvectors, duration in cached:
            durations = np.array([s.duration for s in segments])
            labels = cluster(vectors, durations, threshold, min_train, spectra=dvectors, spectral_weight=weight)
            n, der = labelled_turns(clip, sound, activity, segments, labels, frames, duration)
            exact += n == len(clip.speakers)
            found.append(n)
            ders.append(der)
        rows.append((exact, statistics.mean(ders), threshold, min_train, weight, found))
    rows.sort(key=lambda r: (-r[0], r[1]))
    print(f"clips: {', '.join(f'{c.name} ({len(c.speakers)})' for c in clips)}")
    print("| count exact | mean DER 0.25 | threshold | min train s | GE2E weight | speakers found per clip |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]}/{len(clips)} | {r[1]:.1%} | {r[2]} | {r[3]} | {r[4]} | {' '.join(map(str, r[5]))} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("separation")
    g = sub.add_parser("grid")
    g.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9])
    g.add_argument("--train", type=float, nargs="+", default=[2.0, 2.5, 3.0])
    g.add_argument("--weights", type=float, nargs="+", default=[0, 0.5, 1, 1.5, 2, 3, 4])
    args = parser.parse_args()
    if args.command == "separation":
        separation_table()
    else:
        grid(args.thresholds, args.train, args.weights)


if __name__ == "__main__":
    main()
