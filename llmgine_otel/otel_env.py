"""The standard ``OTEL_*`` export variables, read with the SDK's precedence and checked at setup.

For each signal (traces, logs, metrics) one :class:`SignalPlan` says which exporters run
(``OTEL_{TRACES,LOGS,METRICS}_EXPORTER``), with which OTLP protocol and endpoint, and where
each value came from (an environment variable, an argument, or the default), which is what
``llmgine-otel doctor`` prints. The exporter options (headers, certificate, client key and
certificate, compression, timeout, insecure) are read by the SDK's exporters themselves, so
they behave exactly as the SDK documents; they are checked here so that a bad value is a
:class:`ConfigError` naming the variable at setup, not a stack trace on an export thread.

Where this package differs from the SDK's configurator, on purpose:

- a signal whose ``OTEL_{SIGNAL}_EXPORTER`` is unset goes over OTLP when an endpoint is set
  for it (its own ``OTEL_EXPORTER_OTLP_{SIGNAL}_ENDPOINT`` or the general one), and to the
  embedded default (local OTLP-JSON files; a console summary for traces) when none is;
- ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED`` defaults to true (the app's Python
  logging records join the trace unless it is ``false``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from llmgine_otel.config import ConfigError, _looks_like_endpoint

__all__ = [
    "EMBEDDED",
    "SIGNALS",
    "ExportPlan",
    "SignalPlan",
    "Value",
    "bool_var",
    "otlp_endpoint",
    "read",
]

SIGNALS = ("traces", "logs", "metrics")
PROTOCOLS = ("grpc", "http/protobuf")
EMBEDDED = "embedded"
"""Exporter name for this package's local files (and the traces' console summary)."""
GRPC, HTTP = "otlp_proto_grpc", "otlp_proto_http"
_OTLP_NAMES = ("otlp", GRPC, HTTP)
_DEFAULT_ENDPOINT = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}
_OPTIONS = ("HEADERS", "CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE", "COMPRESSION",
            "TIMEOUT", "INSECURE")
DEFAULT = "default"
ARGUMENT = "argument"


@dataclass(frozen=True)
class Value:
    """A setting and where it came from: a variable name, ``argument`` or ``default``."""

    value: Any
    source: str = DEFAULT

    def __str__(self) -> str:
        return f"{self.value} ({self.source})"


@dataclass(frozen=True)
class SignalPlan:
    """How one signal is exported."""

    signal: str
    exporters: Value
    """Tuple of names: ``otlp_proto_grpc``, ``otlp_proto_http``, ``console``, ``embedded``,
    or an installed ``opentelemetry_{signal}_exporter`` entry point; empty for ``none``."""
    protocol: Value
    endpoint: Value
    """The URL the OTLP exporter sends to (OTLP/HTTP: with its ``/v1/{signal}`` path)."""
    options: Mapping[str, Value] = field(default_factory=dict)
    """The effective exporter options (per-signal variable, else the general one), by
    lower-case option name; the SDK's exporter reads the same variables."""

    @property
    def otlp_protocols(self) -> tuple[str, ...]:
        """The OTLP protocols among the exporters (``grpc``, ``http/protobuf``)."""
        return tuple("grpc" if n == GRPC else "http/protobuf" for n in self.exporters.value
                     if n in (GRPC, HTTP))


@dataclass(frozen=True)
class ExportPlan:
    """Everything the standard variables decide for this package's own pipeline."""

    sdk_disabled: Value
    log_bridge: Value
    signals: Mapping[str, SignalPlan]

    def uses_embedded(self) -> bool:
        return any(EMBEDDED in p.exporters.value for p in self.signals.values())


def bool_var(name: str, env: Mapping[str, str], default: bool) -> Value:
    """``true``/``false`` (any case); anything else is a ConfigError naming the variable."""
    raw = env.get(name, "").strip()
    if not raw:
        return Value(default)
    if raw.lower() in ("true", "false"):
        return Value(raw.lower() == "true", name)
    raise ConfigError(f"{name}={raw!r} is not valid; allowed: true, false")


def read(endpoint: str | None = None, *, endpoint_is_argument: bool | None = None,
         protocol: str | None = None, env: Mapping[str, str] | None = None) -> ExportPlan:
    """The export plan from ``env`` (default ``os.environ``).

    ``endpoint`` is the general OTLP endpoint (``ObservabilityConfig.endpoint``): it counts as
    an argument unless it equals ``OTEL_EXPORTER_OTLP_ENDPOINT``; ``protocol`` (an argument,
    e.g. a CLI flag) beats the protocol variables."""
    env = os.environ if env is None else env
    general_var = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if endpoint is None and general_var:
        endpoint = general_var
    if endpoint_is_argument is None:
        endpoint_is_argument = bool(endpoint) and endpoint != general_var
    general = Value(endpoint, ARGUMENT if endpoint_is_argument
                    else "OTEL_EXPORTER_OTLP_ENDPOINT") if endpoint else None
    if protocol is not None and protocol not in PROTOCOLS:
        raise ConfigError(f"protocol={protocol!r} is not valid; allowed: {', '.join(PROTOCOLS)}")
    plans = {s: _signal(s, general, protocol, env) for s in SIGNALS}
    return ExportPlan(bool_var("OTEL_SDK_DISABLED", env, False),
                      bool_var("OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED", env, True),
                      plans)


def otlp_endpoint(signal: str, protocol: str, general: str | None,
                  env: Mapping[str, str] | None = None) -> str:
    """The URL an OTLP exporter of ``signal`` sends to, as the SDK resolves it."""
    env = os.environ if env is None else env
    return _endpoint(signal, protocol, Value(general, ARGUMENT) if general else None,
                     env).value  # type: ignore[no-any-return]


# -- one signal --------------------------------------------------------------------------------
def _signal(signal: str, general: Value | None, protocol_arg: str | None,
            env: Mapping[str, str]) -> SignalPlan:
    up = signal.upper()
    protocol = _protocol(up, protocol_arg, env)
    endpoint = _endpoint(signal, protocol.value, general, env)
    names = _exporter_names(signal, env)
    if names is None:  # unset: OTLP when an endpoint is set for this signal
        names = Value(("otlp",) if endpoint.source != DEFAULT else (EMBEDDED,))
    resolved = tuple(_resolve_otlp(n, protocol) for n in names.value)
    if any(n in _OTLP_NAMES for n in names.value):
        # An exporter name that fixes the protocol (otlp_proto_http) decides it when no
        # protocol variable does; the endpoint default follows.
        chosen = next(n for n in resolved if n in (GRPC, HTTP))
        proto = "grpc" if chosen == GRPC else "http/protobuf"
        if proto != protocol.value:
            protocol = Value(proto, names.source)
            endpoint = _endpoint(signal, proto, general, env)
    return SignalPlan(signal, Value(resolved, names.source), protocol, endpoint,
                      _options(up, protocol.value, env))


def _protocol(up: str, arg: str | None, env: Mapping[str, str]) -> Value:
    if arg is not None:
        return Value(arg, ARGUMENT)
    for var in (f"OTEL_EXPORTER_OTLP_{up}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        raw = env.get(var, "").strip()
        if not raw:
            continue
        if raw == "http/json":
            raise ConfigError(f"{var}='http/json' is not supported by the OpenTelemetry "
                              "Python SDK; allowed: grpc, http/protobuf")
        if raw not in PROTOCOLS:
            raise ConfigError(f"{var}={raw!r} is not valid; allowed: {', '.join(PROTOCOLS)}")
        return Value(raw, var)
    return Value("grpc")


def _endpoint(signal: str, protocol: str, general: Value | None,
              env: Mapping[str, str]) -> Value:
    var = f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
    own = env.get(var, "").strip()
    if own:
        _check_endpoint(var, own)
        return Value(own, var)  # used as given, also for OTLP/HTTP (no path appended)
    if general is not None:
        _check_endpoint(general.source if general.source != ARGUMENT else "endpoint",
                        general.value)
        base = general.value
        source = general.source
    else:
        base, source = _DEFAULT_ENDPOINT[protocol], DEFAULT
    if protocol == "http/protobuf":
        if "://" not in base:
            base = "http://" + base
        return Value(f"{base.rstrip('/')}/v1/{signal}", source)
    return Value(base, source)


def _check_endpoint(var: str, value: str) -> None:
    if not _looks_like_endpoint(value):
        raise ConfigError(f"{var}={value!r} is not valid; allowed: a URL such as "
                          "http://localhost:4317 (gRPC) or http://localhost:4318 (HTTP)")


def _exporter_names(signal: str, env: Mapping[str, str]) -> Value | None:
    var = f"OTEL_{signal.upper()}_EXPORTER"
    raw = env.get(var, "").strip()
    if not raw:
        return None
    names = tuple(n.strip().lower() for n in raw.split(",") if n.strip())
    if names == ("none",):
        return Value((), var)
    installed = _entry_point_names(signal)
    allowed = ("otlp", GRPC, HTTP, "console", "none", *sorted(installed - {GRPC, HTTP,
                                                                         "console"}))
    bad = [n for n in names if n not in allowed or n == "none"]
    if bad or len(set(names)) != len(names) or sum(n in _OTLP_NAMES for n in names) > 1:
        raise ConfigError(f"{var}={raw!r} is not valid; allowed: a comma-separated list of "
                          f"{', '.join(a for a in allowed if a != 'none')} (each once, one "
                          "OTLP exporter at most), or none")
    return Value(names, var)


def _entry_point_names(signal: str) -> set[str]:
    return {ep.name for ep in entry_points(group=f"opentelemetry_{signal}_exporter")}


def _resolve_otlp(name: str, protocol: Value) -> str:
    """The SDK's rule: a protocol variable decides any OTLP exporter name; without one,
    ``otlp`` is gRPC and ``otlp_proto_*`` is what it says."""
    if name not in _OTLP_NAMES:
        return name
    if protocol.source != DEFAULT:
        return GRPC if protocol.value == "grpc" else HTTP
    return GRPC if name == "otlp" else name


def _options(up: str, protocol: str, env: Mapping[str, str]) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for opt in _OPTIONS:
        for var in (f"OTEL_EXPORTER_OTLP_{up}_{opt}", f"OTEL_EXPORTER_OTLP_{opt}"):
            raw = env.get(var)
            if raw is None or not raw.strip():
                continue
            out[opt.lower()] = Value(_check_option(opt, var, raw.strip(), protocol), var)
            break
    return out


def _check_option(opt: str, var: str, raw: str, protocol: str) -> Any:
    if opt == "TIMEOUT":
        try:
            seconds = float(raw)
        except ValueError:
            seconds = -1.0
        if not 0 < seconds < float("inf"):
            raise ConfigError(f"{var}={raw!r} is not valid; allowed: a number of seconds > 0 "
                              "(the Python SDK reads seconds, not milliseconds)")
        return seconds
    if opt == "COMPRESSION":
        allowed = ("gzip", "none") if protocol == "grpc" else ("gzip", "deflate", "none")
        if raw.lower() not in allowed:
            raise ConfigError(f"{var}={raw!r} is not valid; allowed: {', '.join(allowed)}")
        return raw.lower()
    if opt == "INSECURE":
        if raw.lower() not in ("true", "false"):
            raise ConfigError(f"{var}={raw!r} is not valid; allowed: true, false")
        return raw.lower() == "true"
    if opt in ("CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE"):
        if not os.path.isfile(raw) or not os.access(raw, os.R_OK):
            raise ConfigError(f"{var}={raw!r} is not valid; allowed: the path of a readable "
                              "PEM file")
        return raw
    # HEADERS: key=value pairs, comma-separated (values URL-encoded); the value is not shown.
    for part in raw.split(","):
        key, sep, _ = part.partition("=")
        if part.strip() and (not sep or not key.strip()):
            raise ConfigError(f"{var} is not valid (a part without key=value); allowed: "
                              "comma-separated key=value pairs, e.g. "
                              "authorization=Bearer%20TOKEN")
    return "set"


# -- resource ----------------------------------------------------------------------------------
DEFAULT_SERVICE_NAME = "llmgine"


def resource(service_name: str | None = None, attributes: Mapping[str, Any] | None = None
             ) -> Any:
    """The SDK resource: ``service_name`` / ``attributes`` given in code, then
    ``OTEL_SERVICE_NAME``, then ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES`` (the SDK's
    order), then ``llmgine`` instead of the SDK's ``unknown_service``."""
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource

    attrs = dict(attributes or {})
    if service_name:
        attrs[SERVICE_NAME] = service_name
    if not attrs.get(SERVICE_NAME) and not OTELResourceDetector().detect().attributes.get(
            SERVICE_NAME):
        attrs[SERVICE_NAME] = DEFAULT_SERVICE_NAME
    return Resource.create(attrs)
