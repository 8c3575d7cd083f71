"""The pure parts of the issue-7 benchmarks: statistics, log reading, and how `fwv2 bench` hands options on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.cli import script_argv
from bench.latency import summarize as summarize_latency
from bench.scale import current_assignment
from bench.soak import summarize as summarize_soak
from bench.tools import MB, log_events, percentile, rebalances, slope
from consumer.cli import build_parser


@pytest.mark.parametrize("q", [0.0, 0.05, 0.5, 0.9, 0.95, 1.0])
def test_percentile_matches_numpy(q: float) -> None:
    values = [0.91, 0.42, 1.7, 0.38, 0.55, 0.61, 2.2, 0.47, 0.5, 0.66, 0.44]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q * 100)))


def test_percentile_edges() -> None:
    assert percentile([3.0], 0.95) == 3.0
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


def test_slope_is_least_squares() -> None:
    xs = [0, 50, 100, 150, 200]
    assert slope(xs, [300 + 0.02 * x for x in xs]) == pytest.approx(0.02)
    assert slope(xs, [300, 301, 299, 300, 300]) == pytest.approx(float(np.polyfit(xs, [300, 301, 299, 300, 300], 1)[0]))
    assert slope([1], [5]) == 0.0
    assert slope([2, 2], [1, 9]) == 0.0


def test_soak_summary_reports_growth_and_slopes() -> None:
    readings = [(n, int((400 + n * 0.01) * MB)) for n in range(0, 501, 50)]  # +1 MB per 100 events
    s = summarize_soak(readings)
    assert s["first_mb"] == pytest.approx(400, abs=0.01) and s["last_mb"] == pytest.approx(405, abs=0.01)
    assert s["slope_mb_per_100"] == pytest.approx(1.0, abs=0.01)
    assert s["slope_second_half_mb_per_100"] == pytest.approx(1.0, abs=0.01)


def test_latency_summary_ratios() -> None:
    timings = {"fetch_s": 0.01, "decode_s": 0.02, "transcribe_s": 0.5, "total_s": 0.55}
    raw = {
        "stage_s": [0.6, 0.7, 0.65],
        "bare_s": [0.5, 0.5, 0.5],
        "stage_timings": [timings] * 3,
        "texts": {"stage": "Hello  world", "bare": "hello world"},
    }
    s = summarize_latency(raw)
    assert s["ratio_p50"] == pytest.approx(1.3)
    assert s["stage"]["n"] == 3 and s["same_text"] is True
    assert s["stage_worker_p50_ms"]["transcribe"] == pytest.approx(500)


def _log(path: Path, *events: dict[str, object]) -> Path:
    path.write_text("INFO aiokafka: not json\n" + "".join(json.dumps(e) + "\n" for e in events))
    return path


def test_rebalances_and_assignment_from_worker_logs(tmp_path: Path) -> None:
    log = _log(
        tmp_path / "w.log",
        {"event": "worker_started"},
        {"event": "partitions_assigned", "partitions": ["in-0", "in-1", "in-2", "in-3"]},
        {"event": "partitions_revoked", "partitions": ["in-0", "in-1", "in-2", "in-3"]},
        {"event": "partitions_assigned", "partitions": ["in-0", "in-1"]},
    )
    events = log_events(log)
    assert [e["event"] for e in events][0] == "worker_started"
    assert rebalances(events) == {"assigned": 2, "revoked": 1}
    assert current_assignment(log) == {"in-0", "in-1"}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["bench"], []),
        (["bench", "--latency", "--events", "3"], ["latency", "--events", "3"]),
        (["bench", "--soak", "--json", "s.json"], ["soak", "--json", "s.json"]),
        (
            ["bench", "--long", "--profile", "whisper-1", "--seconds", "600"],
            ["long", "--profile", "whisper-1", "--seconds", "600"],
        ),
        (["bench", "--long", "--files", "a.mp3"], ["long", "--file", "a.mp3"]),
        (["bench", "--scale", "--rounds", "3", "--events", "20"], ["scale", "--events", "20", "--rounds", "3"]),
    ],
)
def test_fwv2_bench_hands_its_options_to_the_script(argv: list[str], expected: list[str]) -> None:
    assert script_argv(build_parser().parse_args(argv)) == expected


def test_the_throughput_markdown_replaces_only_its_own_section() -> None:
    from bench.main import replace_section

    doc = "# Benchmarks\n\n## Throughput: the stage against bare faster-whisper\n\nold\n\n## Result cache\n\nkept\n"
    new = replace_section(doc, "## Throughput: the stage against bare faster-whisper\n\nnew\n")
    assert (
        new
        == "# Benchmarks\n\n## Throughput: the stage against bare faster-whisper\n\nnew\n\n## Result cache\n\nkept\n"
    )
    assert replace_section("# Benchmarks\n", "## Other\n\nx\n") == "# Benchmarks\n\n## Other\n\nx\n"
