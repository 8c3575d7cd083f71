"""The stage on the locked-down stack: genuine Kafka with TLS, SASL/SCRAM-SHA-512 and ACLs; MinIO over TLS.

`fwv2 stack up --secure` runs beside the plaintext stack, on its own ports (Kafka 29092, MinIO 29000).
Each test gets fresh topics and a fresh group, with exactly the ACLs the stack grants its principals
(devtools.stack.acls), so a test that takes one away touches nothing else. Workers that must fail are
real `fwv2 worker` processes, whose logs are what an operator reads.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from pydantic import SecretStr

from consumer.client import ResultReader, new_reference, publish_references, upload
from consumer.contract.errors import StorageUnavailableError
from consumer.gateway.server import serve_in_thread
from consumer.plumbing.kafka import make_admin, security_options
from consumer.plumbing.provision import ensure_topics
from consumer.plumbing.storage import BlobStore, make_client
from consumer.router.service import Router, RouterMetrics
from devtools.settings import DevSettings
from devtools.stack import EmbeddedStack
from devtools.stack.acls import (
    Acl,
    Operation,
    Resource,
    create_acls,
    delete_acls,
    gateway_acls,
    router_acls,
    worker_acls,
)
from devtools.stack.secure import SecureLayout, user
from pipeline.stage import Pipeline
from tests.gateway.conftest import openai_client, running_gateway
from tests.integration.conftest import running_worker

pytestmark = pytest.mark.integration

PARTITIONS = 2
RESTRICTED_BUCKET = "restricted"  # exists on the stack, outside the worker's S3 policy


@pytest.fixture(scope="session")
def secure_stack() -> Iterator[EmbeddedStack]:
    stack = EmbeddedStack(DevSettings(), echo=lambda m: print(m, flush=True), secure=True)
    already = stack.is_running()
    stack.up()
    client = make_client(stack.settings)
    if not client.bucket_exists(RESTRICTED_BUCKET):
        client.make_bucket(RESTRICTED_BUCKET)
    yield stack
    if not already:
        stack.down()


@dataclass(frozen=True)
class Principals:
    """This test's topics and group, as each principal of the secure stack sees them."""

    layout: SecureLayout
    admin: DevSettings
    worker: DevSettings  # reads the CPU pool's topic, as a CPU worker behind the router does
    router: DevSettings
    gateway: DevSettings

    def worker_env(self, **overrides: str | None) -> dict[str, str]:
        """The worker's environment on this test's topics; an override of None removes the variable."""
        s = self.worker
        env = {
            **os.environ,
            **self.layout.env("worker"),
            "KAFKA_INPUT_TOPIC": s.kafka_input_topic,
            "KAFKA_OUTPUT_TOPIC": s.kafka_output_topic,
            "KAFKA_DEAD_LETTER_TOPIC": s.kafka_dead_letter_topic,
            "KAFKA_GROUP_ID": s.kafka_group_id,
            "CPU_THREADS": "1",
            "METRICS_PORT": "0",
            "RETRY_BACKOFF_S": "0.2",
            "RETRY_BACKOFF_MAX_S": "1",
            "RESULT_CACHE_ENABLED": "false",
            "LOG_LEVEL": "DEBUG",  # the most a log could say, so the secrets check covers it
        }
        env.update(overrides)
        return {k: v for k, v in env.items() if v is not None}

    def output_write(self) -> list[Acl]:
        return [Acl(f"User:{user('worker')}", Resource.TOPIC, self.worker.kafka_output_topic, Operation.WRITE)]


@pytest.fixture
async def principals(secure_stack: EmbeddedStack) -> Principals:
    layout = secure_stack.secure
    assert layout is not None
    run = uuid.uuid4().hex[:8]
    names = {
        "kafka_input_topic": f"sec.{run}.in",
        "kafka_cpu_topic": f"sec.{run}.cpu",
        "kafka_gpu_topic": f"sec.{run}.gpu",
        "kafka_output_topic": f"sec.{run}.out",
        "kafka_dead_letter_topic": f"sec.{run}.dlq",
        "router_group_id": f"sec-{run}-router",
        "router_gpu_group_id": f"sec-{run}-gpu",
        "cpu_threads": 2,
        "retry_backoff_s": 0.2,
        "retry_backoff_max_s": 1.0,
        "gateway_request_timeout_s": 120.0,
    }
    admin = layout.settings("admin", **names)
    worker = layout.settings(
        "worker",
        **{**names, "kafka_input_topic": names["kafka_cpu_topic"]},
        kafka_group_id=f"sec-{run}-cpu",
        allowed_buckets=["audio", RESTRICTED_BUCKET],
    )
    p = Principals(layout, admin, worker, layout.settings("router", **names), layout.settings("gateway", **names))
    loop = asyncio.get_running_loop()
    topics = [
        names[k]
        for k in (
            "kafka_input_topic",
            "kafka_cpu_topic",
            "kafka_gpu_topic",
            "kafka_output_topic",
            "kafka_dead_letter_topic",
        )
    ]
    await ensure_topics(
        admin.kafka_bootstrap_servers, topics, PARTITIONS, loop.time() + 30, lambda _: None, security_options(admin)
    )
    await _acls(
        admin,
        create_acls,
        [
            *worker_acls(worker, f"User:{user('worker')}"),
            *router_acls(p.router, f"User:{user('router')}"),
            *gateway_acls(p.gateway, f"User:{user('gateway')}"),
        ],
    )
    return p


async def _acls(admin: DevSettings, change: object, acls: list[Acl]) -> None:
    client = make_admin(admin, "test")
    await client.start()
    try:
        await change(client, acls)  # type: ignore[operator]
    finally:
        await client.close()


async def _committed(admin: DevSettings, group: str) -> dict[TopicPartition, int]:
    client = make_admin(admin, "test")
    await client.start()
    try:
        offsets = await client.list_consumer_group_offsets(group)
    finally:
        await client.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def _outcomes(reader_settings: DevSettings, count: int, timeout_s: float) -> list[dict]:
    found: list[dict] = []
    async with ResultReader(reader_settings, from_beginning=True) as reader:

        async def collect() -> None:
            async for result in reader.results():
                # The record as a reader decodes it: to_avro is exactly that.
                found.append({"kind": result.kind, **(result.transcript or result.dead_letter).to_avro()})
                if len(found) >= count:
                    return

        await asyncio.wait_for(collect(), timeout_s)
    return found


@asynccontextmanager
async def running_router(settings: DevSettings) -> AsyncIterator[Router]:
    router = Router(settings, RouterMetrics())
    stop = asyncio.Event()
    task = asyncio.create_task(router.run(stop))
    try:
        yield router
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


class WorkerProcess:
    """A real `fwv2 worker` with the given environment and its own log file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "consumer.cli", "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
            )

    async def exited(self, timeout_s: float) -> int:
        return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), timeout_s)

    async def logged(self, needle: str, timeout_s: float) -> str:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            text = self.log.read_text(errors="replace")
            if needle in text:
                return text
            assert self.proc.poll() is None, f"worker exited ({self.proc.returncode}):\n{text[-3000:]}"
            await asyncio.sleep(0.5)
        raise AssertionError(f"{needle!r} never logged:\n{self.log.read_text(errors='replace')[-3000:]}")

    def terminate(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def _secrets(layout: SecureLayout) -> list[str]:
    return [*layout.credentials.kafka.values(), *layout.credentials.s3.values()]


# --- events flow --------------------------------------------------------------------------------


async def test_gateway_router_and_worker_transcribe_on_the_secure_stack(
    principals: Principals, pipeline: Pipeline, samples: dict[str, Path]
) -> None:
    """An upload through the gateway (its own S3 user and principal), routed by the router to the CPU
    pool's topic (transactions under its PREFIXED id), transcribed by a worker that may only read."""
    p = principals
    async with running_worker(p.worker, pipeline), running_router(p.router), running_gateway(p.gateway) as url:
        client = openai_client(url, timeout=150)
        try:
            with open(samples["weather"], "rb") as f:
                # whisper-1-fast: the router's CPU-pool rule, so the worker on the CPU topic gets it.
                answer = await client.audio.transcriptions.create(file=f, model="whisper-1-fast")
        finally:
            await client.close()
    assert "sunny" in answer.text.lower()
    routed = await _committed(p.admin, p.router.router_group_id)
    transcribed = await _committed(p.admin, p.worker.kafka_group_id)
    assert sum(routed.values()) == 1 and sum(transcribed.values()) == 1


# --- refused: wrong password, untrusted certificate ----------------------------------------------


async def test_a_wrong_password_or_an_untrusted_broker_stops_the_worker_with_the_cause_and_loses_nothing(
    principals: Principals, samples: dict[str, Path], tmp_path: Path
) -> None:
    p = principals
    ref = new_reference(
        upload(
            p.gateway.model_copy(update={"s3_bucket": "audio"}),
            samples["train"],
            key=f"{p.gateway.gateway_upload_prefix}{uuid.uuid4().hex}/train.wav",
        ),
        profile="whisper-1-fast",
    )
    await publish_references(p.admin.model_copy(update={"kafka_input_topic": p.worker.kafka_input_topic}), [ref])
    wrong = "not-the-password-" + uuid.uuid4().hex[:6]
    refused = WorkerProcess(p.worker_env(KAFKA_SASL_PASSWORD=wrong), tmp_path / "wrong-password.log")
    untrusted = WorkerProcess(p.worker_env(KAFKA_SSL_CAFILE=None), tmp_path / "no-ca.log")
    codes = [await refused.exited(180), await untrusted.exited(180)]
    assert codes == [1, 1]
    text = refused.text()
    assert '"event": "kafka_connection_refused"' in text
    assert "refused SASL SCRAM-SHA-512 authentication of user 'fwv2-worker'" in text
    assert "check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD" in text
    assert wrong not in text
    text = untrusted.text()
    assert "is not trusted" in text and "set KAFKA_SSL_CAFILE" in text
    # Neither got as far as the group: nothing was committed past the event (offset 0, the only one).
    assert sum((await _committed(p.admin, p.worker.kafka_group_id)).values()) == 0

    # The right settings pick the event up: nothing was lost. And no secret is ever logged.
    worker = WorkerProcess(p.worker_env(), tmp_path / "right.log")
    try:
        (outcome,) = await _outcomes(p.gateway, 1, 180)
    finally:
        code = worker.terminate()
    assert outcome["kind"] == "transcript" and outcome["event_id"] == ref.event_id
    assert code == 0
    text = worker.text()
    assert '"event": "event_transcribed"' in text
    leaked = [s for s in _secrets(p.layout) if s in text]
    assert leaked == [], "a password or secret key is in the worker's log"


async def test_the_gateway_with_a_wrong_password_does_not_start_and_says_why(
    principals: Principals, capfd: pytest.CaptureFixture[str]
) -> None:
    wrong = principals.gateway.model_copy(update={"kafka_sasl_password": SecretStr("not-the-password")})
    with pytest.raises(RuntimeError, match="did not start"):
        await asyncio.to_thread(lambda: serve_in_thread(wrong).__enter__())
    out = "".join(capfd.readouterr())
    assert "kafka_connection_refused" in out and "authentication of user 'fwv2-gateway'" in out
    assert "KAFKA_SASL_PASSWORD" in out and "not-the-password" not in out


async def test_an_untrusted_object_store_names_s3_ca_file(principals: Principals, samples: dict[str, Path]) -> None:
    p = principals
    obj = upload(p.admin, samples["kitchen"], key=f"uploads/{uuid.uuid4().hex}/kitchen.wav")
    store = BlobStore(p.worker.model_copy(update={"s3_ca_file": None}))
    with pytest.raises(StorageUnavailableError, match="TLS certificate is not trusted.*set S3_CA_FILE"):
        await asyncio.to_thread(store.fetch, obj)
    assert (await asyncio.to_thread(BlobStore(p.worker).fetch, obj)).size == obj.size_bytes


# --- refused: a missing ACL -----------------------------------------------------------------------


async def test_without_write_on_its_output_the_worker_holds_the_event_until_the_acl_is_back(
    principals: Principals, samples: dict[str, Path], tmp_path: Path
) -> None:
    p = principals
    await _acls(p.admin, delete_acls, p.output_write())
    ref = new_reference(
        upload(p.admin, samples["library"], key=f"uploads/{uuid.uuid4().hex}/library.wav"), profile="whisper-1-fast"
    )
    worker = WorkerProcess(p.worker_env(), tmp_path / "worker.log")
    try:
        await publish_references(p.admin.model_copy(update={"kafka_input_topic": p.worker.kafka_input_topic}), [ref])
        text = await worker.logged("TOPIC_AUTHORIZATION_FAILED", 180)
        assert "grant User:fwv2-worker a topic ACL (WRITE to publish" in text
        # Several attempts, and still: not committed past (the event is offset 0, the only one; a
        # worker may commit the event's own offset to check it still owns the partition), no dead
        # letter, nothing published.
        await worker.logged('"attempt": 3', 60)
        assert sum((await _committed(p.admin, p.worker.kafka_group_id)).values()) == 0
        async with ResultReader(p.gateway, from_beginning=True) as reader:
            assert [r async for r in reader.results(idle_timeout_s=2)] == []

        await _acls(p.admin, create_acls, p.output_write())
        (outcome,) = await _outcomes(p.gateway, 1, 120)
        assert outcome["kind"] == "transcript" and outcome["event_id"] == ref.event_id
        committed = await _committed(p.admin, p.worker.kafka_group_id)
        assert sum(committed.values()) == 1
    finally:
        code = worker.terminate()
    assert code == 0


# --- refused: an object outside the worker's S3 policy --------------------------------------------


async def test_an_object_outside_the_workers_s3_policy_is_an_access_denied_dead_letter(
    principals: Principals, pipeline: Pipeline, samples: dict[str, Path]
) -> None:
    p = principals
    # The admin puts it there; the worker's user may read only the audio bucket.
    denied = new_reference(upload(p.admin, samples["weather"], bucket=RESTRICTED_BUCKET), profile="whisper-1-fast")
    allowed = new_reference(upload(p.admin, samples["weather"]), profile="whisper-1-fast")
    await publish_references(
        p.admin.model_copy(update={"kafka_input_topic": p.worker.kafka_input_topic}), [denied, allowed]
    )
    async with running_worker(p.worker, pipeline):
        outcomes = {o["event_id"]: o for o in await _outcomes(p.gateway, 2, 120)}
    dead = outcomes[denied.event_id]
    assert dead["kind"] == "dead_letter" and dead["code"] == "ACCESS_DENIED"
    assert "s3:GetObject" in dead["message"] and "ALLOWED_BUCKETS" in dead["message"]
    assert outcomes[allowed.event_id]["kind"] == "transcript"
    # A dead letter is an outcome: the worker committed past both, one each.
    assert sum((await _committed(p.admin, p.worker.kafka_group_id)).values()) == 2
