"""The images, built and run for real (issue 14): `bash scripts/images.sh` builds them, these tests run them.

Each container runs against the embedded stack (genuine Kafka and MinIO on 127.0.0.1) with host
networking only, as a production platform would run it: the image's own non-root user, a read-only
root filesystem with /tmp on tmpfs, every capability dropped, no-new-privileges, a memory limit.
- the CPU worker image transcribes an event, reports healthy through its HEALTHCHECK, and on SIGTERM
  drains and exits 0;
- the gateway image answers an OpenAI-style upload (transcribed by the worker container);
- the same image as `fwv2 router` routes an event to the CPU pool's topic.
A missing engine or image is a failure, never a skip: scripts/images.sh makes both.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from consumer.plumbing.provision import ensure_topics
from devtools.samples import SAMPLES, make_samples
from devtools.settings import DevSettings
from devtools.stack import EmbeddedStack
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCKER = "/usr/bin/docker"  # another `docker` may stand earlier on PATH
VERSION = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)  # type: ignore[union-attr]
WORKER_IMAGE, GATEWAY_IMAGE = f"fwv2:{VERSION}-cpu", f"fwv2:{VERSION}-gateway"
HINT = "run `bash scripts/images.sh build` (installs the engine, builds the images)"
# What every container of these tests runs with: a production pod's restrictions, host networking only.
HARDENED = [
    "--network",
    "host",
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges:true",
    "--pids-limit",
    "512",
]


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"docker {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def container_logs(name: str) -> str:
    logs = docker("logs", "--tail", "60", name, check=False)
    return str(logs.stdout + logs.stderr)


def inspect(container: str, fmt: str) -> str:
    return docker("inspect", "-f", fmt, container).stdout.strip()


@pytest.fixture(scope="module")
def engine() -> None:
    assert Path(DOCKER).is_file(), f"{DOCKER} missing: {HINT}"
    assert docker("info", check=False).returncode == 0, f"no Docker engine answers: {HINT}"
    for image in (WORKER_IMAGE, GATEWAY_IMAGE):
        assert docker("image", "inspect", image, check=False).returncode == 0, f"{image} not built: {HINT}"


@pytest.fixture(scope="module")
def image_settings(engine: None, stack: EmbeddedStack) -> DevSettings:
    """Fresh topics on the embedded stack (the session's `stack` fixture starts it when it is down)."""
    run = uuid.uuid4().hex[:8]
    s = DevSettings(
        kafka_input_topic=f"images.{run}.in",
        kafka_cpu_topic=f"images.{run}.cpu",
        kafka_gpu_topic=f"images.{run}.gpu",
        kafka_output_topic=f"images.{run}.out",
        kafka_dead_letter_topic=f"images.{run}.dlq",
        kafka_group_id=f"images-{run}",
    )
    topics = [
        s.kafka_input_topic,
        s.kafka_cpu_topic,
        s.kafka_gpu_topic,
        s.kafka_output_topic,
        s.kafka_dead_letter_topic,
    ]
    asyncio.run(ensure_topics(s.kafka_bootstrap_servers, topics, 2, time.monotonic() + 60, lambda _: None))
    return s


def stage_env(s: DevSettings, **extra: str) -> list[str]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
        "KAFKA_INPUT_TOPIC": s.kafka_input_topic,
        "KAFKA_OUTPUT_TOPIC": s.kafka_output_topic,
        "KAFKA_DEAD_LETTER_TOPIC": s.kafka_dead_letter_topic,
        "KAFKA_CPU_TOPIC": s.kafka_cpu_topic,
        "KAFKA_GPU_TOPIC": s.kafka_gpu_topic,
        "S3_ENDPOINT": s.s3_endpoint,
        "S3_ACCESS_KEY": s.s3_access_key.get_secret_value(),
        "S3_SECRET_KEY": s.s3_secret_key.get_secret_value(),
        "CPU_THREADS": "2",
        **extra,
    }
    return [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]


@pytest.fixture(scope="module")
def worker(image_settings: DevSettings) -> Iterator[tuple[str, int]]:
    """The CPU worker image, as the CPU pool runs it: it reads the CPU pool's topic."""
    settings = image_settings
    name, port = f"fwv2-test-worker-{uuid.uuid4().hex[:6]}", free_port()
    docker(
        "run",
        "-d",
        "--name",
        name,
        *HARDENED,
        "--memory",
        "2g",
        "--health-interval",
        "2s",
        *stage_env(
            settings,
            KAFKA_INPUT_TOPIC=settings.kafka_cpu_topic,
            KAFKA_GROUP_ID=settings.kafka_group_id,
            METRICS_PORT=str(port),
            SHUTDOWN_GRACE_S="20",
        ),
        WORKER_IMAGE,
    )
    try:
        yield name, port
    finally:
        docker("rm", "-f", name, check=False)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_samples(tmp_path_factory.mktemp("samples"), SAMPLES[:1])


def test_worker_image_runs_hardened_healthy_and_transcribes(
    image_settings: DevSettings, worker: tuple[str, int], samples: dict[str, Path]
) -> None:
    settings = image_settings
    name, port = worker
    wait_for(
        "HEALTHCHECK healthy",
        lambda: inspect(name, "{{.State.Health.Status}}") == "healthy",
        120,
        every_s=1,
        context=lambda: container_logs(name),
    )
    # The image's own user, numeric and non-root; the root filesystem cannot be written.
    assert docker("exec", name, "id", "-u").stdout.strip() == "10001"
    assert inspect(name, "{{.Config.User}}") == "10001:10001"
    assert inspect(name, "{{.HostConfig.ReadonlyRootfs}}") == "true"
    denied = docker("exec", name, "touch", "/app/written", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert json.loads(inspect(name, "{{json .Config.Healthcheck.Test}}"))[-2:] == [
        "/opt/fwv2/healthcheck.py",
        "/healthz",
    ]
    # An event on the CPU pool's topic, transcribed by the container.
    env = {
        **os.environ,
        "KAFKA_INPUT_TOPIC": settings.kafka_cpu_topic,
        "KAFKA_OUTPUT_TOPIC": settings.kafka_output_topic,
        "KAFKA_DEAD_LETTER_TOPIC": settings.kafka_dead_letter_topic,
    }
    done = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "fwv2"),
            "submit",
            str(samples["weather"]),
            "--profile",
            "whisper-1-fast",
            "--wait",
            "--format",
            "json",
            "--timeout",
            "120",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sunny" in done.stdout.lower(), done.stdout


def test_gateway_image_answers_an_upload(
    image_settings: DevSettings, worker: tuple[str, int], samples: dict[str, Path]
) -> None:
    settings = image_settings
    name, port = f"fwv2-test-gateway-{uuid.uuid4().hex[:6]}", free_port()
    # The gateway publishes to the CPU pool's topic here, which the worker container reads.
    docker(
        "run",
        "-d",
        "--name",
        name,
        *HARDENED,
        "--memory",
        "1g",
        "--health-interval",
        "2s",
        *stage_env(
            settings,
            KAFKA_INPUT_TOPIC=settings.kafka_cpu_topic,
            GATEWAY_HOST="127.0.0.1",
            GATEWAY_PORT=str(port),
            GATEWAY_REQUEST_TIMEOUT_S="120",
        ),
        GATEWAY_IMAGE,
        "gateway",
    )
    try:
        wait_for(
            "gateway healthy",
            lambda: inspect(name, "{{.State.Health.Status}}") == "healthy",
            90,
            every_s=1,
            context=lambda: container_logs(name),
        )
        wait_for(
            "worker healthy",
            lambda: inspect(worker[0], "{{.State.Health.Status}}") == "healthy",
            120,
            every_s=1,
            context=lambda: container_logs(worker[0]),
        )
        done = subprocess.run(
            [
                "curl",
                "-sS",
                "--max-time",
                "150",
                "-F",
                f"file=@{samples['weather']}",
                "-F",
                "model=whisper-1-fast",
                f"http://127.0.0.1:{port}/v1/audio/transcriptions",
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        assert "sunny" in json.loads(done.stdout)["text"].lower(), done.stdout
        stop_and_check_exit(name)
    finally:
        docker("rm", "-f", name, check=False)


def test_router_image_routes_an_event(image_settings: DevSettings) -> None:
    settings = image_settings
    name, port = f"fwv2-test-router-{uuid.uuid4().hex[:6]}", free_port()
    docker(
        "run",
        "-d",
        "--name",
        name,
        *HARDENED,
        "--memory",
        "512m",
        "--health-interval",
        "2s",
        *stage_env(
            settings, ROUTER_POOLS="cpu", ROUTER_GROUP_ID=f"{settings.kafka_group_id}-router", METRICS_PORT=str(port)
        ),
        WORKER_IMAGE,
        "router",
    )
    try:
        wait_for(
            "router healthy",
            lambda: inspect(name, "{{.State.Health.Status}}") == "healthy",
            90,
            every_s=1,
            context=lambda: container_logs(name),
        )
        event = {
            "event_id": f"route-{uuid.uuid4().hex[:8]}",
            "object": {"bucket": "audio", "key": "x.wav"},
            "profile": "whisper-1-fast",
        }
        routed = asyncio.run(route_one(settings, json.dumps(event).encode()))
        assert json.loads(routed) == event  # unchanged, on the CPU pool's topic
        stop_and_check_exit(name)
    finally:
        docker("rm", "-f", name, check=False)


async def route_one(settings: DevSettings, value: bytes) -> bytes:
    consumer = AIOKafkaConsumer(
        settings.kafka_cpu_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.kafka_input_topic, value)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    if record.value == value:
                        return record.value
        pytest.fail("the router did not route the event to the CPU topic within 60 s")
    finally:
        await producer.stop()
        await consumer.stop()


def stop_and_check_exit(name: str) -> None:
    """SIGTERM (docker stop): the process drains and exits 0 well within the grace period."""
    docker("stop", "-t", "60", name, timeout=90)
    assert inspect(name, "{{.State.ExitCode}}") == "0", docker("logs", "--tail", "40", name).stderr
    assert inspect(name, "{{.State.OOMKilled}}") == "false"


def test_worker_drains_on_sigterm_and_exits_0(worker: tuple[str, int]) -> None:
    name, _ = worker
    assert inspect(name, "{{.HostConfig.Memory}}") == str(2 * 1024**3)
    stop_and_check_exit(name)
    logs = docker("logs", name).stdout + docker("logs", name).stderr
    assert "draining" in logs and "worker_stopped" in logs, logs[-3000:]


def test_image_sizes_are_reported() -> None:
    # Printed for the closing note and CI logs; the CPU image carries torch-free inference and tiny.en.
    for image in (WORKER_IMAGE, GATEWAY_IMAGE):
        size = int(docker("image", "inspect", "-f", "{{.Size}}", image).stdout.strip())
        print(f"{image}: {size / 1e6:.0f} MB")
        assert 100e6 < size < 2e9, f"{image} is {size} bytes"


def test_images_hold_no_developers_tools() -> None:
    """Issue 22: the embedded stack, demo, samples and benchmarks stay in the checkout, out of the images."""
    for image in (WORKER_IMAGE, GATEWAY_IMAGE):
        probe = "import importlib.util as u; print([m for m in ('devtools', 'bench', 'tests') if u.find_spec(m)])"
        found = docker("run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", probe)
        assert found.stdout.strip() == "[]", f"{image} holds {found.stdout}"
        demo = docker("run", "--rm", "--network", "none", image, "demo", check=False)
        assert demo.returncode == 2 and "source checkout" in demo.stderr, demo.stderr[-2000:]


def test_chart_runs_the_images_as_built(engine: None) -> None:
    """helm/fwv2 names the images just built, and runs them as they were run above: their user, ports, probes."""
    helm = Path(os.environ.get("CACHE_DIR") or Path.home() / ".cache" / "fwv2") / "bin" / "helm"
    chart = ROOT / "helm" / "fwv2"
    done = subprocess.run(
        [
            str(helm),
            "template",
            "fwv2",
            str(chart),
            "--kube-version",
            "1.34.0",
            "-f",
            str(chart / "ci" / "router-values.yaml"),
            "-f",
            str(chart / "ci" / "gateway-values.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    checked = set()
    for doc in yaml.safe_load_all(done.stdout):
        if not doc or doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        image = container["image"]
        if image.endswith("-cuda"):
            continue  # not buildable here (its bases are only in registries); tests/deploy checks it statically
        assert image in (WORKER_IMAGE, GATEWAY_IMAGE), (
            f"{doc['metadata']['name']} runs {image}, which scripts/images.sh does not build"
        )
        config = json.loads(docker("image", "inspect", "-f", "{{json .Config}}", image).stdout)
        assert config["User"].split(":")[0] == str(pod["securityContext"]["runAsUser"]) == "10001"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        command = container["args"][0]
        effective = dict(
            line.split("=", 1)
            for line in docker("run", "--rm", "--network", "none", image, "settings").stdout.split()
            if "=" in line
        )
        (port,) = container["ports"]
        assert port["containerPort"] == int(effective["GATEWAY_PORT" if command == "gateway" else "METRICS_PORT"])
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" == config["Healthcheck"]["Test"][-1]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        checked.add((image, command))
    assert checked == {(WORKER_IMAGE, "worker"), (WORKER_IMAGE, "router"), (GATEWAY_IMAGE, "gateway")}
