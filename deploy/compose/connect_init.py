"""connect-init of compose.yml's `downstream` profile: the tested connectors, put on compose's Kafka Connect.

    python connect_init.py        (in the fwv2 image; compose.yml mounts this file and deploy/connect/)

deploy/connect/*.json are the connector configurations the embedded stack's tests run (127.0.0.1, its
ports). Only the addresses and the database credentials differ in compose, so this job reads those very
files and changes just these keys before it PUTs each one to /connectors/NAME/config (idempotent):

- `connection.url`: the host and port of the JDBC URL become POSTGRES_ADDRESS (database and options kept);
- every `*.apicurio.registry.url`: scheme, host and port become REGISTRY_URL (the API path kept);
- `connection.username` and `connection.password`: POSTGRES_USER and POSTGRES_PASSWORD.

A connector whose transform the Connect worker does not offer is skipped with a note, not failed: Debezium's
image carries no ToJSON transform (kafka-connect-transform-common), which `transcripts-document` needs.
Each connector put is then awaited until it and its task run; a FAILED one fails the job with its trace.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CONNECT_URL = os.environ.get("CONNECT_URL", "http://connect:8083").rstrip("/")
CONNECTORS_DIR = Path(os.environ.get("CONNECTORS_DIR", "/etc/fwv2/connect"))
DEADLINE_S = 120


def request(method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(  # noqa: S310 - the compose service's URL
        CONNECT_URL + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310
        text = response.read().decode()
    return json.loads(text) if text else None


def patiently(method: str, path: str, body: Any = None, retry: tuple[int, ...] = (409, 503)) -> Any:
    """Until Connect answers: it may still be joining its group (409 while it rebalances)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            return request(method, path, body)
        except urllib.error.HTTPError as exc:
            if exc.code not in retry or time.monotonic() > deadline:
                detail = exc.read().decode(errors="replace")[:2000]
                raise SystemExit(f"{method} {path}: HTTP {exc.code}: {detail}") from exc
        except OSError as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"{method} {path}: {exc}") from exc
        time.sleep(1)


def for_compose(config: dict[str, str]) -> dict[str, str]:
    """The embedded stack's configuration with compose's addresses and database credentials."""
    out = dict(config)
    postgres = os.environ["POSTGRES_ADDRESS"]
    registry = os.environ["REGISTRY_URL"].rstrip("/")
    if "connection.url" in out:
        url = out["connection.url"]
        out["connection.url"] = re.sub(r"^(jdbc:postgresql://)[^/?]+", lambda m: m.group(1) + postgres, url)
    for key, value in config.items():
        if key.endswith("apicurio.registry.url"):
            out[key] = re.sub(r"^https?://[^/]+", lambda _: registry, value)
    out["connection.username"] = os.environ["POSTGRES_USER"]
    out["connection.password"] = os.environ["POSTGRES_PASSWORD"]
    return out


def missing_plugins(config: dict[str, str], offered: set[str]) -> list[str]:
    """Classes the configuration names (connector, converters, transforms) that the worker does not offer.

    /connector-plugins?connectorsOnly=false lists the worker's own transforms and converters too, each
    `$Value` / `$Key` variant by its own name.
    """
    named = [config["connector.class"]]
    named += [v for k, v in config.items() if k in ("key.converter", "value.converter")]
    aliases = [a.strip() for a in config.get("transforms", "").split(",") if a.strip()]
    named += [config[f"transforms.{alias}.type"] for alias in aliases]
    return [c for c in named if c not in offered]


def wait_running(name: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = patiently("GET", f"/connectors/{name}/status", retry=(404, 409, 503))
        states = [status.get("connector", {}).get("state")] + [t.get("state") for t in status.get("tasks", [])]
        if "FAILED" in states:
            raise SystemExit(f"connector {name} failed: {json.dumps(status)[:4000]}")
        if status.get("tasks") and set(states) == {"RUNNING"}:
            print(f"connector {name}: running")
            return
        time.sleep(1)
    raise SystemExit(f"connector {name} was not running within {DEADLINE_S} s: {json.dumps(status)[:2000]}")


def main() -> int:
    offered = {p["class"] for p in patiently("GET", "/connector-plugins?connectorsOnly=false")}
    put = []
    for path in sorted(CONNECTORS_DIR.glob("*.json")):
        name, config = path.stem, for_compose(json.loads(path.read_text()))
        missing = missing_plugins(config, offered)
        if missing:
            print(f"connector {name}: skipped, Connect offers no {', '.join(missing)} (see compose.yml, connect)")
            continue
        patiently("PUT", f"/connectors/{name}/config", config)
        put.append(name)
    for name in put:
        wait_running(name)
    print(f"connectors on {CONNECT_URL}: {', '.join(put) or 'none'}")
    return 0 if put else 1


if __name__ == "__main__":
    sys.exit(main())
