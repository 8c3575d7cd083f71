"""CloudEvents 1.0 in Kafka's binary content mode: the headers every output record carries.

Why: downstream routers, tracers and audit tools read what a record is (``ce_type``), which event it
answers (``ce_id``), where it came from (``ce_source``) and what it is about (``ce_subject``) from the
headers, without decoding Avro. In binary mode the value is our Avro bytes as they are, so a consumer
that ignores the headers reads exactly what it read before.

The binding is the ``cloudevents`` SDK's (``cloudevents.core.bindings.kafka``, the 2.x API; 1.x's
``cloudevents.kafka`` lives on there as the legacy ``cloudevents.v1.kafka``). It names the headers
(``ce_`` + attribute, and ``content-type`` for ``datacontenttype``) and writes ``ce_time`` in RFC 3339
with ``Z``; ``_Opaque`` hands our already-encoded value through untouched.

``ce_source`` is per pool, not per host (``source_for``): the spec lets a consumer treat events with
the same source and id as duplicates, which is exactly what an at-least-once redelivery to another
worker of the pool is. ``content-type`` is ``application/avro`` for both Avro framings, as Debezium's
CloudEvents converter labels Confluent-framed data; the framing is in the value's first bytes
(``registry.framing``), and a Confluent-framed record also names its schema in ``ce_dataschema``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal
from urllib.parse import quote

from cloudevents.core.base import BaseCloudEvent, EventFactory
from cloudevents.core.bindings.kafka import CE_PREFIX, to_binary
from cloudevents.core.formats.base import Format
from cloudevents.core.v1.event import CloudEvent

SPECVERSION: Final = "1.0"
Kind = Literal["transcript", "dead-letter", "status"]
EVENT_TYPES: Final[dict[Kind, str]] = {
    "transcript": "io.fwv2.transcript.v1",
    "dead-letter": "io.fwv2.dead-letter.v1",
    "status": "io.fwv2.status.v1",
}
# No media type for Avro is registered (AVRO-488); ``application/avro`` is the CloudEvents spec's own
# example and Debezium's label for registry-framed Avro data. ``avro/binary`` breaks RFC 6838.
CONTENT_TYPE_SINGLE_OBJECT: Final = "application/avro"
CONTENT_TYPE_CONFLUENT: Final = "application/avro"
CE_ID_HEADER: Final = f"{CE_PREFIX}id"


def source_for(pool: str) -> str:
    """The ``ce_source`` of a pool's records: ``/fwv2/<pool>``, a URI reference the same on every host."""
    return f"/fwv2/{quote(pool, safe='')}"


class _Opaque(Format):
    """Binary mode only: the value is bytes the caller already encoded, passed through as they are."""

    def read(self, event_factory: EventFactory | None, data: str | bytes) -> BaseCloudEvent:
        raise NotImplementedError("structured mode is not used: records are in binary mode")

    def write(self, event: BaseCloudEvent) -> bytes:
        raise NotImplementedError("structured mode is not used: records are in binary mode")

    def write_data(self, data: dict[str, Any] | str | bytes | None, datacontenttype: str | None) -> bytes:
        if data is None:
            return b""
        if not isinstance(data, bytes):
            raise TypeError(f"expected already-encoded bytes, got {type(data).__name__}")
        return data

    def read_data(self, body: bytes, datacontenttype: str | None) -> bytes:
        return body

    def get_content_type(self) -> str:
        raise NotImplementedError("structured mode is not used: records are in binary mode")


def output_headers(
    *,
    event_id: str,
    kind: Kind,
    source: str,
    subject: str | None,
    time: datetime,
    content_type: str,
    dataschema: str | None = None,
) -> list[tuple[str, bytes]]:
    """The CloudEvents headers of one output record, as aiokafka takes them.

    ``event_id`` is the input event's id; ``subject`` the object (``s3://bucket/key``), left out when
    None; ``time`` must be timezone-aware and is written in UTC; ``dataschema`` is where a registry
    serves the record's schema (``RegistryCodec.schema_uri``), for Confluent-framed values.
    Raises ``cloudevents.core.exceptions.CloudEventValidationError`` for an empty or invalid attribute.
    """
    attributes: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": event_id,
        "source": source,
        "type": EVENT_TYPES[kind],
        "time": time.astimezone(UTC) if time.tzinfo is not None else time,  # naive: the SDK refuses it
    }
    if subject is not None:
        attributes["subject"] = subject
    attributes["datacontenttype"] = content_type
    if dataschema is not None:
        attributes["dataschema"] = dataschema
    message = to_binary(CloudEvent(attributes), _Opaque(), key_mapper=lambda _event: None)
    return [(name, value) for name, value in message.headers.items()]


def input_event_id(headers: Sequence[tuple[str, bytes]]) -> str | None:
    """The ``ce_id`` header of an input record (the last one, as the SDK reads it), or None.

    For inputs whose value carries no event id. A missing, empty or non-UTF-8 header is None.
    """
    found: str | None = None
    for name, value in headers:
        if name.lower() != CE_ID_HEADER or not value:
            continue
        try:
            found = value.decode("utf-8")
        except UnicodeDecodeError:
            found = None
    return found or None
