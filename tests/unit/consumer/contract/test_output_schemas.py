"""The output dataclasses against schemas/*.avsc, field by field: a field on one side only fails here.

``mismatches`` walks a record schema and a dataclass (or the pydantic ``ObjectRef``) together: every
field's name, its type (primitives, ``timestamp-millis`` as ``datetime``, enums by their symbols,
``["null", X]`` as ``X | None``, arrays as tuples, maps as dicts, nested records recursively) and its
default. The last tests mutate the real schemas to show that it catches each kind of drift.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from datetime import datetime
from enum import Enum
from typing import Any

import pytest
from pydantic import BaseModel

from consumer.contract.avro import DEAD_LETTER, SCHEMA_DIR, STATUS_EVENT, TRANSCRIPT_EVENT, load_schema
from consumer.contract.dead_letters import DeadLetter
from consumer.contract.inputs import AudioReference, ObjectRef
from consumer.contract.outputs import TranscriptEvent, from_millis
from consumer.contract.status import JobState, OutcomeRef, StatusEvent, Step
from consumer.contract.wire import Wire
from pipeline.errors import UndecodableAudioError
from pipeline.types import (
    CacheHit,
    CacheMatch,
    CacheTier,
    Diarization,
    DiarizationStatus,
    Granularity,
    Segment,
    Speaker,
    Task,
    Transcript,
    Word,
)

MISSING: Any = dataclasses.MISSING
PRIMITIVES: dict[str, type] = {
    "string": str,
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "boolean": bool,
    "bytes": bytes,
}


def _schema(name: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
    return raw


def _fields(cls: type) -> dict[str, tuple[Any, Any]]:
    """{name: (annotation, default or MISSING)} of a dataclass or a pydantic model."""
    hints = typing.get_type_hints(cls)
    if dataclasses.is_dataclass(cls):
        out = {}
        for f in dataclasses.fields(cls):
            default = f.default
            if f.default_factory is not MISSING:
                default = f.default_factory()
            out[f.name] = (hints[f.name], default)
        return out
    assert issubclass(cls, BaseModel), f"{cls} is neither a dataclass nor a pydantic model"
    return {
        name: (hints[name], MISSING if info.is_required() else info.get_default(call_default_factory=True))
        for name, info in cls.model_fields.items()
    }


def _as_avro_default(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_as_avro_default(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_avro_default(v) for k, v in value.items()}
    return value


def mismatches(cls: type, record: dict[str, Any], path: str = "") -> list[str]:
    """Every difference between the record schema ``record`` and ``cls``; empty when they agree."""
    problems: list[str] = []
    ours = _fields(cls)
    theirs = {f["name"]: f for f in record["fields"]}
    for name in theirs.keys() - ours.keys():
        problems.append(f"{path}{name}: in the schema, not in {cls.__name__}")
    for name in ours.keys() - theirs.keys():
        problems.append(f"{path}{name}: in {cls.__name__}, not in the schema")
    for name in sorted(theirs.keys() & ours.keys()):
        field, (annotation, default) = theirs[name], ours[name]
        where = f"{path}{name}"
        problems += _type_mismatches(annotation, field["type"], where)
        if "default" not in field and default is not MISSING:
            problems.append(f"{where}: default {default!r} in {cls.__name__}, none in the schema")
        elif "default" in field and default is MISSING:
            problems.append(f"{where}: default {field['default']!r} in the schema, none in {cls.__name__}")
        elif "default" in field and _as_avro_default(default) != field["default"]:
            problems.append(f"{where}: default {default!r} in {cls.__name__}, {field['default']!r} in the schema")
    return problems


def _type_mismatches(annotation: Any, avro: Any, where: str) -> list[str]:
    args = typing.get_args(annotation)
    nullable = typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args
    if isinstance(avro, list):  # a union: only ["null", X] is used in schemas/
        if len(avro) != 2 or avro[0] != "null":
            return [f"{where}: union {avro} is not [null, X]: teach this test to read it"]
        if not nullable:
            return [f"{where}: nullable in the schema, {annotation} in the class"]
        (inner,) = (a for a in args if a is not type(None))
        return _type_mismatches(inner, avro[1], where)
    if nullable:
        return [f"{where}: {annotation} in the class, not nullable in the schema"]
    if isinstance(avro, str):
        wanted = PRIMITIVES.get(avro)
        if wanted is None:
            return [f"{where}: named type {avro!r}: teach this test to look it up"]
        return [] if annotation is wanted else [f"{where}: {annotation} in the class, {avro} in the schema"]
    kind = avro["type"]
    if avro.get("logicalType") == "timestamp-millis":
        return [] if annotation is datetime else [f"{where}: {annotation} in the class, timestamp-millis in the schema"]
    if kind == "enum":
        if not (isinstance(annotation, type) and issubclass(annotation, Enum)):
            return [f"{where}: {annotation} in the class, enum {avro['name']} in the schema"]
        values = {m.value for m in annotation}
        # The enum's own default is the reader's fallback for a symbol it does not know; no writer of
        # ours writes it, so the Python enum may leave it out (CacheTier, CacheMatch: "unknown").
        if values != set(avro["symbols"]) and values != set(avro["symbols"]) - {avro.get("default")}:
            return [f"{where}: {annotation.__name__} has {sorted(values)}, the schema {sorted(avro['symbols'])}"]
        return []
    if kind == "array":
        if typing.get_origin(annotation) is not tuple or len(args) != 2 or args[1] is not Ellipsis:
            return [f"{where}: {annotation} in the class, an array in the schema (want tuple[X, ...])"]
        return _type_mismatches(args[0], avro["items"], f"{where}[]")
    if kind == "map":
        if typing.get_origin(annotation) is not dict or args[0] is not str:
            return [f"{where}: {annotation} in the class, a map in the schema (want dict[str, X])"]
        return _type_mismatches(args[1], avro["values"], f"{where}{{}}")
    if kind == "record":
        if not isinstance(annotation, type):
            return [f"{where}: {annotation} in the class, record {avro['name']} in the schema"]
        return mismatches(annotation, avro, f"{where}.")
    return _type_mismatches(annotation, kind, where)  # {"type": "string"} and the like


def test_transcript_event_is_the_schema() -> None:
    assert mismatches(TranscriptEvent, _schema(TRANSCRIPT_EVENT)) == []


def test_dead_letter_is_the_schema() -> None:
    assert mismatches(DeadLetter, _schema(DEAD_LETTER)) == []


def test_status_event_is_the_schema() -> None:
    assert mismatches(StatusEvent, _schema(STATUS_EVENT)) == []


def test_a_status_event_reads_back_equal_in_both_framings() -> None:
    event = StatusEvent(
        event_id="e1",
        state=JobState.COMPLETED,
        run_id="r1",
        attempt=2,
        step=Step.TRANSCRIBING,
        progress=1.0,
        audio_s=3600.0,
        done_s=3600.0,
        outcome=OutcomeRef(topic="audio.transcripts", partition=3, offset=17),
        pool="cpu",
        host="h",
        emitted_at=from_millis(1_764_064_800_001),
    )
    value = Wire().encode(event)
    assert Wire().status(value) == event
    assert load_schema(STATUS_EVENT).decode(value)["state"] == "completed"


def _field(record: dict[str, Any], dotted: str) -> dict[str, Any]:
    """A field of ``record`` by its path through nested records, arrays and unions: "segments.words.speaker"."""
    *parents, last = dotted.split(".")
    for name in parents:
        avro = next(f for f in record["fields"] if f["name"] == name)["type"]
        while not (isinstance(avro, dict) and avro["type"] == "record"):
            avro = avro[-1] if isinstance(avro, list) else avro["items"]
        record = avro
    found: dict[str, Any] = next(f for f in record["fields"] if f["name"] == last)
    return found


def _add_field(s: dict[str, Any]) -> None:
    word = _field(s, "segments.words")["type"]["items"]
    word["fields"].append({"name": "confidence", "type": "double", "default": 0.0})


def _drop_field(s: dict[str, Any]) -> None:
    s["fields"] = [f for f in s["fields"] if f["name"] != "warnings"]


@pytest.mark.parametrize(
    ("mutate", "reported"),
    [
        (_add_field, "segments[].words[].confidence: in the schema, not in Word"),
        (_drop_field, "warnings: in TranscriptEvent, not in the schema"),
        (lambda s: _field(s, "segments.words.probability").update(type="string"), "segments[].words[].probability"),
        (lambda s: _field(s, "language_probability").update(type="double"), "language_probability"),
        (lambda s: _field(s, "language").update(type=["null", "string"], default=None), "language"),
        (lambda s: _field(s, "timings.diarize_s").update(default=1.0), "timings.diarize_s: default"),
        (lambda s: _field(s, "timings.fetch_s").update(default=0.0), "timings.fetch_s: default"),
        (lambda s: _field(s, "worker.pool").pop("default"), "worker.pool: default 'cpu' in WorkerRef"),
        (lambda s: _field(s, "diarization.status")["type"]["symbols"].append("maybe"), "diarization.status"),
        (lambda s: _field(s, "cache.computed_at").update(type="long"), "cache.computed_at"),
        (lambda s: _field(s, "metadata").update(type={"type": "map", "values": "long"}), "metadata{}"),
        (lambda s: _field(s, "object.size_bytes").update(type="long", default=0), "object.size_bytes"),
    ],
)
def test_the_check_catches_drift(mutate: Any, reported: str) -> None:
    schema = copy.deepcopy(_schema(TRANSCRIPT_EVENT))
    mutate(schema)
    found = mismatches(TranscriptEvent, schema)
    assert any(reported in problem for problem in found), found


def test_the_check_catches_drift_in_the_dead_letter() -> None:
    schema = copy.deepcopy(_schema(DEAD_LETTER))
    _field(schema, "retriable").pop("default")
    _field(schema, "source.offset").update(type="string")
    schema["fields"].append({"name": "trace_id", "type": ["null", "string"], "default": None})
    found = mismatches(DeadLetter, schema)
    assert len(found) == 3, found


# --- the values: to_avro is what a reader decodes ----------------------------------------------


def _event() -> TranscriptEvent:
    words = (Word(0.0, 0.4, " Hello", 0.9, "SPEAKER_00"), Word(0.4, 0.9, " world.", 0.8, None))
    transcript = Transcript(
        model="tiny.en",
        profile="whisper-1",
        task=Task.TRANSLATE,
        language="de",
        language_probability=0.93,
        duration_s=1.5,
        text="Hello world.",
        segments=(Segment(0, 0.0, 0.9, "Hello world.", -0.2, 0.01, 1.1, words=words, speaker="SPEAKER_00"),),
        diarization=Diarization(DiarizationStatus.APPLIED),
        speakers=(Speaker("SPEAKER_00", 0.9),),
        warnings=("TRUNCATED_AUDIO: x",),
        decode_s=0.01,
        transcribe_s=0.2,
        diarize_s=0.1,
        inference_s=0.25,
        cache=CacheHit(CacheTier.S3, CacheMatch.OBJECT, 1_764_064_800_123),
    )
    ref = AudioReference(
        event_id="e-1",
        object=ObjectRef(bucket="audio", key="a.wav", version_id="v1"),
        timestamp_granularities=(Granularity.WORD,),
        metadata={"team": "calls"},
    )
    event = TranscriptEvent.of(
        ref, transcript, blob_etag="x", blob_size=10, fetch_s=0.1, total_s=0.5, group="g", pool="gpu", host="h"
    )
    return dataclasses.replace(event, completed_at=from_millis(1_764_064_801_999))  # as a reader gets it: millis


def test_to_avro_is_the_record_a_reader_decodes_key_for_key() -> None:
    event = _event()
    value = Wire().encode(event)
    decoded = load_schema(TRANSCRIPT_EVENT).decode(value)
    # Same keys in the same order: ``fwv2 tail --format avro-json`` prints the same line as before.
    assert json.dumps(event.to_avro(), default=str) == json.dumps(decoded, default=str)
    assert Wire().transcript(value) == TranscriptEvent.from_avro(decoded) == event


def test_a_dead_letter_reads_back_equal() -> None:
    letter = DeadLetter.of(
        UndecodableAudioError("no audio"),
        event_id=None,
        key=b"k",
        value=b"\x00v",
        topic="in",
        partition=1,
        offset=2,
        attempts=3,
        group="g",
        pool="cpu",
        host="h",
    )
    letter = dataclasses.replace(letter, failed_at=from_millis(1_764_064_800_001))
    value = Wire().encode(letter)
    decoded = load_schema(DEAD_LETTER).decode(value)
    assert json.dumps(letter.to_avro(), default=str) == json.dumps(decoded, default=str)
    assert Wire().dead_letter(value) == letter
