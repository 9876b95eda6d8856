#!/usr/bin/env bash
# The whole test suite on a fresh machine: install what is needed, start local Kafka
# and Redis (or reuse running ones), run lint, format check, types and every test,
# then stop what this script started. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

# Stop at the end only what this run started: a Kafka or Redis that was already up
# (e.g. shared by other engineers' runs) stays up.
started=()
cleanup() {
  local svc
  for svc in "${started[@]}"; do bash deploy/local/"$svc".sh stop || true; done
}
trap cleanup EXIT

bash deploy/local/install.sh
for svc in redis kafka; do
  if ! bash deploy/local/"$svc".sh status >/dev/null 2>&1; then started+=("$svc"); fi
  bash deploy/local/"$svc".sh start
done

echo "== ruff check";   .venv/bin/ruff check .
echo "== ruff format";  .venv/bin/ruff format --check .
echo "== mypy";         .venv/bin/mypy
echo "== pytest";       .venv/bin/pytest "$@"
