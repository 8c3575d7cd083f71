"""The benchmarks' figures (bench/plot.py): each is drawn from a small result, headless, and names its CPU and commit."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from bench import plot
from bench.cli import script_argv
from bench.tools import git_commit
from consumer.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
CPU = "Test CPU 9000, AVX-512 no"
COMMIT = "abc1234"
MACHINE = {"cpu": CPU, "cores": 2, "commit": COMMIT}


def _run(profile: str, round_: int, bare: float, stage: float) -> dict[str, Any]:
    return {"profile": profile, "round": round_, "audio_s": 141.4, "bare_wall_s": bare, "stage_wall_s": stage}


THROUGHPUT = {
    "benchmark": "throughput",
    "date": "2026-12-07",
    "machine": MACHINE,
    "runs": [
        _run("whisper-1-fast", 1, 10.1, 10.5),
        _run("whisper-1-fast", 2, 10.8, 10.4),
        _run("whisper-1", 1, 13.8, 14.0),
    ],
}
LONG = {
    "benchmark": "long",
    "machine": MACHINE,
    "stage": {
        "peak_rss_bytes": 1113 * 2**20,
        "rss_series": [[0.0, 270 * 2**20], [1.0, 900 * 2**20], [2.0, 700 * 2**20]],
    },
    "bare": {"peak_rss_bytes": 2978 * 2**20, "rss_series": [[0.0, 200 * 2**20], [1.0, 2900 * 2**20]]},
    "bare_windowed": None,
}
LONG_PEAKS = {
    "benchmark": "long",
    "machine": MACHINE,
    "goal_mb": 2000,
    "sides": [
        {"label": "run 1: bare", "side": "bare", "peak_rss_mb": 2982},
        {"label": "run 1: stage", "side": "stage", "peak_rss_mb": 1113},
    ],
}
BURST = {
    "benchmark": "burst",
    "cache": True,
    "machine": MACHINE,
    "results": [
        {"round": 1, "guarantee": "at_least_once", "events": 100, "events_per_s": 119.0},
        {"round": 1, "guarantee": "exactly_once", "events": 100, "events_per_s": 260.6},
    ],
}
DIARIZATION = {
    "benchmark": "diarization-compare",
    "split": "real-heldout",
    "peer": "senko",
    "machine": MACHINE,
    "clips": [
        {"clip": "a_2", "speakers": 2, "found_ours": 2, "found_peer": 3, "der25_ours": 0.02, "der25_peer": 0.1},
        {"clip": "b_4", "speakers": 4, "found_ours": 4, "found_peer": 4, "der25_ours": 0.05, "der25_peer": 0.04},
    ],
}
DRAWERS = [
    (lambda p: plot.throughput_figure([p]), THROUGHPUT),
    (plot.long_figure, LONG),
    (plot.long_figure, LONG_PEAKS),
    (plot.burst_figure, BURST),
    (plot.diarization_figure, DIARIZATION),
]


def _texts(figure: Figure) -> str:
    return "\n".join(t.get_text() for t in figure.findobj(Text))


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(autouse=True)
def drawing_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plot, "git_commit", lambda: "def5678-dirty")


@pytest.mark.parametrize(("draw", "payload"), DRAWERS, ids=["throughput", "long", "long-peaks", "burst", "diarization"])
def test_each_figure_names_its_cpu_and_commits_and_saves_as_a_png(
    draw: Any, payload: dict[str, Any], tmp_path: Path
) -> None:
    figure = draw(payload)
    texts = _texts(figure)
    assert f"CPU: {CPU}, 2 cores" in texts
    assert f"commit {COMMIT}" in texts  # the commit the numbers were measured at
    assert "drawn by bench.plot at commit def5678-dirty" in texts
    path = plot.save({"figure": figure}, tmp_path)[0]
    width, height = _png_size(path)
    assert 400 <= width <= 4000 and 300 <= height <= 3000


def test_a_long_run_with_samples_is_drawn_against_time_and_one_without_as_peaks() -> None:
    sampled = plot.long_figure(LONG).axes[0]
    assert [line.get_label() for line in sampled.get_lines() if not line.get_label().startswith("_")] == [
        "stage (fwv2 worker)",
        "bare faster-whisper",
    ]
    assert [s.peak_mb for s in plot.long_sides(LONG)] == [1113, 2978]
    peaks = plot.long_figure(LONG_PEAKS).axes[0]
    assert len(peaks.patches) == 2 and "goal 2000 MB" in _texts(plot.long_figure(LONG_PEAKS))


def test_the_command_draws_every_result_of_a_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, payload in {"t1": THROUGHPUT, "t2": THROUGHPUT, "long": LONG, "burst": BURST, "dia": DIARIZATION}.items():
        (data / f"{name}.json").write_text(json.dumps(payload))
    (data / "old.json").write_text(json.dumps(THROUGHPUT["runs"]))  # `fwv2 bench --json` before it named itself
    assert plot.main(["--data", str(data), "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "burst.png",
        "dia.png",
        "long.png",
        "throughput.png",
    ]
    assert len(plot.figures([("a", THROUGHPUT), ("b", THROUGHPUT)])["throughput"].axes) == 2  # a panel each


def test_a_file_that_is_no_result_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="not a benchmark result"):
        plot.load(tmp_path / "x.json")


def test_the_recorded_doc_results_say_where_their_numbers_come_from() -> None:
    data = sorted((ROOT / "docs/figures/data").glob("*.json"))
    assert data
    for path in data:
        payload = plot.load(path)
        source = plot.provenance(payload)
        assert "not recorded" not in (source.date + source.commit), path
        assert source.source.startswith("docs/"), path
        assert payload["machine"]["cpu"], path
    pictures = {p.stem for p in (ROOT / "docs/figures").glob("*.png")}
    throughput = {p.stem for p in data if plot.load(p)["benchmark"] == "throughput"}
    assert pictures == ({p.stem for p in data} - throughput) | {"throughput"}, "redraw: python -m bench.plot ..."


def test_fwv2_bench_takes_plot() -> None:
    args = build_parser().parse_args(["bench", "--repeat", "1", "--rounds", "1", "--plot", "/tmp/plots"])
    assert args.plot == Path("/tmp/plots")
    assert build_parser().parse_args(["bench"]).plot is None
    assert script_argv(build_parser().parse_args(["bench", "--long", "--plot", "p"])) == ["long", "--plot", "p"]
    assert script_argv(build_parser().parse_args(["bench", "--soak", "--plot", "p"])) == ["soak"]  # nothing to draw


def test_the_commit_is_this_checkouts() -> None:
    assert git_commit().split("-")[0].isalnum() and len(git_commit().split("-")[0]) >= 7


def test_a_live_throughput_result_draws_naming_this_machine_and_checkout(tmp_path: Path) -> None:
    from bench.main import Run, results
    from bench.tools import machine

    steps = {"fetch": 0.1, "decode": 0.2, "transcribe": 9.9, "diarize": 0.0, "total": 10.2}
    run = Run("whisper-1-fast", 1, 20, 141.4, 10.0, 290.0, 10.4, 330.0, 0.5, 0.6, 5.4, 9.9, 1.0, steps)
    payload = json.loads(json.dumps(results([run], speakers=False)))  # as --json writes it
    texts = _texts(plot.throughput_figure([payload]))
    assert f"CPU: {machine()['cpu']}" in texts and f"commit {git_commit()}" in texts
    assert _png_size(plot.plot_run(payload, tmp_path, "throughput")[0])[0] > 400
