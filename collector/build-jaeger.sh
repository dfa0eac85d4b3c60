#!/usr/bin/env bash
# Build Jaeger v2 (all-in-one, itself an OpenTelemetry Collector distribution) for end-to-end
# tests and local use, and cache it OUTSIDE the repository:
#
#   ${LLMGINE_OTEL_CACHE:-$HOME/.cache/llmgine-otel}/jaeger-<hash>/jaeger
#
# <hash> = first 16 hex digits of sha256(build-jaeger.sh) (the version is pinned below).
#
# `go install github.com/jaegertracing/jaeger/cmd/jaeger@v2.x` cannot work (the module path has
# no /v2 suffix), so we build it as a Go tool inside a throwaway module in the cache dir:
# v1.76.0 of the Go module is the same commit as Jaeger v2.13.0.
#
# Contract (same as build.sh): the LAST stdout line is the binary path; a cached binary is
# returned immediately; flock serialises concurrent callers; the build log lives next to the
# binary and its tail goes to stderr on failure (non-zero exit).
set -euo pipefail

JAEGER_MODULE_VERSION="v1.76.0"   # == Jaeger v2.13.0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_ROOT="${LLMGINE_OTEL_CACHE:-$HOME/.cache/llmgine-otel}"
HASH="$(cat "$HERE/build-jaeger.sh" | sha256sum | cut -c1-16)"
DIR="$CACHE_ROOT/jaeger-$HASH"
BIN="$DIR/jaeger"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

log() { echo "[build-jaeger.sh] $*" >&2; }

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
if ! flock -n 9; then
  log "another build holds $DIR/.lock; waiting for it"
  flock -w "${LLMGINE_OTEL_BUILD_LOCK_TIMEOUT:-3600}" 9 || { log "timed out waiting for the lock"; exit 1; }
fi
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null 2>&1 || { log "go is not installed"; exit 1; }

LOG="$DIR/build.log"
: >"$LOG"
fail() {
  log "FAILED: $1 (full log: $LOG)"
  tail -n 60 "$LOG" >&2 || true
  exit 1
}

export GOFLAGS="-buildvcs=false"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export CGO_ENABLED=0

MOD="$DIR/mod"
rm -rf "$MOD"
mkdir -p "$MOD"
log "building jaeger ($JAEGER_MODULE_VERSION) in $MOD (several minutes on a small machine; log: $LOG)"
start=$(date +%s)
(
  cd "$MOD"
  go mod init llmgine-otel.local/jaeger-build
  go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_MODULE_VERSION"
  go build -trimpath -ldflags="-s -w" -o "$BIN.tmp.$$" github.com/jaegertracing/jaeger/cmd/jaeger
) >>"$LOG" 2>&1 || { rm -f "$BIN.tmp.$$"; fail "go build of jaeger failed"; }
mv -f "$BIN.tmp.$$" "$BIN"
log "built in $(( $(date +%s) - start ))s: $BIN ($(du -h "$BIN" | cut -f1))"
echo "$BIN"
