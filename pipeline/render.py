"""Transcripts in the shapes of OpenAI's ``response_format`` values: text, json, verbose_json, srt, vtt.

Speakers, where present, show as ``[SPEAKER_00]`` in text, ``<v SPEAKER_00>`` in VTT and a
``SPEAKER_00: `` prefix in SRT.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pipeline.types import Granularity, Segment, Transcript

FORMATS = ("text", "json", "verbose_json", "srt", "vtt")


def render(transcript: Transcript, fmt: str, granularities: frozenset[Granularity] | None = None) -> str:
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}") from None
    return renderer(transcript, granularities or frozenset({Granularity.SEGMENT}))


def render_text(transcript: Transcript, _: frozenset[Granularity] = frozenset()) -> str:
    if not any(s.speaker for s in transcript.segments):
        return transcript.text
    lines: list[str] = []
    for seg in transcript.segments:
        if lines and seg.speaker and lines[-1].startswith(f"[{seg.speaker}]"):
            lines[-1] += " " + seg.text
        else:
            lines.append(f"[{seg.speaker}] {seg.text}" if seg.speaker else seg.text)
    return "\n".join(lines)


def render_json(transcript: Transcript, _: frozenset[Granularity] = frozenset()) -> str:
    return json.dumps({"text": transcript.text}, ensure_ascii=False)


def render_verbose_json(transcript: Transcript, granularities: frozenset[Granularity]) -> str:
    body: dict[str, Any] = {
        "task": transcript.task.value,
        "language": transcript.language,
        "duration": round(transcript.duration_s, 3),
        "text": transcript.text,
        "segments": [_segment_json(s) for s in transcript.segments],
    }
    if Granularity.WORD in granularities or Granularity.SPEAKER in granularities:
        body["words"] = [
            {"word": w.word, "start": w.start, "end": w.end, **({"speaker": w.speaker} if w.speaker else {})}
            for s in transcript.segments
            for w in s.words
        ]
    if transcript.speakers:
        body["speakers"] = [{"id": sp.id, "speech_s": sp.speech_s} for sp in transcript.speakers]
    return json.dumps(body, ensure_ascii=False)


def render_srt(transcript: Transcript, _: frozenset[Granularity] = frozenset()) -> str:
    blocks = []
    for n, seg in enumerate(transcript.segments, start=1):
        text = f"{seg.speaker}: {seg.text}" if seg.speaker else seg.text
        blocks.append(f"{n}\n{_timestamp(seg.start, ',')} --> {_timestamp(seg.end, ',')}\n{text}\n")
    return "\n".join(blocks)


def render_vtt(transcript: Transcript, _: frozenset[Granularity] = frozenset()) -> str:
    blocks = ["WEBVTT\n"]
    for seg in transcript.segments:
        text = f"<v {seg.speaker}>{seg.text}" if seg.speaker else seg.text
        blocks.append(f"{_timestamp(seg.start, '.')} --> {_timestamp(seg.end, '.')}\n{text}\n")
    return "\n".join(blocks)


def _segment_json(seg: Segment) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": seg.id,
        "start": seg.start,
        "end": seg.end,
        "text": seg.text,
        "avg_logprob": seg.avg_logprob,
        "compression_ratio": seg.compression_ratio,
        "no_speech_prob": seg.no_speech_prob,
    }
    if seg.speaker:
        out["speaker"] = seg.speaker
    return out


def _timestamp(seconds: float, decimal_marker: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


_RENDERERS: dict[str, Callable[[Transcript, frozenset[Granularity]], str]] = {
    "text": render_text,
    "json": render_json,
    "verbose_json": render_verbose_json,
    "srt": render_srt,
    "vtt": render_vtt,
}
