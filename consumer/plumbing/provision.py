"""What the stage needs to exist before it runs: its topics and its bucket, and the bucket's notifications.

Idempotent, and patient while the servers settle: run by `fwv2 stack up` (devtools), by the compose file's
init job (docker/local/compose_init.py, inside the service image) and by the tests' fixtures. Nothing here
starts a server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from minio import Minio
from minio.error import S3Error
from minio.notificationconfig import NotificationConfig, PrefixFilterRule, QueueConfig

from consumer.plumbing.kafka import MAX_RECORD_BYTES
from consumer.plumbing.settings import Settings

T = TypeVar("T")

_ATTEMPT_TIMEOUT_S = 10.0


class NotReady(  # noqa: N818 - reads as the state it reports
    RuntimeError
):
    """The deadline passed before the broker gave a real answer."""


@contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    # aiokafka logs each expected NOT_COORDINATOR retry at ERROR; during a readiness wait that is
    # noise. The last error still reaches the NotReady message if the wait fails.
    logger = logging.getLogger("aiokafka")
    before = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(before)


async def retry_until(deadline: float, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run ``attempt`` until it succeeds or the monotonic ``deadline`` passes."""
    with _quiet_aiokafka():
        return await _retry_until(deadline, what, attempt)


async def _retry_until(deadline: float, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    delay, last = 0.1, "no attempt made"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NotReady(f"{what}: no success before the deadline (last error: {last})")
        try:
            return await asyncio.wait_for(attempt(), timeout=min(_ATTEMPT_TIMEOUT_S, remaining))
        except Exception as exc:  # noqa: BLE001 - every failure before the deadline is retried
            last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 1.0)


def stage_topics(settings: Settings) -> list[str]:
    # dict.fromkeys: one topic may serve two roles in a test setup; create it once.
    names: tuple[str, ...] = (settings.kafka_input_topic, settings.kafka_output_topic, settings.kafka_dead_letter_topic)
    # The pools' own input topics, which `fwv2 router` fills (docs/ROUTING.md).
    names += (settings.kafka_gpu_topic, settings.kafka_cpu_topic)
    if settings.kafka_status_topic:  # the workers' StatusEvents (docs/EVENTS.md)
        names += (settings.kafka_status_topic,)
    return list(dict.fromkeys(names))


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int,
    deadline: float,
    echo: Callable[[str], None],
    security: dict[str, Any] | None = None,
) -> None:
    """Create the topics that are missing; an existing one is kept as it is (``security``: see readiness)."""
    wanted = list(topics)

    async def attempt() -> list[str]:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, client_id="fwv2-stack", request_timeout_ms=10_000, **(security or {})
        )
        await admin.start()
        try:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name,
                        num_partitions=partitions,
                        replication_factor=1,
                        # Long transcripts with word timings exceed the broker's 1 MB default.
                        topic_configs={"max.message.bytes": str(MAX_RECORD_BYTES)},
                    )
                    for name in wanted
                ]
            )
            created = []
            for error in response.topic_errors:
                name, code = error[0], error[1]
                if code == 0:
                    created.append(name)
                elif code != TopicAlreadyExistsError.errno:
                    # Raised so the retry loop tries again (e.g. the controller is still loading).
                    raise for_code(code)(f"creating topic {name}")
            await _warn_partition_mismatch(admin, [n for n in wanted if n not in created], partitions, echo)
            return created
        finally:
            await admin.close()

    created = await retry_until(deadline, "topic creation", attempt)
    if created:
        echo(f"created topics {', '.join(created)} ({partitions} partitions each)")


async def _warn_partition_mismatch(
    admin: AIOKafkaAdminClient, existing: list[str], partitions: int, echo: Callable[[str], None]
) -> None:
    # Never repartition silently: that would move keys between partitions under a running demo.
    if not existing:
        return
    for topic in await admin.describe_topics(existing):
        count = len(topic.get("partitions", []))
        if count and count != partitions:
            echo(
                f"note: topic {topic['topic']} exists with {count} partitions, not {partitions}; "
                "left as it is (`fwv2 stack down` and remove the stack folder to recreate it)"
            )


def ensure_bucket(client: Minio, bucket: str, deadline: float, echo: Callable[[str], None]) -> None:
    """Create the bucket if it is missing, retrying while the server settles."""
    last = "no attempt made"
    while time.monotonic() < deadline:
        try:
            if not client.bucket_exists(bucket):
                client.make_bucket(bucket)
                echo(f"created bucket {bucket}")
            return
        except Exception as exc:  # noqa: BLE001 - retried until the deadline, then reported
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.3)
    raise RuntimeError(f"could not create bucket {bucket}: {last}")


TARGET_ID = "FWV2"  # the <ID> suffix of the env vars; MinIO keeps its case in the ARN
TARGET_ARN = f"arn:minio:sqs::{TARGET_ID}:kafka"
CREATED_EVENTS = ["s3:ObjectCreated:*"]


def watched_prefixes(prefixes: Iterable[str]) -> list[str]:
    """The prefixes not already inside another one: one filter each covers every rule."""
    ordered = sorted(set(prefixes), key=len)
    kept: list[str] = []
    for prefix in ordered:
        if not any(prefix.startswith(outer) for outer in kept):
            kept.append(prefix)
    return sorted(kept)


def notification_config(existing: NotificationConfig, prefixes: Iterable[str]) -> NotificationConfig:
    """``existing`` with our target's rules replaced by one per watched prefix; other targets' rules kept."""
    ours = [
        QueueConfig(
            CREATED_EVENTS,
            config_id=f"fwv2-{prefix or 'all'}",
            prefix_filter_rule=PrefixFilterRule(prefix) if prefix else None,
            queue=TARGET_ARN,
        )
        for prefix in watched_prefixes(prefixes)
    ]
    others = [q for q in existing.queue_config_list if q.queue != TARGET_ARN]
    return NotificationConfig(
        cloud_func_config_list=existing.cloud_func_config_list,
        queue_config_list=others + ours,
        topic_config_list=existing.topic_config_list,
    )


def ensure_bucket_notification(
    client: Minio, bucket: str, prefixes: Iterable[str], deadline: float, echo: Callable[[str], None]
) -> None:
    """Have ``bucket`` announce every object created under ``prefixes`` to the stack's Kafka target."""
    wanted = list(prefixes)
    last = "no attempt made"
    while time.monotonic() < deadline:
        try:
            current = client.get_bucket_notification(bucket)
            config = notification_config(current, wanted)
            if _describe(config) != _describe(current):
                client.set_bucket_notification(bucket, config)
                echo(
                    f"bucket {bucket} announces new objects under {', '.join(watched_prefixes(wanted))} "
                    f"to the Kafka target {TARGET_ID}"
                )
            return
        except S3Error as exc:
            if "ARN" not in (exc.message or ""):
                last = f"{exc.code}: {exc.message}"
                time.sleep(0.3)
                continue
            # A MinIO started by an older stack has no Kafka target: everything else still works,
            # so say how to get notifications rather than fail the whole stack.
            echo(
                f"note: the running MinIO has no Kafka notification target, so bucket {bucket} cannot announce "
                "new objects; restart it to get one (`fwv2 stack down` then `fwv2 stack up`)"
            )
            return
        except Exception as exc:  # noqa: BLE001 - retried until the deadline, then reported
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.3)
    raise RuntimeError(f"could not set the notification of bucket {bucket}: {last}")


def _describe(config: NotificationConfig) -> list[tuple[str, tuple[str, ...], str]]:
    def prefix(q: QueueConfig) -> str:
        return q.prefix_filter_rule.value if q.prefix_filter_rule else ""

    return sorted((q.queue or "", tuple(q.events), prefix(q)) for q in config.queue_config_list)
