"""Which Collector binary runs a config: found, cached, or built with Go.

Order: an explicit setting (``--binary`` / ``LLMGINE_OTELCOL_BIN``), the cached build of the
bundled distribution, ``otelcol-contrib`` / ``otelcol`` on PATH, a build with Go. A binary
is used only when it has every component the config names (``<binary> components``); an
explicit one that lacks some is an error saying which, never silently replaced.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["BinaryNotFound", "ResolvedBinary", "build_with_go", "bundled_dir",
           "cached_build_path", "missing_components", "required_components", "resolve"]

BIN_ENV = "LLMGINE_OTELCOL_BIN"
DIR_ENV = "LLMGINE_OTEL_COLLECTOR_DIR"
PATH_NAMES = ("otelcol-contrib", "otelcol")
CONTRIB_RELEASE = "0.161.0"
_KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")
# Pre-0.161 names a config may still use for components a binary lists under the new name.
_OLD_NAMES = {"otlphttp": "otlp_http", "loadbalancing": "load_balancing",
              "spanmetrics": "span_metrics"}
_PROGRESS_EVERY_S = 15.0


class BinaryNotFound(SystemExit):
    """No usable binary; the message lists what was tried and the options."""


@dataclass(frozen=True)
class ResolvedBinary:
    path: Path
    source: str
    """How it was found: ``LLMGINE_OTELCOL_BIN``, ``cached build``, ``PATH``, ``built now``."""


def bundled_dir() -> Path:
    """The Collector configs and build files shipped in this package (``llmgine_otel/
    collector``; in the repository a link to ``collector/``). ``LLMGINE_OTEL_COLLECTOR_DIR``
    overrides."""
    override = os.environ.get(DIR_ENV)
    here = Path(override) if override else Path(__file__).resolve().parents[1] / "collector"
    if not (here / "otelcol.yaml").is_file():
        raise SystemExit(f"llmgine-otel: no bundled collector configs at {here} (reinstall "
                         f"llmgine-otel, or set {DIR_ENV} to a folder holding otelcol.yaml)")
    return here


def cached_build_path() -> Path:
    """Where ``build.sh`` puts (or has put) the binary: the same cache key as the script,
    sha256(builder-config.yaml + build.sh), so a build made from the repository is found
    from an installed wheel and the other way round."""
    d = bundled_dir()
    digest = hashlib.sha256((d / "builder-config.yaml").read_bytes()
                            + (d / "build.sh").read_bytes()).hexdigest()[:16]
    root = os.environ.get("LLMGINE_OTEL_CACHE") or str(Path.home() / ".cache" / "llmgine-otel")
    return Path(root) / f"otelcol-{digest}" / "otelcol-llmgine"


def required_components(config: Path) -> dict[str, set[str]]:
    """Component types by kind (``exporters``: ``{"file", "otlp_grpc"}``) a config names."""
    doc = yaml.safe_load(config.read_text()) or {}
    return {kind: {str(key).split("/", 1)[0] for key in (doc.get(kind) or {})}
            for kind in _KINDS}


def _available(binary: Path) -> dict[str, set[str]] | None:
    """``<binary> components`` as types by kind; None when the binary cannot tell."""
    try:
        proc = subprocess.run([str(binary), "components"], capture_output=True, text=True,
                              timeout=30, check=False)
        doc = yaml.safe_load(proc.stdout) if proc.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, yaml.YAMLError):
        return None
    if not isinstance(doc, dict):
        return None
    return {kind: {str(c.get("name")) for c in (doc.get(kind) or []) if isinstance(c, dict)}
            for kind in _KINDS}


def missing_components(binary: Path, config: Path) -> list[str] | None:
    """``kind/type`` the config needs and the binary lacks ([] = none; None = unknown)."""
    have = _available(binary)
    if have is None:
        return None
    out = []
    for kind, types in required_components(config).items():
        for t in sorted(types):
            if t not in have[kind] and _OLD_NAMES.get(t) not in have[kind]:
                out.append(f"{kind[:-1]} {t}")
    return out


def build_with_go(out: Any = None) -> Path:
    """Run the bundled ``build.sh`` (Go), printing progress; the binary's path."""
    out = out or sys.stderr
    script = bundled_dir() / "build.sh"
    log = cached_build_path().parent / "build.log"
    print(f"llmgine-otel: building the Collector with Go ({script}); the first build takes "
          f"about 10 min of CPU; full log: {log}", file=out, flush=True)
    proc = subprocess.Popen(["bash", str(script)], stdout=subprocess.PIPE, text=True)
    start = time.monotonic()
    while True:
        try:
            stdout, _ = proc.communicate(timeout=_PROGRESS_EVERY_S)
            break
        except subprocess.TimeoutExpired:
            print(f"llmgine-otel: still building ({time.monotonic() - start:.0f}s): "
                  f"{_last_line(log)}", file=out, flush=True)
    lines = (stdout or "").strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"llmgine-otel: the Collector build failed (exit {proc.returncode}); "
                         f"see {log}")
    return Path(lines[-1])


def _last_line(log: Path) -> str:
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4096))
            tail = fh.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return "starting"
    return tail[-1][:160] if tail else "starting"


def resolve(config: Path, *, explicit: str | None = None, build: bool = True,
            out: Any = None) -> ResolvedBinary:
    """The binary to run ``config`` with (see the module docstring for the order)."""
    explicit = explicit or os.environ.get(BIN_ENV)
    if explicit:
        path = Path(shutil.which(explicit) or explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise SystemExit(f"llmgine-otel: {BIN_ENV}/--binary {explicit!r} is not an "
                             "executable file")
        missing = missing_components(path, config)
        if missing:
            raise SystemExit(f"llmgine-otel: {path} cannot run {config.name}: it lacks "
                             f"{', '.join(missing)}")
        return ResolvedBinary(path, f"{BIN_ENV}/--binary")
    tried: list[str] = []
    cached = cached_build_path()
    candidates = [(cached, "cached build")] if os.access(cached, os.X_OK) else []
    for name in PATH_NAMES:
        found = shutil.which(name)
        if found:
            candidates.append((Path(found), f"PATH ({name})"))
    for path, source in candidates:
        missing = missing_components(path, config)
        if not missing:
            return ResolvedBinary(path, source)
        tried.append(f"{source} {path}: lacks {', '.join(missing)}")
    if build and not os.access(cached, os.X_OK) and shutil.which("go"):
        built = build_with_go(out)
        missing = missing_components(built, config)
        if not missing:
            return ResolvedBinary(built, "built now")
        tried.append(f"the bundled distribution {built}: lacks {', '.join(missing)}")
    elif not os.access(cached, os.X_OK):
        tried.append(f"no cached build at {cached}" + ("" if build else " (build not allowed)"))
        if build:
            tried.append("no `go` on PATH to build one")
    raise BinaryNotFound(_no_binary_message(config, tried, can_build=not os.access(cached,
                                                                                  os.X_OK)))


def _no_binary_message(config: Path, tried: list[str], *, can_build: bool) -> str:
    lines = [f"llmgine-otel: no Collector binary that can run {config.name}.", "Tried:"]
    lines += [f"  - {t}" for t in tried]
    lines.append("Any one of these fixes it:")
    if can_build:
        lines.append(f"  - install Go >= 1.25 and run `llmgine-otel collector build` (about "
                     f"10 min of CPU once; cached under {cached_build_path().parent.parent})")
    lines += [
        f"  - put otelcol-contrib {CONTRIB_RELEASE} on PATH (release tarballs: "
        "https://github.com/open-telemetry/opentelemetry-collector-releases/releases)",
        f"  - point {BIN_ENV} (or --binary) at a Collector that has the components above",
        f"  - run the image otel/opentelemetry-collector-contrib:{CONTRIB_RELEASE} with this "
        "config (`llmgine-otel collector config > otelcol.yaml`; set "
        "LLMGINE_OTELCOL_GRPC_ENDPOINT=0.0.0.0:4317 inside the container)",
    ]
    return "\n".join(lines)
