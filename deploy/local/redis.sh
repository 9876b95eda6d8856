#!/usr/bin/env bash
# Local Redis on 127.0.0.1:${PERSONA_REDIS_PORT:-6379}: start | stop | status | wait.
# Reuses a Redis that already answers there; stops only the one it started.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${PERSONA_REDIS_PORT:-6379}"
DIR="${PERSONA_REDIS_DIR:-$ROOT/var/redis-$PORT}"
PID="$DIR/redis.pid"
log() { printf '[redis] %s\n' "$*"; }
answers() { redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; }
ours() { [ -f "$PID" ] && kill -0 "$(cat "$PID")" 2>/dev/null; }

wait_ready() {
  local timeout="${1:-30}" i
  for ((i = 0; i < timeout * 10; i++)); do answers && return 0; sleep 0.1; done
  log "not answering on 127.0.0.1:$PORT after ${timeout}s; see $DIR/redis.log" >&2
  return 1
}

case "${1:-status}" in
  start)
    if answers; then log "reusing Redis already answering on 127.0.0.1:$PORT"; exit 0; fi
    mkdir -p "$DIR"
    start=$(date +%s%N)
    redis-server --bind 127.0.0.1 --port "$PORT" --daemonize yes --pidfile "$PID" \
      --logfile "$DIR/redis.log" --dir "$DIR" --save "" --appendonly no
    wait_ready 30
    log "started on 127.0.0.1:$PORT in $(( ($(date +%s%N) - start) / 1000000 )) ms"
    ;;
  stop)
    if ours; then
      redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || kill "$(cat "$PID")" || true
      for _ in $(seq 1 50); do ours || break; sleep 0.1; done
      rm -f "$PID"; log "stopped"
    else
      log "no Redis started by these scripts on port $PORT; nothing to stop"
    fi
    ;;
  status) if answers; then log "answering on 127.0.0.1:$PORT"; else log "down"; exit 1; fi ;;
  wait) wait_ready "${2:-30}" ;;
  *) echo "usage: $0 start|stop|status|wait" >&2; exit 2 ;;
esac
