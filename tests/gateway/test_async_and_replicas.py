"""Async mode, 504 with an id to fetch later, and several replicas side by side on the same topics."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from devtools.samples import SAMPLES
from devtools.settings import DevSettings
from pipeline.stage import Pipeline
from tests.gateway.conftest import openai_client, running_gateway
from tests.gateway.helpers import assert_openai_error, poll, post_form
from tests.integration.conftest import running_worker
from tests.integration.test_end_to_end import MAX_CLIP_WER, wer

pytestmark = pytest.mark.integration


async def test_a_slow_answer_is_504_with_the_id_and_can_be_fetched_later(
    settings: DevSettings, pipeline: Pipeline, samples: dict[str, Path]
) -> None:
    s = settings.model_copy(update={"gateway_request_timeout_s": 1.0})
    clip = SAMPLES[0]
    async with running_gateway(s) as url:
        # No worker yet: nothing can answer within the second.
        answer = await post_form(
            url,
            [
                ("model", (None, "whisper-1")),
                ("response_format", (None, "srt")),
                ("file", (f"{clip.name}.wav", samples[clip.name].read_bytes(), "audio/wav")),
            ],
        )
        error = assert_openai_error(answer, 504, "timeout")
        event_id = error["event_id"]
        assert event_id == answer.headers["x-event-id"] and event_id in error["message"]
        assert (await poll(url, event_id, timeout_s=0)).status_code == 202  # known here, not done
        async with running_worker(s, pipeline):
            later = await poll(url, event_id)
        assert later.status_code == 200, later.text
        assert later.text.startswith("1\n00:00:0"), later.text  # the format the request asked for
        assert wer(clip.text, later.text.split("\n", 2)[2]) <= MAX_CLIP_WER
        as_json = await poll(url, event_id, response_format="json")
        assert wer(clip.text, as_json.json()["text"]) <= MAX_CLIP_WER
        unknown = await poll(url, "gw-" + uuid.uuid4().hex, timeout_s=0)
        assert_openai_error(unknown, 404, "not_found")


async def test_async_mode_and_a_second_replica_that_sees_every_result(
    settings: DevSettings, pipeline: Pipeline, samples: dict[str, Path]
) -> None:
    s = settings.model_copy(update={"gateway_request_timeout_s": 120.0})
    async with running_worker(s, pipeline), running_gateway(s) as a, running_gateway(s) as b:
        # Async by header (RFC 7240 Prefer) and by form field.
        by_header = await post_form(
            a,
            [("model", (None, "whisper-1")), ("file", ("w.wav", samples["weather"].read_bytes(), "audio/wav"))],
            headers={"Prefer": "respond-async"},
        )
        by_field = await post_form(
            b,
            [
                ("file", ("l.mp3", samples["library"].read_bytes(), "audio/mpeg")),
                ("model", (None, "whisper-1")),
                ("async", (None, "true")),
                ("response_format", (None, "text")),
            ],
        )
        for accepted in (by_header, by_field):
            assert accepted.status_code == 202, accepted.text
            body = accepted.json()
            assert body["status"] == "queued" and body["id"].startswith("gw-")
            assert accepted.headers["location"] == body["url"] == f"/v1/audio/transcriptions/{body['id']}"
        first, second = by_header.json()["id"], by_field.json()["id"]
        # Each replica reads every partition itself: either answers for both.
        for url in (a, b):
            got = await poll(url, first)
            assert got.status_code == 200 and "weather" in got.json()["text"].lower()
        assert "library" in (await poll(b, second)).text.lower()  # text, as asked, on the replica asked
        assert "library" in (await poll(a, second)).json()["text"].lower()  # json by default elsewhere
        # Synchronous requests on both replicas at once: each waiting request is served by its own.
        clients = [openai_client(a), openai_client(b)]
        try:
            answers = await asyncio.gather(
                *(
                    c.audio.transcriptions.create(file=samples[clip.name].open("rb"), model="whisper-1-fast")
                    for c in clients
                    for clip in SAMPLES[2:]
                )
            )
        finally:
            for c in clients:
                await c.close()
        assert all(wer(clip.text, ans.text) <= 0.35 for clip, ans in zip(SAMPLES[2:] * 2, answers, strict=True))
        # A replica started later reads back recent results, so it can answer for them too.
        async with running_gateway(s) as c:
            assert "weather" in (await poll(c, first)).json()["text"].lower()
