"""The stage's one error hierarchy.

Every error carries a ``code`` from the closed list in ``ErrorCode`` (the dead-letter
schema's enum) and says whether it is ``retriable``. The worker decides retry or dead
letter from these attributes, never from a message string. The consumer package adds its
I/O errors as subclasses of ``StageError``.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Closed list of dead-letter codes; mirrored by the ErrorCode enum in schemas/dead_letter.avsc."""

    UNKNOWN = "UNKNOWN"
    MALFORMED_EVENT = "MALFORMED_EVENT"  # value is neither JSON nor Avro we can read
    INVALID_EVENT = "INVALID_EVENT"  # readable, but fields missing or of the wrong type
    UNKNOWN_PROFILE = "UNKNOWN_PROFILE"
    BUCKET_NOT_ALLOWED = "BUCKET_NOT_ALLOWED"
    OBJECT_NOT_FOUND = "OBJECT_NOT_FOUND"
    ACCESS_DENIED = "ACCESS_DENIED"  # the worker's credentials may not read the object
    OBJECT_TOO_LARGE = "OBJECT_TOO_LARGE"
    EMPTY_AUDIO = "EMPTY_AUDIO"  # zero-byte object
    UNDECODABLE_AUDIO = "UNDECODABLE_AUDIO"  # not audio, or no audio stream
    AUDIO_TOO_LONG = "AUDIO_TOO_LONG"
    STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"  # retriable: S3 timeouts, 5xx, connection refused
    TRANSCRIPTION_FAILED = "TRANSCRIPTION_FAILED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"  # retriable: out of memory on the device
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # Last, so the schema's symbols keep their order; readers of an older schema read it as its default, UNKNOWN.
    UNSUPPORTED_LANGUAGE = "UNSUPPORTED_LANGUAGE"  # the worker's model cannot do the requested language


class StageError(Exception):
    """Root of every error the stage raises on purpose."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR
    retriable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AudioError(StageError):
    """The audio itself is the problem: retrying the same bytes cannot help."""


class EmptyAudioError(AudioError):
    code = ErrorCode.EMPTY_AUDIO


class UndecodableAudioError(AudioError):
    code = ErrorCode.UNDECODABLE_AUDIO


class AudioTooLongError(AudioError):
    code = ErrorCode.AUDIO_TOO_LONG


class UnknownProfileError(StageError):
    code = ErrorCode.UNKNOWN_PROFILE


class UnsupportedLanguageError(StageError):
    """The request asks for a language the worker's model does not know (an English-only ``.en`` model).

    Not retriable: the same worker refuses the same request again. A multilingual model
    (WHISPER_MODEL) or a pool that runs one is the remedy, or ``language`` ``en`` or null.
    """

    code = ErrorCode.UNSUPPORTED_LANGUAGE


class TranscriptionError(StageError):
    code = ErrorCode.TRANSCRIPTION_FAILED


class ResourceExhaustedError(StageError):
    """Out of memory on the device: another attempt, after others finish, may succeed."""

    code = ErrorCode.RESOURCE_EXHAUSTED
    retriable = True


def model_failure(exc: BaseException, step: str, permanent: type[StageError]) -> StageError:
    """The stage's error for an exception raised inside a model while ``step`` (e.g. "transcribing").

    Running out of host or device memory is retriable (``ResourceExhaustedError``): the same
    audio may fit once other work has finished. Anything else is ``permanent``.
    """
    if isinstance(exc, MemoryError):
        return ResourceExhaustedError(f"out of memory while {step}: {exc}")
    if isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower():
        return ResourceExhaustedError(f"device out of memory while {step}: {exc}")
    if isinstance(exc, ValueError):
        return permanent(f"the model refused this audio while {step}: {exc}")
    return permanent(f"the model failed on this audio while {step}: {exc}")
