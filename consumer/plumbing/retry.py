"""Waiting out a retriable failure, the same way in every process."""

from __future__ import annotations

import random

from consumer.plumbing.settings import RetrySettings


class Abandoned(Exception):  # noqa: N818 - a control-flow signal, not a failure of the event
    """The process is stopping: leave the event unpublished and uncommitted for the next owner."""


def backoff(settings: RetrySettings, attempt: int) -> float:
    """Exponential backoff, capped, with "equal jitter": uniform in [ceiling / 2, ceiling]."""
    ceiling = min(settings.retry_backoff_max_s, settings.retry_backoff_s * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret
