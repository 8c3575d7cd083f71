"""Decoding real files made with ffmpeg and espeak-ng, and the errors for what is not audio."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline.decode import SAMPLE_RATE, decode_audio
from pipeline.errors import AudioTooLongError, EmptyAudioError, ErrorCode, UndecodableAudioError


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audio") / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(out), "Testing one two three, this is a test."], check=True)
    return out


@pytest.mark.parametrize(
    ("suffix", "args"),
    [
        ("mp3", []),
        ("flac", []),
        ("ogg", ["-c:a", "libopus"]),
        ("m4a", ["-c:a", "aac"]),
        ("webm", ["-c:a", "libopus"]),
        ("six.wav", ["-ac", "6", "-ar", "48000"]),
        ("hi.wav", ["-ar", "192000"]),
    ],
)
@pytest.mark.tools  # ffmpeg and espeak-ng make the files
def test_common_formats_decode_to_16k_mono(speech: Path, tmp_path: Path, suffix: str, args: list[str]) -> None:
    target = tmp_path / f"clip.{suffix}"
    _ffmpeg("-i", str(speech), *args, str(target))
    audio = decode_audio(target.read_bytes(), 3600)
    reference = decode_audio(speech.read_bytes(), 3600)
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.samples.ndim == 1 and str(audio.samples.dtype) == "float32"
    assert abs(audio.duration_s - reference.duration_s) < 0.1
    assert audio.warnings == ()


@pytest.mark.tools  # ffmpeg and espeak-ng make the files
def test_video_with_audio_track(speech: Path, tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=32x32:d=2",
        "-i",
        str(speech),
        "-shortest",
        "-c:v",
        "libx264",
        "-c:a",
        "aac",
        str(target),
    )
    assert decode_audio(target.read_bytes(), 3600).duration_s > 1.5


@pytest.mark.tools  # ffmpeg and espeak-ng make the files
def test_truncated_mp3_is_a_partial_decode_with_a_warning(speech: Path, tmp_path: Path) -> None:
    target = tmp_path / "clip.mp3"
    _ffmpeg("-i", str(speech), str(target))
    data = target.read_bytes()
    audio = decode_audio(data[: len(data) // 2], 3600)
    assert audio.duration_s > 0.5
    assert any(w.startswith("TRUNCATED_AUDIO") for w in audio.warnings)


def test_empty_bytes() -> None:
    with pytest.raises(EmptyAudioError) as info:
        decode_audio(b"", 3600)
    assert info.value.code is ErrorCode.EMPTY_AUDIO


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n" + b"\x00" * 512, b"hello, this is text and not audio" * 20])
def test_not_audio_is_undecodable(data: bytes) -> None:
    with pytest.raises(UndecodableAudioError) as info:
        decode_audio(data, 3600)
    assert info.value.code is ErrorCode.UNDECODABLE_AUDIO
    assert not info.value.retriable


@pytest.mark.tools  # ffmpeg and espeak-ng make the files
def test_declared_duration_over_the_limit_fails_before_decoding(speech: Path) -> None:
    with pytest.raises(AudioTooLongError, match="declares"):
        decode_audio(speech.read_bytes(), 1.0)


@pytest.mark.tools  # ffmpeg makes the file
def test_stream_without_duration_stops_at_the_limit(tmp_path: Path) -> None:
    # A raw ADTS stream declares no reliable duration; decoding must stop at the limit by itself.
    target = tmp_path / "long.aac"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=30", "-c:a", "aac", "-f", "adts", str(target))
    with pytest.raises(AudioTooLongError):
        decode_audio(target.read_bytes(), 5.0)
