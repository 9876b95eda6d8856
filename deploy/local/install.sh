#!/usr/bin/env bash
# Installs what the project needs on a bare machine; idempotent and quick when done before.
#   - Python virtualenv .venv with the pinned packages (re-installed when pyproject.toml changes)
#   - redis-server from Debian (only when not on PATH)
#   - Apache Kafka 3.9.1 jars from Maven Central into .cache/kafka/libs (only when missing)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
log() { printf '[install] %s\n' "$*"; }

# --- Python -------------------------------------------------------------------------------
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($PY --version 2>&1)"
  "$PY" -m venv .venv
fi
stamp=".venv/.pyproject.sha256"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing Python packages (pip install -e .[dev])"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  echo "$want" >"$stamp"
else
  log "Python packages up to date"
fi

# --- Redis --------------------------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  log "installing redis-server from Debian"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
log "redis: $(redis-server --version | cut -d' ' -f3)"

# --- Kafka --------------------------------------------------------------------------------
LIBS="$ROOT/.cache/kafka/libs"
if [ ! -f "$LIBS/kafka_2.13-3.9.1.jar" ] || [ ! -f "$LIBS/.complete" ]; then
  command -v mvn >/dev/null || { echo "Maven (mvn) is required to install Kafka" >&2; exit 1; }
  command -v java >/dev/null || { echo "Java 17 is required to run Kafka" >&2; exit 1; }
  log "downloading Apache Kafka 3.9.1 from Maven Central into .cache/kafka/libs"
  rm -rf "$LIBS"; mkdir -p "$LIBS"
  start=$(date +%s)
  if ! out=$(mvn -q -B -f deploy/local/kafka/pom.xml dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIBS" 2>&1); then
    echo "$out" >&2
    echo "[install] Maven could not fetch Kafka (error above)" >&2
    exit 1
  fi
  touch "$LIBS/.complete"
  log "Kafka jars installed in $(( $(date +%s) - start ))s ($(ls "$LIBS" | wc -l) files)"
else
  log "Kafka 3.9.1 jars present"
fi
