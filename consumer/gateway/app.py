"""The ASGI application: routes, the shared clients' start and stop, metrics per request, errors."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consumer.gateway import audio
from consumer.gateway.auth import ApiKeys
from consumer.gateway.errors import ApiError
from consumer.gateway.metrics import GatewayMetrics
from consumer.gateway.results import ResultHub, ResultStore
from consumer.gateway.state import Gateway
from consumer.gateway.submit import Submitter, make_storage
from consumer.plumbing.kafka import report_failure
from consumer.plumbing.logs import get_logger
from consumer.plumbing.settings import GatewaySettings
from pipeline.profiles import PROFILES

log = get_logger("fwv2.gateway")

_CREATED = 1_764_028_800  # 2025-11-25: when the profiles were defined, for /v1/models' "created"
_PROBES = {"/healthz", "/readyz", "/metrics"}


async def models(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    gw.keys.check(request.headers.get("authorization"))
    return JSONResponse({"object": "list", "data": [_model(name) for name in PROFILES]})


async def model(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    gw.keys.check(request.headers.get("authorization"))
    name = request.path_params["model"]
    if name not in PROFILES:
        raise ApiError(
            404,
            f"unknown model {name!r}; valid models: {', '.join(sorted(PROFILES))}",
            code="model_not_found",
            param="model",
        )
    return JSONResponse(_model(name))


def _model(name: str) -> dict[str, object]:
    return {
        "id": name,
        "object": "model",
        "created": _CREATED,
        "owned_by": "fwv2",
        "description": PROFILES[name].description,
    }


async def healthz(request: Request) -> Response:
    ok, detail = request.app.state.gateway.health()
    return JSONResponse({"ok": ok, **detail}, status_code=200 if ok else 503)


async def readyz(request: Request) -> Response:
    ok, detail = request.app.state.gateway.readiness()
    return JSONResponse({"ok": ok, **detail}, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    gw.metrics.ready.set(1 if gw.readiness()[0] else 0)
    gw.metrics.stored.set(len(gw.store))
    gw.metrics.waiting.set(gw.hub.waiting)
    return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


class _Observe:
    """Counts, times and logs each request by route template; the in-flight gauge covers the API only."""

    def __init__(self, app: ASGIApp, routes: list[Route], gateway_metrics: GatewayMetrics) -> None:
        self.app = app
        self.routes = routes
        self.metrics = gateway_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = next((r.path for r in self.routes if r.matches(scope)[0] is Match.FULL), "unmatched")
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        api = route not in _PROBES
        if api:
            self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            if api:
                self.metrics.in_flight.dec()
                log.info("http_request", method=scope["method"], route=route, status=status, seconds=round(elapsed, 4))
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(elapsed)


def create_app(settings: GatewaySettings) -> Starlette:
    gateway_metrics = GatewayMetrics()
    store = ResultStore(settings.gateway_store_capacity)
    gw = Gateway(
        settings=settings,
        keys=ApiKeys(settings.gateway_api_keys_file),
        metrics=gateway_metrics,
        store=store,
        hub=ResultHub(settings, store),
        submitter=Submitter(settings, make_storage(settings)),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await gw.submitter.start()
        except KafkaError as exc:
            await report_failure(settings, exc)  # the cause and the remedy (a refused login, an untrusted CA)
            raise
        try:
            await gw.hub.start()
            log.info(
                "gateway_started",
                port=settings.gateway_port,
                auth=gw.keys.enabled,
                timeout_s=settings.gateway_request_timeout_s,
            )
            yield
        finally:
            await gw.hub.stop()
            await gw.submitter.stop()

    routes = [
        Route("/v1/audio/transcriptions", audio.transcriptions, methods=["POST"]),
        Route("/v1/audio/translations", audio.translations, methods=["POST"]),
        Route("/v1/audio/transcriptions/{event_id}", audio.fetch, methods=["GET"]),
        Route("/v1/audio/translations/{event_id}", audio.fetch, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model}", model, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={ApiError: _api_error})
    app.state.gateway = gw
    app.add_middleware(_Observe, routes=routes, gateway_metrics=gateway_metrics)
    return app
