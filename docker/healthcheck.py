"""Container health check of an fwv2 worker: GET http://127.0.0.1:$METRICS_PORT/healthz (or the path given).

Exit 0 when the worker answers 200, 1 otherwise. Standard library only, so it needs no curl in the
image. Docker's HEALTHCHECK uses /healthz; compose may ask for /readyz.
"""

import os
import sys
import urllib.error
import urllib.request

path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
port = os.environ.get("METRICS_PORT", "9400")
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=4) as response:  # noqa: S310
        sys.exit(0 if response.status == 200 else 1)
except (urllib.error.URLError, OSError) as exc:
    print(f"{path}: {exc}", file=sys.stderr)
    sys.exit(1)
