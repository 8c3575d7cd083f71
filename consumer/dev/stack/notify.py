"""The embedded MinIO publishes its bucket notifications to the embedded Kafka.

Two halves, as on any MinIO: the Kafka *target* is server configuration, read from
``MINIO_NOTIFY_KAFKA_*_<ID>`` environment variables at start (``minio_env``); the bucket's
*notification rule* (which events, which prefixes, to which target's ARN) is set through the
S3 API (``ensure_bucket_notification``, run by every ``stack up``, idempotent).

MinIO connects to the broker lazily and retries: a target whose broker is down at MinIO's
start is added offline, without blocking. With a queue directory the target is durable:
every event is written there first and resent (every 3 s) until the broker acknowledges
it, so uploads made while Kafka is down or restarting are announced once it is back.
Without one, such events would be lost. Resending means a notification can arrive twice;
the worker's dedupe by the derived event_id absorbs that.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from minio import Minio
from minio.error import S3Error
from minio.notificationconfig import NotificationConfig, PrefixFilterRule, QueueConfig

from consumer.plumbing.settings import Settings

TARGET_ID = "FWV2"  # the <ID> suffix of the env vars; MinIO keeps its case in the ARN
TARGET_ARN = f"arn:minio:sqs::{TARGET_ID}:kafka"
# Fixed, like the stage's other stack topics: MinIO reads it once, at start.
STACK_NOTIFICATION_TOPIC = "audio.notifications"
CREATED_EVENTS = ["s3:ObjectCreated:*"]


def minio_env(settings: Settings) -> dict[str, str]:
    """The environment that gives the stack's MinIO its Kafka notification target."""
    queue = settings.stack_dir.resolve() / "minio" / "notify-queue"  # MinIO wants an absolute path
    queue.mkdir(parents=True, exist_ok=True)
    suffix = f"_{TARGET_ID}"
    return {
        "MINIO_NOTIFY_KAFKA_ENABLE" + suffix: "on",
        "MINIO_NOTIFY_KAFKA_BROKERS" + suffix: f"127.0.0.1:{settings.kafka_port}",
        "MINIO_NOTIFY_KAFKA_TOPIC" + suffix: STACK_NOTIFICATION_TOPIC,
        "MINIO_NOTIFY_KAFKA_QUEUE_DIR" + suffix: str(queue),
    }


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
                    f"to topic {STACK_NOTIFICATION_TOPIC}"
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
