"""The docs name files that exist: a renamed or moved module fails here, not in a newcomer's hands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Top-level rooms of the repository: a backticked token starting with one of them is a path.
ROOMS = ("consumer", "pipeline", "schemas", "gateway", "helm", "tests", "scripts", "docs", "bench", "docker", "deploy")
TOKEN = re.compile(r"`([^`\s]+)`")
# A file named in prose without backticks, e.g. "(pipeline/diarization.py, docs/DIARIZATION.md)".
# An embedded figure, ![what](figures/x.png): its path is relative to the doc.
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
BARE = re.compile(r"(?<![\w/.~-])((?:" + "|".join(ROOMS) + r")/[\w/.-]+\.(?:py|sh|md|yml|yaml|avsc|json|toml))\b")


def _paths(doc: Path) -> list[str]:
    found = []
    text = doc.read_text()
    for token in TOKEN.findall(text) + BARE.findall(text):
        path = token.rstrip("/").split("::")[0].split(":")[0]
        if "/" not in path or not path.startswith(tuple(f"{room}/" for room in ROOMS)):
            continue
        if any(c in path for c in "*<>{}$"):  # patterns and placeholders, not files
            continue
        if path not in found:
            found.append(path)
    return found


DOCS = [
    "docs/ARCHITECTURE.md",
    "docs/BENCHMARKS.md",
    "CONTRIBUTING.md",
    "docs/DIARIZATION.md",
    "README.md",
    "docs/SETTINGS.md",
    "docs/OPERATIONS.md",
]


@pytest.mark.parametrize("doc", DOCS)
def test_every_path_a_doc_names_exists(doc: str) -> None:
    paths = _paths(ROOT / doc)
    assert paths, f"{doc} names no path: the check would prove nothing"
    missing = sorted({p for p in paths if not (ROOT / p).exists()})
    assert not missing, f"{doc} names paths that do not exist: {missing}"


def test_the_check_sees_a_missing_module(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("See `consumer/worker/nowhere.py` and (pipeline/gone.py, docs/EVENTS.md).")
    assert _paths(doc) == ["consumer/worker/nowhere.py", "pipeline/gone.py", "docs/EVENTS.md"]


@pytest.mark.parametrize("doc", DOCS)
def test_every_figure_a_doc_embeds_exists(doc: str) -> None:
    missing = [m for m in IMAGE.findall((ROOT / doc).read_text()) if not (ROOT / doc).parent.joinpath(m).is_file()]
    assert not missing, f"{doc} embeds figures that do not exist: {missing}"


def test_the_figures_check_sees_a_missing_png() -> None:
    assert IMAGE.findall("text ![a plot](figures/gone.png) and [a link](x.md)") == ["figures/gone.png"]
