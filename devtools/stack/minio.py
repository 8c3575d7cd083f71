"""Genuine MinIO on 127.0.0.1, built from source once into the shared cache folder.

The Go module proxy serves exactly one MinIO version to these machines; it is run as a separate,
unmodified test server (AGPL v3), never linked into the stage.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import urllib3
from minio import Minio

from devtools.settings import DevSettings
from devtools.stack.notify import minio_env
from devtools.stack.process import ManagedProcess, StackError, file_lock, port_open
from devtools.stack.secure import SecureLayout

MINIO_MODULE = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
# A build whose log has not moved for this long and never wrote "done" was abandoned.
_STALE_BUILD_S = 10 * 60
_BUILD_TIMEOUT_S = 30 * 60


class MinioNode:
    def __init__(self, settings: DevSettings, echo: Callable[[str], None], secure: SecureLayout | None = None) -> None:
        self.settings = settings
        self.echo = echo
        self.secure = secure
        self.certs = settings.stack_dir / "minio" / "certs"
        self.binary = settings.cache_dir / "bin" / "minio"
        self.build_log = settings.cache_dir / "logs" / "minio-build.log"
        self.data = settings.stack_dir / "minio" / "data"
        self.process = ManagedProcess(
            "MinIO",
            pid_file=settings.stack_dir / "minio.pid",
            log_file=settings.stack_dir / "logs" / "minio.log",
            marker=str(self.data),  # unique to this stack folder
        )

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.settings.minio_port}"

    # --- install ---------------------------------------------------------------------------
    def install(self) -> None:
        # A build may be under way (another shell, the machine's setup): wait for it rather than
        # run a second 1.5 GB, multi-minute build, or start a binary it is still writing.
        if self._build_in_progress():
            self.echo(f"waiting for the MinIO build already running (log: {self.build_log})...")
            self._wait_for_build()
        if _executable(self.binary):
            return
        with file_lock(self.settings.cache_dir / "bin" / ".minio-build.lock"):
            if _executable(self.binary):
                return
            self._build()

    def _build_in_progress(self) -> bool:
        try:
            lines = self.build_log.read_text(errors="replace").strip().splitlines()
            age = time.time() - self.build_log.stat().st_mtime
        except FileNotFoundError:
            return False
        finished = bool(lines) and lines[-1].startswith("done ")
        return not finished and age < _STALE_BUILD_S

    def _wait_for_build(self) -> None:
        deadline = time.monotonic() + _BUILD_TIMEOUT_S
        while self._build_in_progress():
            if time.monotonic() > deadline:
                raise StackError(f"the MinIO build did not finish in time; see {self.build_log}")
            time.sleep(2.0)

    def _build(self) -> None:
        go = shutil.which("go")
        if go is None:
            raise StackError("`go` not found on PATH: building MinIO needs Go 1.24+ (https://go.dev/dl/)")
        self.binary.parent.mkdir(parents=True, exist_ok=True)
        self.build_log.parent.mkdir(parents=True, exist_ok=True)
        self.echo(f"building MinIO (a few minutes, once; log: {self.build_log})...")
        env = {**os.environ, "GOBIN": str(self.binary.parent)}
        with open(self.build_log, "w") as log:
            log.write(f"go install {MINIO_MODULE}\n")
            log.flush()
            done = subprocess.run(
                [go, "install", MINIO_MODULE], env=env, stdout=log, stderr=subprocess.STDOUT, check=False
            )
            # Same convention as the machine's own build: the last line says it ended, and how.
            log.write(f"done {done.returncode}\n")
        if done.returncode != 0 or not _executable(self.binary):
            raise StackError(f"building MinIO failed (exit {done.returncode}); see {self.build_log}")

    # --- run -------------------------------------------------------------------------------
    def start(self) -> None:
        for port in (self.settings.minio_port, self.settings.minio_console_port):
            if port_open(port):
                raise StackError(f"port {port} is already in use by another process; MinIO cannot start")
        self.data.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "MINIO_ROOT_USER": self.settings.s3_access_key.get_secret_value(),
            "MINIO_ROOT_PASSWORD": self.settings.s3_secret_key.get_secret_value(),
            "MINIO_UPDATE": "off",  # a test server has no business checking for updates
        }
        if self.secure is None:
            env.update(minio_env(self.settings))  # its bucket notifications go to the stack's Kafka
        argv = [
            str(self.binary),
            "server",
            str(self.data),
            "--address",
            self.endpoint,
            "--console-address",
            f"127.0.0.1:{self.settings.minio_console_port}",
        ]
        if self.secure is not None:
            argv += ["--certs-dir", str(self._install_certs())]
        self.echo(f"starting MinIO on {self.endpoint}...")
        self.process.start(argv, cwd=self.data.parent, env=env)

    def _install_certs(self) -> Path:
        """MinIO's layout: public.crt and private.key serve TLS; CAs/ holds what it trusts itself."""
        assert self.secure is not None
        tls = self.secure.tls
        (self.certs / "CAs").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tls.server_cert, self.certs / "public.crt")
        shutil.copyfile(tls.server_key, self.certs / "private.key")
        (self.certs / "private.key").chmod(0o600)
        shutil.copyfile(tls.ca, self.certs / "CAs" / "ca.crt")
        return self.certs

    @property
    def scheme(self) -> str:
        return "https" if self.secure is not None else "http"

    def wait_ready(self, deadline: float) -> None:
        """Until /minio/health/ready answers 200 (the server serves S3 requests)."""
        url = f"{self.scheme}://{self.endpoint}/minio/health/ready"
        context = ssl.create_default_context(cafile=str(self.secure.tls.ca)) if self.secure else None
        while time.monotonic() < deadline:
            pid = self.process.pid()
            if pid is None:
                raise StackError(
                    f"MinIO exited during start ({self.process.describe()}); see {self.process.log_file}:\n"
                    f"{self.process.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1.0, context=context) as response:  # noqa: S310 - fixed loopback URL
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise StackError(f"MinIO was not ready in time; see {self.process.log_file}:\n{self.process.log_tail()}")

    def client(self) -> Minio:
        # Short timeouts: set-up calls retry until the stack's deadline, so one request that a
        # just-restarted server holds (minio-py's default read timeout is 5 minutes) must not use
        # up the whole deadline; it was seen to in CI, right after the object-store outage test.
        http = self.http()
        return Minio(
            self.endpoint,
            access_key=self.settings.s3_access_key.get_secret_value(),
            secret_key=self.settings.s3_secret_key.get_secret_value(),
            secure=self.secure is not None,
            region=self.settings.s3_region,
            http_client=http,
        )

    def http(self) -> urllib3.PoolManager:
        tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED", "ca_certs": str(self.secure.tls.ca)} if self.secure else {}
        return urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=2.0, read=10.0),
            retries=urllib3.Retry(total=0, connect=0, read=0, redirect=0),
            **tls,
        )


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
