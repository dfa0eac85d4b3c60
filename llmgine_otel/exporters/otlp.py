"""OTLP/gRPC exporters that send wire bytes from :mod:`llmgine_otel.otlp_proto`.

They are the SDK's ``OTLPSpanExporter`` / ``OTLPLogExporter`` (same endpoint, TLS, headers,
compression, timeout, retry and reconnect behaviour, same environment variables) with two
changes: the request is encoded by the direct encoder instead of protobuf objects, and it is
encoded once per batch, not once per retry. The gRPC method is called with the bytes as they
are (no request serializer). If the SDK's internals they rely on ever change, ``otlp_exporter``
falls back to the SDK's own exporter rather than failing.
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

__all__ = ["FastOTLPLogExporter", "FastOTLPSpanExporter", "otlp_exporter"]

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


def _supported() -> bool:
    """True while the SDK exporter still has the internals the fast exporters override."""
    return all(hasattr(OTLPExporterMixin, name)
               for name in ("_initialize_channel_and_stub", "_translate_data", "_export"))


def otlp_exporter(signal: str, endpoint: str | None, **kwargs: Any) -> Any:
    """The OTLP/gRPC exporter for ``signal`` (``trace`` or ``logs``): the fast one when the SDK
    allows it, else the SDK's own. ``kwargs`` go to the exporter (e.g. ``compression``)."""
    if signal == "trace":
        return (FastOTLPSpanExporter if _supported() else OTLPSpanExporter)(
            endpoint=endpoint, **kwargs)
    return (FastOTLPLogExporter if _supported() else OTLPLogExporter)(endpoint=endpoint,
                                                                       **kwargs)
