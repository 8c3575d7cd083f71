"""Who spoke when: pyannote.audio's models offline, and speakers onto transcripts.

``assign_speakers`` and the types import without torch. ``make_diarizer`` picks the engine: on a
CPU with the exported ONNX graphs, ``LightDiarizer`` (onnxruntime, no torch in the process);
otherwise ``Diarizer``, which loads torch and pyannote.audio (the ``diarization`` extra) on first
use. A worker that never diarizes pays for neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.diarization.assign import SpeakerTurn, assign_speakers
from pipeline.diarization.config import DiarizationConfig
from pipeline.diarization.errors import DiarizationError, DiarizationModelsMissingError

if TYPE_CHECKING:
    from pipeline.diarization.engine import Diarizer

__all__ = [
    "DiarizationConfig",
    "DiarizationError",
    "DiarizationModelsMissingError",
    "Diarizer",
    "SpeakerTurn",
    "assign_speakers",
    "make_diarizer",
]


def cuda_available() -> bool:
    """Whether a CUDA device is there, asked of CTranslate2 (already loaded by faster-whisper), not torch."""
    try:
        import ctranslate2

        return bool(ctranslate2.get_cuda_device_count())
    except Exception:  # noqa: BLE001 - no CUDA runtime at all means no GPU to use
        return False


def make_diarizer(config: DiarizationConfig) -> Any:
    """The engine for ``config``: the torch-free one wherever it applies, else pyannote's on torch."""
    on_cpu = config.device == "cpu" or (config.device == "auto" and not cuda_available())
    if (
        config.clustering in ("segments", "spectral")
        and config.embedding_runtime == "onnx"
        and on_cpu
        and not config.pipeline_dir
    ):
        from pipeline.diarization.light import LightDiarizer, light_models_present

        if light_models_present(config):
            return LightDiarizer(config)
    from pipeline.diarization.engine import Diarizer

    return Diarizer(config)


def __getattr__(name: str) -> Any:
    if name == "Diarizer":
        from pipeline.diarization.engine import Diarizer

        return Diarizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
