"""The direct OTLP protobuf encoder on everything the translator makes: the same messages the
SDK's encoder would send (the encoder itself is pinned down in tests/files/test_otlp_proto.py)."""

from __future__ import annotations

from typing import Any

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as pb_encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as pb_encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otel_kit import (
    command_result,
    command_started,
    llm_finished,
    llm_started,
    session_end,
    session_start,
    tool_result,
)

from llmgine_otel import otlp_proto


def test_translator_spans_and_logs_encode_like_the_sdk(make_otel: Any) -> None:
    otel = make_otel(capture_content="span_and_event")
    otel.handle(
        session_start("s1", 0), command_started("s1", "c1", 1.0),
        llm_started("s1", "l1", 1.1, temperature=0.2, max_tokens=100),
        llm_finished("s1", "l1", 1.4, input_tokens=812, output_tokens=64,
                     finish_reasons=["tool_calls"], response_id="r-1"),
        tool_result("s1", "t1", 1.5), tool_result("s1", "t2", 1.6, ok=False),
        llm_started("s1", "l2", 1.7), llm_finished("s1", "l2", 1.9, error="rate limited"),
        command_result("s1", "c1", 2.0, success=False, error="boom"),
        session_end("s1", 3.0, error=RuntimeError("bad")))
    spans, logs = otel.spans(), list(otel.log_exporter.get_finished_logs())
    assert len(spans) == 7 and len(logs) >= 10  # with the session's end span and links
    assert ExportTraceServiceRequest.FromString(otlp_proto.encode_spans(spans)) == \
        pb_encode_spans(spans)
    assert ExportLogsServiceRequest.FromString(otlp_proto.encode_logs(logs)) == \
        pb_encode_logs(logs)
