"""compose.yml's schema registry and its `downstream` profile (issue 16), checked without an engine.

The registry and the workers meet at one URL; Connect's converter and the connectors point at compose's
registry and PostgreSQL, not at the embedded stack's 127.0.0.1 ports, once connect-init
(deploy/compose/connect_init.py) has rewritten deploy/connect/*.json, the very files the embedded stack's
tests run. Neither the registry's nor Debezium's image can be pulled on our machines: the profile is only
resolved here, while compose.local.yml runs a stand-in registry for real (tests/integration/test_compose_up.py).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.tools  # docker-compose resolves the file

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yml"


def resolved(*profiles: str) -> dict[str, Any]:
    args = ["docker-compose", "-f", str(COMPOSE)] + [a for p in profiles for a in ("--profile", p)] + ["config"]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home())}  # the file's own defaults
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr
    services: dict[str, Any] = yaml.safe_load(done.stdout)["services"]
    return services


def connect_init() -> ModuleType:
    spec = importlib.util.spec_from_file_location("connect_init", ROOT / "deploy" / "compose" / "connect_init.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_workers_and_the_gateway_use_the_registry_compose_runs() -> None:
    services = resolved()
    registry = services["schema-registry"]
    (port,) = registry["ports"]
    url = f"http://schema-registry:{port['target']}/apis/ccompat/v7"
    for name in ("worker-cpu", "worker-gpu", "gateway"):
        assert services[name]["environment"]["SCHEMA_REGISTRY_URL"] == url, name
    assert "profiles" not in registry, "registry mode is compose's default, so the registry always runs"


def test_downstream_profile_wiring() -> None:
    services = resolved("downstream")
    connect, init, postgres, sql = (services[n] for n in ("connect", "connect-init", "postgres", "postgres-init"))
    assert connect["environment"]["BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert connect["environment"]["ENABLE_APICURIO_CONVERTERS"] == "true"
    assert connect["depends_on"]["schema-registry"]["condition"] == "service_healthy"
    assert init["depends_on"]["connect"]["condition"] == "service_healthy"
    assert init["depends_on"]["postgres-init"]["condition"] == "service_completed_successfully"
    assert sql["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert postgres["image"].startswith("postgres:15") and sql["image"] == postgres["image"]
    # The same password for the server, the SQL job and the connectors.
    password = postgres["environment"]["POSTGRES_PASSWORD"]
    assert sql["environment"]["PGPASSWORD"] == password == init["environment"]["POSTGRES_PASSWORD"]
    assert sql["environment"]["PGDATABASE"] == postgres["environment"]["POSTGRES_DB"]
    # connect-init reads the tested files themselves, and its addresses are compose's services.
    mounts = {target: source for source, target, _ in (v.split(":") for v in init["volumes"])}
    assert Path(mounts[init["environment"]["CONNECTORS_DIR"]]) == ROOT / "deploy" / "connect"
    assert Path(mounts["/opt/fwv2/connect_init.py"]) == ROOT / "deploy" / "compose" / "connect_init.py"
    assert init["environment"]["POSTGRES_ADDRESS"] == "postgres:5432"
    assert init["environment"]["REGISTRY_URL"] == "http://schema-registry:8080"
    assert init["environment"]["CONNECT_URL"] == f"http://connect:{connect['ports'][0]['target']}"
    assert sql["volumes"] == [f"{ROOT / 'deploy' / 'connect' / 'postgres.sql'}:/etc/fwv2/connect/postgres.sql:ro"]
    assert sql["entrypoint"][-1] == "/etc/fwv2/connect/postgres.sql"


def test_connect_init_rewrites_only_addresses_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    init = resolved("downstream")["connect-init"]["environment"]
    for key in ("POSTGRES_ADDRESS", "POSTGRES_USER", "POSTGRES_PASSWORD", "REGISTRY_URL"):
        monkeypatch.setenv(key, str(init[key]))
    module = connect_init()
    files = sorted((ROOT / "deploy" / "connect").glob("*.json"))
    assert {f.stem for f in files} >= {"transcripts-typed", "transcripts-document"}
    for path in files:
        tested = json.loads(path.read_text())
        ours = module.for_compose(tested)
        changed = {k for k in ours if ours[k] != tested.get(k)}
        allowed = {"connection.url", "connection.username", "connection.password"}
        allowed |= {k for k in tested if k.endswith("apicurio.registry.url")}
        assert changed <= allowed, (path.name, changed - allowed)
        assert "127.0.0.1" not in json.dumps(ours), path.name
        jdbc = ours["connection.url"]
        assert jdbc.startswith("jdbc:postgresql://postgres:5432/fwv2"), jdbc
        assert jdbc.partition("?")[2] == tested["connection.url"].partition("?")[2], "the URL's options are kept"
        assert ours["value.converter.apicurio.registry.url"] == "http://schema-registry:8080/apis/registry/v2"
        assert ours["connection.password"] == init["POSTGRES_PASSWORD"]


def test_connect_init_skips_a_connector_whose_transform_connect_lacks() -> None:
    module = connect_init()
    document = json.loads((ROOT / "deploy" / "connect" / "transcripts-document.json").read_text())
    stock = {
        document["connector.class"],
        document["key.converter"],
        document["value.converter"],
        "org.apache.kafka.connect.transforms.ValueToKey",
        "org.apache.kafka.connect.transforms.HoistField$Value",
    }
    to_json = "com.github.jcustenborder.kafka.connect.transform.common.ToJSON$Value"
    assert module.missing_plugins(document, stock) == [to_json]
    assert module.missing_plugins(document, stock | {to_json}) == []
