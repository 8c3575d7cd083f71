"""The embedded stack: genuine Kafka 4.4.0 (KRaft) and genuine MinIO on 127.0.0.1.

For the demo, the integration tests and the benchmarks. The servers run detached and outlive
the process that started them; pid files under ``settings.stack_dir`` lead back to them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from consumer.settings import Settings
from consumer.stack.kafka import KafkaNode
from consumer.stack.minio import MinioNode
from consumer.stack.notify import STACK_NOTIFICATION_TOPIC, ensure_bucket_notification
from consumer.stack.process import StackError, file_lock
from consumer.stack.readiness import NotReady, wait_group_coordinator, wait_transactions
from consumer.stack.topology import ensure_bucket, ensure_topics, stage_topics

__all__ = ["EmbeddedStack", "StackError"]

# Covers a cold JVM on two busy cores; a healthy node is ready in well under half of it.
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class EmbeddedStack:
    def __init__(self, settings: Settings, echo: Callable[[str], None] = print) -> None:
        self.settings = settings
        self._echo = echo
        self._kafka = KafkaNode(settings, echo)
        self._minio = MinioNode(settings, echo)
        self._lock = settings.stack_dir / ".stack.lock"

    def install(self) -> None:
        """Fetch the Kafka jars and build MinIO into the cache folder, each only if missing."""
        self._kafka.install()
        self._minio.install()

    def up(self) -> None:
        """Start what is not running, then wait until both really serve, then create topics and bucket."""
        self.install()
        with file_lock(self._lock):
            began = time.monotonic()
            deadline = began + READY_TIMEOUT_S
            started = []
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
                ensure_bucket_notification(
                    self._minio.client(), self.settings.s3_bucket, self.settings.notify_prefix_rules, deadline, self._echo
                )
                self._kafka.wait_started(deadline)
                _run(self._kafka_ready(deadline))
            except BaseException:
                # Leave nothing half-started behind; the logs stay for the post-mortem.
                for node in started:
                    node.process.stop(STOP_TIMEOUT_S)
                raise
            self._echo(
                f"stack ready in {time.monotonic() - began:.1f} s: Kafka {self._kafka.bootstrap}, "
                f"MinIO {self._minio.endpoint} (logs in {self.settings.stack_dir / 'logs'})"
            )

    async def _kafka_ready(self, deadline: float) -> None:
        s, bootstrap = self.settings, self._kafka.bootstrap
        try:
            # Topics first: the readiness commit needs a partition to commit on.
            topics = [*stage_topics(s), STACK_NOTIFICATION_TOPIC]
            await ensure_topics(bootstrap, topics, s.kafka_topic_partitions, deadline, self._echo)
            await wait_group_coordinator(bootstrap, s.kafka_input_topic, deadline)
            await wait_transactions(bootstrap, deadline)
        except NotReady as exc:
            raise StackError(
                f"Kafka is not ready after {READY_TIMEOUT_S:.0f} s ({exc}); see {self._kafka.process.log_file}"
            ) from exc

    def down(self) -> None:
        """Stop both servers (SIGTERM, SIGKILL after a timeout); nothing to do if not running."""
        with file_lock(self._lock):
            for node in (self._kafka, self._minio):
                pid = node.process.pid()
                if pid is None:
                    continue
                self._echo(f"stopping {node.process.name} (pid {pid})...")
                node.process.stop(STOP_TIMEOUT_S)

    def stop_service(self, name: str) -> None:
        """Stop only "kafka" or "minio" (for failure tests); `up()` starts it again."""
        node = {"kafka": self._kafka, "minio": self._minio}[name]
        with file_lock(self._lock):
            node.process.stop(STOP_TIMEOUT_S)

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
