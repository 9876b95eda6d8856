#!/usr/bin/env bash
# The whole test suite on a fresh machine: install what is needed, start local Kafka
# and Redis (or reuse running ones), run lint, format check, types and every test,
# then stop what this script started. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

started=0
cleanup() {
  if [ "$started" = 1 ]; then bash deploy/local/infra.sh stop || true; fi
}
trap cleanup EXIT

bash deploy/local/install.sh
bash deploy/local/infra.sh start
started=1

echo "== ruff check";   .venv/bin/ruff check .
echo "== ruff format";  .venv/bin/ruff format --check .
echo "== mypy";         .venv/bin/mypy
echo "== pytest";       .venv/bin/pytest "$@"
