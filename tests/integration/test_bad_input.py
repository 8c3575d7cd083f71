"""The bad-input catalogue: every case has a defined outcome, and the worker keeps going."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
from pathlib import Path

import pytest

from consumer.client import ResultReader, new_reference, upload
from consumer.plumbing.kafka import make_producer
from consumer.worker.runner import build_pipeline
from devtools.settings import DevSettings
from tests.integration.conftest import running_worker

pytestmark = pytest.mark.integration


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


def _wav_claiming_hours(path: Path) -> Path:
    """A WAV header whose data chunk claims 4 GB (37 hours at 16 kHz mono) over one second of data."""
    data = b"\x00\x01" * 16_000
    header = b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16_000, 32_000, 2, 16)
    path.write_bytes(header + fmt + b"data" + struct.pack("<I", 0xFFFFFF00) + data)
    return path


@pytest.fixture
def files(tmp_path: Path, samples: dict[str, Path]) -> dict[str, Path]:
    speech = samples["weather"]
    out = {
        "short": tmp_path / "short.wav",
        "silence": tmp_path / "silence.flac",
        "six_channel": tmp_path / "six.wav",
        "hi_rate": tmp_path / "hi.wav",
        "video_mp4": tmp_path / "clip.mp4",
        "video_webm": tmp_path / "clip.webm",
        "endless": tmp_path / "endless.webm",
        "big": tmp_path / "big.wav",
        "mp3": tmp_path / "full.mp3",
        "long_mp3": tmp_path / "long.mp3",
    }
    _ffmpeg("-i", str(speech), "-t", "0.1", str(out["short"]))
    _ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "600", str(out["silence"]))
    _ffmpeg("-i", str(speech), "-ac", "6", "-ar", "48000", str(out["six_channel"]))
    _ffmpeg("-i", str(speech), "-ar", "192000", str(out["hi_rate"]))
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=32x32:d=8",
        "-i",
        str(speech),
        "-shortest",
        "-c:v",
        "libx264",
        "-c:a",
        "aac",
        str(out["video_mp4"]),
    )
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=32x32:d=8",
        "-i",
        str(speech),
        "-shortest",
        "-c:v",
        "libvpx",
        "-c:a",
        "libopus",
        str(out["video_webm"]),
    )
    # A live-mode WebM declares no duration: only decoding can find out it is too long.
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300:duration=800",
        "-c:a",
        "libopus",
        "-b:a",
        "12k",
        "-f",
        "webm",
        "-live",
        "1",
        str(out["endless"]),
    )
    _ffmpeg("-f", "lavfi", "-i", "anoisesrc=r=16000:d=200", str(out["big"]))  # 6.4 MB
    _ffmpeg("-i", str(speech), str(out["mp3"]))
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=800", "-ar", "8000", "-b:a", "8k", str(out["long_mp3"]))
    truncated = tmp_path / "truncated.mp3"
    truncated.write_bytes(out["mp3"].read_bytes()[: out["mp3"].stat().st_size // 2])
    out["truncated"] = truncated
    out["claims_hours"] = _wav_claiming_hours(tmp_path / "hours.wav")
    return out


async def test_catalogue(
    settings: DevSettings, files: dict[str, Path], samples: dict[str, Path], reader: ResultReader
) -> None:
    # Limits low enough to exercise: 700 s of audio, 6 MB objects (the 6-channel 48 kHz wav is 4.6 MB).
    s = settings.model_copy(update={"max_audio_duration_s": 700.0, "max_object_bytes": 6_000_000})
    limited = build_pipeline(s)  # loading tiny.en takes a fraction of a second
    ok = {
        name: new_reference(upload(s, files[name]))
        for name in ("short", "silence", "six_channel", "hi_rate", "video_mp4", "video_webm", "truncated")
    }
    fail = {
        "AUDIO_TOO_LONG": new_reference(upload(s, files["endless"])),
        "OBJECT_TOO_LARGE": new_reference(upload(s, files["big"])),
    }
    claims_hours = new_reference(upload(s, files["claims_hours"]))
    declares_long = new_reference(upload(s, files["long_mp3"]))
    good = new_reference(upload(s, samples["train"]))
    twice = new_reference(upload(s, samples["kitchen"]))
    base = {"event_id": "meta-bad", "object": {"bucket": "audio", "key": "x.wav"}}
    raw_values = {
        "non_utf8_metadata": json.dumps(base).encode().replace(b'"x.wav"', b'"x.wav", "metadata": {"k": "\xff\xfe"}'),
        "huge_metadata": json.dumps({**base, "event_id": "meta-huge", "metadata": {"k": "v" * 100_000}}).encode(),
    }
    producer = make_producer(s)
    await producer.start()
    key = b"one-partition"  # all on one partition: the good event waits behind every bad one
    try:
        for ref in [*ok.values(), *fail.values(), claims_hours, declares_long]:
            await producer.send_and_wait(s.kafka_input_topic, ref.to_json(), key=key)
        for value in raw_values.values():
            await producer.send_and_wait(s.kafka_input_topic, value, key=key)
        await producer.send_and_wait(s.kafka_input_topic, twice.to_json(), key=key)
        await producer.send_and_wait(s.kafka_input_topic, twice.to_json(), key=key)  # the same event again
        await producer.send_and_wait(s.kafka_input_topic, good.to_json(), key=key)
    finally:
        await producer.stop()

    seen = []
    async with running_worker(s, limited):

        async def collect() -> None:
            async for result in reader.results():
                seen.append(result)
                if result.event_id == good.event_id:
                    return

        await asyncio.wait_for(collect(), 300)
        # Nothing more arrives for the duplicate.
        seen.extend([r async for r in reader.results(idle_timeout_s=2)])

    by_id: dict[str | None, list] = {}
    for r in seen:
        by_id.setdefault(r.event_id, []).append(r)
    for name, ref in ok.items():
        [result] = by_id[ref.event_id]
        assert result.kind == "transcript", (name, result.dead_letter)
    texts = {name: by_id[ref.event_id][0].transcript for name, ref in ok.items()}
    assert texts["silence"].text == "" and texts["silence"].duration_s == pytest.approx(600, abs=1)
    assert texts["short"].duration_s < 0.2
    assert any(w.startswith("TRUNCATED_AUDIO") for w in texts["truncated"].warnings)
    for name in ("six_channel", "hi_rate", "video_mp4", "video_webm"):
        assert "sunny" in texts[name].text.lower(), (name, texts[name].text)
    for code, ref in fail.items():
        [result] = by_id[ref.event_id]
        assert (result.kind, result.dead_letter.code) == ("dead_letter", code), result
    [endless] = by_id[fail["AUDIO_TOO_LONG"].event_id]
    assert "longer than the limit" in endless.dead_letter.message  # found while decoding, stopped there
    [declared] = by_id[declares_long.event_id]  # refused from the header, before decoding
    assert declared.dead_letter.code == "AUDIO_TOO_LONG" and "declares" in declared.dead_letter.message
    # A WAV header claiming 37 hours over one second of data: FFmpeg bounds the claim by the
    # file's size, so the second that is there is transcribed and the claim costs nothing.
    [hours] = by_id[claims_hours.event_id]
    assert hours.kind == "transcript" and hours.transcript.duration_s == pytest.approx(1.0, abs=0.1)
    assert by_id["meta-huge"][0].dead_letter.code == "INVALID_EVENT"
    non_utf8 = [
        r
        for r in by_id[None]
        if r.kind == "dead_letter" and r.dead_letter.original_value == raw_values["non_utf8_metadata"]
    ]
    assert [r.dead_letter.code for r in non_utf8] == ["MALFORMED_EVENT"]
    assert [r.kind for r in by_id[twice.event_id]] == ["transcript"]  # once, not twice
    assert seen[-1].event_id == good.event_id or by_id[good.event_id][0].kind == "transcript"
