#!/usr/bin/env bash
# Local Redis from Debian's redis-server.
#
#   bash deploy/local/redis.sh start|stop|status|wait [timeout_s]
#
#   PERSONA_REDIS_PORT  port on 127.0.0.1 (default 6379)
#   PERSONA_REDIS_DIR   pid file, log, working dir and the append-only file (default
#                       var/redis, or var/redis-<port> for a non-default port)
#   PERSONA_REDIS_APPENDFSYNC  AOF fsync policy: everysec (default) | always | no
#
# start: reuses a Redis that already answers PING on the port; otherwise starts one
# (daemonized, durable: appendonly yes, RDB snapshots off) and waits for PONG. The visitor
# states live in Redis (README, "Durability"): a restart replays the AOF in $DIR.
# stop: only the Redis this script started (pid file + command line check), with
# `redis-cli shutdown nosave` (the AOF is flushed and fsynced on shutdown).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${PERSONA_REDIS_PORT:-6379}"
if [ "$PORT" = 6379 ]; then DEFAULT_DIR="$ROOT/var/redis"; else DEFAULT_DIR="$ROOT/var/redis-$PORT"; fi
DIR="${PERSONA_REDIS_DIR:-$DEFAULT_DIR}"
PIDF="$DIR/redis.pid"
log() { printf '[redis] %s\n' "$*"; }
err() { printf '[redis] ERROR: %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }
# A process that exited but was not reaped yet (zombie) counts as gone.
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }

need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  err "$1 not found; run deploy/local/install.sh (redis-server and redis-tools from Debian)"
  exit 1
}

answers() { redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; }

our_pid() {
  local pid
  [ -f "$PIDF" ] || return 1
  pid="$(cat "$PIDF" 2>/dev/null)" || return 1
  [ -n "$pid" ] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE "redis-server .*:$PORT( |$)" || return 1
  echo "$pid"
}

wait_ready() {
  local timeout="$1" i
  for ((i = 0; i < timeout * 20; i++)); do answers && return 0; sleep 0.05; done
  err "no PONG from 127.0.0.1:$PORT after ${timeout}s; last lines of $DIR/redis.log:"
  tail -n 20 "$DIR/redis.log" >&2 2>/dev/null || true
  return 1
}

do_start() {
  local t0
  if answers; then log "reusing the Redis already answering on 127.0.0.1:$PORT"; return 0; fi
  need redis-server
  mkdir -p "$DIR"
  rm -f "$PIDF"
  t0=$(now_ms)
  redis-server --bind 127.0.0.1 --port "$PORT" --daemonize yes --pidfile "$PIDF" \
    --logfile "$DIR/redis.log" --dir "$DIR" --save "" \
    --appendonly yes --appendfsync "${PERSONA_REDIS_APPENDFSYNC:-everysec}" \
    --aof-load-truncated yes --aof-use-rdb-preamble yes 9>&- \
    || { err "redis-server failed to start; see $DIR/redis.log"; return 1; }
  wait_ready 120  # loading a large AOF takes a while
  log "started on 127.0.0.1:$PORT in $(( $(now_ms) - t0 )) ms (pid $(cat "$PIDF" 2>/dev/null), log $DIR/redis.log)"
}

do_stop() {
  local pid t0 i
  if ! pid="$(our_pid)"; then
    rm -f "$PIDF"
    if answers; then
      log "the Redis on 127.0.0.1:$PORT was not started by these scripts; leaving it running"
    else
      log "no Redis started by these scripts on 127.0.0.1:$PORT; nothing to stop"
    fi
    return 0
  fi
  t0=$(now_ms)
  redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then
    log "no clean shutdown within 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDF"
  log "stopped in $(( $(now_ms) - t0 )) ms"
}

do_status() {
  local pid
  if answers; then
    if pid="$(our_pid)"; then
      log "up on 127.0.0.1:$PORT (pid $pid, started by these scripts, dir $DIR)"
    else
      log "up on 127.0.0.1:$PORT (not started by these scripts)"
    fi
  else
    log "down on 127.0.0.1:$PORT"; return 1
  fi
}

need redis-cli
cmd="${1:-status}"
case "$cmd" in
  start | stop)
    mkdir -p "$DIR"
    exec 9>"$DIR/.lock"
    flock -w 60 9 || { err "another redis.sh holds $DIR/.lock"; exit 1; }
    "do_$cmd"
    ;;
  status) do_status ;;
  wait)
    t="${2:-30}"
    if wait_ready "$t"; then log "ready on 127.0.0.1:$PORT"; else exit 1; fi
    ;;
  *) echo "usage: $0 start|stop|status|wait [timeout_s]" >&2; exit 2 ;;
esac
