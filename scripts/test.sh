#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest (unit, real llmgine, real Collector/Jaeger)
# on Python 3.12 (the fast paths), and the suite's core on Python 3.13 (the public API path).
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
if [ $# -gt 0 ]; then  # a selection: Python 3.12 only
  exec $PY -m pytest -q -p no:cacheprovider "$@"
fi
echo "== pytest (Python 3.12)"
status=0
$PY -m pytest -q -p no:cacheprovider || status=$?
# The core on Python 3.13, on the public API path (LLMGINE_OTEL_PUBLIC_PATH=true: no SDK
# private names; llmgine_otel/fast_paths.py): everything that runs this package's code in the
# interpreter (mapping, translator, pipeline, encoders, exporters, CLI: tests/unit,
# tests/files), the real llmgine 0.0.1 with litellm and the zero-code start (tests/llmgine),
# the reliability targets against the real Collector (all but the 120 s outage and the
# 1,000,000-event memory run, which pin the in-memory queue's bound the public path shares),
# and every standard OTEL_* switch against the real Collector (the disk buffer sends OTLP/gRPC
# through its own transport on this path).
# The 3.12 run above is the fast path (tests of a fast path itself pin it on either way).
if [ "${LLMGINE_OTEL_SKIP_PY313:-}" != "1" ]; then
  echo "== pytest core (Python 3.13, public API path)"
  LLMGINE_OTEL_PUBLIC_PATH=true LLMGINE_RELIABILITY_OUTAGES=30 .venv313/bin/python -m pytest \
    -q -p no:cacheprovider tests/unit tests/files tests/llmgine tests/reliability \
    tests/e2e/test_otel_switches.py -k "not memory" || status=$?
fi
exit "$status"
