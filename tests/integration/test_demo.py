"""The demo's conversation through Kafka and MinIO: three espeak-ng voices come back as labelled turns.

Runs the demo's own path (its settings, pipeline, event and printing), not the shell script: the
sample clips around it are covered by test_end_to_end.
"""

from __future__ import annotations

import re

import pytest

from consumer.client import ResultReader, publish_references
from consumer.contract.outputs import DiarizationOutcome
from devtools.demo import conversation_reference, load_pipeline, print_conversation, speaker_turns, with_diarization
from devtools.samples import CONVERSATION, make_conversation
from devtools.settings import DevSettings
from pipeline.types import DiarizationStatus
from tests.integration.conftest import running_worker
from tests.integration.test_end_to_end import wer

pytestmark = pytest.mark.integration

_LINE = re.compile(r"^\[\s*\d+\.\d-\s*\d+\.\d\] (SPEAKER_\d\d): \S")


async def test_the_conversation_comes_back_with_speakers(
    settings: DevSettings,
    reader: ResultReader,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("pyannote.audio", reason="diarization is an optional extra")
    pipeline, s = load_pipeline(with_diarization(settings))
    assert pipeline.diarizer is not None, "diarization models missing: run scripts/install-diarization-models.sh"
    ref = conversation_reference(s, make_conversation(tmp_path_factory.mktemp("conversation")))
    async with running_worker(s, pipeline):
        await publish_references(s, [ref])
        result = (await reader.wait_for([ref.event_id], timeout_s=300))[ref.event_id]

    assert result.kind == "transcript", result.dead_letter
    record = result.transcript
    assert record.diarization == DiarizationOutcome(status=DiarizationStatus.APPLIED, reason=None)
    assert 45 < record.duration_s < 55
    words = [w for seg in record.segments for w in seg.words]
    labels = {w.speaker for w in words}
    assert None not in labels and len(labels) >= 2, labels
    # Measured: all three voices, each turn with its own speaker. The bound leaves room for one voice
    # folded into another on another CPU.
    turns = speaker_turns(record.segments)
    assert len({t.speaker for t in turns}) >= 2 and len(turns) >= 6, [t.line() for t in turns]
    assert all(a.speaker != b.speaker for a, b in zip(turns, turns[1:], strict=False))
    assert wer(CONVERSATION.text, " ".join(t.text for t in turns)) <= 0.25

    capsys.readouterr()
    print_conversation(result, "text")
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("conversation (3 voices: en-us+Andy, en-gb-x-rp+f5, en+edward)")
    lines = [line for line in printed[1:] if line.startswith("[")]
    assert len(lines) == len(turns) and all(_LINE.match(line) for line in lines), printed
    assert len({_LINE.match(line).group(1) for line in lines}) >= 2  # type: ignore[union-attr]
    assert any("speakers found, diarized in" in line for line in printed), printed
