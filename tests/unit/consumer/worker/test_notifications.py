"""Bucket notifications to AudioReferences: parsing, rules, event ids, and the stack's MinIO settings.

fixtures/minio_object_created.json is a record value MinIO published on the embedded stack's
notification topic for `put_object("audio", "incoming/fixture/Meeting notes+1 (Köln).wav")`;
its key arrives URL-encoded ("+" for a space, "%2B" for a plus). Other shapes are derived from it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from minio.notificationconfig import NotificationConfig, PrefixFilterRule, QueueConfig
from pydantic import ValidationError

from consumer.contract.errors import InvalidEventError, MalformedEventError
from consumer.plumbing.provision import TARGET_ARN, notification_config, watched_prefixes
from consumer.plumbing.settings import PrefixRule
from consumer.worker.notifications import (
    NotificationRules,
    notification_event_id,
    reference_from_notification,
    references_from_notification,
)
from devtools.settings import DevSettings
from devtools.stack.notify import minio_env
from pipeline.types import DiarizationMode

FIXTURE = Path(__file__).parent / "fixtures" / "minio_object_created.json"
KEY = "incoming/fixture/Meeting notes+1 (Köln).wav"


@pytest.fixture
def payload() -> dict[str, Any]:
    return json.loads(FIXTURE.read_bytes())


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def rules(**settings: Any) -> NotificationRules:
    return NotificationRules.from_settings(DevSettings(**settings))


def test_a_real_minio_notification_becomes_one_reference(payload: dict[str, Any]) -> None:
    [ref] = references_from_notification(FIXTURE.read_bytes(), rules())
    assert ref.object.bucket == "audio"
    assert ref.object.key == KEY == payload["Key"].removeprefix("audio/")  # decoded like MinIO's own record key
    assert ref.object.etag == "6e5cd6c02e5c9f815c226496ceceea48"
    assert ref.object.size_bytes == 44 and ref.object.content_type == "audio/wav"
    assert ref.object.version_id is None  # unversioned bucket: fetch the latest
    assert ref.profile == "whisper-1" and ref.diarization is DiarizationMode.AUTO and ref.language is None
    assert ref.produced_at == datetime(2026, 11, 25, 8, 36, 59, 447000, tzinfo=UTC)
    assert ref.metadata == {
        "source": "s3-notification",
        "s3_event": "s3:ObjectCreated:Put",
        "notify_prefix": "incoming/",
    }
    assert ref.event_id.startswith("s3-") and len(ref.event_id) == 35


def test_event_id_is_the_same_for_a_redelivery_and_new_for_a_new_upload(payload: dict[str, Any]) -> None:
    def event_id(p: dict[str, Any]) -> str:
        return references_from_notification(encode(p), rules())[0].event_id

    first = event_id(payload)
    assert event_id(copy.deepcopy(payload)) == first  # MinIO's queue store resending the same event
    overwritten = copy.deepcopy(payload)
    overwritten["Records"][0]["s3"]["object"].update(eTag="0" * 32, sequencer="18EB3CE26244A7FF")
    assert event_id(overwritten) != first
    same_bytes_again = copy.deepcopy(payload)  # same content uploaded again: a new event
    same_bytes_again["Records"][0]["s3"]["object"]["sequencer"] = "18EB3CE26244A7FF"
    assert event_id(same_bytes_again) != first


def test_a_version_id_identifies_the_object_instead_of_the_sequencer(payload: dict[str, Any]) -> None:
    obj = payload["Records"][0]["s3"]["object"]
    obj["versionId"] = "5b1c3f0e-0000-4000-8000-000000000001"
    [ref] = references_from_notification(encode(payload), rules())
    assert ref.object.version_id == obj["versionId"]
    obj["sequencer"] = "ANOTHER"
    assert references_from_notification(encode(payload), rules())[0].event_id == ref.event_id
    assert ref.event_id == notification_event_id("audio", KEY, obj["versionId"], obj["eTag"])


def test_aws_shaped_records_are_read_too(payload: dict[str, Any]) -> None:
    record = payload["Records"][0]
    record["eventName"] = "ObjectCreated:CompleteMultipartUpload"  # AWS writes no "s3:" prefix
    record["s3"]["object"]["versionId"] = "null"  # AWS's word for an unversioned object
    [ref] = references_from_notification(encode(payload), rules())
    assert ref.object.version_id is None and ref.object.key == KEY


@pytest.mark.parametrize(
    ("event_name", "key"),
    [
        ("s3:ObjectRemoved:Delete", "incoming%2Fa.wav"),
        ("s3:ObjectAccessed:Get", "incoming%2Fa.wav"),
        ("s3:ObjectCreated:Put", "elsewhere%2Fa.wav"),  # outside every watched prefix
        ("s3:ObjectCreated:Put", "incomingX%2Fa.wav"),  # a prefix is a prefix of the key, not a folder name
        ("s3:ObjectCreated:PutRetention", "incoming%2Fnested%2F"),  # a folder marker
    ],
)
def test_records_that_ask_for_nothing_are_ignored(payload: dict[str, Any], event_name: str, key: str) -> None:
    record = payload["Records"][0]
    record["eventName"] = event_name
    record["s3"]["object"]["key"] = key
    assert references_from_notification(encode(payload), rules()) == []
    assert reference_from_notification(encode(payload), rules()) is None


def test_the_longest_matching_prefix_sets_the_options(payload: dict[str, Any]) -> None:
    r = rules(
        notify_prefix_rules={
            "incoming/": PrefixRule(),
            "incoming/fixture/": PrefixRule(profile="whisper-1-quality", diarization=DiarizationMode.ALWAYS),
            "incoming/fixture/Meeting": PrefixRule(language="DE"),
        },
        notify_profile="whisper-1-fast",
        notify_language="en",
    )
    [ref] = references_from_notification(encode(payload), r)
    # Only the longest rule counts; what it leaves unset comes from NOTIFY_*.
    assert (ref.profile, ref.diarization, ref.language) == ("whisper-1-fast", DiarizationMode.AUTO, "de")
    assert ref.metadata["notify_prefix"] == "incoming/fixture/Meeting"
    payload["Records"][0]["s3"]["object"]["key"] = "incoming%2Ffixture%2Fother.wav"
    [ref] = references_from_notification(encode(payload), r)
    assert (ref.profile, ref.diarization, ref.language) == ("whisper-1-quality", DiarizationMode.ALWAYS, "en")
    payload["Records"][0]["s3"]["object"]["key"] = "incoming%2Fthird.wav"
    [ref] = references_from_notification(encode(payload), r)
    assert (ref.profile, ref.diarization, ref.language) == ("whisper-1-fast", DiarizationMode.AUTO, "en")


def test_the_rules_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_PREFIX_RULES", '{"calls/": {"profile": "whisper-1-fast", "diarization": "always"}}')
    s = DevSettings()
    assert s.notify_prefix_rules == {"calls/": PrefixRule(profile="whisper-1-fast", diarization=DiarizationMode.ALWAYS)}
    assert DevSettings.model_fields["kafka_notification_topic"].default == ""  # off unless asked for
    monkeypatch.setenv("NOTIFY_PREFIX_RULES", '{"calls/": {"profle": "whisper-1-fast"}}')
    with pytest.raises(ValidationError, match="profle"):
        DevSettings()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"notify_prefix_rules": {"a/": PrefixRule(profile="whisper-9")}}, "'a/': unknown profile 'whisper-9'"),
        ({"notify_prefix_rules": {"a/": PrefixRule(language="xx")}}, "'a/': .*unknown language code 'xx'"),
        ({"notify_profile": "nope"}, "NOTIFY_\\*: unknown profile 'nope'"),
    ],
)
def test_a_rule_no_event_could_satisfy_fails_at_start(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rules(**settings)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (None, MalformedEventError, "no value"),
        (b"", MalformedEventError, "no value"),
        (b"\x00\x01 not json", MalformedEventError, "not JSON"),
        (b"[1, 2]", MalformedEventError, "got list"),
        (b'{"event_id": "x", "object": {"bucket": "audio", "key": "a.wav"}}', InvalidEventError, "Records"),
        (b'{"Records": [{"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {}}}]}', InvalidEventError, "bucket"),
    ],
)
def test_unreadable_notifications_are_the_same_errors_as_unreadable_events(
    value: bytes | None, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        references_from_notification(value, rules())


def test_a_notification_naming_an_untranscribable_object_is_invalid(payload: dict[str, Any]) -> None:
    payload["Records"][0]["s3"]["bucket"]["name"] = "ab"  # no bucket has a two-letter name
    with pytest.raises(InvalidEventError, match="s3://ab/incoming/fixture/"):
        references_from_notification(encode(payload), rules())


def test_several_objects_in_one_record_are_refused_not_half_done(payload: dict[str, Any]) -> None:
    second = copy.deepcopy(payload["Records"][0])
    second["s3"]["object"]["key"] = "incoming%2Fb.wav"
    payload["Records"].append(second)
    assert len(references_from_notification(encode(payload), rules())) == 2
    with pytest.raises(InvalidEventError, match="names 2 objects"):
        reference_from_notification(encode(payload), rules())


# --- The embedded stack's side --------------------------------------------------------------


def test_minio_gets_a_durable_kafka_target(tmp_path: Path) -> None:
    env = minio_env(DevSettings(stack_dir=tmp_path / "stack", kafka_port=29092))
    assert env["MINIO_NOTIFY_KAFKA_ENABLE_FWV2"] == "on"
    assert env["MINIO_NOTIFY_KAFKA_BROKERS_FWV2"] == "127.0.0.1:29092"
    assert env["MINIO_NOTIFY_KAFKA_TOPIC_FWV2"] == "audio.notifications"
    queue = Path(env["MINIO_NOTIFY_KAFKA_QUEUE_DIR_FWV2"])
    assert queue.is_absolute() and queue.is_dir() and queue.is_relative_to(tmp_path / "stack")
    assert TARGET_ARN == "arn:minio:sqs::FWV2:kafka"


def test_one_filter_per_outermost_prefix() -> None:
    assert watched_prefixes(["incoming/", "incoming/meetings/", "calls/", "calls/"]) == ["calls/", "incoming/"]
    assert watched_prefixes(["", "incoming/"]) == [""]


def test_the_bucket_notification_keeps_other_targets_rules() -> None:
    other = QueueConfig(["s3:ObjectRemoved:*"], config_id="audit", queue="arn:minio:sqs::AUDIT:webhook")
    stale = QueueConfig(["s3:ObjectCreated:*"], prefix_filter_rule=PrefixFilterRule("old/"), queue=TARGET_ARN)
    config = notification_config(NotificationConfig(queue_config_list=[other, stale]), ["incoming/", "incoming/x/"])
    assert config.queue_config_list[0] is other
    [ours] = config.queue_config_list[1:]
    assert ours.queue == TARGET_ARN and ours.events == ["s3:ObjectCreated:*"]
    assert ours.prefix_filter_rule is not None and ours.prefix_filter_rule.value == "incoming/"


# --- The worker's side ------------------------------------------------------------------------


async def test_the_worker_reads_every_output_partition_when_assigned_notifications(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MinIO partitions by its own hash, so a notification's transcript may be in any output partition."""
    from consumer.worker import loop as worker_module

    warmed: list[list[int] | None] = []

    async def warm(settings: DevSettings, store: object, partitions: Iterable[int] | None) -> int:
        warmed.append(None if partitions is None else sorted(partitions))
        return 0

    monkeypatch.setattr(worker_module.dedupe, "warm", warm)
    # A worker that never runs: no broker (no delivery yet), no object store, no model.
    settings = DevSettings(kafka_notification_topic="audio.notifications", result_cache_enabled=False)
    pipeline = SimpleNamespace(transcriber=SimpleNamespace(info=SimpleNamespace(device="cpu")), diarizer=None)
    worker = worker_module.Worker(settings, pipeline, store=SimpleNamespace())  # type: ignore[arg-type]
    listener = worker_module._DrainOnRevoke(worker)
    await listener.on_partitions_assigned(
        {TopicPartition("audio.references", 1), TopicPartition("audio.references", 4)}
    )
    assert warmed == [[1, 4]] and worker.warmed.is_set()
    await listener.on_partitions_assigned(
        {TopicPartition("audio.references", 1), TopicPartition("audio.notifications", 2)}
    )
    assert warmed == [[1, 4], None]
