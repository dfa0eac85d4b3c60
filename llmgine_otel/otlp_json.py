"""OTLP-JSON lines, as the Collector's file exporter writes them: encode, decode and read.

One line holds one ``Export{Trace,Logs,Metrics}ServiceRequest`` in the OTLP JSON encoding:
camelCase keys, ids as lowercase hex, enums as integers, 64-bit integers as decimal strings,
fields at their default value left out (the Collector's pdata marshaler does the same).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import json
import logging
import math
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

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


# ---------------------------------------------------------------------------------------------
# Tolerant reader
# ---------------------------------------------------------------------------------------------


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
_TEXT_SUFFIXES = (".jsonl", ".json")
_COMPRESSED_SUFFIXES = (".gz", ".zst")
_ROTATED_TS = re.compile(r"-(\d{4}-?\d\d-?\d\dT\d\d-?\d\d-?\d\d(?:\.\d+)?Z?)$")
_MAX_PROBLEMS_PER_FILE = 20
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
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


def _zstandard() -> Any:
    """The ``zstandard`` module, or None when it is not installed."""
    try:
        import zstandard
    except ImportError:
        return None
    return zstandard


def _is_telemetry_name(name: str) -> bool:
    if name.startswith("."):
        return False
    for comp in ("", *_COMPRESSED_SUFFIXES):
        if comp and not name.endswith(comp):
            continue
        base = name[: len(name) - len(comp)] if comp else name
        if base.endswith(_TEXT_SUFFIXES):
            return True
    return False


def _strip_suffixes(name: str) -> str:
    """``telemetry-2026...jsonl.gz`` -> ``telemetry-2026...``."""
    for comp in _COMPRESSED_SUFFIXES:
        name = name.removesuffix(comp)
    for text in _TEXT_SUFFIXES:
        name = name.removesuffix(text)
    return name


def rotation_stamp(name: str) -> str | None:
    """The digits of a rotated file's UTC timestamp (``name-<stamp>.jsonl[.gz]``), else None."""
    m = _ROTATED_TS.search(_strip_suffixes(name))
    return re.sub(r"\D", "", m.group(1)).ljust(20, "0") if m else None


def telemetry_files(path: str | Path) -> list[Path]:
    """A file as itself; a folder's telemetry files, rotated ones oldest first, then current ones.

    Raises FileNotFoundError when the path does not exist. A rotated file whose compressed copy is
    also there (compression interrupted) is listed once, as the uncompressed file.
    """
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such file or directory")
    files = [f for f in p.iterdir() if _is_telemetry_name(f.name) and f.is_file()]
    names = {f.name for f in files}
    files = [
        f
        for f in files
        if not (f.name.endswith(_COMPRESSED_SUFFIXES) and f.name[: f.name.rfind(".")] in names)
    ]

    def key(f: Path) -> tuple[int, str, float, str]:
        stamp = rotation_stamp(f.name)
        if stamp is not None:
            return (0, stamp, 0.0, f.name)
        try:
            mtime = f.stat().st_mtime
        except OSError:
            mtime = 0.0
        return (1, "", mtime, f.name)

    return sorted(files, key=key)


def _open_lines(path: Path) -> io.BufferedIOBase:
    """A binary stream of the file's (decompressed) bytes."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.name.endswith(".zst"):
        zstd = _zstandard()
        if zstd is None:
            raise _Unreadable("zstd-compressed; install the 'zstandard' package to read it")
        raw = open(path, "rb")  # noqa: SIM115 - handed to the returned stream
        if raw.read(4) != _ZSTD_MAGIC:  # Collector's legacy framing: 4-byte size + zstd frame
            raw.seek(0)
            return io.BufferedReader(_SizePrefixedZstd(raw, zstd))
        raw.seek(0)
        reader = zstd.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
        return io.BufferedReader(reader)
    return open(path, "rb")


class _Unreadable(Exception):
    """A file that cannot be read at all, with the reason to report."""


class _SizePrefixedZstd(io.RawIOBase):
    """Lines from the Collector's legacy ``compression: zstd`` files (size-prefixed frames)."""

    def __init__(self, raw: IO[bytes], zstd: Any) -> None:
        self._raw = raw
        self._dctx = zstd.ZstdDecompressor()
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            head = self._raw.read(4)
            if not head:
                return 0
            if len(head) < 4:
                raise EOFError("compressed stream ends early")
            size = int.from_bytes(head, "big")
            frame = self._raw.read(size)
            if len(frame) < size:
                raise EOFError("compressed stream ends early")
            data = self._dctx.decompressobj().decompress(frame)
            self._buf = data if data.endswith(b"\n") else data + b"\n"
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Problems:
    """Reports problems of one file, at most a few lines of them."""

    def __init__(self, name: str, sink: Callable[[str], None]) -> None:
        self.name = name
        self.sink = sink
        self.count = 0

    def __call__(self, msg: str, lineno: int | None = None) -> None:
        self.count += 1
        if self.count <= _MAX_PROBLEMS_PER_FILE:
            where = f"{self.name}:{lineno}" if lineno is not None else self.name
            self.sink(f"{where}: {msg}")

    def finish(self) -> None:
        extra = self.count - _MAX_PROBLEMS_PER_FILE
        if extra > 0:
            self.sink(f"{self.name}: ... and {extra} more problem{'s' if extra > 1 else ''}")


def _default_problem(msg: str) -> None:
    print(f"llmgine-otel: {msg}", file=sys.stderr)


def iter_objects(
    path: str | Path, *, on_problem: Callable[[str], None] = _default_problem
) -> Iterator[JsonObj]:
    """Each OTLP-JSON object (one per line) of a file or folder; bad lines reported and skipped."""
    try:
        files = telemetry_files(path)
    except OSError as exc:
        on_problem(str(exc))
        return
    for f in files:
        for _lineno, obj in _iter_file(f, _Problems(str(f), on_problem)):
            yield obj


def _iter_file(path: Path, problem: _Problems) -> Iterator[tuple[int, JsonObj]]:
    """(line number, object) for each OTLP-JSON line of one file; problems go to ``problem``."""
    lineno = 0
    try:
        with _open_lines(path) as stream:
            for lineno, raw in enumerate(stream, 1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except ValueError:
                    if raw.endswith(b"\n"):
                        problem("not valid JSON, skipped", lineno)
                    else:
                        problem("not valid JSON (truncated write?), skipped", lineno)
                    continue
                if not isinstance(obj, dict) or not any(
                    k in obj or _SNAKE[k] in obj for k in SIGNAL_KEYS
                ):
                    problem(
                        "not OTLP JSON (no resourceSpans/resourceLogs/resourceMetrics), skipped",
                        lineno,
                    )
                    continue
                yield lineno, obj
    except _Unreadable as exc:
        problem(f"{exc}, skipped")
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        problem(
            f"compressed data ends early or is corrupt ({exc}), rest of file skipped", lineno + 1
        )
    except OSError as exc:
        if lineno:
            problem(f"read error ({exc.strerror or exc}), rest of file skipped", lineno + 1)
        else:
            problem(f"cannot read ({exc.strerror or exc}), skipped")
    except Exception as exc:  # noqa: BLE001 - zstandard.ZstdError and the like
        problem(f"cannot decode ({type(exc).__name__}: {exc}), rest of file skipped", lineno + 1)
    finally:
        problem.finish()


def read_telemetry(
    path: str | Path, *, on_problem: Callable[[str], None] = _default_problem
) -> Iterator[SpanRow | LogRow]:
    """Stream the span and log rows of a telemetry file or folder, line by line.

    Anything unreadable is reported through ``on_problem`` as one line naming file and line
    number (at most 20 per file, then a count) and skipped; the rest is still yielded.
    """
    try:
        files = telemetry_files(path)
    except OSError as exc:
        on_problem(str(exc))
        return
    for f in files:
        problem = _Problems(str(f), on_problem)
        for lineno, obj in _iter_file(f, problem):
            try:
                rows = rows_from_object(obj)
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                problem(f"malformed OTLP JSON ({type(exc).__name__}: {exc}), skipped", lineno)
                continue
            yield from rows
