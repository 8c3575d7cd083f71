"""The benchmarks' figures: PNGs drawn from their JSON results, headless (matplotlib's Agg, no display).

    .venv/bin/python -m bench.plot --data docs/figures/data --out docs/figures   # every doc figure, redrawn
    .venv/bin/python -m bench.plot --out /tmp/plots long.json burst.json         # figures of given results
    .venv/bin/fwv2 bench ... --plot DIR                                          # a run's figures, after it

A result is the JSON a benchmark writes with ``--json``, marked by its ``benchmark``: ``throughput``
(``fwv2 bench``, stage against bare per profile), ``long`` (``bench.long``, peak RSS and its series),
``burst`` (``bench.burst``, events per second per guarantee) or ``diarization-compare``
(``bench.diarization.tune compare``, speakers and DER per clip beside a peer). The recorded results in
``docs/figures/data/`` are the docs' measured tables in that form, each naming its CPU, date, commit and
section. Every figure names in its footer the CPU and commit each result was measured on, and the commit
that drew it; throughput results, one per CPU or workload, share one figure, a panel each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine

from bench.tools import MB, git_commit, say

# A figure built from matplotlib.figure.Figure, never pyplot, so no backend or display is chosen: savefig to
# a .png renders with Agg.
COLOURS = {"bare": "#7f7f7f", "stage": "#1f77b4", "ours": "#1f77b4", "peer": "#ff7f0e", "reference": "black"}
GUARANTEE_COLOURS = {"at_least_once": "#7f7f7f", "exactly_once": "#2ca02c"}
FOOTER_LINE_IN = 0.16
FOOTER_CHARS_PER_IN = 19  # of DejaVu Sans at 7 pt


@dataclass(frozen=True)
class Provenance:
    """Where a result's numbers come from: the machine, when, at which commit, and from what."""

    cpu: str
    date: str
    commit: str
    source: str

    def line(self) -> str:
        return f"CPU: {self.cpu} | measured {self.date}, commit {self.commit} | {self.source}"


def provenance(payload: dict[str, Any]) -> Provenance:
    machine = payload.get("machine") or {}
    cores = f", {machine['cores']} cores" if machine.get("cores") else ""
    return Provenance(
        cpu=f"{machine.get('cpu', 'not recorded')}{cores}",
        date=str(payload.get("date", "date not recorded")),
        commit=str(payload.get("commit") or machine.get("commit") or "not recorded"),
        source=str(payload.get("source", "a live run")),
    )


def footer_lines(payloads: Sequence[dict[str, Any]]) -> list[str]:
    lines = list(dict.fromkeys(provenance(p).line() for p in payloads))
    return [*lines, f"drawn by bench.plot at commit {git_commit()}"]


def new_figure(width_in: float, height_in: float, footer: Sequence[str]) -> Figure:
    """A figure whose bottom strip holds ``footer``, wrapped to its width: constrained layout keeps the axes above."""
    footer = [part for line in footer for part in textwrap.wrap(line, int(width_in * FOOTER_CHARS_PER_IN))]
    strip = (len(footer) * FOOTER_LINE_IN + 0.1) / height_in
    figure = Figure(figsize=(width_in, height_in), layout=ConstrainedLayoutEngine(rect=(0, strip, 1, 1 - strip)))
    figure.text(0.005, 0.005, "\n".join(footer), fontsize=7, color="0.25", ha="left", va="bottom")
    return figure


def _bar_labels(ax: Axes, xs: Sequence[float], heights: Sequence[float], fmt: str, inside: bool = False) -> None:
    """Each bar's value, above it, or inside at its foot where dots mark its rounds near the top."""
    for x, h in zip(xs, heights, strict=True):
        if inside:
            ax.annotate(
                format(h, fmt),
                (x, 0),
                ha="center",
                va="bottom",
                fontsize=8,
                color="white",
                xytext=(0, 3),
                textcoords="offset points",
            )
        else:
            ax.annotate(
                format(h, fmt), (x, h), ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points"
            )


# --- (a) throughput: x real time per profile, stage against bare, per CPU -----------------------------


def _x_rt(run: dict[str, Any], side: str) -> float:
    return float(run["audio_s"]) / float(run[f"{side}_wall_s"])


def _throughput_panel(ax: Axes, payload: dict[str, Any]) -> None:
    runs = payload["runs"]
    profiles = list(dict.fromkeys(r["profile"] for r in runs))
    width = 0.38
    for offset, side in ((-width / 2, "bare"), (width / 2, "stage")):
        per_profile = [[_x_rt(r, side) for r in runs if r["profile"] == p] for p in profiles]
        medians = [statistics.median(v) for v in per_profile]
        xs = [i + offset for i in range(len(profiles))]
        ax.bar(xs, medians, width, label=f"{side} (median)", color=COLOURS[side])
        _bar_labels(ax, xs, medians, ".1f", inside=True)
        for x, values in zip(xs, per_profile, strict=True):
            ax.scatter([x] * len(values), values, s=10, color="black", zorder=3, label=None)
    ax.set_xticks(range(len(profiles)), profiles, fontsize=8)
    ax.set_ylabel("x real time (audio s / wall s)")
    workload = payload.get("workload", "transcription")
    ax.set_title(f"{workload}\nCPU: {provenance(payload).cpu}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")


def throughput_figure(payloads: Sequence[dict[str, Any]]) -> Figure:
    """Bars: the median x real time per profile, bare faster-whisper and the stage; dots: each round."""
    figure = new_figure(5.2 * len(payloads) + 0.6, 4.8, footer_lines(payloads))
    axes = figure.subplots(1, len(payloads), squeeze=False)[0]
    for ax, payload in zip(axes, payloads, strict=True):
        _throughput_panel(ax, payload)
    figure.suptitle("Throughput: the stage against bare faster-whisper (dots: rounds)", fontsize=11)
    return figure


# --- (b) diarization: speakers and DER per clip beside a peer -----------------------------------------


def diarization_figure(payload: dict[str, Any]) -> Figure:
    """Top: speakers found per clip, ours and the peer's, against the reference; bottom: DER at a 0.25 s collar."""
    clips = payload["clips"]
    names = [c["clip"] for c in clips]
    peer = payload.get("peer", "peer")
    figure = new_figure(max(8.0, 0.62 * len(clips) + 2), 7.0, footer_lines([payload]))
    top, bottom = figure.subplots(2, 1, sharex=True)
    width = 0.38
    xs = list(range(len(clips)))
    for offset, who, label in ((-width / 2, "ours", "ours (fwv2)"), (width / 2, "peer", peer)):
        found = [float(c[f"found_{who}"]) for c in clips]
        top.bar([x + offset for x in xs], found, width, label=label, color=COLOURS[who])
        der = [100 * float(c[f"der25_{who}"]) for c in clips]
        bottom.bar([x + offset for x in xs], der, width, label=label, color=COLOURS[who])
        _bar_labels(bottom, [x + offset for x in xs], der, ".1f")
    top.scatter(xs, [c["speakers"] for c in clips], marker="_", s=400, linewidths=2, color="black", label="reference")
    top.set_ylabel("speakers found")
    top.legend(fontsize=7, ncols=3)
    bottom.set_ylabel("DER, 0.25 s collar (%)")
    bottom.margins(y=0.12)  # room for the tallest bar's label
    bottom.legend(fontsize=7)
    bottom.set_xticks(xs, names, rotation=35, ha="right", fontsize=8)
    split = payload.get("split", "")
    figure.suptitle(f"Diarization per clip ({split}): ours beside {peer}\nCPU: {provenance(payload).cpu}", fontsize=10)
    return figure


# --- (c) memory of one long file ------------------------------------------------------------------------


@dataclass(frozen=True)
class LongSide:
    """One side of a long-file run: its label, its peak RSS, and its RSS over time where it was sampled."""

    label: str
    peak_mb: float
    side: str  # "stage" or "bare": the bar's colour
    series: tuple[tuple[float, float], ...] = ()


def long_sides(payload: dict[str, Any]) -> list[LongSide]:
    """The sides of a ``bench.long`` result, or of a recorded table (``sides``: label and peak only)."""
    if "sides" in payload:
        return [LongSide(s["label"], float(s["peak_rss_mb"]), s["side"]) for s in payload["sides"]]
    labels = {"stage": "stage (fwv2 worker)", "bare": "bare faster-whisper", "bare_windowed": "bare, windowed"}
    sides = []
    for key, label in labels.items():
        if (side := payload.get(key)) is not None:
            series = tuple((float(t), b / MB) for t, b in side.get("rss_series") or ())
            sides.append(LongSide(label, side["peak_rss_bytes"] / MB, key.split("_")[0], series))
    return sides


def long_figure(payload: dict[str, Any]) -> Figure:
    """RSS against time per side where it was sampled (dashed: the kernel's peak); else the peaks as bars."""
    sides = long_sides(payload)
    sampled = [s for s in sides if s.series]
    height = 4.8 if sampled else max(3.5, 0.32 * len(sides) + 1.8)
    figure = new_figure(9.0, height, footer_lines([payload]))
    ax = figure.subplots()
    what = payload.get("title", f"one {payload.get('audio_s', 'long')} s file")
    if sampled:
        for side in sampled:
            (line,) = ax.plot([t for t, _ in side.series], [mb for _, mb in side.series], label=side.label)
            ax.axhline(side.peak_mb, color=line.get_color(), linestyle="--", linewidth=0.8)
            ax.annotate(
                f"peak {side.peak_mb:.0f} MB", (0, side.peak_mb), fontsize=7, xytext=(2, 2), textcoords="offset points"
            )
        ax.set_xlabel("seconds since the process started (the stage: its warm-up event included)")
        ax.set_ylabel("RSS (MB)")
        ax.legend(fontsize=7)
    else:
        ys = list(range(len(sides)))[::-1]
        peaks = [s.peak_mb for s in sides]
        ax.barh(ys, peaks, color=[COLOURS[s.side] for s in sides])
        for y, peak in zip(ys, peaks, strict=True):
            ax.annotate(f"{peak:.0f}", (peak, y), va="center", fontsize=7, xytext=(2, 0), textcoords="offset points")
        ax.set_yticks(ys, [s.label for s in sides], fontsize=7)
        ax.set_xlabel("peak RSS (MB)")
        ax.set_xlim(0, max(peaks) * 1.1)
    if goal := payload.get("goal_mb"):
        (ax.axhline if sampled else ax.axvline)(goal, color="red", linestyle=":", linewidth=1, label=f"goal {goal} MB")
        ax.legend(fontsize=7)
    figure.suptitle(f"Memory: {what}\nCPU: {provenance(payload).cpu}", fontsize=10)
    return figure


# --- (d) burst throughput per guarantee -----------------------------------------------------------------


def _burst_label(result: dict[str, Any], payload: dict[str, Any]) -> str:
    if "label" in result:
        return str(result["label"])
    what = "cache hits" if payload.get("cache", True) else "inference"
    return f"round {result.get('round', 1)}: {result['events']} events, {what}"


def burst_figure(payload: dict[str, Any]) -> Figure:
    """Events per second, at_least_once beside exactly_once, for each burst of the result."""
    results = payload["results"]
    labels = list(dict.fromkeys(_burst_label(r, payload) for r in results))
    guarantees = list(dict.fromkeys(r["guarantee"] for r in results))
    figure = new_figure(max(7.0, 2.4 * len(labels) + 1.5), 4.6, footer_lines([payload]))
    ax = figure.subplots()
    width = 0.8 / len(guarantees)
    for n, guarantee in enumerate(guarantees):
        xs, rates = [], []
        for i, label in enumerate(labels):
            for r in results:
                if r["guarantee"] == guarantee and _burst_label(r, payload) == label:
                    xs.append(i - 0.4 + width * (n + 0.5))
                    rates.append(float(r["events_per_s"]))
        ax.bar(xs, rates, width, label=guarantee, color=GUARANTEE_COLOURS.get(guarantee))
        _bar_labels(ax, xs, rates, ".1f")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel("events per second")
    ax.legend(fontsize=7)
    figure.suptitle(f"A burst of events to the workers, per guarantee\nCPU: {provenance(payload).cpu}", fontsize=10)
    return figure


# --- loading, dispatch, the command line ---------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    """A result file; ``fwv2 bench --json`` before it named itself wrote a bare list of throughput runs."""
    data = json.loads(path.read_text())
    if isinstance(data, list):
        return {"benchmark": "throughput", "runs": data}
    if not isinstance(data, dict) or "benchmark" not in data:
        raise ValueError(f"{path}: not a benchmark result (no 'benchmark' key)")
    return data


FIGURES = {"long": long_figure, "burst": burst_figure, "diarization-compare": diarization_figure}


def figures(named: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Figure]:
    """One figure per result, named as given; every throughput result in one figure, ``throughput``."""
    drawn: dict[str, Figure] = {}
    throughput = [payload for _, payload in named if payload["benchmark"] == "throughput"]
    if throughput:
        drawn["throughput"] = throughput_figure(throughput)
    for name, payload in named:
        if (draw := FIGURES.get(payload["benchmark"])) is not None:
            drawn[name] = draw(payload)
    return drawn


def save(drawn: dict[str, Figure], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in drawn.items():
        path = out / f"{name}.png"
        figure.savefig(path, dpi=100, metadata={"Software": None})  # no version stamp: redraws differ only by data
        say(f"wrote {path}")
        written.append(path)
    return written


def plot_run(payload: dict[str, Any], out: Path, name: str) -> list[Path]:
    """``--plot DIR`` after a run: that run's figure, named ``name``, written to ``out``."""
    return save(figures([(name, payload)]), out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="result files (JSON)")
    parser.add_argument("--data", type=Path, default=None, help="a folder of result files: every *.json in it")
    parser.add_argument("--out", type=Path, required=True, help="where the PNGs go (one per figure)")
    args = parser.parse_args(argv)
    paths = [*args.files, *(sorted(args.data.glob("*.json")) if args.data else [])]
    if not paths:
        parser.error("no result files: name some, or a folder with --data")
    save(figures([(p.stem, load(p)) for p in paths]), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
