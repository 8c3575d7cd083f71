"""WHISPER_MODEL=auto: the seed's memory rule over local directories, never a download."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.plumbing.settings import Settings
from consumer.worker.runner import engine_config
from pipeline.models import GIB, choose_model, wanted_model


@pytest.mark.parametrize(
    ("memory", "model"),
    [
        (None, "base"),
        (4 * GIB, "base"),
        (8 * GIB, "base"),
        (8 * GIB + 1, "medium"),
        (16 * GIB, "medium"),
        (24 * GIB, "large-v3"),
        (80 * GIB, "large-v3"),
    ],
)
def test_the_seeds_rule(memory: int | None, model: str) -> None:
    assert wanted_model(memory) == model


def _model(root: Path, name: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "model.bin").write_bytes(b"")


def test_the_wanted_model_when_it_is_there(tmp_path: Path) -> None:
    for name in ("large-v3", "medium", "base"):
        _model(tmp_path, name)
    choice = choose_model(tmp_path, 40 * GIB)
    assert (choice.name, choice.path) == ("large-v3", str(tmp_path / "large-v3"))


def test_the_next_smaller_one_present_and_why(tmp_path: Path) -> None:
    _model(tmp_path, "base")
    choice = choose_model(tmp_path, 40 * GIB)
    assert choice.name == "base" and "large-v3 is not in" in choice.reason
    assert choose_model(tmp_path, None).name == "base"


def test_the_bundled_model_when_nothing_is_there(tmp_path: Path) -> None:
    _model(tmp_path, "large-v3")  # larger than wanted: never chosen for a small device
    choice = choose_model(tmp_path, 4 * GIB)
    assert choice.path is None and choice.name == "tiny.en"


def test_auto_on_this_cpu_machine_resolves_from_the_settings(tmp_path: Path) -> None:
    _model(tmp_path, "base")
    config = engine_config(Settings(whisper_model="auto", whisper_models_dir=tmp_path, device="cpu"))
    assert config.model_path == str(tmp_path / "base") and config.model_name == "base"
    fixed = engine_config(Settings(whisper_model=str(tmp_path / "base"), device="cpu"))
    assert fixed.model_path == str(tmp_path / "base")
