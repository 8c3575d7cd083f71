"""The transcript as the stage publishes it: ``TranscriptEvent`` (``schemas/transcript_event.avsc``) as typed values.

Built from the pipeline's ``Transcript`` and the request it answers (``TranscriptEvent.of``), turned
back into a ``Transcript`` for the shared renderers (``to_transcript``). ``to_avro`` and ``from_avro``
are the only places that know the record's keys; ``consumer.contract.wire.Wire`` is the only encoder.
tests/unit/consumer/contract/test_output_schemas.py holds these dataclasses to the schema, field by field.

Timestamps are ``datetime``, as fastavro reads ``timestamp-millis``, so ``to_avro`` gives exactly the
record a reader decodes and ``fwv2 tail --format avro-json`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pipeline.types as pipeline_types
from consumer.contract.dead_letters import WorkerRef
from consumer.contract.inputs import AudioReference, ObjectRef
from pipeline.types import CacheMatch, CacheTier, DiarizationStatus, Task, Transcript

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_millis(moment: datetime) -> int:
    """Unix milliseconds, in integers (a float product can lose the last millisecond)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_millis(millis: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=millis)


@dataclass(frozen=True, kw_only=True)
class Word:
    start: float
    end: float
    word: str  # with its leading space, as Whisper emits it
    probability: float
    speaker: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "word": self.word,
            "probability": self.probability,
            "speaker": self.speaker,
        }

    @classmethod
    def from_avro(cls, r: dict[str, Any]) -> Word:
        return cls(start=r["start"], end=r["end"], word=r["word"], probability=r["probability"], speaker=r["speaker"])


@dataclass(frozen=True, kw_only=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    speaker: str | None = None
    words: tuple[Word, ...] = ()  # empty unless word or speaker granularity was asked for

    def to_avro(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "avg_logprob": self.avg_logprob,
            "no_speech_prob": self.no_speech_prob,
            "compression_ratio": self.compression_ratio,
            "speaker": self.speaker,
            "words": [w.to_avro() for w in self.words],
        }

    @classmethod
    def from_avro(cls, r: dict[str, Any]) -> Segment:
        return cls(
            id=r["id"],
            start=r["start"],
            end=r["end"],
            text=r["text"],
            avg_logprob=r["avg_logprob"],
            no_speech_prob=r["no_speech_prob"],
            compression_ratio=r["compression_ratio"],
            speaker=r["speaker"],
            words=tuple(Word.from_avro(w) for w in r["words"]),
        )


@dataclass(frozen=True, kw_only=True)
class DiarizationOutcome:
    status: DiarizationStatus
    reason: str | None = None  # why it was skipped or failed


@dataclass(frozen=True, kw_only=True)
class Speaker:
    id: str
    speech_s: float


@dataclass(frozen=True, kw_only=True)
class Timings:
    """Wall seconds per step in the worker; ``inference_s`` is not transcribe_s + diarize_s (they overlap)."""

    fetch_s: float
    decode_s: float
    transcribe_s: float
    diarize_s: float = 0.0
    total_s: float
    inference_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class CacheHit:
    """Set when the transcript was served from the result cache rather than transcribed for this event."""

    tier: CacheTier
    matched_by: CacheMatch
    computed_at: datetime


@dataclass(frozen=True, kw_only=True)
class TranscriptEvent:
    """The transcript of one AudioReference, as published on the output topic."""

    event_id: str
    object: ObjectRef
    model: str
    profile: str
    task: Task = Task.TRANSCRIBE
    language: str
    language_probability: float | None = None
    duration_s: float
    text: str
    segments: tuple[Segment, ...] = ()
    diarization: DiarizationOutcome
    speakers: tuple[Speaker, ...] = ()
    timings: Timings
    worker: WorkerRef
    warnings: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    completed_at: datetime
    cache: CacheHit | None = None

    @classmethod
    def of(
        cls,
        ref: AudioReference,
        transcript: Transcript,
        *,
        blob_etag: str | None,
        blob_size: int | None,
        blob_content_type: str | None = None,
        fetch_s: float,
        total_s: float,
        group: str,
        pool: str,
        host: str,
    ) -> TranscriptEvent:
        """The event answering ``ref``: the object as read, and words only where the request asked for them."""
        words_wanted = ref.to_request().word_timestamps
        hit = transcript.cache
        return cls(
            event_id=ref.event_id,
            object=ref.object.model_copy(
                update={
                    "etag": blob_etag or ref.object.etag,
                    "size_bytes": blob_size,
                    "content_type": ref.object.content_type or blob_content_type,
                }
            ),
            model=transcript.model,
            profile=transcript.profile,
            task=transcript.task,
            language=transcript.language,
            language_probability=transcript.language_probability,
            duration_s=transcript.duration_s,
            text=transcript.text,
            segments=tuple(
                Segment(
                    id=s.id,
                    start=s.start,
                    end=s.end,
                    text=s.text,
                    avg_logprob=s.avg_logprob,
                    no_speech_prob=s.no_speech_prob,
                    compression_ratio=s.compression_ratio,
                    speaker=s.speaker,
                    words=tuple(
                        Word(start=w.start, end=w.end, word=w.word, probability=w.probability, speaker=w.speaker)
                        for w in s.words
                    )
                    if words_wanted
                    else (),
                )
                for s in transcript.segments
            ),
            diarization=DiarizationOutcome(status=transcript.diarization.status, reason=transcript.diarization.reason),
            speakers=tuple(Speaker(id=sp.id, speech_s=sp.speech_s) for sp in transcript.speakers),
            timings=Timings(
                fetch_s=fetch_s,
                decode_s=transcript.decode_s,
                transcribe_s=transcript.transcribe_s,
                diarize_s=transcript.diarize_s,
                # A result-cache hit ran no inference for this event: result_cache serves it with every
                # inference time at 0, and a hit is never reported with one (whoever built the transcript).
                inference_s=0.0 if hit is not None else transcript.inference_s,
                total_s=total_s,
            ),
            worker=WorkerRef(group=group, pool=pool, host=host),
            warnings=tuple(transcript.warnings),
            metadata=dict(ref.metadata),
            completed_at=datetime.now(UTC),
            cache=None
            if hit is None
            else CacheHit(tier=hit.tier, matched_by=hit.matched_by, computed_at=from_millis(hit.computed_at_ms)),
        )

    def to_transcript(self) -> Transcript:
        """The pipeline's Transcript back, for the shared renderers and the result cache."""
        return Transcript(
            model=self.model,
            profile=self.profile,
            task=self.task,
            language=self.language,
            language_probability=self.language_probability,
            duration_s=self.duration_s,
            text=self.text,
            segments=tuple(
                pipeline_types.Segment(
                    id=s.id,
                    start=s.start,
                    end=s.end,
                    text=s.text,
                    avg_logprob=s.avg_logprob,
                    no_speech_prob=s.no_speech_prob,
                    compression_ratio=s.compression_ratio,
                    speaker=s.speaker,
                    words=tuple(pipeline_types.Word(w.start, w.end, w.word, w.probability, w.speaker) for w in s.words),
                )
                for s in self.segments
            ),
            diarization=pipeline_types.Diarization(self.diarization.status, self.diarization.reason),
            speakers=tuple(pipeline_types.Speaker(sp.id, sp.speech_s) for sp in self.speakers),
            warnings=self.warnings,
            decode_s=self.timings.decode_s,
            transcribe_s=self.timings.transcribe_s,
            diarize_s=self.timings.diarize_s,
            inference_s=self.timings.inference_s,
            cache=None
            if self.cache is None
            else pipeline_types.CacheHit(self.cache.tier, self.cache.matched_by, to_millis(self.cache.computed_at)),
        )

    def to_avro(self) -> dict[str, Any]:
        """The record as fastavro writes it and reads it back, keys in the schema's order."""
        t = self.timings
        return {
            "event_id": self.event_id,
            "object": {
                "bucket": self.object.bucket,
                "key": self.object.key,
                "version_id": self.object.version_id,
                "etag": self.object.etag,
                "content_type": self.object.content_type,
                "size_bytes": self.object.size_bytes,
            },
            "model": self.model,
            "profile": self.profile,
            "task": self.task.value,
            "language": self.language,
            "language_probability": self.language_probability,
            "duration_s": self.duration_s,
            "text": self.text,
            "segments": [s.to_avro() for s in self.segments],
            "diarization": {"status": self.diarization.status.value, "reason": self.diarization.reason},
            "speakers": [{"id": sp.id, "speech_s": sp.speech_s} for sp in self.speakers],
            "timings": {
                "fetch_s": t.fetch_s,
                "decode_s": t.decode_s,
                "transcribe_s": t.transcribe_s,
                "diarize_s": t.diarize_s,
                "total_s": t.total_s,
                "inference_s": t.inference_s,
            },
            "worker": self.worker.to_avro(),
            "warnings": list(self.warnings),
            "metadata": dict(self.metadata),
            "completed_at": self.completed_at,
            "cache": None
            if self.cache is None
            else {
                "tier": self.cache.tier.value,
                "matched_by": self.cache.matched_by.value,
                "computed_at": self.cache.computed_at,
            },
        }

    @classmethod
    def from_avro(cls, r: dict[str, Any]) -> TranscriptEvent:
        t, d, c = r["timings"], r["diarization"], r.get("cache")
        return cls(
            event_id=r["event_id"],
            # Not validated again: a reader takes what the schema allows; the bounds are for requests.
            object=ObjectRef.model_construct(**r["object"]),
            model=r["model"],
            profile=r["profile"],
            task=Task(r["task"]),
            language=r["language"],
            language_probability=r["language_probability"],
            duration_s=r["duration_s"],
            text=r["text"],
            segments=tuple(Segment.from_avro(s) for s in r["segments"]),
            diarization=DiarizationOutcome(status=DiarizationStatus(d["status"]), reason=d["reason"]),
            speakers=tuple(Speaker(id=sp["id"], speech_s=sp["speech_s"]) for sp in r["speakers"]),
            timings=Timings(
                fetch_s=t["fetch_s"],
                decode_s=t["decode_s"],
                transcribe_s=t["transcribe_s"],
                diarize_s=t["diarize_s"],
                total_s=t["total_s"],
                inference_s=t.get("inference_s", 0.0),  # absent in records of a writer before the field
            ),
            worker=WorkerRef.from_avro(r["worker"]),
            warnings=tuple(r["warnings"]),
            metadata=dict(r["metadata"]),
            completed_at=r["completed_at"],
            cache=None
            if c is None
            else CacheHit(
                tier=CacheTier(c["tier"]), matched_by=CacheMatch(c["matched_by"]), computed_at=c["computed_at"]
            ),
        )
