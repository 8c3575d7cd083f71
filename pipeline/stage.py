"""The pipeline's one entry point: bytes and a request in, a typed transcript out."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from pipeline.config import EngineConfig
from pipeline.decode import decode_audio
from pipeline.diarization import DiarizationConfig, assign_speakers
from pipeline.errors import ResourceExhaustedError
from pipeline.transcribe import Transcriber
from pipeline.types import (
    DecodedAudio,
    Diarization,
    DiarizationMode,
    DiarizationStatus,
    Transcript,
    TranscriptionRequest,
)

if TYPE_CHECKING:
    from pipeline.diarization import Diarizer


class Pipeline:
    """Decode, transcribe and, where asked and worth it, diarize one clip. Drive it from one thread at a time."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        diarization: DiarizationConfig | None = None,
        diarization_min_s: float = 30.0,
    ) -> None:
        self.config = config
        self.transcriber = Transcriber(config)
        self.diarization_min_s = diarization_min_s
        self.diarizer: Diarizer | None = None
        if diarization is not None:
            from pipeline.diarization import Diarizer  # torch and pyannote load only when enabled

            self.diarizer = Diarizer(diarization)

    def warm_up(self) -> None:
        self.transcriber.warm_up()
        if self.diarizer is not None:
            self.diarizer.warm_up()

    def check_request(self, request: TranscriptionRequest) -> None:
        """Reject what no audio could fix (an unknown profile) before any byte is fetched."""
        self.transcriber.profile(request.profile)

    def process(self, data: bytes, request: TranscriptionRequest) -> Transcript:
        self.check_request(request)
        started = time.perf_counter()
        audio = decode_audio(data, self.config.max_duration_s)
        decode_s = time.perf_counter() - started
        transcript = replace(self.transcriber.transcribe(audio, request), decode_s=decode_s)
        skipped = self._skip_reason(request, audio.duration_s)
        if skipped is not None:
            return replace(transcript, diarization=skipped)
        return self._diarize(transcript, audio, request)

    def _skip_reason(self, request: TranscriptionRequest, duration_s: float) -> Diarization | None:
        if request.diarization is DiarizationMode.NEVER or not request.wants_speakers:
            return Diarization(DiarizationStatus.NOT_REQUESTED)
        if request.diarization is DiarizationMode.AUTO and duration_s < self.diarization_min_s:
            return Diarization(
                DiarizationStatus.SKIPPED_SHORT,
                f"clip is {duration_s:.1f} s, under the {self.diarization_min_s:.0f} s minimum",
            )
        if self.diarizer is None:
            return Diarization(DiarizationStatus.SKIPPED_DISABLED, "diarization is not enabled on this worker")
        return None

    def _diarize(self, transcript: Transcript, audio: DecodedAudio, request: TranscriptionRequest) -> Transcript:
        assert self.diarizer is not None
        started = time.perf_counter()
        try:
            turns = self.diarizer.diarize(audio.samples, request.min_speakers, request.max_speakers)
        except ResourceExhaustedError:
            raise  # retriable: the whole event is tried again
        except Exception as exc:  # noqa: BLE001 - a failed diarization still publishes the transcript
            return replace(
                transcript,
                diarize_s=time.perf_counter() - started,
                diarization=Diarization(DiarizationStatus.FAILED, f"{type(exc).__name__}: {exc}"),
            )
        diarized = assign_speakers(transcript, turns)
        return replace(
            diarized,
            diarize_s=time.perf_counter() - started,
            diarization=Diarization(DiarizationStatus.APPLIED),
        )
