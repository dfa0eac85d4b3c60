"""``llmgine-otel collector``: build and run the bundled Collector, and print the app's env."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import TextIO

_CONFIGS = ("otelcol", "otelcol-tls", "agent", "gateway", "agent-kafka", "gateway-kafka")


def collector_dir() -> Path:
    """The bundled ``collector/`` folder (``LLMGINE_OTEL_COLLECTOR_DIR`` overrides)."""
    override = os.environ.get("LLMGINE_OTEL_COLLECTOR_DIR")
    here = Path(override) if override else Path(__file__).resolve().parents[2] / "collector"
    if not (here / "build.sh").is_file():
        raise SystemExit(f"llmgine-otel: no bundled collector at {here} (set "
                         "LLMGINE_OTEL_COLLECTOR_DIR to the repository's collector/ folder)")
    return here


def config_path(name: str) -> Path:
    """A config by short name (``otelcol``, ``agent``, ...) or by path."""
    if name in _CONFIGS:
        return collector_dir() / f"{name}.yaml"
    path = Path(name)
    if not path.is_file():
        raise SystemExit(f"llmgine-otel: no collector config {name!r}; use one of "
                         f"{', '.join(_CONFIGS)} or a path to a YAML file")
    return path


def build() -> Path:
    """Build the distribution (cached outside the repo) and return the binary's path."""
    script = collector_dir() / "build.sh"
    proc = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True,
                          check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"llmgine-otel: collector build failed (exit {proc.returncode}); "
                         "see the log printed above")
    return Path(lines[-1])


def app_env(config: Path) -> dict[str, str]:
    """The variables an application needs to send to a collector run with ``config``."""
    grpc = os.environ.get("LLMGINE_OTELCOL_GRPC_ENDPOINT", "localhost:4317")
    host, _, port = grpc.rpartition(":")
    if host in ("0.0.0.0", "", "::", "[::]"):
        host = "localhost"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{host}:{port}"}
    if "tls" in config.name:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"https://{host}:{port}"
        env["OTEL_EXPORTER_OTLP_CERTIFICATE"] = os.environ.get(
            "LLMGINE_OTELCOL_TLS_CA", "<path to the CA that signed the collector's cert>")
        env["OTEL_EXPORTER_OTLP_HEADERS"] = "authorization=Bearer <LLMGINE_OTELCOL_TOKEN>"
    return env


def _print_env(config: Path, stream: TextIO | None = None) -> None:
    for k, v in app_env(config).items():
        print(f"export {k}={v}", file=stream or sys.stdout)


def run(args: argparse.Namespace) -> int:
    config = config_path(args.config)
    if args.action == "env":
        _print_env(config)
        return 0
    binary = build()
    if args.action == "build":
        print(binary)
        return 0
    if args.action == "validate":
        return subprocess.run([str(binary), "validate", f"--config={config}"],
                              check=False).returncode
    print(f"llmgine-otel: running {binary.name} with {config}", file=sys.stderr)
    print("llmgine-otel: in the application's environment set:", file=sys.stderr)
    _print_env(config, sys.stderr)
    sys.stderr.flush()
    os.execv(str(binary), [str(binary), f"--config={config}"])
    return 0  # pragma: no cover - execv does not return


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("collector", help="build/run the bundled OpenTelemetry Collector",
                       description="Build (once, cached under ~/.cache/llmgine-otel) and run "
                       "the bundled Collector distribution, or print the environment an "
                       "application needs to send to it.")
    p.add_argument("action", choices=("run", "env", "build", "validate"),
                   help="run it / print the app's env / only build / validate the config")
    p.add_argument("--config", default="otelcol",
                   help=f"one of {', '.join(_CONFIGS)} or a YAML path (default: otelcol)")
    p.set_defaults(func=run)
