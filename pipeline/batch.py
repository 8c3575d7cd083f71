"""Short clips from different events in one inference pass.

faster-whisper's ``BatchedInferencePipeline`` decodes several 30 s windows side by side. Clips
of one window each are laid end to end and handed to it as ``clip_timestamps`` (one span per
clip: from its first to its last speech, found by the profile's own VAD), so every clip is one
item of the batch; the segments come back on the joined timeline and are moved home again.

Only clips whose requests decode the same way share a pass (``BatchKey``). What a batched clip
gives up against ``Transcriber.transcribe``: the temperature fallback on a failed decode
(condition_on_previous_text means nothing within one window), and VAD cuts inside the clip
(silence between its first and last speech is kept). Hence profiles opt in
(``Profile.batch_short_clips``), and a fixed temperature never batches.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from pipeline.errors import TranscriptionError, model_failure
from pipeline.transcribe import Transcriber, shifted, to_segment
from pipeline.types import DecodedAudio, Diarization, DiarizationStatus, Segment, Task, Transcript, TranscriptionRequest

SAMPLE_RATE = 16_000
# One Whisper window: a longer clip would be cut into several items and needs the sequential
# path's context between windows anyway.
WINDOW_S = 30.0


@dataclass(frozen=True)
class BatchKey:
    """Everything that must be equal for clips to share one batched pass."""

    profile: str
    language: str
    task: Task
    prompt: str | None
    word_timestamps: bool


def batch_key(transcriber: Transcriber, request: TranscriptionRequest, duration_s: float) -> BatchKey | None:
    """The clip's batch, or None where it must be transcribed on its own."""
    profile = transcriber.profile(request.profile)
    if not profile.batch_short_clips or request.temperature or duration_s > WINDOW_S:
        return None
    language = request.language
    if language is None:
        if transcriber.multilingual:
            return None  # detection would run once for the whole batch: every clip detects alone
        language = "en"
    return BatchKey(profile.name, language, request.task, request.prompt, request.word_timestamps)


def transcribe_together(
    transcriber: Transcriber, audios: Sequence[DecodedAudio], request: TranscriptionRequest
) -> list[Transcript]:
    """Transcripts of ``audios`` (all with the same BatchKey), in their order, from one batched pass."""
    key = batch_key(transcriber, request, 0.0)
    assert key is not None, "transcribe_together needs a batchable request"
    profile = transcriber.profile(request.profile)
    vad = VadOptions(
        threshold=profile.vad.threshold,
        min_silence_duration_ms=profile.vad.min_silence_ms,
        speech_pad_ms=profile.vad.speech_pad_ms,
    )
    started = time.perf_counter()
    offsets: list[float] = []
    spans: list[dict[str, float]] = []
    owners: list[int] = []
    position = 0.0
    for n, audio in enumerate(audios):
        samples = np.asarray(audio.samples, dtype=np.float32)
        offsets.append(position)
        speech = get_speech_timestamps(samples, vad, sampling_rate=SAMPLE_RATE)
        if speech:  # a clip without speech gets an empty transcript, as the sequential path gives
            spans.append(
                {
                    "start": position + speech[0]["start"] / SAMPLE_RATE,
                    "end": position + speech[-1]["end"] / SAMPLE_RATE,
                }
            )
            owners.append(n)
        position += len(samples) / SAMPLE_RATE
    per_clip: list[list[Segment]] = [[] for _ in audios]
    if spans:
        joined = np.concatenate([np.asarray(a.samples, dtype=np.float32) for a in audios])
        try:
            raw_segments, _ = transcriber.batched.transcribe(
                joined,
                language=key.language,
                task=key.task.value,
                initial_prompt=key.prompt,
                word_timestamps=key.word_timestamps,
                beam_size=profile.beam_size,
                best_of=profile.best_of,
                patience=profile.patience,
                clip_timestamps=spans,
                batch_size=len(spans),
                without_timestamps=False,
            )
            for raw in raw_segments:
                n = _owner((float(raw.start) + float(raw.end)) / 2, spans, owners)
                per_clip[n].append(shifted(to_segment(len(per_clip[n]), raw), -offsets[n]))
        except (MemoryError, RuntimeError, ValueError) as exc:
            raise model_failure(exc, "transcribing a batch", TranscriptionError) from exc
    share = (time.perf_counter() - started) / len(audios)
    return [
        Transcript(
            model=transcriber.info.name,
            profile=profile.name,
            task=key.task,
            language=key.language,
            language_probability=None,
            duration_s=audio.duration_s,
            text=" ".join(s.text for s in segments if s.text),
            segments=tuple(segments),
            diarization=Diarization(DiarizationStatus.NOT_REQUESTED),
            warnings=audio.warnings,
            transcribe_s=share,  # the pass's time, shared equally: what each clip cost the worker
            inference_s=share,
        )
        for audio, segments in zip(audios, per_clip, strict=True)
    ]


def _owner(middle: float, spans: list[dict[str, float]], owners: list[int]) -> int:
    """The clip whose span holds a segment's middle (segments come back on the joined timeline,
    their edges rounded to milliseconds, so an edge may sit just across the border)."""
    for span, owner in zip(spans, owners, strict=True):
        if middle < span["end"]:
            return owner
    return owners[-1]
