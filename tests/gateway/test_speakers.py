"""Speakers through the gateway: a long two-speaker call, verbose_json with words and speakers, then as text.

One test: diarizing two minutes of audio takes a while on two cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.diarization.clips import sample4, write_wav
from consumer.worker.runner import build_pipeline
from devtools.settings import DevSettings
from tests.gateway.conftest import openai_client, running_gateway
from tests.gateway.helpers import poll
from tests.integration.conftest import running_worker

pytestmark = pytest.mark.integration


async def test_a_long_call_comes_back_with_speakers(settings: DevSettings, tmp_path: Path) -> None:
    pytest.importorskip("pyannote.audio", reason="diarization is an optional extra")
    s = settings.model_copy(update={"enable_diarization": True, "gateway_request_timeout_s": 500.0})
    pipeline = build_pipeline(s)
    call = tmp_path / "call.wav"
    write_wav(call, sample4().samples)  # pyannote's two-speaker call, four times over: 120 s
    async with running_worker(s, pipeline), running_gateway(s) as url:
        client = openai_client(url, timeout=600)
        try:
            with call.open("rb") as f:
                raw = await client.audio.transcriptions.with_raw_response.create(
                    file=f,
                    model="whisper-1-fast",
                    response_format="verbose_json",
                    timestamp_granularities=["word", "speaker"],  # type: ignore[list-item]
                )
        finally:
            await client.close()
        verbose = raw.parse()
        event_id = raw.http_response.headers["x-event-id"]
        as_text = await poll(url, event_id, response_format="text")
        as_vtt = await poll(url, event_id, response_format="vtt")

    body = raw.http_response.json()
    speakers = {sp["id"]: sp["speech_s"] for sp in body["speakers"]}
    assert len(speakers) >= 2 and sum(speakers.values()) > 60, body["speakers"]
    words = verbose.words
    assert words and all(w.model_extra and w.model_extra["speaker"] in speakers for w in words)  # type: ignore[union-attr]
    assert {seg["speaker"] for seg in body["segments"]} <= set(speakers)
    assert len({seg["speaker"] for seg in body["segments"]}) >= 2
    # As people read it: a "[SPEAKER_xx] ..." line per turn, and WebVTT voice tags.
    lines = as_text.text.splitlines()
    assert len(lines) >= 2 and all(line.startswith("[SPEAKER_") for line in lines), as_text.text[:500]
    assert as_vtt.text.startswith("WEBVTT") and "<v SPEAKER_" in as_vtt.text
