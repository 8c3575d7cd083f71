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
ADDRESSES = {"KAFKA_BOOTSTRAP_SERVERS", "S3_ENDPOINT", "METRICS_PORT"}
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
    assert set(local) == {"kafka", "kafka-init", "minio", "minio-init", "router", "worker-cpu", "prometheus"}
    assert "grafana" in resolved("compose.yml")
    # Away from the shared embedded stack's ports.
    text = (ROOT / "compose.local.yml").read_text()
    assert ":-19" not in text and ":-29" not in text and ":-39092}" in text and ":-39000}" in text
