"""``fwv2 demo``: the whole path once, on the embedded stack, with the sample clips and a conversation.

The four sample clips come back as plain transcripts; the three-voice conversation is asked for
with speaker granularity and comes back one line per speaker turn.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from consumer.client import ResultReader, new_reference, print_result, publish_references, upload
from consumer.contract.inputs import AudioReference
from consumer.contract.outputs import Segment, Word
from consumer.contract.results import Result
from consumer.plumbing.logs import get_logger
from consumer.worker.runner import build_pipeline, run_worker
from devtools.samples import CONVERSATION, SAMPLES, make_conversation, make_samples
from devtools.settings import DevSettings
from pipeline.diarization import DiarizationModelsMissingError
from pipeline.stage import Pipeline
from pipeline.types import DiarizationMode, DiarizationStatus, Granularity

log = get_logger("fwv2.demo")

SPEAKER_GRANULARITIES = (Granularity.WORD, Granularity.SPEAKER)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SpeakerTurn:
    start: float
    end: float
    speaker: str | None
    text: str

    def line(self) -> str:
        label = f"{self.speaker}: " if self.speaker else ""
        return f"[{self.start:4.1f}-{self.end:4.1f}] {label}{self.text}"


def with_diarization(settings: DevSettings) -> DevSettings:
    """Diarization on for the conversation, unless ENABLE_DIARIZATION was set (to false) explicitly."""
    if "enable_diarization" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"enable_diarization": True})


def load_pipeline(settings: DevSettings) -> tuple[Pipeline, DevSettings]:
    """The model, with diarization where enabled and installed; without it (said why) where not."""
    try:
        return build_pipeline(settings), settings
    except (DiarizationModelsMissingError, ImportError) as exc:
        if not settings.enable_diarization:
            raise
        # The demo still shows the rest of the stage; the conversation then comes back without speakers.
        hint = "" if isinstance(exc, DiarizationModelsMissingError) else " (bash scripts/setup.sh installs it)"
        _say(f"    NO SPEAKERS in this demo: diarization cannot load: {exc}{hint}")
        fallback = settings.model_copy(update={"enable_diarization": False})
        return build_pipeline(fallback), fallback


def conversation_reference(settings: DevSettings, path: Path) -> AudioReference:
    """The conversation's event: speaker granularity, and `auto` diarization (it is over 30 s)."""
    obj = upload(settings, path, key=f"samples/{path.name}")
    return new_reference(
        obj,
        profile="whisper-1",
        timestamp_granularities=SPEAKER_GRANULARITIES,
        diarization=DiarizationMode.AUTO,
        metadata={"said": CONVERSATION.text},
    )


def speaker_turns(segments: Sequence[Segment]) -> list[SpeakerTurn]:
    """Consecutive words of one speaker, joined: one turn per change of speaker (per segment without speakers)."""
    if not any(seg.speaker for seg in segments):
        return [SpeakerTurn(seg.start, seg.end, None, seg.text.strip()) for seg in segments]
    turns: list[SpeakerTurn] = []
    for seg in segments:
        # Words carry the speakers; a segment without words (none asked for) stands for itself.
        whole = Word(start=seg.start, end=seg.end, word=seg.text, probability=1.0, speaker=seg.speaker)
        for w in seg.words or (whole,):
            # A word diarization could not place most likely continues the turn it sits in.
            speaker = w.speaker or (turns[-1].speaker if turns else None)
            if turns and turns[-1].speaker == speaker:
                last = turns[-1]
                turns[-1] = SpeakerTurn(last.start, w.end, speaker, last.text + w.word)
            else:
                turns.append(SpeakerTurn(w.start, w.end, speaker, w.word))
    return [SpeakerTurn(t.start, t.end, t.speaker, t.text.strip()) for t in turns]


def print_conversation(result: Result, fmt: str) -> None:
    voices = ", ".join(v.espeak for v in CONVERSATION.voices.values())
    print(f"conversation ({len(CONVERSATION.voices)} voices: {voices}):", flush=True)
    event = result.transcript
    if event is None or fmt != "text":
        print_result(result, fmt, frozenset(SPEAKER_GRANULARITIES))
        return
    for turn in speaker_turns(event.segments):
        print(turn.line(), flush=True)
    diarization = event.diarization
    if diarization.status is DiarizationStatus.APPLIED:
        print(
            f"  ({len(event.speakers)} speakers found, diarized in {event.timings.diarize_s:.1f} s)\n",
            flush=True,
        )
    else:
        print(f"  (no speakers: diarization {diarization.status}: {diarization.reason})\n", flush=True)


def run_demo(settings: DevSettings, *, keep_stack: bool = False, fmt: str = "text") -> int:
    from devtools.stack import EmbeddedStack

    settings = with_diarization(settings)
    stack = EmbeddedStack(settings, echo=_say)
    # A stack that was already running (another shell, the tests) is left running: stop what we started.
    started_here = not stack.is_running()
    _say("1/4 starting the embedded stack (genuine Kafka and MinIO on 127.0.0.1)...")
    stack.up()
    try:
        _say("2/4 speaking the sample clips and a three-voice conversation with espeak-ng, loading the models...")
        clips = make_samples(settings.stack_dir / "samples")
        conversation = make_conversation(settings.stack_dir / "samples")
        pipeline, settings = load_pipeline(settings)

        async def go() -> int:
            stop = asyncio.Event()
            worker = asyncio.create_task(run_worker(settings, pipeline, stop))
            try:
                async with ResultReader(settings) as reader:
                    refs = []
                    for clip in SAMPLES:
                        obj = upload(settings, clips[clip.name], key=f"samples/{clips[clip.name].name}")
                        refs.append(new_reference(obj, profile="whisper-1", metadata={"said": clip.text}))
                    talk = conversation_reference(settings, conversation)
                    _say(f"3/4 submitting {len(refs) + 1} AudioReference events to {settings.kafka_input_topic}...")
                    await publish_references(settings, [*refs, talk])
                    results = await reader.wait_for([r.event_id for r in [*refs, talk]], timeout_s=300)
                _say(f"4/4 transcripts from {settings.kafka_output_topic}:\n")
                for ref in refs:
                    result = results[ref.event_id]
                    print_result(result, fmt)
                    if result.kind == "transcript":
                        print(f"  (said: {ref.metadata['said']})\n", flush=True)
                print_conversation(results[talk.event_id], fmt)
                return 0 if all(r.kind == "transcript" for r in results.values()) else 1
            finally:
                stop.set()
                await worker

        return asyncio.run(go())
    finally:
        if started_here and not keep_stack:
            _say("stopping the embedded stack...")
            stack.down()
