#!/usr/bin/env bash
# The main job on a fresh machine: install what is needed, start local Kafka and Redis,
# run one worker, the API and the demo website, send simulated traffic, and keep running until Ctrl-C
# (or `bash deploy/local/run.sh stop` from another shell); then stop everything.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
RUN="$ROOT/var/run"
mkdir -p "$RUN"

stop_all() {
  for name in simulate demo api worker; do
    if [ -f "$RUN/$name.pid" ]; then
      pid=$(cat "$RUN/$name.pid")
      if kill -0 "$pid" 2>/dev/null; then
        echo "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$pid" 2>/dev/null || true
      fi
      rm -f "$RUN/$name.pid"
    fi
  done
  bash deploy/local/infra.sh stop || true
}

if [ "${1:-}" = "stop" ]; then
  # Ask the running run.sh to stop (its trap stops everything); clean up if it is gone.
  if [ -f "$RUN/run.pid" ] && kill -0 "$(cat "$RUN/run.pid")" 2>/dev/null; then
    pid=$(cat "$RUN/run.pid"); kill -TERM "$pid"
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.5; done
  fi
  stop_all; exit 0
fi
echo $$ >"$RUN/run.pid"

bash deploy/local/install.sh
bash deploy/local/infra.sh start
trap 'echo; stop_all' EXIT
trap 'exit 130' INT TERM

PS=".venv/bin/persona-stream"
API_PORT="${PERSONA_API_PORT:-8000}"
DEMO_PORT="${DEMO_PORT:-8100}"
# The demo site calls the API from its own origin.
export PERSONA_CORS_ORIGINS="${PERSONA_CORS_ORIGINS:-[\"http://127.0.0.1:$DEMO_PORT\"]}"
# Keys (README "Access"): with none given, this local engine runs with auth OFF, and says so.
if [ -z "${PERSONA_WRITE_KEYS:-}${PERSONA_READ_KEYS:-}${PERSONA_ADMIN_KEYS:-}" ] \
   && [ "${PERSONA_AUTH_DISABLED:-}" != "false" ]; then
  export PERSONA_AUTH_DISABLED=true
fi
AUTH_NOTE="keys required (PERSONA_WRITE_KEYS / PERSONA_READ_KEYS / PERSONA_ADMIN_KEYS)"
if [ "${PERSONA_AUTH_DISABLED:-}" = "true" ]; then
  AUTH_NOTE="AUTH DISABLED: no keys are checked (PERSONA_AUTH_DISABLED=true)"
  cat <<'WARN'

  ###########################################################################
  #  WARNING: AUTH IS DISABLED (PERSONA_AUTH_DISABLED=true).                #
  #  Anyone who reaches this API can read every visitor, export audiences   #
  #  and delete visitors. For local development only. To run with keys:    #
  #    PERSONA_WRITE_KEYS='["w"]' PERSONA_READ_KEYS='["r"]' \               #
  #    PERSONA_ADMIN_KEYS='["a"]' bash deploy/local/run.sh                  #
  ###########################################################################

WARN
fi
"$PS" topics
"$PS" worker >"$RUN/worker.log" 2>&1 & echo $! >"$RUN/worker.pid"
"$PS" api >"$RUN/api.log" 2>&1 & echo $! >"$RUN/api.pid"
"$PS" demo --port "$DEMO_PORT" --api-url "http://127.0.0.1:$API_PORT" >"$RUN/demo.log" 2>&1 &
echo $! >"$RUN/demo.pid"

echo "waiting for the API on 127.0.0.1:$API_PORT ..."
for _ in $(seq 1 120); do
  if curl -fs "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.5
done
curl -fs "http://127.0.0.1:$API_PORT/readyz" || { echo "API not ready; see $RUN/api.log"; exit 1; }
echo

echo "sending simulated traffic (logs: $RUN/*.log) ..."
# A burst of 300 visitors (their true personas in truth.csv), then a steady trickle.
"$PS" simulate --sink http --url "http://127.0.0.1:$API_PORT" --visitors 300 --seed 1 \
  --truth "$RUN/truth.csv" >"$RUN/simulate.log" 2>&1
"$PS" simulate --sink http --url "http://127.0.0.1:$API_PORT" --visitors "${SAMPLE_VISITORS:-20000}" \
  --seed 2 --rate "${SAMPLE_RATE:-200}" >>"$RUN/simulate.log" 2>&1 & echo $! >"$RUN/simulate.pid"

cat <<MSG

persona-stream is running:
  API        http://127.0.0.1:$API_PORT   (OpenAPI at /docs, live dashboard at /dashboard)
  access     $AUTH_NOTE
  demo site  http://127.0.0.1:$DEMO_PORT   (browse /docs, /pricing, ...: the banner follows your persona)
  a visitor  curl -s http://127.0.0.1:$API_PORT/v1/visitors/\$(sed -n 2p $RUN/truth.csv | cut -d, -f1)
  send one   curl -s -XPOST -H 'content-type: application/json' http://127.0.0.1:$API_PORT/v1/events \\
               -d '{"event_id":"e1","type":"page_view","visitor_id":"v1","ts":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","url":"https://example.com/pricing"}'
  logs       $RUN/worker.log $RUN/api.log $RUN/demo.log $RUN/simulate.log
Press Ctrl-C (or run: bash deploy/local/run.sh stop) to stop everything.
MSG

while true; do
  for name in worker api; do
    if ! kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then
      echo "$name exited; last lines of its log:"; tail -n 30 "$RUN/$name.log"; exit 1
    fi
  done
  sleep 2
done
