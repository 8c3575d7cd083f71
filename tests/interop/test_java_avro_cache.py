"""A transcript served from the result cache, decoded by Apache Avro's Java library from the .avsc alone."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from consumer.contract.outputs import TranscriptEvent
from consumer.contract.wire import Wire
from pipeline.types import CacheHit, CacheMatch, CacheTier
from tests.interop.test_java_avro import _decode_in_java, _json_bytes, _ref, _transcript, avro_classpath  # noqa: F401 - a fixture

pytestmark = pytest.mark.tools


def test_java_reads_the_cache_field(avro_classpath: str, tmp_path: Path) -> None:
    ref = _ref()
    hit = CacheHit(CacheTier.S3, CacheMatch.CONTENT, computed_at_ms=1_764_064_800_123)
    served = replace(_transcript(), decode_s=0.0, transcribe_s=0.0, diarize_s=0.0, cache=hit)
    event = TranscriptEvent.of(
        ref,
        served,
        blob_etag=ref.object.etag,
        blob_size=190_464,
        fetch_s=0.0021,
        total_s=0.0093,
        group="fwv2-gpu",
        pool="gpu",
        host="worker-7",
    )
    out = _decode_in_java(avro_classpath, {"hit.bin": ("transcript_event", Wire().encode(event))}, tmp_path)
    got = json.loads(out["hit.bin", "record"])
    assert got["cache"] == {"tier": "s3", "matched_by": "content", "computed_at": 1_764_064_800_123}
    assert got == _json_bytes(event.to_avro())  # every field, the cache union included
