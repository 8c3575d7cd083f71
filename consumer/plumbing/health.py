"""/metrics, /healthz and /readyz on METRICS_PORT: a tiny asyncio HTTP server, no framework.

/healthz: the process is alive and its event loop answers (this handler runs on it) and
          the worker task has not died.
/readyz:  the model is loaded and warmed up, the consumer has started (so the broker
          answered), and the worker is polling: partitions assigned, or waiting for them.
          Its body also says whether speaker diarization is loaded, and with which settings
          (``diarization``); that is information only, never a reason to be unready.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from consumer.plumbing.logs import get_logger

log = get_logger("fwv2.health")

# The worker polls every 200 ms between events and holds at most one event at a time; a
# loop that has neither polled nor held an event this long is stuck.
POLL_STALE_S = 120.0


class Describes(Protocol):
    """What a loaded diarizer tells about itself (pipeline.diarization.Diarizer.describe)."""

    def describe(self) -> dict[str, object]: ...


def diarization_state(diarizer: Describes | None, enabled: bool) -> dict[str, object]:
    """Whether diarization is loaded and how it is set, for /readyz, the start-up logs and build info.

    The diarizer's own keys pass through untouched (new ones appear without a change here); values
    that JSON cannot hold become strings, so the probe can never fail on them.
    """
    if diarizer is None:
        # The runner builds a diarizer exactly when ENABLE_DIARIZATION is true; a pipeline handed in
        # without one (tests, embedding code) is the other case.
        reason = "the pipeline was built without diarization" if enabled else "ENABLE_DIARIZATION=false"
        return {"loaded": False, "reason": reason}
    described = {
        k: v if v is None or isinstance(v, str | int | float | bool) else str(v) for k, v in diarizer.describe().items()
    }
    return {"loaded": True, **described}


class HealthState:
    """What the probes read; the worker and runner keep it up to date."""

    def __init__(self) -> None:
        self.model_loaded = False
        # Set once one inference pass has run (runner.build_pipeline), before the worker joins its group.
        self.model_warm = False
        self.warm_up_s: float | None = None
        self.consumer_started = False
        self.worker_failed: str | None = None
        self.last_poll: Callable[[], float] = time.monotonic
        self.busy: Callable[[], bool] = lambda: False
        self.assigned: Callable[[], int] = lambda: 0
        # Set by the runner once the pipeline is built (diarization_state); unknown until then.
        self.diarization: dict[str, object] = {"loaded": False, "reason": "the model is not loaded yet"}

    def health(self) -> tuple[bool, dict[str, object]]:
        stale = not self.busy() and time.monotonic() - self.last_poll() > POLL_STALE_S
        ok = self.worker_failed is None and not stale
        return ok, {"worker_failed": self.worker_failed, "poll_stale": stale}

    def readiness(self) -> tuple[bool, dict[str, object]]:
        alive, _ = self.health()
        ok = alive and self.model_loaded and self.consumer_started
        return ok, {
            "model_loaded": self.model_loaded,
            "model_warm": self.model_warm,
            "warm_up_s": self.warm_up_s,
            "consumer_started": self.consumer_started,
            "partitions_assigned": self.assigned(),
            "diarization": self.diarization,
        }


class Exposed(Protocol):
    """What the probes need of a process's metrics: the registry /metrics serves, and a readiness gauge."""

    @property
    def registry(self) -> CollectorRegistry: ...

    @property
    def ready(self) -> Gauge: ...


async def serve(port: int, state: HealthState, metrics: Exposed, host: str = "0.0.0.0") -> asyncio.Server:  # noqa: S104
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass  # headers are not needed
            parts = request.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else "/"
            if path == "/metrics":
                metrics.ready.set(1 if state.readiness()[0] else 0)
                status, body, ctype = 200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST
            elif path in ("/healthz", "/readyz"):
                ok, detail = state.health() if path == "/healthz" else state.readiness()
                status, body, ctype = (
                    (200 if ok else 503),
                    json.dumps({"ok": ok, **detail}).encode(),
                    "application/json",
                )
            else:
                status, body, ctype = 404, b"not found\n", "text/plain"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port)
    log.info("health_listening", port=port)
    return server
