"""Exporters for one signal, as the standard ``OTEL_*`` variables choose them.

:func:`exporter` makes one named exporter of a :class:`~llmgine_otel.otel_env.SignalPlan`
(``otlp_proto_grpc``, ``otlp_proto_http``, ``console``, or any installed
``opentelemetry_{signal}_exporter`` entry point, made with no arguments as the SDK does);
:func:`otlp_exporter` is the one place OTLP exporters are made, for both protocols. Spans
and log records get the direct wire encoder on both protocols (``exporters/otlp.py`` for gRPC,
``exporters/otlp_http.py`` for HTTP); metrics use the SDK's exporters. Every option other than
the endpoint (headers, certificate, client key and certificate, compression, timeout,
insecure) is read by the SDK exporter from the environment, except two that the OTLP/gRPC
exporters get as arguments (:func:`grpc_kwargs`: compression ``none``, and the TLS files
taken option by option).
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points
from typing import Any

from llmgine_otel.otel_env import GRPC, HTTP, SignalPlan

__all__ = ["exporter", "grpc_kwargs", "otlp_exporter"]


def otlp_exporter(signal: str, protocol: str, endpoint: str) -> Any:
    """The OTLP exporter of ``signal`` (``traces``, ``logs``, ``metrics``) for ``protocol``
    (``grpc`` or ``http/protobuf``) sending to ``endpoint`` (as resolved by ``otel_env``)."""
    if protocol == "grpc":
        kw = grpc_kwargs(signal)
        if signal == "metrics":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter,
            )

            return OTLPMetricExporter(endpoint=endpoint, **kw)
        from llmgine_otel.exporters.otlp import otlp_exporter as grpc_exporter

        return grpc_exporter("trace" if signal == "traces" else "logs", endpoint, **kw)
    from llmgine_otel.exporters.otlp_http import http_exporter

    return http_exporter(signal, endpoint)


def grpc_kwargs(signal: str) -> dict[str, Any]:
    """Arguments for the SDK's gRPC exporters of ``signal``, where their own reading of the
    variables departs from the spec:

    - the spec allows OTEL_EXPORTER_OTLP_COMPRESSION=none; the SDK's gRPC exporters raise on
      it, so "none" is passed as an argument (which they then do not read);
    - the TLS files (CA, client key, client certificate) are taken option by option, the
      per-signal variable first, as the SDK's OTLP/HTTP exporters, ``doctor`` and the disk
      buffer's public transport do. The SDK's gRPC exporters read a signal's client key and
      certificate only when that signal's CA variable is set too (and then ignore the general
      ones), and the general client key only with the general CA; so the credentials are
      made here and passed, unless an SDK credential provider is configured (then it
      decides, as in the SDK)."""
    kw: dict[str, Any] = {}
    if _option(signal, "COMPRESSION").lower() == "none":
        from grpc import Compression

        kw["compression"] = Compression.NoCompression
    files = [_option(signal, o) or None for o in ("CERTIFICATE", "CLIENT_KEY",
                                                   "CLIENT_CERTIFICATE")]
    provider = ("OTEL_PYTHON_EXPORTER_OTLP_GRPC_CREDENTIAL_PROVIDER",
                f"OTEL_PYTHON_EXPORTER_OTLP_GRPC_{signal.upper()}_CREDENTIAL_PROVIDER")
    if any(files) and not any(os.environ.get(v, "").strip() for v in provider):
        from llmgine_otel.cli.otlp_client import grpc_credentials

        kw["credentials"] = grpc_credentials(*files)
    return kw


def _option(signal: str, option: str) -> str:
    """An exporter option's value: ``OTEL_EXPORTER_OTLP_{SIGNAL}_{OPTION}``, else the general
    ``OTEL_EXPORTER_OTLP_{OPTION}`` (blank counts as unset, as in ``otel_env``)."""
    for var in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_{option}", f"OTEL_EXPORTER_OTLP_{option}"):
        raw = os.environ.get(var, "").strip()
        if raw:
            return raw
    return ""


def exporter(plan: SignalPlan, name: str) -> Any:
    """One exporter (or, for metrics, possibly a metric reader) named in ``plan``."""
    if name in (GRPC, HTTP):
        return otlp_exporter(plan.signal, "grpc" if name == GRPC else "http/protobuf",
                             plan.endpoint.value)
    if name == "console":
        return _console(plan.signal)
    eps = entry_points(group=f"opentelemetry_{plan.signal}_exporter", name=name)
    for ep in eps:
        return ep.load()()
    raise LookupError(f"no {plan.signal} exporter named {name!r}")  # checked by otel_env


def _console(signal: str) -> Any:
    if signal == "traces":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stdout)  # where stdout is now, not at import
    if signal == "logs":
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

        return ConsoleLogRecordExporter(out=sys.stdout)
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

    return ConsoleMetricExporter(out=sys.stdout)
