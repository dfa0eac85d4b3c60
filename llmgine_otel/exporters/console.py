"""A span exporter that prints one short human line per finished trace root, not span dumps."""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

from llmgine_otel.mapping import SESSION_END_NAME

MAX_TRACES = 10_000
_LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
_MAX_MODELS_SHOWN = 3


@dataclass(slots=True)
class _Tally:
    """What one trace did so far."""

    spans: int = 0
    llm_calls: int = 0
    tokens: int = 0
    has_tokens: bool = False
    tools: int = 0
    errors: int = 0
    models: list[str] = field(default_factory=list)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _short(text: str, width: int = 8) -> str:
    return text if len(text) <= width else text[:width] + "…"


class ConsoleSummaryExporter(SpanExporter):
    """Prints e.g. ``llmgine session 3f2a… ok 1.84s · 6 spans · 2 LLM calls (gpt-4o-mini,
    1,234 tok) · 2 tools · 1 error · trace <32 hex>`` when a trace's root span ends. With one
    trace per command: ``llmgine command ChatCommand (session 3f2a…) ok 1.84s · ...`` per
    command, and ``llmgine session 3f2a… started`` / ``... ended ok`` for the session.

    A root is a span with no parent or a remote parent. Per-trace tallies are bounded
    (``max_traces``, oldest evicted). ``stream`` defaults to the current ``sys.stderr``.
    """

    def __init__(self, stream: TextIO | None = None, *, max_traces: int = MAX_TRACES) -> None:
        self._stream = stream
        self._max_traces = max_traces
        self._tallies: OrderedDict[int, _Tally] = OrderedDict()
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines: list[str] = []
        with self._lock:
            for span in spans:
                line = self._add(span)
                if line:
                    lines.append(line)
        if lines:
            stream = self._stream or sys.stderr
            try:
                stream.write("".join(f"{line}\n" for line in lines))
                stream.flush()
            except (OSError, ValueError):  # closed or broken stream: never fail the export
                pass
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._tallies.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def _add(self, span: ReadableSpan) -> str | None:
        """Count the span into its trace; the summary line if it is the trace's root."""
        ctx = span.get_span_context()
        if ctx is None:
            return None
        tally = self._tallies.get(ctx.trace_id)
        if tally is None:
            tally = self._tallies[ctx.trace_id] = _Tally()
            if len(self._tallies) > self._max_traces:
                self._tallies.popitem(last=False)
        attrs = span.attributes or {}
        tally.spans += 1
        operation = attrs.get("gen_ai.operation.name")
        if operation in _LLM_OPERATIONS:
            tally.llm_calls += 1
            model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
            if isinstance(model, str) and model not in tally.models:
                tally.models.append(model)
            for key in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"):
                value = attrs.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    tally.tokens += value
                    tally.has_tokens = True
        elif operation == "execute_tool" or "gen_ai.tool.name" in attrs:
            tally.tools += 1
        if span.status.status_code is StatusCode.ERROR:
            tally.errors += 1
        parent = span.parent
        if parent is not None and not parent.is_remote:
            return None
        del self._tallies[ctx.trace_id]
        return _summary(span, tally, f"{ctx.trace_id:032x}")


def _summary(root: ReadableSpan, tally: _Tally, trace_id: str) -> str:
    attrs = root.attributes or {}
    session = attrs.get("llmgine.session.id")
    ok = root.status.status_code is not StatusCode.ERROR
    seconds = ((root.end_time or 0) - (root.start_time or 0)) / 1e9
    if session is None:
        label = root.name
    elif "llmgine.command.id" in attrs:  # one trace per command: the command, of its session
        label = f"{root.name} (session {_short(str(session))})"
    else:
        label = f"session {_short(str(session))}"
        # One trace per command: the session's own small spans, its start and its end.
        if root.name == SESSION_END_NAME:
            return f"llmgine {label} ended {'ok' if ok else 'error'} · trace {trace_id}"
        if tally.spans == 1 and seconds == 0:
            return f"llmgine {label} started · trace {trace_id}"
    parts = [
        f"llmgine {label} {'ok' if ok else 'error'} {seconds:.2f}s",
        _plural(tally.spans, "span"),
    ]
    if tally.llm_calls:
        details = tally.models[:_MAX_MODELS_SHOWN]
        if len(tally.models) > _MAX_MODELS_SHOWN:
            details = [*details, f"+{len(tally.models) - _MAX_MODELS_SHOWN}"]
        detail = ", ".join(details)
        if tally.has_tokens:
            detail = f"{detail}, {tally.tokens:,} tok" if detail else f"{tally.tokens:,} tok"
        llm = _plural(tally.llm_calls, "LLM call")
        parts.append(f"{llm} ({detail})" if detail else llm)
    if tally.tools:
        parts.append(_plural(tally.tools, "tool"))
    if tally.errors:
        parts.append(_plural(tally.errors, "error"))
    parts.append(f"trace {trace_id}")
    return " · ".join(parts)
