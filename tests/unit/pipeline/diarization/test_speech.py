"""The energy gate before diarization (pipeline/diarization/speech.py): pure numpy, no model.

What is held: long silences are cut and only they (MIN_GAP_S), each kept stretch keeps MARGIN_S of
the silence around it, the joined waveform is the kept spans back to back, turns found on it map
back onto the clip's timeline, and quiet speech survives the gate (relative to the clip's loud
frames, never stricter than needed: a FLOOR_DB floor, not above it).

Every duration below is a whole number of 30 ms frames, so the expected span edges are exact.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pipeline.diarization.speech import (
    FLOOR_DB,
    FRAME,
    MARGIN_S,
    MIN_GAP_S,
    MIN_SOUND_S,
    RELATIVE_DB,
    SAMPLE_RATE,
    Span,
    SpeechMap,
    find_sound,
    frame_levels_db,
    join,
    remap,
)

FRAME_S = FRAME / SAMPLE_RATE


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * SAMPLE_RATE)), dtype=np.float32)


def _tone(seconds: float, dbfs: float = -20.0, hz: float = 220.0) -> np.ndarray:
    """A sine whose RMS is ``dbfs``."""
    t = np.arange(int(round(seconds * SAMPLE_RATE))) / SAMPLE_RATE
    amplitude = np.sqrt(2.0) * 10 ** (dbfs / 20)
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _noise(seconds: float, dbfs: float = -25.0, seed: int = 0) -> np.ndarray:
    """White noise whose RMS is about ``dbfs``: a stand-in for a burst of speech."""
    rng = np.random.default_rng(seed)
    return (10 ** (dbfs / 20) * rng.standard_normal(int(round(seconds * SAMPLE_RATE)))).astype(np.float32)


def _clip(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts).astype(np.float32)


def _edges(speech: SpeechMap) -> list[tuple[float, float]]:
    return [(s.start, s.end) for s in speech.spans]


def test_the_rules_are_the_documented_ones() -> None:
    # The tests below are written against these values; changing a rule should be a conscious act.
    assert (FRAME, SAMPLE_RATE) == (480, 16_000)
    assert (FLOOR_DB, RELATIVE_DB, MIN_GAP_S, MARGIN_S, MIN_SOUND_S) == (-60.0, 45.0, 2.0, 0.25, 1.0)


def test_importing_the_gate_loads_no_torch() -> None:
    # The gate runs before any model is touched: it stays numpy-only.
    code = "import sys, pipeline.diarization.speech; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_frame_levels_are_rms_in_dbfs() -> None:
    levels = frame_levels_db(_clip(_tone(0.3, dbfs=-20.0), _silence(0.3)))
    assert levels.shape == (20,)
    assert np.allclose(levels[:10], -20.0, atol=0.1)
    assert np.allclose(levels[10:], -120.0)  # digital silence is -120 dBFS, not -inf
    assert frame_levels_db(np.zeros(FRAME - 1, dtype=np.float32)).size == 0  # under one frame


def test_ten_minutes_of_digital_silence_have_no_sound() -> None:
    speech = find_sound(_silence(600.0))
    assert speech.spans == ()
    assert speech.sound_s == 0.0
    assert find_sound(np.zeros(0, dtype=np.float32)).sound_s == 0.0


def test_hiss_under_the_floor_has_no_sound() -> None:
    # -70 dBFS alone: its own loudest frames are that quiet, but the gate never sinks below -60 dBFS.
    assert find_sound(_noise(60.0, dbfs=-70.0)).spans == ()


def test_a_long_silence_is_cut_out_with_margins() -> None:
    # 3 s silence, 4.5 s tone, 21 s silence, 4.5 s noise burst, 3 s silence: 36 s.
    samples = _clip(_silence(3.0), _tone(4.5), _silence(21.0), _noise(4.5), _silence(3.0))
    speech = find_sound(samples)
    assert [(s.start, s.end, s.offset) for s in speech.spans] == [
        pytest.approx((3.0 - MARGIN_S, 7.5 + MARGIN_S, 0.0), abs=1e-3),
        pytest.approx((28.5 - MARGIN_S, 33.0 + MARGIN_S, 4.5 + 2 * MARGIN_S), abs=1e-3),
    ]
    assert speech.sound_s == pytest.approx(2 * (4.5 + 2 * MARGIN_S), abs=1e-3)

    joined = join(samples, speech)
    # Shorter by the silences less the margins kept: the 21 s gap, and the 3 s at either end.
    cut_s = (21.0 - 2 * MARGIN_S) + 2 * (3.0 - MARGIN_S)
    assert len(joined) == pytest.approx(len(samples) - cut_s * SAMPLE_RATE, abs=2)
    assert len(joined) == pytest.approx(speech.sound_s * SAMPLE_RATE, abs=2)
    # The spans back to back, in order: the tone, then the noise, each with its margins.
    width = int(round((4.5 + 2 * MARGIN_S) * SAMPLE_RATE))
    first = int(round((3.0 - MARGIN_S) * SAMPLE_RATE))
    second = int(round((28.5 - MARGIN_S) * SAMPLE_RATE))
    np.testing.assert_array_equal(joined[:width], samples[first : first + width])
    np.testing.assert_array_equal(joined[width:], samples[second : second + len(joined) - width])


def test_spans_stop_at_the_clip_edges() -> None:
    # Sound from the first sample and to the last: the margins do not reach outside the clip.
    speech = find_sound(_clip(_tone(3.0), _silence(9.0), _tone(3.0)))
    assert _edges(speech) == [
        pytest.approx((0.0, 3.0 + MARGIN_S), abs=1e-3),
        pytest.approx((12.0 - MARGIN_S, 15.0), abs=1e-3),
    ]


@pytest.mark.parametrize("gap_s", [0.3, 1.5, 66 * FRAME_S])  # 66 frames: 1.98 s, just under MIN_GAP_S
def test_pauses_shorter_than_the_minimum_gap_stay_in(gap_s: float) -> None:
    # The pauses between turns belong to the segmentation model: they are not cut.
    samples = _clip(_silence(3.0), _tone(3.0), _silence(gap_s), _noise(3.0), _silence(3.0))
    speech = find_sound(samples)
    assert _edges(speech) == [pytest.approx((3.0 - MARGIN_S, 9.0 + gap_s + MARGIN_S), abs=1e-3)]
    assert len(join(samples, speech)) == pytest.approx((6.0 + gap_s + 2 * MARGIN_S) * SAMPLE_RATE, abs=2)


def test_a_gap_just_over_the_minimum_is_cut() -> None:
    gap_s = 67 * FRAME_S  # 2.01 s
    speech = find_sound(_clip(_silence(3.0), _tone(3.0), _silence(gap_s), _noise(3.0), _silence(3.0)))
    assert _edges(speech) == [
        pytest.approx((3.0 - MARGIN_S, 6.0 + MARGIN_S), abs=1e-3),
        pytest.approx((6.0 + gap_s - MARGIN_S, 9.0 + gap_s + MARGIN_S), abs=1e-3),
    ]


def test_a_clip_without_long_silence_is_joined_unchanged() -> None:
    # Sound in the first frame and the last, short pauses only: nothing is cut, nothing copied.
    samples = _clip(_tone(4.5), _silence(1.5), _noise(4.5), _silence(0.6), _tone(3.0))
    speech = find_sound(samples)
    assert _edges(speech) == [pytest.approx((0.0, len(samples) / SAMPLE_RATE), abs=1e-3)]
    assert speech.spans[0].offset == 0.0
    assert join(samples, speech) is samples


def test_short_edge_silences_are_trimmed_to_the_margin_and_turns_land_back() -> None:
    # 1.5 s of silence at each end is no "long silence", yet beyond the margin it is left out of the
    # join; a turn found on the join lands back on the clip where the sound is.
    samples = _clip(_silence(1.5), _tone(4.5), _silence(1.5))
    speech = find_sound(samples)
    assert _edges(speech) == [pytest.approx((1.5 - MARGIN_S, 6.0 + MARGIN_S), abs=1e-3)]
    assert len(join(samples, speech)) == pytest.approx((4.5 + 2 * MARGIN_S) * SAMPLE_RATE, abs=2)
    [(start, end, label)] = remap([(MARGIN_S, 4.5 + MARGIN_S, "A")], speech)
    assert (start, end, label) == (pytest.approx(1.5, abs=1e-3), pytest.approx(6.0, abs=1e-3), "A")


def test_quiet_speech_in_a_silent_file_is_kept() -> None:
    # -50 dBFS is quiet telephone speech: above the -60 dBFS floor, and the clip's own loud frames
    # are that quiet too, so the relative part of the gate does not cut it.
    samples = _clip(_silence(21.0), _tone(4.5, dbfs=-50.0), _silence(21.0))
    speech = find_sound(samples)
    assert _edges(speech) == [pytest.approx((21.0 - MARGIN_S, 25.5 + MARGIN_S), abs=1e-3)]
    assert speech.sound_s >= MIN_SOUND_S
    # Also when it is under 5 % of a long file (the 95th percentile is then the silence itself).
    long = _clip(_silence(300.0), _tone(4.5, dbfs=-50.0), _silence(300.0))
    assert find_sound(long).sound_s == pytest.approx(4.5 + 2 * MARGIN_S, abs=1e-3)


def test_the_gate_is_relative_to_the_loud_frames() -> None:
    hum = _tone(21.0, dbfs=-55.0, hz=50.0)
    # -55 dBFS hum is sound when nothing louder is there ...
    alone = find_sound(_clip(_silence(6.0), hum, _silence(6.0)))
    assert _edges(alone) == [pytest.approx((6.0 - MARGIN_S, 27.0 + MARGIN_S), abs=1e-3)]
    # ... but 50 dB under -5 dBFS speech (more than RELATIVE_DB) it is room noise, and it is cut.
    loud = find_sound(_clip(_noise(9.0, dbfs=-5.0, seed=1), hum, _noise(9.0, dbfs=-5.0, seed=2)))
    assert _edges(loud) == [
        pytest.approx((0.0, 9.0 + MARGIN_S), abs=1e-3),
        pytest.approx((30.0 - MARGIN_S, 39.0), abs=1e-3),
    ]
    # 40 dB under the same speech (less than RELATIVE_DB) it stays in: one span, nothing cut.
    softer = _tone(21.0, dbfs=-5.0 - RELATIVE_DB + 5.0)
    kept = find_sound(_clip(_noise(9.0, dbfs=-5.0, seed=1), softer, _noise(9.0, dbfs=-5.0, seed=2)))
    assert _edges(kept) == [pytest.approx((0.0, 39.0), abs=1e-3)]


def _two_spans() -> SpeechMap:
    # The map of the 36 s clip above: 2.75-7.75 s of the clip at 0 s of the join, 28.25-33.25 s at 5 s.
    return SpeechMap((Span(2.75, 7.75, 0.0), Span(28.25, 33.25, 5.0)))


def test_remap_puts_turns_back_on_the_clip_timeline() -> None:
    out = remap([(1.0, 2.0, "A"), (6.0, 9.5, "B")], _two_spans())
    assert [label for _, _, label in out] == ["A", "B"]
    assert [(s, e) for s, e, _ in out] == [pytest.approx((3.75, 4.75)), pytest.approx((29.25, 32.75))]


def test_remap_splits_a_turn_that_crosses_a_cut() -> None:
    # 4-6 s of the join: the last second of the first span, then the first second of the second.
    out = remap([(4.0, 6.0, "A")], _two_spans())
    assert [label for _, _, label in out] == ["A", "A"]
    assert [(s, e) for s, e, _ in out] == [pytest.approx((6.75, 7.75)), pytest.approx((28.25, 29.25))]
    assert sum(e - s for s, e, _ in out) == pytest.approx(2.0)


def test_remap_keeps_only_what_lies_on_a_span() -> None:
    speech = _two_spans()
    # Past the end of the join: the part on the last span survives, nothing beyond it.
    out = remap([(9.0, 12.0, "A")], speech)
    assert [(s, e) for s, e, _ in out] == [pytest.approx((32.25, 33.25))]
    assert remap([(10.5, 11.0, "A")], speech) == []
    assert remap([], speech) == []


def test_remap_of_an_uncut_clip_is_the_identity() -> None:
    turns = [(0.0, 4.2, "A"), (3.9, 12.5, "B"), (20.0, 30.0, "A")]
    assert remap(turns, SpeechMap((Span(0.0, 30.0, 0.0),))) == turns


def test_find_sound_join_and_remap_round_trip() -> None:
    # A turn over each burst, found on the join, comes back exactly over the burst on the clip.
    samples = _clip(_silence(3.0), _tone(4.5), _silence(21.0), _noise(4.5), _silence(3.0))
    speech = find_sound(samples)
    first, second = speech.spans
    on_join = [
        (first.offset + MARGIN_S, first.offset + MARGIN_S + 4.5, "A"),
        (second.offset + MARGIN_S, second.offset + MARGIN_S + 4.5, "B"),
    ]
    out = remap(on_join, speech)
    assert [label for _, _, label in out] == ["A", "B"]
    assert [(s, e) for s, e, _ in out] == [pytest.approx((3.0, 7.5), abs=1e-3), pytest.approx((28.5, 33.0), abs=1e-3)]


def test_one_short_stretch_or_almost_nothing_is_too_little_to_diarize() -> None:
    from pipeline.diarization.speech import MIN_SINGLE_SPAN_S, Span, SpeechMap, too_little

    assert too_little(SpeechMap(()))
    assert too_little(SpeechMap((Span(10.0, 10.0 + MIN_SINGLE_SPAN_S - 0.1, 0.0),)))  # "Hello?" alone
    assert not too_little(SpeechMap((Span(10.0, 10.0 + MIN_SINGLE_SPAN_S + 0.1, 0.0),)))
    # Two short stretches are two utterances: possibly two voices, so they are diarized.
    assert not too_little(SpeechMap((Span(1.0, 2.2, 0.0), Span(9.0, 10.2, 1.2))))
