#!/usr/bin/env bash
# The demo: set up, start the embedded stack, transcribe the sample clips and a three-voice
# conversation through Kafka and MinIO, print the transcripts (the conversation one line per
# speaker turn), stop the stack. `fwv2 demo` turns diarization on unless ENABLE_DIARIZATION is set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fwv2 demo "$@"
