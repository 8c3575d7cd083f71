"""The init jobs of compose.local.yml, run in the fwv2 image (compose.yml's use apache/kafka and minio/mc).

    python compose_init.py topics     create the stage's topics on KAFKA_BOOTSTRAP_SERVERS (idempotent)
    python compose_init.py minio      create the bucket, the workers' read-only user, the gateway's
                                      read-write user, and the bucket's notifications (idempotent)

The same steps as compose.yml's kafka-init and minio-init, through the clients the stage itself uses,
because neither Kafka's shell tools nor `mc` can be built on machines without an image registry.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from minio import Minio
from minio.credentials import StaticProvider
from minio.minioadmin import MinioAdmin

from consumer.plumbing.provision import ensure_bucket, ensure_bucket_notification, ensure_topics

TOPICS = [
    "audio.references",
    "audio.references.gpu",
    "audio.references.cpu",
    "audio.transcripts",
    "audio.dead-letters",
    "audio.notifications",
    "audio.status",
]
# Kafka and MinIO may still be starting: the same patience as compose's healthchecks.
DEADLINE_S = 120


def topics() -> None:
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    partitions = int(os.environ.get("PARTITIONS", "6"))

    async def run() -> None:
        loop = asyncio.get_running_loop()
        await ensure_topics(bootstrap, TOPICS, partitions, loop.time() + DEADLINE_S, print)

    asyncio.run(run())
    print(f"topics ready on {bootstrap}: {', '.join(TOPICS)}")


def minio() -> None:
    endpoint = os.environ["S3_ENDPOINT"]
    root = StaticProvider(os.environ["MINIO_ROOT_USER"], os.environ["MINIO_ROOT_PASSWORD"])
    client = Minio(endpoint, credentials=root, secure=False)
    deadline = time.monotonic() + DEADLINE_S
    ensure_bucket(client, "audio", deadline, print)
    admin = MinioAdmin(endpoint=endpoint, credentials=root, secure=False)
    users = [
        (os.environ["WORKER_ACCESS_KEY"], os.environ["WORKER_SECRET_KEY"], "readonly"),
        # The HTTP gateway uploads what it is sent, so its user may write.
        (os.environ["GATEWAY_ACCESS_KEY"], os.environ["GATEWAY_SECRET_KEY"], "readwrite"),
    ]
    for access_key, secret_key, policy in users:
        admin.user_add(access_key, secret_key)
        try:
            admin.attach_policy([policy], user=access_key)
        except Exception as exc:
            if "already" not in str(exc).lower():
                raise
    # Objects created under incoming/ are announced on audio.notifications (the CPU pool reads it).
    ensure_bucket_notification(client, "audio", ["incoming/"], deadline, print)
    print(f"bucket audio, users and notifications ready on {endpoint}")


if __name__ == "__main__":
    {"topics": topics, "minio": minio}[sys.argv[1]]()
