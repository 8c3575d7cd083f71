"""The installed diarization weights, for the tools and tests here: their paths come from the settings.

``Settings`` is the one owner of model paths (DIARIZATION_MODELS_DIR, else CACHE_DIR/models, where
scripts/setup.sh installs them); ``pipeline/`` reads no environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from consumer.plumbing.settings import Settings
from pipeline.diarization import DiarizationConfig


def models_dir() -> Path:
    return Settings().diarization_models


def installed_config(**overrides: Any) -> DiarizationConfig:
    """DiarizationConfig's defaults on the installed weights; ``overrides`` as DiarizationConfig takes them."""
    installed = Settings().diarization_config()
    paths = {"segmentation_path": installed.segmentation_path, "embedding_path": installed.embedding_path}
    return DiarizationConfig(**{**paths, **overrides})
