"""Errors in OpenAI's body shape, ``{"error": {"message", "type", "param", "code"}}``, and their statuses."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from consumer.contract.dead_letters import DeadLetter

# A dead letter's code decides what the caller did wrong (4xx) or what went wrong here (5xx).
_DEAD_LETTER_STATUS: dict[str, int] = {
    "UNDECODABLE_AUDIO": 415,
    "EMPTY_AUDIO": 400,
    "OBJECT_TOO_LARGE": 413,
    "AUDIO_TOO_LONG": 413,
    "INVALID_EVENT": 400,
    "UNKNOWN_PROFILE": 400,
    "UNSUPPORTED_LANGUAGE": 400,  # the worker's model is English-only: the caller may ask for `en` or null
    "STORAGE_UNAVAILABLE": 503,
    "RESOURCE_EXHAUSTED": 503,
}

# The form field a 4xx dead letter points at, as OpenAI's `param`.
_PARAMS: dict[str, str] = {
    **dict.fromkeys(("UNDECODABLE_AUDIO", "EMPTY_AUDIO", "OBJECT_TOO_LARGE", "AUDIO_TOO_LONG"), "file"),
    "UNSUPPORTED_LANGUAGE": "language",
}

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class ApiError(Exception):
    """An answer that is an error; raised anywhere in a request, turned into a response in one place."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        param: str | None = None,
        event_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.event_id = event_id

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": _TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error"),
            "param": self.param,
            "code": self.code,
        }
        if self.event_id:
            # Not in OpenAI's shape, and ignored by its SDKs: the id to fetch the result with later.
            error["event_id"] = self.event_id
        return {"error": error}

    def response(self) -> JSONResponse:
        headers = {"X-Event-Id": self.event_id} if self.event_id else None
        if self.status == 401:
            headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def from_dead_letter(letter: DeadLetter) -> ApiError:
    code = letter.code.value
    return ApiError(
        _DEAD_LETTER_STATUS.get(code, 500),
        letter.message,
        code=code.lower(),
        param=_PARAMS.get(code),
        event_id=letter.event_id,
    )
