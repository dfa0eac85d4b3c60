"""W3C trace context in llmgine metadata: how a trace crosses commands, tasks and processes.

``inject_context`` writes ``traceparent`` (and ``tracestate``) of a span into an event's or
command's ``metadata`` dict; the translator reads them back as the parent of the span that
event starts, so a command sent to another process continues the caller's trace.
``extract_context`` turns such metadata into an OpenTelemetry ``Context`` for app code.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "TRACEPARENT",
    "TRACESTATE",
    "extract_context",
    "has_context",
    "inject_context",
    "parse_traceparent",
    "session_parent_span",
    "trace_state",
]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_PROPAGATOR = TraceContextTextMapPropagator()
_EMPTY = Context()
_NO_SESSION = frozenset({"", "BUS", "None"})


def inject_context(metadata: MutableMapping[str, Any], span: Span | None = None, *,
                   overwrite: bool = False) -> bool:
    """Write ``span``'s (default: the current span's) W3C context into ``metadata``.

    Keeps an existing ``traceparent`` unless ``overwrite``; returns True when written.
    """
    if not overwrite and TRACEPARENT in metadata:
        return False
    span = trace.get_current_span() if span is None else span
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return False
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(span, _EMPTY))
    if TRACEPARENT not in carrier:
        return False
    metadata[TRACEPARENT] = carrier[TRACEPARENT]
    if TRACESTATE in carrier:
        metadata[TRACESTATE] = carrier[TRACESTATE]
    else:
        metadata.pop(TRACESTATE, None)
    return True


def extract_context(metadata: Mapping[str, Any] | None) -> Context:
    """The context whose (remote) parent is the span named by ``metadata``'s traceparent.

    Use it as ``tracer.start_as_current_span(name, context=extract_context(md))``; metadata
    without a valid traceparent gives an empty context (a new trace).
    """
    if not isinstance(metadata, Mapping):
        return Context()
    tp = metadata.get(TRACEPARENT)
    if not isinstance(tp, str):
        return Context()
    ts = metadata.get(TRACESTATE)
    carrier = {TRACEPARENT: tp, TRACESTATE: ts if isinstance(ts, str) else ""}
    return _PROPAGATOR.extract(carrier, Context())


def has_context(metadata: Mapping[str, Any] | None) -> bool:
    """Whether ``metadata`` carries a valid W3C traceparent."""
    ctx = extract_context(metadata)
    return trace.get_current_span(ctx).get_span_context().is_valid


def session_parent_span(table: Any, session_id: Any) -> Span | None:
    """The current span if valid and inside one of ``session_id``'s traces, else None.

    ``table`` is the translator's ``SpanTable``: when the session has open spans there and
    the current span is in none of their traces (say an HTTP request span is current while
    the session's commands run as traces of their own), the current span is not offered as
    a parent, so no span of one session is ever put into another trace. In the ``command``
    trace shape a session has many traces: the current command's is one of them.
    """
    span = trace.get_current_span()
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    sid = session_id if isinstance(session_id, str) else str(session_id)
    if table is not None and sid not in _NO_SESSION and \
            table.trace_belongs(sid, ctx.trace_id) is False:
        return None
    return span


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
