from __future__ import annotations

from consumer.contract.dead_letters import DeadLetter
from consumer.contract.inputs import AudioReference, ObjectRef
from consumer.contract.outputs import TranscriptEvent
from consumer.contract.wire import Wire
from consumer.worker.dedupe import RecentEvents, event_id_of_transcript
from pipeline.types import Diarization, DiarizationStatus, Task, Transcript


def test_recent_events_forget_the_oldest_first() -> None:
    store = RecentEvents(capacity=3)
    for event_id in "abcd":
        store.add(event_id)
    assert "a" not in store and all(e in store for e in "bcd")
    store.add("b")  # touching an id keeps it
    store.add("e")
    assert "b" in store and "c" not in store
    assert len(store) == 3


def test_zero_capacity_remembers_nothing() -> None:
    store = RecentEvents(capacity=0)
    store.add("a")
    assert "a" not in store


def test_event_id_is_read_from_the_transcript_header_alone() -> None:
    ref = AudioReference(event_id="ünïcode-" + "x" * 200, object=ObjectRef(bucket="audio", key="k"))
    t = Transcript(
        "tiny.en", "whisper-1", Task.TRANSCRIBE, "en", None, 1.0, "hi", (), Diarization(DiarizationStatus.NOT_REQUESTED)
    )
    value = Wire().encode(
        TranscriptEvent.of(ref, t, blob_etag=None, blob_size=1, fetch_s=0, total_s=0, group="g", pool="cpu", host="h")
    )
    assert event_id_of_transcript(value) == ref.event_id
    assert event_id_of_transcript(b"{}") is None
    assert event_id_of_transcript(value[:12]) is None  # cut short: no answer rather than a wrong one


def test_dead_letters_are_not_mistaken_for_transcripts() -> None:
    letter = Wire().encode(
        DeadLetter.of(
            ValueError("x"),
            event_id="e",
            key=None,
            value=b"v",
            topic="t",
            partition=0,
            offset=1,
            attempts=1,
            group="g",
            pool="cpu",
            host="h",
        )
    )
    # Only the output topic is read for dedupe; even so, a dead letter's first field is a union.
    assert event_id_of_transcript(letter) != "e"
