"""The house rules of the layout (docs/ARCHITECTURE.md), checked on the source rather than trusted.

- ``pipeline/`` imports nothing of the Kafka side; the service (``consumer/``) never imports the developer's
  tools (``devtools/``, ``bench/``) or the tests, except the one named discovery point in ``consumer/cli.py``.
- Neither the wheel nor the service images carry the developer's tools.
- Without them, ``fwv2 stack|demo|bench`` explain how to get them instead of failing on an import.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEV = {"devtools", "bench", "tests"}


def imports(path: Path) -> list[tuple[str, int]]:
    """Every module a file imports, at any depth (a lazy import inside a function counts too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, node.lineno))
    return found


def top_imports(package: str) -> dict[str, set[str]]:
    return {
        str(path.relative_to(ROOT)): {name.split(".")[0] for name, _ in imports(path)}
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def test_pipeline_imports_nothing_of_the_kafka_side_or_the_tools() -> None:
    wrong = {f: sorted(tops & (DEV | {"consumer"})) for f, tops in top_imports("pipeline").items()}
    assert not {f: t for f, t in wrong.items() if t}


def test_the_service_never_imports_the_developers_tools() -> None:
    wrong = {f: sorted(tops & DEV) for f, tops in top_imports("consumer").items()}
    assert not {f: t for f, t in wrong.items() if t}
    # The one place that reaches them does it by name, and only for the developer's commands.
    from consumer import cli

    assert set(cli.DEV_PLUGINS) == {"devtools.cli", "bench.cli"}


def test_the_checker_sees_a_lazy_import(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from devtools.stack import EmbeddedStack\n    import bench.main\n")
    assert {name for name, _ in imports(sample)} == {"devtools.stack", "bench.main"}


def test_the_wheel_and_the_images_hold_no_developers_tools() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert not {p.split(".")[0] for p in packages} & DEV
    for ignore in sorted((ROOT / "docker").glob("Dockerfile.*.dockerignore")):
        allowed = [line[1:].rstrip("/") for line in ignore.read_text().splitlines() if line.startswith("!")]
        assert not {a.split("/")[0] for a in allowed} & DEV, ignore.name


def test_without_the_tools_their_commands_say_how_to_get_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from consumer import cli

    monkeypatch.setattr(cli, "configure_logging", lambda *_: None)  # stdout is captured, then closed
    for name in ("devtools", "devtools.cli", "bench", "bench.cli"):
        monkeypatch.setitem(sys.modules, name, None)  # as in the image: importing them fails
    for argv in (["demo"], ["stack", "up", "--secure"], ["bench", "--speakers", "--rounds", "2"]):
        assert cli.main(argv) == 2
        assert "source checkout" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a service command still refuses unknown flags
        cli.main(["worker", "--no-such-flag"])


def test_in_a_checkout_the_developers_commands_are_there() -> None:
    from consumer import cli

    args = cli.build_parser().parse_args(["bench", "--speakers", "--rounds", "3"])
    assert args.rounds == 3 and args.speakers and args.func.__module__ == "bench.cli"
    assert cli.build_parser().parse_args(["stack", "status"]).func.__module__ == "devtools.cli"


def test_unit_tests_mirror_the_package_tree() -> None:
    """tests/unit/<package path>/test_<module>.py: a unit test's folder names the room it tests."""
    unit = ROOT / "tests" / "unit"
    for test in sorted(unit.rglob("test_*.py")):
        room = test.parent.relative_to(unit)
        if room == Path("."):
            continue  # repository-wide rules (this file, the docs' paths)
        assert (ROOT / room).is_dir(), f"{test.relative_to(ROOT)}: no package {room}/ to mirror"
        assert (ROOT / room / "__init__.py").is_file(), f"{room}/ is not a package"
