"""OTLP/gRPC exporters that send wire bytes from :mod:`llmgine_otel.otlp_proto`.

They are the SDK's ``OTLPSpanExporter`` / ``OTLPLogExporter`` (same endpoint, TLS, headers,
compression, timeout, retry and reconnect behaviour, same environment variables) with two
changes: the request is encoded by the direct encoder instead of protobuf objects, and it is
encoded once per batch, not once per retry. The gRPC method is called with the bytes as they
are (no request serializer). They override private names of ``OTLPExporterMixin``
(``_initialize_channel_and_stub``, ``_translate_data``, ``_export``, ``_client``, ``_channel``),
so they are used only while the ``otlp_grpc`` fast path is on (:mod:`llmgine_otel.fast_paths`:
a tested SDK release, not ``LLMGINE_OTEL_PUBLIC_PATH``); otherwise ``otlp_exporter`` makes the
SDK's own exporter, and the disk buffer's transport is :class:`PublicGrpcTransport`, written
against grpc's public API.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.exporter import OTLPExporterMixin
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from llmgine_otel import otlp_proto

__all__ = ["FastOTLPLogExporter", "FastOTLPSpanExporter", "GrpcTransport", "PublicGrpcTransport",
           "grpc_transport", "otlp_exporter"]

_TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_LOGS_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


class _RawStub:
    """A stub whose ``Export`` takes request bytes (what the generated stub would serialize)."""

    def __init__(self, channel: Any, method: str, response: Callable[[bytes], Any]) -> None:
        self.Export = channel.unary_unary(method, request_serializer=None,
                                          response_deserializer=response)


class _Fast:
    """Shared by both exporters: raw stub after every (re)connect, encode once per batch."""

    _method: str
    _response: Callable[[bytes], Any]
    _encode: Any  # staticmethod: Sequence of SDK items -> request bytes
    _encoded: bytes | None = None

    def _initialize_channel_and_stub(self) -> None:
        OTLPExporterMixin._initialize_channel_and_stub(self)  # type: ignore[arg-type]
        self._client = _RawStub(self._channel, self._method, self._response)  # type: ignore[attr-defined]

    def _translate_data(self, data: Sequence[Any]) -> Any:
        if self._encoded is None:
            self._encoded = self._encode(data)
        return self._encoded

    def _export_once(self, data: Sequence[Any]) -> Any:
        self._encoded = None
        try:
            return self._export(data)  # type: ignore[attr-defined]
        finally:
            self._encoded = None


class FastOTLPSpanExporter(_Fast, OTLPSpanExporter):  # type: ignore[misc]
    """The SDK's OTLP/gRPC span exporter with the direct wire encoder."""

    _method = _TRACE_METHOD
    _response = ExportTraceServiceResponse.FromString
    _encode = staticmethod(otlp_proto.encode_spans)

    def export(self, spans: Sequence[Any]) -> Any:
        return self._export_once(spans)


class FastOTLPLogExporter(_Fast, OTLPLogExporter):  # type: ignore[misc]
    """The SDK's OTLP/gRPC log exporter with the direct wire encoder."""

    _method = _LOGS_METHOD
    _response = ExportLogsServiceResponse.FromString
    _encode = staticmethod(otlp_proto.encode_logs)

    def export(self, batch: Sequence[Any]) -> Any:  # type: ignore[override]
        return self._export_once(batch)


_OVERRIDDEN = ("_initialize_channel_and_stub", "_translate_data", "_export")
_READ = ("_client", "_headers", "_timeout", "_channel", "_retryable_error_codes")


def _fast() -> bool:
    """Is the ``otlp_grpc`` fast path on (a tested SDK release, and the names still there)?"""
    from llmgine_otel import fast_paths

    decision = fast_paths.decide("otlp_grpc")
    missing = [n for n in _OVERRIDDEN if not hasattr(OTLPExporterMixin, n)]
    if decision.enabled and missing:
        decision = fast_paths.Decision("otlp_grpc", False, "the SDK's OTLPExporterMixin has "
                                       "no " + ", ".join(missing))
    fast_paths.report(decision)
    return decision.enabled


def otlp_exporter(signal: str, endpoint: str | None, **kwargs: Any) -> Any:
    """The OTLP/gRPC exporter for ``signal`` (``trace`` or ``logs``): the fast one when the SDK
    allows it, else the SDK's own. ``kwargs`` go to the exporter (e.g. ``compression``)."""
    fast = _fast()
    if signal == "trace":
        return (FastOTLPSpanExporter if fast else OTLPSpanExporter)(endpoint=endpoint, **kwargs)
    return (FastOTLPLogExporter if fast else OTLPLogExporter)(endpoint=endpoint, **kwargs)


class GrpcTransport:
    """One OTLP/gRPC call per attempt, on a fast exporter's channel (its endpoint, TLS,
    headers, compression and timeout), with the outcome classified for
    :class:`~llmgine_otel.exporters.shipper.Shipper`, which does the retrying (through the
    disk buffer) instead of the SDK's in-call retry loop. Uses the same SDK internals as the
    fast exporters (``_client``, ``_headers``, ``_timeout``, ``_retryable_error_codes``,
    ``_channel``, ``_initialize_channel_and_stub``), checked by :func:`grpc_transport`."""

    def __init__(self, exporter: Any) -> None:
        import threading

        self._exporter = exporter
        self.timeout_s = float(exporter._timeout)
        self._lock = threading.Lock()
        self._closed = False

    def send(self, payload: bytes, timeout_s: float) -> tuple[Any, float | None, str]:
        import grpc

        from llmgine_otel.exporters.shipper import SendResult

        ex = self._exporter
        client = ex._client
        if client is None or self._closed:
            return SendResult.RETRY, None, "closed"
        try:
            client.Export(request=payload, metadata=ex._headers, timeout=timeout_s)
            return SendResult.OK, None, ""
        except grpc.RpcError as err:
            code = err.code()  # type: ignore[attr-defined]
            detail = f"{getattr(code, 'name', code)}: {err.details()}"  # type: ignore[attr-defined]
            if code in ex._retryable_error_codes:
                return SendResult.RETRY, _retry_delay(err), detail
            return SendResult.REJECTED, None, detail
        except ValueError as exc:  # the channel was closed under the call (shutdown)
            return SendResult.RETRY, None, str(exc)

    def reset(self) -> None:
        """A new channel, so the next attempt connects at once (a failed channel backs off
        its reconnects for up to two minutes)."""
        with self._lock:
            if self._closed:
                return
            ex = self._exporter
            try:
                if ex._channel is not None:
                    ex._channel.close()
            finally:
                ex._initialize_channel_and_stub()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._exporter.shutdown()


def _retry_delay(err: Any) -> float | None:
    """The delay a server asked for (RetryInfo in the trailers), if any."""
    try:
        trailers = dict(err.trailing_metadata() or ())
        raw = trailers.get("google.rpc.retryinfo-bin")
        if raw is None:
            return None
        from google.rpc.error_details_pb2 import RetryInfo

        info = RetryInfo()
        info.ParseFromString(raw)
        return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    except Exception:  # noqa: BLE001 - a malformed hint: use our own backoff
        return None


class PublicGrpcTransport:
    """The disk buffer's transport on the public path: one OTLP/gRPC call per attempt on a
    channel of grpc's public API, configured from the same ``OTEL_EXPORTER_OTLP_*`` variables
    with the same rules (:mod:`llmgine_otel.cli.otlp_client`, also used by ``replay``)."""

    _RETRY = frozenset({"retryable", "timeout", "refused"})

    def __init__(self, target: Any, timeout_s: float) -> None:
        import threading

        from llmgine_otel.cli import otlp_client

        self._client = otlp_client
        self._target = target
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._channel: Any = otlp_client.grpc_channel(target)
        self._closed = False

    def send(self, payload: bytes, timeout_s: float) -> tuple[Any, float | None, str]:
        from llmgine_otel.exporters.shipper import SendResult

        channel = self._channel
        if self._closed:
            return SendResult.RETRY, None, "closed"
        try:
            outcome = self._client.send(self._target, payload, timeout_s, channel=channel)
        except ValueError as exc:  # the channel was closed under the call (shutdown)
            return SendResult.RETRY, None, str(exc)
        if outcome.ok:
            return SendResult.OK, None, ""
        if outcome.kind in self._RETRY:
            return SendResult.RETRY, None, outcome.detail
        return SendResult.REJECTED, None, outcome.detail

    def reset(self) -> None:
        """A new channel, so the next attempt connects at once."""
        with self._lock:
            if self._closed:
                return
            old, self._channel = self._channel, self._client.grpc_channel(self._target)
            old.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._channel.close()


def grpc_transport(plan: Any) -> GrpcTransport | PublicGrpcTransport:
    """The disk buffer's transport for ``plan`` (an OTLP/gRPC ``SignalPlan`` of traces or
    logs): on a fast exporter's channel while the ``otlp_grpc`` fast path is on, else the
    public one."""
    from llmgine_otel.exporters.build import grpc_kwargs

    if _fast():
        exporter = otlp_exporter("trace" if plan.signal == "traces" else "logs",
                                 plan.endpoint.value, **grpc_kwargs(plan.signal))
        if all(hasattr(exporter, n) for n in _READ):
            return GrpcTransport(exporter)
        exporter.shutdown()
    from llmgine_otel.cli.otlp_client import target_for

    timeout = plan.options.get("timeout")
    return PublicGrpcTransport(target_for(plan), timeout.value if timeout else 10.0)
