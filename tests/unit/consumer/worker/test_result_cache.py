"""The result cache's pure part: what goes into a key, and the bounded LRU."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from consumer.contract.avro import SCHEMA_DIR
from consumer.contract.inputs import AudioReference, ObjectRef
from consumer.contract.outputs import TranscriptEvent, from_millis
from consumer.contract.wire import Wire
from consumer.plumbing.settings import Settings
from consumer.worker.result_cache import engine_identity
from consumer.worker.result_cache_s3 import parse_prefix
from pipeline.cache import BoundedLRU, EngineIdentity, approx_bytes, cacheable, content_key, object_key, options_digest
from pipeline.config import ProfileOverrides
from pipeline.diarization import DiarizationConfig
from pipeline.profiles import get_profile
from pipeline.types import (
    CacheHit,
    CacheMatch,
    CacheTier,
    Diarization,
    DiarizationMode,
    DiarizationStatus,
    Granularity,
    Segment,
    Task,
    Transcript,
    TranscriptionRequest,
    Word,
)

ENGINE = EngineIdentity(
    model="tiny.en 41000000 abc", device="cpu", compute_type="int8", libraries="faster-whisper 1.2.1"
)
BASE = TranscriptionRequest()


def digest(
    request: TranscriptionRequest = BASE, engine: EngineIdentity = ENGINE, overrides: ProfileOverrides | None = None
) -> str:
    return options_digest(request, get_profile(request.profile, overrides), engine)


# Each option that can change the transcript, changed alone.
REQUEST_CHANGES = {
    "profile": replace(BASE, profile="whisper-1-fast"),
    "language": replace(BASE, language="de"),
    "task": replace(BASE, task=Task.TRANSLATE),
    "prompt": replace(BASE, prompt="Acme GmbH"),
    "temperature": replace(BASE, temperature=0.4),
    "word granularity": replace(BASE, granularities=frozenset({Granularity.SEGMENT, Granularity.WORD})),
    "speaker granularity": replace(BASE, granularities=frozenset({Granularity.SEGMENT, Granularity.SPEAKER})),
    "diarization always": replace(BASE, diarization=DiarizationMode.ALWAYS),
    "diarization never": replace(BASE, diarization=DiarizationMode.NEVER),
}
ENGINE_CHANGES = {
    "model": replace(ENGINE, model="base.en 145000000 def"),
    "device": replace(ENGINE, device="cuda"),
    "compute type": replace(ENGINE, compute_type="float32"),
    "libraries": replace(ENGINE, libraries="faster-whisper 1.3.0"),
}
OVERRIDES = {
    "beam": ProfileOverrides(beam_size=2),
    "best_of": ProfileOverrides(best_of=2),
    "patience": ProfileOverrides(patience=1.5),
    "vad threshold": ProfileOverrides(vad_threshold=0.3),
    "vad silence": ProfileOverrides(vad_min_silence_ms=300),
    "vad pad": ProfileOverrides(vad_speech_pad_ms=100),
}


@pytest.mark.parametrize("name", REQUEST_CHANGES)
def test_each_request_option_changes_the_key(name: str) -> None:
    assert digest(REQUEST_CHANGES[name]) != digest()


@pytest.mark.parametrize("name", ENGINE_CHANGES)
def test_each_engine_property_changes_the_key(name: str) -> None:
    assert digest(engine=ENGINE_CHANGES[name]) != digest()


@pytest.mark.parametrize("name", OVERRIDES)
def test_each_profile_override_changes_the_key(name: str) -> None:
    assert digest(overrides=OVERRIDES[name]) != digest()


def test_temperature_unset_and_zero_are_one_key_and_sampling_is_never_cached() -> None:
    assert digest(replace(BASE, temperature=0.0)) == digest()
    assert cacheable(BASE) and cacheable(replace(BASE, temperature=0.0))
    assert not cacheable(replace(BASE, temperature=0.2))


def test_an_override_equal_to_the_profile_value_is_the_same_key() -> None:
    # The profile as it runs is what counts, not how it was configured.
    assert digest(overrides=ProfileOverrides(beam_size=5, vad_threshold=0.5)) == digest()


def test_all_the_changes_are_distinct_keys() -> None:
    keys = [digest(r) for r in REQUEST_CHANGES.values()] + [digest(engine=e) for e in ENGINE_CHANGES.values()]
    keys += [digest(overrides=o) for o in OVERRIDES.values()] + [digest()]
    assert len(set(keys)) == len(keys)


def test_speaker_bounds_and_diarization_settings_count_only_when_speakers_are_wanted() -> None:
    speakers = replace(BASE, granularities=frozenset({Granularity.SEGMENT, Granularity.SPEAKER}))
    diarizing = replace(ENGINE, diarization="threshold=0.7 step=0.2")
    assert digest(replace(speakers, min_speakers=2)) != digest(speakers)
    assert digest(replace(speakers, max_speakers=3)) != digest(speakers)
    assert digest(speakers, engine=diarizing) != digest(speakers)
    assert digest(speakers, engine=replace(diarizing, diarization_min_s=10)) != digest(speakers, engine=diarizing)
    # Plain transcription: a worker with diarization gives the same text as one without.
    assert digest(engine=diarizing) == digest()
    assert digest(engine=replace(ENGINE, diarization_min_s=10)) == digest()


def test_event_specific_fields_do_not_reach_the_key() -> None:
    def ref(**fields: object) -> AudioReference:
        base: dict[str, object] = {"event_id": "e-1", "object": ObjectRef(bucket="audio", key="a.wav")}
        return AudioReference.model_validate(base | fields)

    same = {
        digest(r.to_request())
        for r in (
            ref(),
            ref(event_id="e-2"),
            ref(metadata={"tenant": "acme"}),
            ref(object=ObjectRef(bucket="other", key="b/c.mp3", etag="x", size_bytes=7)),
            ref(produced_at="2026-11-25T10:00:00Z"),
            ref(timestamp_granularities=["segment"]),
        )
    }
    assert len(same) == 1


def test_object_and_content_keys() -> None:
    options = digest()
    assert object_key('"abc"', 10, options) == object_key("abc", 10, options)  # quoted or not, as stores differ
    assert object_key("abc", 10, options) != object_key("abc", 11, options)
    assert object_key("abc", 10, options) != object_key("abd", 10, options)
    assert object_key("abc", 10, options) != object_key("abc", 10, digest(REQUEST_CHANGES["language"]))
    assert content_key("00ff", options) != content_key("00fe", options)
    assert content_key("abc", options) != object_key("abc", 0, options)
    assert len(content_key("00ff", options)) == 64  # hex: safe as an object name


def test_lru_evicts_the_least_recently_used_by_entries() -> None:
    lru: BoundedLRU[str, int] = BoundedLRU(max_entries=2, max_bytes=1000, size_of=lambda v: v)
    lru.put("a", 1)
    lru.put("b", 1)
    assert lru.get("a") == 1  # a is now the most recent
    lru.put("c", 1)
    assert "b" not in lru and "a" in lru and "c" in lru
    assert (len(lru), lru.bytes, lru.evictions) == (2, 2, 1)


def test_lru_evicts_by_bytes_and_refuses_what_alone_is_too_big() -> None:
    lru: BoundedLRU[str, int] = BoundedLRU(max_entries=100, max_bytes=10, size_of=lambda v: v)
    lru.put("a", 4)
    lru.put("b", 4)
    lru.put("c", 4)  # 12 > 10: a goes
    assert "a" not in lru and lru.bytes == 8
    assert lru.put("huge", 11) is False and "huge" not in lru and lru.bytes == 8
    lru.put("b", 1)  # replacing an entry re-counts its size
    assert lru.bytes == 5 and len(lru) == 2


def test_lru_with_no_room_keeps_nothing() -> None:
    lru: BoundedLRU[str, int] = BoundedLRU(max_entries=0, max_bytes=10, size_of=lambda v: v)
    assert lru.put("a", 1) is False and len(lru) == 0


def _transcript(words: int) -> Transcript:
    ws = tuple(Word(i * 0.5, i * 0.5 + 0.4, f" word{i}", 0.9) for i in range(words))
    return Transcript(
        model="tiny.en",
        profile="whisper-1",
        task=Task.TRANSCRIBE,
        language="en",
        language_probability=None,
        duration_s=3.0,
        text="hello there",
        segments=(Segment(0, 0.0, 3.0, "hello there", -0.2, 0.01, 1.1, words=ws),),
        diarization=Diarization(DiarizationStatus.NOT_REQUESTED),
        transcribe_s=0.5,
    )


def test_approx_bytes_grows_with_words() -> None:
    assert approx_bytes(_transcript(100)) > approx_bytes(_transcript(0)) + 100 * 250


def test_cache_hit_round_trips_through_the_transcript_event() -> None:
    ref = AudioReference(event_id="e-1", object=ObjectRef(bucket="audio", key="a.wav"))
    hit = CacheHit(CacheTier.S3, CacheMatch.CONTENT, computed_at_ms=1_764_064_800_123)
    event = TranscriptEvent.of(
        ref,
        replace(_transcript(0), cache=hit),
        blob_etag="e",
        blob_size=1,
        fetch_s=0.001,
        total_s=0.01,
        group="g",
        pool="cpu",
        host="h",
    )
    # timestamp-millis as fastavro writes and reads it: a datetime, to the millisecond.
    computed_at = from_millis(1_764_064_800_123)
    assert event.to_avro()["cache"] == {"tier": "s3", "matched_by": "content", "computed_at": computed_at}
    back = Wire().transcript(Wire().encode(event)).to_transcript()
    assert back.cache == hit
    plain = TranscriptEvent.of(
        ref, _transcript(0), blob_etag="e", blob_size=1, fetch_s=0.0, total_s=0.0, group="g", pool="cpu", host="h"
    )
    assert plain.to_avro()["cache"] is None and Wire().transcript(Wire().encode(plain)).to_transcript().cache is None


def test_the_cache_field_is_a_compatible_evolution() -> None:
    """Old readers skip the new field; new readers give records of the old writer ``cache: null``."""
    new_raw = json.loads((SCHEMA_DIR / "transcript_event.avsc").read_text())
    old_raw = {**new_raw, "fields": [f for f in new_raw["fields"] if f["name"] != "cache"]}
    field = next(f for f in new_raw["fields"] if f["name"] == "cache")
    assert field["default"] is None and field["type"][0] == "null"
    new, old = parse_schema(new_raw), parse_schema(json.loads(json.dumps(old_raw)))
    ref = AudioReference(event_id="e-1", object=ObjectRef(bucket="audio", key="a.wav"))
    hit = CacheHit(CacheTier.MEMORY, CacheMatch.OBJECT, computed_at_ms=1)
    record = TranscriptEvent.of(
        ref,
        replace(_transcript(2), cache=hit),
        blob_etag=None,
        blob_size=None,
        fetch_s=0.0,
        total_s=0.0,
        group="g",
        pool="cpu",
        host="h",
    ).to_avro()

    buf = io.BytesIO()
    schemaless_writer(buf, new, record)
    as_old = schemaless_reader(io.BytesIO(buf.getvalue()), new, old)
    assert "cache" not in as_old and as_old["text"] == "hello there"

    buf = io.BytesIO()
    schemaless_writer(buf, old, {k: v for k, v in record.items() if k != "cache"})
    as_new = schemaless_reader(io.BytesIO(buf.getvalue()), old, new)
    assert as_new["cache"] is None


def test_persistent_prefix_parsing() -> None:
    assert parse_prefix("s3://fwv2-cache/transcripts/") == ("fwv2-cache", "transcripts/")
    assert parse_prefix("s3://fwv2-cache/a/b") == ("fwv2-cache", "a/b/")
    assert parse_prefix("s3://fwv2-cache") == ("fwv2-cache", "")
    with pytest.raises(ValueError):
        parse_prefix("fwv2-cache/transcripts/")


def _pipeline_with(tmp_path: Path, diarization: DiarizationConfig | None) -> Any:
    if not (tmp_path / "model.bin").exists():
        (tmp_path / "model.bin").write_bytes(b"weights")
        (tmp_path / "config.json").write_text("{}")
    info = SimpleNamespace(name="tiny.en", path=str(tmp_path), device="cpu", compute_type="int8")
    diarizer = None if diarization is None else SimpleNamespace(config=diarization, device="cpu")
    return SimpleNamespace(transcriber=SimpleNamespace(info=info), diarizer=diarizer, diarization_min_s=30.0)


def test_engine_identity_counts_what_diarizes_not_how_it_is_scheduled(tmp_path: Path) -> None:
    settings = Settings()
    base = DiarizationConfig(segmentation_path="/models/seg.bin", embedding_path="/models/emb.pt")

    def ident(config: DiarizationConfig | None) -> str | None:
        return engine_identity(settings, _pipeline_with(tmp_path, config)).diarization

    assert ident(None) is None
    assert ident(base) == ident(replace(base, num_threads=4, batch_size=8, embedding_workers=1, hf_token="secret"))
    assert ident(base) == ident(replace(base, segmentation_path="/mnt/other/seg.bin"))  # same file, other mount
    assert ident(base) != ident(replace(base, threshold=0.6))
    assert ident(base) != ident(replace(base, segmentation_step=0.5))
    assert ident(base) != ident(replace(base, max_speakers=3))
    assert "secret" not in (ident(replace(base, hf_token="secret")) or "")
    model = engine_identity(settings, _pipeline_with(tmp_path, None)).model
    (tmp_path / "config.json").write_text('{"changed": true}')
    assert engine_identity(settings, _pipeline_with(tmp_path, None)).model != model
