"""OTLP-JSON lines, as the Collector's file exporter writes them: encode and decode.

One line holds one ``Export{Trace,Logs,Metrics}ServiceRequest`` in the OTLP JSON encoding:
camelCase keys, ids as lowercase hex, enums as integers, 64-bit integers as decimal strings,
fields at their default value left out (the Collector's pdata marshaler does the same).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llmgine_otel.otlp_groups import group

if TYPE_CHECKING:  # protobuf is imported on use: writing files never needs it
    from google.protobuf.message import Message
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.sdk._logs import ReadableLogRecord
    from opentelemetry.sdk.metrics.export import MetricsData
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

_log = logging.getLogger(__name__)

JsonObj = dict[str, Any]

# ---------------------------------------------------------------------------------------------
# Encoding SDK objects
#
# Spans and logs are encoded straight to dicts, several times cheaper than the SDK's protobuf
# encoder plus MessageToDict (figures in BENCHMARKS.md); tests/files checks that both give the
# same dicts. Metrics are rare, so they use the SDK encoder.
# ---------------------------------------------------------------------------------------------

_SPAN_FLAGS_HAS_IS_REMOTE = 0x100
_SPAN_FLAGS_IS_REMOTE = 0x200


def _float(value: float) -> float | str:
    """A double as proto3 JSON writes it: non-finite values as strings."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


_I64 = 1 << 63


def encode_value(value: Any) -> JsonObj:
    """A Python value as an OTLP-JSON AnyValue (the SDK's mapping; unknown types as strings)."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, int):
        # OTLP's intValue is int64; beyond it, a string (as the wire encoder writes it).
        return {"intValue": str(value)} if -_I64 <= value < _I64 else {"stringValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": _float(value)}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Sequence):
        return {"arrayValue": {"values": [encode_value(v) for v in value]} if value else {}}
    if isinstance(value, Mapping):
        kvs = [{"key": str(k), "value": encode_value(v)} for k, v in value.items()]
        return {"kvlistValue": {"values": kvs} if kvs else {}}
    return {"stringValue": str(value)}


def encode_attributes(attributes: Mapping[str, Any] | None) -> list[JsonObj]:
    """Attributes as a list of OTLP-JSON KeyValues."""
    if not attributes:
        return []
    return [{"key": k, "value": encode_value(v)} for k, v in attributes.items()]


def _encode_resource(resource: Resource) -> JsonObj:
    attrs = encode_attributes(resource.attributes)
    return {"attributes": attrs} if attrs else {}


def _encode_scope(scope: InstrumentationScope | None) -> JsonObj:
    out: JsonObj = {}
    if scope is None:
        return out
    if scope.name:
        out["name"] = scope.name
    if scope.version:
        out["version"] = scope.version
    attrs = encode_attributes(scope.attributes)
    if attrs:
        out["attributes"] = attrs
    return out


def _group(
    items: Iterable[Any], scope_key: str, items_key: str, encode: Callable[[Any], JsonObj]
) -> list[JsonObj]:
    """Items grouped by resource then scope (``otlp_groups``), as resource{Spans,Logs}."""
    out: list[JsonObj] = []
    for resource, scopes in group(items, encode):
        scope_entries: list[JsonObj] = []
        for scope, encoded in scopes:
            entry: JsonObj = {"scope": _encode_scope(scope), items_key: encoded}
            if scope is not None and scope.schema_url:
                entry["schemaUrl"] = scope.schema_url
            scope_entries.append(entry)
        rentry: JsonObj = {"resource": _encode_resource(resource), scope_key: scope_entries}
        if resource.schema_url:
            rentry["schemaUrl"] = resource.schema_url
        out.append(rentry)
    return out


def _encode_span(span: ReadableSpan) -> JsonObj:
    ctx = span.get_span_context()
    assert ctx is not None
    out: JsonObj = {"traceId": f"{ctx.trace_id:032x}", "spanId": f"{ctx.span_id:016x}"}
    if ctx.trace_state:
        out["traceState"] = ",".join(f"{k}={v}" for k, v in ctx.trace_state.items())
    parent = span.parent
    flags = _SPAN_FLAGS_HAS_IS_REMOTE
    if parent is not None:
        out["parentSpanId"] = f"{parent.span_id:016x}"
        if parent.is_remote:
            flags |= _SPAN_FLAGS_IS_REMOTE
    if span.name:
        out["name"] = span.name
    out["kind"] = span.kind.value + 1  # SDK INTERNAL=0 ... ; OTLP SPAN_KIND_INTERNAL=1 ...
    if span.start_time:
        out["startTimeUnixNano"] = str(span.start_time)
    if span.end_time:
        out["endTimeUnixNano"] = str(span.end_time)
    if span.attributes:
        out["attributes"] = encode_attributes(span.attributes)
    if span.dropped_attributes:
        out["droppedAttributesCount"] = span.dropped_attributes
    if span.events:
        events = []
        for ev in span.events:
            e: JsonObj = {}
            if ev.timestamp:
                e["timeUnixNano"] = str(ev.timestamp)
            if ev.name:
                e["name"] = ev.name
            if ev.attributes:
                e["attributes"] = encode_attributes(ev.attributes)
            if ev.dropped_attributes:
                e["droppedAttributesCount"] = ev.dropped_attributes
            events.append(e)
        out["events"] = events
    if span.dropped_events:
        out["droppedEventsCount"] = span.dropped_events
    if span.links:
        links = []
        for link in span.links:
            lk: JsonObj = {
                "traceId": f"{link.context.trace_id:032x}",
                "spanId": f"{link.context.span_id:016x}",
            }
            if link.attributes:
                lk["attributes"] = encode_attributes(link.attributes)
            if link.dropped_attributes:
                lk["droppedAttributesCount"] = link.dropped_attributes
            lflags = _SPAN_FLAGS_HAS_IS_REMOTE
            if link.context.is_remote:
                lflags |= _SPAN_FLAGS_IS_REMOTE
            lk["flags"] = lflags
            links.append(lk)
        out["links"] = links
    if span.dropped_links:
        out["droppedLinksCount"] = span.dropped_links
    status: JsonObj = {}
    if span.status.status_code.value:
        status["code"] = span.status.status_code.value
    if span.status.description:
        status["message"] = span.status.description
    out["status"] = status
    out["flags"] = flags
    return out


def encode_spans(spans: Sequence[ReadableSpan]) -> JsonObj:
    """Finished SDK spans as one ``{"resourceSpans": [...]}`` object."""
    return {"resourceSpans": _group(spans, "scopeSpans", "spans", _encode_span)}


def _encode_log(readable: ReadableLogRecord) -> JsonObj:
    rec = readable.log_record
    out: JsonObj = {}
    if rec.timestamp:
        out["timeUnixNano"] = str(rec.timestamp)
    severity = getattr(rec.severity_number, "value", None)
    if severity:
        out["severityNumber"] = severity
    if rec.severity_text:
        out["severityText"] = rec.severity_text
    out["body"] = encode_value(rec.body)
    if rec.attributes:
        out["attributes"] = encode_attributes(rec.attributes)
    if readable.dropped_attributes:
        out["droppedAttributesCount"] = readable.dropped_attributes
    if rec.trace_flags:
        out["flags"] = int(rec.trace_flags)
    if rec.trace_id:
        out["traceId"] = f"{rec.trace_id:032x}"
    if rec.span_id:
        out["spanId"] = f"{rec.span_id:016x}"
    if rec.observed_timestamp:
        out["observedTimeUnixNano"] = str(rec.observed_timestamp)
    if rec.event_name:
        out["eventName"] = rec.event_name
    return out


def encode_logs(batch: Sequence[ReadableLogRecord]) -> JsonObj:
    """SDK log records (what ``LogRecordExporter.export`` receives) as ``{"resourceLogs": ...}``."""
    return {"resourceLogs": _group(batch, "scopeLogs", "logRecords", _encode_log)}


def encode_metrics(data: MetricsData) -> JsonObj:
    """SDK metrics data as one ``{"resourceMetrics": [...]}`` object."""
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import (
        encode_metrics as pb_encode_metrics,
    )

    return message_to_dict(pb_encode_metrics(data))


# ---------------------------------------------------------------------------------------------
# protobuf <-> OTLP JSON
# ---------------------------------------------------------------------------------------------

_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_DOUBLE_KEYS = frozenset(
    {"doubleValue", "double_value", "asDouble", "as_double", "sum", "min", "max", "value"}
)
_INF_SPELLINGS = {
    "+Inf": "Infinity",
    "Inf": "Infinity",
    "-Inf": "-Infinity",
    "+inf": "Infinity",
    "inf": "Infinity",
    "-inf": "-Infinity",
    "nan": "NaN",
}
_HEX_RE = re.compile(r"[0-9a-fA-F]*")


def _ids_b64_to_hex(obj: Any) -> Any:
    """Rewrite base64 id fields (as MessageToDict writes them) to hex, in place."""
    if isinstance(obj, dict):
        for key, val in obj.items():
            if key in _ID_KEYS and isinstance(val, str):
                obj[key] = base64.b64decode(val).hex()
            elif isinstance(val, (dict, list)):
                _ids_b64_to_hex(val)
    elif isinstance(obj, list):
        for val in obj:
            if isinstance(val, (dict, list)):
                _ids_b64_to_hex(val)
    return obj


def message_to_dict(message: Message) -> JsonObj:
    """A protobuf OTLP message as OTLP JSON with hex ids."""
    from google.protobuf.json_format import MessageToDict

    return _ids_b64_to_hex(MessageToDict(message, use_integers_for_enums=True))


def _id_to_b64(value: str) -> str:
    """A hex (or already base64) id as the base64 ParseDict expects."""
    if len(value) in (16, 32) and _HEX_RE.fullmatch(value):
        return base64.b64encode(bytes.fromhex(value)).decode("ascii")
    return value


def _for_parse(obj: Any) -> Any:
    """A copy of an OTLP-JSON object that ``ParseDict`` accepts (hex ids, Collector
    infinities, and an ``intValue`` beyond int64, which older versions of this package
    wrote, as the ``stringValue`` the wire encoder makes of it)."""
    if isinstance(obj, dict):
        out = {}
        for key, val in obj.items():
            if isinstance(val, str):
                if key in _ID_KEYS:
                    val = _id_to_b64(val)
                elif key in _DOUBLE_KEYS:
                    val = _INF_SPELLINGS.get(val, val)
                elif key in ("intValue", "int_value") and not _fits_int64(val):
                    key = "stringValue"
            elif isinstance(val, (dict, list)):
                val = _for_parse(val)
            out[key] = val
        return out
    if isinstance(obj, list):
        return [_for_parse(v) if isinstance(v, (dict, list)) else v for v in obj]
    return obj


def _fits_int64(text: str) -> bool:
    try:
        return -_I64 <= int(text) < _I64
    except ValueError:
        return True  # not a number at all: ParseDict reports it


def decode_traces(obj: Mapping[str, Any]) -> ExportTraceServiceRequest:
    """An OTLP-JSON traces object as the protobuf request (ids, times and values kept exactly)."""
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    return ParseDict(_for_parse(dict(obj)), ExportTraceServiceRequest(), ignore_unknown_fields=True)


def decode_logs(obj: Mapping[str, Any]) -> ExportLogsServiceRequest:
    """An OTLP-JSON logs object as the protobuf request."""
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    return ParseDict(_for_parse(dict(obj)), ExportLogsServiceRequest(), ignore_unknown_fields=True)


def decode_metrics(obj: Mapping[str, Any]) -> ExportMetricsServiceRequest:
    """An OTLP-JSON metrics object as the protobuf request."""
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    return ParseDict(
        _for_parse(dict(obj)), ExportMetricsServiceRequest(), ignore_unknown_fields=True
    )


def dumps_line(obj: JsonObj) -> bytes:
    """One compact JSON line (UTF-8, newline-terminated), as the file exporter writes it."""
    try:
        return (json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: let json escape them
        return (json.dumps(obj, separators=(",", ":")) + "\n").encode("ascii")


def decode_any(value: Any) -> Any:
    """An OTLP-JSON AnyValue as plain Python (bytesValue as ``bytes``, empty as ``None``)."""
    if not isinstance(value, dict):
        return value
    for key, val in value.items():
        if key in ("stringValue", "string_value"):
            return val
        if key in ("intValue", "int_value"):
            return int(val)
        if key in ("doubleValue", "double_value"):
            return float(_INF_SPELLINGS.get(val, val)) if isinstance(val, str) else float(val)
        if key in ("boolValue", "bool_value"):
            return bool(val)
        if key in ("arrayValue", "array_value"):
            return [decode_any(v) for v in (val or {}).get("values", [])]
        if key in ("kvlistValue", "kvlist_value"):
            return decode_attributes((val or {}).get("values", []))
        if key in ("bytesValue", "bytes_value"):
            return base64.b64decode(val)
    return None


def decode_attributes(kvs: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    """A list of OTLP-JSON KeyValues as a dict."""
    if not kvs:
        return {}
    return {kv.get("key", ""): decode_any(kv.get("value")) for kv in kvs}
