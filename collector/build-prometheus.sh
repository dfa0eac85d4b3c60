#!/usr/bin/env bash
# Build Prometheus (Apache-2.0) for the dashboard test (tests/e2e/test_metrics_dashboard.py):
# a real Prometheus scrapes the real Collector and runs every query of the bundled Grafana
# dashboard. Cached OUTSIDE the repository:
#
#   ${LLMGINE_OTEL_CACHE:-$HOME/.cache/llmgine-otel}/prometheus-<hash>/prometheus
#
# <hash> = first 16 hex digits of sha256(build-prometheus.sh) (the version is pinned below).
#
# Built as a Go tool inside a throwaway module (like build-jaeger.sh): Go module v0.316.0 is
# Prometheus v3.16.0 (module tags are v0.3MM.P for v3.MM.P). `-tags remove_all_sd` leaves out
# every service-discovery plugin (Kubernetes, clouds, ...): static scrape targets are all the
# test needs, and the build is much smaller. No web UI assets: the HTTP API is enough.
#
# Contract (same as build.sh): the LAST stdout line is the binary path; a cached binary is
# returned immediately; flock serialises concurrent callers; the build log lives next to the
# binary and its tail goes to stderr on failure (non-zero exit).
set -euo pipefail

PROMETHEUS_MODULE_VERSION="v0.316.0"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_ROOT="${LLMGINE_OTEL_CACHE:-$HOME/.cache/llmgine-otel}"
HASH="$(cat "$HERE/build-prometheus.sh" | sha256sum | cut -c1-16)"
DIR="$CACHE_ROOT/prometheus-$HASH"
BIN="$DIR/prometheus"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

log() { echo "[build-prometheus.sh] $*" >&2; }

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
log "building prometheus ($PROMETHEUS_MODULE_VERSION) in $MOD (several minutes on a small machine; log: $LOG)"
start=$(date +%s)
(
  cd "$MOD"
  go mod init llmgine-otel.local/prometheus-build
  go get -tool "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_MODULE_VERSION"
  go build -tags remove_all_sd -trimpath -ldflags="-s -w" -o "$BIN.tmp.$$" \
    github.com/prometheus/prometheus/cmd/prometheus
) >>"$LOG" 2>&1 || { rm -f "$BIN.tmp.$$"; fail "go build of prometheus failed"; }
mv -f "$BIN.tmp.$$" "$BIN"
log "built in $(( $(date +%s) - start ))s: $BIN ($(du -h "$BIN" | cut -f1))"
echo "$BIN"
