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

from consumer.plumbing.provision import TARGET_ARN, TARGET_ID, ensure_bucket_notification
from devtools.settings import DevSettings

__all__ = ["STACK_NOTIFICATION_TOPIC", "TARGET_ARN", "ensure_bucket_notification", "minio_env"]

# Fixed, like the stage's other stack topics: MinIO reads it once, at start.
STACK_NOTIFICATION_TOPIC = "audio.notifications"


def minio_env(settings: DevSettings) -> dict[str, str]:
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
