#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest (unit, real llmgine, real Collector/Jaeger).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/system-deps.sh
# The real Collector, Jaeger and Prometheus the end-to-end tests run (built once, cached
# outside the repo).
echo "== collector:  $(bash collector/build.sh | tail -n 1)"
echo "== jaeger:     $(bash collector/build-jaeger.sh | tail -n 1)"
echo "== prometheus: $(bash collector/build-prometheus.sh | tail -n 1)"
# OpenTelemetry Weaver for the semantic-conventions tests (built once, cached outside the repo).
weaver=$(bash scripts/weaver.sh build | tail -n 1)
echo "== weaver:     $weaver"
PY=.venv/bin/python
echo "== ruff"; $PY -m ruff check llmgine_otel tests examples bench
echo "== mypy"; $PY -m mypy
echo "== pytest"
exec $PY -m pytest -q -p no:cacheprovider "$@"
