"""The pipeline's one entry point: bytes and a request in, a typed transcript out."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pipeline.batch import BatchKey, batch_key, transcribe_together
from pipeline.config import EngineConfig
from pipeline.decode import decode_audio
from pipeline.diarization import DiarizationConfig, SpeakerTurn, assign_speakers
from pipeline.errors import ResourceExhaustedError
from pipeline.languages import check_language
from pipeline.profiles import Profile
from pipeline.transcribe import Transcriber
from pipeline.types import (
    DecodedAudio,
    Diarization,
    DiarizationMode,
    DiarizationStatus,
    Progress,
    Transcript,
    TranscriptionRequest,
)

if TYPE_CHECKING:
    from pipeline.diarization import Diarizer


class Pipeline:
    """Decode, transcribe and, where asked and worth it, diarize one clip. Drive it from one thread at a time.

    Diarization runs beside transcription, not after it: both need only the decoded samples, so it
    starts on its own thread (torch, one intra-op thread by default) while faster-whisper
    transcribes, and the speakers are attached when both are done. On 2 CPU cores this took a 120 s
    two-speaker call from 17-33 s (one after the other) to 5.6-11 s (docs/DIARIZATION.md).
    """

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
            from pipeline.diarization import make_diarizer  # models load only when enabled

            self.diarizer = make_diarizer(diarization)
            # One thread: the Diarizer is not thread-safe, and one clip at a time is what the worker does.
            self._diarize_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diarize")

    def warm_up(self) -> None:
        self.transcriber.warm_up()
        if self.diarizer is not None:
            self.diarizer.warm_up()

    def check_request(self, request: TranscriptionRequest) -> Profile:
        """Reject what no audio could fix before any byte is fetched; else the request's profile.

        An unknown profile, or a language other than English for an English-only model
        (pipeline.languages), is known from the request alone.
        """
        profile = self.transcriber.profile(request.profile)
        check_language(request, multilingual=self.transcriber.multilingual, model=self.transcriber.info.name)
        return profile

    def process(self, data: bytes, request: TranscriptionRequest, progress: Progress | None = None) -> Transcript:
        """One clip, start to end; ``progress`` (if given) hears how far the transcription has come."""
        audio, decode_s = self._decode(data, request)
        return self._process_decoded(audio, decode_s, request, progress)

    def process_batch(self, items: Sequence[tuple[bytes, TranscriptionRequest]]) -> list[Transcript | Exception]:
        """Several clips at once; each item's result is its transcript or its own error.

        Clips that fit one window, will not be diarized, and decode the same way (``BatchKey``) share
        one batched inference pass; the rest, and every clip of a batch that failed as a whole, run
        one by one exactly as ``process`` runs them.
        """
        results: list[Transcript | Exception | None] = [None] * len(items)
        decoded: dict[int, tuple[DecodedAudio, float]] = {}
        skipped: dict[int, Diarization] = {}  # why a batched clip is not diarized, for its transcript
        groups: dict[BatchKey, list[int]] = {}
        alone: list[int] = []
        for n, (data, request) in enumerate(items):
            try:
                decoded[n] = self._decode(data, request)
            except Exception as exc:  # noqa: BLE001 - this item's failure, not the batch's
                results[n] = exc
                continue
            duration = decoded[n][0].duration_s
            reason = self._skip_reason(request, duration)
            key = None if reason is None else batch_key(self.transcriber, request, duration)
            if reason is None or key is None:
                alone.append(n)
                continue
            skipped[n] = reason
            groups.setdefault(key, []).append(n)
        for members in groups.values():
            if len(members) == 1:
                alone.extend(members)
                continue
            request = items[members[0]][1]
            try:
                together = transcribe_together(self.transcriber, [decoded[n][0] for n in members], request)
            except Exception:  # noqa: BLE001 - one clip may sink a batch: give each its own chance
                alone.extend(members)
                continue
            for n, transcript in zip(members, together, strict=True):
                results[n] = replace(transcript, decode_s=decoded[n][1], diarization=skipped[n])
        for n in sorted(alone):
            audio, decode_s = decoded[n]
            try:
                results[n] = self._process_decoded(audio, decode_s, items[n][1])
            except Exception as exc:  # noqa: BLE001 - this item's failure, not the batch's
                results[n] = exc
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def _decode(self, data: bytes, request: TranscriptionRequest) -> tuple[DecodedAudio, float]:
        self.check_request(request)
        started = time.perf_counter()
        audio = decode_audio(data, self.config.max_duration_s)
        return audio, time.perf_counter() - started

    def _process_decoded(
        self, audio: DecodedAudio, decode_s: float, request: TranscriptionRequest, progress: Progress | None = None
    ) -> Transcript:
        started = time.perf_counter()
        skipped = self._skip_reason(request, audio.duration_s)
        turns = None if skipped is not None else self._start_diarization(audio, request)
        if progress is not None:
            progress("transcribing", 0.0, audio.duration_s)
        try:
            transcript = replace(self.transcriber.transcribe(audio, request, progress), decode_s=decode_s)
            if turns is not None and progress is not None and not turns.done():
                progress("diarizing", audio.duration_s, audio.duration_s)  # the words are in; the speakers not yet
        finally:
            if turns is not None:
                # Whatever happened to the transcription, the diarizer's thread is free before the next clip.
                _wait_quietly(turns)
        if turns is None:
            assert skipped is not None
            transcript = replace(transcript, diarization=skipped)
        else:
            transcript = self._attach_speakers(transcript, turns)
        return replace(transcript, inference_s=time.perf_counter() - started)

    def close(self) -> None:
        if self.diarizer is not None:
            self._diarize_thread.shutdown(wait=True)

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

    def _start_diarization(
        self, audio: DecodedAudio, request: TranscriptionRequest
    ) -> Future[tuple[tuple[SpeakerTurn, ...], float]]:
        assert self.diarizer is not None
        diarizer = self.diarizer

        def run() -> tuple[tuple[SpeakerTurn, ...], float]:
            started = time.perf_counter()
            turns = diarizer.diarize(audio.samples, request.min_speakers, request.max_speakers)
            return turns, time.perf_counter() - started

        return self._diarize_thread.submit(run)

    @staticmethod
    def _attach_speakers(transcript: Transcript, pending: Future[tuple[tuple[SpeakerTurn, ...], float]]) -> Transcript:
        try:
            turns, diarize_s = pending.result()
        except ResourceExhaustedError:
            raise  # retriable: the whole event is tried again
        except Exception as exc:  # noqa: BLE001 - a failed diarization still publishes the transcript
            return replace(
                transcript,
                diarization=Diarization(DiarizationStatus.FAILED, f"{type(exc).__name__}: {exc}"),
            )
        if not turns:
            # The diarizer found nothing to tell voices by: say so, rather than "applied" with no speaker.
            return replace(
                transcript,
                diarize_s=diarize_s,
                diarization=Diarization(
                    DiarizationStatus.SKIPPED_NO_SPEECH, "no speech found, or too little to tell voices apart"
                ),
            )
        return replace(
            assign_speakers(transcript, turns),
            diarize_s=diarize_s,
            diarization=Diarization(DiarizationStatus.APPLIED),
        )


def _wait_quietly(pending: Future[Any]) -> None:
    # The failure is read again, and handled, by _attach_speakers.
    with contextlib.suppress(Exception):
        pending.result()
