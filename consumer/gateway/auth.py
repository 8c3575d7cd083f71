"""Optional API keys: one per line in a mounted file (a Kubernetes Secret), sent as ``Authorization: Bearer``.

The file is read again when it changes, so a rotated Secret takes effect without a restart.
"""

from __future__ import annotations

import contextlib
import hmac
from pathlib import Path

from consumer.gateway.errors import ApiError


class ApiKeys:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._stamp: tuple[float, int] | None = None
        self._keys: tuple[bytes, ...] = ()
        if path is not None:
            self._load()

    @property
    def enabled(self) -> bool:
        return self._path is not None

    def _load(self) -> None:
        assert self._path is not None
        stat = self._path.stat()  # a missing file fails the start: no silent "open to everyone"
        if self._stamp == (stat.st_mtime, stat.st_size):
            return
        lines = (line.strip() for line in self._path.read_text().splitlines())
        self._keys = tuple(line.encode() for line in lines if line and not line.startswith("#"))
        self._stamp = (stat.st_mtime, stat.st_size)

    def check(self, authorization: str | None) -> None:
        if self._path is None:
            return
        # Keep the keys already read while a Secret update swaps the file.
        with contextlib.suppress(OSError):
            self._load()
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")
        given = token.strip().encode()
        # Compare against every key, in constant time each, so timing tells nothing about which is close.
        if not any([hmac.compare_digest(given, key) for key in self._keys]):
            raise ApiError(401, "incorrect API key provided", code="invalid_api_key")
