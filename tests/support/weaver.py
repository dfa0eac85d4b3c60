"""Test support: OpenTelemetry Weaver on this repository's registry (conventions/registry).

    from support.weaver import registry_check, start_live_check

    with start_live_check(tmp_path / "weaver") as live:
        ...send OTLP to live.endpoint...
    report = live.report            # live_check.json, read after /stop

Weaver comes from ``scripts/weaver.sh`` (built once from the shared source tarball and cached
outside the repository; ``LLMGINE_WEAVER_BIN`` points it at a prebuilt binary instead). The
live-check process is started in its own session, logged to ``<workdir>/weaver.log``, stopped
through its admin endpoint (``POST /stop``, which writes the report) and killed after a bound.
Standard library only.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.collector import (
    _BUILD_TIMEOUT_S,
    REPO_ROOT,
    BuildError,
    _child_env,
    _ManagedProcess,
    free_port,
)

WEAVER_SCRIPT = REPO_ROOT / "scripts" / "weaver.sh"

_lock = threading.Lock()
_built: list[str] = []


def weaver_binary() -> str:
    """Build Weaver (cached: returns at once after the first build) and return its path."""
    with _lock:
        if not _built:
            try:
                proc = subprocess.run(["bash", str(WEAVER_SCRIPT), "build"], capture_output=True,
                                      text=True, timeout=_BUILD_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired as exc:
                raise BuildError(f"weaver.sh build took over {_BUILD_TIMEOUT_S:.0f}s") from exc
            lines = proc.stdout.strip().splitlines()
            if proc.returncode != 0 or not lines:
                raise BuildError(f"scripts/weaver.sh build failed (exit {proc.returncode})\n"
                                 f"{proc.stderr[-6000:]}\n{proc.stdout[-2000:]}")
            _built.append(lines[-1].strip())
        return _built[0]


def registry_check() -> subprocess.CompletedProcess[str]:
    """``weaver registry check`` on conventions/registry (stdout and stderr merged)."""
    weaver_binary()
    return subprocess.run(["bash", str(WEAVER_SCRIPT), "check"], capture_output=True,
                          text=True, timeout=300, check=False, env=_child_env({}))


@dataclass
class Finding:
    """One live-check finding (``level`` violation / improvement / information)."""

    id: str
    level: str
    subject: str
    """The attribute key, metric name or event name it is about."""
    signal: str
    message: str
    scope: str
    """The instrumentation scope of the telemetry it is about ("" for a resource)."""


@dataclass
class LiveCheckReport:
    """``live_check.json``: the samples with their findings, and the statistics."""

    raw: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)

    @property
    def statistics(self) -> dict[str, Any]:
        return dict(self.raw.get("statistics") or {})

    def level_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for f in self.findings:
            counts[f.level] = counts.get(f.level, 0) + 1
        return counts


class RunningLiveCheck(_ManagedProcess):
    """``weaver registry live-check`` listening for OTLP/gRPC on 127.0.0.1."""

    name = "weaver"

    def __init__(self, workdir: Path, *, inactivity_timeout: float) -> None:
        self.grpc_port = free_port()
        self.admin_port = free_port()
        self.output_dir = workdir / "report"
        args = ["bash", str(WEAVER_SCRIPT), "live-check",
                "--format", "json", "--output", str(self.output_dir),
                "--otlp-grpc-address", "127.0.0.1", "--otlp-grpc-port", str(self.grpc_port),
                "--admin-port", str(self.admin_port),
                "--inactivity-timeout", str(int(inactivity_timeout))]
        super().__init__(args, _child_env({}), workdir, stop_timeout=30)
        self.report: LiveCheckReport | None = None

    @property
    def endpoint(self) -> str:
        """What an application sets as OTEL_EXPORTER_OTLP_ENDPOINT."""
        return f"http://127.0.0.1:{self.grpc_port}"

    def _ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=0.5):
            return True

    def finish(self, timeout: float = 60) -> LiveCheckReport:
        """Ask Weaver to stop (it then writes its report), wait for it, read the report."""
        assert self.proc is not None
        if self.proc.poll() is None:
            req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}/stop",
                                         method="POST", data=b"")
            try:
                urllib.request.urlopen(req, timeout=timeout).close()
            except OSError:
                pass  # it may close the connection as it stops; the exit below decides
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.stop()
        self._reap()
        files = sorted(self.output_dir.glob("*.json"))
        if not files:
            raise AssertionError(f"weaver wrote no report in {self.output_dir}\n"
                                 + self.log_tail())
        raw = json.loads(files[0].read_text())
        self.report = LiveCheckReport(raw, list(_findings(raw)))
        return self.report


def start_live_check(workdir: Path, *, inactivity_timeout: float = 600,
                     timeout: float = 120) -> RunningLiveCheck:
    """Start ``weaver registry live-check`` (Weaver built first if needed) and wait until its
    OTLP port accepts connections. Use as a context manager; call ``finish()`` for the report."""
    weaver_binary()
    live = RunningLiveCheck(workdir, inactivity_timeout=inactivity_timeout)
    live.start(timeout=timeout)
    return live


def _findings(raw: Any) -> Any:
    """Every finding in the report, with what it is about and the instrumentation scope of
    the telemetry (the report lists a resource, then a scope, then that scope's samples)."""
    scope = ""
    for sample in raw.get("samples") or ():
        if "resource" in sample:
            scope = ""
        elif "instrumentation_scope" in sample:
            scope = str(sample["instrumentation_scope"].get("name") or "")
        yield from _walk(sample, scope)


def _walk(root: Any, scope: str) -> Any:
    stack: list[tuple[Any, str]] = [(root, "")]
    while stack:
        node, subject = stack.pop()
        if isinstance(node, dict):
            here = subject
            for key in ("name", "event_name"):
                if isinstance(node.get(key), str) and node.get(key):
                    here = node[key]
            result = node.get("live_check_result")
            if isinstance(result, dict):
                for advice in result.get("all_advice") or ():
                    ctx = advice.get("context") or {}
                    about = (ctx.get("attribute_key") or ctx.get("metric_name")
                             or ctx.get("event_name") or here)
                    yield Finding(advice.get("id", ""), advice.get("level", ""), str(about),
                                  str(advice.get("signal_name") or ""),
                                  advice.get("message", ""), scope)
            for k, v in node.items():
                if k != "live_check_result":
                    stack.append((v, here))
        elif isinstance(node, list):
            stack.extend((v, subject) for v in node)
