"""aiokafka clients built from the settings, with security options applied the same way everywhere.

Also what a refused client is told: a broker that refuses a login, a certificate or an operation
answers with a code; ``diagnose`` and ``NotAuthorizedError`` turn it into the cause and the remedy
(docs/SECURITY.md). Passwords never appear in either.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context

from consumer.plumbing.settings import KafkaSettings

# Transcripts of long audio with word timings run to megabytes; the broker topics created
# by `fwv2 stack up` accept this size too (max.message.bytes).
MAX_RECORD_BYTES = 16 * 1024 * 1024


AUTHORIZATION_ERRORS = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    ClusterAuthorizationFailedError,
)


def _common(settings: KafkaSettings) -> dict[str, Any]:
    return {"bootstrap_servers": settings.kafka_bootstrap_servers, **security_options(settings)}


def security_options(settings: KafkaSettings) -> dict[str, Any]:
    """TLS and SASL options of every aiokafka client (consumer, producer, admin, a bare connection)."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
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


class NotAuthorizedError(KafkaError):  # type: ignore[misc]  # aiokafka ships no types: KafkaError is Any to mypy
    """The broker refused this principal an operation (an ACL is missing); says which, and how to grant it.

    Retriable on purpose: the event did nothing wrong, and an operator who adds the ACL fixes it
    without a restart. Publishing retries with backoff until then (``consumer.worker.delivery``), the
    input offset stays uncommitted, and nothing is dead-lettered or skipped for it.
    """

    retriable = True


def not_authorized(settings: KafkaSettings, exc: KafkaError) -> NotAuthorizedError:
    return NotAuthorizedError(explain(settings, exc))


class Producer(AIOKafkaProducer):  # type: ignore[misc]
    """AIOKafkaProducer whose authorization refusals are NotAuthorizedError (cause, remedy, retriable)."""

    def __init__(self, settings: KafkaSettings, **options: Any) -> None:
        super().__init__(**options)
        self._fwv2_settings = settings

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        try:
            future = await super().send(*args, **kwargs)
        except AUTHORIZATION_ERRORS as exc:
            raise not_authorized(self._fwv2_settings, exc) from exc
        return _translated(self._fwv2_settings, future)

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> Any:
        return await (await self.send(*args, **kwargs))

    async def send_offsets_to_transaction(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().send_offsets_to_transaction(*args, **kwargs)
        except AUTHORIZATION_ERRORS as exc:
            raise not_authorized(self._fwv2_settings, exc) from exc


def _translated(settings: KafkaSettings, future: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """``future``, with a refusal in the broker's answer (a Produce response) turned into NotAuthorizedError."""
    result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def done(f: asyncio.Future[Any]) -> None:
        if result.done():
            return
        if f.cancelled():
            result.cancel()
        elif isinstance(exc := f.exception(), AUTHORIZATION_ERRORS):
            result.set_exception(not_authorized(settings, exc))
        elif exc is not None:
            result.set_exception(exc)
        else:
            result.set_result(f.result())

    future.add_done_callback(done)
    return result


def make_producer(settings: KafkaSettings, client_suffix: str = "producer", **extra: Any) -> AIOKafkaProducer:
    return Producer(
        settings,
        **_common(settings),
        client_id=f"{settings.kafka_client_id}-{client_suffix}",
        acks="all",
        enable_idempotence=True,
        max_request_size=MAX_RECORD_BYTES,
        linger_ms=0,
        **extra,
    )


def make_consumer(settings: KafkaSettings, *topics: str, group_id: str | None, **extra: Any) -> AIOKafkaConsumer:
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


def make_admin(settings: KafkaSettings, client_suffix: str = "admin") -> AIOKafkaAdminClient:
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


# --- what a refused client is told ---------------------------------------------------------

_ACL_ANSWER = {
    TopicAuthorizationFailedError: "a topic ACL (WRITE to publish, READ and DESCRIBE to consume)",
    GroupAuthorizationFailedError: "a group ACL (READ on the consumer group)",
    TransactionalIdAuthorizationFailed: "a TransactionalId ACL (WRITE and DESCRIBE, PREFIXED by the group id)",
    ClusterAuthorizationFailedError: (
        "WRITE on a topic it publishes to (an idempotent producer's id needs it) or IDEMPOTENT_WRITE on the cluster"
    ),
}


def principal(settings: KafkaSettings) -> str:
    if settings.kafka_security_protocol.startswith("SASL") and settings.kafka_sasl_username:
        return f"User:{settings.kafka_sasl_username}"
    return "this client's principal"


def explain(settings: KafkaSettings, exc: BaseException) -> str:
    """One sentence with the cause and the remedy of a Kafka refusal; never the password."""
    who = principal(settings)
    for kind, needed in _ACL_ANSWER.items():
        if isinstance(exc, kind):
            what = f" ({exc})" if str(exc) else ""
            return (
                f"the broker refused {who} {kind.message}{what}: grant {who} {needed} "
                "(kafka-acls --add, docs/SECURITY.md); the event stays uncommitted and is retried until then"
            )
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Diagnosis:
    """Why a connection to the brokers fails, and what to change."""

    cause: str
    remedy: str


async def diagnose(settings: KafkaSettings, timeout_s: float = 10.0) -> Diagnosis | None:
    """Open one connection as the clients do and name what refuses it; None if it connects.

    aiokafka reports a refused bootstrap as a bare ``KafkaConnectionError("Unable to bootstrap")``;
    the reason (a SASL refusal, an untrusted certificate) is only in its log. This asks again, once.
    """
    options = security_options(settings)
    options["request_timeout_ms"] = int(timeout_s * 1000)
    first = settings.kafka_bootstrap_servers.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    try:
        conn = await asyncio.wait_for(create_conn(host, int(port), client_id="fwv2-diagnose", **options), timeout_s)
    except Exception as exc:  # noqa: BLE001 - every failure is what this names
        return _diagnosis(settings, first, exc)
    conn.close()
    return None


def _diagnosis(settings: KafkaSettings, where: str, exc: BaseException) -> Diagnosis:
    protocol, user = settings.kafka_security_protocol, settings.kafka_sasl_username
    if isinstance(exc, SaslAuthenticationFailed):
        return Diagnosis(
            f"the broker at {where} refused SASL {settings.kafka_sasl_mechanism} authentication of user {user!r}",
            "check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD against the broker's SCRAM credentials "
            "(kafka-configs --alter --entity-type users --add-config 'SCRAM-SHA-512=[password=...]')",
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return Diagnosis(
            f"the broker at {where} does not offer {settings.kafka_sasl_mechanism}: {exc}",
            "set KAFKA_SASL_MECHANISM to one the broker enables (sasl.enabled.mechanisms)",
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = getattr(exc, "verify_message", None) or exc
        return Diagnosis(
            f"the TLS certificate of the broker at {where} is not trusted ({why})",
            "set KAFKA_SSL_CAFILE to the CA bundle that signed the broker's certificate",
        )
    if isinstance(exc, ssl.SSLError):
        return Diagnosis(
            f"TLS with the broker at {where} failed ({exc.reason or exc})",
            f"check that {where} is a TLS listener and KAFKA_SECURITY_PROTOCOL ({protocol}) matches it",
        )
    if isinstance(exc, TimeoutError):  # before OSError, of which it is one
        return Diagnosis(
            f"the broker at {where} did not answer the handshake",
            f"check that KAFKA_SECURITY_PROTOCOL ({protocol}) matches the listener at {where}",
        )
    if isinstance(exc, OSError):
        return Diagnosis(
            f"nothing accepts connections at {where} ({type(exc).__name__})",
            "check KAFKA_BOOTSTRAP_SERVERS and that the broker is up",
        )
    return Diagnosis(
        f"connecting to {where} failed: {type(exc).__name__}: {exc}",
        "check KAFKA_BOOTSTRAP_SERVERS and KAFKA_SECURITY_PROTOCOL",
    )


async def report_failure(settings: KafkaSettings, exc: BaseException) -> None:
    """Log why a worker, router or gateway could not use Kafka: the cause and the remedy, one line."""
    from consumer.plumbing.logs import (
        get_logger,
    )  # here: consumer.plumbing.logs is for processes, this module for clients too

    log = get_logger("fwv2.kafka")
    if isinstance(exc, (NotAuthorizedError, *AUTHORIZATION_ERRORS)):
        log.error("kafka_not_authorized", cause=explain(settings, exc), principal=principal(settings))
        return
    found = await diagnose(settings)
    if found is None:
        log.error("kafka_failed", error=repr(exc), principal=principal(settings))
        return
    log.error("kafka_connection_refused", cause=found.cause, remedy=found.remedy, error=repr(exc))


async def partitions_for(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    deadline = time.monotonic() + 10
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return set(parts)
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic!r} does not exist; run `fwv2 stack up` or create it")
        await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
        await asyncio.sleep(0.2)
