"""compose, up for real (issue 14): compose.local.yml on this machine's Docker engine.

`docker-compose -f compose.local.yml up -d` brings up Kafka, MinIO, their init jobs, the schema registry
(Apicurio), compose.yml's router and CPU worker pool and Prometheus with our rules, all on the host's network
(127.0.0.1, ports 39xxx, away from the shared embedded stack). One clip is uploaded to the compose MinIO and
its event produced on the compose Kafka's audio.references: the router hands it to the CPU pool, whose worker
transcribes it. The worker runs in registry mode (issue 16): its schemas are registered under
<topic>-value with the BACKWARD rule in force, and the transcript and the dead letters on the topics are in
the Confluent wire format, 00 and the id the registry gave their subject. Prometheus, through its HTTP API,
scrapes the worker and the router, has loaded every alert of the rules, and takes malformed events to a
pending FWV2DeadLetterRateHigh. `down -v` leaves nothing.
The images come from `bash scripts/images.sh build`; a missing engine or image is a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition

from consumer.plumbing.kafka import partitions_for
from devtools.samples import SAMPLES, make_samples
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ["docker-compose", "-f", str(ROOT / "compose.local.yml")]
# compose.local.yml's default ports (each configurable there).
KAFKA, MINIO, PROMETHEUS, WORKER_METRICS, ROUTER_METRICS, REGISTRY = 39092, 39000, 39090, 39400, 39401, 39081
CCOMPAT = f"http://127.0.0.1:{REGISTRY}/apis/ccompat/v7"
HINT = "run `bash scripts/images.sh build` (installs the engine, builds the images)"


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def compose_logs(project: str) -> str:
    return str(compose(project, "logs", "--tail", "30", check=False).stdout[-6000:])


def compose(project: str, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*COMPOSE, "-p", project, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check:
        assert done.returncode == 0, (
            f"docker-compose {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done


@pytest.fixture(scope="module")
def project() -> Iterator[str]:
    assert subprocess.run(["/usr/bin/docker", "info"], capture_output=True).returncode == 0, f"no Docker engine: {HINT}"
    busy = [
        p
        for p in (KAFKA, KAFKA + 1, MINIO, MINIO + 1, PROMETHEUS, WORKER_METRICS, ROUTER_METRICS, REGISTRY)
        if not port_free(p)
    ]
    assert not busy, f"ports {busy} of compose.local.yml are taken (another compose up?); set FWV2_LOCAL_*_PORT"
    name = f"fwv2ct{uuid.uuid4().hex[:6]}"
    try:
        up = compose(name, "up", "-d", check=False)
        if up.returncode != 0:  # say why: the failing service's own log
            logs = compose(name, "logs", "--tail", "60", check=False)
            pytest.fail(f"docker-compose up -d exited {up.returncode}:\n{up.stderr}\n{logs.stdout[-8000:]}")
        yield name
    finally:
        compose(name, "down", "-v", "--remove-orphans", check=False)
        left = subprocess.run(
            ["/usr/bin/docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={name}"],
            capture_output=True,
            text=True,
        )
        volumes = subprocess.run(
            ["/usr/bin/docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={name}"],
            capture_output=True,
            text=True,
        )
        assert not left.stdout.strip() and not volumes.stdout.strip(), "down -v left containers or volumes behind"


def fwv2(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "fwv2"), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **env},
    )


def raw_records(topic: str) -> list[tuple[bytes | None, bytes]]:
    """Every record's key and value bytes on the compose Kafka's ``topic``, as written."""

    async def read() -> list[tuple[bytes | None, bytes]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=f"127.0.0.1:{KAFKA}", enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in await partitions_for(consumer, topic)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            found: list[tuple[bytes | None, bytes]] = []
            while any([await consumer.position(tp) < end for tp, end in ends.items()]):
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    found += [(r.key, r.value) for r in records]
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())


def confluent_id(value: bytes) -> int:
    """The schema id of a Confluent-framed value (00, a 4-byte big-endian id, the Avro body)."""
    assert value[:1] == b"\x00" and len(value) > 5, value[:16]
    return int.from_bytes(value[1:5], "big")


def alert_state(name: str, **labels: str) -> str:
    for alert in http_json(f"http://127.0.0.1:{PROMETHEUS}/api/v1/alerts")["data"]["alerts"]:
        if alert["labels"]["alertname"] == name and all(alert["labels"].get(k) == v for k, v in labels.items()):
            return alert["state"]
    return "inactive"


def test_compose_up_transcribes_through_the_router_and_prometheus_watches(project: str, tmp_path: Path) -> None:
    def state(service: str) -> str:
        (container,) = compose(project, "ps", "-q", service).stdout.split()
        fmt = "{{.State.Status}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{end}}"
        return subprocess.run(
            ["/usr/bin/docker", "inspect", "-f", fmt, container], capture_output=True, text=True
        ).stdout.strip()

    for service in ("kafka-init", "minio-init"):
        assert state(service) == "exited 0", state(service)
    for service in ("kafka", "minio", "schema-registry", "prometheus"):
        assert state(service) == "running 0 healthy", (service, state(service))
    for port in (WORKER_METRICS, ROUTER_METRICS):
        wait_for(
            f"readyz on {port}",
            lambda p=port: http_json(f"http://127.0.0.1:{p}/readyz")["ok"],
            120,
            every_s=1,
            context=lambda: compose_logs(project),
        )

    # One event, produced on the compose Kafka with its audio in the compose MinIO, through the router.
    clip = make_samples(tmp_path, SAMPLES[:1])["weather"]
    stage = {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{KAFKA}",
        "S3_ENDPOINT": f"127.0.0.1:{MINIO}",
        "KAFKA_INPUT_TOPIC": "audio.references",
        "KAFKA_OUTPUT_TOPIC": "audio.transcripts",
        "KAFKA_DEAD_LETTER_TOPIC": "audio.dead-letters",
        # The worker writes the Confluent wire format: the client looks its schema up in the registry.
        "SCHEMA_REGISTRY_URL": CCOMPAT,
    }
    done = fwv2(
        "submit", str(clip), "--profile", "whisper-1-fast", "--wait", "--format", "json", "--timeout", "180", **stage
    )
    assert done.returncode == 0, done.stdout + done.stderr
    transcript = json.loads(done.stdout.strip().splitlines()[-1])
    assert "sunny" in transcript["text"].lower(), transcript

    # Registry mode: the worker registered both outputs' schemas at start under <topic>-value, the registry
    # enforces BACKWARD (compose's REGISTRY_RULES_GLOBAL_COMPATIBILITY), and the transcript on the topic
    # is framed 00 + the id of its subject's schema.
    subjects = set(http_json(f"{CCOMPAT}/subjects"))
    assert {"audio.transcripts-value", "audio.dead-letters-value"} <= subjects, subjects
    rule = http_json(f"http://127.0.0.1:{REGISTRY}/apis/registry/v2/admin/rules/COMPATIBILITY")
    assert rule["config"] == "BACKWARD", rule
    transcript_id = http_json(f"{CCOMPAT}/subjects/audio.transcripts-value/versions/latest")["id"]
    values = [v for _, v in raw_records("audio.transcripts")]  # a fresh project: this transcript only
    assert len(values) == 1 and confluent_id(values[0]) == transcript_id, values

    # Prometheus: both targets up, every alert of the rules loaded, the routing counted.
    prom = f"http://127.0.0.1:{PROMETHEUS}"

    def targets_up() -> bool:
        active = http_json(f"{prom}/api/v1/targets")["data"]["activeTargets"]
        return {t["labels"]["job"] for t in active if t["health"] == "up"} >= {"fwv2-worker", "fwv2-router"}

    wait_for("worker and router targets up", targets_up, 60, every_s=1, context=lambda: compose_logs(project))
    rules = yaml.safe_load((ROOT / "helm" / "fwv2" / "files" / "prometheus-rules.yml").read_text())
    expected = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    loaded = {
        r["name"]
        for g in http_json(f"{prom}/api/v1/rules")["data"]["groups"]
        for r in g["rules"]
        if r["type"] == "alerting"
    }
    assert loaded == expected

    def routed_to_cpu() -> bool:
        query = urllib.parse.urlencode({"query": 'sum(fwv2_router_routed_total{pool="cpu"}) >= 1'})
        return bool(http_json(f"{prom}/api/v1/query?{query}")["data"]["result"])

    wait_for("the routed event scraped", routed_to_cpu, 60, every_s=1, context=lambda: compose_logs(project))

    # An alert's state: malformed events on audio.references go, unreadable, to the only pool (cpu), whose
    # worker dead-letters them; 30 in a few seconds are over the rule's rate (1 per minute over 15 minutes).
    bad = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "-c",
            "import asyncio, aiokafka\n"
            "async def main():\n"
            f"    p = aiokafka.AIOKafkaProducer(bootstrap_servers='127.0.0.1:{KAFKA}')\n"
            "    await p.start()\n"
            "    for i in range(30):\n"
            "        await p.send_and_wait('audio.references', b'not an event %d' % i)\n"
            "    await p.stop()\n"
            "asyncio.run(main())",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 0, bad.stderr
    wait_for(
        "FWV2DeadLetterRateHigh pending",
        lambda: alert_state("FWV2DeadLetterRateHigh", code="MALFORMED_EVENT", pool="cpu") == "pending",
        150,
        every_s=1,
        context=lambda: compose_logs(project),
    )
    # The dead letters too are Confluent-framed, with the id of their own subject's schema.
    letter_id = http_json(f"{CCOMPAT}/subjects/audio.dead-letters-value/versions/latest")["id"]

    def all_letters() -> list[bytes] | None:
        found = [v for _, v in raw_records("audio.dead-letters")]
        return found if len(found) >= 30 else None

    letters = wait_for(
        "the 30 dead letters",
        all_letters,
        60,
        every_s=1,
        context=lambda: compose_logs(project),
    )
    assert {confluent_id(v) for v in letters} == {letter_id}
