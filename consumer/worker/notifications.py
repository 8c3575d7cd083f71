"""S3 bucket notifications as input: an object dropped in a watched prefix becomes an AudioReference.

MinIO's Kafka notification target publishes one record per event: the key is ``bucket/key``
and the value is the AWS S3 event layout, ``{"EventName", "Key", "Records": [one record]}``.
Each ``s3:ObjectCreated:*`` record under a prefix of ``NOTIFY_PREFIX_RULES`` becomes an
AudioReference with the NOTIFY_* defaults and the longest matching prefix's options; any other
record (a removal, an object outside the prefixes, a folder marker) asks for nothing.

The event_id is derived from the object version the notification reports (bucket, key,
versionId or else the event's sequencer, eTag), so a notification delivered twice (MinIO's
queue store resends until the broker acknowledges) is one event_id, and the worker's dedupe
skips the second; a new upload under the same key is a new event.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from consumer.contract.errors import InvalidEventError, MalformedEventError
from consumer.contract.inputs import AudioReference, ObjectRef
from consumer.plumbing.settings import PrefixRule, WorkerSettings
from pipeline.profiles import PROFILES
from pipeline.types import DiarizationMode

CREATED = "ObjectCreated:"
SOURCE = "s3-notification"
# Versions in an unversioned bucket: MinIO leaves versionId out or empty, AWS writes "null".
_NO_VERSION = {"", "null"}


class S3Bucket(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1)


class S3Object(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    key: str = Field(min_length=1, description="URL-encoded, as in S3's own notifications ('+' is a space).")
    size: int | None = Field(None, ge=0)
    etag: str | None = Field(None, alias="eTag")
    version_id: str | None = Field(None, alias="versionId")
    sequencer: str | None = None
    content_type: str | None = Field(None, alias="contentType")


class S3Entity(BaseModel):
    model_config = ConfigDict(extra="ignore")

    bucket: S3Bucket
    object: S3Object


class S3EventRecord(BaseModel):
    """One entry of ``Records``: what happened to which object (the AWS S3 event message structure)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    event_name: str = Field(alias="eventName")
    event_time: str | None = Field(None, alias="eventTime")
    s3: S3Entity

    @property
    def created(self) -> bool:
        # MinIO writes "s3:ObjectCreated:Put", AWS "ObjectCreated:Put".
        return self.event_name.removeprefix("s3:").startswith(CREATED)

    @property
    def key(self) -> str:
        return unquote_plus(self.s3.object.key)


class S3Notification(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    records: list[S3EventRecord] = Field(alias="Records")
    event_name: str | None = Field(None, alias="EventName")
    key: str | None = Field(None, alias="Key")


@dataclass(frozen=True)
class NotificationRules:
    """Watched prefixes with their options, longest first, and the defaults they override."""

    prefixes: tuple[tuple[str, PrefixRule], ...]
    profile: str = "whisper-1"
    diarization: DiarizationMode = DiarizationMode.AUTO
    language: str | None = None

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> NotificationRules:
        """The rules of NOTIFY_PREFIX_RULES and NOTIFY_*; a rule no event could satisfy fails here, at start."""
        rules = cls(
            prefixes=tuple(sorted(settings.notify_prefix_rules.items(), key=lambda kv: len(kv[0]), reverse=True)),
            profile=settings.notify_profile,
            diarization=settings.notify_diarization,
            language=settings.notify_language,
        )
        for prefix in (None, *(p for p, _ in rules.prefixes)):
            options = rules.options(prefix)
            where = f"NOTIFY_PREFIX_RULES {prefix!r}" if prefix is not None else "NOTIFY_*"
            if options["profile"] not in PROFILES:
                raise ValueError(f"{where}: unknown profile {options['profile']!r}; valid: {', '.join(PROFILES)}")
            try:
                AudioReference(event_id="check", object=ObjectRef(bucket="check", key="check"), **options)
            except ValidationError as exc:
                raise ValueError(f"{where}: {exc.errors()[0]['msg']}") from exc
        return rules

    def match(self, key: str) -> str | None:
        """The longest watched prefix of ``key``, or None when the object is not watched."""
        return next((prefix for prefix, _ in self.prefixes if key.startswith(prefix)), None)

    def options(self, prefix: str | None) -> dict[str, Any]:
        """AudioReference fields for objects under ``prefix`` (None: the defaults alone)."""
        rule = dict(self.prefixes)[prefix] if prefix is not None else PrefixRule()
        return {
            "profile": rule.profile or self.profile,
            "diarization": rule.diarization or self.diarization,
            "language": rule.language or self.language,
        }


def notification_event_id(bucket: str, key: str, version: str | None, etag: str | None) -> str:
    """Deterministic: the same object version (or the same event, by its sequencer) is the same event_id."""
    digest = hashlib.sha256("\x00".join((bucket, key, version or "", etag or "")).encode()).hexdigest()
    return f"s3-{digest[:32]}"


def parse_notification(value: bytes | None) -> S3Notification:
    """A record of the notification topic, as S3's event message; unreadable is MALFORMED, wrong shape INVALID."""
    if not value:
        raise MalformedEventError("the record has no value; expected an S3 event notification (JSON)")
    try:
        raw = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEventError("the value is not JSON; expected an S3 event notification") from exc
    if not isinstance(raw, dict):
        raise MalformedEventError(f"expected a JSON object (an S3 event notification), got {type(raw).__name__}")
    try:
        return S3Notification.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:5])
        raise InvalidEventError(f"invalid S3 event notification: {problems}") from exc


def references_from_notification(value: bytes | None, rules: NotificationRules) -> list[AudioReference]:
    """One AudioReference per ObjectCreated record under a watched prefix; [] when there is nothing to do."""
    refs = []
    for record in parse_notification(value).records:
        key = record.key
        prefix = rules.match(key)
        if not record.created or prefix is None or key.endswith("/"):  # "/" ends a folder marker, not a file
            continue
        obj = record.s3.object
        version = obj.version_id if obj.version_id not in _NO_VERSION else None
        bucket = record.s3.bucket.name
        metadata = {"source": SOURCE, "s3_event": record.event_name, "notify_prefix": prefix}
        try:
            refs.append(
                AudioReference(
                    event_id=notification_event_id(bucket, key, version or obj.sequencer, obj.etag),
                    object=ObjectRef(
                        bucket=bucket,
                        key=key,
                        version_id=version,
                        etag=obj.etag,
                        content_type=obj.content_type,
                        size_bytes=obj.size,
                    ),
                    metadata=metadata,
                    produced_at=record.event_time,
                    **rules.options(prefix),
                )
            )
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
            raise InvalidEventError(f"s3://{bucket}/{key} cannot be transcribed as notified: {problems}") from exc
    return refs


def reference_from_notification(value: bytes | None, rules: NotificationRules) -> AudioReference | None:
    """The one AudioReference of a notification record, or None when it asks for nothing.

    The worker turns one input record into one outcome. MinIO and S3's Kafka bridges publish one
    event per record, so a record naming several objects is refused rather than half processed.
    """
    refs = references_from_notification(value, rules)
    if len(refs) > 1:
        names = ", ".join(f"s3://{r.object.bucket}/{r.object.key}" for r in refs[:3])
        raise InvalidEventError(
            f"the notification names {len(refs)} objects to transcribe ({names}...); "
            "the stage takes one per record, as MinIO publishes them"
        )
    return refs[0] if refs else None
