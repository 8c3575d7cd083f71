"""Container health check of an fwv2 process: GET http://127.0.0.1:<port>/healthz (or the path given).

The port is the process's: GATEWAY_PORT when the container runs `fwv2 gateway` (read from PID 1's
command line, so one HEALTHCHECK serves the worker, router and gateway images), else METRICS_PORT.
Exit 0 when it answers 200, 1 otherwise. Standard library only, so it needs no curl in the image.
Docker's HEALTHCHECK uses /healthz; compose may ask for /readyz.
"""

import os
import sys
import urllib.error
import urllib.request


def _is_gateway() -> bool:
    try:
        with open("/proc/1/cmdline", "rb") as f:
            return b"gateway" in f.read().split(b"\0")
    except OSError:
        return False


path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
port = os.environ.get("GATEWAY_PORT", "8000") if _is_gateway() else os.environ.get("METRICS_PORT", "9400")
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except (urllib.error.URLError, OSError) as exc:
    print(f"{path}: {exc}", file=sys.stderr)
    sys.exit(1)
