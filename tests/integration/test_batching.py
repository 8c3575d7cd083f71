"""Cross-event batching in a real worker: short clips share a pass, every event keeps its own outcome."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from consumer.client import ResultReader, new_reference, publish_references, upload
from consumer.contract.inputs import ObjectRef
from devtools.samples import SAMPLES
from devtools.settings import DevSettings
from pipeline.stage import Pipeline
from tests.integration.conftest import running_worker
from tests.integration.test_end_to_end import MAX_CLIP_WER, committed, wer

pytestmark = pytest.mark.integration


async def test_short_clips_share_passes_and_every_event_gets_its_outcome(
    settings: DevSettings, pipeline: Pipeline, samples: dict[str, Path], reader: ResultReader, tmp_path: Path
) -> None:
    s = settings.model_copy(update={"batch_max_clips": 8, "batch_max_wait_ms": 1000, "result_cache_enabled": False})
    good = []
    for _ in range(2):
        for clip in SAMPLES:
            good.append(new_reference(upload(s, samples[clip.name]), profile="whisper-1", metadata={"said": clip.text}))
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF but not really a wave file" * 10)
    broken = new_reference(upload(s, junk), profile="whisper-1")
    missing = new_reference(ObjectRef(bucket=s.s3_bucket, key=f"nowhere/{uuid.uuid4()}.wav"), profile="whisper-1")
    again = good[0].model_copy()  # the same event_id twice: one transcript only
    refs = [*good[:3], broken, *good[3:6], missing, again, *good[6:]]

    async with running_worker(s, pipeline) as worker:
        await publish_references(s, refs)
        wanted = {r.event_id for r in refs}
        results = await reader.wait_for(wanted, timeout_s=300)
        # the duplicate is skipped, not published: wait until the worker has committed everything
        for _ in range(200):
            offsets = await committed(s)
            if sum(o or 0 for o in offsets.values()) == len(refs):
                break
            import asyncio

            await asyncio.sleep(0.1)
        batches = worker.metrics.batch_size.collect()[0].samples

    for ref in good:
        rec = results[ref.event_id]
        assert rec.kind == "transcript", rec.dead_letter
        assert wer(ref.metadata["said"], rec.transcript.text) <= MAX_CLIP_WER, rec.transcript.text
    assert results[broken.event_id].kind == "dead_letter"
    assert results[broken.event_id].dead_letter.code == "UNDECODABLE_AUDIO"
    assert results[missing.event_id].kind == "dead_letter"
    assert results[missing.event_id].dead_letter.code == "OBJECT_NOT_FOUND"
    assert sum(o or 0 for o in offsets.values()) == len(refs)  # nothing left behind, nothing skipped
    passes = next(x.value for x in batches if x.name.endswith("_count"))
    clips = next(x.value for x in batches if x.name.endswith("_sum"))
    assert passes >= 1 and clips / passes > 1, (passes, clips)  # clips did share passes
