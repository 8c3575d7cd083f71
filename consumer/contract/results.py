"""An outcome of the stage as a downstream consumer reads it: a transcript or a dead letter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ResultKind = Literal["transcript", "dead_letter"]


@dataclass(frozen=True)
class Result:
    """A transcript or a dead letter read back from the stage's topics."""

    kind: ResultKind
    event_id: str | None
    record: dict[str, Any]
    topic: str
    partition: int
    offset: int
