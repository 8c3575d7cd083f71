"""OpenAI's form fields, checked one by one as they arrive, then as one typed request."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from consumer.contract.inputs import parse_granularities
from consumer.gateway.errors import ApiError
from pipeline.profiles import PROFILES
from pipeline.render import FORMATS
from pipeline.types import Granularity, Task

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
GRANULARITY_FIELDS = ("timestamp_granularities[]", "timestamp_granularities")
ASYNC_FIELD = "async"
_TRUE = {"1", "true", "yes", "on"}


class TranscriptionForm(BaseModel):
    """One transcription or translation request, as the caller sent it."""

    model_config = ConfigDict(frozen=True)

    model: str
    task: Task
    language: str | None = None
    prompt: str | None = None
    response_format: ResponseFormat = "json"
    temperature: float | None = Field(None, ge=0, le=1)
    timestamp_granularities: tuple[Granularity, ...] = ()
    respond_async: bool = False

    def granularities(self) -> frozenset[Granularity]:
        return frozenset(self.timestamp_granularities) | {Granularity.SEGMENT}


def check_field(name: str, value: str) -> None:
    """Refuse a bad field the moment it ends, before the rest of the upload is read."""
    if name == "model" and value not in PROFILES:
        raise ApiError(
            400,
            f"unknown model {value!r}; valid models: {', '.join(sorted(PROFILES))}",
            code="model_not_found",
            param="model",
        )
    if name == "response_format" and value not in FORMATS:
        raise ApiError(
            400,
            f"unknown response_format {value!r}; valid formats: {', '.join(FORMATS)}",
            code="invalid_value",
            param="response_format",
        )
    if name in GRANULARITY_FIELDS:
        _granularities([value], name)
    if name == "temperature":
        _temperature(value)


def _temperature(value: str) -> float | None:
    if not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= 1:
        raise ApiError(
            400, f"temperature must be a number from 0 to 1, got {value!r}", code="invalid_value", param="temperature"
        )
    return number


def _granularities(values: list[str], name: str = "timestamp_granularities[]") -> tuple[Granularity, ...]:
    # Each value may be a list itself: OpenAI's SDK sends timestamp_granularities="word,speaker" as it is.
    try:
        return parse_granularities(values)
    except ValueError as exc:
        raise ApiError(400, str(exc), code="invalid_value", param=name) from None


def build_form(fields: dict[str, list[str]], task: Task, prefer_async: bool) -> TranscriptionForm:
    def first(name: str) -> str | None:
        values = fields.get(name)
        return values[0] if values and values[0] != "" else None

    model = first("model")
    if model is None:
        raise ApiError(400, "the 'model' field is required", code="missing_required_parameter", param="model")
    for name, values in fields.items():
        for value in values:
            check_field(name, value)
    granularities = _granularities([v for n in GRANULARITY_FIELDS for v in fields.get(n, [])])
    return TranscriptionForm(
        model=model,
        task=task,
        language=first("language"),
        prompt=first("prompt"),
        response_format=first("response_format") or "json",
        temperature=_temperature(first("temperature") or ""),
        timestamp_granularities=granularities,
        respond_async=prefer_async or (first(ASYNC_FIELD) or "").lower() in _TRUE,
    )
