"""``fwv2 demo``: the whole path once, on the embedded stack, with the sample clips."""

from __future__ import annotations

import asyncio
import sys

from consumer.client import ResultReader, new_reference, publish_references, upload
from consumer.logs import get_logger
from consumer.runner import build_pipeline, run_worker
from consumer.samples import SAMPLES, make_samples
from consumer.settings import Settings

log = get_logger("fwv2.demo")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_demo(settings: Settings, *, keep_stack: bool = False, fmt: str = "text") -> int:
    from consumer.cli import print_result
    from consumer.stack import EmbeddedStack

    stack = EmbeddedStack(settings, echo=_say)
    # A stack that was already running (another shell, the tests) is left running: stop what we started.
    started_here = not stack.is_running()
    _say("1/4 starting the embedded stack (genuine Kafka and MinIO on 127.0.0.1)...")
    stack.up()
    try:
        _say("2/4 speaking the sample clips with espeak-ng and loading the model...")
        clips = make_samples(settings.stack_dir / "samples")
        pipeline = build_pipeline(settings)

        async def go() -> int:
            stop = asyncio.Event()
            worker = asyncio.create_task(run_worker(settings, pipeline, stop))
            try:
                async with ResultReader(settings) as reader:
                    refs = []
                    for clip in SAMPLES:
                        obj = upload(settings, clips[clip.name], key=f"samples/{clips[clip.name].name}")
                        refs.append(new_reference(obj, profile="whisper-1", metadata={"said": clip.text}))
                    _say(f"3/4 submitting {len(refs)} AudioReference events to {settings.kafka_input_topic}...")
                    await publish_references(settings, refs)
                    results = await reader.wait_for([r.event_id for r in refs], timeout_s=300)
                _say(f"4/4 transcripts from {settings.kafka_output_topic}:\n")
                for ref in refs:
                    result = results[ref.event_id]
                    print_result(result, fmt)
                    if result.kind == "transcript":
                        print(f"  (said: {ref.metadata['said']})\n", flush=True)
                return 0 if all(r.kind == "transcript" for r in results.values()) else 1
            finally:
                stop.set()
                await worker

        return asyncio.run(go())
    finally:
        if started_here and not keep_stack:
            _say("stopping the embedded stack...")
            stack.down()
