"""The embedded stack: genuine Kafka 4.4.0 (KRaft) and genuine MinIO on 127.0.0.1.

For the demo, the integration tests and the benchmarks. The servers run detached and outlive
the process that started them; pid files under ``settings.stack_dir`` lead back to them.

``secure=True`` (`fwv2 stack up --secure`) is the locked-down variant, beside the plaintext one on
its own ports and folder: TLS and SASL/SCRAM-SHA-512, ACLs under KRaft's StandardAuthorizer, MinIO
over TLS with a user per role (``devtools.stack.secure``, docs/SECURITY.md).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Collection, Coroutine
from typing import Any

from minio.credentials.providers import StaticProvider
from minio.minioadmin import MinioAdmin

from consumer.plumbing.kafka import make_admin, security_options
from consumer.plumbing.provision import NotReady, ensure_bucket, ensure_topics, retry_until, stage_topics
from devtools.settings import DevSettings
from devtools.stack.acls import create_acls, gateway_acls, router_acls, worker_acls
from devtools.stack.connect import ConnectNode
from devtools.stack.downstream import EXTRAS, set_backward_compatibility
from devtools.stack.kafka import KafkaNode
from devtools.stack.minio import MinioNode
from devtools.stack.notify import STACK_NOTIFICATION_TOPIC, ensure_bucket_notification
from devtools.stack.postgres import PostgresNode
from devtools.stack.process import StackError, file_lock
from devtools.stack.readiness import wait_group_coordinator, wait_transactions
from devtools.stack.registry import RegistryNode
from devtools.stack.secure import SecureLayout, audio_read_policy, upload_policy, user
from devtools.stack.tls import make_certificates

__all__ = ["EmbeddedStack", "StackError"]

# Covers a cold JVM on two busy cores; a healthy node is ready in well under half of it.
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class EmbeddedStack:
    def __init__(
        self,
        settings: DevSettings,
        echo: Callable[[str], None] = print,
        secure: bool = False,
        extras: Collection[str] = (),
    ) -> None:
        # The secure stack runs as its super user; `self.secure.settings(role)` is what its clients get.
        self.secure = SecureLayout(settings) if secure else None
        self.settings = self.secure.settings("admin") if self.secure else settings
        self._echo = echo
        self._kafka = KafkaNode(self.settings, echo, self.secure)
        self._minio = MinioNode(self.settings, echo, self.secure)
        # The downstream servers (`--with registry,connect,postgres`): what the transcripts' readers run.
        unknown = set(extras) - set(EXTRAS)
        if unknown:
            raise StackError(f"unknown --with {sorted(unknown)}; choose from {', '.join(EXTRAS)}")
        self.extras = [name for name in EXTRAS if name in extras]
        s = self.settings
        self.registry = RegistryNode(s.cache_dir, s.stack_dir, s.registry_port, echo)
        self.connect = ConnectNode(
            s.cache_dir, s.stack_dir, s.connect_port, echo, s.kafka_bootstrap_servers, self.registry.native_url
        )
        self.postgres = PostgresNode(s.cache_dir, s.stack_dir, s.postgres_port, echo)
        self._lock = self.settings.stack_dir / ".stack.lock"

    def install(self) -> None:
        """Fetch the Kafka jars and build MinIO into the cache folder, each only if missing."""
        self._kafka.install()
        self._minio.install()
        for name in self.extras:
            self.node(name).install()

    def node(self, name: str) -> RegistryNode | ConnectNode | PostgresNode:
        nodes: dict[str, RegistryNode | ConnectNode | PostgresNode] = {
            "registry": self.registry,
            "connect": self.connect,
            "postgres": self.postgres,
        }
        return nodes[name]

    def _up_extras(self) -> None:
        """Registry first (Connect's converter needs it), then Connect and PostgreSQL; each only if not running."""
        for name in self.extras:
            node = self.node(name)
            if node.pid() is None:
                node.start()
            else:
                self._echo(f"{node.process.name} already running (pid {node.pid()}); checking it")
            node.wait_ready()
            if name == "registry":
                set_backward_compatibility(self.registry.ccompat_url)
                self._echo(f"schema registry {self.registry.ccompat_url} (BACKWARD compatibility)")

    def up(self) -> None:
        """Start what is not running, then wait until both really serve, then create topics and bucket."""
        self.install()
        with file_lock(self._lock):
            began = time.monotonic()
            deadline = began + READY_TIMEOUT_S
            started = []
            if self.secure is not None and (
                not self.secure.tls.complete()
                or not (self._kafka.process.is_running() or self._minio.process.is_running())
            ):
                # A fresh throwaway CA for every fresh start; servers already running keep theirs.
                make_certificates(self.secure.tls.folder)
                self._echo(f"made a throwaway CA and server certificate in {self.secure.tls.folder}")
            try:
                # Both start before either is awaited, so the JVM's warm-up overlaps MinIO's.
                for node in (self._minio, self._kafka):
                    pid = node.process.pid()
                    if pid is None:
                        node.start()
                        started.append(node)
                    else:
                        self._echo(f"{node.process.name} already running (pid {pid}); checking it")
                self._minio.wait_ready(deadline)
                ensure_bucket(self._minio.client(), self.settings.s3_bucket, deadline, self._echo)
                if self.secure is None:
                    ensure_bucket_notification(
                        self._minio.client(),
                        self.settings.s3_bucket,
                        self.settings.notify_prefix_rules,
                        deadline,
                        self._echo,
                    )
                else:
                    self._ensure_s3_users(deadline)
                self._kafka.wait_started(deadline)
                _run(self._kafka_ready(deadline))
            except BaseException:
                # Leave nothing half-started behind; the logs stay for the post-mortem.
                for node in started:
                    node.process.stop(STOP_TIMEOUT_S)
                raise
            self._up_extras()
            self._echo(
                f"stack ready in {time.monotonic() - began:.1f} s: Kafka {self._kafka.bootstrap}, "
                f"MinIO {self._minio.endpoint} (logs in {self.settings.stack_dir / 'logs'})"
            )
            if self.secure is not None:
                files = self.secure.write_env_files()
                self._echo(
                    f"secure: SASL_SSL (SCRAM-SHA-512), ACLs, MinIO over TLS; CA {self.secure.tls.ca}; "
                    f"each role's settings in {', '.join(p.name for p in files)} under {self.secure.dir}"
                )

    async def _kafka_ready(self, deadline: float) -> None:
        s, bootstrap = self.settings, self._kafka.bootstrap
        security = security_options(s) if self.secure else None
        try:
            # Topics first: the readiness commit needs a partition to commit on.
            topics = [*stage_topics(s), STACK_NOTIFICATION_TOPIC]
            await ensure_topics(bootstrap, topics, s.kafka_topic_partitions, deadline, self._echo, security)
            await wait_group_coordinator(bootstrap, s.kafka_input_topic, deadline, security)
            await wait_transactions(bootstrap, deadline, security)
            if self.secure is not None:
                await retry_until(deadline, "ACLs", self._grant_acls)
        except NotReady as exc:
            raise StackError(
                f"Kafka is not ready after {READY_TIMEOUT_S:.0f} s ({exc}); see {self._kafka.process.log_file}"
            ) from exc

    async def _grant_acls(self) -> None:
        s = self.settings
        acls = [
            # The stack's workers may be either pool: both pools' topics and groups.
            *worker_acls(
                s,
                f"User:{user('worker')}",
                input_topics=[s.kafka_input_topic, s.kafka_cpu_topic, s.kafka_gpu_topic, STACK_NOTIFICATION_TOPIC],
                groups=[s.kafka_group_id, s.router_gpu_group_id],
            ),
            *router_acls(s, f"User:{user('router')}"),
            *gateway_acls(s, f"User:{user('gateway')}"),
        ]
        admin = make_admin(s, "stack")
        await admin.start()
        try:
            await create_acls(admin, acls)
        finally:
            await admin.close()

    def _ensure_s3_users(self, deadline: float) -> None:
        """The worker's user reads the audio bucket; the gateway's writes its upload prefix. Idempotent."""
        assert self.secure is not None
        s, secrets = self.settings, self.secure.credentials.s3
        admin = MinioAdmin(
            endpoint=self._minio.endpoint,
            credentials=StaticProvider(s.s3_access_key.get_secret_value(), s.s3_secret_key.get_secret_value()),
            secure=True,
            http_client=self._minio.http(),
        )
        wanted = {
            "worker": ("fwv2-worker-read-audio", audio_read_policy(s.s3_bucket)),
            "gateway": ("fwv2-gateway-upload", upload_policy(s.s3_bucket, s.gateway_upload_prefix)),
        }
        last = "no attempt made"
        while time.monotonic() < deadline:
            try:
                for role, (policy_name, policy) in wanted.items():
                    admin.user_add(user(role), secrets[user(role)])
                    admin.policy_add(policy_name, policy=policy)
                    admin.policy_set(policy_name, user=user(role))
                return
            except Exception as exc:  # noqa: BLE001 - retried until the deadline, then reported
                last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.3)
        raise StackError(f"could not create the MinIO users and policies: {last}")

    def down(self) -> None:
        """Stop both servers (SIGTERM, SIGKILL after a timeout); nothing to do if not running."""
        with file_lock(self._lock):
            # Downstream first: Connect would otherwise log its lost broker until it is stopped.
            extras = [self.connect.process, self.registry.process, self.postgres.process]
            for process in (*extras, self._kafka.process, self._minio.process):
                pid = process.pid()
                if pid is None:
                    continue
                self._echo(f"stopping {process.name} (pid {pid})...")
                process.stop(STOP_TIMEOUT_S)

    def stop_service(self, name: str) -> None:
        """Stop only "kafka" or "minio" (for failure tests); `up()` starts it again."""
        process = {"kafka": self._kafka.process, "minio": self._minio.process}[name]
        with file_lock(self._lock):
            process.stop(STOP_TIMEOUT_S)

    def is_running(self) -> bool:
        """Both server processes are alive (readiness is what `up` checks)."""
        return self._kafka.process.is_running() and self._minio.process.is_running()


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """asyncio.run, also from code that already runs an event loop (an async test fixture)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="fwv2-stack-ready")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
