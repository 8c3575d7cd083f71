"""pyannote.audio 4.x SpeakerDiarization on in-memory 16 kHz samples: load once, diarize many."""

from __future__ import annotations

import os

# pyannote reports usage to its authors unless told not to; an offline stage must not try.
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pyannote.audio import Inference, Model, Pipeline
from pyannote.audio.core.plda import PLDA
from pyannote.audio.pipelines import SpeakerDiarization
from pyannote.audio.pipelines.clustering import AgglomerativeClustering
from pyannote.core import Annotation, SlidingWindowFeature

from pipeline.diarization.assign import SpeakerTurn
from pipeline.diarization.config import DiarizationConfig
from pipeline.diarization.embedding import SAMPLE_RATE, CamPlusPlusEmbedding
from pipeline.diarization.errors import DiarizationError, DiarizationModelsMissingError
from pipeline.diarization.light import turns_by_first_appearance
from pipeline.diarization.onnx import export, onnx_path
from pipeline.diarization.segments import Frames, Passes, turns
from pipeline.diarization.speech import find_sound, join, remap, too_little
from pipeline.diarization.voice import spectra
from pipeline.errors import model_failure

INSTALL_HINT = "run scripts/install-diarization-models.sh (or set the model paths)"

# Centroid linkage: pyannote 3.1's published value for this pipeline shape.
CLUSTERING_METHOD = "centroid"


class SpeakerClustering(AgglomerativeClustering):
    """pyannote's agglomerative clustering with its one hard-coded filter made a setting.

    pyannote trains the clusters only on (window, speaker) embeddings whose speaker talks alone for at
    least 20 % of the window (2 s of 10 s). With windows that barely overlap, a speaker who answers in
    short turns has no such embedding and is folded into another voice; ``min_active_ratio`` lowers
    that bar (tuned in docs/DIARIZATION.md).
    """

    def __init__(self, min_active_ratio: float, metric: str = "cosine") -> None:
        super().__init__(metric=metric)
        self.min_active_ratio = min_active_ratio

    def filter_embeddings(self, embeddings: Any, segmentations: Any = None, min_active_ratio: float = 0.2) -> Any:
        return super().filter_embeddings(embeddings, segmentations, min_active_ratio=self.min_active_ratio)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _no_plda() -> PLDA:
    # SpeakerDiarization's constructor insists on a PLDA even when the clustering never reads it
    # (only VBx does, and its PLDA exists only on the hub). An empty instance satisfies the check.
    return PLDA.__new__(PLDA)


class Diarizer:
    """Owns one diarization pipeline. Not thread-safe: drive it from one thread at a time."""

    def __init__(self, config: DiarizationConfig) -> None:
        self.config = config
        started = time.perf_counter()
        self.device = resolve_device(config.device)
        # Why CAM++ runs on torch where onnx was asked for (a GPU, no graph and no way to export one).
        self.runtime_note = ""
        self.embedding_runtime = self._runtime(config, self.device)
        self._segmenter: Inference | None = None
        if config.pipeline_dir:
            self._pipeline = self._full_pipeline(config)
        else:
            self._pipeline = self._offline_pipeline(config, self.embedding_runtime)
        if self.device.type != "cpu":
            self._pipeline.to(self.device)
        if config.clustering in ("segments", "spectral") and not config.pipeline_dir:
            model = self._pipeline._segmentation.model  # noqa: SLF001 - pyannote exposes the models only so
            window = model.specifications.duration
            self._segmenter = Inference(
                model,
                duration=window,
                step=config.segmentation_step * window,
                skip_aggregation=True,
                batch_size=config.batch_size,
                device=self.device,
            )
            field_ = model.receptive_field
            self._frames_offset = field_.start + field_.duration / 2
            self._frames_step = field_.step
            self._frames_duration = field_.duration
        self.load_s = time.perf_counter() - started

    def _runtime(self, config: DiarizationConfig, device: torch.device) -> str:
        if config.embedding_runtime != "onnx" or config.pipeline_dir:
            return "torch"
        if device.type != "cpu":
            self.runtime_note = f"onnx runs on CPU only; CAM++ runs on torch on {device}"
            return "torch"
        if onnx_path(config.embedding_path).is_file() or not Path(config.embedding_path).is_file():
            return "onnx"  # a missing weights file is reported by the model loading, with its remedy
        try:
            export(config.embedding_path)
        except (ImportError, OSError, RuntimeError) as exc:  # no onnx package, a read-only models dir
            self.runtime_note = f"no ONNX graph of CAM++ and none could be exported ({exc}); torch instead"
            return "torch"
        return "onnx"

    @staticmethod
    def _offline_pipeline(config: DiarizationConfig, runtime: str) -> SpeakerDiarization:
        for path in (config.segmentation_path, config.embedding_path):
            if not Path(path).is_file():
                raise DiarizationModelsMissingError(f"no diarization model at {path}: {INSTALL_HINT}")
        segmentation = Model.from_pretrained(config.segmentation_path)
        if segmentation is None:
            raise DiarizationModelsMissingError(
                f"{config.segmentation_path} is not a pyannote checkpoint: {INSTALL_HINT}"
            )
        try:
            embedding = CamPlusPlusEmbedding(config.embedding_path, workers=config.embedding_workers, runtime=runtime)
        except RuntimeError as exc:  # a strict state-dict load that does not match: the wrong file
            raise DiarizationModelsMissingError(f"{config.embedding_path} is not the CAM++ checkpoint: {exc}") from exc
        pipeline = SpeakerDiarization(
            segmentation=segmentation,
            segmentation_step=config.segmentation_step,
            embedding=embedding,
            plda=_no_plda(),
            clustering="AgglomerativeClustering",
            segmentation_batch_size=config.batch_size,
            embedding_batch_size=config.batch_size,
        )
        pipeline.clustering = SpeakerClustering(config.min_active_ratio)
        pipeline.instantiate(
            {
                "segmentation": {"min_duration_off": 0.0},
                "clustering": {
                    "method": CLUSTERING_METHOD,
                    "min_cluster_size": config.min_cluster_size,
                    "threshold": config.threshold,
                },
            }
        )
        return pipeline

    @staticmethod
    def _full_pipeline(config: DiarizationConfig) -> Pipeline:
        assert config.pipeline_dir is not None
        local = Path(config.pipeline_dir).exists()
        try:
            pipeline = Pipeline.from_pretrained(config.pipeline_dir, token=None if local else config.hf_token)
        except Exception as exc:  # hub errors, missing files, bad yaml: all mean "no pipeline here"
            raise DiarizationModelsMissingError(
                f"cannot load the pyannote pipeline {config.pipeline_dir}: {exc}"
            ) from exc
        if pipeline is None:
            raise DiarizationModelsMissingError(f"no pyannote pipeline at {config.pipeline_dir}")
        if isinstance(pipeline, SpeakerDiarization):
            # Same speed knobs as the offline pipeline; its own (tuned) clustering stays as shipped.
            segmentation = pipeline._segmentation  # noqa: SLF001 - pyannote exposes the model only so
            segmentation.step = config.segmentation_step * segmentation.duration
            pipeline.segmentation_batch_size = config.batch_size
            pipeline.embedding_batch_size = config.batch_size
        return pipeline

    def describe(self) -> dict[str, object]:
        """What is loaded and how it is set, for /readyz, the start-up log and build info (no secrets)."""
        c = self.config
        return {
            "engine": "pyannote.audio" + (" (pipeline_dir)" if c.pipeline_dir else " (segmentation-3.0 + CAM++)"),
            "clustering": "pipeline_dir" if c.pipeline_dir else c.clustering,
            "merge_cos": c.spectral.merge_cos,
            "min_train_s": c.min_train_s,
            "spectral_weight": c.spectral_weight,
            "device": str(self.device),
            "embedding_runtime": self.embedding_runtime,
            **({"embedding_runtime_note": self.runtime_note} if self.runtime_note else {}),
            "threshold": c.threshold,
            "segmentation_step": c.segmentation_step,
            "min_cluster_size": c.min_cluster_size,
            "min_active_ratio": c.min_active_ratio,
            "num_threads": c.num_threads,
            "embedding_workers": c.embedding_workers,
            "max_speakers": c.max_speakers,
            "load_s": round(self.load_s, 3),
        }

    def warm_up(self) -> None:
        """Run both models once on noise, so the first clip pays no first-call costs."""
        noise = np.random.default_rng(0).normal(0.0, 0.05, 12 * SAMPLE_RATE).astype(np.float32)
        self.diarize(noise)  # segmentation finds no speech in noise, so embed some directly too
        embedding = getattr(self._pipeline, "_embedding", None)
        if embedding is not None:
            embedding(torch.from_numpy(noise[: 3 * SAMPLE_RATE]).reshape(1, 1, -1))

    def diarize(
        self, samples: np.ndarray, min_speakers: int | None = None, max_speakers: int | None = None
    ) -> tuple[SpeakerTurn, ...]:
        """Speaker turns of 16 kHz mono float32 samples, named SPEAKER_00.. by first appearance.

        ``max_speakers`` is capped by the config's; ``min_speakers`` by the resulting maximum.
        """
        upper = min(max_speakers or self.config.max_speakers, self.config.max_speakers)
        lower = min(min_speakers, upper) if min_speakers else None
        sound = find_sound(samples)
        if too_little(sound):
            return ()  # nothing a speaker could be told by: the caller reports "no speech"
        joined = np.ascontiguousarray(join(samples, sound), dtype=np.float32)
        waveform = torch.from_numpy(joined).unsqueeze(0)
        previous_threads = torch.get_num_threads()
        if self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)
        try:
            with warnings.catch_warnings():
                # "detected number of speakers is outside the given bounds" and friends: the
                # result is still usable, and per-clip warnings would flood the worker's log.
                warnings.simplefilter("ignore")
                if self._segmenter is not None:
                    found = self._by_segments(waveform, lower or 1, upper)
                else:
                    output: Any = self._pipeline(
                        {"waveform": waveform, "sample_rate": SAMPLE_RATE},
                        min_speakers=lower,
                        max_speakers=upper,
                    )
                    annotation = output if isinstance(output, Annotation) else output.speaker_diarization
                    found = [
                        (float(seg.start), float(seg.end), str(label))
                        for seg, _, label in annotation.itertracks(yield_label=True)
                    ]
        except (MemoryError, RuntimeError, ValueError) as exc:
            raise model_failure(exc, "diarizing", DiarizationError) from exc
        finally:
            torch.set_num_threads(previous_threads)
        return turns_by_first_appearance(remap(found, sound))

    def _by_segments(self, waveform: torch.Tensor, lower: int, upper: int) -> list[tuple[float, float, str]]:
        """Segmentation over tiling windows, one embedding per single-speaker segment, clustering."""
        assert self._segmenter is not None
        duration = waveform.shape[-1] / SAMPLE_RATE
        with torch.inference_mode():
            output = self._segmenter({"waveform": waveform, "sample_rate": SAMPLE_RATE})
        assert isinstance(output, SlidingWindowFeature)  # what a sliding-window Inference returns, aggregated
        frames = Frames(output.sliding_window.step, self._frames_offset, self._frames_step, self._frames_duration)
        embedding: CamPlusPlusEmbedding = self._pipeline._embedding.model_  # noqa: SLF001 - as above
        c = self.config

        def embed(spans: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray | None]:
            envelopes = spectra(waveform[0].detach().cpu().numpy(), spans) if c.spectral_weight > 0 else None
            return embedding.embed_spans(waveform[0], spans), envelopes

        def embed_units(passes: Passes) -> np.ndarray:
            # On a GPU each unit is its own pass: cost is not the limit there, and it needs no second graph.
            spans = [unit for _, units in passes for unit in units]
            return embedding.embed_spans(waveform[0], spans) if spans else np.zeros((0, 192), dtype=np.float32)

        return turns(c, np.asarray(output.data), frames, duration, embed, embed_units, lower, upper)
