"""Reading producers' events: JSON with defaults, and clear errors for everything else."""

from __future__ import annotations

import json
import re

import pytest

from consumer.contract.errors import InvalidEventError, MalformedEventError
from consumer.contract.inputs import MAX_METADATA_BYTES, parse_audio_reference, parse_granularities, peek_event_id
from pipeline.errors import ErrorCode
from pipeline.types import DiarizationMode, Granularity, Task


def test_minimal_json_gets_the_documented_defaults() -> None:
    ref = parse_audio_reference(b'{"event_id": "x1", "object": {"bucket": "audio", "key": "k.wav"}}')
    assert ref.profile == "whisper-1"
    assert ref.language is None
    assert ref.task is Task.TRANSCRIBE
    assert ref.diarization is DiarizationMode.AUTO
    assert ref.timestamp_granularities == (Granularity.SEGMENT,)
    assert ref.metadata == {}


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    ref = parse_audio_reference(b'{"event_id": "x1", "object": {"bucket": "audio", "key": "k"}, "future": 1}')
    assert ref.event_id == "x1"


def test_produced_at_accepts_iso_and_epoch_millis() -> None:
    a = parse_audio_reference(
        b'{"event_id":"x","object":{"bucket":"audio","key":"k"},"produced_at":"2026-11-25T10:00:00Z"}'
    )
    b = parse_audio_reference(b'{"event_id":"x","object":{"bucket":"audio","key":"k"},"produced_at":1795600800000}')
    assert a.produced_at is not None and b.produced_at is not None
    assert a.produced_at.year == 2026 and b.produced_at.year == 2026


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00\x01\x02 binary", b"\xff\xfe not utf8", b"[1, 2, 3]", b"plain text"],
)
def test_unreadable_values_are_malformed(value: bytes) -> None:
    with pytest.raises(MalformedEventError) as info:
        parse_audio_reference(value)
    assert info.value.code is ErrorCode.MALFORMED_EVENT
    assert not info.value.retriable


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"object": {"bucket": "audio", "key": "k"}}, "event_id"),
        ({"event_id": "x", "object": {"bucket": "audio"}}, "object.key"),
        ({"event_id": "x", "object": {"bucket": "audio", "key": "k"}, "task": "summarise"}, "task"),
        ({"event_id": "x", "object": {"bucket": "audio", "key": "k"}, "min_speakers": "two"}, "min_speakers"),
        ({"event_id": 5, "object": {"bucket": "audio", "key": "k"}}, "event_id"),
        ({"event_id": "x", "object": {"bucket": "audio", "key": "k"}, "language": "xx"}, "language"),
        (
            {"event_id": "x", "object": {"bucket": "audio", "key": "k"}, "min_speakers": 4, "max_speakers": 2},
            "min_speakers",
        ),
    ],
)
def test_wrong_fields_are_invalid_and_named(event: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidEventError, match=field) as info:
        parse_audio_reference(json.dumps(event).encode())
    assert info.value.code is ErrorCode.INVALID_EVENT


def test_huge_metadata_is_refused() -> None:
    event = {
        "event_id": "x",
        "object": {"bucket": "audio", "key": "k"},
        "metadata": {"blob": "a" * (MAX_METADATA_BYTES + 1)},
    }
    with pytest.raises(InvalidEventError, match="metadata"):
        parse_audio_reference(json.dumps(event).encode())


def test_peek_event_id_is_best_effort() -> None:
    assert peek_event_id(b'{"event_id": "abc", "object": 3}') == "abc"
    assert peek_event_id(b"\xff") is None
    assert peek_event_id(b'{"event_id": 7}') is None


def test_peek_reads_avro_too() -> None:
    from consumer.contract.inputs import AudioReference, ObjectRef

    ref = AudioReference(event_id="avro-1", object=ObjectRef(bucket="audio", key="k"))
    assert peek_event_id(ref.to_avro()) == "avro-1"


W, S, SEG = Granularity.WORD, Granularity.SPEAKER, Granularity.SEGMENT


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("word,speaker", (W, S)),  # OpenAI's SDK sends a string as one field, as it is
        (" word , speaker ", (W, S)),
        ("segment", (SEG,)),
        (["word", "speaker"], (W, S)),
        (["word,segment", "speaker"], (W, SEG, S)),  # each list item may itself be a list
        ("word,word, speaker,word", (W, S)),
        ([S, W], (S, W)),
        ([], ()),
    ],
)
def test_granularities_are_split_on_commas(given: str | list[str], expected: tuple[Granularity, ...]) -> None:
    assert parse_granularities(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("word,,", "empty item in timestamp granularities 'word,,'"),
        ("", "empty item in timestamp granularities ''"),
        (["word", " "], "empty item in timestamp granularities ' '"),
        ("word,bogus", "unknown timestamp granularity 'bogus' in 'word,bogus'"),
        (["letter"], "unknown timestamp granularity 'letter'; valid: segment, word, speaker"),
        ("Word", "unknown timestamp granularity 'Word'"),
    ],
)
def test_bad_granularities_are_named(given: str | list[str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_granularities(given)


def test_an_event_takes_comma_separated_granularities() -> None:
    def parsed(value: object) -> tuple[Granularity, ...]:
        event = {"event_id": "x", "object": {"bucket": "audio", "key": "k"}, "timestamp_granularities": value}
        return parse_audio_reference(json.dumps(event).encode()).timestamp_granularities

    assert parsed("word,speaker") == (W, S)
    assert parsed(["word, speaker", "word"]) == (W, S)
    assert parsed(["segment"]) == (SEG,)
    ref = parse_audio_reference(
        b'{"event_id": "x", "object": {"bucket": "audio", "key": "k"}, "timestamp_granularities": "speaker"}'
    )
    assert ref.to_request().wants_speakers and ref.to_request().granularities == {SEG, S}
    # The Avro record carries the parsed list, which Java and Avro readers know as an array of enums.
    assert parse_audio_reference(ref.to_avro()).timestamp_granularities == (S,)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("word,,", "empty item"),
        (["word,bogus"], "unknown timestamp granularity 'bogus'"),
        (None, "timestamp_granularities"),
        ([1], "timestamp_granularities"),
    ],
)
def test_bad_granularities_in_an_event_are_invalid(value: object, message: str) -> None:
    event = {"event_id": "x", "object": {"bucket": "audio", "key": "k"}, "timestamp_granularities": value}
    with pytest.raises(InvalidEventError, match=re.escape(message)) as info:
        parse_audio_reference(json.dumps(event).encode())
    assert info.value.code is ErrorCode.INVALID_EVENT
    assert "timestamp_granularities" in info.value.message
