"""Cross-event batching (``BATCH_MAX_CLIPS`` > 1): records gathered so that their short clips share one pass.

The same steps as one record alone, not a twin of the path: each Job is checked and fetched first
(``EventPath.fetch``, which keeps a failure on the Job), the fetched clips share one inference pass
(``Pipeline.process_batch``), and each Job then goes through ``EventPath.handle`` (from the loop).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from consumer.plumbing.settings import WorkerSettings
from consumer.worker.delivery import Delivery
from consumer.worker.event import EventPath
from consumer.worker.job import Decoded, Fetched, Job
from consumer.worker.metrics import WorkerMetrics
from pipeline.stage import Pipeline
from pipeline.types import Transcript


class BatchPath:
    def __init__(
        self,
        settings: WorkerSettings,
        pipeline: Pipeline,
        events: EventPath,
        inference: ThreadPoolExecutor,
        metrics: WorkerMetrics,
        delivery: Callable[[], Delivery],
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.events = events
        self._inference = inference
        self.metrics = metrics
        self._delivery = delivery

    async def gather(self, consumer: AIOKafkaConsumer, records: list[ConsumerRecord]) -> list[ConsumerRecord]:
        """Wait up to BATCH_MAX_WAIT_MS, from the first record, for more to share its pass."""
        deadline = time.monotonic() + self.settings.batch_max_wait_ms / 1000
        while len(records) < self.settings.batch_max_clips and (left := deadline - time.monotonic()) > 0:
            more = await consumer.getmany(
                timeout_ms=max(1, int(left * 1000)), max_records=self.settings.batch_max_clips - len(records)
            )
            records.extend(r for rs in more.values() for r in rs)
        return records

    async def fetch(self, job: Job) -> Job:
        """A decoded Job checked and fetched ahead of the pass; any other, or an event already done, as it is."""
        if isinstance(job, Decoded) and job.event_id not in self.events.done:  # handle() skips a done one
            return await self.events.fetch(job)
        return job

    async def share_pass(self, jobs: list[Job]) -> list[Job]:
        """The Jobs, those whose clips went through one shared pass now carrying their transcripts."""
        pending = [(n, job) for n, job in enumerate(jobs) if isinstance(job, Fetched) and job.blob.hit is None]
        if len(pending) <= 1:
            return jobs
        items = [(job.blob.data, job.request) for _, job in pending]
        await self._delivery().flush()  # no transaction stays open while whisper runs
        loop = asyncio.get_running_loop()
        outcomes = await loop.run_in_executor(self._inference, self.pipeline.process_batch, items)
        self.metrics.batch_size.observe(len(items))
        jobs = list(jobs)
        for (n, job), out in zip(pending, outcomes, strict=True):
            # A clip that failed in the pass is transcribed again alone, in handle().
            jobs[n] = replace(job, transcript=out if isinstance(out, Transcript) else None)
        return jobs
