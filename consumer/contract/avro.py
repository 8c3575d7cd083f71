"""Avro schemas from schemas/ and the single-object encoding every record is framed in.

Framing (Avro specification, "Single object encoding"): two marker bytes C3 01, the
8-byte CRC-64-AVRO fingerprint of the writer schema's parsing canonical form, then the
Avro binary body. A reader looks the fingerprint up among the schemas it knows, so no
registry is needed and a schema change is detectable from the bytes alone.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8


@dataclass(frozen=True)
class AvroSchema:
    name: str
    parsed: Any
    fingerprint: bytes  # 8 bytes, in wire order

    def encode(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(self.fingerprint)
        schemaless_writer(buf, self.parsed, record)
        return buf.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        if not is_single_object(data):
            raise ValueError("not Avro single-object encoded (no C3 01 marker)")
        if data[2:HEADER_LEN] != self.fingerprint:
            raise ValueError(
                f"written with a schema of fingerprint {data[2:HEADER_LEN].hex()}, not {self.name} "
                f"({self.fingerprint.hex()})"
            )
        record = schemaless_reader(io.BytesIO(data[HEADER_LEN:]), self.parsed, self.parsed)
        # Every schema in schemas/ is a record, which fastavro reads as a dict; its typing allows any datum.
        if not isinstance(record, dict):
            raise ValueError(f"{self.name} decoded to {type(record).__name__}, not a record")
        return record


def is_single_object(data: bytes) -> bool:
    return len(data) >= HEADER_LEN and data[:2] == MAGIC


@cache
def load_schema(name: str) -> AvroSchema:
    """Load ``schemas/<name>.avsc``: audio_reference, transcript_event, dead_letter or status_event."""
    raw = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
    parsed = parse_schema(raw)
    # fastavro returns the fingerprint as hex already in wire (little-endian) order.
    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
    return AvroSchema(name=name, parsed=parsed, fingerprint=fp)


AUDIO_REFERENCE = "audio_reference"
TRANSCRIPT_EVENT = "transcript_event"
DEAD_LETTER = "dead_letter"
STATUS_EVENT = "status_event"
