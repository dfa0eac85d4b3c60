#!/usr/bin/env bash
# Build the otelcol-llmgine collector distribution from builder-config.yaml, reproducibly, and
# cache the binary OUTSIDE the repository:
#
#   ${LLMGINE_OTEL_CACHE:-$HOME/.cache/llmgine-otel}/otelcol-<hash>/otelcol-llmgine
#
# <hash> = first 16 hex digits of sha256(builder-config.yaml + build.sh), so editing either file
# produces a fresh build and never reuses a stale binary.
#
# Contract: the LAST line on stdout is the absolute path of the binary (nothing else is printed
# on stdout). If the cached binary exists the script prints the path and exits at once. Progress
# goes to stderr, the full build log to <cache dir>/build.log; on failure the tail of the log is
# printed to stderr and the exit status is non-zero. Concurrent callers are serialised with
# flock, so the distribution is built only once.
#
# Needs: Go (>= 1.25; tested with 1.26) and access to the Go module proxy, flock, sha256sum.
set -euo pipefail

BUILDER_VERSION="v0.161.0"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_ROOT="${LLMGINE_OTEL_CACHE:-$HOME/.cache/llmgine-otel}"
HASH="$(cat "$HERE/builder-config.yaml" "$HERE/build.sh" | sha256sum | cut -c1-16)"
DIR="$CACHE_ROOT/otelcol-$HASH"
BIN="$DIR/otelcol-llmgine"

# Fast path: already built.
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

log() { echo "[build.sh] $*" >&2; }

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
if ! flock -n 9; then
  log "another build holds $DIR/.lock; waiting for it"
  flock -w "${LLMGINE_OTEL_BUILD_LOCK_TIMEOUT:-3600}" 9 || { log "timed out waiting for the lock"; exit 1; }
fi
# The other caller may have finished the build while we waited.
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null 2>&1 || { log "go is not installed (see collector/README.md for the no-Go route)"; exit 1; }

LOG="$DIR/build.log"
: >"$LOG"
fail() {
  log "FAILED: $1 (full log: $LOG)"
  tail -n 60 "$LOG" >&2 || true
  exit 1
}

# Reproducibility: the builder already compiles with -trimpath -ldflags="-s -w" and CGO_ENABLED=0;
# do not stamp VCS info (the generated module is not a repository anyway) and do not let go
# switch toolchains behind our back.
export GOFLAGS="-buildvcs=false"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export CGO_ENABLED=0

# 1. The builder (ocb), installed into the cache via GOBIN, shared by all builds of this version.
TOOLS="$CACHE_ROOT/tools/builder-$BUILDER_VERSION"
BUILDER="$TOOLS/builder"
if [ ! -x "$BUILDER" ]; then
  mkdir -p "$TOOLS"
  (
    flock -w 900 8 || exit 1
    if [ ! -x "$BUILDER" ]; then
      log "installing go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION into $TOOLS"
      GOBIN="$TOOLS" go install "go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION"
    fi
  ) 8>"$TOOLS/.lock" >>"$LOG" 2>&1 || fail "could not install the collector builder"
fi

# 2. Generate + compile in the cache dir (output_path in the manifest is relative to the cwd).
WORK="$DIR/work"
rm -rf "$WORK"
mkdir -p "$WORK"
cp "$HERE/builder-config.yaml" "$WORK/builder-config.yaml"
log "building otelcol-llmgine in $WORK (this takes several minutes on a small machine; log: $LOG)"
start=$(date +%s)
(cd "$WORK" && "$BUILDER" --config builder-config.yaml) >>"$LOG" 2>&1 || fail "builder failed"
[ -x "$WORK/_build/otelcol-llmgine" ] || fail "builder did not produce _build/otelcol-llmgine"

# 3. Publish atomically, keep the generated sources (go.mod/go.sum) for inspection, drop the rest.
cp "$WORK/_build/go.mod" "$WORK/_build/go.sum" "$DIR/" 2>/dev/null || true
cp "$WORK/_build/otelcol-llmgine" "$BIN.tmp.$$"
mv -f "$BIN.tmp.$$" "$BIN"
rm -rf "$WORK/_build/otelcol-llmgine"
log "built in $(( $(date +%s) - start ))s: $BIN ($(du -h "$BIN" | cut -f1))"
echo "$BIN"
