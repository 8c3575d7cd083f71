"""Where one input event stands: ``StatusEvent`` (``schemas/status_event.avsc``) as typed values.

A worker publishes ``accepted`` when it takes an event, ``progress`` while it transcribes a long one, and
``completed`` or ``dead_lettered`` with a reference to the outcome, all keyed by the event id, so one
event's states are in one partition, in order. ``consumer.worker.status`` publishes them, ``fwv2 submit
--wait``, ``fwv2 tail --status`` and the gateway read them. docs/EVENTS.md says what each state promises.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    UNKNOWN = "unknown"  # the schema enum's fallback: a state a newer writer added
    ACCEPTED = "accepted"
    PROGRESS = "progress"
    COMPLETED = "completed"
    DEAD_LETTERED = "dead_lettered"

    @property
    def final(self) -> bool:
        return self in (JobState.COMPLETED, JobState.DEAD_LETTERED)


class Step(StrEnum):
    UNKNOWN = "unknown"
    TRANSCRIBING = "transcribing"
    DIARIZING = "diarizing"


@dataclass(frozen=True, kw_only=True)
class OutcomeRef:
    """Where the outcome went: its topic, and its partition and offset once the broker gave them."""

    topic: str
    partition: int | None = None
    offset: int | None = None
    code: str | None = None  # the dead letter's error code

    def to_avro(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset, "code": self.code}

    @classmethod
    def from_avro(cls, r: dict[str, Any]) -> OutcomeRef:
        return cls(topic=r["topic"], partition=r["partition"], offset=r["offset"], code=r["code"])


@dataclass(frozen=True, kw_only=True)
class StatusEvent:
    event_id: str
    state: JobState
    run_id: str  # a second ``accepted`` with a new run id is a redelivery
    pool: str
    host: str
    emitted_at: datetime
    attempt: int = 1
    step: Step | None = None
    progress: float = 0.0
    audio_s: float | None = None
    done_s: float | None = None
    outcome: OutcomeRef | None = None

    @classmethod
    def now(cls, **fields: Any) -> StatusEvent:
        return cls(emitted_at=datetime.now(UTC), **fields)

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "state": self.state.value,
            "run_id": self.run_id,
            "attempt": self.attempt,
            "step": self.step.value if self.step is not None else None,
            "progress": self.progress,
            "audio_s": self.audio_s,
            "done_s": self.done_s,
            "outcome": self.outcome.to_avro() if self.outcome is not None else None,
            "pool": self.pool,
            "host": self.host,
            "emitted_at": self.emitted_at,
        }

    @classmethod
    def from_avro(cls, r: dict[str, Any]) -> StatusEvent:
        return cls(
            event_id=r["event_id"],
            state=JobState(r["state"]),
            run_id=r["run_id"],
            attempt=r["attempt"],
            step=Step(r["step"]) if r["step"] is not None else None,
            progress=r["progress"],
            audio_s=r["audio_s"],
            done_s=r["done_s"],
            outcome=OutcomeRef.from_avro(r["outcome"]) if r["outcome"] is not None else None,
            pool=r["pool"],
            host=r["host"],
            emitted_at=r["emitted_at"],
        )
