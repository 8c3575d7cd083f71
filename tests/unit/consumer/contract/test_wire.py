"""One framing per deployment out, every framing in: the Wire facade the worker, gateway and tail share."""

from __future__ import annotations

import json
import uuid

import pytest

from consumer.contract.avro import AUDIO_REFERENCE, DEAD_LETTER, MAGIC, TRANSCRIPT_EVENT, load_schema
from consumer.contract.cloudevents import EVENT_TYPES
from consumer.contract.dead_letters import DeadLetter
from consumer.contract.errors import MalformedEventError, StorageUnavailableError
from consumer.contract.inputs import AudioReference, ObjectRef
from consumer.contract.outputs import TranscriptEvent
from consumer.contract.registry import RegistryCodec, framing
from consumer.contract.wire import Wire
from consumer.worker.dedupe import event_id_of_transcript
from pipeline.types import Diarization, DiarizationStatus, Task, Transcript

OUT, DLQ = "audio.transcripts", "audio.dead-letters"


def _letter(event_id: str | None) -> DeadLetter:
    return DeadLetter.of(
        StorageUnavailableError("503"),
        event_id=event_id,
        key=None,
        value=b"{}",
        topic="audio.references",
        partition=0,
        offset=7,
        attempts=8,
        group="fwv2-cpu",
        pool="cpu",
        host="h",
    )


@pytest.fixture
def registry_wire() -> Wire:
    wire = Wire(RegistryCodec(f"mock://{uuid.uuid4().hex}"), pool="gpu")
    assert set(wire.register(OUT, DLQ)) == {f"{OUT}-value", f"{DLQ}-value"}
    return wire


def test_without_a_registry_outputs_stay_single_object() -> None:
    wire = Wire()
    assert wire.register(OUT, DLQ) == {}
    value = wire.encode(_letter("e-1"))
    assert value[:2] == MAGIC and framing(value) == "single-object"
    assert wire.result(DLQ, DLQ, 0, 3, value).event_id == "e-1"


def test_with_a_registry_outputs_are_confluent_and_both_framings_read(registry_wire: Wire) -> None:
    letter = _letter("e-2")
    confluent = registry_wire.encode(letter)
    assert confluent[:1] == b"\x00" and framing(confluent) == "confluent"
    single = load_schema(DEAD_LETTER).encode(letter.to_avro())
    for value in (confluent, single):  # a topic that changed mode stays readable
        result = registry_wire.result(DLQ, DLQ, 1, 9, value)
        assert result.dead_letter is not None
        assert (result.kind, result.event_id, result.dead_letter.code) == ("dead_letter", "e-2", "STORAGE_UNAVAILABLE")
    ref = AudioReference(event_id="ünï-e-2", object=ObjectRef(bucket="audio", key="k"))
    t = Transcript(
        "tiny.en", "whisper-1", Task.TRANSCRIBE, "en", None, 1.0, "hi", (), Diarization(DiarizationStatus.NOT_REQUESTED)
    )
    event = TranscriptEvent.of(
        ref, t, blob_etag=None, blob_size=1, fetch_s=0, total_s=0, group="g", pool="cpu", host="h"
    )
    # Dedupe reads the event id of either framing from the header alone.
    for value in (registry_wire.encode(event), load_schema(TRANSCRIPT_EVENT).encode(event.to_avro())):
        assert event_id_of_transcript(value) == ref.event_id


def test_confluent_without_a_registry_is_a_malformed_event(registry_wire: Wire) -> None:
    value = registry_wire.encode(_letter("e-3"))
    with pytest.raises(MalformedEventError, match="SCHEMA_REGISTRY_URL"):
        Wire().dead_letter(value)


def test_headers_name_the_event_its_kind_source_and_schema(registry_wire: Wire) -> None:
    headers = dict(registry_wire.headers("transcript", "e-4", "s3://audio/a.wav", TRANSCRIPT_EVENT))
    assert headers["ce_id"] == b"e-4" and headers["ce_type"] == EVENT_TYPES["transcript"].encode()
    assert headers["ce_source"] == b"/fwv2/gpu" and headers["ce_subject"] == b"s3://audio/a.wav"
    assert headers["ce_dataschema"].endswith(b"/schemas/ids/%d" % registry_wire.registry.schema_id(TRANSCRIPT_EVENT))  # type: ignore[union-attr]
    plain = dict(Wire().headers("dead-letter", "e-5", None, DEAD_LETTER))
    assert "ce_subject" not in plain and "ce_dataschema" not in plain
    assert plain["ce_type"] == EVENT_TYPES["dead-letter"].encode()
    assert Wire().headers("dead-letter", None, None, DEAD_LETTER) == []  # ce_id is required


def test_inputs_in_every_framing_and_the_ce_id_fallback(registry_wire: Wire) -> None:
    ref = AudioReference(event_id="e-6", object=ObjectRef(bucket="audio", key="a.wav"), profile="whisper-1-fast")
    assert registry_wire.registry is not None
    registry_wire.registry.register("audio.references", AUDIO_REFERENCE)
    confluent = registry_wire.registry.encode(AUDIO_REFERENCE, load_schema(AUDIO_REFERENCE).decode(ref.to_avro()))
    for value in (ref.to_json(), ref.to_avro(), confluent):
        assert registry_wire.reference(value) == ref
    body = json.loads(ref.to_json())
    del body["event_id"]
    headless = json.dumps(body).encode()
    assert registry_wire.reference(headless, [("ce_id", b"from-header")]).event_id == "from-header"
    assert registry_wire.reference(ref.to_json(), [("ce_id", b"ignored")]).event_id == "e-6"  # the body's wins
    with pytest.raises(MalformedEventError):
        Wire().reference(confluent)
