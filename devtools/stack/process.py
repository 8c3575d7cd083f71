"""A detached server process tracked by a pid file: start, find, stop.

The stack's servers must outlive the `fwv2 stack up` process that started them, so they run
in their own session and a pid file is the only link back to them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path


class StackError(RuntimeError):
    """The embedded stack could not be installed, started or stopped."""


class ManagedProcess:
    """One server of the stack.

    ``marker`` is a string its command line must contain; it guards against a stale pid file
    whose pid the kernel has since handed to an unrelated process.
    """

    def __init__(self, name: str, pid_file: Path, log_file: Path, marker: str) -> None:
        self.name = name
        self.pid_file = pid_file
        self.log_file = log_file
        self.marker = marker
        self.last_miss = ""
        self.binary_name = ""  # set by start(): the program's file name, to tell the server from a tool

    # --- state ---------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid of the running server, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError) as exc:
            self.last_miss = f"pid file {self.pid_file}: {type(exc).__name__}"
            return self._adopt()
        if _alive(pid, self.marker):
            return pid
        self.last_miss = f"pid {pid} not alive ({self._proc_state(pid)})"
        self.pid_file.unlink(missing_ok=True)
        return self._adopt()

    def _adopt(self) -> int | None:
        """A running server of ours whose pid file was lost: found by its marker, its pid file rewritten.

        Seen in full test runs: MinIO restarted after an outage served on its port while the check of
        its pid file said it was gone, and then nothing could stop it. The marker is unique to this
        stack folder, so a process whose command line holds it is this server.
        """
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            # Only a process that is this server is looked at further (waitpid included).
            if self.marker in cmdline and self.binary_name in cmdline and _alive(int(entry.name), self.marker):
                self.pid_file.write_text(f"{entry.name}\n")
                return int(entry.name)
        return None

    def _proc_state(self, pid: int) -> str:
        try:
            proc = Path(f"/proc/{pid}")
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:160]
        except (OSError, ValueError) as exc:
            return f"/proc: {type(exc).__name__}"
        return f"state {state}, marker {'in' if self.marker in cmdline else 'not in'} {cmdline!r}"

    def describe(self) -> str:
        """Why the last pid() found no running server, for an error message."""
        return self.last_miss

    def is_running(self) -> bool:
        return self.pid() is not None

    def exited(self, pid: int) -> bool:
        return not _alive(pid, self.marker)

    # --- start / stop --------------------------------------------------------------------
    def start(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> int:
        """Start detached with stdout and stderr going to the log file; returns the pid."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._rotate_log()
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session: no SIGINT/SIGHUP from our terminal
                close_fds=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        self.binary_name = Path(argv[0]).name
        return proc.pid

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout_s``; waits for the exit. False if not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal(pid, signal.SIGTERM)
        if not _wait_exit(pid, self.marker, timeout_s):
            _signal(pid, signal.SIGKILL)
            if not _wait_exit(pid, self.marker, 10.0):
                raise StackError(f"{self.name} (pid {pid}) survived SIGKILL")
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_contains(self, needle: str) -> bool:
        try:
            return needle in self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return False

    def _rotate_log(self) -> None:
        # The previous run's "started" line must not satisfy this run's readiness check.
        if self.log_file.exists():
            self.log_file.replace(self.log_file.with_name(self.log_file.name + ".1"))


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock: two `stack up` (or two test workers) must not race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _alive(pid: int, marker: str) -> bool:
    # Reap it if it is our own child, or a dead child would look alive as a zombie.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return looks_alive(stat.rsplit(")", 1)[-1].split()[0], cmdline, marker)  # the state follows "(comm)"


def looks_alive(state: str, cmdline: str, marker: str) -> bool:
    """Whether a process in ``state`` with ``cmdline`` is our server, alive.

    An empty command line is a process in the middle of execve (seen in a full test run: MinIO just
    restarted, in state D while its 100 MB binary was read in): ours, starting, not a stranger.
    """
    return state not in ("Z", "X") and (marker in cmdline or not cmdline.strip())


def _signal(pid: int, sig: signal.Signals) -> None:
    # The server leads its own process group (start_new_session): signal the whole group.
    try:
        os.killpg(pid, sig)
        return
    except (ProcessLookupError, PermissionError):
        pass  # not a group leader (started by something else): signal the process alone
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_exit(pid: int, marker: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid, marker):
            return True
        time.sleep(0.1)
    return not _alive(pid, marker)


def require_tool(tool: str, what: str) -> str:
    """The tool's path on PATH, or a StackError naming what the stack needs it for."""
    path = shutil.which(tool)
    if path is None:
        raise StackError(f"`{tool}` not found on PATH: the embedded stack needs {what}")
    return path


def run_maven(
    args: Sequence[str],
    cwd: Path,
    what: str,
    missing: Callable[[], list[str]],
    timeout_s: float | None = None,
) -> None:
    """Run ``mvn -q -B ARGS`` in ``cwd`` for the servers assembled from Maven Central (Kafka, the registry, Connect).

    Fails with a StackError holding the last lines of Maven's output when it exits non-zero, runs past
    ``timeout_s``, or leaves anything ``missing()`` names (what the caller needs from the build).
    """
    mvn = require_tool("mvn", "Maven (apt-get install maven)")
    require_tool("java", "a Java 17+ runtime (apt-get install openjdk-17-jre-headless)")
    try:
        done = subprocess.run(
            [mvn, "-q", "-B", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout_s
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{what} took over {timeout_s:.0f} s in {cwd}") from exc
    absent = missing()
    if done.returncode != 0 or absent:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise StackError(f"{what} failed (mvn exit {done.returncode}, missing {absent}) in {cwd}:\n{tail}")
