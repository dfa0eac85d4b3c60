"""OTLP protobuf, written straight to wire bytes: ``Export{Trace,Logs}ServiceRequest``.

The SDK's encoder builds one protobuf object per span, attribute and value through Python
keyword calls, then serialises them. Writing the wire format directly is several times cheaper
(figures in BENCHMARKS.md), and the export thread shares the GIL with the application, so every
microsecond here is one the publisher does not wait for. The output parses to the same message
the SDK's encoder makes (tests/unit/test_otlp_proto.py checks it on real and generated data);
values the SDK cannot encode (it raises and loses the batch) become strings here instead.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from llmgine_otel.otlp_groups import group

__all__ = ["encode_logs", "encode_spans", "encode_value"]

_Q = struct.Struct("<Q").pack
_D = struct.Struct("<d").pack
_I = struct.Struct("<I").pack
_BYTE = [bytes((i,)) for i in range(128)]
_MASK64 = (1 << 64) - 1
_INT64 = range(-(1 << 63), 1 << 63)

_SPAN_FLAGS_HAS_IS_REMOTE = 0x100
_SPAN_FLAGS_IS_REMOTE = 0x200


def _varint(n: int) -> bytes:
    """A non-negative integer as a protobuf varint."""
    if n < 0x80:
        return _BYTE[n]
    if n < 0x4000:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    n = len(payload)
    return tag + (_BYTE[n] if n < 0x80 else _varint(n)) + payload


def _utf8(s: str) -> bytes:
    try:
        return s.encode()
    except UnicodeEncodeError:  # lone surrogates: protobuf strings must be valid UTF-8
        return s.encode("utf-8", "replace")


# -- AnyValue / KeyValue -------------------------------------------------------------------------
# AnyValue: string 1, bool 2, int64 3, double 4, ArrayValue 5, KeyValueList 6, bytes 7.

_TRUE, _FALSE = b"\x10\x01", b"\x10\x00"


def encode_value(value: Any) -> bytes:
    """A Python value as the body of an OTLP AnyValue (the SDK's mapping; ``None`` is the empty
    AnyValue, unknown types and ints outside int64 become strings)."""
    cls = value.__class__
    if cls is str:
        return _ld(b"\x0a", _utf8(value))
    if cls is int:
        if value in _INT64:
            return b"\x18" + _varint(value & _MASK64)
        return _ld(b"\x0a", str(value).encode())
    if cls is bool:
        return _TRUE if value else _FALSE
    if cls is float:
        return b"\x21" + _D(value)
    if value is None:
        return b""
    return _encode_other(value)


def _encode_other(value: Any) -> bytes:
    """The slow path of :func:`encode_value`: subclasses, containers, bytes, the unknown."""
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    if isinstance(value, str):
        return _ld(b"\x0a", _utf8(value))
    if isinstance(value, int):
        return encode_value(int(value))
    if isinstance(value, float):
        return b"\x21" + _D(float(value))
    if isinstance(value, bytes):
        return _ld(b"\x3a", value)
    if isinstance(value, Sequence):
        return _ld(b"\x2a", b"".join([_ld(b"\x0a", encode_value(v)) for v in value]))
    if isinstance(value, Mapping):
        return _ld(b"\x32", b"".join([b"\x0a" + _kv(str(k), v) for k, v in value.items()]))
    try:
        text = str(value)
    except Exception:  # noqa: BLE001 - a value whose str() raises still encodes
        text = f"<unprintable {type(value).__name__}>"
    return _ld(b"\x0a", _utf8(text))


_KEYS: dict[str, bytes] = {}


def _key(key: str) -> bytes:
    """The encoded ``KeyValue.key`` field, cached: attribute keys are few."""
    prefix = _KEYS.get(key)
    if prefix is None:
        prefix = _ld(b"\x0a", _utf8(key))
        if len(_KEYS) < 4096:  # never let odd keys grow this without bound
            _KEYS[key] = prefix
    return prefix


def _kv(key: str, value: Any) -> bytes:
    """One KeyValue message (key 1, value 2), length-prefixed, without its own tag."""
    return _ld(b"", _key(key) + _ld(b"\x12", encode_value(value)))


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Repeated KeyValue field ``tag`` (tag byte + length-prefixed KeyValues)."""
    if not attributes:
        return b""
    # BoundedAttributes is a MutableMapping whose items() is the slow generic view; its
    # backing dict iterates in C.
    items = getattr(attributes, "_dict", attributes).items()
    out = []
    for k, v in items:
        if v.__class__ is str:
            try:
                vb = v.encode()
            except UnicodeEncodeError:
                vb = _utf8(v)
            n = len(vb)
            val = b"\x0a" + (_BYTE[n] if n < 0x80 else _varint(n)) + vb
        else:
            val = encode_value(v)
        n = len(val)
        body = (_KEYS.get(k) or _key(k)) + b"\x12" + (_BYTE[n] if n < 0x80 else _varint(n)) + val
        n = len(body)
        out.append(tag + (_BYTE[n] if n < 0x80 else _varint(n)) + body)
    return b"".join(out)


# -- resource / scope -------------------------------------------------------------------


def _resource(resource: Any) -> bytes:
    return _attributes(b"\x0a", resource.attributes)  # Resource.attributes = 1


def _scope(scope: Any) -> bytes:
    """InstrumentationScope: name 1, version 2, attributes 3."""
    if scope is None:
        return b""
    out = b""
    if scope.name:
        out += _ld(b"\x0a", _utf8(scope.name))
    if scope.version:
        out += _ld(b"\x12", _utf8(scope.version))
    return out + _attributes(b"\x1a", scope.attributes)


def _group(items: Iterable[Any], encode: Callable[[Any], bytes], item_tag: bytes) -> bytes:
    """``Resource{Spans,Logs}`` entries (field 1 of the request), grouped by ``otlp_groups``."""
    out = []
    for resource, scope_list in group(items, lambda item: item_tag + _ld(b"", encode(item))):
        body = _ld(b"\x0a", _resource(resource))  # ResourceX.resource = 1
        for scope, encoded in scope_list:
            sx = _ld(b"\x0a", _scope(scope)) + b"".join(encoded)  # ScopeX.scope = 1, items = 2
            if scope is not None and scope.schema_url:
                sx += _ld(b"\x1a", _utf8(scope.schema_url))  # ScopeX.schema_url = 3
            body += _ld(b"\x12", sx)  # ResourceX.scope_x = 2
        if resource.schema_url:
            body += _ld(b"\x1a", _utf8(resource.schema_url))  # ResourceX.schema_url = 3
        out.append(_ld(b"\x0a", body))
    return b"".join(out)


# -- spans ---------------------------------------------------------------------------------------
# Span: trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5, kind 6, start 7 (fixed64),
# end 8 (fixed64), attributes 9, dropped_attributes 10, events 11, dropped_events 12, links 13,
# dropped_links 14, status 15, flags 16 (fixed32).


def _trace_state(ts: Any) -> bytes:
    if not ts:
        return b""
    return ",".join(f"{k}={v}" for k, v in ts.items()).encode()


def _encode_span(span: Any) -> bytes:
    ctx = span.get_span_context()
    parts = [b"\x0a\x10", ctx.trace_id.to_bytes(16, "big"), b"\x12\x08",
             ctx.span_id.to_bytes(8, "big")]
    if ctx.trace_state:
        parts.append(_ld(b"\x1a", _trace_state(ctx.trace_state)))
    parent = span.parent
    flags = _SPAN_FLAGS_HAS_IS_REMOTE
    if parent is not None:
        parts += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
        if parent.is_remote:
            flags |= _SPAN_FLAGS_IS_REMOTE
    if span.name:
        parts.append(_ld(b"\x2a", _utf8(span.name)))
    parts += (b"\x30", _BYTE[span.kind.value + 1])  # SDK INTERNAL=0..; OTLP INTERNAL=1..
    if span.start_time:
        parts += (b"\x39", _Q(span.start_time))
    if span.end_time:
        parts += (b"\x41", _Q(span.end_time))
    if span.attributes:
        parts.append(_attributes(b"\x4a", span.attributes))
    if span.dropped_attributes:
        parts += (b"\x50", _varint(span.dropped_attributes))
    for ev in span.events:
        e = b"\x09" + _Q(ev.timestamp) if ev.timestamp else b""  # Event.time_unix_nano = 1
        if ev.name:
            e += _ld(b"\x12", _utf8(ev.name))
        e += _attributes(b"\x1a", ev.attributes)
        if ev.dropped_attributes:
            e += b"\x20" + _varint(ev.dropped_attributes)
        parts.append(_ld(b"\x5a", e))
    if span.dropped_events:
        parts += (b"\x60", _varint(span.dropped_events))
    for link in span.links:
        lc = link.context
        lk = (b"\x0a\x10" + lc.trace_id.to_bytes(16, "big") + b"\x12\x08"
              + lc.span_id.to_bytes(8, "big") + _attributes(b"\x22", link.attributes))
        if link.dropped_attributes:
            lk += b"\x28" + _varint(link.dropped_attributes)
        lflags = _SPAN_FLAGS_HAS_IS_REMOTE | (_SPAN_FLAGS_IS_REMOTE if lc.is_remote else 0)
        parts.append(_ld(b"\x6a", lk + b"\x35" + _I(lflags)))  # Link.flags = 6 (fixed32)
    if span.dropped_links:
        parts += (b"\x70", _varint(span.dropped_links))
    status = span.status
    st = b""
    if status.description:
        st = _ld(b"\x12", _utf8(status.description))  # Status.message = 2
    if status.status_code.value:
        st += b"\x18" + _BYTE[status.status_code.value]  # Status.code = 3
    parts += (_ld(b"\x7a", st), b"\x85\x01", _I(flags))
    return b"".join(parts)


def encode_spans(spans: Sequence[Any]) -> bytes:
    """``ExportTraceServiceRequest`` wire bytes for SDK ``ReadableSpan`` objects."""
    return _group(spans, _encode_span, b"\x12")  # ScopeSpans.spans = 2


# -- logs ----------------------------------------------------------------------------------------
# LogRecord: time 1 (fixed64), severity_number 2, severity_text 3, body 5, attributes 6,
# dropped_attributes 7, flags 8 (fixed32), trace_id 9, span_id 10, observed_time 11 (fixed64),
# event_name 12.


def _encode_log(readable: Any) -> bytes:
    rec = readable.log_record
    parts: list[bytes] = []
    if rec.timestamp:
        parts += (b"\x09", _Q(rec.timestamp))
    sev = getattr(rec.severity_number, "value", None)
    if sev:
        parts += (b"\x10", _varint(sev))
    if rec.severity_text:
        parts.append(_ld(b"\x1a", _utf8(rec.severity_text)))
    parts.append(_ld(b"\x2a", encode_value(rec.body)))
    if rec.attributes:
        parts.append(_attributes(b"\x32", rec.attributes))
    if readable.dropped_attributes:
        parts += (b"\x38", _varint(readable.dropped_attributes))
    flags = int(rec.trace_flags) if rec.trace_flags is not None else 0
    if flags:
        parts += (b"\x45", _I(flags))
    if rec.trace_id:
        parts += (b"\x4a\x10", rec.trace_id.to_bytes(16, "big"))
    if rec.span_id:
        parts += (b"\x52\x08", rec.span_id.to_bytes(8, "big"))
    if rec.observed_timestamp:
        parts += (b"\x59", _Q(rec.observed_timestamp))
    if rec.event_name:
        parts.append(_ld(b"\x62", _utf8(rec.event_name)))
    return b"".join(parts)


def encode_logs(records: Sequence[Any]) -> bytes:
    """``ExportLogsServiceRequest`` wire bytes for SDK ``ReadableLogRecord`` objects."""
    return _group(records, _encode_log, b"\x12")  # ScopeLogs.log_records = 2
