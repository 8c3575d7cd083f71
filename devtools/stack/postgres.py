"""Genuine PostgreSQL 15 (Debian's) on 127.0.0.1: the database the JDBC sink lands transcripts in.

A cluster of its own under the stack folder, never the machine's packaged one, so a test can
start, stop and throw it away. PostgreSQL refuses to run as root and these machines run
everything as root, so initdb and the server run as the `postgres` user; `setpriv` switches
user and then execs, which keeps the pid we track the postmaster's own.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from devtools.stack.process import ManagedProcess, StackError, file_lock, port_open

PG_MAJOR = "15"
DEFAULT_PORT = 19432
DATABASE = "fwv2"
SUPERUSER = "postgres"
_BIN_DIRS = (Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin"), Path("/usr/local/bin"))
_TOOLS = ("initdb", "postgres", "pg_isready", "psql")
# A Unix socket path longer than this (sun_path, minus the ".s.PGSQL.<port>" name) cannot be bound.
_SOCKET_DIR_MAX = 107 - len(".s.PGSQL.65535") - 1


class PostgresNode:
    """One PostgreSQL cluster, trust authentication on loopback only, with a database `fwv2`."""

    def __init__(self, cache_dir: Path, stack_dir: Path, port: int, echo: Callable[[str], None]) -> None:
        self.cache_dir = cache_dir
        self.port = port
        self.echo = echo
        self.dir = stack_dir / "postgres"
        self.data = self.dir / "data"
        self.process = ManagedProcess(
            "PostgreSQL",
            pid_file=stack_dir / "postgres.pid",
            log_file=stack_dir / "logs" / "postgres.log",
            marker=str(self.data),  # unique to this stack folder
        )

    @property
    def dsn(self) -> str:
        """A libpq URI (psql, psycopg)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def jdbc_url(self) -> str:
        """For the JDBC sink's connection.url; connection.username is `postgres`, no password."""
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{DATABASE}"

    # --- install ---------------------------------------------------------------------------
    def binaries(self) -> Path | None:
        """The folder holding initdb, postgres, pg_isready and psql, or None."""
        for folder in _BIN_DIRS:
            if all(os.access(folder / tool, os.X_OK) for tool in _TOOLS):
                return folder
        return None

    def installed(self) -> bool:
        return self.binaries() is not None

    def install(self) -> None:
        """Debian's postgresql-15, installed with apt only when its binaries are missing."""
        if self.installed():
            return
        with file_lock(self.cache_dir / ".postgres-install.lock"):
            if self.installed():
                return
            apt = shutil.which("apt-get")
            if apt is None or os.geteuid() != 0:
                raise StackError(f"PostgreSQL {PG_MAJOR} is missing: apt-get install postgresql-{PG_MAJOR} (as root)")
            self.echo(f"installing PostgreSQL {PG_MAJOR} from Debian (once)...")
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for cmd in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", f"postgresql-{PG_MAJOR}"]):
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
                    raise StackError(f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n{tail}")
            if not self.installed():
                raise StackError(f"postgresql-{PG_MAJOR} installed, but its binaries are not in {_BIN_DIRS}")

    def _bin(self, tool: str) -> str:
        folder = self.binaries()
        if folder is None:
            raise StackError(f"PostgreSQL {PG_MAJOR} is not installed; run install() first")
        return str(folder / tool)

    # --- configure -------------------------------------------------------------------------
    def init_cluster(self) -> None:
        """initdb once, as the `postgres` user; an initialised folder keeps its data."""
        if (self.data / "PG_VERSION").is_file():
            return
        if len(str(self.data)) > _SOCKET_DIR_MAX:
            raise StackError(f"{self.data} is too long to hold PostgreSQL's Unix socket; use a shorter stack folder")
        self.echo(f"initialising PostgreSQL cluster in {self.data} (first start)...")
        shutil.rmtree(self.data, ignore_errors=True)  # a half-made cluster from an interrupted initdb
        self.data.mkdir(parents=True)
        self._give_to_postgres(self.dir, self.data)
        cmd = [
            self._bin("initdb"),
            "-D",
            str(self.data),
            f"--username={SUPERUSER}",
            "--auth=trust",  # loopback only, a throwaway cluster
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]
        done = subprocess.run(self._as_postgres(cmd), cwd=self.dir, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(f"initdb failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")

    def _give_to_postgres(self, *paths: Path) -> None:
        if os.geteuid() != 0:
            return  # not root: the server runs as ourselves and already owns them
        user = pwd.getpwnam(SUPERUSER)
        for path in paths:
            os.chown(path, user.pw_uid, user.pw_gid)

    def _as_postgres(self, argv: Sequence[str]) -> list[str]:
        if os.geteuid() != 0:
            return list(argv)
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError as exc:
            raise StackError(
                f"there is no `{SUPERUSER}` user to run PostgreSQL as (it refuses to run as root)"
            ) from exc
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise StackError("`setpriv` (util-linux) not found: it runs PostgreSQL as the postgres user")
        return [setpriv, f"--reuid={SUPERUSER}", f"--regid={SUPERUSER}", "--init-groups", "--", *argv]

    # --- run -------------------------------------------------------------------------------
    def start(self) -> None:
        if self.running():
            return
        if port_open(self.port):
            raise StackError(f"port {self.port} is already in use by another process; PostgreSQL cannot start")
        self.init_cluster()
        argv = [
            self._bin("postgres"),
            "-D",
            str(self.data),
            "-c",
            "listen_addresses=127.0.0.1",
            "-p",
            str(self.port),
            "-c",
            f"unix_socket_directories={self.data}",
            "-c",
            "shared_buffers=32MB",  # beside Kafka, MinIO and two JVMs on a small machine
            "-c",
            "max_connections=50",
        ]
        self.echo(f"starting PostgreSQL {PG_MAJOR} on 127.0.0.1:{self.port}...")
        self.process.start(self._as_postgres(argv), cwd=self.dir)
        # setpriv execs postgres: the tracked pid's command line names postgres, not setpriv.
        self.process.binary_name = "postgres"

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until the server accepts connections, then makes sure the `fwv2` database exists."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.pid() is None:
                raise StackError(
                    f"PostgreSQL exited during start ({self.process.describe()}); "
                    f"see {self.process.log_file}:\n{self.process.log_tail()}"
                )
            check = [self._bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER]
            if subprocess.run(check, check=False).returncode == 0:
                self._create_database()
                return
            time.sleep(0.1)
        raise StackError(
            f"PostgreSQL was not ready in {timeout_s} s; see {self.process.log_file}:\n{self.process.log_tail()}"
        )

    def _create_database(self) -> None:
        # DATABASE is a constant of this module, never outside input.
        exists = self.sql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'", database="postgres")  # noqa: S608
        if exists.strip() != "1":
            self.sql(f"CREATE DATABASE {DATABASE}", database="postgres")

    def sql(self, statement: str, database: str = DATABASE) -> str:
        """Run one statement with psql over TCP; returns its unaligned, tuples-only output."""
        cmd = [
            self._bin("psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-tA",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            database,
            "-c",
            statement,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(f"psql failed (exit {done.returncode}) on {statement!r}:\n{done.stderr}")
        return done.stdout

    def running(self) -> bool:
        return self.process.is_running()

    def pid(self) -> int | None:
        return self.process.pid()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """A fast shutdown (SIGINT to the postmaster: sessions are cut, data is flushed).

        SIGTERM would be a "smart" shutdown, which waits for every client to disconnect, and
        Connect's pooled connections never do. False if it was not running.
        """
        pid = self.process.pid()
        if pid is None:
            return self.process.stop(timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.process.exited(pid):
            time.sleep(0.1)
        self.process.stop(timeout_s)  # removes the pid file; SIGTERM, then SIGKILL if it still runs
        return True
