#!/usr/bin/env bash
# Every linter of the repository, in seconds: ruff's lint and format check and mypy --strict on the Python
# (configured in pyproject.toml); shellcheck (warnings and errors) on every shell script git tracks;
# yamllint (.yamllint.yaml) on every YAML file; hadolint (.hadolint.yaml) on every Dockerfile; helm lint
# --strict on the chart with each of its CI value sets; detect-secrets against the audited baseline
# (.secrets.baseline). scripts/test.sh runs this before the images and the slow tests; so does pre-commit.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
git ls-files -z '*.sh' | xargs -0 shellcheck --severity=warning .ci/run
git ls-files -z '*.yml' '*.yaml' | xargs -0 .venv/bin/yamllint --strict
git ls-files -z 'docker/*Dockerfile*' ':!*.dockerignore' | xargs -0 -n1 .venv/bin/hadolint --config .hadolint.yaml
# helm comes from scripts/setup-deploy-tools.sh (CACHE_DIR/bin); the same Kubernetes version as tests/deploy.
helm="${CACHE_DIR:-$HOME/.cache/fwv2}/bin/helm"
"$helm" lint --strict --quiet helm/fwv2 --kube-version 1.34.0
for values in helm/fwv2/ci/*.yaml; do
  "$helm" lint --strict --quiet helm/fwv2 --kube-version 1.34.0 -f "$values"
done
# A new secret fails; a false positive is audited into the baseline (`detect-secrets scan --baseline
# .secrets.baseline`, then `detect-secrets audit .secrets.baseline`) or marked `pragma: allowlist secret`.
# The hook rewrites the baseline when a known finding only moved (exit 3): that is not a failure, so it
# works on a copy and the committed baseline changes only when someone means it to.
baseline=$(mktemp)
trap 'rm -f "$baseline"' EXIT
cp .secrets.baseline "$baseline"
mapfile -d '' tracked < <(git ls-files -z ':!.secrets.baseline')
rc=0
.venv/bin/detect-secrets-hook --baseline "$baseline" "${tracked[@]}" >/dev/null || rc=$?
if [[ $rc -ne 0 && $rc -ne 3 ]]; then
  .venv/bin/detect-secrets-hook --baseline "$baseline" "${tracked[@]}" || true
  exit 1
fi
