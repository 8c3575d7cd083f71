"""The demo's speaker lines, from a transcript's segments: one line per change of speaker."""

from __future__ import annotations

import pytest

from consumer.contract.outputs import Segment, Word
from consumer.plumbing.settings import Settings
from devtools.demo import SpeakerTurn, speaker_turns, with_diarization
from devtools.samples import CONVERSATION


def word(start: float, end: float, text: str, speaker: str | None) -> Word:
    return Word(start=start, end=end, word=text, probability=0.9, speaker=speaker)


def segment(start: float, end: float, text: str, speaker: str | None, words: list[Word]) -> Segment:
    return Segment(
        id=0,
        start=start,
        end=end,
        text=text,
        avg_logprob=-0.2,
        no_speech_prob=0.01,
        compression_ratio=1.1,
        speaker=speaker,
        words=tuple(words),
    )


def test_consecutive_words_of_one_speaker_are_one_turn() -> None:
    segments = [
        segment(
            0.0,
            2.0,
            " Good morning.",
            "SPEAKER_00",
            [word(0.0, 0.9, " Good", "SPEAKER_00"), word(1.0, 2.0, " morning.", "SPEAKER_00")],
        ),
        segment(
            2.0,
            4.5,
            " Thanks, hello.",
            "SPEAKER_00",
            [
                word(2.0, 2.8, " Thanks,", "SPEAKER_00"),
                word(2.9, 3.3, " uh", None),  # unplaced: stays in the turn
                word(3.5, 4.5, " hello.", "SPEAKER_01"),
            ],
        ),
        segment(5.0, 12.3, " Bye.", "SPEAKER_00", [word(5.0, 12.3, " Bye.", "SPEAKER_00")]),
    ]
    turns = speaker_turns(segments)
    assert turns == [
        SpeakerTurn(0.0, 3.3, "SPEAKER_00", "Good morning. Thanks, uh"),
        SpeakerTurn(3.5, 4.5, "SPEAKER_01", "hello."),
        SpeakerTurn(5.0, 12.3, "SPEAKER_00", "Bye."),
    ]
    assert [t.line() for t in turns] == [
        "[ 0.0- 3.3] SPEAKER_00: Good morning. Thanks, uh",
        "[ 3.5- 4.5] SPEAKER_01: hello.",
        "[ 5.0-12.3] SPEAKER_00: Bye.",
    ]


def test_without_speakers_each_segment_is_a_line() -> None:
    segments = [
        segment(0.0, 2.0, " One.", None, [word(0.0, 2.0, " One.", None)]),
        segment(2.5, 4.0, " Two.", None, []),
    ]
    assert [t.line() for t in speaker_turns(segments)] == ["[ 0.0- 2.0] One.", "[ 2.5- 4.0] Two."]


def test_the_demo_turns_diarization_on_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENABLE_DIARIZATION", raising=False)
    assert with_diarization(Settings(_env_file=None)).enable_diarization  # type: ignore[call-arg]
    monkeypatch.setenv("ENABLE_DIARIZATION", "false")
    assert not with_diarization(Settings(_env_file=None)).enable_diarization  # type: ignore[call-arg]


def test_the_conversation_is_long_enough_for_auto_and_its_turns_short() -> None:
    assert len(CONVERSATION.voices) == 3 and {t.speaker for t in CONVERSATION.turns} == set(CONVERSATION.voices)
    assert all(a.speaker != b.speaker for a, b in zip(CONVERSATION.turns, CONVERSATION.turns[1:], strict=False))
    assert min(len(t.text.split()) for t in CONVERSATION.turns) >= 2
    assert 100 <= len(CONVERSATION.text.split()) <= 150  # about 45-60 s at 140 words per minute
