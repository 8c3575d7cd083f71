"""Who spoke when: pyannote.audio diarization with offline models, and speakers onto transcripts.

``assign_speakers`` and the types import without torch; ``Diarizer`` loads torch and
pyannote.audio (the ``diarization`` extra) on first use, so a worker that never diarizes never
pays for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.diarization.assign import SpeakerTurn, assign_speakers
from pipeline.diarization.config import DiarizationConfig, default_models_dir
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
    "default_models_dir",
]


def __getattr__(name: str) -> Any:
    if name == "Diarizer":
        from pipeline.diarization.engine import Diarizer

        return Diarizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
