"""Long audio in windows: cuts in quiet moments, and the same words as one call, on the clip's timeline."""

from __future__ import annotations

import numpy as np
import pytest

from devtools.samples import SAMPLES, make_samples
from pipeline.config import EngineConfig
from pipeline.decode import decode_audio
from pipeline.transcribe import Transcriber
from pipeline.types import DecodedAudio, TranscriptionRequest
from pipeline.windows import SAMPLE_RATE, quiet_cut, windows
from tests.integration.test_end_to_end import wer


def test_windows_cover_the_clip_in_order_and_cut_where_it_is_quiet() -> None:
    rng = np.random.default_rng(0)
    samples = rng.normal(0, 0.3, 100 * SAMPLE_RATE).astype(np.float32)
    samples[52 * SAMPLE_RATE : int(52.3 * SAMPLE_RATE)] = 0.0  # a pause near the first window's end
    spans = windows(samples, 60.0)
    assert spans[0][0] == 0 and spans[-1][1] == len(samples)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert 52 * SAMPLE_RATE <= spans[0][1] <= 52.3 * SAMPLE_RATE  # inside the pause, not at 60 s
    assert windows(samples, 0) == [(0, len(samples))] == windows(samples, 200.0)
    assert quiet_cut(samples, len(samples) + 5) == len(samples)


@pytest.mark.tools  # the clip is made with espeak-ng and ffmpeg
def test_a_windowed_clip_reads_like_one_call(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = make_samples(tmp_path)
    gap = np.zeros(SAMPLE_RATE, dtype=np.float32)
    parts = []
    for clip in SAMPLES * 2:
        parts += [decode_audio(paths[clip.name].read_bytes(), 3600).samples, gap]
    samples = np.concatenate(parts)  # about 64 s of speech and pauses
    audio = DecodedAudio(samples=samples, sample_rate=SAMPLE_RATE, duration_s=len(samples) / SAMPLE_RATE)
    said = " ".join(c.text for c in SAMPLES * 2)
    request = TranscriptionRequest(profile="whisper-1")
    whole = Transcriber(EngineConfig(cpu_threads=2, long_audio_window_s=0)).transcribe(audio, request)
    windowed = Transcriber(EngineConfig(cpu_threads=2, long_audio_window_s=20)).transcribe(audio, request)
    assert len(windows(samples, 20)) >= 3
    assert wer(said, windowed.text) <= wer(said, whole.text) + 0.05, (windowed.text, whole.text)
    starts = [s.start for s in windowed.segments]
    assert starts == sorted(starts) and windowed.segments[-1].end > 50  # on the clip's own timeline
    assert [s.id for s in windowed.segments] == list(range(len(windowed.segments)))
