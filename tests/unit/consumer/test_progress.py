"""``fwv2 submit --wait``'s bars follow the StatusEvents of their own events, and say a redelivery."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from consumer.contract.status import JobState, OutcomeRef, StatusEvent, Step
from consumer.progress import ProgressBars


def _state(state: JobState, run: str = "r1", **fields: object) -> StatusEvent:
    return StatusEvent(
        event_id="e1", state=state, run_id=run, pool="cpu", host="h", emitted_at=datetime.now(UTC), **fields
    )


def test_a_bar_moves_with_progress_and_ends_full() -> None:
    out = io.StringIO()
    bars = ProgressBars([("e1", "meeting.mp3"), ("e2", "call.wav")], stream=out, enabled=True)
    bars.update(_state(JobState.ACCEPTED))
    assert bars.percent("e1") == 0
    bars.update(_state(JobState.PROGRESS, step=Step.TRANSCRIBING, progress=0.4, audio_s=3600.0, done_s=1440.0))
    assert bars.percent("e1") == 40
    assert "transcribing" in out.getvalue() and "meeting.mp3" in out.getvalue()
    bars.update(_state(JobState.COMPLETED, progress=1.0, outcome=OutcomeRef(topic="audio.transcripts")))
    assert bars.percent("e1") == 100 and bars.percent("e2") == 0
    bars.update(
        StatusEvent(
            event_id="other", state=JobState.ACCEPTED, run_id="x", pool="cpu", host="h", emitted_at=datetime.now(UTC)
        )
    )  # another producer's event: ignored
    bars.close()
    assert "done" in out.getvalue()


def test_a_redelivery_restarts_the_bar_and_says_so() -> None:
    out = io.StringIO()
    bars = ProgressBars([("e1", "long.wav")], stream=out, enabled=True)
    bars.update(_state(JobState.ACCEPTED))
    bars.update(_state(JobState.PROGRESS, step=Step.TRANSCRIBING, progress=0.7))
    bars.update(_state(JobState.ACCEPTED, run="r2"))  # the first worker died mid-file
    assert bars.percent("e1") == 0
    assert "redelivered" in out.getvalue()


def test_off_when_not_a_terminal() -> None:
    out = io.StringIO()  # not a tty
    bars = ProgressBars([("e1", "a.wav")], stream=out)
    bars.update(_state(JobState.PROGRESS, progress=0.5))
    bars.close()
    assert out.getvalue() == ""
