"""The pipeline's one entry point: bytes and a request in, a typed transcript out."""

from __future__ import annotations

import time
from dataclasses import replace

from pipeline.config import EngineConfig
from pipeline.decode import decode_audio
from pipeline.transcribe import Transcriber
from pipeline.types import Diarization, DiarizationMode, DiarizationStatus, Transcript, TranscriptionRequest


class Pipeline:
    """Decode, transcribe and (later) diarize one clip. Drive it from one thread at a time."""

    def __init__(self, config: EngineConfig, *, enable_diarization: bool = False, diarization_min_s: float = 30.0):
        self.config = config
        self.transcriber = Transcriber(config)
        self.enable_diarization = enable_diarization
        self.diarization_min_s = diarization_min_s

    def check_request(self, request: TranscriptionRequest) -> None:
        """Reject what no audio could fix (an unknown profile) before any byte is fetched."""
        self.transcriber.profile(request.profile)

    def process(self, data: bytes, request: TranscriptionRequest) -> Transcript:
        self.check_request(request)
        started = time.perf_counter()
        audio = decode_audio(data, self.config.max_duration_s)
        decode_s = time.perf_counter() - started
        transcript = self.transcriber.transcribe(audio, request)
        return replace(transcript, decode_s=decode_s, diarization=self._diarization_outcome(request, audio.duration_s))

    def _diarization_outcome(self, request: TranscriptionRequest, duration_s: float) -> Diarization:
        if request.diarization is DiarizationMode.NEVER or not request.wants_speakers:
            return Diarization(DiarizationStatus.NOT_REQUESTED)
        if request.diarization is DiarizationMode.AUTO and duration_s < self.diarization_min_s:
            return Diarization(
                DiarizationStatus.SKIPPED_SHORT,
                f"clip is {duration_s:.1f} s, under the {self.diarization_min_s:.0f} s minimum",
            )
        if not self.enable_diarization:
            return Diarization(DiarizationStatus.SKIPPED_DISABLED, "diarization is not enabled on this worker")
        # Speaker diarization itself arrives with issue 3; until then an enabled worker says so plainly.
        return Diarization(DiarizationStatus.SKIPPED_DISABLED, "this build has no diarization engine")
