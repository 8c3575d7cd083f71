"""Named performance profiles: the trade between speed and accuracy, as data.

A profile fixes the decoding options; a worker's environment may override single
options (``BEAM_SIZE``...), which the pipeline receives as ``ProfileOverrides``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, TypeVar

from pipeline.config import ProfileOverrides
from pipeline.errors import UnknownProfileError

T = TypeVar("T")


@dataclass(frozen=True)
class VadOptions:
    threshold: float
    min_silence_ms: int
    speech_pad_ms: int


@dataclass(frozen=True)
class Profile:
    name: str
    beam_size: int
    best_of: int
    patience: float
    vad: VadOptions
    description: str
    # Whether short clips of this profile may share one batched inference pass with other clips
    # (faster-whisper's BatchedInferencePipeline). A clip of one 30 s window loses nothing of
    # condition_on_previous_text there, only the temperature fallback on a failed decode.
    batch_short_clips: bool = False
    # Whether audio longer than one window may run batched (windows decoded side by side) where the
    # worker enables it: it drops condition_on_previous_text and the temperature fallback.
    batch_long_audio: bool = False

    def whisper_options(self) -> dict[str, Any]:
        """The profile as faster-whisper's ``transcribe`` keyword arguments (the VAD is always on)."""
        return {
            "beam_size": self.beam_size,
            "best_of": self.best_of,
            "patience": self.patience,
            "vad_filter": True,
            "vad_parameters": {
                "threshold": self.vad.threshold,
                "min_silence_duration_ms": self.vad.min_silence_ms,
                "speech_pad_ms": self.vad.speech_pad_ms,
            },
        }

    def with_overrides(self, overrides: ProfileOverrides) -> Profile:
        vad = VadOptions(
            threshold=_pick(overrides.vad_threshold, self.vad.threshold),
            min_silence_ms=_pick(overrides.vad_min_silence_ms, self.vad.min_silence_ms),
            speech_pad_ms=_pick(overrides.vad_speech_pad_ms, self.vad.speech_pad_ms),
        )
        return replace(
            self,
            beam_size=_pick(overrides.beam_size, self.beam_size),
            best_of=_pick(overrides.best_of, self.best_of),
            patience=_pick(overrides.patience, self.patience),
            vad=vad,
        )


def _pick(override: T | None, default: T) -> T:
    return default if override is None else override


DEFAULT_PROFILE = "whisper-1"

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="whisper-1-fast",
            beam_size=1,
            best_of=1,
            patience=0.5,
            # Aggressive VAD: a higher speech threshold and short silences cut more non-speech.
            vad=VadOptions(threshold=0.6, min_silence_ms=500, speech_pad_ms=200),
            description="Greedy decoding and aggressive VAD: the most audio per second.",
            batch_short_clips=True,
            batch_long_audio=True,  # speed is its point; greedy decoding gains little from the context
        ),
        Profile(
            name="whisper-1",
            beam_size=5,
            best_of=5,
            patience=1.0,
            vad=VadOptions(threshold=0.5, min_silence_ms=1000, speech_pad_ms=400),
            description="Beam 5 (faster-whisper's default decoding), VAD on with 1 s of silence to split.",
            batch_short_clips=True,
            batch_long_audio=False,  # keeps faster-whisper's defaults: context across windows, fallback
        ),
        Profile(
            name="whisper-1-quality",
            beam_size=10,
            best_of=10,
            patience=2.0,
            # Conservative VAD: keeps quiet speech and pads generously so no word is clipped.
            vad=VadOptions(threshold=0.35, min_silence_ms=2000, speech_pad_ms=600),
            description="Wide beam, conservative VAD: the fewest errors.",
            # Never batched: the temperature fallback and the context are part of its accuracy.
        ),
    )
}


def get_profile(name: str, overrides: ProfileOverrides | None = None) -> Profile:
    try:
        profile = PROFILES[name]
    except KeyError:
        valid = ", ".join(sorted(PROFILES))
        raise UnknownProfileError(f"unknown profile {name!r}; valid profiles: {valid}") from None
    return profile.with_overrides(overrides) if overrides else profile
