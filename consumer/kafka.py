"""aiokafka clients built from the settings, with security options applied the same way everywhere."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from consumer.settings import Settings

# Transcripts of long audio with word timings run to megabytes; the broker topics created
# by `fwv2 stack up` accept this size too (max.message.bytes).
MAX_RECORD_BYTES = 16 * 1024 * 1024


def _common(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
    if settings.kafka_security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
        )
    return options


def make_producer(settings: Settings, client_suffix: str = "producer", **extra: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **_common(settings),
        client_id=f"{settings.kafka_client_id}-{client_suffix}",
        acks="all",
        enable_idempotence=True,
        max_request_size=MAX_RECORD_BYTES,
        linger_ms=0,
        **extra,
    )


def make_consumer(settings: Settings, *topics: str, group_id: str | None, **extra: Any) -> AIOKafkaConsumer:
    options: dict[str, Any] = {
        "client_id": f"{settings.kafka_client_id}-consumer",
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": MAX_RECORD_BYTES,
        "fetch_max_bytes": MAX_RECORD_BYTES * 2,
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": max(1000, settings.kafka_session_timeout_ms // 10),
        "max_poll_interval_ms": settings.kafka_max_poll_interval_ms,
    }
    options.update(extra)
    return AIOKafkaConsumer(*topics, **_common(settings), **options)


def make_admin(settings: Settings, client_suffix: str = "admin") -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        **_common(settings), client_id=f"{settings.kafka_client_id}-{client_suffix}", request_timeout_ms=10_000
    )


async def start_consumer(consumer: AIOKafkaConsumer) -> AIOKafkaConsumer:
    """Start ``consumer`` and let its background tasks run once.

    aiokafka 0.14: a consumer without a group that is stopped before its committed-offset
    task first ran raises CancelledError from ``stop()``; one turn of the loop avoids it.
    """
    await consumer.start()
    await asyncio.sleep(0)
    return consumer
