"""The input side of the event contract: an AudioReference read from JSON or Avro, and checked.

What a producer may send (``schemas/audio_reference.avsc``) and what makes it invalid, so a bad
event is the producer's ``MALFORMED_EVENT`` or ``INVALID_EVENT`` here, before any work is done.
Field meanings live in the ``doc`` of each field in ``schemas/audio_reference.avsc``; docs/EVENTS.md
explains them for producers. The outputs are in ``outputs.py`` and ``dead_letters.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from faster_whisper.tokenizer import _LANGUAGE_CODES
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from consumer.contract.avro import AUDIO_REFERENCE, is_single_object, load_schema
from consumer.contract.errors import InvalidEventError, MalformedEventError
from pipeline.types import DiarizationMode, Granularity, Task, TranscriptionRequest

# Metadata travels into every transcript; these bounds keep one producer's bug (a
# megabyte of metadata) from making transcripts unpublishable or logs unreadable.
MAX_METADATA_ENTRIES = 64
MAX_METADATA_BYTES = 16 * 1024
MAX_PROMPT_CHARS = 2_000


def parse_granularities(values: str | Iterable[str]) -> tuple[Granularity, ...]:
    """Granularities from a string or a list whose items may each be comma-separated, first-seen order kept.

    OpenAI's SDK sends ``timestamp_granularities="word,speaker"`` as one value, so every place that
    takes a list (the gateway's form fields, the AudioReference) reads it here. Whitespace around an
    item is dropped and so are repeats; an empty or unknown item is a ValueError that names it.
    """
    valid = ", ".join(g.value for g in Granularity)
    found: dict[Granularity, None] = {}
    for value in [values] if isinstance(values, str) else values:
        text = str(value)
        for item in text.split(","):
            name = item.strip()
            if not name:
                raise ValueError(f"empty item in timestamp granularities {text!r}; valid: {valid}")
            try:
                found.setdefault(Granularity(name))
            except ValueError:
                where = "" if name == text else f" in {text!r}"
                raise ValueError(f"unknown timestamp granularity {name!r}{where}; valid: {valid}") from None
    return tuple(found)


class ObjectRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    bucket: str = Field(min_length=3, max_length=63)
    key: str = Field(min_length=1, max_length=1024)
    version_id: str | None = None
    etag: str | None = None
    content_type: str | None = None
    size_bytes: int | None = Field(None, ge=0)


class AudioReference(BaseModel):
    """One request to transcribe one object."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str = Field(min_length=1, max_length=256)
    object: ObjectRef
    profile: str = "whisper-1"
    language: str | None = Field(None, min_length=2, max_length=8)
    task: Task = Task.TRANSCRIBE
    timestamp_granularities: tuple[Granularity, ...] = (Granularity.SEGMENT,)
    diarization: DiarizationMode = DiarizationMode.AUTO
    min_speakers: int | None = Field(None, ge=1, le=64)
    max_speakers: int | None = Field(None, ge=1, le=64)
    prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    metadata: dict[str, str] = Field(default_factory=dict)
    produced_at: datetime | None = None
    temperature: float | None = Field(None, ge=0, le=1)

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        # Checked here so a typo is the producer's INVALID_EVENT, not a model failure later.
        if value is not None and value.lower() not in _LANGUAGE_CODES:
            raise ValueError(f"unknown language code {value!r}; use an ISO 639-1 code Whisper knows, or null")
        return value.lower() if value else value

    @field_validator("timestamp_granularities", mode="before")
    @classmethod
    def _split_granularities(cls, value: Any) -> Any:
        # "word,speaker" as well as ["word", "speaker"]; anything else is left to the type's own error.
        if isinstance(value, str) or (isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)):
            return parse_granularities(value)
        return value

    @model_validator(mode="after")
    def _speaker_bounds(self) -> AudioReference:
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ValueError(f"min_speakers ({self.min_speakers}) is above max_speakers ({self.max_speakers})")
        return self

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_METADATA_ENTRIES:
            raise ValueError(f"at most {MAX_METADATA_ENTRIES} metadata entries")
        size = sum(len(k.encode()) + len(v.encode()) for k, v in value.items())
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is {size} bytes; at most {MAX_METADATA_BYTES}")
        return value

    def to_request(self) -> TranscriptionRequest:
        return TranscriptionRequest(
            profile=self.profile,
            language=self.language,
            task=self.task,
            granularities=frozenset(self.timestamp_granularities) | {Granularity.SEGMENT},
            diarization=self.diarization,
            min_speakers=self.min_speakers,
            max_speakers=self.max_speakers,
            prompt=self.prompt,
            temperature=self.temperature,
        )

    def to_avro(self) -> bytes:
        record = self.model_dump(mode="python")
        record["task"] = self.task.value
        record["diarization"] = self.diarization.value
        record["timestamp_granularities"] = [g.value for g in self.timestamp_granularities]
        return load_schema(AUDIO_REFERENCE).encode(record)

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


def parse_audio_reference(value: bytes | None, event_id: str | None = None) -> AudioReference:
    """Read an input record's value: Avro single-object encoding, or a JSON object.

    ``event_id`` (a CloudEvents ``ce_id`` header's) is the event id of a body that carries none.
    The Confluent framing needs a registry: ``wire.Wire.reference`` reads it.
    """
    return reference_from_raw(_raw_reference(value), event_id)


def _raw_reference(value: bytes | None) -> Any:
    if not value:
        raise MalformedEventError("the record has no value; expected a JSON or Avro AudioReference")
    if is_single_object(value):
        try:
            raw: Any = load_schema(AUDIO_REFERENCE).decode(value)
        except Exception as exc:  # fastavro raises a variety of types on bad bodies
            raise MalformedEventError(f"not a readable Avro AudioReference: {exc}") from exc
    else:
        try:
            raw = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedEventError(
                "the value is neither JSON nor Avro single-object encoded (C3 01 marker) AudioReference"
            ) from exc
        if not isinstance(raw, dict):
            raise MalformedEventError(f"expected a JSON object, got {type(raw).__name__}")
    return raw


def reference_from_raw(raw: Any, event_id: str | None = None) -> AudioReference:
    """A decoded body as an AudioReference; ``event_id`` fills a missing one."""
    if event_id and isinstance(raw, dict) and not raw.get("event_id"):
        raw = {**raw, "event_id": event_id}
    try:
        return AudioReference.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:5])
        raise InvalidEventError(f"invalid AudioReference: {problems}") from exc


def peek_event_id(value: bytes | None) -> str | None:
    """Best-effort event_id of an unreadable record (JSON or Avro), for logs and dead letters."""
    raw: Any
    try:
        if value and is_single_object(value):
            raw = load_schema(AUDIO_REFERENCE).decode(value)
        else:
            raw = json.loads(value or b"")
    except Exception:  # noqa: BLE001 - unreadable is an answer here, not an error
        return None
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    return event_id[:256] if isinstance(event_id, str) else None
