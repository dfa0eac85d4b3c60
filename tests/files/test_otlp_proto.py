"""The direct OTLP protobuf encoder and the gRPC exporters that send its bytes.

The encoder must produce exactly the message the SDK's protobuf encoder makes (parsed and
compared field by field), and stay valid where the SDK would raise.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._internal import _encode_value as pb_encode_value
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as pb_encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as pb_encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmgine_otel import otlp_proto as op
from llmgine_otel.exporters.otlp import FastOTLPLogExporter, FastOTLPSpanExporter

from ._util import RESOURCE, sdk_logs, sdk_spans


def test_spans_parse_to_the_sdk_encoders_message() -> None:
    spans = sdk_spans()
    assert ExportTraceServiceRequest.FromString(op.encode_spans(spans)) == pb_encode_spans(spans)


def test_logs_parse_to_the_sdk_encoders_message() -> None:
    logs = sdk_logs()
    assert ExportLogsServiceRequest.FromString(op.encode_logs(logs)) == pb_encode_logs(logs)


def test_items_group_by_resource_and_scope_like_the_sdk() -> None:
    """Two resource objects that are equal merge into one ResourceSpans; distinct ones do not;
    scopes group within them in first-seen order."""
    mem = InMemorySpanExporter()
    for resource in (RESOURCE, Resource.create({"service.name": "files-test",
                                                "deployment.environment": "test"}),
                     Resource.create({"service.name": "other"})):
        tp = TracerProvider(resource=resource)
        tp.add_span_processor(SimpleSpanProcessor(mem))
        for scope in ("a", "b", "a"):
            with tp.get_tracer(scope).start_as_current_span(f"{scope}-span"):
                pass
    spans = mem.get_finished_spans()
    ours = ExportTraceServiceRequest.FromString(op.encode_spans(spans))
    assert ours == pb_encode_spans(spans)
    assert len(ours.resource_spans) == 2
    assert [len(ss.spans) for ss in ours.resource_spans[0].scope_spans] == [4, 2]


_scalar = (st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 63) - 1)
           | st.floats(allow_nan=False) | st.text() | st.binary(max_size=20))
_value = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_value)
def test_any_value_matches_the_sdk(value: Any) -> None:
    assert AnyValue.FromString(op.encode_value(value)) == pb_encode_value(value)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=12), _value, max_size=6), _value)
def test_log_bodies_and_attributes_match_the_sdk(attrs: dict[str, Any], body: Any) -> None:
    mem = InMemoryLogRecordExporter()
    lp = LoggerProvider(resource=RESOURCE)
    lp.add_log_record_processor(SimpleLogRecordProcessor(mem))
    lp.get_logger("t").emit(body=body, attributes={"fixed": 1},
                            severity_number=SeverityNumber.INFO)
    records = list(mem.get_finished_logs())
    records[0].log_record.attributes = attrs  # any mapping, as a processor may leave it
    assert ExportLogsServiceRequest.FromString(op.encode_logs(records)) == pb_encode_logs(records)


def test_values_the_sdk_cannot_encode_become_strings() -> None:
    class Weird:
        def __str__(self) -> str:
            return "weird"

    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert AnyValue.FromString(op.encode_value(Weird())).string_value == "weird"
    assert "unprintable" in AnyValue.FromString(op.encode_value(Hostile())).string_value
    assert AnyValue.FromString(op.encode_value(1 << 70)).string_value == str(1 << 70)
    # a lone surrogate is not UTF-8: replaced, never an invalid protobuf string
    assert AnyValue.FromString(op.encode_value("a\ud800b")).string_value == "a?b"
    with pytest.raises(Exception):  # noqa: B017 - the SDK loses the whole batch here
        pb_encode_value(Weird())


def test_long_values_use_multi_byte_lengths() -> None:
    for n in (127, 128, 16383, 16384, 3_000_000):
        text = "x" * n
        assert AnyValue.FromString(op.encode_value(text)).string_value == text


# -- the exporters, against an in-process gRPC server ---------------------------------------


class _Collector:
    """A gRPC server on 127.0.0.1 with the trace and logs Export methods, recording the raw
    request bytes; the first ``fail_first`` calls answer UNAVAILABLE."""

    def __init__(self, fail_first: int = 0) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.fail_first = fail_first
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handlers = {
            "opentelemetry.proto.collector.trace.v1.TraceService": (
                "Export", ExportTraceServiceResponse),
            "opentelemetry.proto.collector.logs.v1.LogsService": (
                "Export", ExportLogsServiceResponse),
        }
        for service, (method, response) in handlers.items():
            self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
                service, {method: grpc.unary_unary_rpc_method_handler(
                    self._handler(service, response),
                    request_deserializer=None, response_serializer=response.SerializeToString,
                )}),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def _handler(self, service: str, response: Any) -> Any:
        def handle(request: bytes, context: Any) -> Any:
            with self._lock:
                self.requests.append((service, request))
                if self.fail_first > 0:
                    self.fail_first -= 1
                    context.abort(grpc.StatusCode.UNAVAILABLE, "not yet")
            return response()
        return handle

    def stop(self) -> None:
        self.server.stop(0).wait(5)


@pytest.fixture
def grpc_collector() -> Iterator[_Collector]:
    col = _Collector(fail_first=1)
    try:
        yield col
    finally:
        col.stop()


def test_fast_exporters_deliver_what_the_sdk_would_and_encode_once(
        grpc_collector: _Collector, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = op.encode_spans
    monkeypatch.setattr(FastOTLPSpanExporter, "_encode",
                        staticmethod(lambda batch: calls.append(1) or real(batch)))
    spans, logs = sdk_spans(), sdk_logs()
    endpoint = f"http://127.0.0.1:{grpc_collector.port}"
    sx = FastOTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=10)
    lx = FastOTLPLogExporter(endpoint=endpoint, insecure=True, timeout=10)
    try:
        assert sx.export(spans) == SpanExportResult.SUCCESS  # first try refused, retried
        assert lx.export(logs).name == "SUCCESS"
    finally:
        sx.shutdown()
        lx.shutdown()
    assert len(calls) == 1, "a retry must not encode the batch again"
    traces = [r for s, r in grpc_collector.requests if s.endswith("TraceService")]
    logs_got = [r for s, r in grpc_collector.requests if s.endswith("LogsService")]
    assert len(traces) == 2 and traces[0] == traces[1]
    assert ExportTraceServiceRequest.FromString(traces[1]) == pb_encode_spans(spans)
    assert ExportLogsServiceRequest.FromString(logs_got[-1]) == pb_encode_logs(logs)


def test_changed_grpc_exporter_internals_send_over_the_public_path(
        grpc_collector: _Collector, monkeypatch: pytest.MonkeyPatch, fast_path: None,
        caplog: pytest.LogCaptureFixture) -> None:
    """A release without one of the ``OTLPExporterMixin`` names the fast exporters override
    (on a version that claims to be tested): the SDK's own exporter and the public gRPC
    transport take over, with one warning; everything arrives once, through the retry."""
    import logging

    from opentelemetry.exporter.otlp.proto.grpc.exporter import OTLPExporterMixin
    from otel_kit import command_result, command_started

    from llmgine_otel import fast_paths
    from llmgine_otel.config import ObservabilityConfig
    from llmgine_otel.exporters.otlp import PublicGrpcTransport
    from llmgine_otel.telemetry import Telemetry

    monkeypatch.delattr(OTLPExporterMixin, "_translate_data")
    fast_paths._reported.clear()
    with caplog.at_level(logging.WARNING, "llmgine_otel"):
        tel = Telemetry(ObservabilityConfig(endpoint=f"http://127.0.0.1:{grpc_collector.port}",
                                            emit_metrics=False, console=False))
    assert "public API path for 'otlp_grpc': the SDK's OTLPExporterMixin has no " \
           "_translate_data" in caplog.text
    transports = [p.counting.inner.transport for p in (*tel.span_processors,
                                                        *tel.log_processors)]
    assert all(isinstance(t, PublicGrpcTransport) for t in transports)
    for i in range(30):
        tel.observe_event(command_started("BUS", f"c{i}", 1))
        tel.observe_event(command_result("BUS", f"c{i}", 2))
    report = tel.shutdown(timeout_s=10)
    assert report.completed, report
    spans = logs = 0
    for service, body in grpc_collector.requests[1:]:  # the first answered UNAVAILABLE
        if "Trace" in service:
            req = ExportTraceServiceRequest.FromString(body)
            spans += sum(len(s.spans) for r in req.resource_spans for s in r.scope_spans)
        else:
            lreq = ExportLogsServiceRequest.FromString(body)
            logs += sum(len(s.log_records) for r in lreq.resource_logs for s in r.scope_logs)
    snap = tel.stats.snapshot()
    assert snap["produced"] == {"spans": 30, "logs": 60} == snap["exported"], snap
    assert (spans, logs) == (30, 60)
