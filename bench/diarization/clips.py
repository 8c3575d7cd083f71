"""Clips with known speakers for the diarization tests and benchmark, built from what is on disk.

- ``sample``: pyannote.audio's own 30 s two-speaker call and its reference (``sample.rttm``).
- ``sample4``: that call four times over, 120 s, two speakers.
- ``mix4``: about 120 s of turns by four speakers: the call's two real speakers (their
  single-speaker stretches, cut out by the reference) and two espeak-ng voices, with short
  pauses between turns. The reference is exact by construction.

Every clip is 16 kHz mono float32 in [-1, 1]; built clips are cached as .wav + .rttm.
"""

from __future__ import annotations

import subprocess
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16_000
CACHE = Path.home() / ".cache" / "fwv2" / "diarization-clips"

# Two espeak-ng voices that CAM++ tells apart from each other and from the call's speakers
# (cosine 0.2-0.5 across voices, about 0.9 within one voice).
ESPEAK_VOICES = {"andy": "en-us+Andy", "rp_f5": "en-gb-x-rp+f5"}
SENTENCES = (
    "Before we start, could everyone confirm that they received the agenda for this afternoon?",
    "The budget for the next quarter is mostly the same as last year, with a small increase for travel.",
    "I spoke with the supplier yesterday and they promised the parts would arrive by the end of the month.",
    "Let's come back to the hiring plan once we have heard from the finance team.",
    "We tested the new release on three machines and found no problems with the installer.",
    "Can you send me the notes after the call, so I can share them with the rest of the group?",
    "The customer asked for a demo next Tuesday, which means we need the slides by Monday evening.",
    "I think the main risk is the schedule, not the cost, so we should plan a little extra time.",
)


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class Clip:
    name: str
    samples: np.ndarray
    turns: tuple[Turn, ...]

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def speakers(self) -> set[str]:
        return {t.speaker for t in self.turns}


class HypTurn(Protocol):
    """What a scored turn needs (read-only, so frozen dataclasses such as Turn and SpeakerTurn fit)."""

    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def speaker(self) -> str: ...


def score(
    clip: Clip, turns: Sequence[HypTurn], collar: float = 0.0, regions: Sequence[tuple[float, float]] | None = None
) -> float:
    """Diarization error rate of ``turns`` against the clip's reference, over the whole clip or ``regions``.

    pyannote.metrics with overlaps scored (``skip_overlap=False``); ``collar`` is the total width,
    half each side of a reference boundary. Every tool and test here scores through this one function.
    """
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference, hypothesis = Annotation(uri=clip.name), Annotation(uri=clip.name)
    for ref in clip.turns:
        reference[Segment(ref.start, ref.end)] = ref.speaker
    for n, hyp in enumerate(turns):
        hypothesis[Segment(hyp.start, hyp.end), n] = hyp.speaker
    spans = [(0.0, clip.duration)] if regions is None else regions
    uem = Timeline([Segment(s, e) for s, e in spans]).support()
    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    return float(metric(reference, hypothesis, uem=uem))


def sample_paths() -> tuple[Path, Path]:
    import pyannote.audio

    folder = Path(pyannote.audio.__file__).parent / "sample"
    return folder / "sample.wav", folder / "sample.rttm"


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == SAMPLE_RATE and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        return np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768.0


def write_wav(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())


def read_rttm(path: Path) -> tuple[Turn, ...]:
    turns = []
    for line in path.read_text().splitlines():
        f = line.split()
        if f and f[0] == "SPEAKER":
            start, dur = float(f[3]), float(f[4])
            turns.append(Turn(start, start + dur, f[7]))
    return tuple(turns)


def write_rttm(path: Path, uri: str, turns: tuple[Turn, ...]) -> None:
    path.write_text(
        "".join(f"SPEAKER {uri} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n" for t in turns)
    )


def sample() -> Clip:
    wav, rttm = sample_paths()
    return Clip("sample", read_wav(wav), read_rttm(rttm))


def sample4() -> Clip:
    base = sample()
    shift = base.duration
    turns = tuple(Turn(t.start + k * shift, t.end + k * shift, t.speaker) for k in range(4) for t in base.turns)
    return Clip("sample4", np.tile(base.samples, 4), turns)


def mix4() -> Clip:
    wav, rttm = CACHE / "mix4.wav", CACHE / "mix4.rttm"
    if not (wav.is_file() and rttm.is_file()):
        samples, turns = _build_mix4()
        write_wav(wav, samples)
        write_rttm(rttm, "mix4", turns)
    return Clip("mix4", read_wav(wav), read_rttm(rttm))


CLIPS = {"sample": sample, "sample4": sample4, "mix4": mix4}


def espeak(voice: str, text: str) -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], check=True, capture_output=True).stdout
    pcm = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", "-", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "-"],
        input=wav,
        check=True,
        capture_output=True,
    ).stdout
    audio = np.frombuffer(pcm, np.float32)
    voiced = np.flatnonzero(np.abs(audio) > 1e-3)  # trim espeak's silences so the reference is tight
    return audio[voiced[0] : voiced[-1] + 1].copy()


def single_speaker_pieces(clip: Clip, min_s: float = 0.4) -> dict[str, list[np.ndarray]]:
    """Stretches of the reference where exactly one speaker talks."""
    pieces: dict[str, list[np.ndarray]] = {}
    for t in clip.turns:
        cuts = [(t.start, t.end)]
        for o in clip.turns:
            if o.speaker == t.speaker:
                continue
            cuts = [
                part for s, e in cuts for part in ((s, min(e, o.start)), (max(s, o.end), e)) if part[1] - part[0] > 0
            ]
        for s, e in cuts:
            if e - s >= min_s:
                pieces.setdefault(t.speaker, []).append(clip.samples[int(s * SAMPLE_RATE) : int(e * SAMPLE_RATE)])
    return pieces


def _build_mix4(target_s: float = 120.0) -> tuple[np.ndarray, tuple[Turn, ...]]:
    rng = np.random.default_rng(4)
    pools = single_speaker_pieces(sample())
    for name, voice in ESPEAK_VOICES.items():
        pools[name] = [espeak(voice, s) for s in SENTENCES]
    order = sorted(pools)  # two real speakers and two voices, taking turns in a fixed rotation
    used = {name: 0 for name in order}
    chunks: list[np.ndarray] = [np.zeros(SAMPLE_RATE // 2, np.float32)]
    turns: list[Turn] = []
    position = len(chunks[0])
    while position < target_s * SAMPLE_RATE:
        for name in order:
            piece = pools[name][used[name] % len(pools[name])]
            used[name] += 1
            piece = piece * (0.05 / max(float(np.sqrt(np.mean(piece**2))), 1e-6))  # same loudness for all
            turns.append(Turn(position / SAMPLE_RATE, (position + len(piece)) / SAMPLE_RATE, name))
            gap = np.zeros(int(rng.uniform(0.2, 0.7) * SAMPLE_RATE), np.float32)
            chunks += [piece.astype(np.float32), gap]
            position += len(piece) + len(gap)
    return np.concatenate(chunks), tuple(turns)
