#!/usr/bin/env bash
# The demo: set up, start the embedded stack, transcribe the sample clips through Kafka
# and MinIO, print the transcripts, stop the stack.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fwv2 demo "$@"
