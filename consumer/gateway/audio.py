"""The audio endpoints: POST a file and wait for (or be handed the id of) its transcript; GET it later.

One request: check the key, read the form (each field checked as it ends, the file spooled and held to
MAX_OBJECT_BYTES), upload the file, register for the result, publish the AudioReference, then wait
up to GATEWAY_REQUEST_TIMEOUT_S and answer in the requested format, or with the dead letter's error.
Async mode (``Prefer: respond-async`` header, or form field ``async=true``) answers 202 with the id at
once; ``GET /v1/audio/transcriptions/{id}`` answers the result when it exists.
"""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from consumer.contract.results import Result
from consumer.contract.status import StatusEvent
from consumer.gateway.errors import ApiError, from_dead_letter
from consumer.gateway.form import read_form
from consumer.gateway.request import TranscriptionForm, build_form, check_field
from consumer.gateway.results import ID_PREFIX, new_event_id
from consumer.gateway.state import Gateway
from consumer.gateway.submit import reference
from consumer.plumbing.logs import get_logger
from pipeline.render import render
from pipeline.types import Granularity, Task

log = get_logger("fwv2.gateway")

_MEDIA_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "text/plain; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}
# Multipart framing around the file (boundaries, part headers, the other fields) stays under this.
_FORM_OVERHEAD_BYTES = 1024 * 1024


async def transcriptions(request: Request) -> Response:
    return await _create(request, Task.TRANSCRIBE)


async def translations(request: Request) -> Response:
    return await _create(request, Task.TRANSLATE)


async def _create(request: Request, task: Task) -> Response:
    gw: Gateway = request.app.state.gateway
    gw.keys.check(request.headers.get("authorization"))
    max_bytes = gw.settings.max_object_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + _FORM_OVERHEAD_BYTES:
        raise ApiError(
            413,
            f"the request is {declared} bytes; files may be at most {max_bytes} bytes",
            code="file_too_large",
            param="file",
        )
    try:
        raw = await read_form(
            request.headers.get("content-type"), request.stream(), max_file_bytes=max_bytes, on_field=check_field
        )
    except ClientDisconnect:
        # Nothing was uploaded or published yet: the spool is gone, and there is no one to answer.
        log.info("client_disconnected_mid_upload")
        return Response(status_code=499)
    try:
        prefer_async = "respond-async" in request.headers.get("prefer", "").lower()
        form = build_form(raw.fields, task, prefer_async)
        upload = raw.upload
        if upload is None:
            raise ApiError(400, "the 'file' field is required", code="missing_required_parameter", param="file")
        if upload.size == 0:
            raise ApiError(400, "the file is empty", code="empty_file", param="file")
        ref = reference(gw.settings, new_event_id(), form, upload)
        ref = await gw.submitter.upload(ref, upload)
    finally:
        raw.close()
    gw.metrics.upload_bytes.inc(ref.object.size_bytes or 0)
    future = gw.hub.expect(ref.event_id)
    try:
        await gw.submitter.publish(ref)
        log.info(
            "request_published",
            event_id=ref.event_id,
            profile=form.model,
            task=task.value,
            bytes=ref.object.size_bytes,
            respond_async=form.respond_async,
        )
        if form.respond_async:
            gw.store.remember(ref.event_id, form)
            gw.metrics.outcomes.labels("accepted_async").inc()
            return _accepted(ref.event_id, task)
        try:
            result = await asyncio.wait_for(asyncio.shield(future), gw.settings.gateway_request_timeout_s)
        except TimeoutError:
            gw.store.remember(ref.event_id, form)
            gw.metrics.outcomes.labels("timeout").inc()
            raise ApiError(
                504,
                f"no result within {gw.settings.gateway_request_timeout_s:g} s; it is still being processed: "
                f"GET /v1/audio/{_path(task)}/{ref.event_id} fetches it later",
                code="timeout",
                event_id=ref.event_id,
            ) from None
    finally:
        gw.hub.forget(ref.event_id, future)
    gw.metrics.outcomes.labels(result.kind).inc()
    return _answer(result, form)


async def fetch(request: Request) -> Response:
    """GET /v1/audio/{transcriptions|translations}/{event_id}: the result if this replica has seen it."""
    gw: Gateway = request.app.state.gateway
    gw.keys.check(request.headers.get("authorization"))
    event_id = request.path_params["event_id"]
    known = gw.store.request(event_id)
    fmt = request.query_params.get("response_format")
    if fmt is not None:
        check_field("response_format", fmt)
    result = gw.store.get(event_id)
    if result is None:
        if known is not None:
            return JSONResponse(
                {"id": event_id, "object": "audio.job", **job_state(gw.store.state(event_id))},
                status_code=202,
                headers={"X-Event-Id": event_id, "Retry-After": "1"},
            )
        hint = "" if event_id.startswith(ID_PREFIX) else f" (gateway ids start with {ID_PREFIX!r})"
        raise ApiError(
            404,
            f"no result for {event_id!r} on this gateway: not done yet, unknown, or evicted{hint}",
            code="not_found",
            param="event_id",
            event_id=event_id,
        )
    form = known or TranscriptionForm(model="whisper-1", task=Task.TRANSCRIBE)
    if fmt is not None or known is None:
        words = result.transcript is not None and any(seg.words for seg in result.transcript.segments)
        form = form.model_copy(
            update={
                "response_format": fmt or form.response_format,
                "timestamp_granularities": form.timestamp_granularities or ((Granularity.WORD,) if words else ()),
            }
        )
    return _answer(result, form)


def job_state(event: StatusEvent | None) -> dict[str, object]:
    """An async job's state for a GET before its result: from the workers' StatusEvents (docs/GATEWAY.md).

    ``queued`` until a worker takes it, then ``in_progress`` with ``progress`` (0-100, the share of the
    audio transcribed) and the ``step``; ``redelivered`` once a second worker run has started.
    """
    if event is None:
        return {"status": "queued", "progress": 0}
    body: dict[str, object] = {
        "status": "in_progress",
        "state": event.state.value,
        "progress": round(100 * event.progress, 1),
        "attempt": event.attempt,
    }
    if event.step is not None:
        body["step"] = event.step.value
    if event.audio_s is not None:
        body["audio_seconds"] = round(event.audio_s, 1)
    return body


def _answer(result: Result, form: TranscriptionForm) -> Response:
    headers = {"X-Event-Id": result.event_id or ""}
    if result.dead_letter is not None:
        raise from_dead_letter(result.dead_letter)
    assert result.transcript is not None
    body = render(result.transcript.to_transcript(), form.response_format, form.granularities())
    return Response(body, media_type=_MEDIA_TYPES[form.response_format], headers=headers)


def _accepted(event_id: str, task: Task) -> JSONResponse:
    url = f"/v1/audio/{_path(task)}/{event_id}"
    return JSONResponse(
        {"id": event_id, "object": "audio.job", "status": "queued", "url": url},
        status_code=202,
        headers={"Location": url, "X-Event-Id": event_id},
    )


def _path(task: Task) -> str:
    return "translations" if task is Task.TRANSLATE else "transcriptions"
