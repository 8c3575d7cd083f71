"""Long audio is decoded into one buffer: the waveform is held once, with faster-whisper's own values."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.audio import decode_audio as faster_whisper_decode

from pipeline.decode import SAMPLE_RATE, _SampleBuffer, decode_audio


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


def _rss_peak() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


@pytest.mark.parametrize(("suffix", "args"), [("wav", []), ("mp3", []), ("aac", ["-c:a", "aac", "-f", "adts"])])
@pytest.mark.tools  # ffmpeg makes the files
def test_same_samples_as_faster_whisper(tmp_path: Path, suffix: str, args: list[str]) -> None:
    # adts declares no duration, so the buffer starts small and grows: the values must not change.
    target = tmp_path / f"tone.{suffix}"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=75", "-ar", "44100", *args, str(target))
    ours = decode_audio(target.read_bytes(), 3600).samples
    theirs = faster_whisper_decode(str(target))
    assert ours.dtype == np.float32 and ours.flags["C_CONTIGUOUS"]
    assert np.array_equal(ours, theirs)


def test_buffer_grows_and_trims_without_losing_samples() -> None:
    buffer = _SampleBuffer(10)
    chunks = [np.arange(-500, 500, dtype=np.int16) * (i + 1) for i in range(40)]  # 40 000 > 16 000 reserved
    for chunk in chunks:
        buffer.append(chunk)
    out = buffer.finish()
    assert out.shape == (40_000,)
    assert np.array_equal(out, np.concatenate(chunks).astype(np.float32) / 32768.0)


@pytest.mark.tools  # ffmpeg makes the files
def test_ten_minutes_cost_one_copy_of_the_waveform(tmp_path: Path) -> None:
    # 600 s of 16 kHz float32 is 38 MB; concatenating int16 chunks and then scaling held it 3-4 times.
    target = tmp_path / "long.mp3"
    _ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=300:duration=600:sample_rate=16000", "-ac", "1", "-b:a", "32k", str(target)
    )
    data = target.read_bytes()
    decode_audio(data[:50_000], 3600)  # the decoder's own first-use allocations, outside the measurement
    before = _rss_peak()
    audio = decode_audio(data, 3600)
    waveform = audio.samples.nbytes
    assert abs(audio.duration_s - 600) < 1 and waveform == 600 * SAMPLE_RATE * 4
    # VmHWM is the process's high-water mark: the growth it can show is at most what this decode added.
    assert _rss_peak() - before < 1.5 * waveform
