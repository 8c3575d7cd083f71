"""What a worker tells its operators: the metrics and the log line of each outcome, and the consumer lag.

The steps that do the work (``consumer.worker.event``, ``consumer.worker.loop``) call here once per
outcome, so the names and labels of what is exported sit in one room (declared in ``metrics.py``).
"""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import IllegalStateError

from consumer.contract.dead_letters import DeadLetter
from consumer.plumbing.logs import get_logger
from consumer.worker.gpu import GpuMemory
from consumer.worker.job import Fetched, Job, Status
from consumer.worker.metrics import WorkerMetrics
from pipeline.errors import StageError
from pipeline.types import DiarizationStatus, Transcript

log = get_logger("fwv2.worker")


def inference_seconds(transcript: Transcript) -> float:
    """The event's inference as wall time: transcription and diarization run side by side, so not their sum.

    0 for a transcript served from the result cache (no inference ran for this event). Falls back to
    whisper's own time for a transcript that carries no wall time (code that does not set inference_s).
    """
    if transcript.cache is not None:
        return 0.0
    if transcript.inference_s > 0 or transcript.transcribe_s <= 0:
        return transcript.inference_s
    return transcript.transcribe_s


class Observer:
    def __init__(self, metrics: WorkerMetrics, gpu: GpuMemory | None, device_index: int) -> None:
        self.metrics = metrics
        self._gpu = gpu
        self._device_index = device_index
        self._lag_updated = 0.0

    def ignored(self) -> None:
        """A bucket notification about nothing this stage watches, committed without an output."""
        self.metrics.notifications_ignored.inc()
        log.debug("notification_ignored", outcome=Status.IGNORED.value)

    def duplicate(self) -> None:
        """An event that already has a transcript, committed without publishing."""
        self.metrics.duplicates.inc()
        log.info("event_duplicate_skipped", outcome=Status.DUPLICATE.value)

    def transcribed(self, job: Fetched, transcript: Transcript, publish_s: float) -> None:
        """A transcript delivered: its metrics and its one ``event_transcribed`` line."""
        self.count_transcript(transcript, job.fetch_s, publish_s)
        log.info(
            "event_transcribed",
            outcome=Status.TRANSCRIBED.value,
            audio_s=round(transcript.duration_s, 3),
            fetch_s=round(job.fetch_s, 4),
            decode_s=round(transcript.decode_s, 4),
            transcribe_s=round(transcript.transcribe_s, 4),
            diarize_s=round(transcript.diarize_s, 4),
            inference_s=round(inference_seconds(transcript), 4),
            publish_s=round(publish_s, 4),
            total_s=round(time.perf_counter() - job.started, 4),
            diarization=transcript.diarization.status.value,
            cache=f"{transcript.cache.tier}/{transcript.cache.matched_by}" if transcript.cache else None,
            warnings=list(transcript.warnings),
            attempts=job.attempt,
        )

    def count_transcript(self, transcript: Transcript, fetch_s: float, publish_s: float) -> None:
        m = self.metrics
        if transcript.cache is not None:  # served from the result cache: no decode or inference to count
            m.step_duration.labels("fetch").observe(fetch_s)
            m.step_duration.labels("publish").observe(publish_s)
            m.published.labels(Status.TRANSCRIBED.value).inc()
            return
        with_diarization = str(transcript.diarization.status is DiarizationStatus.APPLIED).lower()
        m.transcription_duration.labels(transcript.model, transcript.profile, with_diarization).observe(
            inference_seconds(transcript)
        )
        m.audio_seconds.labels(transcript.profile).inc(transcript.duration_s)
        # transcribe and diarize are each step's own time: they overlap, so they do not add up to the
        # event's inference (that is transcription_duration_seconds).
        for step, seconds in (
            ("fetch", fetch_s),
            ("decode", transcript.decode_s),
            ("transcribe", transcript.transcribe_s),
            ("diarize", transcript.diarize_s),
            ("publish", publish_s),
        ):
            if step != "diarize" or transcript.diarize_s > 0:
                m.step_duration.labels(step).observe(seconds)
        m.published.labels(Status.TRANSCRIBED.value).inc()
        if self._gpu is not None and (used := self._gpu.used_bytes()) is not None:
            m.gpu_memory.labels(str(self._device_index)).set(used)

    def dead_lettered(self, job: Job, letter: DeadLetter, exc: Exception) -> None:
        """A dead letter delivered: counted by code, and logged with the traceback of any unforeseen error."""
        self.metrics.dead_letters.labels(letter.code).inc()
        self.metrics.published.labels(Status.DEAD_LETTERED.value).inc()
        level = log.error if letter.code in ("INTERNAL_ERROR", "TRANSCRIPTION_FAILED") else log.warning
        level(
            "event_dead_lettered",
            outcome=Status.DEAD_LETTERED.value,
            code=letter.code,
            error=letter.message,
            exception_type=letter.exception_type,
            attempts=job.attempt,
            total_s=round(time.perf_counter() - job.started, 4),
            exc_info=not isinstance(exc, StageError),
        )

    async def update_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Records behind each assigned partition's end, at most once a second."""
        if time.monotonic() - self._lag_updated < 1.0:
            return
        self._lag_updated = time.monotonic()
        for tp in list(consumer.assignment()):
            # Checked again after every await: a rebalance can take a partition between two of them,
            # and aiokafka asserts on a partition it no longer holds.
            if tp not in consumer.assignment():
                continue
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await consumer.position(tp)
            except IllegalStateError:  # revoked since; the next assignment resets the set
                continue
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))
