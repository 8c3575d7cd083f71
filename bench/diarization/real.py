"""A diarization test set of real speech in four splits: ``tune``, ``heldout``, ``long`` and ``heldout_norepeat``.

Defaults are chosen on ``tune`` and reported once on ``heldout``; ``long`` is one call of about 12
minutes for cost and drift; ``heldout_norepeat`` is heldout-side readers with no audio said twice
in a clip, for comparing with other diarizers fairly (exact repeats give duplicate embeddings,
which some clusterers split off). No voice is synthetic: the speech is LibriSpeech readers (one
utterance each, from Resemblyzer's repository), one monologue by one real person (Donald Trump,
an excerpt of a Resemblyzer recording), pyannote.audio's own ``sample.wav`` and faster-whisper's
``stereo_diarization.wav``. ``vendor`` copies the files used into ``tests/data/real_speech/``
(see its SOURCES.md); ``build`` reads nothing else, so the set builds on a fresh clone without
ffmpeg (FLAC is decoded by PyAV, a runtime dependency). LibriSpeech's ``test-other`` readers in
Resemblyzer's repository are reserved for a hidden evaluation: nothing here reads them.

The splits are disjoint by person. A LibriSpeech reader ``r`` belongs to ``heldout`` if
``int(r) % 3 == 0``, else to ``tune``; any other source (a person) belongs to one split only:
Trump and faster-whisper's file (LibriSpeech test-clean readers 61 and 260) to ``tune``,
pyannote's sample to ``heldout``. ``long`` uses tune-side readers only, ``heldout_norepeat``
only readers that ``heldout``'s clips use.

How a clip is made: each utterance is cut at its pauses (30 ms frames, a frame is speech when
it is within 35 dB of the utterance's loud frames and 12 dB over its floor; pauses of 0.24 s or
more cut pieces, 0.09 s or more cut words for the back-channels), and every piece becomes one
reference turn, exactly its span trimmed of silent frames. Each utterance is scaled to a common
RMS over its speech frames, times a per-speaker gain within +-3 dB fixed for the clip. Turns are
laid out with digital silence between them (a clip may add a deliberate noise floor), so the
reference is exact by construction: overlaps mix two pieces by addition and both speakers are in
the RTTM while they overlap. A reader has one utterance of 9-16 s, so a reader who talks longer
than that within a clip repeats pieces: the first pass in the utterance's order, later passes in
a seeded shuffle, never the same piece twice in a row. The one-reader monologues and ``long``
(four readers for 12 minutes) rely on that heavily; Trump's monologue repeats nothing, and
neither does any ``heldout_norepeat`` clip: there each reader says their pieces in a seeded order,
each once at most, and stops talking when they run out (so a clip lasts about 12 s of speech per
reader, 25-95 s in all, and has no back-channels, which are words cut from the same pieces).

Builds are deterministic (fixed seeds; byte-identical wavs) and cached in
``~/.cache/fwv2/real-speech/<split>/``: per clip ``<name>.wav`` (16 kHz mono int16),
``<name>.rttm``, ``<name>.json`` (speakers with sex and source, turns with their source
file and offset), and a ``manifest.json`` whose fingerprint (this module, the vendored files the
split uses) decides whether the cache is rebuilt.

    .venv/bin/python -m bench.diarization.real vendor [--resemblyzer DIR] [--faster-whisper DIR]
    .venv/bin/python -m bench.diarization.real build [--split tune|heldout|long|heldout_norepeat|all]
        [--folder DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import subprocess
import wave
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.diarization.clips import SAMPLE_RATE, Clip, Turn, read_rttm, read_wav, write_rttm, write_wav
from bench.diarization.clips import score as score  # the one scorer, kept under the name the tests use

ROOT = Path.home() / ".cache" / "fwv2" / "real-speech"
VENDOR = Path(__file__).resolve().parents[2] / "tests" / "data" / "real_speech"
SPLITS = ("tune", "heldout", "long", "heldout_norepeat")
SIDE = {"tune": "tune", "heldout": "heldout", "long": "tune", "heldout_norepeat": "heldout"}  # whose people
RESERVED = "test-other"  # Resemblyzer's librispeech_test-other: a hidden evaluation's, never read here

KINDS = {
    "monologue": "one real person for 60 s or more; must stay one speaker",
    "male_male": "two speakers, both male",
    "female_female": "two speakers, both female",
    "mixed_sex": "two speakers, one male and one female",
    "unequal_talk": "one speaker has under 10 % of the speech",
    "backchannel": "short turns of 0.3-1 s with silence around them",
    "partial_overlap": "two speakers at once for 0.5-2 s",
    "overlap": "overlap-heavy: four or more overlaps of 0.5-2 s, for a separate overlapped-speech DER",
    "varied_pauses": "pauses of 0.2-2 s between turns, spread over 0.5 s or more",
    "long_silence": "10-30 s of silence between speech",
    "recorded": "a recording as published, with its source's reference (sample.rttm, or per-channel energy)",
    "long_call": "a call of 10-20 minutes",
    "norepeat": "no audio twice: each reader's pieces once at most (heldout_norepeat's clips)",
}
# what tune and heldout must each cover (long_call is the long split's, norepeat heldout_norepeat's)
SET_KINDS = tuple(k for k in KINDS if k not in ("long_call", "norepeat"))

FRAME = 480  # 30 ms
PAUSE_FRAMES = 8  # 0.24 s of silence cuts an utterance into pieces
WORD_PAUSE_FRAMES = 3  # 0.09 s cuts a piece into words, for the back-channels
LOUD_RANGE_DB = 35.0  # speech frames are within this of the utterance's loud (95th percentile) frames
FLOOR_MARGIN_DB = 12.0  # ... and this far over its floor (3rd percentile)
PEAK_RANGE_DB = 20.0  # a piece's loudest frame is within this of the loud frames
MIN_PIECE_S = 0.5  # shorter pieces are no ordinary turn
BACKCHANNEL_S = (0.3, 1.0)
OVERLAP_S = (0.5, 2.0)
PAUSE_S = (0.2, 2.0)
RUN_PAUSE_S = (0.2, 0.6)  # between the pieces one speaker says in a row
LONG_SILENCE_S = (10.0, 30.0)
LONG_CALL_S = (600.0, 1200.0)
LOUDNESS = 0.03  # RMS over speech frames every utterance is scaled to (peaks stay under 1 with the gains)
GAIN_DB = 3.0  # each speaker of a clip gets a fixed gain within +-GAIN_DB
HEAVY_OVERLAPS = 4  # overlaps an "overlap" clip has at least

# --- who is who ------------------------------------------------------------------------------

# Trump's monologue: an excerpt of one of Resemblyzer's real recordings (mono 48 kHz mp3), chosen
# for one voice throughout (CAM++ cosine to the file's median voice >= 0.76 over 3 s windows).
TRUMP_MP3 = "audio_data/donald_trump/real/qCCWXoCURKY.mp3"
TRUMP_EXCERPT_S = (200.0, 80.0)  # start, length
TRUMP_FILE = "trump/qCCWXoCURKY_200-280.flac"
FW_STEREO = "faster-whisper/stereo_diarization.wav"
FW_CHANNELS = ("ls61", "ls260")  # left: test-clean 61-70968-0000; right: reader 260 ("The horizon ...")
LIBRISPEECH = "librispeech"
RESEMBLYZER_LS = "audio_data/librispeech_train-clean-100"


@dataclass(frozen=True)
class Person:
    """One real speaker; ``split`` is the only one of tune/heldout whose clips may hold them."""

    id: str  # "ls<reader>" for LibriSpeech, else a name
    sex: str  # "male", "female" or "unknown"
    split: str
    origin: str


OTHER_PEOPLE = {
    "trump": Person("trump", "male", "tune", f"Donald Trump, Resemblyzer {TRUMP_MP3}"),
    "speaker90": Person("speaker90", "unknown", "heldout", "pyannote.audio sample.wav"),
    "speaker91": Person("speaker91", "unknown", "heldout", "pyannote.audio sample.wav"),
}


def reader_split(reader: str) -> str:
    """The fixed split rule for LibriSpeech readers (other engineers rely on it)."""
    return "heldout" if int(reader) % 3 == 0 else "tune"


def speakers_txt(folder: Path = VENDOR) -> dict[str, tuple[str, str]]:
    """reader -> (sex, subset), from the vendored SPEAKERS.TXT lines."""
    out: dict[str, tuple[str, str]] = {}
    for line in (folder / "SPEAKERS.TXT").read_text().splitlines():
        if line.startswith(";") or not line.strip():
            continue
        fields = [f.strip() for f in line.split("|")]
        out[fields[0]] = ({"M": "male", "F": "female"}[fields[1]], fields[2])
    return out


def person(pid: str, folder: Path = VENDOR) -> Person:
    if pid in OTHER_PEOPLE:
        return OTHER_PEOPLE[pid]
    reader = pid.removeprefix("ls")
    sex, subset = speakers_txt(folder)[reader]
    return Person(pid, sex, reader_split(reader), f"LibriSpeech {subset} reader {reader}")


# --- clip specifications ---------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """How to build one clip. ``kinds`` are checked against the built reference (``covers``)."""

    name: str
    seed: int
    kinds: tuple[str, ...]
    speakers: tuple[str, ...]  # person ids
    # of ``speakers``: those with under 10 % of the talk: two or three short turns (MINOR_S in all)
    # and the clip's back-channels
    minor: tuple[str, ...] = ()
    speech_s: float = 60.0  # the turns' seconds (ordinary pauses and long silences come on top)
    pauses: tuple[float, float] = PAUSE_S
    backchannel_p: float = 0.0
    overlap_p: float = 0.0
    long_silences: tuple[float, ...] = ()
    noise: float = 0.0  # std of a deliberate noise floor over the whole clip
    once: bool = False  # one speaker says each piece once, in order (``speech_s`` is ignored)
    recorded: str = ""  # "pyannote_sample" or "fw_stereo": the recording as published


MINOR_S = 3.0  # least talk of a minor speaker, in two or more turns


def _s(name: str, seed: int, kinds: str, speakers: str, minor: str = "", **kw: Any) -> Spec:
    return Spec(name, seed, tuple(kinds.split()), tuple(speakers.split()), tuple(minor.split()), **kw)


TUNE = (
    _s("tune_trump_1", 101, "monologue varied_pauses", "trump", once=True, pauses=(0.2, 1.5)),
    _s("tune_reader_1", 102, "monologue varied_pauses", "ls6476", speech_s=50, pauses=(0.2, 1.5)),
    _s("tune_mm_2", 201, "male_male backchannel varied_pauses", "ls2002 ls8770", speech_s=48, backchannel_p=0.15),
    _s("tune_ff_2", 202, "female_female partial_overlap varied_pauses", "ls1970 ls3982", speech_s=52, overlap_p=0.25),
    _s("tune_mixed_2", 203, "mixed_sex long_silence varied_pauses", "ls625 ls8014", speech_s=42,
       long_silences=(18.0,)),
    _s("tune_stereo_2", 204, "recorded male_male", "ls61 ls260", recorded="fw_stereo"),
    _s("tune_minor_3", 301, "unequal_talk backchannel varied_pauses", "ls229 ls125 ls3830", minor="ls3830",
       speech_s=50, backchannel_p=0.15),
    _s("tune_overlap_3", 302, "overlap partial_overlap varied_pauses", "ls1246 ls5393 ls2911", speech_s=52,
       overlap_p=0.7),
    _s("tune_talk_4", 401, "backchannel partial_overlap varied_pauses", "ls2384 ls8609 ls248 ls3235", speech_s=60,
       backchannel_p=0.12, overlap_p=0.2),
    _s("tune_silence_4", 402, "long_silence unequal_talk backchannel varied_pauses", "ls3947 ls4051 ls6818 ls446",
       minor="ls446", speech_s=50, backchannel_p=0.15, long_silences=(12.0,), noise=3e-4),
    _s("tune_overlap_5", 501, "overlap partial_overlap backchannel varied_pauses",
       "ls6848 ls3214 ls8975 ls2092 ls1594", speech_s=72, backchannel_p=0.1, overlap_p=0.7),
    _s("tune_minor_5", 502, "unequal_talk backchannel varied_pauses", "ls6925 ls8098 ls3526 ls250 ls3374",
       minor="ls250", speech_s=68, backchannel_p=0.15),
    _s("tune_talk_6", 601, "backchannel partial_overlap varied_pauses", "ls8063 ls2002 ls1970 ls125 ls8014 ls8770",
       speech_s=75, backchannel_p=0.12, overlap_p=0.2),
    _s("tune_overlap_6", 602, "overlap partial_overlap unequal_talk backchannel varied_pauses",
       "ls229 ls625 ls5393 ls3982 ls2384 ls248", minor="ls248", speech_s=80, backchannel_p=0.12, overlap_p=0.7),
)  # fmt: skip

HELDOUT = (
    _s("heldout_reader_m_1", 1101, "monologue varied_pauses", "ls5322", speech_s=54, pauses=(0.2, 1.5)),
    _s("heldout_reader_f_1", 1102, "monologue varied_pauses", "ls5163", speech_s=52, pauses=(0.3, 1.8)),
    _s("heldout_mm_2", 1201, "male_male backchannel varied_pauses", "ls1743 ls5703", speech_s=50, backchannel_p=0.15),
    _s("heldout_ff_2", 1202, "female_female partial_overlap varied_pauses", "ls7059 ls2910", speech_s=50,
       overlap_p=0.25),
    _s("heldout_mixed_2", 1203, "mixed_sex long_silence varied_pauses", "ls4830 ls5688", speech_s=42,
       long_silences=(24.0,), noise=3e-4),
    _s("heldout_sample_2", 1204, "recorded", "speaker90 speaker91", recorded="pyannote_sample"),
    _s("heldout_minor_3", 1301, "unequal_talk backchannel varied_pauses", "ls2952 ls7794 ls3807", minor="ls2952",
       speech_s=55, backchannel_p=0.15),
    _s("heldout_overlap_3", 1302, "overlap partial_overlap varied_pauses", "ls2691 ls669 ls4788", speech_s=52,
       overlap_p=0.7),
    _s("heldout_talk_4", 1401, "backchannel partial_overlap varied_pauses", "ls60 ls8580 ls1737 ls6000", speech_s=60,
       backchannel_p=0.12, overlap_p=0.2),
    _s("heldout_overlap_4", 1402, "overlap partial_overlap unequal_talk backchannel varied_pauses",
       "ls4362 ls7113 ls909 ls831", minor="ls831", speech_s=60, backchannel_p=0.12, overlap_p=0.7),
    _s("heldout_silence_5", 1501, "long_silence backchannel partial_overlap varied_pauses",
       "ls2436 ls5463 ls3879 ls6078 ls1926", speech_s=62, backchannel_p=0.12, overlap_p=0.2, long_silences=(14.0,)),
    _s("heldout_overlap_5", 1502, "overlap partial_overlap varied_pauses", "ls3723 ls405 ls2817 ls6531 ls5808",
       speech_s=72, overlap_p=0.7),
    _s("heldout_minor_6", 1601, "unequal_talk backchannel partial_overlap varied_pauses",
       "ls1743 ls4830 ls2910 ls5688 ls7059 ls2817", minor="ls2817", speech_s=78, backchannel_p=0.15, overlap_p=0.2),
    _s("heldout_overlap_6", 1602, "overlap partial_overlap backchannel varied_pauses",
       "ls2952 ls4788 ls60 ls669 ls6000 ls4362", speech_s=80, backchannel_p=0.1, overlap_p=0.7),
)  # fmt: skip

# Four tune-side readers (two men, two women) for 12 minutes: each says their ~13 s utterance's
# pieces many times over, in a new shuffled order on every pass.
LONG = (
    _s("long_call_4", 9001, "long_call backchannel partial_overlap varied_pauses", "ls3374 ls2002 ls6476 ls250",
       speech_s=560, backchannel_p=0.1, overlap_p=0.08),
)  # fmt: skip

# Heldout-side readers (all of them in HELDOUT's clips), each saying every piece of their one
# utterance once (``_Script._each_once``): a clip ends when its readers run out of pieces, so
# ``speech_s`` does not apply. Seeds apart from HELDOUT's.
NOREPEAT = (
    _s("norepeat_mm_2", 2201, "norepeat male_male varied_pauses", "ls405 ls2436"),
    _s("norepeat_ff_2", 2202, "norepeat female_female varied_pauses", "ls2910 ls7113"),
    _s("norepeat_mixed_2", 2203, "norepeat mixed_sex varied_pauses", "ls5322 ls669"),
    _s("norepeat_3a", 2301, "norepeat varied_pauses", "ls8580 ls7794 ls5808"),
    _s("norepeat_3b", 2302, "norepeat varied_pauses", "ls4362 ls2952 ls6531"),
    _s("norepeat_4a", 2401, "norepeat varied_pauses", "ls5703 ls1737 ls3723 ls7059"),
    _s("norepeat_4b", 2402, "norepeat varied_pauses", "ls2691 ls909 ls5163 ls831"),
    _s("norepeat_5", 2501, "norepeat partial_overlap varied_pauses", "ls60 ls6000 ls3807 ls5688 ls4788",
       overlap_p=0.5),
    _s("norepeat_6", 2601, "norepeat partial_overlap varied_pauses", "ls1743 ls3879 ls4830 ls2817 ls6078 ls5463",
       overlap_p=0.3),
)  # fmt: skip

SPECS = {"tune": TUNE, "heldout": HELDOUT, "long": LONG, "heldout_norepeat": NOREPEAT}


def people(split: str) -> set[str]:
    """The person ids a split's clips use."""
    return {p for spec in SPECS[split] for p in spec.speakers}


# --- reference records -----------------------------------------------------------------------


@dataclass(frozen=True)
class Speaker:
    label: str  # the RTTM's speaker name: the person id
    sex: str
    origin: str
    minor: bool = False


@dataclass(frozen=True)
class RefTurn:
    """A reference turn and where its audio comes from (``offset``: seconds into ``source``)."""

    start: float
    end: float
    speaker: str
    source: str  # a file under tests/data/real_speech/, or "pyannote:sample.wav"
    offset: float
    backchannel: bool = False


@dataclass(frozen=True)
class Record:
    """Everything ``<name>.json`` holds about one clip."""

    name: str
    split: str
    duration: float
    kinds: tuple[str, ...]
    speakers: tuple[Speaker, ...]
    turns: tuple[RefTurn, ...]

    @property
    def sexes(self) -> str:
        return "".join({"male": "M", "female": "F"}.get(s.sex, "?") for s in self.speakers)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(sorted({t.source for t in self.turns}))

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, object]) -> Record:
        return Record(
            name=str(data["name"]),
            split=str(data["split"]),
            duration=float(data["duration"]),  # type: ignore[arg-type]
            kinds=tuple(data["kinds"]),  # type: ignore[arg-type]
            speakers=tuple(Speaker(**s) for s in data["speakers"]),  # type: ignore[attr-defined]
            turns=tuple(RefTurn(**t) for t in data["turns"]),  # type: ignore[attr-defined]
        )


# --- audio -----------------------------------------------------------------------------------


def read_flac(path: Path) -> np.ndarray:
    """A 16 kHz mono 16-bit FLAC as float32 in [-1, 1], decoded by PyAV (lossless, so exact)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.rate == SAMPLE_RATE and stream.channels == 1, path
        chunks = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
    pcm = np.concatenate(chunks)
    assert pcm.dtype == np.int16, (path, pcm.dtype)
    return pcm.astype(np.float32) / 32768.0


def read_stereo_wav(path: Path) -> np.ndarray:
    """A 16 kHz 16-bit stereo wav as (2, samples) float32."""
    with wave.open(str(path)) as w:
        assert w.getframerate() == SAMPLE_RATE and w.getnchannels() == 2 and w.getsampwidth() == 2, path
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2).T
    return pcm.astype(np.float32) / 32768.0


def _frames_db(audio: np.ndarray) -> np.ndarray:
    n = len(audio) // FRAME
    rms = np.sqrt(np.mean(audio[: n * FRAME].astype(np.float64).reshape(n, FRAME) ** 2, axis=1))
    db: np.ndarray = 20 * np.log10(rms + 1e-10)
    return db


def speech_spans(audio: np.ndarray, min_gap: int) -> list[tuple[int, int]]:
    """Stretches of speech ``[a, b)`` in 30 ms frames, cut where ``min_gap`` or more silent frames come.

    A frame is speech when it is within LOUD_RANGE_DB of the audio's loud (95th percentile) frames
    and FLOOR_MARGIN_DB over its floor (3rd percentile); a stretch whose loudest frame is not
    within PEAK_RANGE_DB of the loud frames is a breath or a click, not speech.
    """
    db = _frames_db(audio)
    loud = float(np.percentile(db, 95))
    threshold = max(loud - LOUD_RANGE_DB, float(np.percentile(db, 3)) + FLOOR_MARGIN_DB)
    return [(a, b) for a, b in spans(db > threshold, min_gap) if float(np.max(db[a:b])) >= loud - PEAK_RANGE_DB]


def spans(mask: np.ndarray, min_gap: int) -> list[tuple[int, int]]:
    """Runs of speech frames ``[a, b)`` split where ``min_gap`` or more silent frames come between."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return []
    cuts = np.flatnonzero(np.diff(idx) > min_gap)
    starts = [int(idx[0]), *(int(idx[c + 1]) for c in cuts)]
    ends = [*(int(idx[c]) + 1 for c in cuts), int(idx[-1]) + 1]
    return list(zip(starts, ends, strict=True))


@dataclass(frozen=True)
class Piece:
    source: str
    start: int  # sample offset in the source
    audio: np.ndarray  # at the utterance's normalised loudness, before the speaker's gain

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


@dataclass(frozen=True)
class Utterance:
    """One source file cut at its pauses: ordinary pieces, and words short enough to back-channel."""

    pieces: tuple[Piece, ...]
    short: tuple[Piece, ...]


def cut(source: str, audio: np.ndarray) -> Utterance:
    audio = (audio - np.mean(audio, dtype=np.float64)).astype(np.float32)
    coarse = speech_spans(audio, PAUSE_FRAMES)
    speech = np.concatenate([audio[a * FRAME : b * FRAME] for a, b in coarse]).astype(np.float64)
    audio = (audio * (LOUDNESS / float(np.sqrt(np.mean(speech**2))))).astype(np.float32)

    def pieces(found: list[tuple[int, int]], low: float, high: float) -> tuple[Piece, ...]:
        return tuple(
            Piece(source, a * FRAME, audio[a * FRAME : b * FRAME])
            for a, b in found
            if low <= (b - a) * FRAME / SAMPLE_RATE <= high
        )

    return Utterance(
        pieces(coarse, MIN_PIECE_S, np.inf), pieces(speech_spans(audio, WORD_PAUSE_FRAMES), *BACKCHANNEL_S)
    )


class _Sources:
    """The vendored files, read and cut once per build."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._cut: dict[str, Utterance] = {}

    def file(self, pid: str) -> str:
        if pid == "trump":
            return TRUMP_FILE
        found = sorted((self.folder / LIBRISPEECH).glob(f"{pid.removeprefix('ls')}-*.flac"))
        if len(found) != 1:
            raise FileNotFoundError(f"{pid}: {len(found)} files in {self.folder / LIBRISPEECH}; run `vendor`")
        return f"{LIBRISPEECH}/{found[0].name}"

    def utterance(self, pid: str) -> Utterance:
        if pid not in self._cut:
            name = self.file(pid)
            self._cut[pid] = cut(name, read_flac(self.folder / name))
        return self._cut[pid]


def vendored_files(split: str, folder: Path = VENDOR) -> list[str]:
    """The files under ``folder`` a split's clips are made from."""
    sources = _Sources(folder)
    names = {"SPEAKERS.TXT"}
    for spec in SPECS[split]:
        if spec.recorded == "fw_stereo":
            names.add(FW_STEREO)
        elif not spec.recorded:
            names.update(sources.file(p) for p in spec.speakers)
    return sorted(names)


# --- building one clip -----------------------------------------------------------------------


class _Cycle:
    """A speaker's pieces: in the utterance's order first, then seeded shuffles, no piece twice running."""

    def __init__(self, items: Sequence[Piece], rng: np.random.Generator) -> None:
        self.items, self.rng = list(items), rng
        self.order: list[int] = list(range(len(self.items)))
        self.last = -1

    def next(self) -> Piece:
        if not self.order:
            order = [int(i) for i in self.rng.permutation(len(self.items))]
            if len(order) > 1 and order[0] == self.last:
                order = order[1:] + order[:1]
            self.order = order
        self.last = self.order.pop(0)
        return self.items[self.last]


@dataclass(frozen=True)
class _Utt:
    speaker: str
    piece: Piece
    gain: float
    backchannel: bool = False
    continued: bool = False  # the same speaker's previous piece, said in a row

    @property
    def seconds(self) -> float:
        return self.piece.seconds


class _Script:
    """Who says what, in order: a seeded walk over the speakers, one to three pieces a turn."""

    def __init__(self, spec: Spec, rng: np.random.Generator, sources: _Sources) -> None:
        self.spec, self.rng = spec, rng
        self.gains = {p: float(10 ** (rng.uniform(-GAIN_DB, GAIN_DB) / 20)) for p in spec.speakers}
        utterances = {p: sources.utterance(p) for p in spec.speakers}
        self.pieces = {p: _Cycle(u.pieces, rng) for p, u in utterances.items()}
        self.short = {p: _Cycle(u.short, rng) for p, u in utterances.items() if u.short}
        self.main = [p for p in spec.speakers if p not in spec.minor]

    def utterances(self) -> list[_Utt]:
        spec, rng = self.spec, self.rng
        if "norepeat" in spec.kinds:
            return self._each_once()
        first = [self.main[int(i)] for i in rng.permutation(len(self.main))]  # everyone talks early
        utts: list[_Utt] = []
        total = 0.0
        if spec.once:
            (who,) = spec.speakers
            pieces = self.pieces[who].items
            while len(utts) < len(pieces):
                run = min(1 + int(rng.integers(3)), len(pieces) - len(utts))
                utts += [
                    _Utt(who, p, self.gains[who], continued=k > 0) for k, p in enumerate(pieces[len(utts) :][:run])
                ]
            return utts
        while total < spec.speech_s or first:
            if utts and rng.random() < spec.backchannel_p:
                utts.append(self._backchannel(utts[-1].speaker))
                total += utts[-1].seconds
                continue
            speaker = first.pop(0) if first else self._next(utts[-1].speaker, utts)
            for k in range(1 + int(rng.integers(3))):
                utts.append(_Utt(speaker, self.pieces[speaker].next(), self.gains[speaker], continued=k > 0))
                total += utts[-1].seconds
                if total >= spec.speech_s and not first:
                    break
        return self._ensure_backchannels(utts)

    def _each_once(self) -> list[_Utt]:
        """Every piece of every speaker exactly once, each speaker's in a seeded order, one or two a turn.

        Everyone talks early; then the next speaker is someone else with pieces left: half the time
        whoever has the most seconds left (so the speakers run out at about the same time), else anyone.
        """
        spec, rng = self.spec, self.rng
        if spec.minor or spec.backchannel_p or spec.once:
            raise ValueError(f"{spec.name}: a norepeat clip has no minor speakers, back-channels or monologue")
        left = {
            p: [self.pieces[p].items[int(i)] for i in rng.permutation(len(self.pieces[p].items))] for p in self.main
        }
        first = [self.main[int(i)] for i in rng.permutation(len(self.main))]
        utts: list[_Utt] = []
        while any(left.values()):
            if first:
                speaker = first.pop(0)
            else:
                previous = utts[-1].speaker
                pool = [p for p in self.main if left[p] and p != previous] or [previous]
                if rng.random() < 0.5:
                    speaker = max(pool, key=lambda p: sum(piece.seconds for piece in left[p]))
                else:
                    speaker = pool[int(rng.integers(len(pool)))]
            for k in range(min(1 + int(rng.integers(2)), len(left[speaker]))):
                utts.append(_Utt(speaker, left[speaker].pop(0), self.gains[speaker], continued=k > 0))
        return utts

    def _next(self, previous: str, utts: list[_Utt]) -> str:
        """Another main speaker: half the time whoever has talked least so far, else anyone."""
        if len(self.main) == 1:
            return self.main[0]
        pool = [p for p in self.main if p != previous]
        if self.rng.random() < 0.5:
            talk = {p: sum(u.seconds for u in utts if u.speaker == p) for p in pool}
            return min(pool, key=lambda p: talk[p])
        return pool[int(self.rng.integers(len(pool)))]

    def _backchannel(self, previous: str, who: str | None = None) -> _Utt:
        if who is None:
            # a minor speaker says every other back-channel at most, so they stay under 10 % of the talk
            minors = [p for p in self.spec.minor if p != previous] if self.rng.random() < 0.5 else []
            pool = minors or [p for p in self.main if p != previous and p in self.short]
            who = pool[int(self.rng.integers(len(pool)))]
        if who not in self.short:
            raise ValueError(f"{self.spec.name}: {who} has no word of {BACKCHANNEL_S} s to back-channel with")
        return _Utt(who, self.short[who].next(), self.gains[who], backchannel=True)

    def _ensure_backchannels(self, utts: list[_Utt]) -> list[_Utt]:
        """A minor speaker has short turns of their own, and a back-channel clip has one, whatever the dice said.

        A minor speaker says at least two of their shortest pieces (0.8 s or more), MINOR_S in all, spread
        over the clip: a participant with under 10 % of the talk, not one who says a single word
        (nobody can count a voice from one 0.6 s "yeah").
        """
        for n, who in enumerate(self.spec.minor):
            short = sorted((p for p in self.pieces[who].items if p.seconds >= 0.8), key=lambda p: p.seconds)
            chosen: list[Piece] = []
            while short and (len(chosen) < 2 or sum(p.seconds for p in chosen) < MINOR_S):
                chosen.append(short.pop(0))
            for k, piece in enumerate(chosen):
                share = (n * len(chosen) + k + 1) / (len(self.spec.minor) * len(chosen) + 1)
                at = _boundary(utts, int(share * len(utts)))
                utts.insert(at, _Utt(who, piece, self.gains[who]))
        if self.spec.backchannel_p > 0 and not any(u.backchannel for u in utts):
            at = _boundary(utts, len(utts) // 2)
            utts.insert(at, self._backchannel(utts[at - 1].speaker))
        return utts


def _boundary(utts: list[_Utt], at: int) -> int:
    """The first index from ``at`` that starts a new turn (not inside one speaker's run)."""
    at = max(at, 1)
    while at < len(utts) and utts[at].continued:
        at += 1
    return at


def _silence_slots(utts: list[_Utt], count: int) -> list[int]:
    """After which utterances the long silences go: spread evenly, between turns."""
    return [_boundary(utts, round((j + 1) * len(utts) / (count + 1))) - 1 for j in range(count)]


def _overlaps(utts: list[_Utt], spec: Spec, rng: np.random.Generator, silences: set[int]) -> dict[int, float]:
    """Which utterances start before the previous one ends, and by how much (0.5-2 s)."""
    if spec.overlap_p <= 0:
        return {}
    eligible = [
        i
        for i in range(1, len(utts))
        if not utts[i].backchannel
        and not utts[i - 1].backchannel
        and utts[i].speaker != utts[i - 1].speaker
        and min(utts[i].seconds, utts[i - 1].seconds) >= 2 * OVERLAP_S[0]
        and i - 1 not in silences
    ]
    chosen: dict[int, float] = {}
    for i in eligible:
        if rng.random() < spec.overlap_p and i - 1 not in chosen:  # never three voices at once
            chosen[i] = _overlap_length(utts, i, rng)
    wanted = HEAVY_OVERLAPS if "overlap" in spec.kinds else 1
    for i in eligible[len(eligible) // 2 :] + eligible[: len(eligible) // 2]:  # top up from the middle
        if len(chosen) >= wanted:
            break
        if i not in chosen and i - 1 not in chosen and i + 1 not in chosen:
            chosen[i] = _overlap_length(utts, i, rng)
    return chosen


def _overlap_length(utts: list[_Utt], i: int, rng: np.random.Generator) -> float:
    # at most half of either turn, so each voice is also heard alone
    top = min(OVERLAP_S[1], utts[i].seconds / 2, utts[i - 1].seconds / 2)
    return float(rng.uniform(OVERLAP_S[0], top))


def _layout(utts: list[_Utt], spec: Spec, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    slots = dict(zip(_silence_slots(utts, len(spec.long_silences)), spec.long_silences, strict=True))
    overlaps = _overlaps(utts, spec, rng, set(slots))
    starts: list[int] = []
    cursor = int(rng.uniform(0.3, 1.0) * SAMPLE_RATE)  # a little lead-in before the first word
    for i, utt in enumerate(utts):
        if i:
            if i in overlaps:
                cursor -= int(overlaps[i] * SAMPLE_RATE)
            elif i - 1 in slots:
                cursor += int(slots[i - 1] * SAMPLE_RATE)
            elif utt.continued:
                cursor += int(rng.uniform(*RUN_PAUSE_S) * SAMPLE_RATE)
            else:
                cursor += int(rng.uniform(*spec.pauses) * SAMPLE_RATE)
        starts.append(cursor)
        cursor += len(utt.piece.audio)
    samples = np.zeros(cursor + int(rng.uniform(0.3, 1.0) * SAMPLE_RATE), np.float32)
    for start, utt in zip(starts, utts, strict=True):
        samples[start : start + len(utt.piece.audio)] += utt.piece.audio * np.float32(utt.gain)  # overlaps add
    if spec.noise:
        samples += np.random.default_rng(spec.seed + 1).normal(0.0, spec.noise, len(samples)).astype(np.float32)
    return samples, starts


def _build_clip(spec: Spec, split: str, folder: Path, sources: _Sources) -> Record:
    if spec.recorded == "pyannote_sample":
        return _copy_sample(spec, split, folder)
    if spec.recorded == "fw_stereo":
        return _fw_stereo(spec, split, folder, sources.folder)
    rng = np.random.default_rng(spec.seed)
    utts = _Script(spec, rng, sources).utterances()
    samples, starts = _layout(utts, spec, rng)
    if float(np.max(np.abs(samples))) >= 1.0:
        raise AssertionError(f"{spec.name} clips: lower LOUDNESS")
    turns = tuple(
        RefTurn(
            s / SAMPLE_RATE,
            (s + len(u.piece.audio)) / SAMPLE_RATE,
            u.speaker,
            u.piece.source,
            u.piece.start / SAMPLE_RATE,
            u.backchannel,
        )
        for s, u in zip(starts, utts, strict=True)
    )
    write_wav(folder / f"{spec.name}.wav", samples)
    return Record(spec.name, split, len(samples) / SAMPLE_RATE, spec.kinds, _speakers(spec, sources.folder), turns)


def _speakers(spec: Spec, folder: Path) -> tuple[Speaker, ...]:
    return tuple(
        Speaker(p.id, p.sex, p.origin, p.id in spec.minor) for p in (person(pid, folder) for pid in spec.speakers)
    )


def pyannote_sample() -> tuple[Path, Path]:
    """pyannote.audio's sample.wav and sample.rttm, found without importing pyannote (and torch)."""
    spec = importlib.util.find_spec("pyannote.audio")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("pyannote.audio (the diarization extra) is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "sample"
    return folder / "sample.wav", folder / "sample.rttm"


def _copy_sample(spec: Spec, split: str, folder: Path) -> Record:
    """pyannote's sample.wav as shipped: a real call with its human reference."""
    wav, rttm = pyannote_sample()
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(wav, folder / f"{spec.name}.wav")
    turns = tuple(RefTurn(t.start, t.end, t.speaker, "pyannote:sample.wav", t.start) for t in read_rttm(rttm))
    duration = len(read_wav(wav)) / SAMPLE_RATE
    return Record(spec.name, split, duration, spec.kinds, _speakers(spec, VENDOR), turns)


def _fw_stereo(spec: Spec, split: str, folder: Path, vendor: Path) -> Record:
    """faster-whisper's stereo file mixed to mono; each channel's speech frames are its speaker's turns."""
    channels = read_stereo_wav(vendor / FW_STEREO)
    turns = [
        RefTurn(a * FRAME / SAMPLE_RATE, b * FRAME / SAMPLE_RATE, pid, FW_STEREO, a * FRAME / SAMPLE_RATE)
        for pid, channel in zip(FW_CHANNELS, channels, strict=True)
        for a, b in speech_spans(channel, PAUSE_FRAMES)
        if (b - a) * FRAME / SAMPLE_RATE >= BACKCHANNEL_S[0]
    ]
    write_wav(folder / f"{spec.name}.wav", channels.mean(axis=0))
    duration = channels.shape[1] / SAMPLE_RATE
    return Record(spec.name, split, duration, spec.kinds, _speakers(spec, vendor), tuple(sorted(turns, key=_order)))


def _order(t: RefTurn) -> tuple[float, float, str]:
    return (t.start, t.end, t.speaker)


# --- kinds, checked on the reference ---------------------------------------------------------


def _talk(record: Record) -> dict[str, float]:
    talk: dict[str, float] = {}
    for t in record.turns:
        talk[t.speaker] = talk.get(t.speaker, 0.0) + t.end - t.start
    return talk


def gaps(record: Record) -> list[float]:
    """Silences between consecutive turns (ordered by start); overlapped neighbours have none."""
    turns = sorted(record.turns, key=_order)
    out: list[float] = []
    end = turns[0].end
    for t in turns[1:]:
        if t.start > end:
            out.append(t.start - end)
        end = max(end, t.end)
    return out


def overlap_spans(turns: Iterable[RefTurn | Turn]) -> list[tuple[float, float]]:
    """Where two different speakers talk at once."""
    ts = list(turns)
    return [
        (max(a.start, b.start), min(a.end, b.end))
        for i, a in enumerate(ts)
        for b in ts[i + 1 :]
        if a.speaker != b.speaker and min(a.end, b.end) > max(a.start, b.start)
    ]


def _partial_overlaps(record: Record) -> int:
    return sum(OVERLAP_S[0] - 1e-6 <= e - s <= OVERLAP_S[1] + 1e-6 for s, e in overlap_spans(record.turns))


def repeats(record: Record) -> list[tuple[RefTurn, RefTurn]]:
    """Pairs of turns that say some of the same audio: one speaker's spans of one source that intersect."""
    turns = sorted(record.turns, key=lambda t: (t.speaker, t.source, t.offset))
    return [
        (a, b)
        for a, b in zip(turns, turns[1:], strict=False)
        if (a.speaker, a.source) == (b.speaker, b.source) and b.offset < a.offset + (a.end - a.start) - 1e-6
    ]


def _sexes(record: Record) -> list[str]:
    return sorted(s.sex for s in record.speakers)


def _backchannel(record: Record) -> bool:
    turns = sorted(record.turns, key=_order)
    return any(
        t.backchannel
        and BACKCHANNEL_S[0] - 1e-6 <= t.end - t.start <= BACKCHANNEL_S[1] + 1e-6
        and all(o is t or o.end <= t.start or o.start >= t.end for o in turns)
        for t in turns
    )


def _varied_pauses(record: Record) -> bool:
    short = [g for g in gaps(record) if g < LONG_SILENCE_S[0]]
    return (
        bool(short) and min(short) >= PAUSE_S[0] - 1e-3 and max(short) <= PAUSE_S[1] and max(short) - min(short) >= 0.5
    )


CHECKS: dict[str, Callable[[Record], bool]] = {
    "monologue": lambda r: len(r.speakers) == 1 and r.turns[-1].end - r.turns[0].start >= 60.0,
    "male_male": lambda r: _sexes(r) == ["male", "male"],
    "female_female": lambda r: _sexes(r) == ["female", "female"],
    "mixed_sex": lambda r: _sexes(r) == ["female", "male"],
    "unequal_talk": lambda r: len(_talk(r)) > 1 and min(_talk(r).values()) < 0.1 * sum(_talk(r).values()),
    "backchannel": _backchannel,
    "partial_overlap": lambda r: _partial_overlaps(r) >= 1,
    "overlap": lambda r: _partial_overlaps(r) >= HEAVY_OVERLAPS,
    "varied_pauses": _varied_pauses,
    "long_silence": lambda r: any(LONG_SILENCE_S[0] <= g <= LONG_SILENCE_S[1] for g in gaps(r)),
    "recorded": lambda r: any(not t.source.startswith((LIBRISPEECH, "trump")) for t in r.turns),
    "long_call": lambda r: LONG_CALL_S[0] <= r.duration <= LONG_CALL_S[1],
    "norepeat": lambda r: not repeats(r),
}


def covers(record: Record, kind: str) -> bool:
    """Whether the clip's reference really is of ``kind`` (one of ``KINDS``)."""
    return CHECKS[kind](record)


# --- the split on disk -----------------------------------------------------------------------


def _fingerprint(split: str, vendor: Path) -> str:
    """Changes when this module or a vendored file the split uses does: a stale cache is rebuilt."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for name in vendored_files(split, vendor):
        digest.update(name.encode() + (vendor / name).read_bytes())
    if any(s.recorded == "pyannote_sample" for s in SPECS[split]):
        for path in pyannote_sample():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def split_folder(split: str, folder: Path | None = None) -> Path:
    """Where a split lives: ``<folder or ~/.cache/fwv2/real-speech>/<split>/``."""
    if split not in SPECS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    return (folder if folder is not None else ROOT) / split


def _cached(where: Path, split: str, fingerprint: str) -> bool:
    manifest = where / "manifest.json"
    if not manifest.is_file() or json.loads(manifest.read_text()).get("fingerprint") != fingerprint:
        return False
    return all((where / f"{s.name}{ext}").is_file() for s in SPECS[split] for ext in (".wav", ".rttm", ".json"))


def _write_split(split: str, where: Path, fingerprint: str, vendor: Path) -> None:
    where.mkdir(parents=True, exist_ok=True)
    (where / "manifest.json").unlink(missing_ok=True)
    sources = _Sources(vendor)
    records = [_build_clip(spec, split, where, sources) for spec in SPECS[split]]
    for r in records:
        missing = [k for k in r.kinds if not covers(r, k)]
        if missing:
            raise AssertionError(f"{r.name} is not {missing}: change its spec")
        write_rttm(where / f"{r.name}.rttm", r.name, tuple(Turn(t.start, t.end, t.speaker) for t in r.turns))
        (where / f"{r.name}.json").write_text(json.dumps(r.to_json(), indent=1) + "\n")
    entries = [
        {"name": r.name, "speakers": len(r.speakers), "sexes": r.sexes, "duration": round(r.duration, 3),
         "kinds": list(r.kinds), "sources": list(r.sources)}
        for r in records
    ]  # fmt: skip
    # written last: its presence with the right fingerprint means the split is complete
    manifest = {"split": split, "fingerprint": fingerprint, "clips": entries}
    (where / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def records(split: str, folder: Path | None = None, vendor: Path = VENDOR) -> list[Record]:
    """The split's reference records (building the split first if it is not cached)."""
    where = split_folder(split, folder)
    fingerprint = _fingerprint(split, vendor)
    if not _cached(where, split, fingerprint):
        _write_split(split, where, fingerprint, vendor)
    return [Record.from_json(json.loads((where / f"{s.name}.json").read_text())) for s in SPECS[split]]


def build(split: str, folder: Path | None = None, vendor: Path = VENDOR) -> list[Clip]:
    """The split's clips, built on first use and loaded from the cache afterwards."""
    where = split_folder(split, folder)
    return [
        Clip(r.name, read_wav(where / f"{r.name}.wav"), tuple(Turn(t.start, t.end, t.speaker) for t in r.turns))
        for r in records(split, folder, vendor)
    ]


# --- scoring ---------------------------------------------------------------------------------


def overlap_regions(clip: Clip) -> list[tuple[float, float]]:
    """Where the reference has two speakers at once: the UEM of an overlapped-speech DER."""
    return sorted(overlap_spans(clip.turns))


# --- vendoring -------------------------------------------------------------------------------


class _Repo:
    """A source repository: a work tree, or a bare git directory read with ``git show``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tree = (path / ".git").exists() or not (path / "HEAD").is_file()

    def read(self, name: str) -> bytes:
        if RESERVED in name:
            raise PermissionError(f"{name} is reserved for a hidden evaluation")
        if self.tree:
            return (self.path / name).read_bytes()
        return subprocess.run(
            ["git", "-C", str(self.path), "show", f"HEAD:{name}"], check=True, capture_output=True
        ).stdout

    def listing(self, folder: str) -> list[str]:
        if RESERVED in folder:
            raise PermissionError(f"{folder} is reserved for a hidden evaluation")
        if self.tree:
            return sorted(p.name for p in (self.path / folder).iterdir())
        out = subprocess.run(
            ["git", "-C", str(self.path), "ls-tree", "--name-only", "HEAD", f"{folder}/"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return sorted(Path(line).name for line in out.splitlines())

    def commit(self) -> str:
        got = subprocess.run(["git", "-C", str(self.path), "rev-parse", "HEAD"], capture_output=True, text=True)
        return got.stdout.strip() if got.returncode == 0 else "unknown"


def _readers() -> list[str]:
    """Every LibriSpeech reader any spec uses (faster-whisper's two included: their SPEAKERS.TXT lines)."""
    ids = {
        p.removeprefix("ls") for specs in SPECS.values() for spec in specs for p in spec.speakers if p.startswith("ls")
    }
    return sorted(ids, key=int)


SOURCES_HEAD = """\
# Real speech for the diarization test set

Written by `.venv/bin/python -m bench.diarization.real vendor`; `bench/diarization/real.py` builds
the `tune`, `heldout` and `long` clips from these files only (and pyannote.audio's installed
`sample.wav`). Nothing here is synthetic speech.

## Origins and licences

- `librispeech/*.flac`: one utterance each of LibriSpeech readers (Panayotov et al., "LibriSpeech:
  an ASR corpus based on public domain audio books", ICASSP 2015, <https://www.openslr.org/12>),
  subset train-clean-100, licence CC BY 4.0. Copied byte for byte (16 kHz mono 16-bit FLAC) from
  Resemblyzer's `audio_data/librispeech_train-clean-100/` (<https://github.com/resemble-ai/Resemblyzer>,
  commit {resemblyzer}, Apache-2.0: `LICENSE.resemblyzer.txt`). Resemblyzer's
  `audio_data/librispeech_test-other/` is reserved for a hidden evaluation and was not read.
- `SPEAKERS.TXT`: LibriSpeech's reader list (CC BY 4.0), its header and the lines of the readers used
  (reader | sex | subset | minutes | name), taken from the same Resemblyzer folder.
- `{trump}`: seconds {trump_start:g}-{trump_end:g} of Resemblyzer's `{trump_mp3}` (a public speech by
  Donald Trump that Resemblyzer collected from YouTube for its fake-speech demo; the repository is
  Apache-2.0, the recording's own terms are not stated there), decoded by ffmpeg to 16 kHz mono
  16-bit FLAC (no lossy re-encoding).
- `{fw_stereo}`: faster-whisper's `tests/data/stereo_diarization.wav`
  (<https://github.com/SYSTRAN/faster-whisper>, commit {faster_whisper}, MIT: `LICENSE.faster-whisper.txt`),
  copied byte for byte. Left channel: LibriSpeech test-clean reader 61 (61-70968-0000), right
  channel: test-clean reader 260 ("The horizon seems extremely distant."), CC BY 4.0.
- Not vendored: pyannote.audio's `sample.wav`/`sample.rttm` (MIT), read from the installed package.

## Files

| file | bytes | sha256 | from |
| --- | ---: | --- | --- |
"""


def vendor(resemblyzer: Path, faster_whisper: Path, dest: Path = VENDOR) -> None:
    """Copy the files the specs use into ``dest`` and describe them in SOURCES.md."""
    rs, fw = _Repo(resemblyzer), _Repo(faster_whisper)
    if dest.exists():
        shutil.rmtree(dest)
    (dest / LIBRISPEECH).mkdir(parents=True)
    origin: dict[str, str] = {}

    def put(name: str, data: bytes, source: str) -> None:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(data)
        origin[name] = source

    available = {name.split("-")[0]: name for name in rs.listing(RESEMBLYZER_LS) if name.endswith(".flac")}
    lines = rs.read(f"{RESEMBLYZER_LS}/SPEAKERS.TXT").decode().splitlines()
    wanted = set(_readers())
    kept = [line for line in lines if line.startswith(";") or line.split("|")[0].strip() in wanted]
    put("SPEAKERS.TXT", ("\n".join(kept) + "\n").encode(), f"Resemblyzer {RESEMBLYZER_LS}/SPEAKERS.TXT (lines)")
    for reader in _readers():
        if reader in available:
            name = f"{RESEMBLYZER_LS}/{available[reader]}"
            put(f"{LIBRISPEECH}/{available[reader]}", rs.read(name), f"Resemblyzer {name}")
        elif f"ls{reader}" not in FW_CHANNELS:
            raise FileNotFoundError(f"reader {reader} has no utterance in {RESEMBLYZER_LS}")
    start, length = TRUMP_EXCERPT_S
    flac = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", "pipe:0", "-ss", f"{start:g}", "-t", f"{length:g}", "-ac", "1",
         "-ar", str(SAMPLE_RATE), "-sample_fmt", "s16", "-map_metadata", "-1", "-fflags", "+bitexact",
         "-flags:a", "+bitexact", "-c:a", "flac", "-f", "flac", "pipe:1"],
        input=rs.read(TRUMP_MP3), check=True, capture_output=True,
    ).stdout  # fmt: skip
    put(TRUMP_FILE, flac, f"Resemblyzer {TRUMP_MP3}, {start:g}-{start + length:g} s, via ffmpeg")
    put(FW_STEREO, fw.read("tests/data/stereo_diarization.wav"), "faster-whisper tests/data/stereo_diarization.wav")
    put("LICENSE.resemblyzer.txt", rs.read("LICENSE"), "Resemblyzer LICENSE")
    put("LICENSE.faster-whisper.txt", fw.read("LICENSE"), "faster-whisper LICENSE")
    head = SOURCES_HEAD.format(
        resemblyzer=rs.commit(), faster_whisper=fw.commit(), trump=TRUMP_FILE, trump_mp3=TRUMP_MP3,
        trump_start=start, trump_end=start + length, fw_stereo=FW_STEREO,
    )  # fmt: skip
    rows = [
        f"| `{name}` | {(dest / name).stat().st_size} | {hashlib.sha256((dest / name).read_bytes()).hexdigest()} "
        f"| {origin[name]} |"
        for name in sorted(origin)
    ]
    total = sum((dest / name).stat().st_size for name in origin)
    (dest / "SOURCES.md").write_text(head + "\n".join(rows) + f"\n\n{len(rows)} files, {total} bytes.\n")


def manifest_rows(folder: Path = VENDOR) -> dict[str, tuple[int, str]]:
    """SOURCES.md's file table: name -> (bytes, sha256)."""
    out: dict[str, tuple[int, str]] = {}
    for line in (folder / "SOURCES.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            out[cells[0].strip("`")] = (int(cells[1]), cells[2])
    return out


# --- CLI -------------------------------------------------------------------------------------


def table(split: str, folder: Path | None = None) -> str:
    rows = [f"{'name':<20} {'speakers':>8} {'sexes':<6} {'duration':>9}  kinds"]
    total = 0.0
    for r in records(split, folder):
        rows.append(f"{r.name:<20} {len(r.speakers):>8} {r.sexes:<6} {r.duration:>8.1f}s  {', '.join(r.kinds)}")
        total += r.duration
    rows.append(f"{split + ' total':<20} {'':>8} {'':<6} {total:>8.1f}s")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.diarization.real", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    vendor_cmd = commands.add_parser("vendor", help=f"copy the source files the specs use into {VENDOR}")
    vendor_cmd.add_argument("--resemblyzer", type=Path, default=Path("/work/.mirror/resemble-ai+Resemblyzer/repo"))
    vendor_cmd.add_argument("--faster-whisper", type=Path, default=Path("/work/.mirror/SYSTRAN+faster-whisper/repo"))
    build_cmd = commands.add_parser("build", help="build (or load) a split and print its clips")
    build_cmd.add_argument("--split", choices=[*SPLITS, "all"], default="all")
    build_cmd.add_argument("--folder", type=Path, default=None, help=f"instead of {ROOT}; a split goes in DIR/<split>/")
    args = parser.parse_args(argv)
    if args.command == "vendor":
        vendor(args.resemblyzer, args.faster_whisper)
        print((VENDOR / "SOURCES.md").read_text().splitlines()[-1])
        return
    for split in SPLITS if args.split == "all" else (args.split,):
        print(f"{split}: {split_folder(split, args.folder)}")
        print(table(split, args.folder))
        print()


if __name__ == "__main__":
    main()
