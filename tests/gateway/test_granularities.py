"""The Performance Tuning Guide's call, verbatim, with the official openai SDK: granularities as one string.

The SDK sends a string as one ``timestamp_granularities`` field ("word,speaker") and a list as repeated
``timestamp_granularities[]`` fields; the gateway takes both, and names a bad item in its 400.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from devtools.samples import SAMPLES
from devtools.settings import DevSettings
from tests.gateway.conftest import Served, running_gateway
from tests.gateway.helpers import input_records, objects_under
from tests.integration.test_end_to_end import MAX_CLIP_WER, wer

pytestmark = pytest.mark.integration

CLIP = SAMPLES[0]  # "weather"


def sync_client(url: str) -> OpenAI:
    # The guide's client is the synchronous one; max_retries=0 as everywhere (a retry is a second transcription).
    return OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)


def seed_call(client: OpenAI, audio_path: Path, granularities: Any) -> Any:
    with audio_path.open("rb") as audio_file:
        return client.audio.transcriptions.create(
            model="whisper-1-quality", file=audio_file, response_format="json", timestamp_granularities=granularities
        )


@pytest.mark.parametrize(
    "granularities", ["word,speaker", ["word", "speaker"], "segment"], ids=["comma-string", "list", "segment"]
)
async def test_the_guides_call_works(served: Served, samples: dict[str, Path], granularities: Any) -> None:
    client = sync_client(served.url)
    try:
        answer = await asyncio.to_thread(seed_call, client, samples[CLIP.name], granularities)
    finally:
        client.close()
    # `json` is OpenAI's {"text": ...} whatever the granularities; they shape verbose_json only.
    assert set(answer.model_dump(exclude_none=True)) == {"text"}, answer
    assert wer(CLIP.text, answer.text) <= MAX_CLIP_WER, answer.text


async def test_word_and_speaker_as_one_string_shape_verbose_json(served: Served, samples: dict[str, Path]) -> None:
    with samples[CLIP.name].open("rb") as f:
        raw = await served.client.audio.transcriptions.with_raw_response.create(
            model="whisper-1-quality",
            file=f,
            response_format="verbose_json",
            timestamp_granularities="word,speaker",  # type: ignore[arg-type]
        )
    body = raw.http_response.json()
    assert body["words"] and wer(CLIP.text, " ".join(w["word"] for w in body["words"])) <= MAX_CLIP_WER
    # Speakers were asked for, but `auto` diarizes only clips of 30 s or more: no labels on a short clip.
    assert "speakers" not in body and all("speaker" not in w for w in body["words"]), body


BAD = [
    ("word,,", "empty item in timestamp granularities 'word,,'"),
    ("word,bogus", "unknown timestamp granularity 'bogus' in 'word,bogus'"),
    (["word", "bogus"], "unknown timestamp granularity 'bogus'"),
]


async def test_a_bad_granularity_is_400_naming_it(settings: DevSettings, samples: dict[str, Path]) -> None:
    s = settings.model_copy(update={"gateway_upload_prefix": f"gateway-test-{uuid.uuid4().hex[:8]}/"})
    async with running_gateway(s) as url:  # no worker: nothing may get as far as one
        client = sync_client(url)
        try:
            for granularities, message in BAD:
                with pytest.raises(openai.BadRequestError) as refused:
                    await asyncio.to_thread(seed_call, client, samples[CLIP.name], granularities)
                error = refused.value.body
                assert refused.value.status_code == 400 and isinstance(error, dict), error
                assert message in error["message"] and "valid: segment, word, speaker" in error["message"], error
                assert error["code"] == "invalid_value", error
                assert error["param"] == (
                    "timestamp_granularities[]" if isinstance(granularities, list) else "timestamp_granularities"
                ), error
        finally:
            client.close()
    # Refused while the form was read: nothing uploaded, nothing published.
    assert objects_under(s) == [] and await input_records(s) == 0
