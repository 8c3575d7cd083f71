"""An outcome of the stage as a downstream consumer reads it: a transcript or a dead letter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from consumer.contract.dead_letters import DeadLetter
from consumer.contract.outputs import TranscriptEvent

ResultKind = Literal["transcript", "dead_letter"]


@dataclass(frozen=True)
class Result:
    """A transcript or a dead letter read back from the stage's topics: exactly one of the two is set."""

    topic: str
    partition: int
    offset: int
    transcript: TranscriptEvent | None = None
    dead_letter: DeadLetter | None = None

    def __post_init__(self) -> None:
        if (self.transcript is None) == (self.dead_letter is None):
            raise ValueError("a Result is a transcript or a dead letter: set exactly one")

    @property
    def kind(self) -> ResultKind:
        return "transcript" if self.transcript is not None else "dead_letter"

    @property
    def event_id(self) -> str | None:
        if self.transcript is not None:
            return self.transcript.event_id
        assert self.dead_letter is not None
        return self.dead_letter.event_id
