"""Languages: the stage against bare faster-whisper on one multilingual model, word error rates side by side.

``python -m bench.languages [--model DIR] [--profile P] [--threads N] [--markdown FILE]``

Every clip goes through ``pipeline.Pipeline`` (decode, check, transcribe, as a worker does) and through
bare faster-whisper (``WhisperModel.transcribe`` with the same model folder, compute type, threads,
profile options, language and task), one after the other in this process, so both figures come from
the same machine minutes apart. The clips:

- ``multilingual.mp3``, faster-whisper's own test clip (tests/data/languages, MIT): 30 s of the MIT
  licence read in English, then 30 s of a German translation of it. Whole (language detected once,
  on the first 30 s, for the whole clip, as both faster-whisper and the stage do), and its German
  half alone (from 30.0 s), transcribed and translated to English.
- a Spanish sentence pair spoken by espeak-ng at 120 words a minute (synthetic: a second voice and language,
  not from the same recording; espeak-ng's French came out detected as Thai, so it is not used).

The references are what is said: the English half is the MIT licence without its unread
parenthesis; the German half was written down from the recording with the help of faster-whisper's
own test (which records tiny's output, misspellings included) and corrected to standard spelling,
so a word or two of it may differ from the reader's; the translation's reference is the English
licence, loose by nature (a translation back is not word for word).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
from faster_whisper import WhisperModel, decode_audio

from bench.tools import machine
from pipeline.config import EngineConfig
from pipeline.profiles import get_profile
from pipeline.stage import Pipeline
from pipeline.types import Task, TranscriptionRequest

ROOT = Path(__file__).resolve().parent.parent
MULTILINGUAL_MP3 = ROOT / "tests" / "data" / "languages" / "multilingual.mp3"
SAMPLE_RATE = 16_000
GERMAN_FROM_S = 30.0  # the English reading ends at 29.2 s, the German one starts at 30.8 s

# Written as spoken ("and or", not "and/or"): the normalisation drops punctuation, "/" included.
ENGLISH = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software and "
    "associated documentation files, to deal in the software without restriction, including without "
    "limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and or sell copies "
    "of the software, and to permit persons to whom the software is furnished to do so, subject to the "
    "following conditions: the above copyright notice and this permission notice shall be included in all "
    "copies or substantial portions of the software."
)
GERMAN = (
    "Jedem, der diese Software und die dazugehörigen Dokumentationsdateien erhält, wird hiermit "
    "unentgeltlich die Genehmigung erteilt, mit der Software uneingeschränkt zu verfahren. Dies umfasst "
    "insbesondere das Recht, die Software zu verwenden, zu vervielfältigen, zu modifizieren, "
    "zusammenzufügen, zu veröffentlichen, zu verteilen, unterzulizenzieren und oder Kopien der Software zu "
    "verkaufen, und diese Rechte unter folgenden Bedingungen anderen zu übertragen."
)
SPANISH = (
    "La biblioteca abre temprano por la mañana y cierra tarde por la noche. "
    "Los libros se pueden devolver en la recepción."
)
# Of the English licence, the part the German half translates (up to "following conditions").
ENGLISH_TRANSLATED = ENGLISH.split(": the above")[0] + "."

_NORMALISE = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.RemovePunctuation(),  # type: ignore[no-untyped-call]  # jiwer 4.0 leaves its __init__ untyped
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


def wer(said: str, heard: str) -> float:
    return float(jiwer.wer(said, heard, reference_transform=_NORMALISE, hypothesis_transform=_NORMALISE))


@dataclass(frozen=True)
class LanguageClip:
    name: str
    reference: str
    expected_language: str  # what detection should say (or what was asked)
    language: str | None = None  # the request's; None: detect
    task: Task = Task.TRANSCRIBE


CLIPS: tuple[LanguageClip, ...] = (
    LanguageClip("multilingual.mp3 (en then de)", f"{ENGLISH} {GERMAN}", "en"),
    LanguageClip("multilingual.mp3, German half", GERMAN, "de"),
    LanguageClip("multilingual.mp3, German half, translate", ENGLISH_TRANSLATED, "de", task=Task.TRANSLATE),
    LanguageClip("Spanish, espeak-ng", SPANISH, "es"),
)


def installed_base() -> Path:
    """Where scripts/install-whisper-base.sh puts Whisper base: the worker's WHISPER_MODEL=auto folder."""
    from consumer.plumbing.settings import WorkerSettings

    return WorkerSettings().whisper_models / "base"


def wav_bytes(samples: np.ndarray) -> bytes:
    """16 kHz mono 16-bit WAV: what both sides decode, so neither gets a head start."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm)
    return out.getvalue()


def german_half() -> bytes:
    samples = decode_audio(str(MULTILINGUAL_MP3), sampling_rate=SAMPLE_RATE)
    return wav_bytes(samples[int(GERMAN_FROM_S * SAMPLE_RATE) :])


def spanish_clip() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "es.wav"
        subprocess.run(["espeak-ng", "-v", "es", "-s", "120", "-w", str(out), SPANISH], check=True)
        return wav_bytes(decode_audio(str(out), sampling_rate=SAMPLE_RATE))


def clip_audio(clip: LanguageClip) -> bytes:
    if clip.name.startswith("Spanish"):
        return spanish_clip()
    if "German half" in clip.name:
        return german_half()
    return MULTILINGUAL_MP3.read_bytes()


def run_stage(stage: Pipeline, audio: bytes, clip: LanguageClip, profile: str) -> dict[str, Any]:
    request = TranscriptionRequest(profile=profile, language=clip.language, task=clip.task)
    started = time.perf_counter()
    transcript = stage.process(audio, request)
    return {
        "text": transcript.text,
        "language": transcript.language,
        "probability": transcript.language_probability,
        "seconds": time.perf_counter() - started,
    }


def run_bare(model: WhisperModel, audio: bytes, clip: LanguageClip, profile: str) -> dict[str, Any]:
    started = time.perf_counter()
    segments, info = model.transcribe(
        io.BytesIO(audio), language=clip.language, task=clip.task.value, **get_profile(profile).whisper_options()
    )
    text = " ".join(s.text.strip() for s in segments if s.text.strip())
    return {
        "text": text,
        "language": info.language,
        "probability": float(info.language_probability) if clip.language is None else None,
        "seconds": time.perf_counter() - started,
    }


def run(model_dir: Path, profile: str, threads: int) -> list[dict[str, Any]]:
    stage = Pipeline(EngineConfig(model_path=str(model_dir), cpu_threads=threads))
    bare = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads, local_files_only=True)
    rows = []
    for clip in CLIPS:
        audio = clip_audio(clip)
        for side, result in (
            ("stage", run_stage(stage, audio, clip, profile)),
            ("bare", run_bare(bare, audio, clip, profile)),
        ):
            rows.append(
                {
                    "clip": clip.name,
                    "task": clip.task.value,
                    "side": side,
                    "wer": wer(clip.reference, result["text"]),
                    **result,
                }
            )
    return rows


def markdown(rows: list[dict[str, Any]], command: str, model_dir: Path, profile: str) -> str:
    info = machine()
    lines = [
        f"`{command}`; model `{model_dir}` (int8), profile `{profile}`; {info['cores']} cores, {info['cpu']}.",
        "",
        "| clip | task | side | language (probability) | WER | seconds |",
        "|---|---|---|---|---:|---:|",
    ]
    for r in rows:
        probability = "given" if r["probability"] is None else f"{r['probability']:.3f}"
        lines.append(
            f"| {r['clip']} | {r['task']} | {r['side']} | {r['language']} ({probability}) | "
            f"{r['wer']:.1%} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="a multilingual CTranslate2 model folder")
    parser.add_argument("--profile", default="whisper-1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--texts", action="store_true", help="also print what each side heard")
    args = parser.parse_args()
    model = args.model or installed_base()
    rows = run(model, args.profile, args.threads)
    command = f"python -m bench.languages --profile {args.profile} --threads {args.threads}"
    print(markdown(rows, command, model, args.profile))
    if args.texts:
        for r in rows:
            print(f"{r['clip']} / {r['task']} / {r['side']}: {r['text']}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
