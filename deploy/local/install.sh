#!/usr/bin/env bash
# Installs what the project needs on a bare machine; idempotent and quick when done before.
#   - Python virtualenv .venv with the pinned packages (re-installed when pyproject.toml changes)
#   - redis-server from Debian (only when not on PATH)
#   - prometheus and chromium from Debian (only when missing; used by integration tests)
#   - wrk from Debian (only when missing; bench/bench_api.py)
#   - Apache Kafka 3.9.1 jars from Maven Central into .cache/kafka/libs (only when missing or
#     when deploy/local/kafka/pom.xml changed)
# Works from any directory. Needs root (or sudo) only for apt-get.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
log() { printf '[install] %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }

# One install at a time (parallel test runs share .venv and .cache).
mkdir -p "$ROOT/.cache"
exec 9>"$ROOT/.cache/install.lock"
flock -w 900 9 || die "another install.sh holds .cache/install.lock for over 15 minutes"

# --- Python -------------------------------------------------------------------------------
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null 2>&1 || die "$PY not found (Python 3.11 is required)"
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv
fi
stamp=".venv/.pyproject.sha256"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x .venv/bin/persona-stream ]; then
  log "installing Python packages (pip install -e .[dev]) ..."
  t0=$(now_ms)
  if ! out=$(.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" 2>&1)
  then
    printf '%s\n' "$out" >&2
    die "pip install -e .[dev] failed (pip's output above)"
  fi
  echo "$want" >"$stamp"
  log "Python packages installed in $(( ($(now_ms) - t0) / 1000 )) s"
else
  log "Python packages up to date (pyproject.toml unchanged)"
fi

# --- Redis --------------------------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "redis-server is missing and installing it needs root"
    SUDO="sudo"
  fi
  redis_was_running=0
  pgrep -x redis-server >/dev/null 2>&1 && redis_was_running=1
  log "installing redis-server from Debian (apt-get) ..."
  $SUDO apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null \
    || die "apt-get install redis-server failed"
  # The package starts its own service on :6379 (with RDB persistence); deploy/local/redis.sh
  # would reuse it and could never stop it. Stop it: our scripts start and stop their own.
  if [ "$redis_was_running" -eq 0 ] && pgrep -x redis-server >/dev/null 2>&1; then
    log "stopping the redis-server service the package started (redis.sh runs its own)"
    if [ -d /run/systemd/system ]; then
      $SUDO systemctl stop redis-server || log "could not stop the redis-server service"
    else
      $SUDO service redis-server stop || log "could not stop the redis-server service"
    fi
  fi
fi
command -v redis-cli >/dev/null 2>&1 \
  || die "redis-cli is missing (it comes with redis-tools): apt-get install -y redis-tools"
log "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') present"

# --- Prometheus ---------------------------------------------------------------------------
# Debian's package (only when `prometheus` is not on PATH), for tests/integration/test_prometheus.py,
# which runs its own prometheus on a free port with its own config and storage dir. Without
# the recommended node exporter. If the package's service was not running before and apt
# started it in this run, it is stopped again (nothing of ours uses it; it would hold :9090).
if ! command -v prometheus >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "prometheus is missing and installing it needs root"
    SUDO="sudo"
  fi
  was_running=0
  pgrep -x prometheus >/dev/null 2>&1 && was_running=1
  log "installing prometheus from Debian (apt-get) ..."
  t0=$(now_ms)
  $SUDO apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      -o DPkg::Lock::Timeout=600 prometheus >/dev/null \
    || die "apt-get install prometheus failed"
  log "prometheus installed in $(( ($(now_ms) - t0) / 1000 )) s"
  if [ "$was_running" -eq 0 ] && pgrep -x prometheus >/dev/null 2>&1; then
    log "stopping the prometheus service the package started (tests run their own)"
    if [ -d /run/systemd/system ]; then
      $SUDO systemctl stop prometheus || log "could not stop the prometheus service"
    else
      $SUDO service prometheus stop || log "could not stop the prometheus service"
    fi
  fi
fi
command -v prometheus >/dev/null 2>&1 || die "prometheus is not on PATH after installing it"
log "prometheus $(prometheus --version 2>&1 | sed -n '1s/^prometheus, version \([^ ]*\).*/\1/p') present"

# --- Chromium -----------------------------------------------------------------------------
# Debian's package (only when /usr/bin/chromium is missing), for tests/integration/test_browser.py,
# which drives it headless through Playwright (no browser download: Playwright is pointed at
# /usr/bin/chromium). Without recommends (no desktop integration).
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "chromium is missing and installing it needs root"
    SUDO="sudo"
  fi
  log "installing chromium from Debian (apt-get) ..."
  t0=$(now_ms)
  $SUDO apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      -o DPkg::Lock::Timeout=600 chromium fonts-dejavu-core >/dev/null \
    || die "apt-get install chromium failed"
  log "chromium installed in $(( ($(now_ms) - t0) / 1000 )) s"
fi
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium is missing after installing it"
log "$(/usr/bin/chromium --version 2>/dev/null | head -1 || echo chromium) present"

# --- wrk ----------------------------------------------------------------------------------
# Debian's HTTP load generator (only when missing), for bench/bench_api.py.
if ! command -v wrk >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "wrk is missing and installing it needs root"
    SUDO="sudo"
  fi
  log "installing wrk from Debian (apt-get) ..."
  $SUDO apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      -o DPkg::Lock::Timeout=600 wrk >/dev/null \
    || die "apt-get install wrk failed"
fi
command -v wrk >/dev/null 2>&1 || die "wrk is not on PATH after installing it"
log "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2) present"

# --- Kafka --------------------------------------------------------------------------------
KAFKA_VERSION=3.9.1
POM="$ROOT/deploy/local/kafka/pom.xml"
LIBS="$ROOT/.cache/kafka/libs"
MARK="$LIBS/.complete"
pom_sum="$(sha256sum "$POM" | cut -d' ' -f1)"
if [ -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] && [ -f "$MARK" ] && [ "$(cat "$MARK")" = "$pom_sum" ]
then
  log "Kafka $KAFKA_VERSION present in .cache/kafka/libs ($(find "$LIBS" -name '*.jar' | wc -l) jars)"
else
  command -v java >/dev/null 2>&1 || die "java is required to run Kafka (Java 17)"
  command -v mvn >/dev/null 2>&1 || die "mvn (Maven) is required to install Kafka"
  log "downloading Apache Kafka $KAFKA_VERSION from Maven Central into .cache/kafka/libs ..."
  tmp="$LIBS.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  t0=$(now_ms)
  # Full plugin coordinates: with the bare `dependency:` prefix an unreachable Maven Central
  # shows up as a misleading "No plugin found for prefix 'dependency'".
  if ! out=$(mvn -q -B -Dstyle.color=never -f "$POM" \
      org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1); then
    rm -rf "$tmp"
    printf '%s\n' "$out" | sed 's/\x1b\[[0-9;]*m//g' >&2
    die "Maven could not fetch Kafka $KAFKA_VERSION from Maven Central (Maven's error above)"
  fi
  [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || { rm -rf "$tmp"; die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing"; }
  echo "$pom_sum" >"$tmp/.complete"
  rm -rf "$LIBS"; mv "$tmp" "$LIBS"
  log "Kafka $KAFKA_VERSION installed in $(( ($(now_ms) - t0) / 1000 )) s ($(find "$LIBS" -name '*.jar' | wc -l) jars, $(du -sh "$LIBS" | cut -f1))"
fi
