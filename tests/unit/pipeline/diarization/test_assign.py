"""assign_speakers: speaker turns onto words and segments, with no model involved."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from pipeline.diarization import SpeakerTurn, assign_speakers
from pipeline.types import Diarization, DiarizationStatus, Segment, Speaker, Task, Transcript, Word

A, B, C = "SPEAKER_00", "SPEAKER_01", "SPEAKER_02"


def _w(start: float, end: float, text: str) -> Word:
    return Word(start, end, text, 0.9)


def _seg(i: int, start: float, end: float, words: tuple[Word, ...] = (), text: str | None = None) -> Segment:
    if text is None:
        text = "".join(w.word for w in words).strip()
    return Segment(i, start, end, text, -0.25, 0.05, 1.3, words=words)


def _transcript(*segments: Segment) -> Transcript:
    return Transcript(
        model="tiny.en",
        profile="whisper-1",
        task=Task.TRANSCRIBE,
        language="en",
        language_probability=None,
        duration_s=60.0,
        text=" ".join(s.text for s in segments),
        segments=segments,
        diarization=Diarization(DiarizationStatus.APPLIED),
    )


def test_importing_the_package_loads_no_torch() -> None:
    # The worker imports this for every transcript; only constructing a Diarizer may load torch.
    code = "import sys, pipeline.diarization as d; d.assign_speakers; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_each_word_gets_the_speaker_who_talks_most_during_it() -> None:
    words = (_w(0.0, 1.0, " Hello"), _w(1.0, 2.0, " there"), _w(2.0, 3.0, " friend."))
    turns = (SpeakerTurn(0.0, 1.3, A), SpeakerTurn(1.3, 3.0, B))  # " there" hears A 0.3 s, B 0.7 s
    out = assign_speakers(_transcript(_seg(0, 0.0, 3.0, words)), turns)
    assert [w.speaker for s in out.segments for w in s.words] == [A, B, B]


def test_overlapping_speech_goes_to_the_longer_overlap() -> None:
    word = _w(5.0, 6.0, " yes")
    turns = (SpeakerTurn(0.0, 5.3, A), SpeakerTurn(5.1, 9.0, B), SpeakerTurn(5.0, 5.2, C))
    out = assign_speakers(_transcript(_seg(0, 5.0, 6.0, (word,))), turns)
    assert out.segments[0].words[0].speaker == B


def test_a_segment_spanning_a_change_of_speaker_is_split_at_the_change() -> None:
    words = (
        _w(0.0, 0.5, " Are"),
        _w(0.5, 1.0, " you"),
        _w(1.0, 1.5, " there?"),
        _w(1.8, 2.2, " Yes,"),
        _w(2.2, 2.6, " I"),
        _w(2.6, 3.0, " am."),
    )
    first = _seg(0, 0.0, 3.2, words)
    second = _seg(1, 3.5, 4.0, (_w(3.5, 4.0, " Good."),))
    turns = (SpeakerTurn(0.0, 1.6, A), SpeakerTurn(1.7, 3.1, B), SpeakerTurn(3.4, 4.2, A))
    out = assign_speakers(_transcript(first, second), turns)

    assert [(s.id, s.speaker, s.text) for s in out.segments] == [
        (0, A, "Are you there?"),
        (1, B, "Yes, I am."),
        (2, A, "Good."),
    ]
    # The parts cover the parent: first keeps its start, last its end, the cut sits on word edges.
    assert (out.segments[0].start, out.segments[0].end) == (0.0, 1.5)
    assert (out.segments[1].start, out.segments[1].end) == (1.8, 3.2)
    # Scores are the parent's; words stay in their part, each with its speaker.
    assert out.segments[1].avg_logprob == first.avg_logprob
    assert all(w.speaker == s.speaker for s in out.segments for w in s.words)
    assert out.text == "Are you there? Yes, I am. Good."


def test_a_segment_that_returns_to_its_first_speaker_becomes_three() -> None:
    words = (_w(0, 1, " one"), _w(1, 2, " two"), _w(2, 3, " three"))
    turns = (SpeakerTurn(0, 1, A), SpeakerTurn(1, 2, B), SpeakerTurn(2, 3, A))
    out = assign_speakers(_transcript(_seg(0, 0, 3, words)), turns)
    assert [(s.speaker, s.text) for s in out.segments] == [(A, "one"), (B, "two"), (A, "three")]
    assert [s.id for s in out.segments] == [0, 1, 2]


def test_an_unsplit_segment_keeps_its_own_text() -> None:
    # Whisper's segment text can differ from its joined words (punctuation spacing); keep it when whole.
    words = (_w(0, 1, " Hi"), _w(1, 2, " there"))
    seg = _seg(0, 0, 2, words, text="Hi there!")
    out = assign_speakers(_transcript(seg), (SpeakerTurn(0, 2, B),))
    assert out.segments[0].text == "Hi there!"
    assert out.segments[0].speaker == B


def test_a_segment_without_words_gets_the_speaker_overlapping_it_most() -> None:
    seg = _seg(0, 10.0, 14.0, text="Mm-hmm, right.")
    turns = (SpeakerTurn(9.0, 11.0, A), SpeakerTurn(11.0, 16.0, B))
    out = assign_speakers(_transcript(seg), turns)
    assert out.segments[0].speaker == B
    assert out.segments[0].text == "Mm-hmm, right."


def test_words_in_a_pause_get_the_nearest_speaker() -> None:
    words = (_w(2.0, 2.3, " uh"), _w(7.6, 7.9, " so"), _w(20.0, 20.5, " bye"))
    turns = (SpeakerTurn(0.0, 1.9, A), SpeakerTurn(8.0, 12.0, B))
    out = assign_speakers(_transcript(_seg(0, 2.0, 2.3, words[:1]), _seg(1, 7.6, 20.5, words[1:])), turns)
    assert [w.speaker for s in out.segments for w in s.words] == [A, B, B]


def test_a_pause_after_a_long_turn_finds_the_turn_that_ended_last() -> None:
    # A's long turn started first but ended after B's short one: the word after both is nearest A.
    turns = (SpeakerTurn(0.0, 9.0, A), SpeakerTurn(2.0, 3.0, B))
    out = assign_speakers(_transcript(_seg(0, 9.5, 10.0, (_w(9.5, 10.0, " ok"),))), turns)
    assert out.segments[0].speaker == A


def test_a_zero_length_word_inside_a_turn_belongs_to_it() -> None:
    turns = (SpeakerTurn(0.0, 1.0, A), SpeakerTurn(1.0, 2.0, B))
    out = assign_speakers(_transcript(_seg(0, 1.5, 1.5, (_w(1.5, 1.5, " -"),))), turns)
    assert out.segments[0].words[0].speaker == B


def test_speakers_list_total_speech_counting_overlaps_once() -> None:
    turns = (
        SpeakerTurn(0.0, 2.0, A),
        SpeakerTurn(1.5, 3.0, A),  # overlaps A's own turn: 0.0-3.0 is 3 s, not 3.5
        SpeakerTurn(2.5, 4.0, B),
        SpeakerTurn(10.0, 10.25, A),
    )
    out = assign_speakers(_transcript(_seg(0, 0, 4, (_w(0, 4, " x"),))), turns)
    assert out.speakers == (Speaker(A, 3.25), Speaker(B, 1.5))


def test_no_turns_leaves_the_transcript_as_it_was() -> None:
    transcript = _transcript(_seg(0, 0, 1, (_w(0, 1, " hi"),)))
    assert assign_speakers(transcript, ()) == transcript
    # Degenerate turns (no duration) are no turns.
    assert assign_speakers(transcript, (SpeakerTurn(1.0, 1.0, A),)) == transcript


def test_many_words_and_turns_stay_fast() -> None:
    # Two hours of alternating 3 s turns and 0.4 s words: the lookup must not be words x turns.

    turns = tuple(SpeakerTurn(t * 3.0, t * 3.0 + 3.0, (A, B)[t % 2]) for t in range(2400))
    words = tuple(_w(i * 0.4, i * 0.4 + 0.3, f" w{i}") for i in range(18_000))
    segments = tuple(
        _seg(k, words[k * 30].start, words[k * 30 + 29].end, words[k * 30 : k * 30 + 30]) for k in range(600)
    )
    started = time.perf_counter()
    out = assign_speakers(_transcript(*segments), turns)
    assert time.perf_counter() - started < 5.0
    assert all(len({w.speaker for w in s.words}) == 1 for s in out.segments)
    assert len(out.segments) > 600


@pytest.mark.parametrize("speaker", [A, B])
def test_a_single_speaker_clip_splits_nothing(speaker: str) -> None:
    words = tuple(_w(i, i + 0.5, f" w{i}") for i in range(10))
    out = assign_speakers(_transcript(_seg(0, 0, 10, words)), (SpeakerTurn(0.0, 10.0, speaker),))
    assert len(out.segments) == 1 and out.segments[0].speaker == speaker
    assert out.speakers == (Speaker(speaker, 10.0),)
