"""The gateway on real parts: genuine Kafka and MinIO, an in-process worker, real uvicorn on a free port.

The stack, model, sample and settings fixtures are tests/integration's, imported here so that these
tests run on exactly the same parts (and reuse a running embedded stack).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from openai import AsyncOpenAI

from consumer.gateway.server import serve_in_thread
from devtools.settings import DevSettings
from pipeline.stage import Pipeline
from tests.integration.conftest import (  # noqa: F401 - fixtures, used by name
    pipeline,
    reader,
    registry_url,
    running_worker,
    samples,
    settings,
    stack,
)

pytestmark = pytest.mark.integration


@asynccontextmanager
async def running_gateway(settings: DevSettings) -> AsyncIterator[str]:
    """A gateway in its own thread and event loop (as in production, a process of its own); its base URL."""
    served = serve_in_thread(settings)
    url = await asyncio.to_thread(served.__enter__)
    try:
        yield url
    finally:
        await asyncio.to_thread(served.__exit__, None, None, None)


def openai_client(url: str, api_key: str = "unused", timeout: float = 300) -> AsyncOpenAI:
    # max_retries=0: the SDK retries 5xx answers, and a retried upload is a second transcription.
    return AsyncOpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=timeout)


@dataclass(frozen=True)
class Served:
    url: str
    settings: DevSettings
    client: AsyncOpenAI


@pytest.fixture
async def served(settings: DevSettings, pipeline: Pipeline) -> AsyncIterator[Served]:
    """A worker and a gateway on this test's fresh topics."""
    s = settings.model_copy(update={"gateway_request_timeout_s": 240.0})
    async with running_worker(s, pipeline), running_gateway(s) as url:
        client = openai_client(url)
        try:
            yield Served(url, s, client)
        finally:
            await client.close()
