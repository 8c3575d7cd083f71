"""Prometheus metrics of a worker. Label sets are bounded: profiles, codes, steps, partitions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pipeline.errors import ErrorCode
from pipeline.profiles import PROFILES
from pipeline.types import CacheMatch, CacheTier

# The label values known before the first event. Each labelled series is created at 0 when the worker
# starts: a counter whose first sample is already 40 has no earlier sample to rise from, so
# rate()/increase() see nothing and the alerts on it miss the first burst (issue 14).
OUTCOMES = ("transcribed", "dead_lettered")
STEPS = ("fetch", "decode", "transcribe", "diarize", "publish")
CACHE_ERROR_OPS = ((CacheTier.MEMORY, "put"), (CacheTier.S3, "put"), (CacheTier.S3, "get"), (CacheTier.S3, "decode"))

# Inference of one clip runs from tens of milliseconds to many minutes.
_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
_STEP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.registry = r
        # The event's inference as wall time: transcription and diarization run side by side, so
        # their sum would overstate it (78.6 s recorded for 56.1 s). Each one's own time is a step below.
        self.transcription_duration = Histogram(
            "transcription_duration_seconds",
            "Wall seconds of inference per event (transcription and diarization side by side, not their sum).",
            ["model", "profile", "with_diarization"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.gpu_memory = Gauge("gpu_memory_usage_bytes", "GPU memory in use by this process.", ["device"], registry=r)
        self.active = Gauge("active_transcription_requests", "Events being processed now.", registry=r)
        self.consumed = Counter("fwv2_events_consumed", "Input records consumed.", ["topic"], registry=r)
        self.in_progress = Gauge(
            "fwv2_events_in_progress", "Events taken and not yet delivered, by pool.", ["pool"], registry=r
        )
        self.status_events = Counter(
            "fwv2_status_events", "StatusEvents the broker acknowledged, by state.", ["state"], registry=r
        )
        self.status_failures = Counter(
            "fwv2_status_events_failed", "StatusEvents that could not be sent (the events went on).", registry=r
        )
        self.published = Counter("fwv2_events_published", "Outcomes published.", ["outcome"], registry=r)
        self.dead_letters = Counter("fwv2_dead_letters", "Dead letters published, by code.", ["code"], registry=r)
        self.retries = Counter("fwv2_retries", "Retries of retriable failures, by code.", ["code"], registry=r)
        self.registry_unavailable = Counter(
            "fwv2_schema_registry_unavailable",
            "Requests to the schema registry that found it unreachable (each is waited out and retried).",
            registry=r,
        )
        self.duplicates = Counter("fwv2_duplicates_skipped", "Events skipped as already transcribed.", registry=r)
        self.discarded = Counter(
            "fwv2_outcomes_discarded",
            "Outcomes discarded unpublished because the event's partition had moved to another worker.",
            registry=r,
        )
        self.notifications_ignored = Counter(
            "fwv2_notifications_ignored",
            "Bucket notifications naming no new object under a watched prefix.",
            registry=r,
        )
        self.audio_seconds = Counter("fwv2_audio_seconds", "Seconds of audio transcribed.", ["profile"], registry=r)
        self.step_duration = Histogram(
            "fwv2_step_duration_seconds",
            "Seconds per step of one event; transcribe and diarize overlap (each is that step's own time).",
            ["step"],
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.lag = Gauge("fwv2_consumer_lag", "Records behind the partition's end.", ["topic", "partition"], registry=r)
        self.model_load = Gauge("fwv2_model_load_seconds", "Seconds to load the model.", ["model"], registry=r)
        self.last_success = Gauge(
            "fwv2_last_success_timestamp_seconds", "Unix time of the last published outcome.", registry=r
        )
        self.build_info = Gauge(
            "fwv2_build_info",
            "Build, model and diarization of this worker.",
            ["version", "model", "device", "compute_type", "pool", "diarization", "diarization_device"],
            registry=r,
        )
        self.batch_size = Histogram(
            "fwv2_batch_clips",
            "Clips per batched inference pass (BATCH_MAX_CLIPS > 1).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.ready = Gauge("fwv2_worker_ready", "1 when the worker is ready to take events.", registry=r)
        # Result cache: hits by tier and by key (object = ETag and size, content = SHA-256 of the
        # bytes); a miss counts once per tier an event looked in before it ran inference.
        self.cache_hits = Counter(
            "fwv2_cache_hits", "Events served from the result cache.", ["tier", "matched_by"], registry=r
        )
        self.cache_misses = Counter(
            "fwv2_cache_misses", "Events that looked in a result-cache tier and ran inference.", ["tier"], registry=r
        )
        self.cache_errors = Counter(
            "fwv2_cache_errors",
            "Persistent cache operations that failed (the event went on as a miss).",
            ["tier", "op"],
            registry=r,
        )
        self.cache_entries = Gauge("fwv2_cache_entries", "Transcripts in the in-memory result cache.", registry=r)
        self.cache_bytes = Gauge("fwv2_cache_bytes", "Approximate bytes of the in-memory result cache.", registry=r)
        self._zero_known_labels()

    def _zero_known_labels(self) -> None:
        for code in ErrorCode:
            self.dead_letters.labels(code.value)
            self.retries.labels(code.value)
        for outcome in OUTCOMES:
            self.published.labels(outcome)
        for step in STEPS:
            self.step_duration.labels(step)
        for profile in PROFILES:
            self.audio_seconds.labels(profile)
        for tier in CacheTier:
            self.cache_misses.labels(tier.value)
            for match in CacheMatch:
                self.cache_hits.labels(tier.value, match.value)
        for tier, op in CACHE_ERROR_OPS:
            self.cache_errors.labels(tier.value, op)
        for state in ("accepted", "progress", "completed", "dead_lettered"):
            self.status_events.labels(state)

    def expect(self, *, topics: Iterable[str], model: str | None = None) -> None:
        """Create at 0 the series whose labels come from settings and the model: the topics read, and the
        inference histogram of ``model`` for every profile, with and without diarization."""
        for topic in topics:
            self.consumed.labels(topic)
        if model is not None:
            for profile in PROFILES:
                for with_diarization in ("true", "false"):
                    self.transcription_duration.labels(model, profile, with_diarization)

    def set_build_info(
        self, *, version: str, model: str, device: str, compute_type: str, pool: str, diarization: Mapping[str, object]
    ) -> None:
        """fwv2_build_info = 1 with this worker's labels; ``diarization`` is health.diarization_state's dict.

        The diarization labels are the engine and its device, or "off" and "none": the other settings
        (threshold, threads...) are in /readyz and the start-up log, not labels, to keep one series per worker.
        """
        loaded = bool(diarization.get("loaded"))
        engine = str(diarization.get("engine", "unknown")) if loaded else "off"
        diarization_device = str(diarization.get("device", "unknown")) if loaded else "none"
        self.build_info.labels(version, model, device, compute_type, pool, engine, diarization_device).set(1)
