"""The stage runs diarization beside transcription and joins them; a fake diarizer stands in for torch."""

from __future__ import annotations

import io
import threading
import time
import wave

import numpy as np
import pytest

from consumer.plumbing.settings import Settings
from pipeline.config import EngineConfig
from pipeline.diarization import SpeakerTurn
from pipeline.errors import ResourceExhaustedError
from pipeline.stage import Pipeline
from pipeline.types import DiarizationMode, DiarizationStatus, Granularity, TranscriptionRequest


class FakeDiarizer:
    """Records which thread it ran on and whether transcription was running at that moment."""

    def __init__(
        self, turns: tuple[SpeakerTurn, ...] = (), error: Exception | None = None, delay_s: float = 0.0
    ) -> None:
        self.turns = turns
        self.error = error
        self.delay_s = delay_s  # how long the speakers take after the transcription has started
        self.threads: list[str] = []
        self.transcribing = threading.Event()
        self.saw_transcription_running = False

    def diarize(
        self, samples: np.ndarray, min_speakers: int | None, max_speakers: int | None
    ) -> tuple[SpeakerTurn, ...]:
        self.threads.append(threading.current_thread().name)
        self.saw_transcription_running = self.transcribing.wait(timeout=30)
        time.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return self.turns

    def warm_up(self) -> None:
        pass


def _wav(seconds: float) -> bytes:
    t = np.arange(int(seconds * 16_000)) / 16_000
    pcm = (0.1 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


@pytest.fixture
def stage() -> Pipeline:
    return Pipeline(EngineConfig(cpu_threads=1), diarization_min_s=30.0)


def _with(stage: Pipeline, fake: FakeDiarizer) -> Pipeline:
    from concurrent.futures import ThreadPoolExecutor

    stage.diarizer = fake  # type: ignore[assignment]
    stage._diarize_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diarize")
    real = stage.transcriber.transcribe

    def transcribe(audio, request, progress=None):  # type: ignore[no-untyped-def]
        fake.transcribing.set()  # the diarizer waits for this: proof the two overlap
        return real(audio, request, progress)

    stage.transcriber.transcribe = transcribe  # type: ignore[method-assign]
    return stage


SPEAKERS = TranscriptionRequest(granularities=frozenset({Granularity.WORD, Granularity.SPEAKER}))


def test_diarization_runs_on_its_own_thread_while_whisper_transcribes(stage: Pipeline) -> None:
    fake = FakeDiarizer(turns=(SpeakerTurn(0.0, 40.0, "SPEAKER_00"),))
    out = _with(stage, fake).process(_wav(31), SPEAKERS)
    assert out.diarization.status is DiarizationStatus.APPLIED
    assert fake.threads and fake.threads[0].startswith("diarize")
    assert fake.saw_transcription_running
    assert out.diarize_s > 0
    assert [s.id for s in out.speakers] in (["SPEAKER_00"], [])  # a tone may give no words to attach


def test_a_failed_diarization_still_returns_the_transcript(stage: Pipeline) -> None:
    fake = FakeDiarizer(error=ValueError("no speech"))
    out = _with(stage, fake).process(_wav(31), SPEAKERS)
    assert out.diarization.status is DiarizationStatus.FAILED
    assert "no speech" in (out.diarization.reason or "")


def test_no_turns_is_reported_as_no_speech_not_applied(stage: Pipeline) -> None:
    out = _with(stage, FakeDiarizer(turns=())).process(_wav(31), SPEAKERS)
    assert out.diarization.status is DiarizationStatus.SKIPPED_NO_SPEECH
    assert out.speakers == ()
    assert all(w.speaker is None for s in out.segments for w in s.words)


def test_inference_time_is_the_wall_time_not_the_sum_of_both_threads(stage: Pipeline) -> None:
    fake = FakeDiarizer(turns=(SpeakerTurn(0.0, 40.0, "SPEAKER_00"),))
    out = _with(stage, fake).process(_wav(31), SPEAKERS)
    # The two ran side by side: the event's inference time is the span that covers both.
    assert out.inference_s >= max(out.transcribe_s, out.diarize_s) > 0


def test_resource_exhaustion_in_diarization_fails_the_event(stage: Pipeline) -> None:
    fake = FakeDiarizer(error=ResourceExhaustedError("out of memory"))
    with pytest.raises(ResourceExhaustedError):
        _with(stage, fake).process(_wav(31), SPEAKERS)


def test_short_clip_never_reaches_the_diarizer(stage: Pipeline) -> None:
    fake = FakeDiarizer(turns=(SpeakerTurn(0.0, 5.0, "SPEAKER_00"),))
    fake.transcribing.set()
    out = _with(stage, fake).process(_wav(5), SPEAKERS)
    assert out.diarization.status is DiarizationStatus.SKIPPED_SHORT
    assert fake.threads == []
    always = TranscriptionRequest(diarization=DiarizationMode.ALWAYS)
    assert _with(stage, fake).process(_wav(5), always).diarization.status is DiarizationStatus.APPLIED


def test_whisper_threads_leave_the_diarization_its_core_only_for_pyannote_clustering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    # The segments engine costs a few per cent of whisper's CPU: whisper keeps every core.
    assert Settings(enable_diarization=True).whisper_threads() == 0
    pyannote = {"enable_diarization": True, "diarization_clustering": "pyannote"}
    assert Settings(**pyannote, diarization_threads=1).whisper_threads() == 3
    assert Settings(**pyannote, diarization_threads=2).whisper_threads() == 2
    assert Settings(enable_diarization=False).whisper_threads() == 0
    assert Settings(**pyannote, cpu_threads=4).whisper_threads() == 4
    assert Settings(**pyannote, device="cuda").whisper_threads() == 0
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert Settings(**pyannote).whisper_threads() == 1


def test_progress_hears_the_transcription_then_the_diarization(stage: Pipeline) -> None:
    """The worker's progress StatusEvents come from here: segment ends, then "diarizing" while speakers wait."""
    heard: list[tuple[str, float, float]] = []
    fake = FakeDiarizer(turns=(SpeakerTurn(0.0, 31.0, "SPEAKER_00"),), delay_s=1.0)
    _with(stage, fake).process(_wav(31), SPEAKERS, progress=lambda *a: heard.append(a))
    assert heard[0] == ("transcribing", 0.0, pytest.approx(31.0))
    steps = [step for step, _, _ in heard]
    assert steps[-1] == "diarizing" and set(steps) == {"transcribing", "diarizing"}
    done = [d for step, d, _ in heard if step == "transcribing"]
    assert done == sorted(done) and all(0.0 <= d <= 31.0 + 1e-6 for d in done)
