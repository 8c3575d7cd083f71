"""The bundled sample clips: spoken by espeak-ng at run time, so the repository ships no audio.

Each clip's text is known, which lets the demo, the tests and the benchmark compare what
the stage heard with what was said. The clips cover the containers producers send most.
``CONVERSATION`` is a longer clip of three voices taking turns, for the demo's speakers.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

# en-us at 140 words per minute: measured with tiny.en and the whisper-1 profile, this
# synthetic voice gives 0-14 % word error rate per sentence here, about 5 % over all four
# (the default 175 wpm "en" voice gave up to 17 % on a single sentence). The sentences avoid
# numbers and regional spellings, which Whisper writes its own way ("4", "center").
VOICE = "en-us"
WORDS_PER_MINUTE = 140


@dataclass(frozen=True)
class SampleClip:
    name: str
    text: str
    container: str  # file extension, which picks the ffmpeg encoder


SAMPLES: tuple[SampleClip, ...] = (
    SampleClip(
        "weather",
        "The weather today is sunny with a light breeze from the west. "
        "Please remember to bring your notebook to the meeting on Thursday.",
        "wav",
    ),
    SampleClip(
        "library",
        "The library opens early in the morning and closes late in the evening. "
        "Books can be returned at the front desk.",
        "mp3",
    ),
    SampleClip(
        "train",
        "The next train to the city leaves from the main platform in a few minutes.",
        "ogg",
    ),
    SampleClip(
        "kitchen",
        "Add a cup of flour and a pinch of salt, then stir the mixture slowly until it is smooth.",
        "m4a",
    ),
)

_ENCODERS = {"wav": [], "mp3": ["-c:a", "libmp3lame", "-q:a", "4"], "ogg": ["-c:a", "libopus"], "m4a": ["-c:a", "aac"]}


def require_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "ffmpeg") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: run scripts/setup.sh (installs them from Debian)")


def speak(text: str, out: Path) -> Path:
    """Speak ``text`` into a wav file."""
    require_tools()
    subprocess.run(["espeak-ng", "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "-w", str(out), text], check=True)
    return out


def make_samples(directory: Path, samples: tuple[SampleClip, ...] = SAMPLES) -> dict[str, Path]:
    """Write each sample clip into ``directory`` (skipping ones already there); name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for clip in samples:
        target = directory / f"{clip.name}.{clip.container}"
        if not target.exists():
            wav = speak(clip.text, directory / f"{clip.name}.tmp.wav")
            if clip.container == "wav":
                wav.rename(target)
            else:
                subprocess.run(
                    ["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), *_ENCODERS[clip.container], str(target)],
                    check=True,
                )
                wav.unlink()
        paths[clip.name] = target
    return paths


@dataclass(frozen=True)
class Voice:
    espeak: str  # espeak-ng voice and variant
    pitch: int = 50  # espeak-ng -p, 0-99


@dataclass(frozen=True)
class Turn:
    speaker: str  # a key of Conversation.voices
    text: str


@dataclass(frozen=True)
class Conversation:
    name: str
    voices: dict[str, Voice]
    turns: tuple[Turn, ...]
    # Silence between turns, on top of espeak-ng's own short tail. At 0.4 s a turn's last word was
    # sometimes given to the next speaker; 0.6 s kept every word with its speaker.
    pause_s: float = 0.6

    @property
    def text(self) -> str:
        return " ".join(t.text for t in self.turns)

    def fingerprint(self) -> str:
        """Changes with anything that changes the audio, so an edited script is never read from the cache."""
        spec = repr((self.voices, self.turns, self.pause_s, WORDS_PER_MINUTE))
        return hashlib.sha256(spec.encode()).hexdigest()[:10]


# Three voices that the diarizer (segmentation-3.0 + CAM++) told apart on every turn, with pauses of
# 0.3, 0.4 and 0.6 s; CAM++ cosine similarity 0.24-0.35 between them, 0.8-0.9 within one. The third,
# a male variant pitched low, was picked among en+m1, m3, m8, david and edward: m3 (0.41 to Andy) and
# david each lost a turn to Andy, and tiny.en heard edward best (3 % WER on its turns). About 48 s in
# turns of 3-6 s: past DIARIZATION_MIN_DURATION_S (30 s), so `auto` diarizes it.
CONVERSATION = Conversation(
    name="conversation",
    voices={
        "andy": Voice("en-us+Andy"),
        "claire": Voice("en-gb-x-rp+f5"),
        "edward": Voice("en+edward", pitch=30),
    },
    turns=(
        Turn("andy", "Good morning everyone, thanks for joining the planning meeting."),
        Turn("claire", "Good morning. Did you all get a chance to read the new schedule for the spring launch?"),
        Turn("edward", "I read it last night. The plan looks tight, but possible."),
        Turn("andy", "My main worry is the testing phase, which starts right after the design review."),
        Turn("claire", "We could move some people from support to help with testing for a few weeks."),
        Turn("edward", "That works for me, as long as the support queue stays short."),
        Turn("andy", "Then I will send the plan to the whole team this afternoon."),
        Turn("claire", "Please remember to copy the finance team."),
        Turn("edward", "Then let us finish early and get back to work. Have a good day."),
    ),
)


def make_conversation(directory: Path, conversation: Conversation = CONVERSATION) -> Path:
    """Speak each turn in its voice and join them with pauses into one wav (cached by content)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{conversation.name}-{conversation.fingerprint()}.wav"
    if target.exists():
        return target
    require_tools()
    parts: list[bytes] = []
    channels, width, rate = 1, 2, 22_050  # every espeak-ng voice writes 22,050 Hz 16-bit mono; read below
    for n, turn in enumerate(conversation.turns):
        voice = conversation.voices[turn.speaker]
        piece = directory / f"{conversation.name}.{n}.tmp.wav"
        subprocess.run(
            [
                "espeak-ng",
                "-v",
                voice.espeak,
                "-p",
                str(voice.pitch),
                "-s",
                str(WORDS_PER_MINUTE),
                "-w",
                str(piece),
                turn.text,
            ],
            check=True,
        )
        with wave.open(str(piece), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            parts.append(w.readframes(w.getnframes()))
        piece.unlink()
    silence = bytes(int(conversation.pause_s * rate) * width * channels)
    staged = directory / f"{conversation.name}.tmp.wav"
    with wave.open(str(staged), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(silence.join(parts))
    staged.rename(target)  # whole or absent: an interrupted run leaves no half clip in the cache
    for stale in directory.glob(f"{conversation.name}-*.wav"):
        if stale != target:  # an earlier script's clip: never read again
            stale.unlink()
    return target
