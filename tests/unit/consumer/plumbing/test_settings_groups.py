"""Each service loads the settings groups it uses, and only those; every variable keeps its name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from consumer.cli import build_parser
from consumer.plumbing.settings import (
    GROUPS,
    GatewaySettings,
    InferenceSettings,
    KafkaSettings,
    RouterSettings,
    RoutingSettings,
    Settings,
    WorkerSettings,
)


def _fields(*groups: type) -> set[str]:
    return {name for group in groups for name in group.model_fields}  # type: ignore[attr-defined]


def test_the_groups_partition_every_setting() -> None:
    names = [name for group in GROUPS for name in group.__annotations__ if name in Settings.model_fields]
    assert len(names) == len(set(names)), "a setting is in two groups"
    assert set(names) == set(Settings.model_fields)


def test_a_service_reads_only_its_groups() -> None:
    assert "beam_size" not in RouterSettings.model_fields and "beam_size" not in GatewaySettings.model_fields
    assert "router_pools" not in WorkerSettings.model_fields and "gateway_port" not in WorkerSettings.model_fields
    assert _fields(KafkaSettings, RoutingSettings) <= set(RouterSettings.model_fields)
    assert _fields(InferenceSettings) <= set(WorkerSettings.model_fields)


def test_a_bad_value_stops_only_the_service_that_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAM_SIZE", "0")
    monkeypatch.setenv("ROUTER_POOLS", "gpu")
    assert RouterSettings(_env_file=None).router_pools == ["gpu"]
    GatewaySettings(_env_file=None)
    with pytest.raises(ValidationError, match="beam_size"):
        WorkerSettings(_env_file=None)


def test_the_environment_names_are_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"KAFKA_GROUP_ID": "fwv2-gpu", "ALLOWED_BUCKETS": "a, b", "GATEWAY_PORT": "8080"}.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    assert (settings.kafka_group_id, settings.allowed_buckets, settings.gateway_port) == ("fwv2-gpu", ["a", "b"], 8080)
    assert GatewaySettings(_env_file=None).allowed_buckets == ["a", "b"]


@pytest.mark.parametrize(
    ("command", "expected"),
    [("worker", WorkerSettings), ("router", RouterSettings), ("gateway", GatewaySettings), ("tail", Settings)],
)
def test_each_command_loads_its_process_settings(command: str, expected: type) -> None:
    args = build_parser().parse_args([command])
    assert getattr(args, "settings", Settings) is expected
