"""The result cache on real parts: the same audio through MinIO, Kafka and the worker, transcribed once."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from minio.datatypes import Part

from consumer.client import ResultReader, new_reference, publish_references, upload
from consumer.contract.inputs import AudioReference, ObjectRef
from consumer.contract.outputs import TranscriptEvent
from consumer.plumbing.storage import make_client
from consumer.worker.loop import Worker
from consumer.worker.result_cache_s3 import S3ResultStore, parse_prefix
from devtools.settings import DevSettings
from pipeline.stage import Pipeline
from tests.integration.conftest import running_worker

pytestmark = pytest.mark.integration


def upload_multipart(settings: DevSettings, path: Path) -> ObjectRef:
    """The same bytes as ``upload`` would store, as a one-part multipart upload: another ETag (``<md5>-1``)."""
    client = make_client(settings)
    key = f"uploads/{uuid.uuid4().hex}/copy-{path.name}"
    upload_id = client._create_multipart_upload(settings.s3_bucket, key, {"Content-Type": "audio/wav"})
    etag = client._upload_part(settings.s3_bucket, key, path.read_bytes(), None, upload_id, 1)
    done = client._complete_multipart_upload(settings.s3_bucket, key, upload_id, [Part(1, etag)])
    return ObjectRef(bucket=settings.s3_bucket, key=key, etag=done.etag)


async def one(worker: Worker, reader: ResultReader, ref: AudioReference, kind: str = "transcript") -> Any:
    """Submit one event and wait for its result and for the worker to finish with it (the cache is
    written after delivery), so events are processed, and counted, in the order written here."""
    await publish_references(worker.settings, [ref])
    result = (await reader.wait_for([ref.event_id], timeout_s=180))[ref.event_id]
    await asyncio.wait_for(worker.idle.wait(), 30)
    assert result.kind == kind, result
    return result.transcript if result.transcript is not None else result.dead_letter


def metric(worker: Worker, name: str, **labels: str) -> float:
    return worker.metrics.registry.get_sample_value(name, labels) or 0.0


def same_transcript(a: TranscriptEvent, b: TranscriptEvent) -> bool:
    fields = ("text", "segments", "language", "duration_s", "model", "profile", "diarization", "speakers", "warnings")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


async def test_the_same_audio_is_transcribed_once(
    settings: DevSettings, pipeline: Pipeline, samples: dict[str, Path], reader: ResultReader
) -> None:
    obj = upload(settings, samples["train"])
    copy = upload_multipart(settings, samples["train"])
    assert copy.etag != obj.etag

    async with running_worker(settings, pipeline) as worker:
        first = await one(worker, reader, new_reference(obj, metadata={"n": "1"}))
        again = new_reference(obj, metadata={"n": "2"})
        second = await one(worker, reader, again)
        third = await one(worker, reader, new_reference(copy, metadata={"n": "3"}))
        fourth = await one(worker, reader, new_reference(copy))  # the copy's ETag was remembered on its content hit
        other_profile = await one(worker, reader, new_reference(obj, profile="whisper-1-fast"))
        sampled = await one(worker, reader, new_reference(obj, temperature=0.3))

        assert first.cache is None and first.timings.transcribe_s > 0 and first.text
        assert first.timings.inference_s >= first.timings.transcribe_s  # the wall time around it

        # The duplicate under another event_id: the earlier transcript, this event's own envelope.
        assert second.cache.tier == "memory" and second.cache.matched_by == "object"
        assert second.cache.computed_at <= second.completed_at
        assert same_transcript(second, first)
        assert (second.event_id, second.metadata) == (again.event_id, {"n": "2"})
        t = second.timings
        assert t.decode_s == t.transcribe_s == t.diarize_s == t.inference_s == 0.0
        assert 0 < t.fetch_s <= t.total_s < first.timings.total_s

        # Another object, same bytes: found by the SHA-256 after download.
        assert third.cache.matched_by == "content" and same_transcript(third, first)
        assert (third.object.key, third.object.etag, third.metadata) == (copy.key, copy.etag, {"n": "3"})
        assert fourth.cache.matched_by == "object" and same_transcript(fourth, first)

        # Another profile is other work.
        assert other_profile.cache is None and other_profile.profile == "whisper-1-fast"
        # Sampling asks for a fresh draw: no lookup, nothing kept.
        assert sampled.cache is None and sampled.timings.transcribe_s > 0

        assert metric(worker, "fwv2_cache_hits_total", tier="memory", matched_by="object") == 2
        assert metric(worker, "fwv2_cache_hits_total", tier="memory", matched_by="content") == 1
        assert metric(worker, "fwv2_cache_misses_total", tier="memory") == 2
        assert metric(worker, "fwv2_cache_misses_total", tier="s3") == 0  # no persistent tier by default
        # Object and content key for each of the two transcripts, and the copy's object key.
        assert metric(worker, "fwv2_cache_entries") == 5
        # Inference metrics count inference only.
        assert (
            metric(
                worker,
                "transcription_duration_seconds_count",
                model="tiny.en",
                profile="whisper-1",
                with_diarization="false",
            )
            == 2
        )


async def test_dead_letters_are_not_cached(
    settings: DevSettings, pipeline: Pipeline, reader: ResultReader, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 64)
    obj = upload(settings, junk)
    refs = [new_reference(obj), new_reference(obj)]
    async with running_worker(settings, pipeline) as worker:
        for ref in refs:
            await one(worker, reader, ref, kind="dead_letter")
        assert metric(worker, "fwv2_dead_letters_total", code="UNDECODABLE_AUDIO") == 2
        assert metric(worker, "fwv2_cache_misses_total", tier="memory") == 2
        assert len(worker.results.memory) == 0


async def test_the_persistent_tier_serves_a_fresh_worker(
    settings: DevSettings, pipeline: Pipeline, samples: dict[str, Path], reader: ResultReader
) -> None:
    s = settings.model_copy(
        update={"result_cache_persistent": "s3", "result_cache_prefix": f"s3://fwv2-cache/test-{uuid.uuid4().hex[:8]}/"}
    )
    obj = upload(s, samples["kitchen"])
    async with running_worker(s, pipeline) as worker:
        first = await one(worker, reader, new_reference(obj))
        assert first.cache is None
        assert metric(worker, "fwv2_cache_misses_total", tier="s3") == 1
    bucket, prefix = parse_prefix(s.result_cache_prefix)
    stored = list(make_client(s).list_objects(bucket, prefix=prefix))
    assert len(stored) == 2 and all(o.object_name.endswith(".avro") for o in stored)  # object and content keys

    # A new worker: its memory is empty, the store is not.
    async with running_worker(s, pipeline) as worker:
        assert len(worker.results.memory) == 0
        second = await one(worker, reader, new_reference(obj, metadata={"n": "2"}))
        third = await one(worker, reader, new_reference(obj))
        assert second.cache.tier == "s3" and second.cache.matched_by == "object"
        assert first.completed_at <= second.cache.computed_at <= second.completed_at
        assert same_transcript(second, first) and second.metadata == {"n": "2"}
        assert third.cache.tier == "memory"  # the store's answer was kept in memory
        assert metric(worker, "fwv2_cache_hits_total", tier="s3", matched_by="object") == 1
        assert metric(worker, "fwv2_cache_misses_total", tier="memory") == 1


async def test_a_failing_persistent_tier_costs_only_a_miss(
    settings: DevSettings, pipeline: Pipeline, samples: dict[str, Path], reader: ResultReader
) -> None:
    s = settings.model_copy(update={"result_cache_persistent": "s3"})
    obj = upload(s, samples["weather"])
    async with running_worker(s, pipeline) as worker:
        # Nothing listens on port 9: every get and put of the tier fails at once.
        worker.results.persistent = S3ResultStore(s.model_copy(update={"s3_endpoint": "127.0.0.1:9"}))
        record = await one(worker, reader, new_reference(obj))
        assert record.cache is None and record.text
        assert metric(worker, "fwv2_cache_errors_total", tier="s3", op="get") == 2  # object key, then content key
        assert metric(worker, "fwv2_cache_errors_total", tier="s3", op="put") == 2
        again = await one(worker, reader, new_reference(obj))
        assert again.cache.tier == "memory"  # the memory tier still works
