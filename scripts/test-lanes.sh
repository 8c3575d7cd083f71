#!/usr/bin/env bash
# Every test, in four lanes side by side (scripts/test.sh runs this with the Docker engine up).
#
# Most of an integration test is waiting (a broker round trip, a worker's start, a container), so two
# cores run four lanes in well under the time of one. Each lane is its own pytest process with its own
# embedded stack: its own ports and its own folder, so no lane sees another's topics, groups or servers.
#   stack      tests/integration but the files of the lanes below: genuine Kafka and MinIO on 19092/19000
#   recovery   the integration files that kill, restart and re-route workers (reliability, routing, the
#              result cache): their own stack on 21092/21000
#   docker     tests/gateway, and the integration files that run images, compose, the secure stack, the
#              job states of an hour-long file,
#              downstream servers and the benchmarks: their own stack on 23092/23000
#   local      tests/unit, tests/diarization, tests/deploy, tests/interop: no Kafka; the registry of
#              tests/interop on its own port (25081)
# The secure stack (fixed ports 29092/29000) and compose (39092...) run only in the `docker` lane. The lanes'
# ports stay under 32768, out of Linux's ephemeral range: a client's outgoing connection may hold any port
# from 32768 up as its own, and a broker that starts after it cannot bind that port.
# Each lane's output goes to .test-logs/<lane>.log, printed whole when the lanes end, with its slowest
# tests; the exit status is that of the first failed lane. Extra arguments go to every lane's pytest.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
mkdir -p .test-logs

DOCKER_LANE_INTEGRATION=(test_images test_compose_up test_secure_stack test_downstream test_bench_smoke test_status)
RECOVERY_LANE_INTEGRATION=(test_reliability test_routing test_result_cache)

lane_env() {  # lane_env BASE: the settings that put a lane's stack on its own ports and folder
  local base=$1
  echo "KAFKA_PORT=${base}092 KAFKA_CONTROLLER_PORT=${base}093 MINIO_PORT=${base}000 MINIO_CONSOLE_PORT=${base}001" \
    "REGISTRY_PORT=${base}081 CONNECT_PORT=${base}083 POSTGRES_PORT=${base}432" \
    "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:${base}092 S3_ENDPOINT=127.0.0.1:${base}000 STACK_DIR=$PWD/.stack-lane-$2"
}

docker_files=() recovery_files=() ignore=()
for name in "${DOCKER_LANE_INTEGRATION[@]}"; do
  docker_files+=("tests/integration/$name.py")
  ignore+=("--ignore=tests/integration/$name.py")
done
for name in "${RECOVERY_LANE_INTEGRATION[@]}"; do
  recovery_files+=("tests/integration/$name.py")
  ignore+=("--ignore=tests/integration/$name.py")
done

declare -A pids started
run_lane() {  # run_lane NAME ENV PYTEST-ARGS...
  local name=$1 env=$2; shift 2
  started[$name]=$SECONDS
  # shellcheck disable=SC2086 # $env is a list of NAME=value words
  env $env .venv/bin/python -m pytest -ra -p no:cacheprovider --durations=10 "$@" >".test-logs/$name.log" 2>&1 &
  pids[$name]=$!
}

run_lane stack "" tests/integration "${ignore[@]}" "$@"
run_lane recovery "$(lane_env 21 recovery)" "${recovery_files[@]}" "$@"
run_lane docker "$(lane_env 23 docker)" tests/gateway "${docker_files[@]}" "$@"
run_lane local "$(lane_env 25 local)" tests/unit tests/diarization tests/deploy tests/interop "$@"

status=0 summary=()
for name in local docker recovery stack; do
  wait "${pids[$name]}"
  rc=$?
  took=$((SECONDS - started[$name]))
  echo "===== lane $name: exit $rc after ${took} s =====" >&2
  cat ".test-logs/$name.log"
  summary+=("lane $name: exit $rc, $((took / 60)) min $((took % 60)) s, $(grep -E '^=+ .*(passed|failed|error).* in ' ".test-logs/$name.log" | tail -1 | tr -d '=')")
  [[ $rc -ne 0 && $status -eq 0 ]] && status=$rc
done
printf '%s\n' "${summary[@]}" >&2
exit "$status"
