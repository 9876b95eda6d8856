#!/usr/bin/env bash
# Local Apache Kafka 3.9.1 in KRaft mode (one combined broker + controller) on
# 127.0.0.1:${PERSONA_KAFKA_PORT:-9092}: start | stop | status | wait.
# Storage is formatted once under var/; a broker that already answers is reused;
# only a broker started by this script is stopped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${PERSONA_KAFKA_PORT:-9092}"
CPORT="${PERSONA_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
DIR="${PERSONA_KAFKA_DIR:-$ROOT/var/kafka-$PORT}"
HEAP="${PERSONA_KAFKA_HEAP:-512m}"
LIBS="$ROOT/.cache/kafka/libs"
PID="$DIR/kafka.pid"
PY="$ROOT/.venv/bin/python"
log() { printf '[kafka] %s\n' "$*"; }
ours() { [ -f "$PID" ] && kill -0 "$(cat "$PID")" 2>/dev/null; }

# Ready = the broker answers a metadata request (not merely an open port).
answers() {
  "$PY" -W ignore - "$PORT" <<'PYEOF' >/dev/null 2>&1
import sys
from kafka import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{sys.argv[1]}",
                         request_timeout_ms=3000)
try:
    assert admin.describe_cluster()["brokers"]
finally:
    admin.close()
PYEOF
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

wait_ready() {
  local timeout="${1:-60}" deadline=$(( $(date +%s) + ${1:-60} ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if [ -f "$PID" ] && ! ours; then
      log "broker process exited; last lines of $DIR/server.log:" >&2
      tail -n 30 "$DIR/server.log" >&2 || true
      return 1
    fi
    if port_open && answers; then return 0; fi
    sleep 0.3
  done
  log "no metadata from 127.0.0.1:$PORT after ${timeout}s; see $DIR/server.log" >&2
  return 1
}

write_config() {
  mkdir -p "$DIR/data"
  cat >"$DIR/server.properties" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DIR/data
num.partitions=4
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=24
log.segment.bytes=67108864
CONF
  cat >"$DIR/log4j.properties" <<CONF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$DIR/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
CONF
}

java_run() {
  java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$DIR/log4j.properties" -cp "$LIBS/*" "$@"
}

case "${1:-status}" in
  start)
    if port_open && answers; then log "reusing the broker already answering on 127.0.0.1:$PORT"; exit 0; fi
    if ours; then log "broker process $(cat "$PID") is starting; waiting"; wait_ready 60; exit 0; fi
    [ -f "$LIBS/.complete" ] || { log "Kafka is not installed; run deploy/local/install.sh" >&2; exit 1; }
    write_config
    if [ ! -f "$DIR/data/meta.properties" ]; then
      cluster_id="$(java_run kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
      java_run kafka.tools.StorageTool format -t "$cluster_id" -c "$DIR/server.properties" >/dev/null
      log "formatted KRaft storage in $DIR/data (cluster $cluster_id)"
    fi
    start=$(date +%s%N)
    nohup java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
      -Dlog4j.configuration="file:$DIR/log4j.properties" -cp "$LIBS/*" \
      kafka.Kafka "$DIR/server.properties" >"$DIR/stdout.log" 2>&1 &
    echo $! >"$PID"
    wait_ready 90
    log "broker ready on 127.0.0.1:$PORT in $(( ($(date +%s%N) - start) / 1000000 )) ms (heap $HEAP, logs $DIR/server.log)"
    ;;
  stop)
    if ours; then
      pid="$(cat "$PID")"
      kill -TERM "$pid"
      for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then log "no clean shutdown in 30s; killing"; kill -KILL "$pid"; fi
      rm -f "$PID"; log "stopped"
    else
      log "no broker started by these scripts on port $PORT; nothing to stop"
    fi
    ;;
  status) if port_open && answers; then log "answering on 127.0.0.1:$PORT"; else log "down"; exit 1; fi ;;
  wait) wait_ready "${2:-60}" ;;
  *) echo "usage: $0 start|stop|status|wait" >&2; exit 2 ;;
esac
