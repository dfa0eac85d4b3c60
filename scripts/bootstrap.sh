#!/usr/bin/env bash
# Create .venv (Python 3.12: the real llmgine 0.0.1 needs it) with this package and its
# test dependencies. Idempotent: skips the install when pyproject.toml has not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  for cand in "${LLMGINE_OTEL_PYTHON:-}" python3.12 "$(pyenv prefix 3.12 2>/dev/null)/bin/python3" \
              "$(pyenv prefix 3.12.1 2>/dev/null)/bin/python3" /usr/bin/python3.12; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ]; then
  PY=$(find_python) || { echo "bootstrap: Python 3.12 not found (pyenv install 3.12, or set LLMGINE_OTEL_PYTHON)" >&2; exit 1; }
  "$PY" -m venv .venv
fi
stamp=.venv/.llmgine-otel-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[llmgine,cost,test]'
  # opentelemetry-instrumentation-aiohttp-client's newest release (0.66b1) pins
  # opentelemetry-instrumentation==0.66b1 and semantic-conventions==0.66b1, one beta behind
  # the SDK 1.45.2 stack above; its code runs on 0.66b2. --no-deps keeps the stack whole.
  .venv/bin/python -m pip install -q --no-deps 'opentelemetry-instrumentation-aiohttp-client==0.66b1'
  echo "$want" > "$stamp"
fi
