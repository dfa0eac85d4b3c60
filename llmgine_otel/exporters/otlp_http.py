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
used only when the ``otlp_http`` fast path is on (:mod:`llmgine_otel.fast_paths`: a tested
exporter release, and ``LLMGINE_OTEL_PUBLIC_PATH`` not set) and the names are present;
otherwise :func:`http_exporter` returns the SDK's own exporter (tested as the fallback).

Every OTLP/HTTP exporter made here (metrics too) gets a requests session in which
``OTEL_EXPORTER_OTLP_CERTIFICATE`` beats ``REQUESTS_CA_BUNDLE`` (:func:`session_for`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import requests
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from llmgine_otel import otlp_proto

__all__ = ["FastHTTPLogExporter", "FastHTTPSpanExporter", "http_exporter", "session_for"]

_log = logging.getLogger("llmgine_otel")
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


def _fast_path_on() -> bool:
    from llmgine_otel import fast_paths

    decision = fast_paths.decide("otlp_http")
    fast_paths.report(decision)
    return decision.enabled


def http_exporter(signal: str, endpoint: str, *, fast: bool | None = None) -> Any:
    """The OTLP/HTTP exporter for ``signal`` (``traces``, ``logs`` or ``metrics``) sending to
    the full ``endpoint`` URL: for spans and logs the fast one on a tested SDK release
    (``fast=False`` forces the SDK's)."""
    session = session_for(signal)
    if signal == "metrics":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(endpoint=endpoint, session=session)
    fast_cls, sdk_cls = ((FastHTTPSpanExporter, OTLPSpanExporter) if signal == "traces"
                         else (FastHTTPLogExporter, OTLPLogExporter))
    if fast is None:
        fast = _fast_path_on()
    if fast:
        exporter = fast_cls(endpoint=endpoint, session=session)
        if all(hasattr(exporter, n) for n in _NEEDED) and \
                callable(getattr(exporter._client, "export", None)):
            return exporter
        exporter.shutdown()
    return sdk_cls(endpoint=endpoint, session=session)


class _CertificateFirstSession(requests.Session):
    """A requests session in which the configured CA certificate wins.

    requests lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` from the environment replace a
    session's ``verify`` path on every request (psf/requests#3829), so on machines that set
    them (containers, Nix, corporate images) the SDK's OTLP/HTTP exporter ignores
    ``OTEL_EXPORTER_OTLP_CERTIFICATE`` and TLS to a private CA fails. Proxies from the
    environment still apply."""

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if isinstance(self.verify, str):
            settings["verify"] = self.verify
        return settings


def session_for(signal: str, env: Any = None) -> requests.Session | None:
    """The session for an OTLP/HTTP exporter of ``signal`` (None: the SDK's default), used
    when a certificate variable is set and no credential provider (the SDK's own session
    hook, ``_OTEL_PYTHON_EXPORTER_OTLP_HTTP_*CREDENTIAL_PROVIDER``) is."""
    env = os.environ if env is None else env
    up = signal.upper()
    if not (env.get(f"OTEL_EXPORTER_OTLP_{up}_CERTIFICATE")
            or env.get("OTEL_EXPORTER_OTLP_CERTIFICATE")):
        return None
    if any("CREDENTIAL_PROVIDER" in k and k.startswith("_OTEL_PYTHON_EXPORTER_OTLP_HTTP")
           for k in env):
        return None
    return _CertificateFirstSession()
