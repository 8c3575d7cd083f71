#!/usr/bin/env bash
# Style and types, in seconds: ruff's lint and format check, mypy --strict (configured in
# pyproject.toml), shellcheck (warnings and errors) on every shell script git tracks, and yamllint
# (.yamllint.yaml) on every YAML file git tracks. scripts/test.sh runs this before the images and the slow tests; so does pre-commit.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
git ls-files -z '*.sh' | xargs -0 shellcheck --severity=warning .ci/run
git ls-files -z '*.yml' '*.yaml' | xargs -0 .venv/bin/yamllint --strict
