"""``llmgine-otel doctor``: the effective configuration, and whether the endpoint answers.

The check sends one empty OTLP export (a no-op for any OTLP receiver) and turns the gRPC
outcome into a plain sentence saying what to fix.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from llmgine_otel.config import ConfigError, ObservabilityConfig

_FIXES = {
    "refused": "nothing listens on {hp}. Start a collector (`llmgine-otel collector run`) or "
               "fix OTEL_EXPORTER_OTLP_ENDPOINT.",
    "dns": "the host in {hp} does not resolve. Check OTEL_EXPORTER_OTLP_ENDPOINT.",
    "timeout": "{hp} accepts connections but sends no OTLP answer in time: a firewall or a "
               "blackhole, the HTTP port (4318) given for gRPC (use 4317), or TLS on one "
               "side only (http:// vs https://).",
    "UNAUTHENTICATED": "the collector refused the credentials. Set the token it expects in "
                       "OTEL_EXPORTER_OTLP_HEADERS (authorization=Bearer ...).",
    "UNAVAILABLE": "{hp} is reachable but the gRPC channel failed: often TLS on one side only "
                   "(http:// vs https://, OTEL_EXPORTER_OTLP_CERTIFICATE) or a non-OTLP server.",
    "UNIMPLEMENTED": "{hp} speaks gRPC but has no OTLP trace service: is it a collector?",
}


def _host_port(endpoint: str) -> tuple[str, int, bool]:
    if "://" not in endpoint:
        endpoint = "http://" + endpoint
    u = urlparse(endpoint)
    return u.hostname or "localhost", u.port or 4317, u.scheme == "https"


def check_endpoint(endpoint: str, timeout_s: float = 3.0) -> tuple[bool, str]:
    """(ok, sentence): a TCP connect, then one empty OTLP trace export."""
    host, port, tls = _host_port(endpoint)
    hp = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except socket.gaierror:
        return False, _FIXES["dns"].format(hp=hp)
    except ConnectionRefusedError:
        return False, _FIXES["refused"].format(hp=hp)
    except OSError as exc:
        return False, f"cannot connect to {hp}: {exc}."
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    if tls:
        ca = os.environ.get("OTEL_EXPORTER_OTLP_CERTIFICATE")
        root = Path(ca).read_bytes() if ca and Path(ca).is_file() else None
        channel = grpc.secure_channel(hp, grpc.ssl_channel_credentials(root_certificates=root))
    else:
        channel = grpc.insecure_channel(hp)
    headers = []
    for part in os.environ.get("OTEL_EXPORTER_OTLP_HEADERS", "").split(","):
        k, sep, v = part.partition("=")
        if sep:
            headers.append((k.strip().lower(), v.strip()))
    try:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=timeout_s,
                    metadata=headers or None)
        return True, f"{hp} answered an OTLP export."
    except grpc.RpcError as err:
        code = err.code().name if hasattr(err, "code") else "UNKNOWN"
        if code == "DEADLINE_EXCEEDED":
            return False, _FIXES["timeout"].format(hp=hp)
        fix = _FIXES.get(code, "{hp} answered with gRPC status " + code + ".")
        return False, fix.format(hp=hp) + f" (gRPC {code}: {err.details()})"  # type: ignore[attr-defined]
    finally:
        channel.close()


def _dir_writable(path: Path) -> tuple[bool, str]:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
        return True, f"{path.resolve()} is writable."
    except OSError as exc:
        return False, (f"cannot write to {path}: {exc.strerror}. Set LLMGINE_OTEL_DIR to a "
                       "writable folder.")


def run(args: argparse.Namespace) -> int:
    print("llmgine-otel doctor")
    try:
        cfg = ObservabilityConfig.from_env()
    except ConfigError as exc:
        print(f"  configuration: INVALID: {exc}")
        return 2
    sampler = os.environ.get("OTEL_TRACES_SAMPLER") or (
        f"ParentBased(session ratio {cfg.sample_rate})")
    exporter = (f"OTLP gRPC to {cfg.endpoint}" if cfg.endpoint else
                f"embedded default: OTLP-JSON lines in {cfg.output_dir.resolve()}"
                + (" + console summary" if cfg.console else ""))
    rows = [
        ("enabled", cfg.enabled),
        ("exporter", exporter),
        ("service.name", cfg.service_name),
        ("trace per", cfg.trace_per),
        ("sampler", sampler),
        ("queue size (per signal)", cfg.queue_size),
        ("export workers", cfg.num_workers),
        ("back-pressure", cfg.back_pressure_strategy),
        ("batch delay ms (spans/logs)",
         f"{os.environ.get('OTEL_BSP_SCHEDULE_DELAY', 5000)}/"
         f"{os.environ.get('OTEL_BLRP_SCHEDULE_DELAY', 1000)}"),
        ("export timeout s", os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT", 10)),
        ("compression", os.environ.get("OTEL_EXPORTER_OTLP_COMPRESSION", "none")),
        ("content capture", cfg.capture_content.value),
        ("max value length", cfg.max_value_length),
        ("open spans max / age s", f"{cfg.max_open_spans} / {cfg.max_span_age_s:g}"),
        ("shutdown bound s", cfg.shutdown_timeout_s),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    if cfg.endpoint:
        ok, sentence = check_endpoint(cfg.endpoint, args.timeout)
    else:
        ok, sentence = _dir_writable(cfg.output_dir)
    print(f"  check: {'OK' if ok else 'PROBLEM'}: {sentence}")
    return 0 if ok else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("doctor", help="show the effective configuration and check the endpoint",
                       description="Print the configuration llmgine-otel would use here and "
                       "check that the OTLP endpoint answers (or the output folder is "
                       "writable), explaining what to fix.")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds for the check")
    p.set_defaults(func=run)
