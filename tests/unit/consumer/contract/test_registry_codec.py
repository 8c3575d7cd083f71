"""The Confluent framing against a registry: confluent_kafka's in-memory mock, scripted fakes, a closed port.

The mock registers every schema (it has no compatibility rules), so a refused second version is a
scripted 409 here; that a real registry refuses one under BACKWARD is the integration test's job.
"""

from __future__ import annotations

import json
import struct
from io import BytesIO
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryError
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import MockSchemaRegistryClient
from fastavro import parse_schema, schemaless_writer

from consumer.contract.avro import AUDIO_REFERENCE, DEAD_LETTER, SCHEMA_DIR, TRANSCRIPT_EVENT, load_schema
from consumer.contract.dead_letters import DeadLetter
from consumer.contract.errors import MalformedEventError
from consumer.contract.inputs import AudioReference, ObjectRef
from consumer.contract.registry import (
    RegistryCodec,
    RegistryError,
    RegistryUnavailable,
    SchemaIncompatible,
    UnknownSchemaId,
    framing,
)
from consumer.contract.wire import Wire
from pipeline.errors import ErrorCode, UndecodableAudioError

TOPIC = "audio.transcripts"


def _reference() -> AudioReference:
    return AudioReference(
        event_id="4f1c-0001",
        object=ObjectRef(bucket="audio", key="samples/library.mp3"),
        language="en",
        metadata={"team": "search"},
    )


def _record(name: str, single_object: bytes) -> dict[str, Any]:
    """A record as fastavro reads it back (logical types included), from the single-object encoding."""
    return load_schema(name).decode(single_object)


def _dead_letter_bytes() -> bytes:
    letter = DeadLetter.of(
        UndecodableAudioError("no audio stream"),
        event_id="4f1c-0002",
        key=b"4f1c-0002",
        value=b"{}",
        topic="audio.references",
        partition=3,
        offset=42,
        attempts=1,
        group="fwv2",
        pool="cpu",
        host="worker-1",
    )
    return Wire().encode(letter)


@pytest.fixture
def codec() -> RegistryCodec:
    return RegistryCodec("mock://unit")


def test_framing_of_each_kind(codec: RegistryCodec) -> None:
    codec.register("audio.references", AUDIO_REFERENCE)
    ref = _reference()
    assert framing(ref.to_json()) == "json"
    assert framing(b" \r\n\t" + ref.to_json()) == "json"
    assert framing(ref.to_avro()) == "single-object"
    assert framing(codec.encode(AUDIO_REFERENCE, _record(AUDIO_REFERENCE, ref.to_avro()))) == "confluent"
    assert framing(b"\x00\x00\x00\x00\x07") == "confluent"  # an empty body is still framed
    for value in (b"", b"\x00\x00\x00\x01", b"\xc3\x01\x00", b"[1, 2]", b"plain text", b"\x01\x00\x00\x00\x01"):
        assert framing(value) == "unknown", value


def test_register_uses_the_topic_value_subject_and_the_avsc_text(codec: RegistryCodec) -> None:
    schema_id = codec.register(TOPIC, TRANSCRIPT_EVENT)
    registered = codec._client.get_latest_version(f"{TOPIC}-value")
    assert registered.schema_id == schema_id
    assert (
        registered.schema.schema_str == (SCHEMA_DIR / "transcript_event.avsc").read_text().strip()
    )  # as a stock serializer holds it
    assert codec._client.get_subjects() == [f"{TOPIC}-value"]  # no -key subject: keys are plain strings
    assert codec.register(TOPIC, TRANSCRIPT_EVENT) == schema_id  # idempotent across restarts
    assert codec.schema_id(TRANSCRIPT_EVENT) == schema_id
    assert codec.schema_uri(schema_id) == f"mock://unit/schemas/ids/{schema_id}"


def test_wire_bytes_and_round_trip_through_a_fresh_reader(codec: RegistryCodec) -> None:
    single = _reference().to_avro()
    record = _record(AUDIO_REFERENCE, single)
    schema_id = codec.register("audio.references", AUDIO_REFERENCE)
    data = codec.encode(AUDIO_REFERENCE, record)
    assert data[:5] == b"\x00" + struct.pack(">I", schema_id)
    assert data[5:] == single[10:]  # the same Avro body as the single-object encoding
    reader = RegistryCodec("mock://unit", client=codec._client)  # empty cache: looks the id up
    assert reader.decode(data, AUDIO_REFERENCE) == record


def test_dead_letter_round_trip(codec: RegistryCodec) -> None:
    single = _dead_letter_bytes()
    record = _record(DEAD_LETTER, single)
    codec.register("audio.dead-letters", DEAD_LETTER)
    decoded = codec.decode(codec.encode(DEAD_LETTER, record), DEAD_LETTER)
    assert decoded == record
    assert decoded["code"] == ErrorCode.UNDECODABLE_AUDIO.value


def test_known_ids_never_touch_the_registry(codec: RegistryCodec, monkeypatch: pytest.MonkeyPatch) -> None:
    codec.register("audio.references", AUDIO_REFERENCE)

    def offline(*args: object, **kwargs: object) -> None:
        raise AssertionError("the registry was called")

    for method in ("register_schema", "get_schema", "get_compatibility", "get_latest_version"):
        monkeypatch.setattr(codec._client, method, offline)
    record = _record(AUDIO_REFERENCE, _reference().to_avro())
    assert codec.decode(codec.encode(AUDIO_REFERENCE, record), AUDIO_REFERENCE) == record


def _evolved_audio_reference() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((SCHEMA_DIR / "audio_reference.avsc").read_text())
    raw["fields"].append({"name": "priority", "type": "int", "default": 5})
    return raw


def test_compatible_second_version_gets_its_own_id_and_resolves_to_our_reader(codec: RegistryCodec) -> None:
    subject = "audio.references-value"
    first = codec.register("audio.references", AUDIO_REFERENCE)
    evolved = _evolved_audio_reference()
    second = codec._client.register_schema(subject, Schema(json.dumps(evolved), schema_type="AVRO"))
    assert second != first
    assert codec._client.get_latest_version(subject).version == 2
    record = _record(AUDIO_REFERENCE, _reference().to_avro())
    body = bytearray(struct.pack(">BI", 0, second))
    buf = BytesIO()
    schemaless_writer(buf, parse_schema(evolved), {**record, "priority": 9})
    body += buf.getvalue()
    reader = RegistryCodec("mock://unit", client=codec._client)
    assert reader.decode(bytes(body), AUDIO_REFERENCE) == record  # the new field is dropped by resolution


class _Refusing(MockSchemaRegistryClient):
    """Scripted registry answers: ``register_schema`` fails with ``status``; rules by subject or global."""

    def __init__(self, status: int, rules: dict[str | None, str]) -> None:
        super().__init__({"url": "mock://scripted"})
        self.status = status
        self.rules = rules

    def register_schema(self, subject_name: str, schema: Schema, normalize_schemas: bool = False) -> int:
        raise SchemaRegistryError(self.status, self.status, "Schema being registered is incompatible")

    def get_compatibility(self, subject_name: str | None = None) -> str:
        if subject_name not in self.rules:
            raise SchemaRegistryError(404, 40408, f"Subject '{subject_name}' does not have subject-level config")
        return self.rules[subject_name]


def test_incompatible_version_names_file_subject_and_rule() -> None:
    codec = RegistryCodec("mock://scripted", client=_Refusing(409, {f"{TOPIC}-value": "BACKWARD"}))
    with pytest.raises(SchemaIncompatible) as caught:
        codec.register(TOPIC, TRANSCRIPT_EVENT)
    assert caught.value.retriable is False
    assert str(caught.value).startswith(
        "registry refused schemas/transcript_event.avsc under subject audio.transcripts-value: "
        "incompatible with its latest version under BACKWARD compatibility"
    )
    assert codec.schema_id(TRANSCRIPT_EVENT) is None


@pytest.mark.parametrize(
    "rules",
    [
        {None: "FULL_TRANSITIVE"},  # Confluent: 404 for a subject without a rule of its own
        {f"{TOPIC}-value": "NONE", None: "FULL_TRANSITIVE"},  # Apicurio: NONE for the same
    ],
)
def test_incompatible_version_falls_back_to_the_global_rule(rules: dict[str | None, str]) -> None:
    codec = RegistryCodec("mock://scripted", client=_Refusing(409, rules))
    with pytest.raises(SchemaIncompatible, match="under FULL_TRANSITIVE compatibility"):
        codec.register(TOPIC, TRANSCRIPT_EVENT)


def test_incompatible_version_when_the_rule_cannot_be_read() -> None:
    codec = RegistryCodec("mock://scripted", client=_Refusing(409, {}))  # 404 for the global rule too
    with pytest.raises(SchemaIncompatible, match="under the subject's \\(unreadable: .*\\) compatibility"):
        codec.register(TOPIC, TRANSCRIPT_EVENT)


@pytest.mark.parametrize(
    ("status", "kind", "retriable"), [(503, RegistryUnavailable, True), (401, RegistryError, False)]
)
def test_other_answers_on_register(status: int, kind: type[RegistryError], retriable: bool) -> None:
    codec = RegistryCodec("mock://scripted", client=_Refusing(status, {}))
    with pytest.raises(kind) as caught:
        codec.register(TOPIC, TRANSCRIPT_EVENT)
    assert type(caught.value) is kind
    assert caught.value.retriable is retriable
    assert str(status) in str(caught.value)


def test_unknown_schema_id_is_a_malformed_event(codec: RegistryCodec) -> None:
    with pytest.raises(UnknownSchemaId, match="schema id 999 is not in the registry at mock://unit") as caught:
        codec.decode(struct.pack(">BI", 0, 999) + b"\x02", AUDIO_REFERENCE)
    assert caught.value.retriable is False
    assert isinstance(caught.value, MalformedEventError)
    assert caught.value.code is ErrorCode.MALFORMED_EVENT


def test_registry_down_is_retriable() -> None:
    codec = RegistryCodec("http://127.0.0.1:1", timeout_s=2.0, max_retries=0)
    with pytest.raises(RegistryUnavailable, match="unreachable while registering") as caught:
        codec.register(TOPIC, TRANSCRIPT_EVENT)
    assert caught.value.retriable is True
    with pytest.raises(RegistryUnavailable, match="unreachable while looking up schema id 7"):
        codec.decode(struct.pack(">BI", 0, 7) + b"\x02", AUDIO_REFERENCE)
    codec.close()


def test_misuse_is_reported(codec: RegistryCodec) -> None:
    with pytest.raises(LookupError, match="call register"):
        codec.encode(TRANSCRIPT_EVENT, {})
    with pytest.raises(ValueError, match="looks like single-object"):
        codec.decode(_reference().to_avro(), AUDIO_REFERENCE)
    schema_id = codec.register("audio.references", AUDIO_REFERENCE)
    with pytest.raises(ValueError, match=f"schema id {schema_id} does not read as dead_letter"):
        codec.decode(codec.encode(AUDIO_REFERENCE, _record(AUDIO_REFERENCE, _reference().to_avro())), DEAD_LETTER)
