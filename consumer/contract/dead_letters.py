"""The dead letter: an input event the stage could not turn into a transcript, and why.

``DeadLetter`` is ``schemas/dead_letter.avsc`` as a typed value; ``to_avro`` and ``from_avro`` are
the only places that know the record's keys (tests/unit/consumer/contract/test_output_schemas.py holds the dataclasses
to the schema). The error decides the code and whether it was retriable, never a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.errors import ErrorCode, StageError


@dataclass(frozen=True)
class SourceRef:
    """Where the failed input record was: topic, partition, offset."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, kw_only=True)
class WorkerRef:
    """Which worker wrote an outcome (a transcript's or a dead letter's ``worker``)."""

    group: str
    pool: str = "cpu"
    host: str

    def to_avro(self) -> dict[str, Any]:
        return {"group": self.group, "pool": self.pool, "host": self.host}

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> WorkerRef:
        return cls(group=record["group"], pool=record["pool"], host=record["host"])


@dataclass(frozen=True, kw_only=True)
class DeadLetter:
    """A DeadLetter event (schemas/dead_letter.avsc) as a typed value."""

    event_id: str | None = None
    original_key: bytes | None = None
    original_value: bytes | None = None
    source: SourceRef
    code: ErrorCode
    message: str
    exception_type: str
    retriable: bool = False
    attempts: int
    worker: WorkerRef
    failed_at: datetime

    @classmethod
    def of(
        cls,
        error: StageError | Exception,
        *,
        event_id: str | None,
        key: bytes | None,
        value: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        attempts: int,
        group: str,
        pool: str,
        host: str,
    ) -> DeadLetter:
        """The dead letter of ``error``: its code and retriability from the error's type, never from a message."""
        if isinstance(error, StageError):
            code, message, retriable = error.code, error.message, error.retriable
        else:
            code, message, retriable = ErrorCode.INTERNAL_ERROR, f"unexpected error in the worker: {error}", False
        return cls(
            event_id=event_id,
            original_key=key,
            original_value=value,
            source=SourceRef(topic, partition, offset),
            code=code,
            message=message,
            exception_type=type(error).__name__,
            retriable=retriable,
            attempts=attempts,
            worker=WorkerRef(group=group, pool=pool, host=host),
            failed_at=datetime.now(UTC),
        )

    def to_avro(self) -> dict[str, Any]:
        """The record as fastavro writes it and reads it back (``failed_at`` a datetime: timestamp-millis)."""
        return {
            "event_id": self.event_id,
            "original_key": self.original_key,
            "original_value": self.original_value,
            "source": {"topic": self.source.topic, "partition": self.source.partition, "offset": self.source.offset},
            "code": self.code.value,
            "message": self.message,
            "exception_type": self.exception_type,
            "retriable": self.retriable,
            "attempts": self.attempts,
            "worker": self.worker.to_avro(),
            "failed_at": self.failed_at,
        }

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> DeadLetter:
        source = record["source"]
        return cls(
            event_id=record["event_id"],
            original_key=record["original_key"],
            original_value=record["original_value"],
            source=SourceRef(source["topic"], source["partition"], source["offset"]),
            code=ErrorCode(record["code"]),
            message=record["message"],
            exception_type=record["exception_type"],
            retriable=record["retriable"],
            attempts=record["attempts"],
            worker=WorkerRef.from_avro(record["worker"]),
            failed_at=record["failed_at"],
        )
