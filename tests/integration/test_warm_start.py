"""Warm start: the model is loaded and one inference pass has run before the worker joins its group, and /readyz says so."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request

import pytest

from consumer.worker.runner import run_worker
from devtools.settings import DevSettings

pytestmark = pytest.mark.integration  # the settings fixture starts the embedded stack


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, dict[str, object] | None]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except (urllib.error.URLError, ConnectionError):
        return 0, None  # not listening yet


async def test_readyz_reports_the_warm_up_before_the_group_is_joined(settings: DevSettings) -> None:
    port = _free_port()
    s = settings.model_copy(update={"metrics_port": port})
    stop = asyncio.Event()
    # No pipeline given: the runner loads and warms the model itself, as `fwv2 worker` does.
    task = asyncio.create_task(run_worker(s, None, stop))
    bodies: list[tuple[int, dict[str, object]]] = []
    try:
        async with asyncio.timeout(180):
            while True:
                status, body = await asyncio.to_thread(_get, port, "/readyz")
                if body is not None:
                    bodies.append((status, body))
                    if status == 200:
                        break
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)

    first_status, first = bodies[0]
    assert first_status == 503 and first["model_loaded"] is False and first["model_warm"] is False
    assert first["warm_up_s"] is None
    assert first["diarization"] == {"loaded": False, "reason": "the model is not loaded yet"}
    ready = bodies[-1][1]
    assert ready["model_loaded"] is True and ready["model_warm"] is True
    assert isinstance(ready["warm_up_s"], float) and ready["warm_up_s"] > 0
    assert ready["diarization"] == {"loaded": False, "reason": "ENABLE_DIARIZATION=false"}
    # Never a started consumer (a member of the group) with a cold model.
    assert all(b["model_warm"] for _, b in bodies if b["consumer_started"])
