"""Waiting in tests for something another process does: one helper for threads, one for the event loop.

Both poll a check until it holds, and fail with what was awaited and, where a caller can give it, the
log that explains why not (a container's, a server's). Neither asserts how long something took.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_for(
    what: str,
    check: Callable[[], T],
    timeout_s: float,
    *,
    every_s: float = 0.5,
    context: Callable[[], str] | None = None,
) -> T:
    """The first truthy result of ``check``; an OSError (a port not yet open) counts as not yet."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last = result
        except OSError as exc:
            last = exc
        time.sleep(every_s)
    pytest.fail(f"{what}: not within {timeout_s:.0f} s (last: {last!r})\n{context() if context else ''}")


async def eventually(
    what: str, check: Callable[[], bool | Awaitable[bool]], timeout_s: float = 20.0, *, every_s: float = 0.05
) -> None:
    """Poll ``check`` (plain or async) on the event loop until it holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(every_s)
