"""The values that cross the pipeline's seam: a request in, a transcript out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for annotations: importing the seam's types needs no numpy
    import numpy as np


class Task(StrEnum):
    TRANSCRIBE = "transcribe"
    TRANSLATE = "translate"


class Granularity(StrEnum):
    SEGMENT = "segment"
    WORD = "word"
    SPEAKER = "speaker"


class DiarizationMode(StrEnum):
    AUTO = "auto"  # only when the clip is at least the configured minimum duration
    ALWAYS = "always"
    NEVER = "never"


class DiarizationStatus(StrEnum):
    APPLIED = "applied"
    SKIPPED_SHORT = "skipped_short"
    SKIPPED_DISABLED = "skipped_disabled"
    # The clip holds no speech (or too little to tell voices apart): nothing to diarize.
    SKIPPED_NO_SPEECH = "skipped_no_speech"
    NOT_REQUESTED = "not_requested"
    FAILED = "failed"


@dataclass(frozen=True)
class TranscriptionRequest:
    """What the caller wants done with one clip."""

    profile: str = "whisper-1"
    language: str | None = None  # None: detect
    task: Task = Task.TRANSCRIBE
    granularities: frozenset[Granularity] = frozenset({Granularity.SEGMENT})
    diarization: DiarizationMode = DiarizationMode.AUTO
    min_speakers: int | None = None
    max_speakers: int | None = None
    prompt: str | None = None
    temperature: float | None = None  # None or 0: faster-whisper's fallback schedule; above 0: sample at it

    @property
    def word_timestamps(self) -> bool:
        # Speakers are attached word by word, so asking for speakers implies words internally.
        return Granularity.WORD in self.granularities or self.wants_speakers

    @property
    def wants_speakers(self) -> bool:
        return Granularity.SPEAKER in self.granularities or self.diarization is DiarizationMode.ALWAYS


@dataclass(frozen=True)
class DecodedAudio:
    """16 kHz mono float32 samples, plus what the container said about itself."""

    samples: np.ndarray  # float32
    sample_rate: int
    duration_s: float
    declared_duration_s: float | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float
    speaker: str | None = None


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    words: tuple[Word, ...] = ()
    speaker: str | None = None


@dataclass(frozen=True)
class Speaker:
    id: str
    speech_s: float


@dataclass(frozen=True)
class Diarization:
    status: DiarizationStatus
    reason: str | None = None


class CacheTier(StrEnum):
    MEMORY = "memory"  # this worker's bounded in-memory cache
    S3 = "s3"  # the persistent cache, shared by every worker that points at the same prefix


class CacheMatch(StrEnum):
    OBJECT = "object"  # the object's ETag and size, known before download
    CONTENT = "content"  # the SHA-256 of the bytes: another object with the same audio


@dataclass(frozen=True)
class CacheHit:
    """Where a transcript served without inference came from."""

    tier: CacheTier
    matched_by: CacheMatch
    computed_at_ms: int  # when inference made it and it was kept (Unix milliseconds)


@dataclass(frozen=True)
class Transcript:
    """The pipeline's answer for one clip."""

    model: str
    profile: str
    task: Task
    language: str
    language_probability: float | None
    duration_s: float
    text: str
    segments: tuple[Segment, ...]
    diarization: Diarization
    speakers: tuple[Speaker, ...] = ()
    warnings: tuple[str, ...] = ()
    decode_s: float = 0.0
    transcribe_s: float = 0.0
    diarize_s: float = 0.0
    # Wall time of inference: transcription and diarization run side by side, so this is not their sum.
    inference_s: float = 0.0
    cache: CacheHit | None = None  # set when served from the result cache instead of inference


# Told how far a transcription has come: the step ("transcribing", then "diarizing" while speakers are
# still being found), the seconds of audio done and the audio's duration. Called from the inference
# thread, so it must be quick and thread-safe; the worker turns it into progress StatusEvents.
Progress = Callable[[str, float, float], None]
