"""API keys, probes and metrics of a running gateway; the seed's curl command against `fwv2 gateway`."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from devtools.samples import SAMPLES
from devtools.settings import DevSettings
from pipeline.stage import Pipeline
from tests.gateway.conftest import openai_client, running_gateway
from tests.integration.conftest import running_worker
from tests.integration.test_end_to_end import MAX_CLIP_WER, wer

pytestmark = pytest.mark.integration


async def test_api_keys_from_a_mounted_file(settings: DevSettings, tmp_path: Path) -> None:
    keys = tmp_path / "api-keys"
    keys.write_text("# one key per line\nkey-one\n")
    s = settings.model_copy(update={"gateway_api_keys_file": keys})
    async with running_gateway(s) as url:
        client = openai_client(url, api_key="wrong")
        with pytest.raises(openai.AuthenticationError) as refused:
            await client.models.list()
        await client.close()
        assert refused.value.status_code == 401
        assert refused.value.body["code"] == "invalid_api_key"  # type: ignore[index]
        async with httpx.AsyncClient() as http:
            missing = await http.get(f"{url}/v1/models")
        assert missing.status_code == 401 and "Bearer" in missing.json()["error"]["message"]
        client = openai_client(url, api_key="key-one")
        assert len((await client.models.list()).data) == 3
        await client.close()
        # A rotated Secret takes effect without a restart.
        keys.write_text("key-two\n")
        os.utime(keys, (1, 1))
        async with httpx.AsyncClient() as http:
            old = await http.get(f"{url}/v1/models", headers={"Authorization": "Bearer key-one"})
            new = await http.get(f"{url}/v1/models", headers={"Authorization": "Bearer key-two"})
            assert (old.status_code, new.status_code) == (401, 200)
            assert old.headers["www-authenticate"] == "Bearer"
            # Probes and metrics need no key.
            assert (await http.get(f"{url}/healthz")).status_code == 200
            assert (await http.get(f"{url}/readyz")).json()["ok"] is True
            metrics = (await http.get(f"{url}/metrics")).text
    assert 'fwv2_gateway_requests_total{method="GET",route="/v1/models",status="401"} 3.0' in metrics
    assert 'fwv2_gateway_requests_total{method="GET",route="/v1/models",status="200"} 2.0' in metrics
    assert 'fwv2_gateway_request_duration_seconds_count{method="GET",route="/v1/models"} 5.0' in metrics
    assert "fwv2_gateway_in_flight_requests 0.0" in metrics
    assert "fwv2_gateway_ready 1.0" in metrics


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_seed_curl_command_against_fwv2_gateway(
    settings: DevSettings, pipeline: Pipeline, samples: dict[str, Path]
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "LOG_FORMAT": "console",
        "KAFKA_INPUT_TOPIC": settings.kafka_input_topic,
        "KAFKA_OUTPUT_TOPIC": settings.kafka_output_topic,
        "KAFKA_DEAD_LETTER_TOPIC": settings.kafka_dead_letter_topic,
    }
    gateway = subprocess.Popen([sys.executable, "-m", "consumer.cli", "gateway"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                try:
                    if (await http.get(f"{url}/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert gateway.poll() is None, "fwv2 gateway exited"
                await asyncio.sleep(0.1)
        clip = SAMPLES[1]
        async with running_worker(settings, pipeline):
            curl = await asyncio.create_subprocess_exec(
                "curl",
                "-sS",
                "-F",
                f"file=@{samples[clip.name]}",
                "-F",
                "model=whisper-1-fast",
                f"{url}/v1/audio/transcriptions",
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await asyncio.wait_for(curl.communicate(), 120)
            assert curl.returncode == 0
            srt = await asyncio.create_subprocess_exec(
                "curl",
                "-sS",
                "-F",
                f"file=@{samples[clip.name]}",
                "-F",
                "model=whisper-1",
                "-F",
                "response_format=srt",
                f"{url}/v1/audio/transcriptions",
                stdout=asyncio.subprocess.PIPE,
            )
            subtitles, _ = await asyncio.wait_for(srt.communicate(), 120)
        # Greedy whisper-1-fast errs a little more than the default profile the bound was measured on.
        assert wer(clip.text, json.loads(out)["text"]) <= 0.35, out
        assert subtitles.decode().startswith("1\n00:00:00,")
        assert wer(clip.text, " ".join(subtitles.decode().split("\n")[2::4])) <= MAX_CLIP_WER, subtitles
    finally:
        gateway.terminate()
        # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught: the exit status says so.
        assert gateway.wait(30) in (0, -15)
