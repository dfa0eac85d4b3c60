"""``llmgine-otel collector``: run the bundled Collector, print its config and the app's env.

Works from an installed wheel in any directory: the configs ship in the package
(:func:`~llmgine_otel.cli.collector_binary.bundled_dir`), the binary is found or built by
:func:`~llmgine_otel.cli.collector_binary.resolve`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from llmgine_otel.cli.collector_binary import build_with_go, bundled_dir, resolve

_CONFIGS = ("otelcol", "otelcol-tls", "agent", "gateway", "agent-kafka", "gateway-kafka")
_ENV_REF = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def config_path(name: str) -> Path:
    """A config by short name (``otelcol``, ``agent``, ...) or by path."""
    if name in _CONFIGS:
        return bundled_dir() / f"{name}.yaml"
    path = Path(name)
    if not path.is_file():
        raise SystemExit(f"llmgine-otel: no collector config {name!r}; use one of "
                         f"{', '.join(_CONFIGS)} or a path to a YAML file")
    return path


def _expand(value: Any) -> str:
    """``${env:VAR:-default}`` as the Collector would expand it in this environment."""
    return _ENV_REF.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), str(value))


@dataclass(frozen=True)
class Endpoints:
    grpc: str | None
    http: str | None
    health: str | None
    tls: bool


def endpoints(config: Path) -> Endpoints:
    """The OTLP receiver and health-check addresses ``config`` listens on, here and now."""
    doc = yaml.safe_load(config.read_text()) or {}
    otlp = next((v for k, v in (doc.get("receivers") or {}).items()
                 if str(k).split("/")[0] == "otlp"), None) or {}
    protocols = otlp.get("protocols") or {}
    grpc = (protocols.get("grpc") or {}) if "grpc" in protocols else None
    http = (protocols.get("http") or {}) if "http" in protocols else None
    health: dict[str, Any] | None = next(
        (v or {} for k, v in (doc.get("extensions") or {}).items()
         if str(k).split("/")[0] == "health_check"), None)
    return Endpoints(
        grpc=_expand(grpc.get("endpoint", "localhost:4317")) if grpc is not None else None,
        http=_expand(http.get("endpoint", "localhost:4318")) if http is not None else None,
        health=(_expand(health.get("endpoint", "localhost:13133"))
                if health is not None else None),
        tls=bool(grpc and grpc.get("tls")),
    )


def _dial(hostport: str) -> str:
    """'0.0.0.0:4317' -> 'localhost:4317': the address a local client uses."""
    host, _, port = hostport.rpartition(":")
    if host in ("0.0.0.0", "", "::", "[::]"):
        host = "localhost"
    return f"{host}:{port}"


def app_env(config: Path) -> dict[str, str]:
    """The variables an application needs to send to a collector run with ``config``."""
    ep = endpoints(config)
    scheme = "https" if ep.tls else "http"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"{scheme}://{_dial(ep.grpc or 'localhost:4317')}"}
    if ep.tls:
        env["OTEL_EXPORTER_OTLP_CERTIFICATE"] = os.environ.get(
            "LLMGINE_OTELCOL_TLS_CA", "<path to the CA that signed the collector's cert>")
        env["OTEL_EXPORTER_OTLP_HEADERS"] = "authorization=Bearer <LLMGINE_OTELCOL_BEARER_TOKEN>"
    return env


def _print_env(config: Path, stream: TextIO | None = None) -> None:
    for k, v in app_env(config).items():
        print(f"export {k}={v}", file=stream or sys.stdout)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return bool(resp.status == 200)
    except (OSError, ValueError, urllib.error.URLError):
        return False


def _run(binary: Path, config: Path, timeout: float) -> int:
    """Start the Collector, wait for its health check, print the endpoints, then wait for it
    (SIGINT/SIGTERM are passed on); its exit status."""
    ep = endpoints(config)
    proc = subprocess.Popen([str(binary), f"--config={config}"], stdin=subprocess.DEVNULL)

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    health = f"http://{_dial(ep.health)}/" if ep.health else None
    deadline = time.monotonic() + timeout
    while proc.poll() is None and health and not _healthy(health):
        if time.monotonic() > deadline:
            print(f"llmgine-otel: the Collector did not answer its health check {health} "
                  f"within {timeout:.0f}s; stopping it", file=sys.stderr)
            proc.terminate()
            proc.wait()
            return 1
        time.sleep(0.1)
    if proc.poll() is not None:
        print(f"llmgine-otel: the Collector exited with status {proc.returncode} during "
              "start-up (its log is above)", file=sys.stderr)
        return proc.returncode or 1
    scheme = "https" if ep.tls else "http"
    lines = [f"llmgine-otel: Collector ready (pid {proc.pid}, {config})"]
    if ep.grpc:
        lines.append(f"  OTLP gRPC  {scheme}://{_dial(ep.grpc)}")
    if ep.http:
        lines.append(f"  OTLP HTTP  {scheme}://{_dial(ep.http)}")
    lines.append("In the application's environment:")
    print("\n".join(lines), flush=True)
    _print_env(config)
    sys.stdout.flush()
    while True:
        try:
            code = proc.wait()
            break
        except KeyboardInterrupt:  # pragma: no cover - the handler above takes SIGINT
            forward(signal.SIGINT, None)
    return code if code >= 0 else 128 - code


def run(args: argparse.Namespace) -> int:
    config = config_path(args.config)
    if args.action == "env":
        _print_env(config)
        return 0
    if args.action == "config":
        print(config if args.path else config.read_text(), end="\n" if args.path else "")
        return 0
    if args.action == "build":
        print(build_with_go())
        return 0
    found = resolve(config, explicit=args.binary)
    print(f"llmgine-otel: {found.path} ({found.source})", file=sys.stderr)
    if args.action == "validate":
        return subprocess.run([str(found.path), "validate", f"--config={config}"],
                              check=False).returncode
    return _run(found.path, config, args.timeout)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "collector", help="run the bundled OpenTelemetry Collector",
        description="Run the bundled Collector config with a Collector binary: --binary or "
        "LLMGINE_OTELCOL_BIN, else the cached build of the bundled distribution, else "
        "otelcol-contrib/otelcol on PATH (when it has every component the config names), "
        "else a build with Go (once, cached under ~/.cache/llmgine-otel). `env` prints "
        "what the application needs, `config` the config itself.")
    p.add_argument("action", choices=("run", "env", "config", "build", "validate"),
                   help="run it / print the app's env / print the config (--path: its "
                   "path) / only build with Go / validate the config")
    p.add_argument("--config", default="otelcol",
                   help=f"one of {', '.join(_CONFIGS)} or a YAML path (default: otelcol)")
    p.add_argument("--binary", default=None, help="the Collector binary to use")
    p.add_argument("--path", action="store_true", help="config: print the path only")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="run: seconds to wait for the health check (default 60)")
    p.set_defaults(func=run)
