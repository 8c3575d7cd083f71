"""Our alert rules on a real Prometheus, against a real worker process (issue 14).

Debian's `prometheus` (2.42) scrapes a fresh `fwv2 worker` every second and evaluates
helm/fwv2/files/prometheus-rules.yml (the one copy) every second. The worker reads fresh topics on the shared Kafka and an
object store of this test's own (a MinIO on free ports, so its outage touches no one else):

1. its first events are malformed: 40 MALFORMED_EVENT dead letters raise FWV2DeadLetterRateHigh
   (pending: its `for:` is 5 minutes) and FWV2ErrorRatioHigh (pending, 10 minutes);
2. the object store stops and 4 good events are dead-lettered STORAGE_UNAVAILABLE (MAX_ATTEMPTS=1):
   FWV2ServerSideDeadLetters, which has no `for:`, fires;
3. the worker is killed: FWV2WorkerDown and FWV2PoolDown follow (pending, 5 minutes).

Before issue 14 none of these left `inactive`: a labelled counter first seen at 40 has no earlier
sample, so increase() and rate() over it were 0. Nothing here is faked: Prometheus, the worker, Kafka
and MinIO are the real programs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer

from devtools.settings import DevSettings
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "helm" / "fwv2" / "files" / "prometheus-rules.yml"
CACHE_DIR = Path(os.environ.get("CACHE_DIR") or Path.home() / ".cache" / "fwv2")
MINIO_USER, MINIO_PASSWORD = "alerts-admin", "alerts-admin-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def log_tail(log: Path) -> str:
    return log.read_text()[-4000:] if log.exists() else ""


class Process:
    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.handle = log.open("w")
        self.proc = subprocess.Popen(args, stdout=self.handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.handle.close()


@pytest.fixture
def own_minio(tmp_path: Path) -> Iterator[tuple[str, Process]]:
    binary = CACHE_DIR / "bin" / "minio"
    assert binary.is_file(), f"{binary} missing: run `.venv/bin/fwv2 stack install`"
    port, console = free_port(), free_port()
    env = {**os.environ, "MINIO_ROOT_USER": MINIO_USER, "MINIO_ROOT_PASSWORD": MINIO_PASSWORD, "MINIO_UPDATE": "off"}
    args = [
        str(binary),
        "server",
        str(tmp_path / "minio"),
        "--address",
        f"127.0.0.1:{port}",
        "--console-address",
        f"127.0.0.1:{console}",
    ]
    minio = Process(args, tmp_path / "minio.log", env)
    endpoint = f"127.0.0.1:{port}"
    wait_for(
        "MinIO ready",
        lambda: urllib.request.urlopen(f"http://{endpoint}/minio/health/ready", timeout=2).status == 200,
        30,
        context=lambda: log_tail(minio.log),
    )
    yield endpoint, minio
    minio.stop()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, Callable[[int], None]]]:
    """A Prometheus with our rules; call the second item with the worker's metrics port to scrape it."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    assert Path(binary).is_file(), "Debian's prometheus is missing: run `bash scripts/setup-deploy-tools.sh`"
    port = free_port()
    config = tmp_path / "prometheus.yml"
    handle: dict[str, Process] = {}

    def start(worker_port: int) -> None:
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(RULES)],
                    # As the rules expect the workers: job="fwv2-worker" and a pool label.
                    "scrape_configs": [
                        {
                            "job_name": "fwv2-worker",
                            "scrape_timeout": "1s",
                            "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"], "labels": {"pool": "cpu"}}],
                        }
                    ],
                }
            )
        )
        args = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        handle["p"] = Process(args, tmp_path / "prometheus.log")

    yield f"http://127.0.0.1:{port}", start
    if "p" in handle:
        handle["p"].stop()


def query(prom: str, expr: str) -> list[dict]:
    return http_json(f"{prom}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")["data"]["result"]


def alert_state(prom: str, name: str, **labels: str) -> str:
    for alert in http_json(f"{prom}/api/v1/alerts")["data"]["alerts"]:
        if alert["labels"]["alertname"] == name and all(alert["labels"].get(k) == v for k, v in labels.items()):
            return alert["state"]
    return "inactive"


def metric(port: int, line_prefix: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(line_prefix + " "):
                return float(line.split()[-1])
    return -1.0


async def produce(settings: DevSettings, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(settings.kafka_input_topic, value)
    finally:
        await producer.stop()


async def test_alerts_fire_on_a_fresh_workers_first_dead_letters(
    settings: DevSettings, own_minio: tuple[str, Process], prometheus: tuple[str, Callable[[int], None]], tmp_path: Path
) -> None:
    endpoint, minio = own_minio
    prom, start_prometheus = prometheus
    worker_port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_INPUT_TOPIC": settings.kafka_input_topic,
        "KAFKA_OUTPUT_TOPIC": settings.kafka_output_topic,
        "KAFKA_DEAD_LETTER_TOPIC": settings.kafka_dead_letter_topic,
        "KAFKA_GROUP_ID": settings.kafka_group_id,
        "S3_ENDPOINT": endpoint,
        "S3_ACCESS_KEY": MINIO_USER,
        "S3_SECRET_KEY": MINIO_PASSWORD,
        "MAX_ATTEMPTS": "1",  # a server-side failure is dead-lettered at once
        "RESULT_CACHE_ENABLED": "false",
        "METRICS_PORT": str(worker_port),
        "WORKER_POOL": "cpu",
        "CPU_THREADS": "2",
        "LOG_FORMAT": "console",
    }
    worker = Process([sys.executable, "-m", "consumer.cli", "worker"], tmp_path / "worker.log", env)
    try:
        start_prometheus(worker_port)
        # The rules are loaded, the worker is scraped, and its dead-letter series are already there at 0.
        groups = wait_for("rules loaded", lambda: http_json(f"{prom}/api/v1/rules")["data"]["groups"], 30)
        loaded = {r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"}
        assert {
            r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r
        } == loaded
        wait_for(
            "worker ready",
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{worker_port}/readyz", timeout=2).status == 200,
            120,
            context=lambda: log_tail(worker.log),
        )
        wait_for(
            "zero series scraped",
            lambda: (
                query(prom, 'fwv2_dead_letters_total{code="MALFORMED_EVENT"} == 0')
                and query(prom, f'fwv2_events_consumed_total{{topic="{settings.kafka_input_topic}"}} == 0')
            ),
            30,
        )
        assert alert_state(prom, "FWV2DeadLetterRateHigh") == "inactive"

        # 1. Input errors: the first events this worker ever sees are malformed.
        await produce(settings, [b"not an event %d" % i for i in range(40)])
        wait_for(
            "40 malformed dead letters",
            lambda: metric(worker_port, 'fwv2_dead_letters_total{code="MALFORMED_EVENT"}') == 40,
            60,
            context=lambda: log_tail(worker.log),
        )
        wait_for(
            "increase() sees the burst",
            lambda: query(prom, 'increase(fwv2_dead_letters_total{code="MALFORMED_EVENT"}[15m]) >= 39'),
            20,
        )
        wait_for(
            "FWV2DeadLetterRateHigh pending",
            lambda: alert_state(prom, "FWV2DeadLetterRateHigh", code="MALFORMED_EVENT", pool="cpu") == "pending",
            20,
        )
        wait_for(
            "FWV2ErrorRatioHigh pending", lambda: alert_state(prom, "FWV2ErrorRatioHigh", pool="cpu") == "pending", 20
        )
        assert alert_state(prom, "FWV2ServerSideDeadLetters") == "inactive"  # input errors are not our side's

        # 2. Server-side errors: the object store goes away, good events cannot be fetched.
        minio.stop()
        events = [
            {"event_id": f"alerts-{uuid.uuid4().hex[:8]}", "object": {"bucket": "audio", "key": f"missing/{i}.wav"}}
            for i in range(4)
        ]
        await produce(settings, [json.dumps(e).encode() for e in events])
        wait_for(
            "4 STORAGE_UNAVAILABLE dead letters",
            lambda: metric(worker_port, 'fwv2_dead_letters_total{code="STORAGE_UNAVAILABLE"}') == 4,
            120,
            context=lambda: log_tail(worker.log),
        )
        wait_for(
            "FWV2ServerSideDeadLetters firing",
            lambda: alert_state(prom, "FWV2ServerSideDeadLetters", code="STORAGE_UNAVAILABLE", pool="cpu") == "firing",
            20,
        )

        # 3. The worker dies: its target goes down.
        worker.stop(signal.SIGKILL)
        wait_for("FWV2WorkerDown pending", lambda: alert_state(prom, "FWV2WorkerDown", pool="cpu") == "pending", 20)
        wait_for("FWV2PoolDown pending", lambda: alert_state(prom, "FWV2PoolDown", pool="cpu") == "pending", 20)
    finally:
        worker.stop()
