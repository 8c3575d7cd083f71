"""The official openai package, pointed at the gateway, transcribes the sample clips in every format."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from consumer.contract.registry import framing
from consumer.plumbing.kafka import make_consumer, start_consumer
from devtools.samples import SAMPLES
from devtools.settings import DevSettings
from pipeline.stage import Pipeline
from tests.gateway.conftest import Served, openai_client, running_gateway
from tests.integration.conftest import running_worker
from tests.integration.test_end_to_end import MAX_CLIP_WER, MAX_SET_WER, wer

pytestmark = pytest.mark.integration

# The word error bounds were measured with the default profile; greedy whisper-1-fast errs more on "train".
MODEL = "whisper-1"
_CUE = re.compile(r"(\d\d:\d\d:\d\d[,.]\d\d\d) --> (\d\d:\d\d:\d\d[,.]\d\d\d)\n(.+?)(?:\n\n|\n?$)", re.S)


def seconds(stamp: str) -> float:
    h, m, s = stamp.replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def cues(subtitles: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of each SRT or VTT cue, as a player reads them."""
    return [(seconds(a), seconds(b), text.strip()) for a, b, text in _CUE.findall(subtitles)]


async def test_every_clip_in_every_format(served: Served, samples: dict[str, Path]) -> None:
    audio = served.client.audio.transcriptions

    async def one(clip_name: str, fmt: str) -> object:
        with samples[clip_name].open("rb") as f:
            if fmt == "verbose_json":
                return await audio.create(
                    file=f, model=MODEL, response_format=fmt, timestamp_granularities=["word", "segment"]
                )
            return await audio.create(file=f, model=MODEL, response_format=fmt)

    formats = ("json", "text", "srt", "vtt", "verbose_json")
    jobs = {(c.name, fmt): one(c.name, fmt) for c in SAMPLES for fmt in formats}
    answers = dict(zip(jobs, await asyncio.gather(*jobs.values()), strict=True))

    said_all, heard_all = [], []
    for clip in SAMPLES:
        json_text = answers[clip.name, "json"].text  # type: ignore[attr-defined]
        text = answers[clip.name, "text"]
        assert isinstance(text, str) and text.strip() == json_text.strip()
        assert wer(clip.text, json_text) <= MAX_CLIP_WER, (clip.name, json_text)
        said_all.append(clip.text)
        heard_all.append(json_text)

        verbose = answers[clip.name, "verbose_json"]
        assert verbose.text == json_text and verbose.language == "en"  # type: ignore[attr-defined]
        assert 3 < verbose.duration < 15  # type: ignore[attr-defined]
        words = verbose.words  # type: ignore[attr-defined]
        assert words, "word granularity asked for"
        assert wer(clip.text, " ".join(w.word for w in words)) <= MAX_CLIP_WER
        assert all(0 <= w.start <= w.end <= verbose.duration + 0.5 for w in words)  # type: ignore[attr-defined]
        assert [w.start for w in words] == sorted(w.start for w in words)
        assert verbose.segments and verbose.segments[0].text  # type: ignore[attr-defined]

        for fmt in ("srt", "vtt"):
            subtitles = answers[clip.name, fmt]
            assert isinstance(subtitles, str)
            if fmt == "vtt":
                assert subtitles.startswith("WEBVTT")
            found = cues(subtitles)
            assert found, subtitles
            assert all(start < end for start, end, _ in found)
            assert wer(clip.text, " ".join(t for _, _, t in found)) <= MAX_CLIP_WER, subtitles
    assert wer(said_all, heard_all) <= MAX_SET_WER


async def test_translation_and_models(served: Served, samples: dict[str, Path]) -> None:
    listed = {m.id async for m in served.client.models.list()}
    assert listed == {"whisper-1-fast", "whisper-1", "whisper-1-quality"}
    clip = SAMPLES[2]
    with samples[clip.name].open("rb") as f:
        answer = await served.client.audio.translations.create(file=f, model="whisper-1", response_format="json")
    assert wer(clip.text, answer.text) <= MAX_CLIP_WER


async def test_temperature_and_prompt_are_accepted(served: Served, samples: dict[str, Path]) -> None:
    clip = SAMPLES[0]
    with samples[clip.name].open("rb") as f:
        raw = await served.client.audio.transcriptions.with_raw_response.create(
            file=f,
            model=MODEL,
            temperature=0.2,
            prompt="Weather report.",
            language="en",
            response_format="verbose_json",
        )
    body = json.loads(raw.http_response.text)
    assert raw.http_response.headers["x-event-id"].startswith("gw-")
    assert wer(clip.text, body["text"]) <= MAX_CLIP_WER and body["language"] == "en"


async def test_in_registry_mode_the_gateway_reads_the_confluent_framing(
    settings: DevSettings, pipeline: Pipeline, registry_url: str, samples: dict[str, Path]
) -> None:
    """Worker and gateway both with SCHEMA_REGISTRY_URL: the answer comes back through the Confluent framing."""
    s = settings.model_copy(update={"schema_registry_url": registry_url, "gateway_request_timeout_s": 240.0})
    clip = SAMPLES[0]
    async with running_worker(s, pipeline), running_gateway(s) as url:
        client = openai_client(url)
        try:
            with samples[clip.name].open("rb") as f:
                answer = await client.audio.transcriptions.create(file=f, model=MODEL, response_format="json")
        finally:
            await client.close()
    assert wer(clip.text, answer.text) <= MAX_CLIP_WER, answer.text
    consumer = make_consumer(s, s.kafka_output_topic, group_id=None)
    await start_consumer(consumer)
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert framing(record.value) == "confluent"
