"""Serving the gateway with uvicorn: ``fwv2 gateway``, and in a thread for the tests and the benchmark."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

from consumer.gateway.app import create_app
from consumer.plumbing.settings import GatewaySettings


def run_gateway(settings: GatewaySettings) -> int:
    """Serve until SIGTERM/SIGINT; uvicorn finishes the requests in flight first."""
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        access_log=False,  # the app logs one JSON line per request itself
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
    )
    return 0


@contextlib.contextmanager
def serve_in_thread(settings: GatewaySettings, host: str = "127.0.0.1") -> Iterator[str]:
    """A real uvicorn on a free port of ``host``, in its own thread and event loop; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), access_log=False, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"gateway-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start (see its log above)")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
