#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest (unit, real llmgine, real Collector/Jaeger).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/system-deps.sh
PY=.venv/bin/python
echo "== ruff"; $PY -m ruff check llmgine_otel tests examples bench
echo "== mypy"; $PY -m mypy
echo "== pytest"
exec $PY -m pytest -q -p no:cacheprovider "$@"
