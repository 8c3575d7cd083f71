#!/usr/bin/env bash
# Style and types, in seconds: ruff's lint and format check, mypy --strict (configured in
# pyproject.toml), and shellcheck (warnings and errors) on every shell script git tracks. scripts/test.sh runs this before the images and the slow tests; so does pre-commit.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
git ls-files -z '*.sh' | xargs -0 shellcheck --severity=warning .ci/run
