"""The CPU diarizer without torch: segmentation-3.0 and CAM++ on ONNX Runtime, segments clustering.

The same models, windows, segments and clustering as ``Diarizer`` with ``clustering="segments"``,
but nothing here imports torch or pyannote.audio: on a CPU worker those two cost about 830 MB of
resident memory before any audio (torch 460 MB with its CUDA build, pyannote.audio's lightning,
matplotlib and pandas 370 MB; docs/DIARIZATION.md), more than the rest of the worker together.
Both graphs are exported from the pyannote/torch models at set-up
(``scripts/install-diarization-models.sh``) and checked against them there; pyannote.audio stays
where the models come from and runs the GPU path and the ``pyannote`` clustering.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pipeline.diarization.assign import SpeakerTurn
from pipeline.diarization.config import DiarizationConfig
from pipeline.diarization.errors import DiarizationError, DiarizationModelsMissingError
from pipeline.diarization.features import MIN_SAMPLES, fbank
from pipeline.diarization.onnx import (
    OnnxCamPlusPlus,
    OnnxCamPlusPlusFrames,
    OnnxSegmentation,
    frames_paths,
    onnx_path,
    segmentation_paths,
)
from pipeline.diarization.segments import Frames, Passes, turns
from pipeline.diarization.speech import find_sound, join, remap, too_little
from pipeline.diarization.voice import CEPSTRA, spectrum
from pipeline.errors import model_failure

SAMPLE_RATE = 16_000
EMBEDDING_DIM = 192  # CAM++'s output (campplus.py, which imports torch)
# Windows per segmentation call. SincNet's first layer holds 80 x 160,000 floats per window, and
# onnxruntime's arena keeps the largest batch's worth: batch 32 peaked at 358 MB, batch 1 at 103 MB,
# at the same speed on 2 cores (0.45-0.48 s for a 120 s call).
SEGMENTATION_BATCH = 1
INSTALL_HINT = "run scripts/install-diarization-models.sh (it exports the ONNX graphs)"


def light_models_present(config: DiarizationConfig) -> bool:
    graph, meta = segmentation_paths(config.segmentation_path)
    frames, head = frames_paths(config.embedding_path)
    return all(p.is_file() for p in (graph, meta, onnx_path(config.embedding_path), frames, head))


class LightDiarizer:
    """Diarizes 16 kHz mono samples on the CPU. Not thread-safe: one clip at a time."""

    embedding_runtime = "onnx"
    runtime_note = ""

    def __init__(self, config: DiarizationConfig) -> None:
        if not light_models_present(config):
            raise DiarizationModelsMissingError(
                f"no ONNX diarization models beside {config.segmentation_path} and "
                f"{config.embedding_path}: {INSTALL_HINT}"
            )
        started = time.perf_counter()
        self.config = config
        self.device = "cpu"
        self._segmentation = OnnxSegmentation(config.segmentation_path, threads=1, batch_size=SEGMENTATION_BATCH)
        self._embedding = OnnxCamPlusPlus(onnx_path(config.embedding_path))
        self._frames = OnnxCamPlusPlusFrames(*frames_paths(config.embedding_path))
        self._workers = max(1, config.embedding_workers)
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="campplus")
        meta = self._segmentation.meta
        self._frame_offset = meta["frame_start"] + meta["frame_duration"] / 2
        self._frame_step = meta["frame_step"]
        self._frame_duration = meta["frame_duration"]
        self.load_s = time.perf_counter() - started

    def describe(self) -> dict[str, object]:
        """What is loaded and how it is set, for /readyz, the start-up log and build info."""
        c = self.config
        return {
            "engine": "pyannote segmentation-3.0 + CAM++ on onnxruntime",
            "device": self.device,
            "embedding_runtime": self.embedding_runtime,
            "clustering": c.clustering,
            "merge_cos": c.spectral.merge_cos,
            "unit_s": c.unit_s,
            "unit_shift_s": c.unit_shift_s,
            "unit_pass_s": c.unit_pass_s,
            "threshold": c.threshold,
            "min_train_s": c.min_train_s,
            "spectral_weight": c.spectral_weight,
            "segmentation_step": c.segmentation_step,
            "embedding_workers": c.embedding_workers,
            "max_speakers": c.max_speakers,
            "models": str(Path(c.segmentation_path).parent.parent),
            "load_s": round(self.load_s, 3),
        }

    def warm_up(self) -> None:
        noise = np.random.default_rng(0).normal(0.0, 0.05, 12 * SAMPLE_RATE).astype(np.float32)
        self._segmentation(noise, self.config.segmentation_step)
        self._embed(noise, [(0.0, 3.0), (3.0, 6.0)])
        self._embed_units(noise, [((0.0, 6.0), [(0.0, 1.5), (0.75, 2.25)])])

    def diarize(
        self, samples: np.ndarray, min_speakers: int | None = None, max_speakers: int | None = None
    ) -> tuple[SpeakerTurn, ...]:
        """Speaker turns, named SPEAKER_00.. by first appearance; () when there is no speech."""
        upper = min(max_speakers or self.config.max_speakers, self.config.max_speakers)
        lower = min(min_speakers, upper) if min_speakers else 1
        sound = find_sound(samples)
        if too_little(sound):
            return ()
        joined = np.ascontiguousarray(join(samples, sound), dtype=np.float32)
        try:
            found = self._by_segments(joined, lower, upper)
        except (MemoryError, RuntimeError, ValueError) as exc:
            raise model_failure(exc, "diarizing", DiarizationError) from exc
        return turns_by_first_appearance(remap(found, sound))

    def _by_segments(self, samples: np.ndarray, lower: int, upper: int) -> list[tuple[float, float, str]]:
        activity, chunk_step = self._segmentation(samples, self.config.segmentation_step)
        frames = Frames(chunk_step, self._frame_offset, self._frame_step, self._frame_duration)
        embed = lambda spans: self._embed(samples, spans)  # noqa: E731
        embed_units = lambda passes: self._embed_units(samples, passes)  # noqa: E731
        return turns(self.config, activity, frames, len(samples) / SAMPLE_RATE, embed, embed_units, lower, upper)

    def _embed_units(self, samples: np.ndarray, passes: Passes) -> np.ndarray:
        """(units, 192): one network pass per stretch, its units pooled from the pass's frames."""
        jobs = list(enumerate(passes))
        parts = [jobs[k :: self._workers] for k in range(self._workers)]
        pooled: dict[int, np.ndarray] = {}
        for part in self._pool.map(lambda jobs: [(i, self._pass(samples, p)) for i, p in jobs], parts):
            pooled.update(part)
        rows = [pooled[i] for i in range(len(passes))]
        return np.concatenate(rows) if rows else np.zeros((0, EMBEDDING_DIM), dtype=np.float32)

    def _pass(self, samples: np.ndarray, stretch: tuple[tuple[float, float], list[tuple[float, float]]]) -> np.ndarray:
        (a, b), units = stretch
        out = np.full((len(units), EMBEDDING_DIM), np.nan, dtype=np.float32)
        piece = samples[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]
        if len(piece) < MIN_SAMPLES:
            return out
        features = fbank(piece)
        features -= features.mean(axis=0, keepdims=True)
        frames = self._frames(features[None])
        step = self._frames.frame_s
        ranges = [(int(round((u - a) / step)), int(round((v - a) / step))) for u, v in units]
        pooled: np.ndarray = self._frames.pool(frames, ranges)
        return pooled

    def _embed(self, samples: np.ndarray, spans: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
        """(len(spans), 192) CAM++ embeddings and (len(spans), CEPSTRA) spectra; NaN rows if too short.

        The spectrum (``voice.spectrum``) comes from the same fbank as the embedding, before its
        mean is taken off: that mean is the long-term envelope, and it costs nothing more.
        """
        out = np.full((len(spans), EMBEDDING_DIM), np.nan, dtype=np.float32)
        envelopes = np.full((len(spans), CEPSTRA), np.nan)
        jobs = [
            (i, samples[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)])
            for i, (a, b) in enumerate(spans)
            if int((b - a) * SAMPLE_RATE) >= MIN_SAMPLES
        ]
        # onnxruntime releases the GIL: the workers' segments really run side by side.
        parts = [jobs[k :: self._workers] for k in range(self._workers)]
        for part in self._pool.map(self._embed_part, parts):
            for i, vector, envelope in part:
                out[i] = vector
                envelopes[i] = envelope
        return out, envelopes

    def _embed_part(self, jobs: list[tuple[int, np.ndarray]]) -> list[tuple[int, np.ndarray, np.ndarray]]:
        done = []
        for i, piece in jobs:
            features = fbank(piece)
            envelope = spectrum(features)
            features -= features.mean(axis=0, keepdims=True)  # CAM++'s per-utterance mean normalisation
            done.append((i, self._embedding(features[None])[0], envelope))
        return done


def turns_by_first_appearance(found: list[tuple[float, float, str]]) -> tuple[SpeakerTurn, ...]:
    """Turns sorted by start, speakers renamed SPEAKER_00.. in order of first appearance."""
    raw = sorted(found, key=lambda t: (t[0], t[1]))
    names: dict[str, str] = {}
    for _, _, label in raw:
        names.setdefault(label, f"SPEAKER_{len(names):02d}")
    return tuple(SpeakerTurn(round(s, 3), round(e, 3), names[label]) for s, e, label in raw)


__all__ = ["LightDiarizer", "light_models_present", "turns_by_first_appearance"]
