"""Running a worker process: load the model, join the group, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from consumer.logs import get_logger
from consumer.settings import Settings
from consumer.worker import Worker
from pipeline.stage import Pipeline

log = get_logger("fwv2.runner")


def build_pipeline(settings: Settings) -> Pipeline:
    """Load the model and run one warm-up pass; done before the worker takes any partition."""
    pipeline = Pipeline(
        settings.engine_config(),
        enable_diarization=settings.enable_diarization,
        diarization_min_s=settings.diarization_min_duration_s,
    )
    pipeline.transcriber.warm_up()
    info = pipeline.transcriber.info
    log.info("model_loaded", model=info.name, device=info.device, compute_type=info.compute_type, load_s=round(info.load_s, 3))
    return pipeline


async def run_worker(settings: Settings, pipeline: Pipeline | None = None, stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop``); the event in flight gets SHUTDOWN_GRACE_S to finish."""
    pipeline = pipeline or await asyncio.to_thread(build_pipeline, settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    worker = Worker(settings, pipeline)
    task = asyncio.create_task(worker.run(stop))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not task.done():
        log.info("draining", grace_s=settings.shutdown_grace_s)
        try:
            await asyncio.wait_for(asyncio.shield(task), settings.shutdown_grace_s)
        except TimeoutError:
            # The event in flight is abandoned uncommitted; the partition's next owner redoes it.
            log.warning("grace_period_expired", grace_s=settings.shutdown_grace_s)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if not task.cancelled():
        task.result()  # re-raise what crashed the worker, for a non-zero exit
    return 0
