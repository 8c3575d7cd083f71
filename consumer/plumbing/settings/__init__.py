"""What each process reads from the environment: the groups it uses, and nothing else.

``WorkerSettings``, ``RouterSettings`` and ``GatewaySettings`` are the three services; ``Settings``
is every service group at once, for the client (`fwv2 submit`, `fwv2 tail`) and `fwv2 settings`; the
developer's tools add the embedded stack's group (``devtools.settings.DevSettings``). Each is a
pydantic-settings object composed of the groups in ``groups.py``: a function that needs only Kafka
takes ``KafkaSettings``, and any process's settings can be passed to it. Secrets are ``SecretStr``: they
print as ``**********`` and are never logged.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic_settings import BaseSettings

from consumer.plumbing.settings.groups import (
    CacheSettings,
    DeliverySettings,
    DiarizationSettings,
    HttpSettings,
    InferenceSettings,
    KafkaSettings,
    NotifySettings,
    OpsSettings,
    PrefixRule,
    RegistrySettings,
    RetrySettings,
    RoutingSettings,
    S3Settings,
)
from pipeline.config import EngineConfig, ProfileOverrides
from pipeline.diarization import DiarizationConfig
from pipeline.diarization.spectral import SpectralSettings

__all__ = [
    "GROUPS",
    "PROCESSES",
    "CacheSettings",
    "DeliverySettings",
    "DiarizationSettings",
    "GatewaySettings",
    "HttpSettings",
    "InferenceSettings",
    "KafkaSettings",
    "NotifySettings",
    "OpsSettings",
    "PrefixRule",
    "RegistrySettings",
    "RetrySettings",
    "RouterSettings",
    "RoutingSettings",
    "S3Settings",
    "Settings",
    "WorkerSettings",
]


class WorkerSettings(
    KafkaSettings,
    NotifySettings,
    S3Settings,
    CacheSettings,
    InferenceSettings,
    DiarizationSettings,
    DeliverySettings,
    RetrySettings,
    RegistrySettings,
    OpsSettings,
):
    """`fwv2 worker`: consume, fetch, transcribe, diarize, deliver."""

    @property
    def diarization_models(self) -> Path:
        """Where the diarization weights are: the one place this is decided (pipeline/ reads no environment)."""
        return self.diarization_models_dir or self.cache_dir / "models"

    @property
    def whisper_models(self) -> Path:
        """Where WHISPER_MODEL=auto looks for CTranslate2 models: the one place this is decided."""
        return self.whisper_models_dir or self.cache_dir / "whisper-models"

    def diarization_config(self) -> DiarizationConfig:
        models = self.diarization_models
        return DiarizationConfig(
            segmentation_path=str(models / "pyannote_segmentation_3.0" / "pytorch_model.bin"),
            embedding_path=str(models / "campplus" / "campplus_cn_en_common.pt"),
            pipeline_dir=self.diarization_pipeline_dir,
            hf_token=self.hf_token.get_secret_value() if self.hf_token else None,
            threshold=self.diarization_threshold,
            clustering=self.diarization_clustering,
            spectral=SpectralSettings(merge_cos=self.diarization_merge_cos),
            unit_pass_s=self.diarization_unit_pass_s,
            min_train_s=self.diarization_min_train_s,
            embedding_runtime=self.diarization_embedding_runtime,
            # Diarization follows DEVICE: a GPU worker diarizes on its GPU.
            device=self.device,
            batch_size=self.diarization_batch_size,
            max_speakers=self.diarization_max_speakers,
            segmentation_step=self.diarization_segmentation_step,
            num_threads=self.diarization_threads,
            embedding_workers=self.diarization_embedding_workers,
        )

    def whisper_threads(self) -> int:
        """CPU_THREADS, or when it is 0: every core (CTranslate2's default).

        Diarization runs on its own thread during transcription, but since issue 12 it costs a few
        per cent of whisper's CPU time (onnxruntime, one embedding per segment; docs/DIARIZATION.md):
        reserving it a core would halve whisper for a job that needs a twentieth of one. With the
        pyannote clustering (whose diarization is as long as whisper's work) a core is kept for it.
        """
        if self.cpu_threads or not self.enable_diarization or self.device == "cuda":
            return self.cpu_threads
        if self.diarization_clustering in ("segments", "spectral"):
            return 0
        reserved = self.diarization_threads or 1
        return max(1, (os.cpu_count() or 1) - reserved)

    def engine_config(self) -> EngineConfig:
        """The inference part of the settings, as the pipeline's own typed value."""
        return EngineConfig(
            model_path=self.whisper_model,
            model_name=self.whisper_model_name,
            device=self.device,
            device_index=self.device_index,
            compute_type=self.compute_type,
            cpu_threads=self.whisper_threads(),
            overrides=ProfileOverrides(
                beam_size=self.beam_size,
                best_of=self.best_of,
                patience=self.patience,
                vad_threshold=self.vad_threshold,
                vad_min_silence_ms=self.vad_min_silence_ms,
                vad_speech_pad_ms=self.vad_speech_pad_ms,
            ),
            max_duration_s=self.max_audio_duration_s,
            long_audio_batch_size=self.long_audio_batch_size,
            long_audio_window_s=self.long_audio_window_s,
        )


class RouterSettings(KafkaSettings, RoutingSettings, RetrySettings, OpsSettings):
    """`fwv2 router`: from the input topic to the GPU or CPU pool's topic."""


class GatewaySettings(KafkaSettings, S3Settings, HttpSettings, RegistrySettings, OpsSettings):
    """`fwv2 gateway`: HTTP in, an upload and an event out, the result back."""


# The pydantic mypy plugin synthesises a model_construct per class and calls two of them incompatible
# when diamonds of groups meet; at run time pydantic merges the fields of every base (a unit test checks).
class Settings(WorkerSettings, RouterSettings, GatewaySettings):  # type: ignore[misc]
    """Every service group: the client (`fwv2 submit`, `fwv2 tail`) and `fwv2 settings`.

    The developer's tools add the embedded stack's group (``devtools.settings.DevSettings``).
    """


# The reference's order (docs/SETTINGS.md), and which process reads each group.
GROUPS: tuple[type[BaseSettings], ...] = (
    KafkaSettings,
    S3Settings,
    InferenceSettings,
    DiarizationSettings,
    CacheSettings,
    DeliverySettings,
    RetrySettings,
    RegistrySettings,
    NotifySettings,
    RoutingSettings,
    HttpSettings,
    OpsSettings,
)
PROCESSES: dict[str, type[BaseSettings]] = {
    "worker": WorkerSettings,
    "router": RouterSettings,
    "gateway": GatewaySettings,
    "all": Settings,
}
