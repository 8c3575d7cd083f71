"""Our Confluent-framed records, read by a Java consumer's stock registry-aware deserializer.

With a schema registry configured, our outputs are ``00`` + a 4-byte schema id + the Avro body
(``consumer/contract/wire.py``). The Java side (java/confluent/src/main/java/DecodeConfluent.java) is
what a downstream Java team plugs into its KafkaConsumer as the value deserializer: given only the
registry's URL, it finds each writer schema by the id in the value. Confluent's KafkaAvroDeserializer
is served only from packages.confluent.io, not Maven Central, so this is Apicurio's
AvroKafkaDeserializer (io.apicurio:apicurio-registry-serdes-avro-serde, Central) in its Confluent
mode, with the settings our Kafka Connect converter uses (deploy/connect/transcripts-typed.json).

Needs Java 17+, Maven, and Apicurio Registry 2.4.2, which the embedded stack assembles once into the
cache folder; the test starts only the registry (not Kafka or MinIO: the values are handed over as
files) and stops it afterwards if it started it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from consumer.contract.registry import CONFLUENT_HEADER
from consumer.contract.wire import Wire
from devtools.settings import DevSettings
from devtools.stack import EmbeddedStack
from devtools.stack.process import port_open
from devtools.stack.registry import RegistryNode
from tests.interop.test_java_avro import (
    BUILD_CLASSPATH,
    JAVA_DIR,
    METADATA,
    TEXT,
    _dead_letter_value,
    _json_bytes,
    _ref,
    _run_java,
    _transcript_event,
)

CONFLUENT_DIR = JAVA_DIR / "confluent"
SOURCE = CONFLUENT_DIR / "src" / "main" / "java" / "DecodeConfluent.java"

pytestmark = pytest.mark.tools


class Reader(NamedTuple):
    classpath: str  # the deserializer's, from Maven
    registry: RegistryNode


def _answers(node: RegistryNode) -> bool:
    try:
        with urllib.request.urlopen(f"{node.ccompat_url}/subjects", timeout=2.0) as response:
            return bool(response.status == 200 and isinstance(json.load(response), list))
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _classpath(out: Path) -> str:
    # scripts/setup.sh installs Java and Maven; their absence is a broken set-up, not a reason to skip.
    assert shutil.which("java") and shutil.which("mvn"), "needs Java 17+ and Maven on PATH: run scripts/setup.sh"
    cmd = ["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(CONFLUENT_DIR / "pom.xml"), BUILD_CLASSPATH]
    proc = subprocess.run([*cmd, f"-Dmdep.outputFile={out}"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"maven failed:\n{proc.stdout}\n{proc.stderr}"
    return out.read_text().strip()


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reader]:
    """The deserializer's classpath and the embedded stack's Apicurio Registry, alone (no Kafka, no MinIO).

    The registry is stopped afterwards only if this fixture started it. Its JVM warms up while Maven
    answers the classpath.
    """
    node = EmbeddedStack(DevSettings(), echo=lambda m: print(m, flush=True), extras=["registry"]).registry
    out = tmp_path_factory.mktemp("maven") / "classpath.txt"
    # Ours already running (another test module, `fwv2 stack up --with registry`), or a registry that
    # already serves the port: use it and leave it as found.
    if node.pid() is not None or (port_open(node.port) and _answers(node)):
        yield Reader(_classpath(out), node)
        return
    node.install()
    node.start()
    try:
        classpath = _classpath(out)
        node.wait_ready()
        yield Reader(classpath, node)
    finally:
        node.stop()


def _decode_in_java(classpath: str, url: str, files: dict[str, tuple[str, bytes]], tmp: Path) -> dict[str, str]:
    """Run DecodeConfluent on {label: (topic, bytes)}; answer {"label kind": value}."""
    return {f"{label} {kind}": value for (label, kind), value in _run_java(SOURCE, classpath, url, files, tmp).items()}


def test_a_stock_java_deserializer_reads_the_confluent_framing(reader: Reader, tmp_path: Path) -> None:
    ref = _ref()
    transcript = _transcript_event(ref)
    dead_letter = _dead_letter_value(ref.to_avro())
    out_topic, dlq_topic = (f"interop.{uuid.uuid4().hex[:12]}.{kind}" for kind in ("out", "dlq"))
    wire = Wire.from_url(reader.registry.ccompat_url)
    try:
        ids = wire.register(out_topic, dlq_topic)
        transcript_bytes = wire.encode(transcript)
        dead_letter_bytes = wire.encode(dead_letter)
    finally:
        wire.close()
    assert transcript_bytes[:5] == CONFLUENT_HEADER.pack(0, ids[f"{out_topic}-value"])
    assert dead_letter_bytes[:5] == CONFLUENT_HEADER.pack(0, ids[f"{dlq_topic}-value"])
    unknown_id = CONFLUENT_HEADER.pack(0, 0x7FFF_FFFF) + transcript_bytes[5:]

    out = _decode_in_java(
        reader.classpath,
        reader.registry.native_url,
        {
            "transcript.bin": (out_topic, transcript_bytes),
            "dead_letter.bin": (dlq_topic, dead_letter_bytes),
            "single_object.bin": (out_topic, Wire().encode(transcript)),
            "unknown_id.bin": (out_topic, unknown_id),
        },
        tmp_path,
    )

    # The writer schemas came from the registry, by the ids in the values.
    assert out["transcript.bin schema"] == "io.fwv2.events.TranscriptEvent"
    assert out["dead_letter.bin schema"] == "io.fwv2.events.DeadLetter"

    got = json.loads(out["transcript.bin record"])
    assert got["event_id"] == ref.event_id
    assert got["text"] == TEXT
    assert got["metadata"] == METADATA
    assert got["segments"][1]["words"][0]["speaker"] == "SPEAKER_01"
    assert got == _json_bytes(transcript.to_avro())  # every field, to the last double

    got = json.loads(out["dead_letter.bin record"])
    assert (got["event_id"], got["code"]) == (ref.event_id, "STORAGE_UNAVAILABLE")
    assert got == _json_bytes(dead_letter.to_avro())

    # The negative cases prove the reader could fail: it takes neither the single-object framing
    # (C3 01, no schema id) nor an id the registry never gave out.
    assert out["single_object.bin error"] == "org.apache.kafka.common.errors.SerializationException"
    assert out["unknown_id.bin error"] == "io.apicurio.registry.rest.client.exception.ContentNotFoundException"
