"""One input record on its way through a worker: a Job in one of its states, and what became of it.

A Job's type is its state, so a step takes only the states it can handle and never reads a field
that is None in this one: the record could not be decoded (``Undecodable``), it is a bucket
notification about nothing watched (``Unwatched``), it is decoded (``Decoded``), then checked and
fetched (``Fetched``) or refused by a check or the fetch (``Refused``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from consumer.contract.inputs import AudioReference
from consumer.worker.result_cache import Lookup
from pipeline.errors import StageError
from pipeline.types import Transcript, TranscriptionRequest


class Status(StrEnum):
    """What became of one input record."""

    TRANSCRIBED = "transcribed"
    DEAD_LETTERED = "dead_lettered"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"  # a bucket notification about nothing this stage watches


@dataclass(frozen=True)
class Outcome:
    status: Status
    code: str | None = None


@dataclass(frozen=True)
class RetryLater:
    """A retriable failure: try the same record again after ``delay_s``."""

    error: StageError
    delay_s: float


@dataclass(frozen=True)
class Received:
    """What every state knows: the record, which attempt at it this is, and when the attempt started."""

    record: ConsumerRecord
    attempt: int
    started: float

    @property
    def partition(self) -> TopicPartition:
        return TopicPartition(self.record.topic, self.record.partition)


@dataclass(frozen=True)
class Undecodable(Received):
    """A record that could not be decoded: dead-lettered for ``error``, under its event id if one could be read."""

    event_id: str | None
    error: Exception


@dataclass(frozen=True)
class Unwatched(Received):
    """A bucket notification about nothing this stage watches: committed and ignored."""

    @property
    def event_id(self) -> None:
        return None


@dataclass(frozen=True)
class Referenced(Received):
    """A record decoded into its reference, and the request made from it once."""

    ref: AudioReference
    request: TranscriptionRequest

    @property
    def event_id(self) -> str:
        return self.ref.event_id


@dataclass(frozen=True)
class Decoded(Referenced):
    """Decoded, not yet checked nor fetched."""


@dataclass(frozen=True)
class Fetched(Referenced):
    """Checked, and its blob fetched or its transcript found in the result cache (``blob.hit``).

    ``transcript`` is the one a batched pass made for it; without one (alone, or a clip that failed in
    the pass) inference runs in ``EventPath.handle``.
    """

    blob: Lookup
    fetch_s: float
    transcript: Transcript | None = None


@dataclass(frozen=True)
class Refused(Referenced):
    """A check or the fetch failed: ``error`` is delivered as a retry or a dead letter."""

    error: Exception


Job = Undecodable | Unwatched | Decoded | Fetched | Refused
