"""The real-speech diarization set (bench/diarization/real.py): disjoint by person, reproducible, exact.

Every split is built once into a temporary folder from tests/data/real_speech/ (no ffmpeg, no
model; a few seconds) and once more into a second folder to prove the build is byte-identical.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from bench.diarization import real
from bench.diarization.clips import SAMPLE_RATE, Clip, Turn, read_rttm
from bench.diarization.real import SET_KINDS, SPLITS, VENDOR, Record

SILENT_RMS = 1e-3  # outside the turns: digital silence, or a clip's deliberate 3e-4 noise floor
SPEECH_RMS = 2e-3  # every turn: its utterance is at 0.03 RMS over speech frames (+-3 dB); soft words are lower
MAX_VENDORED = 30 * 2**20

Built = dict[str, list[tuple[Clip, Record]]]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("real")
    for split in SPLITS:
        real.build(split, folder)
    return folder


@pytest.fixture(scope="module")
def built(root: Path) -> Built:
    return {s: list(zip(real.build(s, root), real.records(s, root), strict=True)) for s in SPLITS}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _spec(name: str) -> real.Spec:
    return next(s for split in SPLITS for s in real.SPECS[split] if s.name == name)


def test_two_builds_are_byte_identical(root: Path, tmp_path: Path) -> None:
    for split in SPLITS:
        real.build(split, tmp_path)
    first, second = _files(root), _files(tmp_path)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_a_cached_split_is_loaded_not_rebuilt(root: Path, built: Built) -> None:
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    again = real.build("tune", root)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before
    for clip, (old, _) in zip(again, built["tune"], strict=True):
        assert clip.name == old.name and clip.turns == old.turns
        np.testing.assert_array_equal(clip.samples, old.samples)


def test_an_unknown_split_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        real.build("train", tmp_path)


def test_the_splits_are_disjoint_by_person(built: Built) -> None:
    used = {split: {s.label for _, r in built[split] for s in r.speakers} for split in SPLITS}
    assert used == {split: real.people(split) for split in SPLITS}
    assert used["tune"].isdisjoint(used["heldout"])
    for split in SPLITS:
        for pid in used[split]:
            assert real.person(pid).split == real.SIDE[split], (split, pid)
            if pid.startswith("ls"):  # the fixed reader rule
                assert real.person(pid).split == ("heldout" if int(pid[2:]) % 3 == 0 else "tune"), pid
    # the turns' speakers are the records' speakers, and each source file belongs to one person
    for split in SPLITS:
        for clip, record in built[split]:
            assert clip.speakers == {s.label for s in record.speakers}, record.name
    owners: dict[str, set[str]] = {}
    for split in SPLITS:
        for _, record in built[split]:
            for t in record.turns:
                owners.setdefault(t.source, set()).add(t.speaker)
    assert {src for src, who in owners.items() if len(who) > 1} == {real.FW_STEREO, "pyannote:sample.wav"}


def test_nothing_reserved_is_read_vendored_or_used(built: Built, tmp_path: Path) -> None:
    assert [p for p in VENDOR.rglob("*") if real.RESERVED in str(p)] == []
    subsets = {reader: subset for reader, (_, subset) in real.speakers_txt().items()}
    assert set(subsets.values()) == {"train-clean-100", "test-clean"}
    assert {r for r, s in subsets.items() if s == "test-clean"} == {"61", "260"}  # faster-whisper's pair
    for flac in (VENDOR / real.LIBRISPEECH).glob("*.flac"):
        assert subsets[flac.name.split("-")[0]] == "train-clean-100", flac.name
    origins = (VENDOR / "SOURCES.md").read_text().split("## Files")[1]
    assert real.RESERVED not in origins
    for split in SPLITS:
        for _, record in built[split]:
            assert all(real.RESERVED not in t.source for t in record.turns)
    with pytest.raises(PermissionError):
        real._Repo(tmp_path).read("audio_data/librispeech_test-other/SPEAKERS.TXT")
    with pytest.raises(PermissionError):
        real._Repo(tmp_path).listing("audio_data/librispeech_test-other")


def test_the_vendored_files_are_what_sources_md_says_and_small() -> None:
    rows = real.manifest_rows()
    on_disk = {str(p.relative_to(VENDOR)): p for p in VENDOR.rglob("*") if p.is_file() and p.name != "SOURCES.md"}
    assert set(rows) == set(on_disk)
    for name, (size, sha) in rows.items():
        data = on_disk[name].read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha), name
    assert sum(size for size, _ in rows.values()) < MAX_VENDORED
    used = {name for split in SPLITS for name in real.vendored_files(split)}
    assert used <= set(rows)
    # nothing vendored goes unused, licences and the list of sources aside
    assert set(rows) - used == {"LICENSE.resemblyzer.txt", "LICENSE.faster-whisper.txt"}


@pytest.mark.parametrize("split", ["tune", "heldout"])
def test_every_kind_and_speaker_count_is_covered(split: str, built: Built) -> None:
    records = [r for _, r in built[split]]
    assert set().union(*(r.kinds for r in records)) == set(SET_KINDS)
    counts = [len(r.speakers) for r in records]
    assert all(counts.count(n) >= 2 for n in range(1, 7)), counts
    assert max(counts) == 6
    assert (12 if split == "tune" else 10) <= len(records) <= (16 if split == "tune" else 14)
    made = [r for r in records if "recorded" not in r.kinds]
    assert all(57.0 <= r.duration <= 110.0 for r in made), [(r.name, r.duration) for r in made]
    for r in records:
        assert [k for k in r.kinds if not real.covers(r, k)] == [], r.name
    assert sum("overlap" in r.kinds for r in records) >= 3  # an overlapped-speech DER is over several clips


def test_the_kind_checks_reject_what_they_should(built: Built) -> None:
    records = [r for split in SPLITS for _, r in built[split]]
    for kind in real.KINDS:  # each check must be able to say no, or covering every kind would prove nothing
        assert not all(real.covers(r, kind) for r in records), kind
    by_name = {r.name: r for r in records}
    assert not real.covers(by_name["tune_mm_2"], "mixed_sex")
    assert not real.covers(by_name["tune_mm_2"], "partial_overlap")
    assert not real.covers(by_name["heldout_talk_4"], "overlap")
    assert not real.covers(by_name["long_call_4"], "norepeat") and real.repeats(by_name["heldout_reader_m_1"])


def test_turns_are_speech_and_the_rest_is_silence(built: Built) -> None:
    for split in SPLITS:
        for clip, record in built[split]:
            x = clip.samples.astype(np.float64)
            inside = np.zeros(len(x), bool)
            for t in clip.turns:
                a, b = round(t.start * SAMPLE_RATE), round(t.end * SAMPLE_RATE)
                assert 0 <= a < b <= len(x), (record.name, t)
                assert np.sqrt(np.mean(x[a:b] ** 2)) > SPEECH_RMS, (record.name, t)
                inside[a:b] = True
            if "recorded" in record.kinds:
                continue  # a recording as published: its room noise is there between turns
            outside = x[~inside]
            assert len(outside) > 0 and np.sqrt(np.mean(outside**2)) < SILENT_RMS, record.name
            if not _spec(record.name).noise:
                assert np.max(np.abs(outside)) == 0.0, record.name
            assert np.max(np.abs(x)) < 1.0, record.name  # nothing clipped


def test_the_reference_is_the_vendored_audio(built: Built) -> None:
    """A turn's samples are its source piece times one gain per speaker and clip (overlaps aside)."""
    sources = real._Sources(VENDOR)
    for clip, record in built["tune"][:4] + built["heldout"][2:5] + built["heldout_norepeat"][:4]:
        if "recorded" in record.kinds or _spec(record.name).noise:
            continue
        spans = real.overlap_spans(record.turns)
        gains: dict[str, float] = {}
        for t in record.turns:
            if any(s < t.end and e > t.start for s, e in spans):
                continue
            a = round(t.start * SAMPLE_RATE)
            piece = next(
                p
                for p in (*sources.utterance(t.speaker).pieces, *sources.utterance(t.speaker).short)
                if p.source == t.source and p.start == round(t.offset * SAMPLE_RATE)
            )
            got = clip.samples[a : a + len(piece.audio)].astype(np.float64)
            assert len(piece.audio) == round((t.end - t.start) * SAMPLE_RATE)
            gain = float(np.dot(got, piece.audio) / np.dot(piece.audio, piece.audio))
            assert abs(gains.setdefault(t.speaker, gain) - gain) < 1e-3, (record.name, t)
            assert 10 ** (-real.GAIN_DB / 20) - 1e-3 <= gain <= 10 ** (real.GAIN_DB / 20) + 1e-3
            np.testing.assert_allclose(got, piece.audio * gain, rtol=1e-3, atol=2 / 32768)  # int16, truncated


def test_heldout_norepeat_says_no_audio_twice_and_has_heldout_readers_only(built: Built) -> None:
    """Each reader's pieces once each, nothing else: no two turns of a clip share any audio."""
    sources = real._Sources(VENDOR)
    heldout_readers = {p for spec in real.HELDOUT for p in spec.speakers if p.startswith("ls")}
    records = [r for _, r in built["heldout_norepeat"]]
    assert 7 <= len(records) <= 9
    assert {len(r.speakers) for r in records} == {2, 3, 4, 5, 6}
    assert {"male_male", "female_female", "mixed_sex"} <= set().union(*(r.kinds for r in records))
    assert sum("partial_overlap" in r.kinds for r in records) >= 2
    others = {s.seed for split in SPLITS if split != "heldout_norepeat" for s in real.SPECS[split]}
    assert others.isdisjoint(s.seed for s in real.NOREPEAT)
    for record in records:
        assert "norepeat" in record.kinds and real.covers(record, "norepeat"), record.name
        assert [k for k in record.kinds if not real.covers(record, k)] == [], record.name
        assert 20.0 <= record.duration <= 110.0, (record.name, record.duration)  # not the 57-110 s of the others
        assert not any(t.backchannel for t in record.turns), record.name  # a back-channel's word is in a piece
        for speaker in record.speakers:
            pid = speaker.label
            assert pid in heldout_readers and int(pid[2:]) % 3 == 0 and real.person(pid).split == "heldout", pid
        # no two turns share a source piece, and every piece of a reader's utterance is said once
        said = [(t.source, round(t.offset * SAMPLE_RATE)) for t in record.turns]
        assert len(said) == len(set(said)), record.name
        assert real.repeats(record) == [], record.name
        for speaker in record.speakers:
            pieces = sources.utterance(speaker.label).pieces
            turns = [t for t in record.turns if t.speaker == speaker.label]
            assert {t.source for t in turns} == {sources.file(speaker.label)}
            assert sorted(round(t.offset * SAMPLE_RATE) for t in turns) == [p.start for p in pieces], record.name
            assert [round((t.end - t.start) * SAMPLE_RATE) for t in sorted(turns, key=lambda t: t.offset)] == [
                len(p.audio) for p in pieces
            ], record.name


def test_the_monologues_minor_speakers_and_long_call_are_what_they_say(built: Built) -> None:
    monologues: dict[str, set[str]] = {"tune": set(), "heldout": set()}
    for split in SPLITS:
        for clip, record in built[split]:
            if "monologue" in record.kinds:
                assert len(clip.speakers) == 1 and clip.turns[-1].end - clip.turns[0].start >= 60
                monologues[split] |= clip.speakers
            for speaker in record.speakers:
                if speaker.minor:
                    talk = sum(t.end - t.start for t in clip.turns if t.speaker == speaker.label)
                    assert 0 < talk < 0.1 * sum(t.end - t.start for t in clip.turns), (record.name, speaker)
    assert monologues["tune"] and monologues["heldout"] and monologues["tune"].isdisjoint(monologues["heldout"])
    ((clip, record),) = built["long"]
    assert 600 <= clip.duration <= 1200 and len(clip.speakers) == 4 and record.sexes.count("F") == 2
    assert len(real.overlap_spans(record.turns)) >= 2 and real.covers(record, "backchannel")


def test_the_rttm_and_manifest_agree_with_the_json(root: Path) -> None:
    for split in SPLITS:
        folder = root / split
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["split"] == split
        assert [e["name"] for e in manifest["clips"]] == [s.name for s in real.SPECS[split]]
        for entry in manifest["clips"]:
            record = Record.from_json(json.loads((folder / f"{entry['name']}.json").read_text()))
            assert entry["speakers"] == len(record.speakers) == len({t.speaker for t in record.turns})
            assert entry["duration"] == pytest.approx(record.duration, abs=1e-3)
            assert entry["kinds"] == list(record.kinds) and entry["sexes"] == record.sexes
            rttm = read_rttm(folder / f"{entry['name']}.rttm")
            assert [(t.speaker, round(t.start, 3), round(t.end - t.start, 3)) for t in rttm] == [
                (t.speaker, round(t.start, 3), round(t.end - t.start, 3)) for t in record.turns
            ]


def test_the_score_of_the_reference_is_zero_and_overlaps_can_be_scored_alone(built: Built) -> None:
    clip, record = next((c, r) for c, r in built["tune"] if "overlap" in r.kinds)
    assert real.score(clip, clip.turns) == 0.0
    regions = real.overlap_regions(clip)
    assert len(regions) >= 4 and real.score(clip, clip.turns, regions=regions) == 0.0
    one = [Turn(0.0, clip.duration, "x")]  # one speaker throughout misses one of two voices in an overlap
    assert real.score(clip, one, regions=regions) == pytest.approx(0.5, abs=0.01)
    assert real.score(clip, one) > 0.3
