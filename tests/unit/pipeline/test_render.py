from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pipeline.render import render
from pipeline.types import Diarization, DiarizationStatus, Granularity, Segment, Task, Transcript, Word


def _transcript(speakers: bool = False) -> Transcript:
    segs = (
        Segment(
            0,
            0.0,
            2.5,
            "Hello there.",
            -0.1,
            0.01,
            1.0,
            words=(Word(0.0, 1.0, " Hello", 0.9), Word(1.0, 2.5, " there.", 0.8)),
        ),
        Segment(1, 2.5, 3661.25, "General Kenobi.", -0.2, 0.02, 1.1),
    )
    if speakers:
        segs = (replace(segs[0], speaker="SPEAKER_00"), replace(segs[1], speaker="SPEAKER_01"))
    return Transcript(
        "tiny.en",
        "whisper-1",
        Task.TRANSCRIBE,
        "en",
        None,
        3661.25,
        "Hello there. General Kenobi.",
        segs,
        Diarization(DiarizationStatus.NOT_REQUESTED),
    )


def test_text_and_json() -> None:
    assert render(_transcript(), "text") == "Hello there. General Kenobi."
    assert json.loads(render(_transcript(), "json")) == {"text": "Hello there. General Kenobi."}


def test_srt_uses_comma_millis_and_hours() -> None:
    out = render(_transcript(), "srt")
    assert out.startswith("1\n00:00:00,000 --> 00:00:02,500\nHello there.\n")
    assert "2\n00:00:02,500 --> 01:01:01,250\nGeneral Kenobi.\n" in out


def test_vtt_has_header_and_dot_millis() -> None:
    out = render(_transcript(), "vtt")
    assert out.startswith("WEBVTT\n")
    assert "00:00:02.500 --> 01:01:01.250\nGeneral Kenobi." in out


def test_verbose_json_lists_words_only_when_asked() -> None:
    plain = json.loads(render(_transcript(), "verbose_json"))
    assert plain["duration"] == 3661.25 and plain["task"] == "transcribe" and "words" not in plain
    assert [s["id"] for s in plain["segments"]] == [0, 1]
    words = json.loads(render(_transcript(), "verbose_json", frozenset({Granularity.WORD})))
    assert [w["word"] for w in words["words"]] == [" Hello", " there."]


def test_speakers_show_in_every_format() -> None:
    t = _transcript(speakers=True)
    assert render(t, "text") == "[SPEAKER_00] Hello there.\n[SPEAKER_01] General Kenobi."
    assert "<v SPEAKER_01>General Kenobi." in render(t, "vtt")
    assert "SPEAKER_00: Hello there." in render(t, "srt")
    assert json.loads(render(t, "verbose_json"))["segments"][1]["speaker"] == "SPEAKER_01"


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="valid formats"):
        render(_transcript(), "docx")
