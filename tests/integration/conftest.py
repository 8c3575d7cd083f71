"""Fixtures on real parts: the embedded stack (genuine Kafka and MinIO) and the bundled model."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from consumer.client import ResultReader
from consumer.plumbing.provision import ensure_topics, stage_topics
from consumer.worker.loop import Worker
from consumer.worker.runner import build_pipeline
from devtools.samples import make_samples
from devtools.settings import DevSettings
from devtools.stack import EmbeddedStack
from pipeline.stage import Pipeline

pytestmark = pytest.mark.integration

PARTITIONS = 3


@pytest.fixture(scope="session")
def stack() -> Iterator[EmbeddedStack]:
    stack = EmbeddedStack(DevSettings(), echo=lambda m: print(m, flush=True))
    already = stack.is_running()
    stack.up()
    yield stack
    if not already:
        stack.down()


@pytest.fixture(scope="session")
def registry_url(stack: EmbeddedStack) -> Iterator[str]:
    """The Confluent-compatible URL of the stack's schema registry (Apicurio), started if it is not running."""
    downstream = EmbeddedStack(DevSettings(), echo=lambda m: print(m, flush=True), extras=["registry"])
    already = downstream.registry.pid() is not None
    downstream.up()
    yield downstream.registry.ccompat_url
    if not already:
        downstream.registry.stop()


@pytest.fixture(scope="session")
def pipeline(stack: EmbeddedStack) -> Pipeline:
    # Two threads: the size of the machines CI runs on.
    return build_pipeline(DevSettings(cpu_threads=2))


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture
async def settings(stack: EmbeddedStack) -> DevSettings:
    """DevSettings on fresh topics and a fresh group, so tests never see each other's events."""
    run = uuid.uuid4().hex[:8]
    s = DevSettings(
        kafka_input_topic=f"test.{run}.in",
        kafka_output_topic=f"test.{run}.out",
        kafka_dead_letter_topic=f"test.{run}.dlq",
        kafka_group_id=f"test-{run}",
        cpu_threads=2,
        retry_backoff_s=0.05,
    )
    loop = asyncio.get_running_loop()
    await ensure_topics(s.kafka_bootstrap_servers, stage_topics(s), PARTITIONS, loop.time() + 30, lambda _: None)
    return s


@asynccontextmanager
async def running_worker(settings: DevSettings, pipeline: Pipeline) -> AsyncIterator[Worker]:
    """A worker of the settings' group, running in this event loop until the block ends."""
    worker = Worker(settings, pipeline)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


@pytest.fixture
async def reader(settings: DevSettings) -> AsyncIterator[ResultReader]:
    async with ResultReader(settings) as r:
        yield r
