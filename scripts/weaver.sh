#!/usr/bin/env bash
# OpenTelemetry Weaver (the semantic-conventions tool) for this repository's registry,
# conventions/registry. Weaver 0.25.1 is not on crates.io: it is built from the source tarball
# in the shared tools folder, once, and cached outside the repository.
#
#   bash scripts/weaver.sh build             # build Weaver and unpack the conventions (cached);
#                                            # the last line printed is the weaver binary
#   bash scripts/weaver.sh check             # weaver registry check on conventions/registry
#   bash scripts/weaver.sh live-check ARGS   # weaver registry live-check -r conventions/registry ARGS
#                                            # (give absolute paths in ARGS: Weaver runs elsewhere)
#
# Inputs, in $LLMGINE_WEAVER_TOOLS (default /work/shared/tools/weaver):
#   build-weaver.sh + weaver-src-<rev>.tar.gz   Weaver's source; the script builds it (cargo,
#                                               crates.io; ~13 min on 2 cores) into
#                                               ${LLMGINE_OTEL_CACHE:-~/.cache/llmgine-otel}/weaver-<rev>/
#   semconv-model-v1.41.0.tar.gz                the OpenTelemetry conventions' model/ v1.41.0,
#                                               with a manifest (name `otel`)
# The model is unpacked into <cache>/semconv-<sha256 of the tarball>/semconv-v1.41.0/model, and
# Weaver runs in <cache>/semconv-<sha>/, where conventions/registry/manifest.yaml's dependency
# path `semconv-v1.41.0/model` points. The tarball's manifest.yaml uses the deprecated v1
# syntax (semconv_version + schema_base_url: a warning on every check); it is replaced by the
# same registry's manifest in the current syntax (schema_url
# https://opentelemetry.io/schemas/1.41.0, the conventions' published schema URL).
# LLMGINE_WEAVER_BIN uses a prebuilt weaver instead.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${LLMGINE_WEAVER_TOOLS:-/work/shared/tools/weaver}"
CACHE="${LLMGINE_OTEL_CACHE:-$HOME/.cache/llmgine-otel}"
MODEL_TGZ="$TOOLS/semconv-model-v1.41.0.tar.gz"

die() { echo "weaver.sh: $*" >&2; exit 1; }
[ -d "$TOOLS" ] || die "the Weaver tools folder $TOOLS is missing: it should hold \
build-weaver.sh, weaver-src-*.tar.gz and semconv-model-v1.41.0.tar.gz (see this script's \
header); set LLMGINE_WEAVER_TOOLS to where they are"

weaver_bin() {
  if [ -n "${LLMGINE_WEAVER_BIN:-}" ]; then
    [ -x "$LLMGINE_WEAVER_BIN" ] || die "LLMGINE_WEAVER_BIN=$LLMGINE_WEAVER_BIN is not an executable file"
    echo "$LLMGINE_WEAVER_BIN"; return
  fi
  [ -x "$TOOLS/build-weaver.sh" ] || die "no Weaver build script at $TOOLS/build-weaver.sh: \
the Weaver source and conventions tarballs are expected in $TOOLS (set LLMGINE_WEAVER_TOOLS \
to the folder holding build-weaver.sh, weaver-src-*.tar.gz and semconv-model-v1.41.0.tar.gz)"
  local bin
  bin=$(LLMGINE_OTEL_CACHE="$CACHE" bash "$TOOLS/build-weaver.sh" | tail -n 1)
  [ -x "$bin" ] || die "build-weaver.sh printed '$bin', which is not an executable file"
  echo "$bin"
}

# The folder Weaver runs in (the conventions unpacked below it, once per tarball content).
workdir() {
  [ -f "$MODEL_TGZ" ] || die "no conventions model at $MODEL_TGZ (set LLMGINE_WEAVER_TOOLS)"
  local key dir
  key=$(sha256sum "$MODEL_TGZ" | cut -c1-16)
  dir="$CACHE/semconv-$key-m2"  # -m2: with the rewritten manifest
  if [ ! -f "$dir/semconv-v1.41.0/model/manifest.yaml" ]; then
    mkdir -p "$CACHE"
    local tmp
    tmp=$(mktemp -d "$CACHE/.semconv-XXXXXX")
    mkdir -p "$tmp/semconv-v1.41.0"
    tar -xzf "$MODEL_TGZ" -C "$tmp/semconv-v1.41.0"
    [ -f "$tmp/semconv-v1.41.0/model/manifest.yaml" ] || die "$MODEL_TGZ holds no model/manifest.yaml"
    printf '%s\n' "schema_url: https://opentelemetry.io/schemas/1.41.0" \
      "description: OpenTelemetry Semantic Conventions" "stability: development" \
      > "$tmp/semconv-v1.41.0/model/manifest.yaml"
    rm -rf "$dir"; mv "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"  # another run may have won
  fi
  echo "$dir"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  build)
    dir=$(workdir); bin=$(weaver_bin)
    echo "conventions: $dir/semconv-v1.41.0/model"
    echo "$bin" ;;
  check)
    dir=$(workdir); bin=$(weaver_bin)
    cd "$dir" && exec "$bin" registry check -r "$REPO/conventions/registry" "$@" ;;
  live-check)
    dir=$(workdir); bin=$(weaver_bin)
    cd "$dir" && exec "$bin" registry live-check -r "$REPO/conventions/registry" "$@" ;;
  *)
    die "usage: bash scripts/weaver.sh build|check|live-check [weaver args]" ;;
esac
