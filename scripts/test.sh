#!/usr/bin/env bash
# The test command: set up, check style and types, build the images, then run every test. The
# integration tests start the embedded stack (genuine Kafka and MinIO) themselves and stop it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# ruff and mypy first: a style or type error fails here in seconds, before the images and the tests.
bash scripts/lint.sh
# The images are built from this tree first, and every test runs with the Docker engine up: the image
# and compose tests run them (scripts/images.sh starts dockerd if none runs, and stops it after).
# Every test: three lanes side by side, each with its own stack (scripts/test-lanes.sh).
if [[ $# -gt 0 ]]; then  # some tests only, in one pytest: bash scripts/test.sh tests/integration/test_demo.py
  exec bash scripts/images.sh run .venv/bin/python -m pytest -ra "$@"
fi
exec bash scripts/images.sh run bash scripts/test-lanes.sh
