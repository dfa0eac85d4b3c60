"""Reading events: field paths, span-name templates, event times, W3C traceparent.

Compiled once per mapping rule; what runs per event is a few attribute look-ups. Nothing
here raises on odd input: a missing or malformed value reads as ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from opentelemetry.trace import TraceState

from llmgine_otel.content import safe_str, valid_utf8

__all__ = ["compile_name", "compile_path", "error_type", "event_time_ns", "parse_traceparent",
           "trace_state"]

_ERROR_TYPE_RE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Timeout|Interrupt)\w*):")
_EPOCH = datetime(1970, 1, 1)

_mapping_types: dict[type, bool] = {}


def _step(obj: Any, name: str) -> Any:
    """One path step: a dict key or an attribute (Mapping-ness cached per class)."""
    cls = obj.__class__
    if cls is dict:
        return obj.get(name)
    is_map = _mapping_types.get(cls)
    if is_map is None:
        is_map = isinstance(obj, Mapping)
        if len(_mapping_types) < 4096:
            _mapping_types[cls] = is_map
    return obj.get(name) if is_map else getattr(obj, name, None)


def compile_path(path: str) -> Callable[[Any], Any]:
    """``a.b|c:type|=const`` -> a function of the event returning the first non-empty value."""
    alternatives: list[Callable[[Any], Any]] = []
    for alt in path.split("|"):
        if alt.startswith("="):
            alternatives.append(_constant(alt[1:]))
            continue
        as_type = alt.endswith(":type")
        parts = tuple((alt[:-5] if as_type else alt).split("."))
        if len(parts) == 1 and not as_type:  # a field of the event itself: the common case
            alternatives.append(_field(parts[0]))
            continue

        def get(e: Any, parts: tuple[str, ...] = parts, as_type: bool = as_type) -> Any:
            for p in parts:
                e = _step(e, p)
                if e is None:
                    return None
            return type(e).__name__ if as_type else e

        alternatives.append(get)
    if len(alternatives) == 1:
        return alternatives[0]

    def first(e: Any) -> Any:
        for alt_get in alternatives:
            v = alt_get(e)
            if v is not None and v != "":
                return v
        return None

    return first


def _field(name: str) -> Callable[[Any], Any]:
    def field(e: Any) -> Any:
        return e.get(name) if e.__class__ is dict else getattr(e, name, None)

    return field


def _constant(value: str) -> Callable[[Any], Any]:
    def const(_event: Any) -> str:
        return value

    return const


_TEMPLATE_RE = re.compile(r"\{([^}]+)\}")


def compile_name(template: str) -> Callable[[Any], str]:
    """A span-name template such as ``{operation} {model}`` -> a function of the event."""
    pieces: list[str | Callable[[Any], Any]] = []
    pos = 0
    for m in _TEMPLATE_RE.finditer(template):
        pieces.append(template[pos:m.start()])
        pieces.append(compile_path(m.group(1)))
        pos = m.end()
    pieces.append(template[pos:])

    def render(e: Any) -> str:
        out = []
        for p in pieces:
            if isinstance(p, str):
                out.append(p)
            else:
                v = p(e)
                out.append(v if isinstance(v, str) else ("" if v is None else safe_str(v)))
        # valid UTF-8: a lone surrogate in a name fails the whole export batch
        return valid_utf8("".join(out).strip()[:256]) or template.split(" ")[0]

    return render


# -- event times ---------------------------------------------------------------------------

_offsets: dict[str, int] = {}


def event_time_ns(value: Any) -> int | None:
    """An event ``timestamp`` (ISO string, naive = local time; or epoch s/ns) -> epoch ns."""
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
            if dt.tzinfo is not None:
                out = int(dt.timestamp() * 1_000_000) * 1000
            else:
                local_us = (dt - _EPOCH) // _ONE_US
                key = value[:13]  # local offset only changes on the hour (DST)
                off = _offsets.get(key)
                if off is None:
                    if len(_offsets) > 4096:
                        _offsets.clear()
                    off = _offsets[key] = round(dt.timestamp() * 1_000_000) - local_us
                out = (local_us + off) * 1000
        except (ValueError, OverflowError, OSError):  # e.g. year 1: "year 0 is out of range"
            return None
        # OTLP times are unsigned 64-bit: anything before 1970 or past 2262 is unusable.
        return out if 0 < out < _MAX_NS else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value > 1e17:  # already ns
        return int(value) if value < _MAX_NS else None
    if value > 0:
        return int(value * 1e9) if value * 1e9 < _MAX_NS else None
    return None


_MAX_NS = 2**63


_ONE_US = datetime(1970, 1, 1, 0, 0, 0, 1) - _EPOCH


def error_type(error: Any, explicit: Any) -> str:
    if isinstance(explicit, str) and explicit:
        return valid_utf8(explicit[:128])
    if isinstance(error, BaseException):
        return type(error).__qualname__
    if isinstance(error, str):
        m = _ERROR_TYPE_RE.match(error)
        if m:
            return m.group(1)
    return "_OTHER"


def parse_traceparent(tp: str) -> tuple[int, int, int] | None:
    """``00-<trace id>-<span id>-<flags>`` -> ints; None when malformed or all-zero."""
    if len(tp) < 55 or tp[2] != "-" or tp[35] != "-" or tp[52] != "-" or tp[:2] == "ff":
        return None
    if tp[:2] == "00" and len(tp) != 55:
        return None
    try:
        trace_id, span_id, flags = int(tp[3:35], 16), int(tp[36:52], 16), int(tp[53:55], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, flags


def trace_state(raw: Any) -> TraceState | None:
    if not raw or raw.__class__ is not str:
        return None
    try:
        return TraceState.from_header([raw])
    except Exception:  # noqa: BLE001 - a bad tracestate is dropped, not fatal
        return None
