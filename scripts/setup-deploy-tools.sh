#!/usr/bin/env bash
# Installs the tools that check the deployment artifacts (tests/deploy), idempotently:
#   helm 3.22.0          built with `go install` into $CACHE_DIR/bin (default ~/.cache/fwv2/bin), once
#   promtool             Debian's `prometheus` package (promtool check/test rules)
#   docker-compose 1.29  Debian's `docker-compose` package (`config -q` needs no Docker engine)
#   kubernetes-validate  1.37.0 from PyPI into the project's .venv (offline Kubernetes schemas)
# Each step is skipped when its tool is already there, so a warm run takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
KUBERNETES_VALIDATE_VERSION=1.37.0
BIN_DIR="${CACHE_DIR:-$HOME/.cache/fwv2}/bin"
mkdir -p "$BIN_DIR"

# --- Debian packages: promtool and docker-compose ------------------------------------
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
if ((${#missing[@]})); then
  echo "setup-deploy-tools: installing ${missing[*]} from Debian..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The prometheus package starts a server when a service manager is present; we only want promtool.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
    systemctl disable prometheus >/dev/null 2>&1 || true
  fi
fi

# --- helm, built from its Go module (Helm is not packaged by Debian) -----------------
if [[ ! -x "$BIN_DIR/helm" ]]; then
  command -v go >/dev/null 2>&1 || { echo "setup-deploy-tools: Go is required to build helm" >&2; exit 1; }
  echo "setup-deploy-tools: building helm $HELM_VERSION with go install (about 2 minutes, once)..." >&2
  GOBIN="$BIN_DIR" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi

# --- kubernetes-validate into the project's virtual environment -----------------------
if [[ ! -x .venv/bin/python ]]; then
  echo "setup-deploy-tools: .venv is missing; run scripts/setup.sh first" >&2
  exit 1
fi
if [[ "$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))' 2>/dev/null)" \
      != "$KUBERNETES_VALIDATE_VERSION" ]]; then
  echo "setup-deploy-tools: installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION..." >&2
  .venv/bin/pip install -q --disable-pip-version-check -c requirements.lock "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

echo "setup-deploy-tools: helm $("$BIN_DIR/helm" version --short 2>/dev/null || echo '?'), $(promtool --version 2>&1 | head -1), $(docker-compose version --short 2>/dev/null), kubernetes-validate $KUBERNETES_VALIDATE_VERSION" >&2
