#!/usr/bin/env bash
# Builds the container images from the working tree and runs them for real, on one of our machines.
#
#   bash scripts/images.sh            engine, base, images, then run them: tests/integration/test_images.py
#                                     (each image on the embedded stack) and tests/integration/test_compose_up.py
#   bash scripts/images.sh build      engine, base and images only
#   bash scripts/images.sh run CMD..  engine, base and images, then CMD with the engine up (scripts/test.sh)
#
# No image registry is reachable here, so the upstream bases are replaced by stand-ins made from
# Debian's packages (the Dockerfiles keep the upstream images as their defaults, for users):
#   local/python:3.11-slim-bookworm   mmdebstrap minbase + python3.11, venv, pip and the host's CA
#                                     certificates (pip inside a build verifies the index through them)
#   local/fwv2-infra-*:<tag>          Kafka 4.4.0 (the stack's cached Maven jars, openjdk-17), MinIO (the
#                                     binary the stack builds), Prometheus (Debian's package) and the
#                                     schema registry (Apicurio 2.4.2 as `fwv2 stack install --with
#                                     registry` assembles it, openjdk-17) for compose.local.yml
# and the project's images: fwv2:<version>-cpu (worker and router) and fwv2:<version>-gateway.
#
# The engine: Debian's docker.io is installed when missing; when no dockerd answers, one is started
# with --bridge=none --iptables=false (no bridge and no private network: every build and container
# runs with --network host, all traffic on 127.0.0.1) and stopped again on exit. Everything is cached
# on this machine between runs: the base (image, and its tarball under $CACHE_DIR/images keyed by its
# package list and CA certificates) and BuildKit's layers, so a second run rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=/usr/bin/docker  # another `docker` may stand earlier on PATH
CACHE_DIR="${CACHE_DIR:-$HOME/.cache/fwv2}"
IMAGES_DIR="$CACHE_DIR/images"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)"
BASE_IMAGE="${FWV2_BASE_IMAGE:-local/python:3.11-slim-bookworm}"
BASE_PACKAGES="python3.11,python3.11-venv,python3-pip,python-is-python3,ca-certificates"
export DOCKER_BUILDKIT=1  # the classic builder ignores docker/Dockerfile.*.dockerignore and sends .venv
mkdir -p "$IMAGES_DIR" "$CACHE_DIR/logs"

say() { echo "images: $*" >&2; }
timed() {  # timed NAME CMD...: run CMD, record its seconds in $IMAGES_DIR/timings.log
  local name=$1 start=$SECONDS; shift
  "$@"
  local took=$((SECONDS - start))
  say "$name: ${took}s"
  echo "$(date -u +%FT%TZ) $name ${took}s" >> "$IMAGES_DIR/timings.log"
}

# --- the engine ---------------------------------------------------------------------------------
ensure_engine() {
  if [[ ! -x $DOCKER || ! -x /usr/bin/mmdebstrap ]]; then
    say "installing docker.io and mmdebstrap from Debian..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io mmdebstrap >/dev/null
  fi
  if $DOCKER info >/dev/null 2>&1; then return 0; fi
  say "starting dockerd (--bridge=none --iptables=false; log: $CACHE_DIR/logs/dockerd.log)"
  # setsid: its own session, so that stopping it never signals our caller's process group.
  setsid /usr/sbin/dockerd --bridge=none --iptables=false >>"$CACHE_DIR/logs/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  trap stop_engine EXIT
  for _ in $(seq 1 60); do
    $DOCKER info >/dev/null 2>&1 && return 0
    kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -20 "$CACHE_DIR/logs/dockerd.log" >&2; exit 1; }
    sleep 0.5
  done
  say "dockerd did not answer in 30 s"; exit 1
}

stop_engine() {
  [[ -n "${DOCKERD_PID:-}" ]] || return 0
  say "stopping the dockerd this script started (pid $DOCKERD_PID)"
  kill -TERM "$DOCKERD_PID" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL "$DOCKERD_PID" 2>/dev/null || true
}

# --- the stand-in base --------------------------------------------------------------------------
base_key() {  # what the base is made of: its packages and the CA certificates it trusts
  { echo "bookworm minbase $BASE_PACKAGES"; cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true; } \
    | sha256sum | cut -c1-16
}

ensure_base() {
  local key tar have
  key="$(base_key)"
  tar="$IMAGES_DIR/python-3.11-bookworm-$key.tar"
  have="$($DOCKER image inspect -f '{{ index .Config.Labels "fwv2.base.key" }}' "$BASE_IMAGE" 2>/dev/null || true)"
  [[ $have == "$key" ]] && return 0
  if [[ ! -s $tar ]]; then
    say "making $BASE_IMAGE from Debian bookworm with mmdebstrap (once, about a minute)..."
    # The customize hook puts the host's extra CA certificates in and rebuilds the bundle.
    mmdebstrap --quiet --format=tar --variant=minbase --include="$BASE_PACKAGES" \
      --customize-hook='for c in /usr/local/share/ca-certificates/*.crt; do [ -e "$c" ] && cp "$c" "$1/usr/local/share/ca-certificates/"; done; chroot "$1" update-ca-certificates >/dev/null' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
      bookworm "$tar.part"
    mv "$tar.part" "$tar"
  fi
  $DOCKER import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    --change "LABEL fwv2.base.key=$key" "$tar" "$BASE_IMAGE" >/dev/null
}

# --- the images ---------------------------------------------------------------------------------
build_project_images() {
  # --network host: pip reaches the package index through the host's network, never a bridge.
  timed "build fwv2:$VERSION-cpu" $DOCKER build -q --network host -f docker/Dockerfile.cpu \
    --build-arg PYTHON_IMAGE="$BASE_IMAGE" -t "fwv2:$VERSION-cpu" . >/dev/null
  timed "build fwv2:$VERSION-gateway" $DOCKER build -q --network host -f docker/Dockerfile.cpu \
    --build-arg PYTHON_IMAGE="$BASE_IMAGE" --build-arg EXTRAS=gateway -t "fwv2:$VERSION-gateway" . >/dev/null
}

build_infra_images() {
  # One context with what the four images copy in: the Kafka jars, the MinIO binary, Prometheus, and
  # Apicurio's runner jar with the lib/ folder its manifest's Class-Path names.
  local ctx="$IMAGES_DIR/infra-context" kafka_lib="$CACHE_DIR/kafka-4.4.0/lib"
  local registry="$CACHE_DIR/apicurio-registry-2.4.2/target"
  [[ -f $kafka_lib/kafka_2.13-4.4.0.jar && -x $CACHE_DIR/bin/minio ]] \
    && [[ -f $CACHE_DIR/apicurio-registry-2.4.2/install.complete ]] \
    || .venv/bin/fwv2 stack install --with registry
  [[ -x /usr/bin/prometheus ]] || bash scripts/setup-deploy-tools.sh
  rm -rf "$ctx"; mkdir -p "$ctx/kafka-libs" "$ctx/apicurio"
  cp -l "$kafka_lib"/*.jar "$ctx/kafka-libs/" 2>/dev/null || cp "$kafka_lib"/*.jar "$ctx/kafka-libs/"
  cp -rl "$registry/lib" "$registry/apicurio-registry-2.4.2-runner.jar" "$ctx/apicurio/" 2>/dev/null \
    || cp -r "$registry/lib" "$registry/apicurio-registry-2.4.2-runner.jar" "$ctx/apicurio/"
  cp "$CACHE_DIR/bin/minio" /usr/bin/prometheus docker/local/kafka-entrypoint.sh "$ctx/"
  local target
  for target in kafka minio prometheus registry; do
    timed "build local/fwv2-infra-$target" $DOCKER build -q --network host -f docker/local/Dockerfile.infra \
      --build-arg BASE_IMAGE="$BASE_IMAGE" --target "$target" -t "local/fwv2-infra-$target:$VERSION" "$ctx" >/dev/null
  done
}

print_sizes() {
  $DOCKER image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' \
    | grep -E "^(fwv2:|local/)" | sort | sed 's/^/images: size /' >&2
}

main() {
  local what="${1:-all}"
  ensure_engine
  timed "base $BASE_IMAGE" ensure_base
  [[ $what == base ]] && return 0
  build_project_images
  build_infra_images
  print_sizes
  case $what in
    build) ;;
    # The whole test command runs inside, with the engine up (scripts/test.sh).
    run) shift; "$@" ;;
    # Each image run against the embedded stack, compose brought up, the alerts on a real Prometheus.
    all) .venv/bin/python -m pytest -q -p no:cacheprovider tests/integration/test_images.py tests/integration/test_compose_up.py ;;
    *) say "unknown mode $what (all | build | base | run CMD...)"; exit 2 ;;
  esac
}

main "$@"
