"""CloudEvents binary-mode headers: exact names and values, and read back with the SDK's own from_binary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.exceptions import CloudEventValidationError

from consumer.contract.cloudevents import (
    CONTENT_TYPE_CONFLUENT,
    CONTENT_TYPE_SINGLE_OBJECT,
    _Opaque,
    input_event_id,
    output_headers,
    source_for,
)

MOMENT = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
VALUE = b"\xc3\x01" + bytes(range(8)) + b"\x08abcd"  # Avro bytes, not UTF-8


def _headers(**overrides: object) -> list[tuple[str, bytes]]:
    arguments: dict[str, object] = {
        "event_id": "4f1c-0001",
        "kind": "transcript",
        "source": source_for("gpu"),
        "subject": "s3://audio/samples/library.mp3",
        "time": MOMENT,
        "content_type": CONTENT_TYPE_SINGLE_OBJECT,
    }
    arguments.update(overrides)
    return output_headers(**arguments)  # type: ignore[arg-type]


def test_transcript_headers() -> None:
    assert dict(_headers()) == {
        "ce_specversion": b"1.0",
        "ce_id": b"4f1c-0001",
        "ce_source": b"/fwv2/gpu",
        "ce_type": b"io.fwv2.transcript.v1",
        "ce_time": b"2026-03-04T05:06:07.890123Z",
        "ce_subject": b"s3://audio/samples/library.mp3",
        "content-type": b"application/avro",
    }
    assert len(_headers()) == 7  # one header per attribute, none repeated


def test_dead_letter_without_subject_and_with_dataschema() -> None:
    headers = dict(
        _headers(
            kind="dead-letter",
            subject=None,
            content_type=CONTENT_TYPE_CONFLUENT,
            dataschema="http://registry:8080/apis/ccompat/v7/schemas/ids/3",
        )
    )
    assert headers["ce_type"] == b"io.fwv2.dead-letter.v1"
    assert "ce_subject" not in headers
    assert headers["ce_dataschema"] == b"http://registry:8080/apis/ccompat/v7/schemas/ids/3"


def test_time_is_written_in_utc_and_must_be_aware() -> None:
    paris = MOMENT.astimezone(timezone(timedelta(hours=1)))
    assert dict(_headers(time=paris))["ce_time"] == b"2026-03-04T05:06:07.890123Z"
    with pytest.raises(CloudEventValidationError, match="timezone aware"):
        _headers(time=datetime(2026, 3, 4, 5, 6, 7))


def test_empty_attributes_are_refused_by_the_sdk() -> None:
    with pytest.raises(CloudEventValidationError):
        _headers(event_id="")
    with pytest.raises(CloudEventValidationError):
        _headers(subject="")


def test_sdk_reads_the_record_back() -> None:
    subject = "s3://audio/bücher/kapitel 1.mp3"
    headers = _headers(subject=subject)
    assert dict(headers)["ce_subject"] == subject.encode()  # UTF-8 as it is: Kafka headers need no escaping
    event = from_binary(KafkaMessage(headers=dict(headers), key=b"4f1c-0001", value=VALUE), _Opaque())
    assert event.get_id() == "4f1c-0001"
    assert event.get_source() == "/fwv2/gpu"
    assert event.get_type() == "io.fwv2.transcript.v1"
    assert event.get_specversion() == "1.0"
    assert event.get_time() == MOMENT
    assert event.get_subject() == subject
    assert event.get_datacontenttype() == "application/avro"
    assert event.get_data() == VALUE


def test_value_passes_through_untouched() -> None:
    opaque = _Opaque()
    assert opaque.write_data(VALUE, "application/avro") == VALUE
    assert opaque.write_data(None, None) == b""
    with pytest.raises(TypeError, match="already-encoded bytes"):
        opaque.write_data({"event_id": "x"}, "application/avro")


def test_input_event_id() -> None:
    assert input_event_id(_headers()) == "4f1c-0001"
    assert input_event_id([("traceparent", b"00-ab-cd-01"), ("CE_ID", b"from-upper")]) == "from-upper"
    assert input_event_id([("ce_id", b"first"), ("ce_id", b"second")]) == "second"  # as from_binary reads it
    assert input_event_id([]) is None
    assert input_event_id([("ce_id", b"")]) is None
    assert input_event_id([("ce_id", b"\xff\xfe")]) is None
    assert input_event_id([("ce_idx", b"not-it"), ("id", b"nor-this")]) is None


def test_source_for_quotes_the_pool() -> None:
    assert source_for("cpu") == "/fwv2/cpu"
    assert source_for("gpu pool/a") == "/fwv2/gpu%20pool%2Fa"
