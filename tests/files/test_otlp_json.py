"""The OTLP-JSON codec: same output as the SDK's protobuf encoder, lossless decode, AnyValues."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as pb_encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as pb_encode_spans
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from llmgine_otel import otlp_json as oj
from llmgine_otel.telemetry_rows import SpanRow, rows_from_object

from ._util import RESOURCE, sdk_logs, sdk_spans


def test_direct_span_encoder_matches_sdk_protobuf_encoder() -> None:
    spans = sdk_spans()
    assert oj.encode_spans(spans) == oj.message_to_dict(pb_encode_spans(spans))


def test_direct_log_encoder_matches_sdk_protobuf_encoder() -> None:
    logs = sdk_logs()
    assert oj.encode_logs(logs) == oj.message_to_dict(pb_encode_logs(logs))


def test_ids_are_lowercase_hex_and_int64_are_strings() -> None:
    obj = oj.encode_spans(sdk_spans())
    span = obj["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and span["traceId"] == span["traceId"].lower()
    int(span["traceId"], 16)
    assert len(span["spanId"]) == 16
    assert isinstance(span["startTimeUnixNano"], str) and isinstance(span["kind"], int)
    assert span["status"] == {}  # present even when unset, like the Collector's file exporter


def _through_json(obj: dict[str, Any]) -> dict[str, Any]:
    return json.loads(oj.dumps_line(obj))


def test_encode_decode_encode_is_identity_for_spans() -> None:
    obj = _through_json(oj.encode_spans(sdk_spans()))
    assert oj.message_to_dict(oj.decode_traces(obj)) == obj


def test_encode_decode_encode_is_identity_for_logs() -> None:
    obj = _through_json(oj.encode_logs(sdk_logs()))
    assert oj.message_to_dict(oj.decode_logs(obj)) == obj


def test_encode_decode_encode_is_identity_for_metrics() -> None:
    reader = InMemoryMetricReader()
    mp = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = mp.get_meter("m")
    meter.create_counter("calls").add(3, {"gen_ai.operation.name": "chat"})
    meter.create_histogram("gen_ai.client.token.usage").record(1234, {"gen_ai.token.type": "input"})
    data = reader.get_metrics_data()
    assert data is not None
    obj = _through_json(oj.encode_metrics(data))
    assert "resourceMetrics" in obj
    assert oj.message_to_dict(oj.decode_metrics(obj)) == obj
    mp.shutdown()


def test_decode_keeps_ids_bytes_exactly() -> None:
    spans = sdk_spans()
    req = oj.decode_traces(_through_json(oj.encode_spans(spans)))
    got = {s.span_id: s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans}
    for span in spans:
        ctx = span.context
        pb = got[ctx.span_id.to_bytes(8, "big")]
        assert pb.trace_id == ctx.trace_id.to_bytes(16, "big")
        assert pb.start_time_unix_nano == span.start_time
        assert pb.end_time_unix_nano == span.end_time
        parent = span.parent.span_id.to_bytes(8, "big") if span.parent else b""
        assert pb.parent_span_id == parent


def test_decode_accepts_collector_spellings() -> None:
    line = {
        "resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "0AF7651916CD43DD8448EB211C80319C", "spanId": "b7ad6b7169203331",
            "kind": "SPAN_KIND_SERVER", "startTimeUnixNano": 1,
            "attributes": [{"key": "d", "value": {"doubleValue": "+Inf"}}],
        }]}]}]
    }  # fmt: skip
    span = oj.decode_traces(line).resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert span.kind == 2 and span.start_time_unix_nano == 1
    assert math.isinf(span.attributes[0].value.double_value)


_scalar = (
    st.text()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.binary()
)
_value = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(_value)
def test_any_value_round_trips_through_json(value: Any) -> None:
    encoded = json.loads(json.dumps(oj.encode_value(value)))
    assert oj.decode_any(encoded) == value


def test_any_value_decoding_of_every_kind() -> None:
    assert oj.decode_any({"stringValue": "s"}) == "s"
    assert oj.decode_any({"intValue": "42"}) == 42
    assert oj.decode_any({"intValue": 42}) == 42
    assert oj.decode_any({"doubleValue": 1.5}) == 1.5
    assert math.isnan(oj.decode_any({"doubleValue": "NaN"}))
    assert oj.decode_any({"boolValue": True}) is True
    assert oj.decode_any({"bytesValue": "AP8="}) == b"\x00\xff"
    assert oj.decode_any({"arrayValue": {}}) == []
    assert oj.decode_any({"arrayValue": {"values": [{"intValue": "1"}, {}]}}) == [1, None]
    kv = {"kvlistValue": {"values": [{"key": "a", "value": {"stringValue": "b"}}]}}
    assert oj.decode_any(kv) == {"a": "b"}
    assert oj.decode_any({}) is None
    assert oj.decode_any({"string_value": "snake"}) == "snake"


def test_non_finite_doubles_are_valid_json() -> None:
    line = oj.dumps_line({"v": oj.encode_value(float("inf"))})
    assert json.loads(line) == {"v": {"doubleValue": "Infinity"}}
    assert oj.decode_any(oj.encode_value(float("-inf"))) == float("-inf")


@given(st.integers())
def test_any_integer_survives_file_view_and_replay_decoding(value: int) -> None:
    """An attribute integer set through the API may be beyond OTLP's int64: both encoders
    write it as a string, and what the file holds decodes for replay (it used to be an
    ``intValue`` string that ``decode_traces`` rejected, losing the whole line)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llmgine_otel import otlp_proto

    mem = InMemorySpanExporter()
    tp = TracerProvider(resource=RESOURCE)
    tp.add_span_processor(SimpleSpanProcessor(mem))
    with tp.get_tracer("t").start_as_current_span("s") as span:
        span.set_attribute("big", value)
    spans = mem.get_finished_spans()
    obj = _through_json(oj.encode_spans(spans))
    request = oj.decode_traces(obj)  # what replay sends
    assert request.SerializeToString() == otlp_proto.encode_spans(spans)
    (row,) = [r for r in rows_from_object(obj) if isinstance(r, SpanRow)]
    assert row.attributes["big"] == (value if -(2**63) <= value < 2**63 else str(value))


def test_lines_written_by_older_versions_with_a_huge_int_value_still_decode() -> None:
    obj = _through_json(oj.encode_spans(sdk_spans()))
    span = obj["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["attributes"].append({"key": "big", "value": {"intValue": str(2**70)}})
    request = oj.decode_traces(obj)
    attrs = {kv.key: kv.value for kv in request.resource_spans[0].scope_spans[0].spans[0]
             .attributes}
    assert attrs["big"].string_value == str(2**70)


def test_equal_resources_merge_the_same_in_both_encoders() -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llmgine_otel import otlp_proto

    mem = InMemorySpanExporter()
    for resource in (Resource.create({"service.name": "a"}), Resource.create(
            {"service.name": "a"}), Resource.create({"service.name": "b"})):
        tp = TracerProvider(resource=resource)
        tp.add_span_processor(SimpleSpanProcessor(mem))
        for scope in ("x", "y", "x"):
            tp.get_tracer(scope).start_span(f"{scope}-span").end()
    spans = mem.get_finished_spans()
    obj = oj.encode_spans(spans)
    assert len(obj["resourceSpans"]) == 2
    assert [len(ss["spans"]) for ss in obj["resourceSpans"][0]["scopeSpans"]] == [4, 2]
    assert oj.decode_traces(_through_json(obj)).SerializeToString() == \
        otlp_proto.encode_spans(spans)
