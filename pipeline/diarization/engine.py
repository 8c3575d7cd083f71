"""pyannote.audio 4.x SpeakerDiarization on in-memory 16 kHz samples: load once, diarize many."""

from __future__ import annotations

import os

# pyannote reports usage to its authors unless told not to; an offline stage must not try.
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from pyannote.audio import Model, Pipeline  # noqa: E402
from pyannote.audio.core.plda import PLDA  # noqa: E402
from pyannote.audio.pipelines import SpeakerDiarization  # noqa: E402
from pyannote.core import Annotation  # noqa: E402

from pipeline.diarization.assign import SpeakerTurn  # noqa: E402
from pipeline.diarization.config import DiarizationConfig  # noqa: E402
from pipeline.diarization.embedding import SAMPLE_RATE, CamPlusPlusEmbedding  # noqa: E402
from pipeline.diarization.errors import DiarizationError, DiarizationModelsMissingError  # noqa: E402
from pipeline.errors import model_failure  # noqa: E402

INSTALL_HINT = "run scripts/install-diarization-models.sh (or set the model paths)"

# Agglomerative clustering settings besides the threshold: centroid linkage and a minimum
# cluster size of 12 speaker-chunks are pyannote 3.1's published values for this pipeline shape.
CLUSTERING_METHOD = "centroid"
MIN_CLUSTER_SIZE = 12


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
        if config.pipeline_dir:
            self._pipeline = self._full_pipeline(config)
        else:
            self._pipeline = self._offline_pipeline(config)
        self.device = resolve_device(config.device)
        if self.device.type != "cpu":
            self._pipeline.to(self.device)
        self.load_s = time.perf_counter() - started

    @staticmethod
    def _offline_pipeline(config: DiarizationConfig) -> SpeakerDiarization:
        for path in (config.segmentation_path, config.embedding_path):
            if not Path(path).is_file():
                raise DiarizationModelsMissingError(f"no diarization model at {path}: {INSTALL_HINT}")
        segmentation = Model.from_pretrained(config.segmentation_path)
        if segmentation is None:
            raise DiarizationModelsMissingError(f"{config.segmentation_path} is not a pyannote checkpoint: {INSTALL_HINT}")
        try:
            embedding = CamPlusPlusEmbedding(config.embedding_path, workers=config.embedding_workers)
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
        pipeline.instantiate(
            {
                "segmentation": {"min_duration_off": 0.0},
                "clustering": {
                    "method": CLUSTERING_METHOD,
                    "min_cluster_size": MIN_CLUSTER_SIZE,
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
            raise DiarizationModelsMissingError(f"cannot load the pyannote pipeline {config.pipeline_dir}: {exc}") from exc
        if pipeline is None:
            raise DiarizationModelsMissingError(f"no pyannote pipeline at {config.pipeline_dir}")
        if isinstance(pipeline, SpeakerDiarization):
            # Same speed knobs as the offline pipeline; its own (tuned) clustering stays as shipped.
            segmentation = pipeline._segmentation
            segmentation.step = config.segmentation_step * segmentation.duration
            pipeline.segmentation_batch_size = config.batch_size
            pipeline.embedding_batch_size = config.batch_size
        return pipeline

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
        waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).unsqueeze(0)
        previous_threads = torch.get_num_threads()
        if self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)
        try:
            with warnings.catch_warnings():
                # "detected number of speakers is outside the given bounds" and friends: the
                # result is still usable, and per-clip warnings would flood the worker's log.
                warnings.simplefilter("ignore")
                output: Any = self._pipeline(
                    {"waveform": waveform, "sample_rate": SAMPLE_RATE},
                    min_speakers=lower,
                    max_speakers=upper,
                )
        except (MemoryError, RuntimeError, ValueError) as exc:
            raise model_failure(exc, "diarizing", DiarizationError) from exc
        finally:
            torch.set_num_threads(previous_threads)
        annotation = output if isinstance(output, Annotation) else output.speaker_diarization
        return _turns(annotation)


def _turns(annotation: Annotation) -> tuple[SpeakerTurn, ...]:
    raw = sorted(
        ((float(seg.start), float(seg.end), str(label)) for seg, _, label in annotation.itertracks(yield_label=True)),
        key=lambda t: (t[0], t[1]),
    )
    names: dict[str, str] = {}
    for _, _, label in raw:
        names.setdefault(label, f"SPEAKER_{len(names):02d}")
    return tuple(SpeakerTurn(round(s, 3), round(e, 3), names[label]) for s, e, label in raw)
