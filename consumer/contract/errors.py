"""The consumer's I/O errors, in the stage's one hierarchy (``pipeline.errors.StageError``)."""

from __future__ import annotations

from pipeline.errors import ErrorCode, StageError


class EventError(StageError):
    """The input record itself is wrong: only the producer can fix it."""


class MalformedEventError(EventError):
    code = ErrorCode.MALFORMED_EVENT


class InvalidEventError(EventError):
    code = ErrorCode.INVALID_EVENT


class StorageError(StageError):
    """Reading the object failed."""


class BucketNotAllowedError(StorageError):
    code = ErrorCode.BUCKET_NOT_ALLOWED


class ObjectNotFoundError(StorageError):
    code = ErrorCode.OBJECT_NOT_FOUND


class AccessDeniedError(StorageError):
    code = ErrorCode.ACCESS_DENIED


class ObjectTooLargeError(StorageError):
    code = ErrorCode.OBJECT_TOO_LARGE


class StorageUnavailableError(StorageError):
    """Timeouts, refused connections and 5xx answers: the same request may work later."""

    code = ErrorCode.STORAGE_UNAVAILABLE
    retriable = True
