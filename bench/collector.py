"""Starting the bundled collector (otelcol-llmgine) on free ports for a benchmark.

The binary comes from ``bash collector/build.sh`` (its last stdout line is the path). We never
start a build from here: when the cached binary for the current build inputs is missing we
fall back to any cached ``otelcol-*/otelcol-llmgine`` and otherwise report it missing.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("LLMGINE_OTEL_CACHE", Path.home() / ".cache" / "llmgine-otel"))


def find_binary() -> str | None:
    """The cached collector binary, without building it."""
    h = hashlib.sha256()
    for name in ("builder-config.yaml", "build.sh"):
        p = ROOT / "collector" / name
        if p.exists():
            h.update(p.read_bytes())
    exact = CACHE / f"otelcol-{h.hexdigest()[:16]}" / "otelcol-llmgine"
    if os.access(exact, os.X_OK):
        return str(exact)
    found = sorted(glob.glob(str(CACHE / "otelcol-*" / "otelcol-llmgine")),
                   key=os.path.getmtime, reverse=True)
    return next((f for f in found if os.access(f, os.X_OK)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_endpoint() -> str:
    """An endpoint nobody listens on (the 'collector down' case)."""
    return f"http://127.0.0.1:{free_port()}"


@contextlib.contextmanager
def running_collector() -> Iterator[tuple[str, int]]:
    """Start the collector with collector/otelcol.yaml on free ports; yields (endpoint, pid)."""
    with running_collector_with_file() as (endpoint, pid, _file):
        yield endpoint, pid


@contextlib.contextmanager
def running_collector_with_file() -> Iterator[tuple[str, int, str]]:
    """:func:`running_collector`, also yielding the OTLP-JSON file the collector writes
    everything it receives to (one export request per line; deleted afterwards)."""
    with _running() as (grpc_endpoint, _http, pid, file):
        yield grpc_endpoint, pid, file


@contextlib.contextmanager
def running_collector_endpoints() -> Iterator[tuple[str, str, int]]:
    """As :func:`running_collector`; yields (OTLP/gRPC endpoint, OTLP/HTTP endpoint, pid)."""
    with _running() as (grpc_endpoint, http_endpoint, pid, _file):
        yield grpc_endpoint, http_endpoint, pid


@contextlib.contextmanager
def _running() -> Iterator[tuple[str, str, int, str]]:
    binary = find_binary()
    if binary is None:
        raise RuntimeError("collector binary not built (run: bash collector/build.sh)")
    work = tempfile.mkdtemp(prefix="bench-otelcol-")
    ports = {k: free_port() for k in ("grpc", "http", "health", "prom", "metrics", "backend")}
    env = dict(os.environ,
               LLMGINE_OTELCOL_GRPC_ENDPOINT=f"127.0.0.1:{ports['grpc']}",
               LLMGINE_OTELCOL_HTTP_ENDPOINT=f"127.0.0.1:{ports['http']}",
               LLMGINE_OTELCOL_HEALTH_ENDPOINT=f"127.0.0.1:{ports['health']}",
               LLMGINE_OTELCOL_PROMETHEUS_ENDPOINT=f"127.0.0.1:{ports['prom']}",
               LLMGINE_OTELCOL_METRICS_HOST="127.0.0.1",
               LLMGINE_OTELCOL_METRICS_PORT=str(ports["metrics"]),
               LLMGINE_OTELCOL_BACKEND_ENDPOINT=f"127.0.0.1:{ports['backend']}",
               LLMGINE_OTELCOL_QUEUE_DIR=f"{work}/queue",
               LLMGINE_OTELCOL_FILE=f"{work}/otel.jsonl",
               LLMGINE_OTELCOL_LOG_LEVEL="warn")
    log = open(f"{work}/collector.log", "wb")
    proc = subprocess.Popen([binary, f"--config={ROOT / 'collector' / 'otelcol.yaml'}"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                log = open(f"{work}/collector.log").read()[-2000:]
                raise RuntimeError(f"collector exited: {log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports['health']}/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("collector did not become healthy in 30 s") from None
                time.sleep(0.2)
        yield (f"http://127.0.0.1:{ports['grpc']}", f"http://127.0.0.1:{ports['http']}",
               proc.pid, f"{work}/otel.jsonl")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)
