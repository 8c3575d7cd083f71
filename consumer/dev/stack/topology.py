"""What the stack holds for the stage: its topics (input, outputs, the two pools) and its bucket. Idempotent."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from minio import Minio

from consumer.dev.stack.readiness import retry_until
from consumer.plumbing.kafka import MAX_RECORD_BYTES
from consumer.plumbing.settings import Settings


def stage_topics(settings: Settings) -> list[str]:
    # dict.fromkeys: one topic may serve two roles in a test setup; create it once.
    names: tuple[str, ...] = (settings.kafka_input_topic, settings.kafka_output_topic, settings.kafka_dead_letter_topic)
    # The pools' own input topics, which `fwv2 router` fills (docs/ROUTING.md).
    names += (settings.kafka_gpu_topic, settings.kafka_cpu_topic)
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
