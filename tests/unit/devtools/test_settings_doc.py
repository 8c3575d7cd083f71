"""docs/SETTINGS.md is what devtools/settings_doc.py writes from the settings' own fields, today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devtools import settings_doc
from devtools.settings import REPO_ROOT, DevSettings

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "SETTINGS.md"
REGENERATE = "python -m devtools.settings_doc > docs/SETTINGS.md"


def test_the_settings_reference_is_current() -> None:
    assert DOC.read_text() == settings_doc.render(), f"docs/SETTINGS.md is out of date: run `{REGENERATE}`"


def test_the_module_writes_the_reference() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devtools.settings_doc"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == DOC.read_text()


def test_every_field_has_a_row_named_by_its_environment_variable() -> None:
    text = settings_doc.render()
    for name in DevSettings.model_fields:
        assert text.count(f"| `{name.upper()}` |") == 1, name
    listed = [name for _, names in settings_doc.sections() for name in names]
    assert sorted(listed) == sorted(DevSettings.model_fields)
    assert {title for title, _ in settings_doc.sections()} >= {"Kafka", "Object storage", "Inference", "Gateway"}


def test_the_variable_is_the_one_the_settings_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, field in (("kafka_group_id", "fwv2-gpu"), ("max_attempts", "3"), ("allowed_buckets", "a,b")):
        monkeypatch.setenv(settings_doc.env_name(name, DevSettings.model_fields[name]), field)
    settings = DevSettings(_env_file=None)
    assert (settings.kafka_group_id, settings.max_attempts, settings.allowed_buckets) == ("fwv2-gpu", 3, ["a", "b"])


def test_secrets_are_masked_and_defaults_are_the_same_on_every_machine() -> None:
    text = settings_doc.render()
    for name, field in DevSettings.model_fields.items():
        default = field.default
        if hasattr(default, "get_secret_value"):
            assert default.get_secret_value() not in text, f"{name}'s default is shown"
    assert f"| `S3_SECRET_KEY` | secret | `{settings_doc.MASK}` |" in text
    assert str(REPO_ROOT) not in text and str(Path.home()) not in text
    assert "| `STACK_DIR` | path | `<repository>/.stack` |" in text
    assert "| `CACHE_DIR` | path | `~/.cache/fwv2` |" in text


def test_types_bounds_and_choices() -> None:
    text = settings_doc.render()
    assert "| `MAX_ATTEMPTS` | integer ≥ 1 | `8` |" in text
    assert "| `BEAM_SIZE` | integer ≥ 1, optional | unset |" in text
    assert "| `PROCESSING_GUARANTEE` | `at_least_once` \\| `exactly_once` | `at_least_once` |" in text
    assert (
        '| `NOTIFY_PREFIX_RULES` | JSON object, string → {profile, diarization, language} | `{"incoming/": {}}` |'
        in text
    )
    assert "| `ROUTER_POOLS` | comma-separated list of `gpu` \\| `cpu` | `gpu,cpu` |" in text


def test_every_group_is_in_the_reference_with_the_services_that_read_it() -> None:
    text = settings_doc.render()
    assert "## Routing\n\nBetween the GPU and CPU pools" in text
    assert "Read by `fwv2 router` (`RoutingSettings`)" in text
    assert "Read by `fwv2 worker`, `fwv2 router`, `fwv2 gateway` (`KafkaSettings`)" in text
    assert "Read only by the developer's tools (`StackSettings`)" in text
