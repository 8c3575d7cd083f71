"""What an on-call engineer sees of diarization and inference time: /readyz, build info, metrics, event timings."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from types import SimpleNamespace
from typing import Any

import pytest

from consumer.contract.avro import TRANSCRIPT_EVENT, load_schema
from consumer.contract.inputs import AudioReference, ObjectRef
from consumer.contract.outputs import TranscriptEvent
from consumer.contract.wire import Wire
from consumer.plumbing.health import HealthState, diarization_state, serve
from consumer.plumbing.settings import Settings
from consumer.worker.loop import Worker
from consumer.worker.metrics import WorkerMetrics
from consumer.worker.observe import inference_seconds
from pipeline.types import (
    CacheHit,
    CacheMatch,
    CacheTier,
    Diarization,
    DiarizationStatus,
    Segment,
    Speaker,
    Task,
    Transcript,
)

DESCRIBED: dict[str, object] = {
    "engine": "pyannote.audio (segmentation-3.0 + CAM++)",
    "device": "cpu",
    "threshold": 0.7,
    "segmentation_step": 0.1,
    "num_threads": 1,
    "embedding_workers": 1,
    "max_speakers": 8,
    "load_s": 1.234,
}


class _FakeDiarizer:
    """Stands in for pipeline.diarization.Diarizer: only describe() is read."""

    def __init__(self, described: dict[str, object]) -> None:
        self._described = described

    def describe(self) -> dict[str, object]:
        return dict(self._described)


def _transcript(**fields: object) -> Transcript:
    base: dict[str, object] = {
        "model": "tiny.en",
        "profile": "whisper-1",
        "task": Task.TRANSCRIBE,
        "language": "en",
        "language_probability": None,
        "duration_s": 60.0,
        "text": "Hello there.",
        "segments": (Segment(0, 0.0, 1.0, "Hello there.", -0.2, 0.01, 1.1, speaker="SPEAKER_00"),),
        "diarization": Diarization(DiarizationStatus.APPLIED),
        "speakers": (Speaker("SPEAKER_00", 1.0),),
        "decode_s": 0.2,
    }
    return Transcript(**{**base, **fields})  # type: ignore[arg-type]


def _ref() -> AudioReference:
    return AudioReference(event_id="e-1", object=ObjectRef(bucket="audio", key="a/b.wav"))


def _event(transcript: Transcript) -> TranscriptEvent:
    return TranscriptEvent.of(
        _ref(), transcript, blob_etag="x", blob_size=10, fetch_s=0.1, total_s=11.0, group="g", pool="cpu", host="h"
    )


def _record(transcript: Transcript) -> dict[str, object]:
    return _event(transcript).to_avro()


def _decoded(value: bytes) -> dict[str, Any]:
    return load_schema(TRANSCRIPT_EVENT).decode(value)


def _worker(metrics: WorkerMetrics, diarizer: object | None = None) -> Worker:
    # Only what Worker.__init__ and the observer's count_transcript read: no broker, no object store, no model.
    pipeline = SimpleNamespace(transcriber=SimpleNamespace(info=SimpleNamespace(device="cpu")), diarizer=diarizer)
    settings = Settings(result_cache_enabled=False)
    return Worker(settings, pipeline, store=SimpleNamespace(), metrics=metrics)  # type: ignore[arg-type]


# --- /readyz -----------------------------------------------------------------------------------


def test_diarization_state_passes_describe_through() -> None:
    state = diarization_state(_FakeDiarizer({**DESCRIBED, "new_key": "kept"}), enabled=True)
    assert state == {"loaded": True, **DESCRIBED, "new_key": "kept"}


def test_diarization_state_when_off_says_why() -> None:
    assert diarization_state(None, enabled=False) == {"loaded": False, "reason": "ENABLE_DIARIZATION=false"}
    off = diarization_state(None, enabled=True)
    assert off["loaded"] is False and "without diarization" in str(off["reason"])


def test_diarization_state_makes_odd_values_json_safe() -> None:
    state = diarization_state(_FakeDiarizer({"engine": "x", "device": object(), "threads": None}), enabled=True)
    json.dumps(state)  # would raise on the object
    assert isinstance(state["device"], str) and state["threads"] is None


def test_readiness_reports_a_loaded_diarizer() -> None:
    state = HealthState()
    state.model_loaded = state.consumer_started = True
    state.diarization = diarization_state(_FakeDiarizer(DESCRIBED), enabled=True)
    ok, body = state.readiness()
    assert ok is True
    diarization = body["diarization"]
    assert isinstance(diarization, dict)
    assert diarization["loaded"] is True
    assert (diarization["engine"], diarization["device"], diarization["threshold"]) == (DESCRIBED["engine"], "cpu", 0.7)


def test_readiness_reports_diarization_off_without_becoming_unready() -> None:
    state = HealthState()
    assert state.readiness()[1]["diarization"] == {"loaded": False, "reason": "the model is not loaded yet"}
    state.model_loaded = state.consumer_started = True
    state.diarization = diarization_state(None, enabled=False)
    ok, body = state.readiness()
    assert ok is True
    assert body["diarization"] == {"loaded": False, "reason": "ENABLE_DIARIZATION=false"}


async def test_readyz_serves_the_diarization_object() -> None:
    state = HealthState()
    state.model_loaded = state.consumer_started = True
    state.diarization = diarization_state(_FakeDiarizer(DESCRIBED), enabled=True)
    server = await serve(0, state, WorkerMetrics(), host="127.0.0.1")
    port = server.sockets[0].getsockname()[1]
    try:
        raw = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).read()
        )
    finally:
        server.close()
    body = json.loads(raw)
    assert body["ok"] is True
    assert body["diarization"] == {"loaded": True, **DESCRIBED}


# --- fwv2_build_info ---------------------------------------------------------------------------


def _build_info(metrics: WorkerMetrics, diarization: dict[str, object]) -> dict[str, str]:
    metrics.set_build_info(
        version="1.2.3", model="tiny.en", device="cpu", compute_type="int8", pool="cpu", diarization=diarization
    )
    [sample] = [s for m in metrics.registry.collect() if m.name == "fwv2_build_info" for s in m.samples]
    assert sample.value == 1
    return dict(sample.labels)


def test_build_info_names_the_diarization_engine_and_device() -> None:
    labels = _build_info(
        WorkerMetrics(), diarization_state(_FakeDiarizer({**DESCRIBED, "device": "cuda:0"}), enabled=True)
    )
    assert labels == {
        "version": "1.2.3",
        "model": "tiny.en",
        "device": "cpu",
        "compute_type": "int8",
        "pool": "cpu",
        "diarization": "pyannote.audio (segmentation-3.0 + CAM++)",
        "diarization_device": "cuda:0",
    }


def test_build_info_says_off_without_diarization() -> None:
    labels = _build_info(WorkerMetrics(), diarization_state(None, enabled=False))
    assert (labels["diarization"], labels["diarization_device"]) == ("off", "none")
    assert (labels["model"], labels["compute_type"], labels["pool"]) == ("tiny.en", "int8", "cpu")


# --- transcription_duration_seconds and steps ----------------------------------------------------


def _sample(metrics: WorkerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_transcription_duration_is_the_wall_time_not_the_sum() -> None:
    metrics = WorkerMetrics()
    _worker(metrics).observer.count_transcript(
        _transcript(transcribe_s=10.0, diarize_s=8.0, inference_s=10.5), fetch_s=0.1, publish_s=0.05
    )
    labels = {"model": "tiny.en", "profile": "whisper-1", "with_diarization": "true"}
    assert _sample(metrics, "transcription_duration_seconds_sum", **labels) == pytest.approx(10.5)
    assert _sample(metrics, "transcription_duration_seconds_count", **labels) == 1
    # Each step keeps its own time.
    assert _sample(metrics, "fwv2_step_duration_seconds_sum", step="transcribe") == pytest.approx(10.0)
    assert _sample(metrics, "fwv2_step_duration_seconds_sum", step="diarize") == pytest.approx(8.0)
    assert _sample(metrics, "fwv2_step_duration_seconds_sum", step="decode") == pytest.approx(0.2)


def test_transcription_duration_falls_back_to_whisper_time_without_a_wall_time() -> None:
    metrics = WorkerMetrics()
    plain = _transcript(diarization=Diarization(DiarizationStatus.NOT_REQUESTED), speakers=(), transcribe_s=3.0)
    _worker(metrics).observer.count_transcript(plain, fetch_s=0.1, publish_s=0.05)
    labels = {"model": "tiny.en", "profile": "whisper-1", "with_diarization": "false"}
    assert _sample(metrics, "transcription_duration_seconds_sum", **labels) == pytest.approx(3.0)
    assert not _sample(metrics, "fwv2_step_duration_seconds_count", step="diarize")  # it did not run (0 from start)


def test_inference_seconds() -> None:
    assert inference_seconds(_transcript(transcribe_s=10.0, diarize_s=8.0, inference_s=10.5)) == 10.5
    assert inference_seconds(_transcript(transcribe_s=4.0)) == 4.0
    assert inference_seconds(_transcript()) == 0.0
    hit = CacheHit(CacheTier.MEMORY, CacheMatch.OBJECT, 1_700_000_000_000)
    assert inference_seconds(_transcript(inference_s=10.5, cache=hit)) == 0.0


# --- the event's timings ---------------------------------------------------------------------------


def test_inference_s_round_trips_through_avro() -> None:
    transcript = _transcript(transcribe_s=10.0, diarize_s=8.0, inference_s=10.5)
    value = Wire().encode(_event(transcript))
    back = _decoded(value)
    assert back["timings"]["inference_s"] == 10.5
    assert (back["timings"]["transcribe_s"], back["timings"]["diarize_s"]) == (10.0, 8.0)
    assert Wire().transcript(value).to_transcript() == transcript


def test_a_cache_hit_has_no_inference_time() -> None:
    hit = CacheHit(CacheTier.S3, CacheMatch.CONTENT, 1_700_000_000_000)
    # As result_cache serves it: its other inference times zeroed, the entry's inference_s still there.
    served = _transcript(decode_s=0.0, inference_s=10.5, cache=hit)
    assert _decoded(Wire().encode(_event(served)))["timings"]["inference_s"] == 0.0


def test_skipped_no_speech_round_trips_through_avro() -> None:
    reason = "no speech in the clip"
    transcript = _transcript(diarization=Diarization(DiarizationStatus.SKIPPED_NO_SPEECH, reason), speakers=(), text="")
    value = Wire().encode(_event(transcript))
    back = _decoded(value)
    assert back["diarization"] == {"status": "skipped_no_speech", "reason": reason}
    assert Wire().transcript(value).to_transcript().diarization == Diarization(
        DiarizationStatus.SKIPPED_NO_SPEECH, reason
    )


def test_a_record_of_the_previous_schema_reads_inference_s_as_zero() -> None:
    # What a reader on the new schema gets from a writer before the field: the default.
    import io

    from fastavro import parse_schema, schemaless_reader, schemaless_writer

    from consumer.contract.avro import SCHEMA_DIR

    new_raw = json.loads((SCHEMA_DIR / "transcript_event.avsc").read_text())
    old_raw = json.loads(json.dumps(new_raw))
    timings = next(f for f in old_raw["fields"] if f["name"] == "timings")["type"]
    timings["fields"] = [f for f in timings["fields"] if f["name"] != "inference_s"]
    record = _record(_transcript(transcribe_s=2.0, inference_s=2.5))
    old_timings = dict(record["timings"])  # type: ignore[arg-type]
    del old_timings["inference_s"]
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(old_raw), {**record, "timings": old_timings})
    buf.seek(0)
    back = schemaless_reader(buf, parse_schema(old_raw), parse_schema(new_raw))
    assert back["timings"]["inference_s"] == 0.0 and back["timings"]["transcribe_s"] == 2.0
