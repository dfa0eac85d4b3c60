"""Which fast paths into OpenTelemetry SDK internals are switched on, and why.

Four measured fast paths reach into private names of the SDK (BENCHMARKS.md has the gains):

- ``spans``: :mod:`llmgine_otel.span_factory` builds the translator's spans without
  ``Tracer.start_span`` (it sets the SDK ``Span``'s private fields itself and reads the
  tracer's ``_span_limits``, ``_instrumentation_scope``, ``_tracer_metrics``, ``_is_enabled``);
- ``otlp_grpc``: :mod:`llmgine_otel.exporters.otlp` overrides ``OTLPExporterMixin``'s
  ``_initialize_channel_and_stub`` / ``_translate_data`` / ``_export`` and uses its
  ``_channel`` / ``_client``, to send bytes from the direct encoder;
- ``otlp_http``: :mod:`llmgine_otel.exporters.otlp_http` overrides the SDK's OTLP/HTTP span
  and log exporters' ``export`` and uses their ``_client``, ``_metrics``,
  ``_max_request_size`` and ``_shutdown``, to send bytes from the direct encoder;
- ``queue``: :mod:`llmgine_otel.pipeline` reads the batch processor's ``_queue``,
  ``_max_queue_size`` and ``_shutdown`` for exact drop accounting and back-pressure.

Each is on only for the package versions in :data:`TESTED` (the versions the whole suite has
run against, on both paths), and off with ``LLMGINE_OTEL_PUBLIC_PATH=true``. Off means the
public API path: ``Tracer.start_span``, the SDK's own exporters, and accounting written
against the public processor and exporter interfaces. Setup says once which path is active
and why (a warning when an untested version turned a fast path off).

Adding a version (docs/sdk-versions.md): install it, run ``make test`` (it runs the core
suites on both paths), read the structural checks' output, then add it here.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version

__all__ = ["ENV", "TESTED", "Decision", "decide", "report"]

ENV = "LLMGINE_OTEL_PUBLIC_PATH"
# fast path -> the packages whose private names it touches, with the versions tested.
TESTED: dict[str, dict[str, frozenset[str]]] = {
    "spans": {"opentelemetry-sdk": frozenset({"1.45.2"})},
    "otlp_grpc": {"opentelemetry-exporter-otlp-proto-grpc": frozenset({"1.45.2"})},
    "otlp_http": {"opentelemetry-exporter-otlp-proto-http": frozenset({"1.45.2"})},
    "queue": {"opentelemetry-sdk": frozenset({"1.45.2"})},
}
_log = logging.getLogger("llmgine_otel")


@dataclass(frozen=True)
class Decision:
    """Whether one fast path is on, and why (for the setup message and ``doctor``)."""

    path: str
    enabled: bool
    reason: str


def _installed(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _forced_public() -> bool:
    from llmgine_otel.config import _parse_bool

    raw = os.environ.get(ENV, "").strip()
    return bool(raw) and _parse_bool(ENV, raw)


def decide(path: str) -> Decision:
    """Is fast path ``path`` on here? (Raises ConfigError for a bad LLMGINE_OTEL_PUBLIC_PATH.)"""
    if _forced_public():
        return Decision(path, False, f"{ENV}=true")
    return _by_version(path)


@cache
def _by_version(path: str) -> Decision:
    for package, versions in TESTED[path].items():
        have = _installed(package)
        if have not in versions:
            return Decision(path, False, f"{package} {have or 'missing'} is not a tested "
                                         f"version ({', '.join(sorted(versions))})")
    return Decision(path, True, "tested versions")


_reported: set[tuple[str, bool, str]] = set()


def report(decision: Decision) -> None:
    """Say once per process which path is active: a warning when an untested version turned
    a fast path off, INFO otherwise."""
    key = (decision.path, decision.enabled, decision.reason)
    if key in _reported:
        return
    _reported.add(key)
    if decision.enabled:
        _log.debug("llmgine_otel: fast path %r on (%s)", decision.path, decision.reason)
    elif decision.reason.startswith(ENV):
        _log.info("llmgine_otel: public API path for %r (%s)", decision.path, decision.reason)
    else:
        _log.warning("llmgine_otel: public API path for %r: %s; telemetry is complete, "
                     "only slower (see docs/sdk-versions.md)", decision.path, decision.reason)
