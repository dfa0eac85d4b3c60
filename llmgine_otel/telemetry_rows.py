"""OTLP-JSON objects as flat rows for viewers (``view``, ``tail``): spans and log records
with hex ids and plain attribute dicts, read tolerantly (camelCase or snake_case keys, numbers
as strings or ints, enum names or values), as the Collector's file exporter and this
package's exporters write them."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmgine_otel.otlp_json import decode_any, decode_attributes

__all__ = ["SIGNAL_KEYS", "LogRow", "SpanRow", "rows_from_object", "snake_key"]

_HEX_RE = re.compile(r"[0-9a-fA-F]*")

@dataclass(slots=True)
class SpanRow:
    """One span, flattened for viewers."""

    trace_id: str
    span_id: str
    parent_span_id: str  # '' for a root
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    attributes: dict[str, Any]
    events: list[dict[str, Any]]  # {name, time_ns, attributes}
    resource: dict[str, Any]
    scope: str


@dataclass(slots=True)
class LogRow:
    """One log record, flattened for viewers."""

    time_ns: int
    observed_ns: int
    trace_id: str
    span_id: str
    severity_number: int
    severity_text: str
    event_name: str
    body: Any
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str


SIGNAL_KEYS = ("resourceSpans", "resourceLogs", "resourceMetrics")
_SNAKE = {
    "resourceSpans": "resource_spans",
    "resourceLogs": "resource_logs",
    "resourceMetrics": "resource_metrics",
    "scopeSpans": "scope_spans",
    "scopeLogs": "scope_logs",
    "logRecords": "log_records",
    "traceId": "trace_id",
    "spanId": "span_id",
    "parentSpanId": "parent_span_id",
    "startTimeUnixNano": "start_time_unix_nano",
    "endTimeUnixNano": "end_time_unix_nano",
    "timeUnixNano": "time_unix_nano",
    "observedTimeUnixNano": "observed_time_unix_nano",
    "severityNumber": "severity_number",
    "severityText": "severity_text",
    "eventName": "event_name",
}
_ENUM_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
    "STATUS_CODE_UNSET": 0,
    "STATUS_CODE_OK": 1,
    "STATUS_CODE_ERROR": 2,
}


def _get(d: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``d[key]`` under its camelCase or snake_case name (the Collector reads both)."""
    val = d.get(key)
    if val is None:
        snake = _SNAKE.get(key)
        val = d.get(snake) if snake else None
    return default if val is None else val


def _int(value: Any) -> int:
    """An integer field written as a number, a decimal string or an enum name."""
    if value is None or value == "":
        return 0
    if isinstance(value, str) and value in _ENUM_NAMES:
        return _ENUM_NAMES[value]
    if isinstance(value, str) and value.startswith("SEVERITY_NUMBER_"):
        from opentelemetry._logs import SeverityNumber

        return SeverityNumber[value.removeprefix("SEVERITY_NUMBER_")].value
    return int(value)


def _hex_id(value: Any) -> str:
    """An id as lowercase hex, whether written as hex (OTLP JSON) or base64 (plain proto JSON)."""
    if not value:
        return ""
    s = str(value)
    if len(s) in (16, 32) and _HEX_RE.fullmatch(s):
        return s.lower()
    try:
        return base64.b64decode(s, validate=True).hex()
    except (binascii.Error, ValueError):
        return s.lower()


def _scope_name(entry: Mapping[str, Any]) -> str:
    return str((entry.get("scope") or {}).get("name", ""))


def rows_from_object(obj: Mapping[str, Any]) -> list[SpanRow | LogRow]:
    """The span and log rows of one OTLP-JSON object (metrics give none)."""
    rows: list[SpanRow | LogRow] = []
    for rs in _get(obj, "resourceSpans", ()):
        resource = decode_attributes((rs.get("resource") or {}).get("attributes"))
        for ss in _get(rs, "scopeSpans", ()):
            scope = _scope_name(ss)
            for sp in ss.get("spans") or ():
                status = sp.get("status") or {}
                rows.append(
                    SpanRow(
                        trace_id=_hex_id(_get(sp, "traceId")),
                        span_id=_hex_id(_get(sp, "spanId")),
                        parent_span_id=_hex_id(_get(sp, "parentSpanId")),
                        name=sp.get("name", ""),
                        kind=_int(sp.get("kind")),
                        start_ns=_int(_get(sp, "startTimeUnixNano")),
                        end_ns=_int(_get(sp, "endTimeUnixNano")),
                        status_code=_int(status.get("code")),
                        status_message=status.get("message", ""),
                        attributes=decode_attributes(sp.get("attributes")),
                        events=[
                            {
                                "name": ev.get("name", ""),
                                "time_ns": _int(_get(ev, "timeUnixNano")),
                                "attributes": decode_attributes(ev.get("attributes")),
                            }
                            for ev in sp.get("events") or ()
                        ],
                        resource=resource,
                        scope=scope,
                    )
                )
    for rl in _get(obj, "resourceLogs", ()):
        resource = decode_attributes((rl.get("resource") or {}).get("attributes"))
        for sl in _get(rl, "scopeLogs", ()):
            scope = _scope_name(sl)
            for lr in _get(sl, "logRecords", ()):
                rows.append(
                    LogRow(
                        time_ns=_int(_get(lr, "timeUnixNano")),
                        observed_ns=_int(_get(lr, "observedTimeUnixNano")),
                        trace_id=_hex_id(_get(lr, "traceId")),
                        span_id=_hex_id(_get(lr, "spanId")),
                        severity_number=_int(_get(lr, "severityNumber")),
                        severity_text=_get(lr, "severityText", ""),
                        event_name=_get(lr, "eventName", ""),
                        body=decode_any(lr.get("body")),
                        attributes=decode_attributes(lr.get("attributes")),
                        resource=resource,
                        scope=scope,
                    )
                )
    return rows


def snake_key(key: str) -> str:
    """The snake_case spelling of an OTLP-JSON key (the Collector reads both)."""
    return _SNAKE[key]
