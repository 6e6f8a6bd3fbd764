#!/usr/bin/env bash
# kafka-topics.sh for librdkafka's tests that shell out to Kafka's own tool
# (test_kafka_topics: 0045, 0052, 0077): the same options, carried out by `strom topic`.
# Only what those tests use: --create/--alter/--delete, --topic, --partitions,
# --replication-factor, --config, --bootstrap-server. The runner puts this folder on
# KAFKA_PATH and names the strom binary in STROM_BIN.
set -euo pipefail
strom=${STROM_BIN:?STROM_BIN names the strom binary}
action="" topic="" partitions="" replicas="" bootstrap="" configs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --create|--alter|--delete) action=${1#--} ;;
    --topic) topic=$2; shift ;;
    --partitions) partitions=$2; shift ;;
    --replication-factor) replicas=$2; shift ;;
    --config) configs+=(--config "$2"); shift ;;
    --bootstrap-server) bootstrap=$2; shift ;;
    *) echo "kafka-topics.sh (strom): unsupported option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$topic" ] && [ -n "$bootstrap" ] || { echo "--topic and --bootstrap-server are required" >&2; exit 2; }
case "$action" in
  create)
    exec "$strom" topic create "$topic" -b "$bootstrap" \
      ${partitions:+--partitions "$partitions"} ${replicas:+--replicas "$replicas"} "${configs[@]}" ;;
  alter)
    [ -n "$partitions" ] || { echo "--alter needs --partitions" >&2; exit 2; }
    exec "$strom" topic add-partitions "$topic" --total "$partitions" -b "$bootstrap" ;;
  delete)
    exec "$strom" topic delete "$topic" -b "$bootstrap" ;;
  *) echo "one of --create, --alter, --delete is required" >&2; exit 2 ;;
esac
