"""How the stack tells its own server from a dead one or a stranger that inherited the pid."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.stack.process import StackError, looks_alive, run_maven

MARKER = "/work/main/.stack/minio/data"


def test_a_running_server_with_its_marker_is_alive() -> None:
    assert looks_alive("S", f"/cache/bin/minio server {MARKER} --address 127.0.0.1:19000", MARKER)


def test_a_zombie_or_a_stranger_is_not() -> None:
    assert not looks_alive("Z", f"minio server {MARKER}", MARKER)
    assert not looks_alive("X", "", MARKER)
    assert not looks_alive("S", "/usr/bin/python3 -m http.server", MARKER)


def test_a_server_in_the_middle_of_execve_is_alive() -> None:
    # Its command line reads empty until exec has set it up, while the binary is read in (state D).
    assert looks_alive("D", "", MARKER)
    assert looks_alive("R", " ", MARKER)


@pytest.mark.tools
def test_a_maven_run_that_leaves_a_jar_missing_fails_with_its_name(tmp_path: Path) -> None:
    run_maven(["--version"], tmp_path, "asking Maven its version", missing=list)  # nothing missing: fine
    with pytest.raises(StackError, match=r"resolving the jars failed \(mvn exit 0, missing \['server.jar'\]\)"):
        run_maven(["--version"], tmp_path, "resolving the jars", missing=lambda: ["server.jar"])
