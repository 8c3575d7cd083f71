"""The bundled sample clips: spoken by espeak-ng at run time, so the repository ships no audio.

Each clip's text is known, which lets the demo, the tests and the benchmark compare what
the stage heard with what was said. The clips cover the containers producers send most.
"""

from __future__ import annotations

import shutil
import subprocess
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
