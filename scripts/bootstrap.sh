#!/usr/bin/env bash
# Create the virtual environments with this package (editable) and its test dependencies:
# .venv on Python 3.12 (everything runs there) and .venv313 on Python 3.13 (the suite's core
# runs there too, see scripts/test.sh). The real llmgine 0.0.1 needs Python >= 3.12.
# Idempotent: skips the install when pyproject.toml has not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {  # find_python 3.12 [override]
  local want=$1 override=${2:-}
  for cand in "$override" "python$want" "$(pyenv prefix "$want" 2>/dev/null)/bin/python3" \
              "$(pyenv prefix "$want.1" 2>/dev/null)/bin/python3" \
              "$(pyenv prefix "$want.0" 2>/dev/null)/bin/python3" "/usr/bin/python$want"; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import sys; sys.exit(f'{sys.version_info[0]}.{sys.version_info[1]}' != '$want')" 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  return 1
}

make_venv() {  # make_venv DIR VERSION [python override]
  local dir=$1 version=$2 py
  if [ ! -x "$dir/bin/python" ]; then
    py=$(find_python "$version" "${3:-}") || {
      echo "bootstrap: Python $version not found (pyenv install $version, or set LLMGINE_OTEL_PYTHON / LLMGINE_OTEL_PYTHON313)" >&2; exit 1; }
    "$py" -m venv "$dir"
  fi
  local stamp=$dir/.llmgine-otel-installed want
  want=$(sha256sum pyproject.toml | cut -c1-16)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$dir/bin/python" -m pip install -q --upgrade pip
    "$dir/bin/python" -m pip install -q -e '.[llmgine,cost,test]'
    # opentelemetry-instrumentation-aiohttp-client's newest release (0.66b1) pins
    # opentelemetry-instrumentation==0.66b1 and semantic-conventions==0.66b1, one beta behind
    # the SDK 1.45.2 stack above; its code runs on 0.66b2. --no-deps keeps the stack whole.
    "$dir/bin/python" -m pip install -q --no-deps 'opentelemetry-instrumentation-aiohttp-client==0.66b1'
    echo "$want" > "$stamp"
  fi
}

make_venv .venv 3.12 "${LLMGINE_OTEL_PYTHON:-}"
if [ "${LLMGINE_OTEL_SKIP_PY313:-}" != "1" ]; then
  make_venv .venv313 3.13 "${LLMGINE_OTEL_PYTHON313:-}"
fi
