"""Running a worker process: load the model, serve health and metrics, join the group, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import weakref
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version

from consumer.plumbing.health import HealthState, diarization_state, serve
from consumer.plumbing.logs import get_logger
from consumer.plumbing.settings import WorkerSettings
from consumer.worker.gpu import GpuMemory
from consumer.worker.loop import Worker
from consumer.worker.metrics import WorkerMetrics
from pipeline.config import EngineConfig
from pipeline.models import choose_model
from pipeline.stage import Pipeline
from pipeline.transcribe import resolve_device

log = get_logger("fwv2.runner")

# Seconds each pipeline's warm-up pass took, for /readyz; a pipeline absent here was never warmed.
_warm_up_s: weakref.WeakKeyDictionary[Pipeline, float] = weakref.WeakKeyDictionary()


def _version() -> str:
    try:
        return version("faster-whisper-v2")
    except PackageNotFoundError:
        return "dev"


def engine_config(settings: WorkerSettings) -> EngineConfig:
    """The settings' engine config, with WHISPER_MODEL=auto resolved against this machine's GPU."""
    config = settings.engine_config()
    if settings.whisper_model != "auto":
        return config
    device = resolve_device(settings.device)
    memory = GpuMemory(settings.device_index).total_bytes() if device == "cuda" else None
    choice = choose_model(settings.whisper_models, memory)
    log.info("model_chosen", model=choice.name, path=choice.path, reason=choice.reason)
    return replace(config, model_path=choice.path, model_name=settings.whisper_model_name or choice.name)


def build_pipeline(settings: WorkerSettings) -> Pipeline:
    """Load the model and run one warm-up pass; done before the worker takes any partition."""
    pipeline = Pipeline(
        engine_config(settings),
        diarization=settings.diarization_config() if settings.enable_diarization else None,
        diarization_min_s=settings.diarization_min_duration_s,
    )
    started = time.perf_counter()
    pipeline.warm_up()
    _warm_up_s[pipeline] = time.perf_counter() - started
    info = pipeline.transcriber.info
    log.info(
        "model_loaded",
        model=info.name,
        device=info.device,
        compute_type=info.compute_type,
        load_s=round(info.load_s, 3),
        warm_up_s=round(_warm_up_s[pipeline], 3),
        diarization=diarization_state(pipeline.diarizer, settings.enable_diarization),
    )
    return pipeline


async def run_worker(
    settings: WorkerSettings, pipeline: Pipeline | None = None, stop: asyncio.Event | None = None
) -> int:
    """Run until SIGTERM/SIGINT (or ``stop``); the event in flight gets SHUTDOWN_GRACE_S to finish."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    metrics = WorkerMetrics()
    state = HealthState()
    # Probes answer from the start: alive while the model loads, ready only after.
    server = await serve(settings.metrics_port, state, metrics) if settings.metrics_port else None
    try:
        if pipeline is None:
            pipeline = await asyncio.to_thread(build_pipeline, settings)
        info = pipeline.transcriber.info
        metrics.model_load.labels(info.name).set(info.load_s)
        diarization = diarization_state(pipeline.diarizer, settings.enable_diarization)
        metrics.set_build_info(
            version=_version(),
            model=info.name,
            device=info.device,
            compute_type=info.compute_type,
            pool=settings.worker_pool,
            diarization=diarization,
        )
        # Every series whose labels are known now exists from the start (consumer/worker/metrics.py says why).
        metrics.expect(
            topics=[t for t in (settings.kafka_input_topic, settings.kafka_notification_topic) if t], model=info.name
        )
        state.diarization = diarization
        state.model_loaded = True
        state.warm_up_s = _warm_up_s.get(pipeline)
        state.model_warm = state.warm_up_s is not None
        worker = Worker(settings, pipeline, metrics=metrics)
        state.last_poll = lambda: worker.last_poll
        state.busy = lambda: not worker.idle.is_set()
        state.assigned = lambda: len(worker.assigned)
        task = asyncio.create_task(worker.run(stop))
        started = asyncio.create_task(worker.started.wait())
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        state.consumer_started = worker.started.is_set()
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        started.cancel()
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
        if not task.cancelled() and task.exception() is not None:
            state.worker_failed = repr(task.exception())
            task.result()  # re-raise what crashed the worker, for a non-zero exit
        return 0
    finally:
        if server is not None:
            server.close()
