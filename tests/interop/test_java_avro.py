"""Our published records, decoded by Apache Avro's Java reference implementation.

The Java side (java/src/main/java/DecodeEvents.java) knows nothing but the .avsc files in
schemas/: GenericRecord, no generated classes, Avro's own BinaryMessageDecoder for the
single-object framing. It is what a downstream team would write, so agreement here is the
proof that the framing and the fingerprints are right. Needs Java 17+ and Maven; Maven
fetches org.apache.avro:avro once into ~/.m2.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from consumer.contract.avro import SCHEMA_DIR, load_schema
from consumer.contract.dead_letters import DeadLetter
from consumer.contract.errors import StorageUnavailableError
from consumer.contract.inputs import AudioReference, ObjectRef
from consumer.contract.outputs import TranscriptEvent, to_millis
from consumer.contract.wire import Wire
from pipeline.types import Diarization, DiarizationStatus, Granularity, Segment, Speaker, Task, Transcript, Word

JAVA_DIR = Path(__file__).parent / "java"
SOURCE = JAVA_DIR / "src" / "main" / "java" / "DecodeEvents.java"
# Fully qualified, so Maven resolves no plugin prefix and, once cached, asks the network nothing.
BUILD_CLASSPATH = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath"

pytestmark = pytest.mark.tools

TEXT = "Grüße aus Köln, ça va ? 東京で会いましょう 👋"
METADATA = {"tenant": "acme", "call": "Köln→東京 #42", "emoji": "🎧", "empty": ""}


def _ref() -> AudioReference:
    return AudioReference(
        event_id="0b9c1f5e-5a4d-4a55-9a33-6f1e0c2d7e11",
        object=ObjectRef(
            bucket="audio", key="calls/2026/köln.m4a", etag="9b2cf535f27731c974343645a3985328", size_bytes=190_464
        ),
        profile="whisper-1-quality",
        timestamp_granularities=(Granularity.WORD, Granularity.SPEAKER),
        metadata=METADATA,
    )


def _transcript() -> Transcript:
    first = (
        Word(0.0, 0.52, " Grüße", 0.91, "SPEAKER_00"),
        Word(0.52, 0.8, " aus", 0.99, "SPEAKER_00"),
        Word(0.8, 1.3, " Köln,", 0.87, "SPEAKER_00"),
    )
    second = (Word(1.6, 2.1, " 東京で", 0.64, "SPEAKER_01"), Word(2.1, 3.25, "会いましょう", 0.58, "SPEAKER_01"))
    return Transcript(
        model="large-v3",
        profile="whisper-1-quality",
        task=Task.TRANSCRIBE,
        language="de",
        language_probability=0.9731,
        duration_s=3.5,
        text=TEXT,
        segments=(
            Segment(0, 0.0, 1.3, "Grüße aus Köln, ça va ?", -0.21, 0.012, 1.04, words=first, speaker="SPEAKER_00"),
            Segment(1, 1.6, 3.25, "東京で会いましょう 👋", -0.73, 0.1, 0.97, words=second, speaker="SPEAKER_01"),
        ),
        diarization=Diarization(DiarizationStatus.APPLIED),
        speakers=(Speaker("SPEAKER_00", 1.3), Speaker("SPEAKER_01", 1.65)),
        warnings=("TRUNCATED_AUDIO: decoded 3.5 s of the 5.9 s the file declares",),
        decode_s=0.031,
        transcribe_s=0.43,
        diarize_s=0.2,
    )


def _dead_letter_value(original: bytes) -> DeadLetter:
    error = StorageUnavailableError("object store answered 503 for s3://audio/calls/2026/köln.m4a")
    return DeadLetter.of(
        error,
        event_id=_ref().event_id,
        key=b"call-42",
        value=original,
        topic="audio.references",
        partition=5,
        offset=1_234_567_890_123,
        attempts=4,
        group="fwv2-gpu",
        pool="gpu",
        host="worker-7",
    )


@pytest.fixture(scope="module")
def avro_classpath(tmp_path_factory: pytest.TempPathFactory) -> str:
    # scripts/setup.sh installs Java and Maven; their absence is a broken set-up, not a reason to skip.
    assert shutil.which("java") and shutil.which("mvn"), "needs Java 17+ and Maven on PATH: run scripts/setup.sh"
    out = tmp_path_factory.mktemp("maven") / "classpath.txt"
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(JAVA_DIR / "pom.xml"),
        BUILD_CLASSPATH,
        f"-Dmdep.outputFile={out}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"maven failed:\n{proc.stdout}\n{proc.stderr}"
    return out.read_text().strip()


def _decode_in_java(classpath: str, files: dict[str, tuple[str, bytes]], tmp: Path) -> dict[tuple[str, str], str]:
    """Run DecodeEvents on {label: (schema name, bytes)}; answer {(label, kind): value}."""
    return _run_java(SOURCE, classpath, str(SCHEMA_DIR), files, tmp)


def _run_java(
    source: Path, classpath: str, first: str, files: dict[str, tuple[str, bytes]], tmp: Path
) -> dict[tuple[str, str], str]:
    """Run a decoder's source on ``first`` and {label: (name, bytes)} as NAME=FILE; {(label, kind): value}."""
    args = []
    for label, (name, data) in files.items():
        (tmp / label).write_bytes(data)
        args.append(f"{name}={tmp / label}")
    cmd = ["java", "-cp", classpath, str(source), first, *args]
    proc = subprocess.run(cmd, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    lines = [line.split("\t", 2) for line in proc.stdout.decode("utf-8").splitlines()]
    return {(Path(arg.split("=", 1)[1]).name, kind): value for arg, kind, value in lines}


def _json_bytes(record: dict[str, Any]) -> dict[str, Any]:
    """The record as the Java side prints it: bytes as base64, timestamps as Unix milliseconds."""
    return {key: _as_java_prints(value) for key, value in record.items()}


def _as_java_prints(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):  # timestamp-millis: Java's GenericRecord has no conversion, so the long
        return to_millis(value)
    if isinstance(value, dict):
        return _json_bytes(value)
    if isinstance(value, list):
        return [_as_java_prints(v) for v in value]
    return value


def _transcript_event(ref: AudioReference) -> TranscriptEvent:
    """The TranscriptEvent of ``_transcript()`` for ``ref``, as a GPU worker writes it."""
    return TranscriptEvent.of(
        ref,
        _transcript(),
        blob_etag=ref.object.etag,
        blob_size=190_464,
        fetch_s=0.0023,
        total_s=0.71,
        group="fwv2-gpu",
        pool="gpu",
        host="worker-7",
    )


def test_java_reads_what_python_writes(avro_classpath: str, tmp_path: Path) -> None:
    ref = _ref()
    transcript = _transcript_event(ref)
    dead_letter = _dead_letter_value(ref.to_avro())
    transcript_bytes = Wire().encode(transcript)
    tampered = bytearray(transcript_bytes)
    tampered[5] ^= 0x01  # one bit of the fingerprint

    out = _decode_in_java(
        avro_classpath,
        {
            "transcript.bin": ("transcript_event", transcript_bytes),
            "dead_letter.bin": ("dead_letter", Wire().encode(dead_letter)),
            "reference.bin": ("audio_reference", ref.to_avro()),
            "tampered.bin": ("transcript_event", bytes(tampered)),
            "wrong_schema.bin": ("transcript_event", Wire().encode(dead_letter)),
        },
        tmp_path,
    )

    # Java's CRC-64-AVRO of each .avsc, in wire order, is the fingerprint we frame with.
    for label, schema in (
        ("transcript.bin", "transcript_event"),
        ("dead_letter.bin", "dead_letter"),
        ("reference.bin", "audio_reference"),
    ):
        assert out[label, "fingerprint"] == load_schema(schema).fingerprint.hex()

    got = json.loads(out["transcript.bin", "record"])
    assert got["event_id"] == ref.event_id
    assert got["text"] == TEXT
    assert [w["word"] for s in got["segments"] for w in s["words"]] == [
        " Grüße",
        " aus",
        " Köln,",
        " 東京で",
        "会いましょう",
    ]
    assert got["segments"][1]["words"][0]["speaker"] == "SPEAKER_01"
    assert got["metadata"] == METADATA
    assert got["diarization"] == {"status": "applied", "reason": None}
    assert got == _json_bytes(transcript.to_avro())  # every field, to the last double

    got = json.loads(out["dead_letter.bin", "record"])
    assert got["code"] == "STORAGE_UNAVAILABLE"
    assert (got["retriable"], got["attempts"]) == (True, 4)
    assert base64.b64decode(got["original_value"]) == ref.to_avro()
    assert base64.b64decode(got["original_key"]) == b"call-42"
    assert got == _json_bytes(dead_letter.to_avro())

    got = json.loads(out["reference.bin", "record"])
    assert (got["event_id"], got["profile"], got["metadata"]) == (ref.event_id, "whisper-1-quality", METADATA)
    assert got["timestamp_granularities"] == ["word", "speaker"]

    # The negative cases prove the comparison could fail: an unknown fingerprint is refused.
    assert out["tampered.bin", "error"] == "org.apache.avro.message.MissingSchemaException"
    assert out["wrong_schema.bin", "error"] == "org.apache.avro.message.MissingSchemaException"
