"""The Confluent wire format (``00``, a 4-byte big-endian schema id, the Avro body) against a schema registry.

Why: downstream teams read our topics with Confluent-style deserializers, which find the writer schema
by the id in a record's first five bytes, not by the single-object fingerprint of ``avro.py``. The
registry protocol (register, look up by id, compatibility) is confluent_kafka's maintained
``SchemaRegistryClient``; the Avro body is fastavro's, as in ``avro.py``, so both framings carry the
same body bytes and the same ``schemas/*.avsc``.

Subjects follow the topic name strategy: a topic's value schema is registered under
``<topic>-value``. Keys are plain UTF-8 strings (the event id), not Avro, so no ``<topic>-key``
subject is registered.

The client is synchronous. The blocking calls are ``register`` (once per output schema at start-up)
and ``decode`` of a schema id seen for the first time; the worker runs them through
``asyncio.to_thread``. ``encode`` with a registered schema, and ``decode`` of an id already seen, use
only in-memory caches: they never touch the network and are safe on the event loop.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any, Literal

from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    SchemaRegistryError,
    topic_subject_name_strategy,
)

# The same httpx module the client raises from (httpx2 on Python >= 3.10), so that its transport
# errors (connection refused, timeouts, TLS) are the classes caught here.
from confluent_kafka.schema_registry.common._httpx_compat import httpx
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from consumer.contract.avro import SCHEMA_DIR, is_single_object, load_schema
from consumer.contract.errors import MalformedEventError

CONFLUENT_MAGIC = 0
CONFLUENT_HEADER = struct.Struct(">BI")  # magic byte, schema id
Framing = Literal["json", "single-object", "confluent", "unknown"]
_RETRIABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})  # the client's own retriable set


def framing(data: bytes) -> Framing:
    """How an input value is framed: a JSON object, Avro single-object (C3 01), Confluent (00 + id), or unknown."""
    if is_single_object(data):
        return "single-object"
    if len(data) >= CONFLUENT_HEADER.size and data[0] == CONFLUENT_MAGIC:
        return "confluent"
    if data.lstrip(b" \t\r\n")[:1] == b"{":
        return "json"
    return "unknown"


class RegistryError(Exception):
    """A schema registry failure. ``retriable`` says whether the same call may succeed later (as in aiokafka)."""

    retriable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RegistryUnavailable(RegistryError):  # noqa: N818 - named like aiokafka's errors, per the contract
    """Connection refused, a timeout, or 408/429/5xx: wait and retry; nothing is dead-lettered for it."""

    retriable = True


class SchemaIncompatible(RegistryError):  # noqa: N818
    """409 on register: our schema breaks the subject's compatibility rule. Only a schema change fixes it."""


class UnknownSchemaId(RegistryError, MalformedEventError):  # noqa: N818
    """404 for the id in a record's header: that record can never be read here, so it is dead-lettered.

    Also a ``MalformedEventError``, so the worker's existing path dead-letters it as MALFORMED_EVENT.
    """


class RegistryCodec:
    """Encodes and decodes Confluent-framed Avro with schemas registered in the registry at ``url``.

    ``url`` is the registry's Confluent-compatible base, e.g. ``http://HOST:PORT/apis/ccompat/v7`` for
    Apicurio; ``mock://NAME`` gives confluent_kafka's in-memory mock. A down registry is reported after
    ``max_retries`` further attempts of ``timeout_s`` each, so the caller's own backoff decides the
    waiting. ``client`` replaces the client built from these settings (tests).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        max_retries: int = 1,
        retry_wait_ms: int = 200,
        client: SchemaRegistryClient | None = None,
    ) -> None:
        self.url = url.split(",")[0].strip().rstrip("/")
        conf = {
            "url": url,
            "timeout": timeout_s,
            "max.retries": max_retries,
            "retries.wait.ms": retry_wait_ms,
            "retries.max.wait.ms": max(retry_wait_ms, 2_000),
        }
        self._client = client if client is not None else SchemaRegistryClient.new_client(conf)
        self._ids: dict[str, int] = {}  # schema name -> id registered for it
        self._writers: dict[int, Any] = {}  # schema id -> parsed writer schema

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RegistryCodec:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_id(self, schema_name: str) -> int | None:
        """The id ``register`` returned for ``schema_name``, if it was registered."""
        return self._ids.get(schema_name)

    def schema_uri(self, schema_id: int) -> str:
        """Where the registry serves the schema ``schema_id``: the CloudEvents ``dataschema`` of a record."""
        return f"{self.url}/schemas/ids/{schema_id}"

    def register(self, topic: str, schema_name: str) -> int:
        """Register ``schemas/<schema_name>.avsc`` under ``<topic>-value`` and return its id (blocking).

        Idempotent: a schema already in the subject keeps its id. A schema registered under several
        topics keeps the id of the last ``register``; every such id resolves to the same schema.
        """
        load_schema(schema_name)  # a local parse error surfaces here, before the registry sees it
        path = SCHEMA_DIR / f"{schema_name}.avsc"
        subject = topic_subject_name_strategy(SerializationContext(topic, MessageField.VALUE), None)
        assert subject is not None  # the strategy returns None only without a context
        what = f"registering schemas/{path.name} under subject {subject}"
        # Stripped as confluent-kafka's serializer strips it: Apicurio matches schema text byte for byte,
        # so a stock serializer's lookup of our schema then finds this version rather than a 404.
        try:
            schema_id = self._client.register_schema(subject, Schema(path.read_text().strip(), schema_type="AVRO"))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 409:
                raise SchemaIncompatible(
                    f"registry refused schemas/{path.name} under subject {subject}: incompatible with its latest "
                    f"version under {self._compatibility(subject)} compatibility ({exc.error_message}). Make the "
                    "change compatible (e.g. give a new field a default) or publish it on a new topic."
                ) from exc
            raise self._failure(exc, what) from exc
        except httpx.TransportError as exc:
            raise self._unreachable(exc, what) from exc
        self._ids[schema_name] = schema_id
        self._writers.setdefault(schema_id, load_schema(schema_name).parsed)
        return schema_id

    def encode(self, schema_name: str, record: dict[str, Any]) -> bytes:
        """``record`` in the Confluent framing with the id registered for ``schema_name``; no network."""
        schema_id = self._ids.get(schema_name)
        if schema_id is None:
            raise LookupError(f"{schema_name} has no schema id yet: call register(topic, {schema_name!r}) at start-up")
        buf = io.BytesIO()
        buf.write(CONFLUENT_HEADER.pack(CONFLUENT_MAGIC, schema_id))
        schemaless_writer(buf, load_schema(schema_name).parsed, record)
        return buf.getvalue()

    def decode(self, data: bytes, reader_schema_name: str) -> dict[str, Any]:
        """Read a Confluent-framed value as ``schemas/<reader_schema_name>.avsc``, resolving writer to reader.

        Blocking only for an id not seen before. Raises ``UnknownSchemaId``, ``RegistryUnavailable``,
        or ``ValueError`` for a value that is not Confluent-framed or whose body does not resolve.
        """
        kind = framing(data)
        if kind != "confluent":
            raise ValueError(f"not in the Confluent framing (00 + 4-byte schema id); looks like {kind}")
        _, schema_id = CONFLUENT_HEADER.unpack_from(data)
        writer = self._writer(schema_id)
        reader = load_schema(reader_schema_name)
        try:
            record = schemaless_reader(io.BytesIO(data[CONFLUENT_HEADER.size :]), writer, reader.parsed)
        except Exception as exc:  # fastavro raises many types for bodies and unresolvable schemas
            raise ValueError(f"schema id {schema_id} does not read as {reader.name}: {exc!r}") from exc
        if not isinstance(record, dict):
            raise ValueError(f"schema id {schema_id} decoded to {type(record).__name__}, not a record")
        return record

    def knows(self, schema_id: int) -> bool:
        """Whether ``schema_id``'s writer schema is cached (decoding it needs no network)."""
        return schema_id in self._writers

    def writer_of(self, data: bytes) -> Any:
        """The writer schema a Confluent-framed value names, looked up once (blocking the first time)."""
        _, schema_id = CONFLUENT_HEADER.unpack_from(data)
        return self._writer(schema_id)

    def _writer(self, schema_id: int) -> Any:
        cached = self._writers.get(schema_id)
        if cached is not None:
            return cached
        what = f"looking up schema id {schema_id}"
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise UnknownSchemaId(
                    f"schema id {schema_id} is not in the registry at {self.url} ({exc.error_message}): the record "
                    "was written against another registry or a deleted schema and cannot be read here; the "
                    "producer must publish it again with a schema registered in this registry"
                ) from exc
            raise self._failure(exc, what) from exc
        except httpx.TransportError as exc:
            raise self._unreachable(exc, what) from exc
        if schema.schema_type not in (None, "AVRO") or schema.schema_str is None:
            raise ValueError(f"schema id {schema_id} is a {schema.schema_type} schema, not Avro")
        parsed = parse_schema(json.loads(schema.schema_str))
        self._writers[schema_id] = parsed
        return parsed

    def _compatibility(self, subject: str) -> str:
        """The subject's compatibility rule, else the registry's global one, for an error message."""
        try:
            try:
                rule = self._client.get_compatibility(subject)
            except SchemaRegistryError as exc:
                if exc.http_status_code != 404:
                    raise
                rule = "NONE"
            # Without a rule of the subject's own, Confluent answers 404 and Apicurio NONE: the global rule applies.
            return rule if rule != "NONE" else self._client.get_compatibility()
        except Exception as exc:  # noqa: BLE001 - best effort: the 409 is the error being reported
            return f"the subject's (unreadable: {exc!r})"

    def _unreachable(self, exc: Exception, what: str) -> RegistryUnavailable:
        return RegistryUnavailable(
            f"schema registry at {self.url} unreachable while {what}: {exc!r}. Retrying later; check that the "
            "registry is up and that this host can reach it."
        )

    def _failure(self, exc: SchemaRegistryError, what: str) -> RegistryError:
        if exc.http_status_code in _RETRIABLE_STATUS:
            return RegistryUnavailable(
                f"schema registry at {self.url} answered {exc.http_status_code} while {what}: {exc.error_message}. "
                "Retrying later; the registry's logs say why it fails."
            )
        return RegistryError(
            f"schema registry at {self.url} refused {what}: {exc}. Not retried: check the registry URL "
            "(for Apicurio, its /apis/ccompat/v7 base), the credentials and the schema."
        )
