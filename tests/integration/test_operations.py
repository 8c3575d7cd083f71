"""What the on-call engineer and the platform see: probes and metrics of a running worker."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from consumer.client import ResultReader, new_reference, publish_references, upload
from consumer.worker.runner import run_worker
from devtools.settings import DevSettings
from pipeline.stage import Pipeline

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""  # not listening yet


async def test_probes_and_metrics(
    settings: DevSettings, pipeline: Pipeline, samples: dict[str, Path], reader: ResultReader
) -> None:
    port = _free_port()
    s = settings.model_copy(update={"metrics_port": port})
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(s, pipeline, stop))
    try:
        async with asyncio.timeout(60):
            while (await asyncio.to_thread(_get, port, "/readyz"))[0] != 200:
                await asyncio.sleep(0.2)
        status, body = await asyncio.to_thread(_get, port, "/readyz")
        assert json.loads(body)["model_loaded"] is True
        # The fixture's pipeline has no diarizer, and the settings leave ENABLE_DIARIZATION at false.
        assert json.loads(body)["diarization"] == {"loaded": False, "reason": "ENABLE_DIARIZATION=false"}
        assert (await asyncio.to_thread(_get, port, "/healthz"))[0] == 200

        ref = new_reference(upload(s, samples["train"]), profile="whisper-1-fast")
        bad = new_reference(upload(s, samples["train"]), profile="no-such-profile")
        await publish_references(s, [ref, bad])
        await reader.wait_for([ref.event_id, bad.event_id], timeout_s=120)
        # Counters move just after the commit that follows the publish, and lag is refreshed about
        # once a second: a reader can see an outcome a moment before its metrics do. Every code's
        # counter is exported from 0 at start, so wait for the counts themselves, not the names.
        awaited = (
            'fwv2_dead_letters_total{code="UNKNOWN_PROFILE"} 1.0',
            "fwv2_consumer_lag{",
            'fwv2_events_published_total{outcome="transcribed"} 1.0',
        )
        async with asyncio.timeout(30):
            while True:
                metrics = (await asyncio.to_thread(_get, port, "/metrics"))[1]
                if all(m in metrics for m in awaited):
                    break
                await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    assert 'fwv2_events_published_total{outcome="transcribed"} 1.0' in metrics
    assert 'fwv2_dead_letters_total{code="UNKNOWN_PROFILE"} 1.0' in metrics
    assert (
        'transcription_duration_seconds_count{model="tiny.en",profile="whisper-1-fast",with_diarization="false"} 1.0'
        in metrics
    )
    assert 'fwv2_step_duration_seconds_count{step="fetch"} 1.0' in metrics
    assert 'fwv2_audio_seconds_total{profile="whisper-1-fast"}' in metrics
    assert 'fwv2_build_info{compute_type="int8",device="cpu",diarization="off",diarization_device="none"' in metrics
    assert "fwv2_consumer_lag{" in metrics
    assert "fwv2_worker_ready 1.0" in metrics
    assert (await asyncio.to_thread(lambda: socket.socket().connect_ex(("127.0.0.1", port)))) != 0  # closed after stop
