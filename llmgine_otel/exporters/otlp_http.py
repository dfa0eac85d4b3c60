"""OTLP/HTTP exporters that send wire bytes from :mod:`llmgine_otel.otlp_proto`.

They are the SDK's OTLP/HTTP ``OTLPSpanExporter`` / ``OTLPLogExporter`` (same endpoint,
headers, TLS certificate and client key, compression, timeout, retries with backoff and
``Retry-After``, same environment variables) with one change: the request body comes from the
direct encoder (the same bytes the SDK's protobuf encoder makes, see
``tests/files/test_otlp_proto.py``) instead of building protobuf objects first. The SDK already
encodes once per batch on this path (its HTTP client retries with the same bytes).

Private SDK names used, because the SDK has no public hook for the encoding: the exporter's
``_client`` (``_OTLPHTTPClient.export(bytes)``, which compresses, sends and retries),
``_metrics`` (the exporter's own metrics), ``_max_request_size`` and ``_shutdown``. They are
used only with the tested exporter releases (:data:`TESTED`) and when present; otherwise
:func:`http_exporter` returns the SDK's own exporter (tested as the fallback).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from llmgine_otel import otlp_proto

__all__ = ["TESTED", "FastHTTPLogExporter", "FastHTTPSpanExporter", "http_exporter"]

_log = logging.getLogger("llmgine_otel")
TESTED = ("1.45.",)
"""Releases of opentelemetry-exporter-otlp-proto-http whose internals the fast path uses."""
_NEEDED = ("_client", "_metrics", "_max_request_size", "_shutdown")


class _FastHTTP:
    """``export`` of the SDK's OTLP/HTTP exporters, with the direct encoder."""

    _encode: Callable[[Sequence[Any]], bytes]
    _ok: Any
    _failed: Any
    _kind: str
    _shutdown: bool
    _client: Any
    _metrics: Any
    _max_request_size: int

    def export(self, batch: Sequence[Any]) -> Any:
        if self._shutdown:
            _log.warning("llmgine_otel: OTLP/HTTP exporter already shut down, batch ignored")
            return self._failed
        with self._metrics.export_operation(len(batch)) as result:
            try:
                data = self._encode(batch)
            except Exception as error:  # noqa: BLE001 - as the SDK: a failed batch, counted
                _log.error("llmgine_otel: failed to encode a %s batch: %s", self._kind, error)
                result.error = error
                return self._failed
            if 0 < self._max_request_size < len(data):
                _log.warning("llmgine_otel: dropping a %s batch of %d bytes (over the "
                             "exporter's max_request_size %d)", self._kind, len(data),
                             self._max_request_size)
                result.error = ValueError("request too large")
                return self._failed
            outcome = self._client.export(data)
            if not outcome.success:
                result.error = outcome.error
                if outcome.status_code is not None:
                    result.error_attrs = {"http.response.status_code": outcome.status_code}
                return self._failed
        return self._ok


class FastHTTPSpanExporter(_FastHTTP, OTLPSpanExporter):  # type: ignore[misc]
    """The SDK's OTLP/HTTP span exporter with the direct wire encoder."""

    _encode = staticmethod(otlp_proto.encode_spans)
    _ok, _failed, _kind = SpanExportResult.SUCCESS, SpanExportResult.FAILURE, "span"


class FastHTTPLogExporter(_FastHTTP, OTLPLogExporter):  # type: ignore[misc]
    """The SDK's OTLP/HTTP log record exporter with the direct wire encoder."""

    _encode = staticmethod(otlp_proto.encode_logs)
    _ok, _failed, _kind = (LogRecordExportResult.SUCCESS, LogRecordExportResult.FAILURE,
                           "log record")


def _tested_release() -> bool:
    try:
        release = version("opentelemetry-exporter-otlp-proto-http")
    except PackageNotFoundError:  # pragma: no cover - imported above, so installed
        return False
    return release.startswith(TESTED)


def http_exporter(signal: str, endpoint: str, *, fast: bool | None = None) -> Any:
    """The OTLP/HTTP exporter for ``signal`` (``traces`` or ``logs``) sending to the full
    ``endpoint`` URL: the fast one on a tested SDK release (``fast=False`` forces the SDK's)."""
    fast_cls, sdk_cls = ((FastHTTPSpanExporter, OTLPSpanExporter) if signal == "traces"
                         else (FastHTTPLogExporter, OTLPLogExporter))
    if fast is None:
        fast = _tested_release()
    if fast:
        exporter = fast_cls(endpoint=endpoint)
        if all(hasattr(exporter, n) for n in _NEEDED) and \
                callable(getattr(exporter._client, "export", None)):
            return exporter
        exporter.shutdown()
    return sdk_cls(endpoint=endpoint)
