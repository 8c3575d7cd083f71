"""The diarization test set (bench/diarization/dataset.py): reproducible, exact, and covering what it claims.

Both splits are built once into a temporary folder (espeak-ng and sox, about 15 s on two cores)
and once more into a second folder to prove the build is byte-identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.diarization import dataset
from bench.diarization.clips import SAMPLE_RATE, Clip, Turn, read_rttm
from bench.diarization.dataset import PROPERTIES, SPLITS, Record

SILENT_RMS = 1e-3  # a gap may hold the 1e-4 noise floor, nothing louder
SPEECH_RMS = 0.01  # every turn is scaled to about 0.05 RMS
EDGE = 5e-4  # synthetic turns are trimmed at 1e-3 (less int16 rounding); the noise floor stays below


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("set")
    for split in SPLITS:
        dataset.build(split, folder)
    return folder


@pytest.fixture(scope="module")
def built(root: Path) -> dict[str, list[tuple[Clip, Record]]]:
    return {s: list(zip(dataset.build(s, root), dataset.records(s, root), strict=True)) for s in SPLITS}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.tools  # espeak-ng speaks the set
def test_two_builds_are_byte_identical(root: Path, tmp_path: Path) -> None:
    for split in SPLITS:
        dataset.build(split, tmp_path)
    first, second = _files(root), _files(tmp_path)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


@pytest.mark.tools  # espeak-ng speaks the set
def test_a_cached_split_is_loaded_not_rebuilt(root: Path, built: dict[str, list[tuple[Clip, Record]]]) -> None:
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    again = dataset.build("tune", root)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before
    for clip, (old, _) in zip(again, built["tune"], strict=True):
        assert clip.name == old.name and clip.turns == old.turns
        np.testing.assert_array_equal(clip.samples, old.samples)


def test_an_unknown_split_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        dataset.build("train", tmp_path)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.tools  # espeak-ng speaks the set
def test_every_split_has_one_to_six_speakers_in_a_short_total(
    split: str, built: dict[str, list[tuple[Clip, Record]]]
) -> None:
    clips = [clip for clip, _ in built[split]]
    assert {len(c.speakers) for c in clips} == {1, 2, 3, 4, 5, 6}
    assert all(29.9 <= c.duration <= 120.0 for c in clips), [(c.name, c.duration) for c in clips]
    # The tuning split has two clips of most kinds (about 15 minutes), the held-out one clip each.
    assert sum(c.duration for c in clips) < (16 if split == "tune" else 12) * 60
    for clip in clips:
        assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.tools  # espeak-ng speaks the set
def test_every_split_covers_every_property(split: str, built: dict[str, list[tuple[Clip, Record]]]) -> None:
    records = [r for _, r in built[split]]
    assert set().union(*(r.tags for r in records)) == set(PROPERTIES)
    for r in records:
        assert r.property in PROPERTIES or r.property == "mixed"
        assert [p for p in r.tags if not dataset.covers(r, p)] == [], r.name


@pytest.mark.tools  # espeak-ng speaks the set
def test_the_property_checks_reject_what_they_should(built: dict[str, list[tuple[Clip, Record]]]) -> None:
    by_name = {r.name: r for split in SPLITS for _, r in built[split]}
    # each check must be able to say no, or covering every property would prove nothing
    for prop in PROPERTIES:
        assert not all(dataset.covers(r, prop) for r in by_name.values()), prop
    assert not dataset.covers(by_name["tune_variants_3"], "distinct_voices")  # en-us+m1/m3/m7 only


@pytest.mark.tools  # espeak-ng speaks the set
def test_the_monologue_and_minor_speaker_are_what_they_say(built: dict[str, list[tuple[Clip, Record]]]) -> None:
    for split in SPLITS:
        for clip, record in built[split]:
            if "monologue" in record.tags:
                assert len(clip.speakers) == 1 and clip.turns[-1].end - clip.turns[0].start >= 60
            minors = [v.label for v in record.speakers if v.minor]
            for label in minors:
                talk = sum(t.end - t.start for t in clip.turns if t.speaker == label)
                assert 0 < talk < 0.1 * sum(t.end - t.start for t in clip.turns), (record.name, label)


@pytest.mark.tools  # espeak-ng speaks the set
def test_the_rttm_and_manifest_agree_with_the_json(root: Path) -> None:
    for split in SPLITS:
        folder = root / split
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["split"] == split
        for entry in manifest["clips"]:
            record = Record.from_json(json.loads((folder / f"{entry['name']}.json").read_text()))
            assert entry["speakers"] == len(record.speakers) == len({t.speaker for t in record.turns})
            assert entry["duration"] == pytest.approx(record.duration, abs=1e-3)
            assert entry["property"] == record.property
            rttm = read_rttm(folder / f"{entry['name']}.rttm")
            assert len(rttm) == len(record.turns)
            for a, b in zip(rttm, record.turns, strict=True):
                assert a.speaker == b.speaker
                assert a.start == pytest.approx(b.start, abs=1e-3) and a.end == pytest.approx(b.end, abs=1e-3)
            for line in (folder / f"{entry['name']}.rttm").read_text().splitlines():
                fields = line.split()
                assert len(fields) == 10 and fields[0] == "SPEAKER" and fields[1] == entry["name"], line


@pytest.mark.tools  # espeak-ng speaks the set
def test_the_wavs_are_16k_mono_int16(root: Path) -> None:
    import wave

    for wav in root.rglob("*.wav"):
        with wave.open(str(wav)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SAMPLE_RATE, 1, 2), wav


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


def _uncovered(clip: Clip) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []
    end = 0.0
    for t in sorted(clip.turns, key=lambda t: t.start):
        if t.start > end:
            spans.append((end, t.start))
        end = max(end, t.end)
    return [*spans, (end, clip.duration)]


def _cut(clip: Clip, start: float, end: float) -> np.ndarray:
    return clip.samples[int(round(start * SAMPLE_RATE)) : int(round(end * SAMPLE_RATE))]


@pytest.mark.tools  # espeak-ng speaks the set
def test_reference_turns_sit_on_speech_and_gaps_are_silent(built: dict[str, list[tuple[Clip, Record]]]) -> None:
    for split in SPLITS:
        for clip, record in built[split]:
            for t in clip.turns:
                assert _rms(_cut(clip, t.start, t.end)) > SPEECH_RMS, (clip.name, t)
            if record.name == "tune_sample_2":
                continue  # a real recording: its gaps hold room noise, and its reference is a human's
            voices = {v.label: v for v in record.speakers}
            for t in clip.turns:  # tight edges: audible right at the start and at the end of the turn
                if voices[t.speaker].real:
                    continue  # cut by the human reference, not trimmed
                assert np.abs(_cut(clip, t.start, t.start + 0.005)).max() > EDGE, (clip.name, t)
                assert np.abs(_cut(clip, t.end - 0.005, t.end)).max() > EDGE, (clip.name, t)
            for start, end in _uncovered(clip):
                if end - start > 0.5:
                    assert _rms(_cut(clip, start, end)) < SILENT_RMS, (clip.name, start, end)


@pytest.mark.tools  # espeak-ng speaks the set
def test_overlaps_are_mixed_and_both_turns_are_in_the_reference(built: dict[str, list[tuple[Clip, Record]]]) -> None:
    for split in SPLITS:
        for clip, record in built[split]:
            if "overlap" not in record.tags or record.name == "tune_sample_2":
                continue
            pairs = [
                (a, b)
                for i, a in enumerate(clip.turns)
                for b in clip.turns[i + 1 :]
                if a.speaker != b.speaker and min(a.end, b.end) - max(a.start, b.start) >= 0.5
            ]
            assert pairs, clip.name
            for a, b in pairs:
                assert min(a.end, b.end) - max(a.start, b.start) <= 2.0


@pytest.mark.tools  # espeak-ng speaks the set
def test_the_splits_share_no_text_and_no_clip_design(built: dict[str, list[tuple[Clip, Record]]]) -> None:
    texts = {s: {t.text for _, r in built[s] for t in r.turns if t.text} for s in SPLITS}
    assert texts["tune"] and texts["heldout"] and not texts["tune"] & texts["heldout"]
    assert not set(dataset.TUNE_SENTENCES) & set(dataset.HELDOUT_SENTENCES)
    assert len(dataset.TUNE_SENTENCES) + len(dataset.HELDOUT_SENTENCES) >= 60
    voices = {s: [frozenset(v.voice for v in r.speakers) for _, r in built[s]] for s in SPLITS}
    assert not [v for v in voices["heldout"] if v in voices["tune"]]
    assert not {s.seed for s in dataset.TUNE} & {s.seed for s in dataset.HELDOUT}


@pytest.mark.tools  # espeak-ng speaks the set
def test_heldout_interleaves_the_real_speakers_with_espeak_voices(built: dict[str, list[tuple[Clip, Record]]]) -> None:
    (record,) = [r for _, r in built["heldout"] if "real_speech" in r.tags]
    kinds = ["real" if t.voice.startswith("real:") else "espeak" for t in sorted(record.turns, key=lambda t: t.start)]
    assert {"real", "espeak"} == set(kinds)
    assert sum(a != b for a, b in zip(kinds, kinds[1:], strict=False)) >= 4  # interleaved, not two blocks
    assert {t.voice for t in record.turns if t.voice.startswith("real:")} == {"real:speaker90", "real:speaker91"}


@pytest.mark.tools  # espeak-ng speaks the set
def test_references_give_the_text_of_every_synthetic_turn(root: Path) -> None:
    for split in SPLITS:
        refs = dataset.references(split, root)
        assert list(refs) == [s.name for s in dataset.SPECS[split]]
        for turns in refs.values():
            for t in turns:
                assert (t.text is None) == t.voice.startswith("real:")
                if t.backchannel:
                    assert 0.3 <= t.end - t.start <= 1.0


@pytest.mark.tools  # espeak-ng speaks the set
def test_score_is_zero_for_the_reference_and_positive_when_wrong(
    built: dict[str, list[tuple[Clip, Record]]],
) -> None:
    for split in SPLITS:
        for clip, _ in built[split]:
            assert dataset.score(clip, clip.turns, 0.0) == pytest.approx(0.0, abs=1e-9)
            assert dataset.score(clip, clip.turns, 0.5) == pytest.approx(0.0, abs=1e-9)
            half = len(clip.turns) // 2
            if len(clip.speakers) == 1:  # a monologue cut in two speakers
                wrong = [Turn(t.start, t.end, "x" if i < half else "y") for i, t in enumerate(clip.turns)]
            else:  # every speaker merged into one
                wrong = [Turn(t.start, t.end, "x") for t in clip.turns]
            assert dataset.score(clip, wrong, 0.0) > 0.01, clip.name
            shifted = [Turn(t.start + 1.0, t.end + 1.0, t.speaker) for t in clip.turns]
            assert dataset.score(clip, shifted, 0.5) > 0.01, clip.name
            assert dataset.score(clip, [], 0.0) == pytest.approx(1.0)  # everything missed


@pytest.mark.tools  # espeak-ng speaks the set
def test_the_cli_prints_a_table(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset.main(["build", "--split", "all", "--folder", str(root)])
    out = capsys.readouterr().out
    for split in SPLITS:
        for spec in dataset.SPECS[split]:
            assert spec.name in out and spec.property in out
