#!/usr/bin/env bash
# The test command: set up, then run every test. The integration tests start the
# embedded stack (genuine Kafka and MinIO) themselves and stop it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -ra "$@"
