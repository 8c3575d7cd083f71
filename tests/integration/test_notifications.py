"""Drop a file in the bucket: MinIO announces it on Kafka, the worker transcribes it; nobody writes an event.

The embedded stack's MinIO publishes every object created under `incoming/` of the bucket to
`audio.notifications` (devtools/stack/notify.py). That topic is shared by every test run, so
each test watches only its own sub-prefix: everything else on the topic (older runs' uploads)
is a notification about nothing this worker watches, and must be skipped without output.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from consumer.client import ResultReader, upload
from consumer.plumbing.kafka import make_consumer, make_producer, partitions_for, start_consumer
from consumer.plumbing.settings import PrefixRule
from consumer.plumbing.storage import make_client
from devtools.samples import SAMPLES
from devtools.settings import DevSettings
from devtools.stack.notify import STACK_NOTIFICATION_TOPIC, TARGET_ARN
from pipeline.stage import Pipeline
from tests.integration.conftest import running_worker
from tests.integration.test_end_to_end import MAX_CLIP_WER, wer

pytestmark = pytest.mark.integration


@pytest.fixture
def notify_settings(settings: DevSettings) -> DevSettings:
    """The test's fresh topics and group, reading the stack's notification topic, watching its own prefix."""
    prefix = f"incoming/{settings.kafka_group_id}/"
    return settings.model_copy(
        update={
            "kafka_notification_topic": STACK_NOTIFICATION_TOPIC,
            "notify_prefix_rules": {prefix: PrefixRule(profile="whisper-1-fast")},
        }
    )


async def notification_ends(settings: DevSettings) -> dict[TopicPartition, int]:
    consumer = make_consumer(settings, group_id=None)
    await start_consumer(consumer)
    try:
        tps = [
            TopicPartition(STACK_NOTIFICATION_TOPIC, p)
            for p in sorted(await partitions_for(consumer, STACK_NOTIFICATION_TOPIC))
        ]
        return await consumer.end_offsets(tps)
    finally:
        await consumer.stop()


async def notifications_since(settings: DevSettings, starts: dict[TopicPartition, int]) -> list[tuple[bytes, bytes]]:
    """(key, value) of every notification published after ``starts``."""
    ends = await notification_ends(settings)
    consumer = make_consumer(settings, group_id=None)
    await start_consumer(consumer)
    found = []
    try:
        wanted = {tp: end for tp, end in ends.items() if end > starts.get(tp, 0)}
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, starts.get(tp, 0))
        while wanted:
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                found += [(r.key, r.value) for r in records]
                if records and records[-1].offset + 1 >= wanted.get(tp, 0):
                    wanted.pop(tp, None)
    finally:
        await consumer.stop()
    return found


async def test_an_uploaded_file_is_transcribed_without_any_event(
    notify_settings: DevSettings, pipeline: Pipeline, samples: dict[str, Path], reader: ResultReader, tmp_path: Path
) -> None:
    s = notify_settings
    rules = make_client(s).get_bucket_notification(s.s3_bucket).queue_config_list
    assert any(q.queue == TARGET_ARN for q in rules), (
        "the stack's MinIO announces nothing: it was started by an older `fwv2 stack up` without the Kafka "
        "target; restart it (`fwv2 stack down`, then `fwv2 stack up`)"
    )
    [prefix] = s.notify_prefix_rules
    clip = next(c for c in SAMPLES if c.name == "weather")
    notes = tmp_path / "notes.txt"
    notes.write_text("minutes of the meeting, not a recording\n")
    audio_key = f"{prefix}weather report+1 (Köln).wav"  # a key MinIO must URL-encode in the notification
    notes_key = f"{prefix}notes.txt"
    outside_key = f"elsewhere/{s.kafka_group_id}/weather.wav"
    before = await notification_ends(s)

    async with running_worker(s, pipeline):
        upload(s, samples["weather"], key=outside_key)
        upload(s, samples["weather"], key=audio_key)
        upload(s, notes, key=notes_key)
        results = {}

        async def collect() -> None:
            async for result in reader.results():
                results[result.kind] = result
                if len(results) == 2:
                    return

        await asyncio.wait_for(collect(), 180)
        # MinIO published exactly the two watched uploads; the one outside the prefix was never announced.
        announced = await notifications_since(s, before)
        keys = {key for key, _ in announced}
        assert {f"audio/{audio_key}".encode(), f"audio/{notes_key}".encode()} <= keys
        assert f"audio/{outside_key}".encode() not in keys

    # A notification delivered again (MinIO's queue store resends until acknowledged) is a duplicate,
    # also for a worker that did not transcribe it and meets it first thing after its assignment (on a
    # partition whose number is not the transcript's): it must have read the outputs before checking.
    audio_value = next(v for k, v in announced if k == f"audio/{audio_key}".encode())
    other_partition = (results["transcript"].partition + 1) % 3
    producer = make_producer(s)
    await producer.start()
    try:
        await producer.send_and_wait(
            STACK_NOTIFICATION_TOPIC, audio_value, key=f"audio/{audio_key}".encode(), partition=other_partition
        )
    finally:
        await producer.stop()
    async with running_worker(s, pipeline) as second:
        deadline = time.monotonic() + 60
        while second.metrics.duplicates._value.get() < 1:
            assert time.monotonic() < deadline, "the redelivered notification was not skipped"
            await asyncio.sleep(0.2)
        extra = [r async for r in reader.results(idle_timeout_s=3)]

    transcript = results["transcript"].transcript
    assert transcript.object.bucket == "audio" and transcript.object.key == audio_key
    assert transcript.event_id.startswith("s3-") and transcript.profile == "whisper-1-fast"
    assert transcript.metadata["source"] == "s3-notification" and transcript.metadata["notify_prefix"] == prefix
    assert wer(clip.text, transcript.text) <= MAX_CLIP_WER, transcript.text
    assert results["transcript"].topic == s.kafka_output_topic

    letter = results["dead_letter"].dead_letter
    assert letter.code == "UNDECODABLE_AUDIO" and letter.source.topic == STACK_NOTIFICATION_TOPIC
    assert letter.original_key == f"audio/{notes_key}".encode()  # names the object
    assert notes_key.replace("/", "%2F").encode() in letter.original_value  # the notification itself
    assert letter.event_id.startswith("s3-")

    assert extra == []  # no second transcript, nothing for the object outside the prefix
