"""The gateway's parts on their own (no stack): the streamed form, field checks, errors, the result store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from consumer.contract.dead_letters import DeadLetter, SourceRef, WorkerRef
from consumer.contract.inputs import AudioReference, ObjectRef
from consumer.contract.outputs import TranscriptEvent
from consumer.contract.results import Result
from consumer.contract.status import JobState, StatusEvent, Step
from consumer.gateway.audio import job_state
from consumer.gateway.errors import ApiError, from_dead_letter
from consumer.gateway.form import read_form
from consumer.gateway.request import build_form, check_field
from consumer.gateway.results import ResultStore
from pipeline.errors import ErrorCode
from pipeline.types import Diarization, DiarizationStatus, Granularity, Task, Transcript

BOUNDARY = "b0undary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def body(*parts: tuple[str, bytes, str | None]) -> bytes:
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


async def chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):  # small chunks: boundaries and headers split across reads
        yield data[i : i + size]


async def test_fields_and_file_arrive_in_small_chunks() -> None:
    audio = bytes(range(256)) * 50
    data = body(
        ("model", b"whisper-1", None),
        ("timestamp_granularities[]", b"word", None),
        ("file", audio, "a b/../c.wav"),
        ("response_format", b"srt", None),
    )
    seen: list[str] = []
    form = await read_form(CONTENT_TYPE, chunks(data), max_file_bytes=len(audio), on_field=lambda n, v: seen.append(n))
    assert seen == ["model", "timestamp_granularities[]", "response_format"]
    assert form.upload is not None and form.upload.size == len(audio) and form.upload.filename == "a b/../c.wav"
    form.upload.file.seek(0)
    assert form.upload.file.read() == audio
    request = build_form(form.fields, Task.TRANSCRIBE, prefer_async=False)
    assert request.response_format == "srt" and request.granularities() == {Granularity.SEGMENT, Granularity.WORD}
    form.close()


async def test_one_byte_over_the_limit_is_413() -> None:
    data = body(("model", b"whisper-1", None), ("file", bytes(101), "a.wav"))
    with pytest.raises(ApiError) as refused:
        await read_form(CONTENT_TYPE, chunks(data, 64), max_file_bytes=100, on_field=check_field)
    assert refused.value.status == 413 and refused.value.param == "file"
    await read_form(CONTENT_TYPE, chunks(body(("file", bytes(100), "a.wav"))), max_file_bytes=100, on_field=check_field)


async def test_an_unknown_model_stops_the_read_at_the_field() -> None:
    async def stream() -> AsyncIterator[bytes]:
        yield body(("model", b"gpt-4o", None))[: -len(f"--{BOUNDARY}--\r\n")]
        yield b"--" + BOUNDARY.encode() + b"--\r\n"  # the rest is drained, not parsed

    with pytest.raises(ApiError) as refused:
        await read_form(CONTENT_TYPE, stream(), max_file_bytes=10, on_field=check_field)
    assert refused.value.status == 400 and refused.value.code == "model_not_found"
    assert "whisper-1-fast, whisper-1-quality" in refused.value.message


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("application/json", b"{}"),
        (CONTENT_TYPE, body(("other", b"x", "x.bin"))),
        (CONTENT_TYPE, body(("file", b"a", "a.wav"), ("file", b"b", "b.wav"))),
    ],
    ids=["not-multipart", "file-under-another-name", "two-files"],
)
async def test_malformed_forms_are_400(content_type: str, data: bytes) -> None:
    with pytest.raises(ApiError) as refused:
        await read_form(content_type, chunks(data), max_file_bytes=100, on_field=check_field)
    assert refused.value.status == 400


def test_field_checks() -> None:
    for name, value in (
        ("temperature", "1.5"),
        ("temperature", "hot"),
        ("response_format", "docx"),
        ("timestamp_granularities[]", "letter"),
        ("model", "whisper-2"),
    ):
        with pytest.raises(ApiError):
            check_field(name, value)
    form = build_form({"model": ["whisper-1-fast"], "temperature": ["0.3"], "async": ["true"]}, Task.TRANSLATE, False)
    assert form.temperature == 0.3 and form.respond_async and form.task is Task.TRANSLATE
    assert build_form({"model": ["whisper-1"]}, Task.TRANSCRIBE, prefer_async=True).respond_async


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"timestamp_granularities": ["word,speaker"]}, {"word", "speaker"}),  # the openai SDK's string, as sent
        ({"timestamp_granularities": [" word , speaker,word"]}, {"word", "speaker"}),
        ({"timestamp_granularities[]": ["word", "speaker"]}, {"word", "speaker"}),  # the SDK's list
        ({"timestamp_granularities[]": ["word,speaker", "segment"]}, {"word", "speaker"}),
        ({"timestamp_granularities[]": ["word"], "timestamp_granularities": ["speaker"]}, {"word", "speaker"}),
        ({"timestamp_granularities": ["segment"]}, set()),
    ],
)
def test_granularities_may_be_comma_separated(fields: dict[str, list[str]], expected: set[str]) -> None:
    for name, values in fields.items():
        for value in values:
            check_field(name, value)
    form = build_form({"model": ["whisper-1"], **fields}, Task.TRANSCRIBE, False)
    assert form.granularities() == {Granularity(g) for g in expected} | {Granularity.SEGMENT}
    assert len(form.timestamp_granularities) == len(set(form.timestamp_granularities))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("timestamp_granularities", "word,,", "empty item in timestamp granularities 'word,,'"),
        ("timestamp_granularities", "word,bogus", "unknown timestamp granularity 'bogus' in 'word,bogus'"),
        ("timestamp_granularities[]", "", "empty item in timestamp granularities ''"),
        ("timestamp_granularities[]", "speaker,letter", "unknown timestamp granularity 'letter'"),
    ],
)
def test_bad_granularities_are_400_naming_the_value(name: str, value: str, message: str) -> None:
    for refuse in (
        lambda: check_field(name, value),
        lambda: build_form({"model": ["whisper-1"], name: [value]}, Task.TRANSCRIBE, False),
    ):
        with pytest.raises(ApiError) as refused:
            refuse()
        assert refused.value.status == 400 and refused.value.code == "invalid_value"
        assert refused.value.param == name and message in refused.value.message
        assert "valid: segment, word, speaker" in refused.value.message


def _letter(code: str, message: str = "m", event_id: str = "gw-1", original_value: bytes | None = None) -> DeadLetter:
    return DeadLetter(
        event_id=event_id,
        original_value=original_value,
        source=SourceRef("in", 0, 0),
        code=ErrorCode(code),
        message=message,
        exception_type="E",
        attempts=1,
        worker=WorkerRef(group="g", host="h"),
        failed_at=datetime.now(UTC),
    )


def _transcript_event(event_id: str, text: str) -> TranscriptEvent:
    ref = AudioReference(event_id=event_id, object=ObjectRef(bucket="audio", key="k"))
    t = Transcript(
        "tiny.en", "whisper-1", Task.TRANSCRIBE, "en", None, 1.0, text, (), Diarization(DiarizationStatus.APPLIED)
    )
    return TranscriptEvent.of(
        ref, t, blob_etag=None, blob_size=1, fetch_s=0, total_s=0, group="g", pool="cpu", host="h"
    )


def test_dead_letter_codes_map_to_statuses() -> None:
    def status(code: str) -> int:
        return from_dead_letter(_letter(code)).status

    assert (status("UNDECODABLE_AUDIO"), status("EMPTY_AUDIO"), status("AUDIO_TOO_LONG")) == (415, 400, 413)
    assert (status("STORAGE_UNAVAILABLE"), status("TRANSCRIPTION_FAILED")) == (503, 500)
    body = from_dead_letter(_letter("UNDECODABLE_AUDIO", "not audio")).body()
    assert body == {
        "error": {
            "message": "not audio",
            "type": "invalid_request_error",
            "param": "file",
            "code": "undecodable_audio",
            "event_id": "gw-1",
        }
    }


def test_a_language_the_workers_model_lacks_is_the_callers_400() -> None:
    error = from_dead_letter(_letter("UNSUPPORTED_LANGUAGE", "tiny.en is English-only"))
    assert (error.status, error.code, error.param) == (400, "unsupported_language", "language")


def test_store_keeps_the_newest_and_the_first_transcript() -> None:
    store = ResultStore(capacity=2)

    def result(event_id: str, kind: str = "transcript", text: str = "") -> Result:
        if kind == "dead_letter":
            return Result("t", 0, 0, dead_letter=_letter("UNDECODABLE_AUDIO", event_id=event_id, original_value=b"x"))
        return Result("t", 0, 0, transcript=_transcript_event(event_id, text))

    store.put(result("gw-a", text="first"))
    store.put(result("gw-a", text="duplicate"))
    assert store.get("gw-a").transcript.text == "first"  # type: ignore[union-attr]
    store.put(result("gw-b", kind="dead_letter"))
    assert store.get("gw-b").dead_letter.original_value is None  # type: ignore[union-attr]
    store.put(result("gw-c"))
    assert store.get("gw-a") is None and len(store) == 2


def _state(state: JobState, run: str = "r1", **fields: object) -> StatusEvent:
    return StatusEvent(
        event_id="gw-1", state=state, run_id=run, pool="cpu", host="h", emitted_at=datetime.now(UTC), **fields
    )


def test_an_async_job_reports_its_state_and_percentage() -> None:
    """GET of a running async request: queued, then in progress with the share of audio done (issue 23)."""
    store = ResultStore(capacity=2)
    assert job_state(store.state("gw-1")) == {"status": "queued", "progress": 0}
    store.set_state(_state(JobState.ACCEPTED))
    assert job_state(store.state("gw-1"))["status"] == "in_progress"
    store.set_state(_state(JobState.PROGRESS, step=Step.TRANSCRIBING, progress=0.4, audio_s=3600.0, done_s=1440.0))
    body = job_state(store.state("gw-1"))
    assert body == {
        "status": "in_progress",
        "state": "progress",
        "progress": 40.0,
        "attempt": 1,
        "step": "transcribing",
        "audio_seconds": 3600.0,
    }
    store.set_state(_state(JobState.COMPLETED, progress=1.0))
    store.set_state(_state(JobState.PROGRESS, progress=0.9))  # a late progress of the run that ended
    assert store.state("gw-1").state is JobState.COMPLETED  # type: ignore[union-attr]
    store.set_state(_state(JobState.ACCEPTED, run="r2"))  # a redelivery starts over
    assert store.state("gw-1").run_id == "r2"  # type: ignore[union-attr]
    for n in range(3):  # bounded like the results
        store.set_state(
            StatusEvent.now(event_id=f"gw-{n + 2}", state=JobState.ACCEPTED, run_id="x", pool="c", host="h")
        )
    assert store.state("gw-1") is None
