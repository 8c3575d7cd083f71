"""What the diarization engine needs to know: which models, how hard to cluster, how many threads."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def default_models_dir() -> Path:
    """Where scripts/install-diarization-models.sh puts the weights (its MODELS_DIR / CACHE_DIR rules)."""
    if os.environ.get("MODELS_DIR"):
        return Path(os.environ["MODELS_DIR"])
    cache = Path(os.environ["CACHE_DIR"]) if os.environ.get("CACHE_DIR") else Path.home() / ".cache" / "fwv2"
    return cache / "models"


def _default_segmentation_path() -> str:
    return str(default_models_dir() / "pyannote_segmentation_3.0" / "pytorch_model.bin")


def _default_embedding_path() -> str:
    return str(default_models_dir() / "campplus" / "campplus_cn_en_common.pt")


@dataclass(frozen=True)
class DiarizationConfig:
    """Settings of one Diarizer. The defaults are the offline models and the measured CPU optimum.

    With ``pipeline_dir`` set, a complete pyannote pipeline (for example a local copy of
    ``pyannote/speaker-diarization-community-1``, or that hub id with ``hf_token``) is used as it
    is configured, and the segmentation/embedding paths and ``threshold`` are ignored.
    """

    segmentation_path: str = field(default_factory=_default_segmentation_path)
    embedding_path: str = field(default_factory=_default_embedding_path)
    pipeline_dir: str | None = None
    hf_token: str | None = field(default=None, repr=False)  # a secret: never printed
    # Cosine-distance cut of the agglomerative clustering (centroid linkage). 0.7 sits in the
    # middle of the range that gave the right speaker count on every clip we measured
    # (docs/DIARIZATION.md); lower splits speakers, higher merges them.
    threshold: float = 0.7
    batch_size: int = 32  # segmentation chunks per forward pass; embeddings run one speaker-chunk at a time
    max_speakers: int = 8
    # Step of the 10 s segmentation window as a fraction of it (pyannote's default: 0.1 = 1 s).
    # 0.2 halves the time of 0.1 and kept every speaker on every clip we measured; 0.3 to 0.5
    # are 1.5-2.6x faster again, equal on two-person calls, but lost a speaker who talks only in
    # short turns on 3-5 of 5 alignments of a four-speaker clip (docs/DIARIZATION.md).
    segmentation_step: float = 0.2
    # torch intra-op threads while diarizing; 0 leaves torch's default (one per core). One thread
    # measured as fast as two on 2 cores for half the CPU, leaves the other core to whisper, and
    # cannot fall into OpenMP's oversubscribed slow path (docs/DIARIZATION.md).
    num_threads: int = 1
    # Threads that embed a batch's speaker chunks side by side, each running torch inline (one
    # intra-op thread). Two cut a 120 s call from 11.1 s to 8.1-9.1 s alone and from 11.4-11.9 s to
    # 9.1-9.4 s beside faster-whisper on 2 cores, same DER (the GIL caps the gain; docs/DIARIZATION.md).
    embedding_workers: int = 2
    # "auto": the first CUDA device when torch sees one, else the CPU; or "cpu", "cuda", "cuda:1".
    device: str = "auto"

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 2.0:
            raise ValueError(f"threshold must be in (0, 2] (a cosine distance), got {self.threshold}")
        if not 0.0 < self.segmentation_step <= 1.0:
            raise ValueError(f"segmentation_step must be in (0, 1] (a fraction of the window), got {self.segmentation_step}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.max_speakers < 1:
            raise ValueError(f"max_speakers must be at least 1, got {self.max_speakers}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be 0 (torch's default) or more, got {self.num_threads}")
