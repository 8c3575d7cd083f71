"""What the diarization engine needs to know: which models, how hard to cluster, how many threads."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.diarization.spectral import SpectralSettings


@dataclass(frozen=True)
class DiarizationConfig:
    """Settings of one Diarizer: the weights' paths, and defaults measured as the CPU optimum.

    With ``pipeline_dir`` set, a complete pyannote pipeline (for example a local copy of
    ``pyannote/speaker-diarization-community-1``, or that hub id with ``hf_token``) is used as it
    is configured, and the segmentation/embedding paths and ``threshold`` are ignored.
    """

    # Paths of the weights; the worker's settings decide them (consumer/plumbing/settings,
    # diarization_models), so nothing in pipeline/ reads the environment.
    segmentation_path: str
    embedding_path: str
    pipeline_dir: str | None = None
    hf_token: str | None = field(default=None, repr=False)  # a secret: never printed
    # Distance at which merging speakers stops (average linkage over segments): the cosine distance
    # of their CAM++ embeddings (plus spectral_weight times that of their spectra, default off).
    # With min_train_s 2.5, 0.3 got the most speaker counts right on the tuning split and the dev
    # calls (10 of 16, DER 9.3 %; 0.35: 10, 11.4 %; 0.4: 9; 0.25: 7; docs/DIARIZATION.md).
    # With clustering="pyannote" this is pyannote's centroid-linkage threshold (its best: 0.7).
    threshold: float = 0.3
    # Weight of the long-term spectral-envelope distance (pipeline/diarization/voice.py) beside
    # CAM++'s; segments clustering only. Off: at 0.1 with threshold 0.5 it was best on the tuning
    # split and dev calls (13 of 16 counts against 10), but on the held-out split it got no count
    # more (2 of 6) and DER(0.25) 23.5 % against 22.5 % (docs/DIARIZATION.md, measured and rejected).
    spectral_weight: float = 0.0
    # "segments": one CAM++ embedding per single-speaker segment, windows that tile the clip
    # (pipeline/diarization/segments.py); "pyannote": pyannote's SpeakerDiarization, which embeds
    # every (window, local speaker) pair at the segmentation step (the engine before issue 12).
    # "spectral": many short units per segment, counted by the eigengap of their affinity graph
    # (pipeline/diarization/spectral.py; issue 21, chosen on real speech).
    clustering: str = "spectral"
    # spectral clustering: each single-speaker segment is embedded in units of unit_s every
    # unit_shift_s; units shorter than min_unit_s (short segments) only join a speaker.
    unit_s: float = 1.5
    unit_shift_s: float = 0.75
    min_unit_s: float = 0.75
    # spectral clustering: the network runs once over each segment's middle unit_pass_s and the
    # units are pooled from that pass (onnx.OnnxCamPlusPlusFrames): the cost of diarization.
    unit_pass_s: float = 3.0
    # spectral clustering: neighbours kept, smallest speaker, merge similarity (their defaults and
    # why: pipeline/diarization/spectral.py and docs/DIARIZATION.md, issue 21).
    spectral: SpectralSettings = field(default_factory=SpectralSettings)
    # Segments at least this long form the speakers; shorter ones join the nearest (segments
    # clustering). Short segments are mostly a word or two and embed noisily: 2.5 s was best (above).
    min_train_s: float = 2.5
    # Smallest cluster, in training embeddings, that counts as a speaker; smaller ones are merged
    # into the nearest large one.
    min_cluster_size: int = 12
    # Share of a window a speaker must talk alone in for its embedding to help form clusters.
    min_active_ratio: float = 0.2
    batch_size: int = 32  # segmentation chunks per forward pass; embeddings run one speaker-chunk at a time
    max_speakers: int = 8
    # Step of the 10 s segmentation window as a fraction of it. 1.0: the windows tile the clip and
    # every second of speech is segmented and embedded once (segments clustering); pyannote's
    # clustering needs overlapping windows (0.1-0.2) to keep speakers who talk in short turns.
    segmentation_step: float = 1.0
    # torch intra-op threads while diarizing; 0 leaves torch's default (one per core). One thread
    # measured as fast as two on 2 cores for half the CPU, leaves the other core to whisper, and
    # cannot fall into OpenMP's oversubscribed slow path (docs/DIARIZATION.md).
    num_threads: int = 1
    # Threads that embed a batch's speaker chunks side by side, each running torch inline (one
    # intra-op thread). Two cut a 120 s call from 11.1 s to 8.1-9.1 s alone and from 11.4-11.9 s to
    # 9.1-9.4 s beside faster-whisper on 2 cores, same DER (the GIL caps the gain; docs/DIARIZATION.md).
    embedding_workers: int = 2
    # CAM++'s runtime on CPU: "onnx" (the exported graph beside the weights, made at set-up or on
    # first load) or "torch". On a GPU the torch network runs whatever this says.
    embedding_runtime: str = "onnx"
    # "auto": the first CUDA device when torch sees one, else the CPU; or "cpu", "cuda", "cuda:1".
    device: str = "auto"

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 2.0:
            raise ValueError(f"threshold must be in (0, 2] (a cosine distance), got {self.threshold}")
        if self.spectral_weight < 0:
            raise ValueError(f"spectral_weight must be 0 or more, got {self.spectral_weight}")
        if not 0.0 < self.segmentation_step <= 1.0:
            raise ValueError(
                f"segmentation_step must be in (0, 1] (a fraction of the window), got {self.segmentation_step}"
            )
        if self.min_cluster_size < 1:
            raise ValueError(f"min_cluster_size must be at least 1, got {self.min_cluster_size}")
        if not 0.0 <= self.min_active_ratio <= 1.0:
            raise ValueError(f"min_active_ratio must be in [0, 1], got {self.min_active_ratio}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.max_speakers < 1:
            raise ValueError(f"max_speakers must be at least 1, got {self.max_speakers}")
        if self.clustering not in ("spectral", "segments", "pyannote"):
            raise ValueError(f"clustering must be spectral, segments or pyannote, got {self.clustering!r}")
        if not 0.25 <= self.unit_s <= 10.0 or not 0.1 <= self.unit_shift_s <= self.unit_s:
            raise ValueError(
                f"unit_s must be in [0.25, 10], unit_shift_s in [0.1, unit_s]: {self.unit_s}, {self.unit_shift_s}"
            )
        if self.unit_pass_s < self.unit_s:
            raise ValueError(f"unit_pass_s must be at least unit_s, got {self.unit_pass_s}")
        if self.min_train_s < 0:
            raise ValueError(f"min_train_s must be 0 or more, got {self.min_train_s}")
        if self.embedding_runtime not in ("onnx", "torch"):
            raise ValueError(f"embedding_runtime must be onnx or torch, got {self.embedding_runtime!r}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be 0 (torch's default) or more, got {self.num_threads}")
