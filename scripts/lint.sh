#!/usr/bin/env bash
# Style and types, in seconds: ruff's lint and format check, then mypy --strict (configured in
# pyproject.toml). scripts/test.sh runs this before the images and the slow tests; so does pre-commit.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
