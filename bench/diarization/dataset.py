"""A reproducible diarization test set in two splits, ``tune`` and ``heldout``.

The set exists to choose and check the diarization defaults (step, clustering threshold, speaker
count handling, ...) on more than one 30 s call: defaults are tuned on ``tune`` and reported on
``heldout``, which covers the same properties with other sentences, seeds, voices and speaker
orders, so a figure on ``heldout`` says how the tuned defaults generalise.

Each split holds clips of 1 to 6 speakers that together cover ``PROPERTIES``: a monologue of a
minute or more, voices that differ only by espeak-ng variant, clearly different voices, a speaker
with under 10 % of the talk, back-channels, overlaps, varied pauses, long silences and real speech
(pyannote.audio's ``sample.wav``). Speech is espeak-ng, trimmed of its own silences so the
reference is exact by construction; nothing is downloaded. Builds are deterministic (fixed seeds,
byte-identical wavs) and cached in ``~/.cache/fwv2/diarization-set/<split>/``: per clip
``<name>.wav`` (16 kHz mono int16), ``<name>.rttm``, ``<name>.json`` (turns with voice and text,
for a "words with the right speaker" metric) and one ``manifest.json`` per split.

    .venv/bin/python -m bench.diarization.dataset build [--split tune|heldout|all] [--folder DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.diarization.clips import (
    SAMPLE_RATE,
    Clip,
    Turn,
    read_rttm,
    read_wav,
    sample_paths,
    single_speaker_pieces,
    write_rttm,
    write_wav,
)
from bench.diarization.clips import score as score  # the one scorer, kept under the name the tests use

ROOT = Path.home() / ".cache" / "fwv2" / "diarization-set"
SPLITS = ("tune", "heldout")

PROPERTIES = {
    "monologue": "one speaker for 60 s or more; must stay one speaker",
    "same_variant": "voices of one language and sex that differ only by espeak-ng variant",
    "distinct_voices": "voices of different accents or sexes",
    "unequal_talk": "one speaker has under 10 % of the speech",
    "backchannel": "short back-channel turns of 0.3-1 s",
    "overlap": "two speakers at once for 0.5-2 s",
    "varied_pauses": "pauses of 0.2-2 s between turns",
    "long_silence": "10-60 s of silence between speech",
    "real_speech": "recorded speech from pyannote.audio's sample.wav",
}

BACKCHANNEL_S = (0.3, 1.0)
OVERLAP_S = (0.5, 2.0)
PAUSE_S = (0.2, 2.0)
LONG_SILENCE_S = (10.0, 60.0)
LOUDNESS = 0.05  # RMS every utterance is scaled to (times a fixed per-speaker gain)
TRIM = 1e-3  # amplitude under which espeak's leading/trailing samples count as silence

# --- text ------------------------------------------------------------------------------------
# Each split has its own sentences and back-channels, so no text is in both.

TUNE_SENTENCES = (
    "Before lunch, let's go over the three open questions from last week.",
    "The warehouse in the north is running out of space faster than we expected.",
    "I would rather wait for the numbers than guess and be wrong.",
    "Our team finished the migration on Friday night, and nothing broke over the weekend.",
    "Could you remind me who is responsible for the training material?",
    "The new printer on the second floor keeps jamming whenever someone prints on both sides.",
    "If the weather stays like this, the outdoor event will have to move inside.",
    "We need a clear owner for every task, otherwise things fall between the cracks.",
    "Sales were a little lower in March, mostly because of the holiday.",
    "I have a question about the contract renewal that came in this morning.",
    "My suggestion is to start small, measure carefully, and grow only when it works.",
    "The designers shared two versions of the logo, and I like the blue one better.",
    "Several customers reported that the mobile app logs them out after a few minutes.",
    "Let me check the calendar and get back to you before the end of the day.",
    "The train was delayed again, so I joined the meeting from the station.",
    "We should thank the support team, they handled a very difficult week.",
    "Nobody has looked at the security report yet, and that worries me a little.",
    "Please keep your answers short, we only have fifteen minutes left.",
    "The library downtown is closing for repairs during the whole of August.",
    "I am not convinced that a second office would save us any money.",
    "The recipe calls for two cups of flour, a pinch of salt, and some warm water.",
    "Our neighbors planted a row of apple trees along the fence last spring.",
    "Once the tests pass on every platform, we can tag the release.",
    "She explained the plan so clearly that nobody had any questions.",
    "The river rose almost two meters after three days of heavy rain.",
    "Let's not forget that the audit starts on the first of next month.",
    "I tried the new coffee machine, and honestly, the old one was better.",
    "We might lose the client if we miss another deadline.",
    "The museum offers free entry on the first Sunday of every month.",
    "Is there anything else we should add to the list before we close?",
    "The engineers want another week to finish the load tests.",
    "Every chair in the conference room has a slightly different height.",
    "I read the proposal twice, and the cost section still confuses me.",
    "The bus company changed its timetable without telling anyone.",
    "We will announce the winners of the competition at the end of the evening.",
    "The battery lasts about six hours when the screen is at full brightness.",
    "According to the forecast, the storm should pass by tomorrow afternoon.",
    "We could split the work into two phases and deliver the first one early.",
    "My brother moved to a small village by the sea, and he loves it there.",
    "The spreadsheet has too many tabs, and half of them are out of date.",
    "Let's ask legal to review the wording before we publish anything.",
    "The garden needs water every evening while the heat lasts.",
    "Three people have already volunteered to organize the summer party.",
    "The old server room will become a quiet space for focused work.",
    "I think we agree on the goal, we only disagree on the timing.",
)

HELDOUT_SENTENCES = (
    "The committee will vote on the new parking rules at the next session.",
    "Honestly, the hardest part of the project was getting everyone in one room.",
    "We ordered new laptops for the interns, but they are stuck at customs.",
    "Can somebody explain why the invoice was sent to the wrong address?",
    "The bakery on the corner sells out of bread before eight in the morning.",
    "I would like to hear from the people who actually use the tool every day.",
    "Our first prototype was heavy, loud, and surprisingly reliable.",
    "The hotel lost our reservation, so we spent the night at a friend's place.",
    "Let's schedule a short review every Thursday until the launch.",
    "The children built a tiny bridge out of sticks and string.",
    "There is a risk that the vendor raises prices again in the autumn.",
    "My grandmother still writes letters by hand and sends them every week.",
    "We should document the setup steps before the person who knows them goes on leave.",
    "The marketing budget was cut in half, so we have to choose carefully.",
    "Traffic on the bridge was stopped for an hour because of an accident.",
    "The survey results show that most people prefer working from home twice a week.",
    "I left my umbrella at the office, and of course it started to pour.",
    "Please send the final draft to the printer no later than Wednesday.",
    "The orchestra rehearses in the old church because the acoustics are wonderful.",
    "We found a bug that only happens when two users save at the same moment.",
    "Nobody expected the small shop to become the most popular place in town.",
    "I suggest we pause the hiring until the reorganization is finished.",
    "The mountain trail is closed after sunset for safety reasons.",
    "Our accountant found an error in the tax return from two years ago.",
    "Could we move this discussion to the end, so we keep to the agenda?",
    "The new bicycle lanes made the morning commute much calmer.",
    "If the data is wrong at the start, every chart after it is wrong too.",
    "The cat sleeps on the warm windowsill for most of the afternoon.",
    "We are still waiting for the landlord to fix the heating.",
    "The pilot announced a short delay because of fog at the airport.",
    "I like the idea, but I am worried about how long it would take to build.",
    "The festival brings thousands of visitors to the island every summer.",
    "Somebody needs to call the client and explain the change in plans.",
    "The lab replaced its old microscopes with digital ones last year.",
    "We spent the whole morning arguing about the color of a button.",
    "The night shift reported a power cut that lasted about ten minutes.",
    "Let's keep the first version simple and add the extras later.",
    "My neighbor repairs old radios in his garage as a hobby.",
    "The quarterly report is due in two weeks, and we have not started.",
    "A good map would have saved us an hour of walking in circles.",
    "The students presented their research with a lot of confidence.",
    "We could rent a bigger van and move everything in one trip.",
    "The price of fresh fruit went up again at the market this week.",
    "I promise the next meeting will be shorter than this one.",
    "The ferry leaves every two hours, and the last one is at ten.",
)

TUNE_BACKCHANNELS = ("yeah", "right", "mm-hmm", "okay", "I see", "sure")
HELDOUT_BACKCHANNELS = ("uh-huh", "exactly", "got it", "oh, really?", "yes", "fair enough", "true")

# --- clip specifications ---------------------------------------------------------------------


@dataclass(frozen=True)
class Voice:
    """One speaker of a clip; its espeak-ng settings stay fixed for the whole clip."""

    label: str
    voice: str  # espeak-ng voice, e.g. "en-us+m3"; "real:<speaker>" for a speaker of sample.wav
    sex: str  # "male", "female" or "unknown": for the same-variant / distinct-voice checks
    pitch: int | None = None  # espeak-ng -p (0-99, default 50)
    speed: int | None = None  # espeak-ng -s (words per minute, default 175)
    minor: bool = False  # speaks back-channels only: well under 10 % of the speech

    @property
    def real(self) -> bool:
        return self.voice.startswith("real:")


@dataclass(frozen=True)
class Spec:
    """How to build one clip. ``tags`` are checked against the built reference (``covers``)."""

    name: str
    seed: int
    property: str  # the property the clip is mainly there to test
    tags: tuple[str, ...]  # every property the clip covers
    speakers: tuple[Voice, ...]
    speech_s: float  # talk plus ordinary pauses; long silences come on top
    pauses: tuple[float, float] = PAUSE_S
    backchannel_p: float = 0.0
    overlap_p: float = 0.0
    long_silences: tuple[float, ...] = ()
    noise: float = 0.0  # std of a noise floor over the whole clip (1e-4 is about 3 int16 steps)
    verbatim_sample: bool = False  # the clip is sample.wav and sample.rttm as shipped


def _v(label: str, voice: str, sex: str, pitch: int | None = None, speed: int | None = None) -> Voice:
    return Voice(label, voice, sex, pitch, speed)


def _minor(label: str, voice: str, sex: str, pitch: int | None = None, speed: int | None = None) -> Voice:
    return Voice(label, voice, sex, pitch, speed, minor=True)


TUNE = (
    Spec(
        "tune_monologue_1", 101, "monologue", ("monologue", "varied_pauses"),
        (_v("s1", "en-gb-x-rp+m3", "male", 45, 165),),
        speech_s=66, pauses=(0.2, 1.2),
    ),
    Spec(
        "tune_sample_2", 0, "real_speech", ("real_speech", "overlap"),
        (_v("speaker90", "real:speaker90", "unknown"), _v("speaker91", "real:speaker91", "unknown")),
        speech_s=30, verbatim_sample=True,
    ),
    Spec(
        "tune_silence_2", 202, "long_silence", ("long_silence", "distinct_voices", "varied_pauses"),
        (_v("s1", "en-us+f2", "female", 60, 170), _v("s2", "en-029+m2", "male", 40, 150)),
        speech_s=38, long_silences=(22.0, 12.0),
    ),
    Spec(
        "tune_variants_3", 303, "same_variant", ("same_variant", "backchannel", "varied_pauses"),
        (_v("s1", "en-us+m1", "male"), _v("s2", "en-us+m3", "male"), _v("s3", "en-us+m7", "male")),
        speech_s=60, backchannel_p=0.15,
    ),
    Spec(
        "tune_minor_4", 404, "unequal_talk", ("unequal_talk", "backchannel", "distinct_voices", "varied_pauses"),
        (
            _v("s1", "en-gb+f3", "female", 65, 175),
            _v("s2", "en-us+Andy", "male", None, 160),
            _v("s3", "en-gb-scotland+m4", "male", 35, 185),
            _minor("s4", "en-029+f1", "female", 55, 170),
        ),
        speech_s=70, backchannel_p=0.2,
    ),
    Spec(
        "tune_overlap_5", 505, "overlap", ("overlap", "distinct_voices", "varied_pauses"),
        (
            _v("s1", "en-us-nyc+m5", "male", None, 190),
            _v("s2", "en-gb-x-rp+f4", "female", 70),
            _v("s3", "en-gb-x-gbclan+m2", "male", 30, 150),
            _v("s4", "en-us+Annie", "female"),
            _v("s5", "en-gb+m6", "male", 55),
        ),
        speech_s=80, overlap_p=0.3,
    ),
    Spec(
        "tune_mixed_6", 606, "mixed",
        ("same_variant", "distinct_voices", "unequal_talk", "backchannel", "overlap", "varied_pauses"),
        (
            _v("s1", "en-gb+m2", "male"),
            _v("s2", "en-gb+m8", "male"),
            _v("s3", "en-us+f5", "female", 60),
            _v("s4", "en-gb-x-gbcwmd+m5", "male", 45, 165),
            _minor("s5", "en-029+f3", "female"),
            _v("s6", "en-us+m4", "male", 25, 150),
        ),
        speech_s=90, backchannel_p=0.15, overlap_p=0.2,
    ),
    # A second clip of most kinds, added after the first tuning round: a threshold chosen on one
    # clip per kind fitted those clips (same-variant women and long real calls were missing).
    Spec(
        "tune_monologue_1b", 111, "monologue", ("monologue", "varied_pauses"),
        (_v("s1", "en-029+f2", "female", 60, 180),),
        speech_s=62, pauses=(0.2, 1.5),
    ),
    Spec(
        "tune_femvariants_2", 212, "same_variant", ("same_variant", "backchannel", "varied_pauses"),
        (_v("s1", "en-us+f2", "female"), _v("s2", "en-us+f5", "female")),
        speech_s=55, backchannel_p=0.15,
    ),
    Spec(
        "tune_femvariants_3", 313, "same_variant", ("same_variant", "backchannel", "varied_pauses"),
        (_v("s1", "en-us+f1", "female"), _v("s2", "en-us+f3", "female"), _v("s3", "en-us+f4", "female")),
        speech_s=65, backchannel_p=0.15,
    ),
    Spec(
        "tune_real_3", 323, "real_speech", ("real_speech", "varied_pauses"),
        (
            _v("real90", "real:speaker90", "unknown"),
            _v("s1", "en-gb+m3", "male", 40, 160),
            _v("real91", "real:speaker91", "unknown"),
        ),
        speech_s=55,
    ),
    Spec(
        "tune_real_4", 424, "real_speech", ("real_speech", "distinct_voices", "backchannel", "varied_pauses"),
        (
            _v("real91", "real:speaker91", "unknown"),
            _v("s1", "en-us+Andy", "male", None, 170),
            _v("real90", "real:speaker90", "unknown"),
            _v("s2", "en-gb-x-rp+f2", "female", 65),
        ),
        speech_s=70, backchannel_p=0.1,
    ),
    Spec(
        "tune_minor_3", 434, "unequal_talk", ("unequal_talk", "backchannel", "same_variant", "varied_pauses"),
        (
            _v("s1", "en-gb-scotland+m1", "male"),
            _v("s2", "en-gb-scotland+m5", "male"),
            _minor("s3", "en-us+f3", "female", 60, 170),
        ),
        speech_s=60, backchannel_p=0.2,
    ),
    Spec(
        "tune_overlap_4", 545, "overlap", ("overlap", "distinct_voices", "varied_pauses"),
        (
            _v("s1", "en-us+m6", "male", 40),
            _v("s2", "en-gb+f5", "female", 65, 180),
            _v("s3", "en-029+m4", "male", None, 160),
            _v("s4", "en-us-nyc+f1", "female"),
        ),
        speech_s=75, overlap_p=0.3,
    ),
)  # fmt: skip

HELDOUT = (
    Spec(
        "heldout_monologue_1", 1101, "monologue", ("monologue", "varied_pauses"),
        (_v("a", "en-us+f3", "female", 55, 150),),
        speech_s=70, pauses=(0.3, 1.8),
    ),
    Spec(
        "heldout_variants_2", 1202, "same_variant", ("same_variant", "backchannel", "varied_pauses"),
        (_v("a", "en-gb-x-rp+m2", "male"), _v("b", "en-gb-x-rp+m6", "male")),
        speech_s=50, backchannel_p=0.2,
    ),
    Spec(
        "heldout_silence_3", 1303, "long_silence", ("long_silence", "distinct_voices", "varied_pauses"),
        (
            _v("a", "en-gb-scotland+f2", "female", 60),
            _v("b", "en-us+m8", "male", 35, 160),
            _v("c", "en-029+Annie", "female", None, 185),
        ),
        speech_s=40, long_silences=(40.0, 10.5), noise=1e-4,
    ),
    Spec(
        "heldout_real_4", 1404, "real_speech", ("real_speech", "distinct_voices", "varied_pauses"),
        (
            _v("a", "en-029+m3", "male", 45, 165),
            _v("real90", "real:speaker90", "unknown"),
            _v("b", "en-us+f4", "female", 65, 175),
            _v("real91", "real:speaker91", "unknown"),
        ),
        speech_s=55,
    ),
    Spec(
        "heldout_minor_5", 1505, "unequal_talk",
        ("unequal_talk", "same_variant", "distinct_voices", "backchannel", "overlap", "varied_pauses"),
        (
            _v("a", "en-gb+f1", "female"),
            _v("b", "en-gb+f2", "female"),
            _v("c", "en-gb+f4", "female"),
            _minor("d", "en-us-nyc+m6", "male", 40, 170),
            _v("e", "en-gb-x-gbcwmd+m1", "male", None, 155),
        ),
        speech_s=80, backchannel_p=0.15, overlap_p=0.25,
    ),
    Spec(
        "heldout_mixed_6", 1606, "overlap",
        ("overlap", "backchannel", "unequal_talk", "distinct_voices", "varied_pauses"),
        (
            _v("a", "en-gb-x-gbclan+f5", "female", 70),
            _v("b", "en-us+m2", "male", 50, 190),
            _v("c", "en-gb+Alicia", "female"),
            _v("d", "en-029+m7", "male", 30),
            _minor("e", "en-gb-x-rp+f1", "female", None, 160),
            _v("f", "en-us-nyc+m3", "male"),
        ),
        speech_s=95, backchannel_p=0.2, overlap_p=0.3,
    ),
)  # fmt: skip

SPECS = {"tune": TUNE, "heldout": HELDOUT}
TEXTS = {"tune": (TUNE_SENTENCES, TUNE_BACKCHANNELS), "heldout": (HELDOUT_SENTENCES, HELDOUT_BACKCHANNELS)}

# --- reference records -----------------------------------------------------------------------


@dataclass(frozen=True)
class RefTurn:
    """A reference turn with what was said (``text`` is None for real speech: no transcript)."""

    start: float
    end: float
    speaker: str
    voice: str
    text: str | None
    backchannel: bool = False


@dataclass(frozen=True)
class Record:
    """Everything ``<name>.json`` holds about one clip."""

    name: str
    duration: float
    property: str
    tags: tuple[str, ...]
    speakers: tuple[Voice, ...]
    turns: tuple[RefTurn, ...]

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, object]) -> Record:
        return Record(
            name=str(data["name"]),
            duration=float(data["duration"]),  # type: ignore[arg-type]
            property=str(data["property"]),
            tags=tuple(data["tags"]),  # type: ignore[arg-type]
            speakers=tuple(Voice(**v) for v in data["speakers"]),  # type: ignore[attr-defined]
            turns=tuple(RefTurn(**t) for t in data["turns"]),  # type: ignore[attr-defined]
        )


# --- speech ----------------------------------------------------------------------------------


class Synth:
    """espeak-ng at 16 kHz, trimmed to the voice's first and last audible sample, memoised."""

    def __init__(self) -> None:
        self._memo: dict[tuple[str, int | None, int | None, str], np.ndarray] = {}
        self._tmp = Path(tempfile.mkdtemp(prefix="fwv2-dataset-"))

    def __call__(self, voice: Voice, text: str) -> np.ndarray:
        key = (voice.voice, voice.pitch, voice.speed, text)
        if key not in self._memo:
            self._memo[key] = _trim(self._render(voice, text))
        return self._memo[key]

    def _render(self, voice: Voice, text: str) -> np.ndarray:
        wav = self._tmp / "u.wav"
        args = ["espeak-ng", "-v", voice.voice, "-w", str(wav)]
        args += ["-p", str(voice.pitch)] if voice.pitch is not None else []
        args += ["-s", str(voice.speed)] if voice.speed is not None else []
        subprocess.run([*args, text], check=True, capture_output=True)
        # float32 output: no dither, so the resampling is deterministic
        raw = subprocess.run(
            ["sox", str(wav), "-t", "raw", "-r", str(SAMPLE_RATE), "-c", "1", "-e", "floating-point", "-b", "32", "-"],
            check=True,
            capture_output=True,
        ).stdout
        return np.frombuffer(raw, np.float32)

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


def _trim(audio: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > TRIM)
    if len(loud) == 0:
        raise ValueError("espeak-ng produced silence")
    return audio[loud[0] : loud[-1] + 1].copy()


def _scaled(audio: np.ndarray, gain: float) -> np.ndarray:
    rms = max(float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))), 1e-6)
    return (audio * (LOUDNESS * gain / rms)).astype(np.float32)


# --- building one clip -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Utt:
    speaker: Voice
    audio: np.ndarray
    text: str | None
    backchannel: bool

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


class _Script:
    """Who says what, in order: a seeded walk over the speakers."""

    def __init__(self, spec: Spec, split: str, rng: np.random.Generator, synth: Synth) -> None:
        self.spec, self.rng, self.synth = spec, rng, synth
        sentences, self.backchannels = TEXTS[split]
        self.sentences = [sentences[i] for i in rng.permutation(len(sentences))]  # own order per clip
        self.used = 0
        self.gains = {v.label: float(rng.uniform(0.7, 1.3)) for v in spec.speakers}  # fixed loudness per speaker
        self.real = _real_pools(spec, rng)

    def utterances(self) -> list[_Utt]:
        main = [v for v in self.spec.speakers if not v.minor]
        first = [main[i] for i in self.rng.permutation(len(main))]  # everyone talks early, in a seeded order
        utts: list[_Utt] = []
        total = 0.0
        while total < self.spec.speech_s or first or any(self.real.values()):
            if utts and self.rng.random() < self.spec.backchannel_p:
                utt = self._backchannel(utts[-1].speaker)
            else:
                utt = self._sentence(first.pop(0) if first else self._next_main(main, utts[-1].speaker))
            utts.append(utt)
            total += utt.seconds + float(np.mean(self.spec.pauses))
        return self._ensure_backchannels(utts, main)

    def _next_main(self, main: list[Voice], previous: Voice) -> Voice:
        if len(main) == 1:
            return main[0]
        # real speakers drop out once their pieces are used up
        pool = [v for v in main if v != previous and (not v.real or self.real[v.label])]
        return pool[int(self.rng.integers(len(pool)))]

    def _sentence(self, voice: Voice) -> _Utt:
        if voice.real:
            return _Utt(voice, _scaled(self.real[voice.label].pop(0), self.gains[voice.label]), None, False)
        text = self.sentences[self.used % len(self.sentences)]
        self.used += 1
        return _Utt(voice, self._speech(voice, text), text, False)

    def _speech(self, voice: Voice, text: str) -> np.ndarray:
        # trimmed again after scaling, so a turn's first and last samples stay audible at the final level
        return _trim(_scaled(self.synth(voice, text), self.gains[voice.label]))

    def _backchannel(self, previous: Voice, voice: Voice | None = None) -> _Utt:
        if voice is None:
            minors = [v for v in self.spec.speakers if v.minor and v != previous]
            pool = minors or [v for v in self.spec.speakers if v != previous and not v.real and not v.minor]
            voice = pool[int(self.rng.integers(len(pool)))]
        for i in self.rng.permutation(len(self.backchannels)):
            audio = self._speech(voice, self.backchannels[i])
            if BACKCHANNEL_S[0] <= len(audio) / SAMPLE_RATE <= BACKCHANNEL_S[1]:  # keep only true back-channels
                return _Utt(voice, audio, self.backchannels[i], True)
        raise ValueError(f"no back-channel of {voice.voice} lasts {BACKCHANNEL_S} s")

    def _ensure_backchannels(self, utts: list[_Utt], main: list[Voice]) -> list[_Utt]:
        """A minor speaker must speak, and a back-channel clip must have one, whatever the dice said."""
        silent = [v for v in self.spec.speakers if v.minor and all(u.speaker != v for u in utts)]
        for n, voice in enumerate(silent):
            at = (n + 1) * len(utts) // (len(silent) + 1)
            utts.insert(at, self._backchannel(utts[at - 1].speaker, voice))
        if self.spec.backchannel_p > 0 and not any(u.backchannel for u in utts):
            at = len(utts) // 2
            utts.insert(at, self._backchannel(utts[at - 1].speaker))
        return utts


def _real_pools(spec: Spec, rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """Single-speaker stretches of sample.wav for the spec's real speakers, in a seeded order."""
    real = [v for v in spec.speakers if v.real]
    if not real:
        return {}
    wav, rttm = sample_paths()
    pieces = single_speaker_pieces(Clip("sample", read_wav(wav), read_rttm(rttm)))
    pools: dict[str, list[np.ndarray]] = {}
    for v in real:
        own = pieces[v.voice.removeprefix("real:")]
        pools[v.label] = [own[i] for i in rng.permutation(len(own))]
    return pools


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
    if not chosen and eligible:
        middle = eligible[len(eligible) // 2]
        chosen[middle] = _overlap_length(utts, middle, rng)
    return chosen


def _overlap_length(utts: list[_Utt], i: int, rng: np.random.Generator) -> float:
    # at most half of either turn, so each voice is also heard alone
    top = min(OVERLAP_S[1], utts[i].seconds / 2, utts[i - 1].seconds / 2)
    return float(rng.uniform(OVERLAP_S[0], top))


def _silence_slots(n: int, count: int) -> list[int]:
    """After which utterances the long silences go: spread evenly over the clip."""
    return [round((j + 1) * n / (count + 1)) - 1 for j in range(count)]


def _layout(utts: list[_Utt], spec: Spec, rng: np.random.Generator) -> tuple[np.ndarray, tuple[RefTurn, ...]]:
    slots = dict(zip(_silence_slots(len(utts), len(spec.long_silences)), spec.long_silences, strict=True))
    overlaps = _overlaps(utts, spec, rng, set(slots))
    starts: list[int] = []
    cursor = int(rng.uniform(0.3, 1.0) * SAMPLE_RATE)  # a little lead-in before the first word
    for i, utt in enumerate(utts):
        if i:
            if i in overlaps:
                cursor -= int(overlaps[i] * SAMPLE_RATE)
            else:
                cursor += int(slots.get(i - 1, rng.uniform(*spec.pauses)) * SAMPLE_RATE)
        starts.append(cursor)
        cursor += len(utt.audio)
    samples = np.zeros(cursor + int(rng.uniform(0.3, 1.0) * SAMPLE_RATE), np.float32)
    for start, utt in zip(starts, utts, strict=True):
        samples[start : start + len(utt.audio)] += utt.audio  # overlaps mix by addition
    if spec.noise:
        samples += rng.normal(0.0, spec.noise, len(samples)).astype(np.float32)
    turns = tuple(
        RefTurn(
            s / SAMPLE_RATE, (s + len(u.audio)) / SAMPLE_RATE, u.speaker.label, u.speaker.voice, u.text, u.backchannel
        )
        for s, u in zip(starts, utts, strict=True)
    )
    return samples, turns


def _build_clip(spec: Spec, split: str, folder: Path, synth: Synth) -> Record:
    if spec.verbatim_sample:
        return _copy_sample(spec, folder)
    rng = np.random.default_rng(spec.seed)
    utts = _Script(spec, split, rng, synth).utterances()
    samples, turns = _layout(utts, spec, rng)
    record = Record(spec.name, len(samples) / SAMPLE_RATE, spec.property, spec.tags, spec.speakers, turns)
    write_wav(folder / f"{spec.name}.wav", samples)
    return record


def _copy_sample(spec: Spec, folder: Path) -> Record:
    """pyannote's sample.wav as shipped: real speech with its human reference."""
    wav, rttm = sample_paths()
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(wav, folder / f"{spec.name}.wav")
    voices = {v.label: v.voice for v in spec.speakers}
    turns = tuple(RefTurn(t.start, t.end, t.speaker, voices[t.speaker], None) for t in read_rttm(rttm))
    duration = len(read_wav(wav)) / SAMPLE_RATE
    return Record(spec.name, duration, spec.property, spec.tags, spec.speakers, turns)


# --- properties, checked on the reference ----------------------------------------------------


def _language(voice: Voice) -> str:
    return voice.voice.split("+")[0]


def _variant(voice: Voice) -> str:
    return voice.voice.partition("+")[2]


def _speech_by_speaker(record: Record) -> dict[str, float]:
    talk: dict[str, float] = {}
    for t in record.turns:
        talk[t.speaker] = talk.get(t.speaker, 0.0) + t.end - t.start
    return talk


def _gaps(record: Record) -> list[float]:
    """Silences between consecutive turns (ordered by start), overlapped pairs left out."""
    turns = sorted(record.turns, key=lambda t: t.start)
    gaps: list[float] = []
    end = turns[0].end
    for t in turns[1:]:
        if t.start > end:
            gaps.append(t.start - end)
        end = max(end, t.end)
    return gaps


def _overlap_spans(record: Record) -> list[float]:
    turns = record.turns
    return [
        min(a.end, b.end) - max(a.start, b.start)
        for i, a in enumerate(turns)
        for b in turns[i + 1 :]
        if a.speaker != b.speaker and min(a.end, b.end) > max(a.start, b.start)
    ]


def _monologue(record: Record) -> bool:
    return len(record.speakers) == 1 and record.turns[-1].end - record.turns[0].start >= 60.0


def _same_variant(record: Record) -> bool:
    voices = [v for v in record.speakers if not v.real]
    return any(
        _language(a) == _language(b) and a.sex == b.sex and (a.pitch, a.speed) == (b.pitch, b.speed)
        and _variant(a) != _variant(b)
        for i, a in enumerate(voices)
        for b in voices[i + 1 :]
    )  # fmt: skip


def _distinct_voices(record: Record) -> bool:
    voices = [v for v in record.speakers if not v.real]
    return any(_language(a) != _language(b) or a.sex != b.sex for i, a in enumerate(voices) for b in voices[i + 1 :])


def _unequal_talk(record: Record) -> bool:
    talk = _speech_by_speaker(record)
    return len(talk) > 1 and min(talk.values()) < 0.1 * sum(talk.values())


def _backchannel(record: Record) -> bool:
    return any(t.backchannel and BACKCHANNEL_S[0] <= t.end - t.start <= BACKCHANNEL_S[1] for t in record.turns)


def _overlap(record: Record) -> bool:
    return any(OVERLAP_S[0] <= span <= OVERLAP_S[1] for span in _overlap_spans(record))


def _varied_pauses(record: Record) -> bool:
    short = [g for g in _gaps(record) if g < LONG_SILENCE_S[0]]
    return (
        bool(short) and min(short) >= PAUSE_S[0] - 1e-3 and max(short) <= PAUSE_S[1] and max(short) - min(short) >= 0.5
    )


def _long_silence(record: Record) -> bool:
    return any(LONG_SILENCE_S[0] <= g <= LONG_SILENCE_S[1] for g in _gaps(record))


def _real_speech(record: Record) -> bool:
    return any(v.real for v in record.speakers)


CHECKS: dict[str, Callable[[Record], bool]] = {
    "monologue": _monologue,
    "same_variant": _same_variant,
    "distinct_voices": _distinct_voices,
    "unequal_talk": _unequal_talk,
    "backchannel": _backchannel,
    "overlap": _overlap,
    "varied_pauses": _varied_pauses,
    "long_silence": _long_silence,
    "real_speech": _real_speech,
}


def covers(record: Record, prop: str) -> bool:
    """Whether the clip's reference really has ``prop`` (one of ``PROPERTIES``)."""
    return CHECKS[prop](record)


# --- the split on disk -----------------------------------------------------------------------


def _fingerprint() -> str:
    """Changes when this module or espeak-ng does, so a stale cache is rebuilt, not trusted."""
    espeak = subprocess.run(["espeak-ng", "--version"], check=True, capture_output=True).stdout
    return hashlib.sha256(Path(__file__).read_bytes() + espeak).hexdigest()[:16]


def split_folder(split: str, folder: Path | None = None) -> Path:
    """Where a split lives: ``<folder or ~/.cache/fwv2/diarization-set>/<split>/``."""
    if split not in SPECS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    return (folder if folder is not None else ROOT) / split


def _cached(where: Path, split: str, fingerprint: str) -> bool:
    manifest = where / "manifest.json"
    if not manifest.is_file() or json.loads(manifest.read_text()).get("fingerprint") != fingerprint:
        return False
    return all((where / f"{s.name}{ext}").is_file() for s in SPECS[split] for ext in (".wav", ".rttm", ".json"))


def _write_split(split: str, where: Path, fingerprint: str) -> None:
    synth = Synth()
    try:
        records = [_build_clip(spec, split, where, synth) for spec in SPECS[split]]
    finally:
        synth.close()
    for r in records:
        missing = [p for p in r.tags if not covers(r, p)]
        if missing:
            raise AssertionError(f"{r.name} does not cover {missing}: change its spec")
        write_rttm(where / f"{r.name}.rttm", r.name, tuple(Turn(t.start, t.end, t.speaker) for t in r.turns))
        (where / f"{r.name}.json").write_text(json.dumps(r.to_json(), indent=1) + "\n")
    entries = [
        {"name": r.name, "speakers": len(r.speakers), "duration": round(r.duration, 3), "property": r.property,
         "tags": list(r.tags)}
        for r in records
    ]  # fmt: skip
    # written last: its presence with the right fingerprint means the split is complete
    manifest = {"split": split, "fingerprint": fingerprint, "clips": entries}
    (where / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def records(split: str, folder: Path | None = None) -> list[Record]:
    """The split's reference records (building the split first if it is not cached)."""
    where = split_folder(split, folder)
    fingerprint = _fingerprint()
    if not _cached(where, split, fingerprint):
        _write_split(split, where, fingerprint)
    return [Record.from_json(json.loads((where / f"{s.name}.json").read_text())) for s in SPECS[split]]


def build(split: str, folder: Path | None = None) -> list[Clip]:
    """The split's clips, built on first use and loaded from the cache afterwards."""
    where = split_folder(split, folder)
    return [
        Clip(r.name, read_wav(where / f"{r.name}.wav"), tuple(Turn(t.start, t.end, t.speaker) for t in r.turns))
        for r in records(split, folder)
    ]


def references(split: str, folder: Path | None = None) -> dict[str, tuple[RefTurn, ...]]:
    """Per clip, its turns with what was said, for a "words with the right speaker" metric."""
    return {r.name: r.turns for r in records(split, folder)}


# --- scoring ---------------------------------------------------------------------------------


# --- CLI -------------------------------------------------------------------------------------


def table(split: str, folder: Path | None = None) -> str:
    rows = [f"{'name':<22} {'speakers':>8} {'duration':>9}  property"]
    total = 0.0
    for r in records(split, folder):
        rows.append(f"{r.name:<22} {len(r.speakers):>8} {r.duration:>8.1f}s  {r.property} ({', '.join(r.tags)})")
        total += r.duration
    rows.append(f"{split + ' total':<22} {'':>8} {total:>8.1f}s")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.diarization.dataset", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="build (or load) a split and print its clips")
    build_cmd.add_argument("--split", choices=[*SPLITS, "all"], default="all")
    build_cmd.add_argument(
        "--folder", type=Path, default=None, help=f"instead of {ROOT}; the split goes in DIR/<split>/"
    )
    args = parser.parse_args(argv)
    for split in SPLITS if args.split == "all" else (args.split,):
        print(f"{split}: {split_folder(split, args.folder)}")
        print(table(split, args.folder))
        print()


if __name__ == "__main__":
    main()
