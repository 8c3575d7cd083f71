"""``python -m bench`` (or ``fwv2 bench`` from a source checkout): the benchmarks' front door."""

from __future__ import annotations

import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
