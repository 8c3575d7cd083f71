"""compose.local.yml, the compose file that comes up on our machines (tests/integration/test_compose_up.py),
stays compose.yml's stage: its router and CPU pool differ from compose.yml's only where host networking
and the missing registry make them (addresses, ports, one replica, the init jobs they wait for).
Checked with Debian's docker-compose 1.29 (`config`), no engine needed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.tools  # docker-compose resolves both files

ROOT = Path(__file__).resolve().parents[2]
# What compose.local.yml may set differently, and why: the services reach each other on 127.0.0.1.
ADDRESSES = {"KAFKA_BOOTSTRAP_SERVERS", "S3_ENDPOINT", "METRICS_PORT", "SCHEMA_REGISTRY_URL"}
LOCAL_ONLY = {"network_mode", "depends_on", "build"}


def resolved(*files: str) -> dict:
    args = ["docker-compose"] + [a for f in files for a in ("-f", str(ROOT / f))] + ["config"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)["services"]


def test_local_stage_services_are_compose_ymls() -> None:
    upstream, local = resolved("compose.yml"), resolved("compose.local.yml")
    for name in ("router", "worker-cpu"):
        ours, theirs = dict(local[name]), dict(upstream[name])
        assert ours.pop("network_mode") == "host"
        env_ours, env_theirs = ours.pop("environment"), theirs.pop("environment")
        assert set(env_ours) == set(env_theirs), name
        assert {k for k in env_ours if env_ours[k] != env_theirs[k]} <= ADDRESSES, name
        if name == "worker-cpu":
            assert ours["deploy"].pop("replicas") == 1  # replicas on one host would share the metrics port
            theirs["deploy"].pop("replicas")
        for key in LOCAL_ONLY:
            ours.pop(key, None)
            theirs.pop(key, None)
        assert ours == theirs, name


def test_every_local_service_is_on_the_host_network_and_grafana_stays_in_compose_yml() -> None:
    local = resolved("compose.local.yml")
    assert all(svc.get("network_mode") == "host" and "ports" not in svc for svc in local.values())
    assert set(local) == {
        "kafka",
        "kafka-init",
        "minio",
        "minio-init",
        "schema-registry",
        "router",
        "worker-cpu",
        "prometheus",
    }
    assert "grafana" in resolved("compose.yml")
    # Away from the shared embedded stack's ports.
    text = (ROOT / "compose.local.yml").read_text()
    assert ":-19" not in text and ":-29" not in text and ":-39092}" in text and ":-39000}" in text


def test_local_registry_is_compose_ymls_and_the_worker_uses_it() -> None:
    """The stand-in registry keeps compose.yml's rule and healthcheck; the worker runs in registry mode against it."""
    upstream, local = resolved("compose.yml")["schema-registry"], resolved("compose.local.yml")["schema-registry"]
    rule = "REGISTRY_RULES_GLOBAL_COMPATIBILITY"
    assert local["environment"][rule] == upstream["environment"][rule] == "BACKWARD"
    port = local["environment"]["HTTP_PORT"]
    assert local["environment"]["QUARKUS_HTTP_HOST"] == "127.0.0.1"
    assert local["healthcheck"]["test"] == [t.replace("/8080 ", f"/{port} ") for t in upstream["healthcheck"]["test"]]
    worker = resolved("compose.local.yml")["worker-cpu"]
    assert worker["environment"]["SCHEMA_REGISTRY_URL"] == f"http://127.0.0.1:{port}/apis/ccompat/v7"
    assert worker["depends_on"]["schema-registry"]["condition"] == "service_healthy"
