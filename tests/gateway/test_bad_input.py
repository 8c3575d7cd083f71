"""Bad uploads: refused in OpenAI's error shape, and nothing left half-done in the bucket or on the topic."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devtools.settings import DevSettings
from pipeline.stage import Pipeline
from tests.gateway.conftest import running_gateway
from tests.gateway.helpers import assert_openai_error, input_records, objects_under, png_bytes, post_form
from tests.integration.conftest import running_worker

pytestmark = pytest.mark.integration

LIMIT = 1_000_000  # MAX_OBJECT_BYTES for these tests: the sample clips (under 400 kB) fit, a 1.5 MB file does not


@pytest.fixture
def small(settings: DevSettings) -> DevSettings:
    return settings.model_copy(
        update={
            "max_object_bytes": LIMIT,
            "gateway_upload_prefix": f"gateway-test-{uuid.uuid4().hex[:8]}/",
            "gateway_request_timeout_s": 120.0,
        }
    )


async def test_refused_before_anything_is_uploaded(small: DevSettings, samples: dict[str, Path]) -> None:
    audio = samples["weather"].read_bytes()
    async with running_gateway(small) as url:
        # Unknown model sent first (the openai SDK's order): refused before the file is read.
        answer = await post_form(url, [("model", (None, "whisper-9")), ("file", ("a.wav", audio, "audio/wav"))])
        error = assert_openai_error(answer, 400, "model_not_found", "model")
        assert all(name in error["message"] for name in ("whisper-1-fast", "whisper-1", "whisper-1-quality"))
        assert error["type"] == "invalid_request_error"
        # ... and sent after the file (curl -F file=@a.wav -F model=...).
        answer = await post_form(url, [("file", ("a.wav", audio, "audio/wav")), ("model", (None, "whisper-9"))])
        assert_openai_error(answer, 400, "model_not_found", "model")
        answer = await post_form(url, [("file", ("a.wav", b"", "audio/wav")), ("model", (None, "whisper-1"))])
        assert_openai_error(answer, 400, "empty_file", "file")
        answer = await post_form(url, [("model", (None, "whisper-1"))])
        assert_openai_error(answer, 400, "missing_required_parameter", "file")
        answer = await post_form(url, [("file", ("a.wav", audio, "audio/wav"))])
        assert_openai_error(answer, 400, "missing_required_parameter", "model")
        answer = await post_form(
            url,
            [
                ("model", (None, "whisper-1")),
                ("response_format", (None, "docx")),
                ("file", ("a.wav", audio, "audio/wav")),
            ],
        )
        assert_openai_error(answer, 400, "invalid_value", "response_format")
        answer = await post_form(
            url,
            [("model", (None, "whisper-1")), ("language", (None, "klingon")), ("file", ("a.wav", audio, "audio/wav"))],
        )
        assert_openai_error(answer, 400, "invalid_value", "language")
        answer = await post_form(
            url, [("model", (None, "whisper-1")), ("temperature", (None, "7")), ("file", ("a.wav", audio, "audio/wav"))]
        )
        assert_openai_error(answer, 400, "invalid_value", "temperature")
    assert objects_under(small) == []
    assert await input_records(small) == 0


async def test_a_png_is_415_from_the_workers_dead_letter(small: DevSettings, pipeline: Pipeline) -> None:
    # No sniffing in the gateway: the worker's decoder is the one authority on what is audio.
    async with running_worker(small, pipeline), running_gateway(small) as url:
        answer = await post_form(
            url, [("file", ("picture.wav", png_bytes(), "audio/wav")), ("model", (None, "whisper-1-fast"))]
        )
    error = assert_openai_error(answer, 415, "undecodable_audio", "file")
    assert error["event_id"] == answer.headers["x-event-id"]


async def test_german_for_the_english_only_model_is_400_not_an_english_transcript(
    small: DevSettings, pipeline: Pipeline, samples: dict[str, Path]
) -> None:
    # The worker runs the bundled tiny.en: it refuses the language before fetching the upload.
    async with running_worker(small, pipeline), running_gateway(small) as url:
        answer = await post_form(
            url,
            [
                ("file", ("train.ogg", samples["train"].read_bytes(), "audio/ogg")),
                ("model", (None, "whisper-1-fast")),
                ("language", (None, "de")),
            ],
        )
    error = assert_openai_error(answer, 400, "unsupported_language", "language")
    assert "English-only" in error["message"] and "WHISPER_MODEL" in error["message"]


async def test_over_the_limit_is_413_and_leaves_no_object(small: DevSettings) -> None:
    big = b"RIFF" + bytes(1_500_000)
    async with running_gateway(small) as url:
        # Content-Length far over the limit: refused from the headers, the body unread.
        answer = await post_form(url, [("model", (None, "whisper-1")), ("file", ("big.wav", big * 2, "audio/wav"))])
        assert_openai_error(answer, 413, "file_too_large", "file")
        # Content-Length within the form's slack: refused while reading, as the count passes the limit.
        answer = await post_form(url, [("model", (None, "whisper-1")), ("file", ("big.wav", big, "audio/wav"))])
        assert_openai_error(answer, 413, "file_too_large", "file")
        # Chunked, no length: refused while reading, as the count passes the limit.
        answer = await chunked_post(url, [("model", b"whisper-1")], ("big.wav", big))
        assert_openai_error(answer, 413, "file_too_large", "file")
    assert objects_under(small) == []
    assert await input_records(small) == 0


async def test_a_client_gone_mid_upload_leaves_nothing_and_the_gateway_serves_on(
    small: DevSettings, pipeline: Pipeline, samples: dict[str, Path]
) -> None:
    async with running_worker(small, pipeline), running_gateway(small) as url:
        host, port = url.removeprefix("http://").split(":")
        for _ in range(3):
            reader, writer = await asyncio.open_connection(host, int(port))
            boundary = "cut-short"
            head = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
                "Content-Type: audio/wav\r\n\r\n"
            ).encode()
            writer.write(
                f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\nContent-Length: 150000\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
                + head
                + bytes(100_000)
            )
            await writer.drain()
            writer.close()  # gone, 50 kB short of what it announced
        await asyncio.sleep(1)
        assert objects_under(small) == []
        assert await input_records(small) == 0
        answer = await post_form(
            url, [("model", (None, "whisper-1")), ("file", ("w.wav", samples["weather"].read_bytes(), "audio/wav"))]
        )
        assert answer.status_code == 200, answer.text
        assert "weather" in answer.json()["text"].lower()
    assert len(objects_under(small)) == 1
    assert await input_records(small) == 1


async def chunked_post(url: str, fields: list[tuple[str, bytes]], file: tuple[str, bytes]):  # type: ignore[no-untyped-def]
    import httpx2 as httpx

    boundary = "chunked-limit"

    async def body() -> AsyncIterator[bytes]:
        for name, value in fields:
            yield f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file[0]}"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        for i in range(0, len(file[1]), 65536):
            yield file[1][i : i + 65536]
        yield f"\r\n--{boundary}--\r\n".encode()

    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(
            f"{url}/v1/audio/transcriptions",
            content=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
