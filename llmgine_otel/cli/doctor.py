"""``llmgine-otel doctor``: the effective configuration, where each value came from,
whether each configured OTLP endpoint answers, and what waits in the disk buffer (size, age).

The check sends one empty OTLP export per signal sent over OTLP (a no-op for any OTLP
receiver) with the protocol, TLS settings and headers the exporter would use, and turns the
outcome into a plain sentence saying what to fix. Without an OTLP endpoint it checks that
the output folder is (or can be made) writable, without creating it. ``--json`` prints the
same as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from llmgine_otel.buffer import describe, writable
from llmgine_otel.config import ENV_VARS, ConfigError, ObservabilityConfig
from llmgine_otel.otel_env import EMBEDDED, GRPC, HTTP, ExportPlan, Value, read

__all__ = ["check_endpoint", "register", "run"]

MiB = 1024 * 1024


def check_endpoint(endpoint: str, timeout_s: float = 3.0, *, protocol: str = "grpc",
                   signal: str = "traces") -> tuple[bool, str]:
    """(ok, sentence) for ``endpoint`` (the general endpoint) as ``signal``'s exporter would
    send to it under the current environment."""
    from llmgine_otel.cli.otlp_client import probe, target_for

    plan = read(endpoint, protocol=protocol, env={
        k: v for k, v in os.environ.items()
        if not k.endswith(("_ENDPOINT", "_PROTOCOL")) or not k.startswith("OTEL_EXPORTER")})
    return probe(target_for(plan.signals[signal]), timeout_s)


def _dir_check(path: Path) -> tuple[bool, str]:
    """Writable, or creatable, without creating anything that is not there."""
    if path.is_dir():
        try:
            with tempfile.NamedTemporaryFile(dir=path):
                pass
            return True, f"{path.resolve()} is writable."
        except OSError as exc:
            return False, (f"cannot write to {path}: {exc.strerror}. Set LLMGINE_OTEL_DIR to a "
                           "writable folder.")
    parent = path.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
        return True, f"{path.resolve()} does not exist yet; it will be created in {parent}."
    return False, (f"{path} does not exist and {parent} is not writable. Set "
                   "LLMGINE_OTEL_DIR to a writable folder.")


def _sources(env: dict[str, str], overrides: dict[str, Any]) -> dict[str, str]:
    out = {}
    for var, name in ENV_VARS.items():
        if name in overrides:
            out[name] = "argument"
        elif env.get(var, "").strip():
            out[name] = var
    if "queue_size" not in out and env.get("OTEL_BSP_MAX_QUEUE_SIZE", "").strip():
        out["queue_size"] = "OTEL_BSP_MAX_QUEUE_SIZE"
    return out


def _service_name(cfg: ObservabilityConfig, sources: dict[str, str]) -> Value:
    from llmgine_otel.otel_env import resource

    name = str(resource(cfg.service_name, cfg.resource_attributes).attributes["service.name"])
    if cfg.service_name:
        return Value(name, sources.get("service_name", "argument"))
    if "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        return Value(name, "OTEL_RESOURCE_ATTRIBUTES")
    return Value(name)


def _describe_signal(plan: ExportPlan, signal: str, cfg: ObservabilityConfig) -> dict[str, Any]:
    p = plan.signals[signal]
    names = p.exporters.value
    parts = []
    for n in names:
        if n in (GRPC, HTTP):
            parts.append(f"OTLP {'gRPC' if n == GRPC else 'HTTP'} to {p.endpoint.value}")
        elif n == EMBEDDED:
            parts.append(f"OTLP-JSON lines in {cfg.output_dir.resolve()}"
                         + (" + console summary" if signal == "traces" and cfg.console else ""))
        else:
            parts.append(n)
    otlp = any(n in (GRPC, HTTP) for n in names)
    return {
        "exporters": {"value": list(names), "source": p.exporters.source,
                      "text": ", ".join(parts) or "none"},
        "protocol": {"value": p.protocol.value, "source": p.protocol.source} if otlp else None,
        "endpoint": {"value": p.endpoint.value, "source": p.endpoint.source} if otlp else None,
        "options": {k: {"value": v.value, "source": v.source} for k, v in p.options.items()}
        if otlp else {},
    }


def _report(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    env = dict(os.environ)
    overrides: dict[str, Any] = {}
    if args.endpoint:
        overrides["endpoint"] = args.endpoint
    try:
        cfg = ObservabilityConfig.from_env(**overrides)
        plan = read(cfg.endpoint, endpoint_is_argument=bool(args.endpoint) or None,
                    protocol=args.protocol)
    except ConfigError as exc:
        return 2, {"ok": False, "configuration": {"valid": False, "error": str(exc)}}
    sources = _sources(env, overrides)

    def setting(name: str, value: Any) -> dict[str, Any]:
        return {"value": value, "source": sources.get(name, "default")}

    sampler = ({"value": env["OTEL_TRACES_SAMPLER"], "source": "OTEL_TRACES_SAMPLER"}
               if env.get("OTEL_TRACES_SAMPLER") else
               {"value": f"ParentBased(session ratio {cfg.sample_rate})",
                "source": sources.get("sample_rate", "default")})
    svc = _service_name(cfg, sources)

    def sdk(var: str, default: Any) -> dict[str, Any]:
        raw = env.get(var, "").strip()
        return {"value": raw or default, "source": var if raw else "default"}

    settings = {
        "sdk disabled": {"value": plan.sdk_disabled.value, "source": plan.sdk_disabled.source},
        "enabled": setting("enabled", cfg.enabled),
        "service.name": {"value": svc.value, "source": svc.source},
        "trace per": setting("trace_per", cfg.trace_per),
        "sampler": sampler,
        "queue size (per signal)": setting("queue_size", cfg.queue_size),
        "export workers": setting("num_workers", cfg.num_workers),
        "back-pressure": setting("back_pressure_strategy", cfg.back_pressure_strategy),
        "batch delay ms (spans)": sdk("OTEL_BSP_SCHEDULE_DELAY", 5000),
        "batch delay ms (logs)": sdk("OTEL_BLRP_SCHEDULE_DELAY", 1000),
        "metric export interval ms": sdk("OTEL_METRIC_EXPORT_INTERVAL", 60000),
        "app logs join the trace": {"value": plan.log_bridge.value,
                                    "source": plan.log_bridge.source},
        "content capture": setting("capture_content", cfg.capture_content.value),
        "max value length": setting("max_value_length", cfg.max_value_length),
        "open spans max": setting("max_open_spans", cfg.max_open_spans),
        "open span max age s": setting("max_span_age_s", cfg.max_span_age_s),
        "shutdown bound s": setting("shutdown_timeout_s", cfg.shutdown_timeout_s),
        "flush on SIGTERM/SIGINT": setting("flush_on_signal", cfg.flush_on_signal),
        "disk buffer": {"value": _buffer_setting(cfg, plan, svc.value),
                        "source": sources.get("buffer_dir", sources.get("buffer", "default"))},
    }
    signals = {s: _describe_signal(plan, s, cfg) for s in ("traces", "logs", "metrics")}
    checks = []
    if not plan.sdk_disabled.value:
        from llmgine_otel.cli.otlp_client import probe, target_for

        for s, p in plan.signals.items():
            if any(n in (GRPC, HTTP) for n in p.exporters.value):
                target = target_for(p)
                ok, sentence = probe(target, args.timeout)
                checks.append({"signal": s, "protocol": target.protocol,
                               "endpoint": target.endpoint, "ok": ok, "message": sentence})
        if plan.uses_embedded():
            ok, sentence = _dir_check(cfg.output_dir)
            checks.append({"signal": "local files", "ok": ok, "message": sentence})
    ok = all(c["ok"] for c in checks)
    buffer = None
    if _buffered(cfg, plan):
        path = cfg.buffer_path(svc.value)
        buffer = {"path": str(path.resolve()), **describe(path),
                  "text": describe_buffer(path)}
    return (0 if ok else 1), {"ok": ok, "configuration": {"valid": True}, "settings": settings,
                              "signals": signals, "checks": checks, "disk_buffer": buffer}


def _buffered(cfg: ObservabilityConfig, plan: ExportPlan) -> bool:
    """Whether spans or log records go over OTLP/gRPC through the disk buffer."""
    return cfg.buffer and not plan.sdk_disabled.value and any(
        list(plan.signals[s].exporters.value) == [GRPC] for s in ("traces", "logs"))


def _buffer_setting(cfg: ObservabilityConfig, plan: ExportPlan, service: str) -> str:
    if not cfg.buffer:
        return "off (LLMGINE_OTEL_BUFFER=false)"
    if not _buffered(cfg, plan):
        return "not used (no OTLP/gRPC exporter alone for spans or logs)"
    path = cfg.buffer_path(service)
    where = f"{path.resolve()}" if writable(path) else f"{path.resolve()} (NOT writable: off)"
    return (f"{where}, up to {cfg.buffer_max_bytes / MiB:g} MiB, "
            f"{cfg.buffer_max_age_s / 3600:g} h")


def describe_buffer(path: Path) -> str:
    """Size and age of what waits in the disk buffer, in one sentence."""
    d = describe(path)
    if not d["files"]:
        return "empty" + (f"; {d['live_processes']} process(es) using it"
                          if d["live_processes"] else "")
    age = time.time() - d["oldest_ns"] / 1e9
    items = ", ".join(f"{n} {sig}" for sig, n in d["items"].items() if n)
    return (f"{d['bytes'] / MiB:.1f} MiB in {d['files']} batches ({items}), oldest "
            f"{_age(age)} old; {d['live_processes']} process(es) using it (the files of a "
            "process that is gone are resent by the next one to start)")


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def run(args: argparse.Namespace) -> int:
    code, report = _report(args)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return code
    print("llmgine-otel doctor")
    if not report["configuration"]["valid"]:
        print(f"  configuration: INVALID: {report['configuration']['error']}")
        return code
    rows = [(k, v["value"], v["source"]) for k, v in report["settings"].items()]
    for s, d in report["signals"].items():
        src = d["exporters"]["source"]
        if d["endpoint"]:
            src = ", ".join(dict.fromkeys(x for x in (d["exporters"]["source"],
                                                      d["protocol"]["source"],
                                                      d["endpoint"]["source"])
                                          if x != "default")) or "default"
        rows.append((s, d["exporters"]["text"], src))
        for opt, v in d["options"].items():
            rows.append((f"  {s} {opt}", v["value"], v["source"]))
    width = max(len(k) for k, _, _ in rows)
    vwidth = min(60, max(len(str(v)) for _, v, _ in rows))
    for k, v, src in rows:
        print(f"  {k:<{width}}  {v!s:<{vwidth}}  ({src})")
    if report["settings"]["sdk disabled"]["value"]:
        print("  check: OK: OTEL_SDK_DISABLED=true: nothing is produced or sent.")
    for c in report["checks"]:
        label = c["signal"] + (f" {c['protocol']}" if c.get("protocol") else "")
        print(f"  check: {'OK' if c['ok'] else 'PROBLEM'}: [{label}] {c['message']}")
    if report.get("disk_buffer"):
        print(f"  disk buffer now: {report['disk_buffer']['text']}")
    return code


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("doctor", help="show the effective configuration and check the endpoint",
                       description="Print the configuration llmgine-otel would use here, where "
                       "each value comes from (a variable, an argument, or the default), and "
                       "check that each OTLP endpoint answers with the configured protocol and "
                       "TLS settings (or that the output folder is writable), explaining what "
                       "to fix. Creates nothing.")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds for each check")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--endpoint", help="check this OTLP endpoint instead of "
                   "OTEL_EXPORTER_OTLP_ENDPOINT")
    p.add_argument("--protocol", choices=("grpc", "http/protobuf"),
                   help="instead of OTEL_EXPORTER_OTLP_PROTOCOL")
    p.set_defaults(func=run)
