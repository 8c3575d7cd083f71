"""Schema round trips and the single-object framing downstream teams decode."""

from __future__ import annotations

import json

import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from consumer.contract.avro import AUDIO_REFERENCE, DEAD_LETTER, MAGIC, SCHEMA_DIR, TRANSCRIPT_EVENT, load_schema
from consumer.contract.dead_letters import DeadLetter, SourceRef
from consumer.contract.errors import MalformedEventError
from consumer.contract.inputs import AudioReference, ObjectRef, parse_audio_reference
from consumer.contract.outputs import TranscriptEvent
from consumer.contract.wire import Wire
from pipeline.errors import ErrorCode, UndecodableAudioError
from pipeline.types import (
    Diarization,
    DiarizationStatus,
    Granularity,
    Segment,
    Task,
    Transcript,
    Word,
)


def _transcript() -> Transcript:
    words = (Word(0.0, 0.4, " Hello", 0.9), Word(0.4, 0.9, " world.", 0.8))
    return Transcript(
        model="tiny.en",
        profile="whisper-1",
        task=Task.TRANSCRIBE,
        language="en",
        language_probability=None,
        duration_s=1.5,
        text="Hello world.",
        segments=(Segment(0, 0.0, 0.9, "Hello world.", -0.2, 0.01, 1.1, words=words),),
        diarization=Diarization(DiarizationStatus.NOT_REQUESTED),
        warnings=("TRUNCATED_AUDIO: decoded 1.5 s of the 3.0 s the file declares",),
        decode_s=0.01,
        transcribe_s=0.2,
    )


def _ref(**fields: object) -> AudioReference:
    return AudioReference(event_id="e-1", object=ObjectRef(bucket="audio", key="a/b.wav"), **fields)


def test_header_is_marker_plus_wire_order_fingerprint() -> None:
    schema = load_schema(TRANSCRIPT_EVENT)
    canonical = to_parsing_canonical_form(json.loads((SCHEMA_DIR / "transcript_event.avsc").read_text()))
    fp_hex = fingerprint(canonical, "CRC-64-AVRO")
    encoded = Wire().encode(
        TranscriptEvent.of(
            _ref(),
            _transcript(),
            blob_etag="x",
            blob_size=10,
            fetch_s=0.1,
            total_s=0.5,
            group="g",
            pool="cpu",
            host="h",
        )
    )
    assert encoded[:2] == MAGIC
    assert encoded[2:10] == bytes.fromhex(fp_hex) == schema.fingerprint


def test_each_schema_has_a_distinct_fingerprint() -> None:
    fps = {load_schema(n).fingerprint for n in (AUDIO_REFERENCE, TRANSCRIPT_EVENT, DEAD_LETTER)}
    assert len(fps) == 3


def test_transcript_round_trip_keeps_every_field() -> None:
    ref = _ref(timestamp_granularities=(Granularity.WORD,), metadata={"team": "calls", "ünï": "cödé"})
    event = TranscriptEvent.of(
        ref,
        _transcript(),
        blob_etag="etag-1",
        blob_size=1234,
        fetch_s=0.01,
        total_s=0.3,
        group="fwv2-cpu",
        pool="cpu",
        host="box",
    )
    value = Wire().encode(event)
    back = load_schema(TRANSCRIPT_EVENT).decode(value)
    assert back["event_id"] == "e-1"
    assert back["object"] == {
        "bucket": "audio",
        "key": "a/b.wav",
        "version_id": None,
        "etag": "etag-1",
        "content_type": None,
        "size_bytes": 1234,
    }
    assert back["segments"][0]["words"][1]["word"] == " world."
    assert back["metadata"] == {"team": "calls", "ünï": "cödé"}
    assert back["warnings"] == list(_transcript().warnings)
    assert back["diarization"] == {"status": "not_requested", "reason": None}
    assert Wire().transcript(value).to_transcript() == _transcript()
    assert TranscriptEvent.from_avro(back) == Wire().transcript(value)


def test_words_are_left_out_unless_asked_for() -> None:
    record = TranscriptEvent.of(
        _ref(), _transcript(), blob_etag=None, blob_size=None, fetch_s=0, total_s=0, group="g", pool="cpu", host="h"
    ).to_avro()
    assert record["segments"][0]["words"] == []


def test_dead_letter_round_trip_carries_original_bytes() -> None:
    err = UndecodableAudioError("the file has no audio track")
    letter = DeadLetter.of(
        err,
        event_id="e-9",
        key=b"k",
        value=b"\x00\xffraw",
        topic="in",
        partition=3,
        offset=42,
        attempts=1,
        group="g",
        pool="cpu",
        host="h",
    )
    value = Wire().encode(letter)
    back = load_schema(DEAD_LETTER).decode(value)
    assert back["code"] == "UNDECODABLE_AUDIO"
    assert back["original_value"] == b"\x00\xffraw"
    assert back["source"] == {"topic": "in", "partition": 3, "offset": 42}
    assert back["exception_type"] == "UndecodableAudioError"
    assert back["retriable"] is False
    assert Wire().dead_letter(value).source == SourceRef("in", 3, 42)


def test_every_error_code_is_in_the_dead_letter_enum() -> None:
    symbols = set(json.loads((SCHEMA_DIR / "dead_letter.avsc").read_text())["fields"][4]["type"]["symbols"])
    assert {c.value for c in ErrorCode} == symbols


def test_input_parses_from_json_and_from_avro_the_same() -> None:
    ref = _ref(
        profile="whisper-1-fast",
        language="en",
        timestamp_granularities=(Granularity.WORD, Granularity.SPEAKER),
        metadata={"a": "b"},
    )
    assert parse_audio_reference(ref.to_json()) == ref
    assert parse_audio_reference(ref.to_avro()) == ref


def test_avro_with_a_foreign_fingerprint_is_malformed() -> None:
    data = bytearray(_ref().to_avro())
    data[5] ^= 0xFF
    with pytest.raises(MalformedEventError, match="fingerprint"):
        parse_audio_reference(bytes(data))
