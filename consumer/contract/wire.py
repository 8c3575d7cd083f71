"""How our records are framed on the topics, in one place: single-object by default, Confluent with a registry.

Without ``SCHEMA_REGISTRY_URL`` every output is Avro single-object encoded (``avro.py``), as before.
With it, the worker registers the output schemas at start and writes the Confluent wire format
(``registry.py``) that stock deserializers, ksqlDB and Kafka Connect read. Readers (the worker's
input, dedupe, the gateway, ``fwv2 tail``) accept every framing either way: JSON or Avro inputs,
single-object or Confluent outputs, so a topic that changes mode mid-stream stays readable.

Every output record also carries CloudEvents binary-mode headers (``cloudevents.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from consumer.contract.avro import AUDIO_REFERENCE, DEAD_LETTER, STATUS_EVENT, TRANSCRIPT_EVENT, load_schema
from consumer.contract.cloudevents import (
    CONTENT_TYPE_CONFLUENT,
    CONTENT_TYPE_SINGLE_OBJECT,
    Kind,
    input_event_id,
    output_headers,
    source_for,
)
from consumer.contract.dead_letters import DeadLetter
from consumer.contract.errors import MalformedEventError
from consumer.contract.inputs import AudioReference, parse_audio_reference, reference_from_raw
from consumer.contract.outputs import TranscriptEvent
from consumer.contract.registry import CONFLUENT_HEADER, RegistryCodec, RegistryUnavailable, framing
from consumer.contract.results import Result
from consumer.contract.status import StatusEvent

Headers = list[tuple[str, bytes]]


class Wire:
    """Encodes our outputs in this deployment's framing with their headers; decodes any framing."""

    def __init__(self, registry: RegistryCodec | None = None, pool: str = "cpu") -> None:
        self.registry = registry
        self.source = source_for(pool)

    @classmethod
    def from_url(cls, url: str | None, pool: str = "cpu", timeout_s: float = 5.0) -> Wire:
        return cls(RegistryCodec(url, timeout_s=timeout_s) if url else None, pool)

    @property
    def framing(self) -> str:
        return "confluent" if self.registry is not None else "single-object"

    def register(self, transcript_topic: str, dead_letter_topic: str, status_topic: str = "") -> dict[str, int]:
        """Register the output schemas (blocking; the worker calls it at start, before any record is written).

        Raises ``SchemaIncompatible`` when the registry refuses a schema under its compatibility rule,
        ``RegistryUnavailable`` when it cannot be reached.
        """
        if self.registry is None:
            return {}
        ids = {
            f"{transcript_topic}-value": self.registry.register(transcript_topic, TRANSCRIPT_EVENT),
            f"{dead_letter_topic}-value": self.registry.register(dead_letter_topic, DEAD_LETTER),
        }
        if status_topic:
            ids[f"{status_topic}-value"] = self.registry.register(status_topic, STATUS_EVENT)
        return ids

    def close(self) -> None:
        if self.registry is not None:
            self.registry.close()

    # --- out ---------------------------------------------------------------------------------
    def encode(self, event: TranscriptEvent | DeadLetter | StatusEvent) -> bytes:
        """An output record's value, in this deployment's framing: the one encoder of every output."""
        schema_name = (
            TRANSCRIPT_EVENT
            if isinstance(event, TranscriptEvent)
            else STATUS_EVENT
            if isinstance(event, StatusEvent)
            else DEAD_LETTER
        )
        record = event.to_avro()
        if self.registry is not None:
            return self.registry.encode(schema_name, record)
        return load_schema(schema_name).encode(record)

    def headers(self, kind: Kind, event_id: str | None, subject: str | None, schema_name: str) -> Headers:
        """CloudEvents headers of one output record (none without an event id: ``ce_id`` is required)."""
        if not event_id:
            return []
        schema_id = self.registry.schema_id(schema_name) if self.registry is not None else None
        return output_headers(
            event_id=event_id,
            kind=kind,
            source=self.source,
            subject=subject,
            time=datetime.now(UTC),
            content_type=CONTENT_TYPE_CONFLUENT if self.registry is not None else CONTENT_TYPE_SINGLE_OBJECT,
            dataschema=self.registry.schema_uri(schema_id) if self.registry is not None and schema_id else None,
        )

    # --- in ----------------------------------------------------------------------------------
    async def learn(self, value: bytes | None) -> None:
        """Fetch, off the event loop, the writer schema a Confluent-framed ``value`` names, if it is new.

        Then decoding it needs no network. Only ``RegistryUnavailable`` escapes: an unknown id is the
        record's own fault and is reported when it is decoded.
        """
        if value and self.registry is not None and framing(value) == "confluent":
            _, schema_id = CONFLUENT_HEADER.unpack_from(value)
            if not self.registry.knows(schema_id):
                await asyncio.to_thread(self._learn, self.registry, value)

    @staticmethod
    def _learn(registry: RegistryCodec, value: bytes) -> None:
        try:
            registry.writer_of(value)
        except RegistryUnavailable:
            raise
        except Exception:  # noqa: BLE001, S110 - _decode() reports it with the record
            pass

    def transcript(self, value: bytes) -> TranscriptEvent:
        """A TranscriptEvent in any Avro framing."""
        return TranscriptEvent.from_avro(self._decode(value, TRANSCRIPT_EVENT))

    def status(self, value: bytes) -> StatusEvent:
        """A status record's value, in any Avro framing."""
        return StatusEvent.from_avro(self._decode(value, STATUS_EVENT))

    def dead_letter(self, value: bytes) -> DeadLetter:
        """A DeadLetter in any Avro framing."""
        return DeadLetter.from_avro(self._decode(value, DEAD_LETTER))

    def _decode(self, value: bytes, schema_name: str) -> dict[str, Any]:
        """A record in any Avro framing, read as ``schemas/<schema_name>.avsc``."""
        kind = framing(value)
        if kind == "confluent":
            if self.registry is None:
                raise MalformedEventError(
                    "the value is in the Confluent framing (00 + schema id) but this process has no "
                    "SCHEMA_REGISTRY_URL to look the schema up"
                )
            return self.registry.decode(value, schema_name)
        return load_schema(schema_name).decode(value)

    def result(self, dead_letter_topic: str, topic: str, partition: int, offset: int, value: bytes | None) -> Result:
        """An output record read back (the gateway, ``fwv2 tail``): a transcript, or a dead letter by its topic."""
        if not value:
            raise ValueError("empty record")
        if topic == dead_letter_topic:
            return Result(topic, partition, offset, dead_letter=self.dead_letter(value))
        return Result(topic, partition, offset, transcript=self.transcript(value))

    def reference(self, value: bytes | None, headers: Sequence[tuple[str, bytes]] = ()) -> AudioReference:
        """An input record as an AudioReference: JSON, single-object or Confluent framing.

        A body without an event id takes the CloudEvents ``ce_id`` header's, where there is one.
        """
        if value and framing(value) == "confluent":
            try:
                raw: Any = self._decode(value, AUDIO_REFERENCE)
            except (MalformedEventError, RegistryUnavailable):
                raise
            except Exception as exc:
                raise MalformedEventError(f"not a readable Confluent-framed AudioReference: {exc}") from exc
            return reference_from_raw(raw, input_event_id(headers))
        return parse_audio_reference(value, input_event_id(headers))
