#!/bin/bash
# Entrypoint of local/fwv2-infra-kafka (docker/local/Dockerfile.infra): the environment contract of
# the apache/kafka image, on the jars the embedded stack caches from Maven Central. Every KAFKA_<NAME>
# variable becomes a server property (strip KAFKA_, then `___` -> `-`, `__` -> `_`, `_` -> `.`,
# lower case); CLUSTER_ID formats the storage on first start.
set -euo pipefail
conf=/tmp/kafka/server.properties
mkdir -p /tmp/kafka
: > "$conf"
while IFS='=' read -r name value; do
  case $name in
    KAFKA_HEAP_OPTS|KAFKA_JVM_OPTS|KAFKA_VERSION) continue ;;
    KAFKA_*) ;;
    *) continue ;;
  esac
  key="${name#KAFKA_}"
  key="${key//___/-}"; key="${key//__/@}"; key="${key//_/.}"; key="${key//@/_}"
  echo "${key,,}=${value}" >> "$conf"
done < <(env)
# shellcheck disable=SC2206  # KAFKA_HEAP_OPTS holds several JVM flags: splitting it into words is meant
java_cmd=(java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties -cp '/opt/kafka/libs/*')
data_dir="$(sed -n 's/^log\.dirs=//p' "$conf")"
if [[ ! -f "${data_dir:-/var/lib/kafka/data}/meta.properties" ]]; then
  : "${CLUSTER_ID:?CLUSTER_ID is needed to format the storage}"
  standalone=()
  grep -q '^controller\.quorum\.voters=' "$conf" || standalone=(--standalone)
  "${java_cmd[@]}" kafka.tools.StorageTool format "${standalone[@]}" -t "$CLUSTER_ID" -c "$conf"
fi
exec "${java_cmd[@]}" kafka.Kafka "$conf"
