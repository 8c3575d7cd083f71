"""The issue-7 benchmarks run end to end on the embedded stack, tiny, so they do not rot between measurements."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.stack import EmbeddedStack

pytestmark = pytest.mark.integration


def _bench(tmp_path: Path, *argv: str) -> tuple[str, dict[str, object]]:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "consumer.cli", "bench", *argv, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads(out.read_text())


def test_latency_with_three_events(stack: EmbeddedStack, tmp_path: Path) -> None:
    table, figures = _bench(tmp_path, "--latency", "--events", "3", "--profile", "whisper-1-fast")
    assert "| stage | 3 |" in table and "| bare | 3 |" in table
    assert figures["stage"]["n"] == 3 and figures["bare"]["n"] == 3  # type: ignore[index]
    assert figures["audio_s"] == pytest.approx(5.0, abs=0.1)
    assert 0 < figures["ratio_p50"] < 20  # type: ignore[operator]
    assert figures["load_before"]


def test_long_file_keeps_its_partitions(stack: EmbeddedStack, tmp_path: Path) -> None:
    table, figures = _bench(tmp_path, "--long", "--seconds", "40", "--profile", "whisper-1-fast")
    stage, bare = figures["stage"], figures["bare"]
    assert stage["kept_partitions"] is True  # type: ignore[index]
    assert stage["audio_s"] == pytest.approx(40, abs=1)  # type: ignore[index]
    assert stage["peak_rss_bytes"] > 0 and bare["peak_rss_bytes"] > 0  # type: ignore[index]
    assert "Partitions kept throughout: **yes**" in table


def test_soak_and_scale_in_miniature(stack: EmbeddedStack, tmp_path: Path) -> None:
    _, soak = _bench(tmp_path, "--soak", "--events", "4", "--profile", "whisper-1-fast")
    assert [n for n, _ in soak["readings"]] == [0, 4]  # type: ignore[union-attr]
    _, scale = _bench(tmp_path, "--scale", "--events", "4", "--rounds", "1", "--profile", "whisper-1-fast")
    assert [r["workers"] for r in scale["runs"]] == [1, 2]  # type: ignore[index, union-attr]
    two = scale["runs"][1]  # type: ignore[index]
    assert sum(two["transcribed_per_worker"]) == 4 + 4  # the warm-up events (one per partition) and the measured
    assert all(n > 0 for n in two["transcribed_per_worker"])
