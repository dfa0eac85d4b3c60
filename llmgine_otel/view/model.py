"""Group OTLP-JSON span and log rows into traces (span trees, attached logs, summaries) and
traces into sessions: one trace per session, or (one trace per command) many traces that share
a session id."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmgine_otel.cost import estimate_cost_usd
from llmgine_otel.telemetry_files import read_telemetry
from llmgine_otel.telemetry_rows import LogRow, SpanRow

STATUS_ERROR = 2
# `gen_ai.operation.name` values of a model call (the others are agents and tools).
LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})

Problem = Callable[[str], None]


def _num(value: Any) -> float | None:
    """An attribute as a number, or None (OTLP-JSON sends int64 values as strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value) if "." in value or "e" in value.lower() else int(value)
        except ValueError:
            return None
    return None


def _int(value: Any) -> int | None:
    """An attribute as an int token count, or None."""
    number = _num(value)
    return None if number is None else int(number)


@dataclass(slots=True)
class SpanNode:
    """One span in a trace tree, with its children and the log records emitted inside it."""

    row: SpanRow
    children: list[SpanNode] = field(default_factory=list)
    logs: list[LogRow] = field(default_factory=list)
    parent_missing: bool = False
    cost_usd: float | None = None
    is_llm: bool = False  # a GenAI model call (set from `gen_ai.operation.name` when added)

    @property
    def duration_ns(self) -> int:
        """The span's duration (0 when its end is missing or before its start)."""
        return max(0, self.row.end_ns - self.row.start_ns)

    @property
    def is_error(self) -> bool:
        """Whether the span ended with status ERROR."""
        return self.row.status_code == STATUS_ERROR

    @property
    def model(self) -> str | None:
        """The model that answered, else the one requested."""
        attrs = self.row.attributes
        model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
        return str(model) if model else None

    def tokens(self, which: str) -> int | None:
        """A `gen_ai.usage.<which>` token count."""
        value = self.row.attributes.get(f"gen_ai.usage.{which}")
        return value if value is None or type(value) is int else _int(value)

    def error_text(self) -> str:
        """One line saying what went wrong: error.type, the status message or an exception event."""
        attrs = self.row.attributes
        kind = str(attrs.get("error.type") or "")
        message = self.row.status_message
        for event in self.row.events:
            if event.get("name") == "exception":
                ev_attrs = event.get("attributes") or {}
                kind = kind or str(ev_attrs.get("exception.type") or "")
                message = message or str(ev_attrs.get("exception.message") or "")
        if kind and message and not message.startswith(kind):
            return f"{kind}: {message}"
        return message or kind or "error"


@dataclass(slots=True)
class Trace:
    """The spans and logs of one trace, its tree once finished, and its session summary."""

    trace_id: str
    spans: dict[str, SpanNode] = field(default_factory=dict)
    logs: list[LogRow] = field(default_factory=list)
    loose_logs: list[LogRow] = field(default_factory=list)  # logs of no span that arrived
    roots: list[SpanNode] = field(default_factory=list)
    duplicates: int = 0
    missing_parents: int = 0
    start_ns: int = 0
    end_ns: int = 0
    name: str = ""
    session_id: str | None = None
    service: str | None = None
    errors: int = 0
    llm_calls: int = 0
    priced_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def duration_ns(self) -> int:
        """Wall time from the first span start to the last span end."""
        return max(0, self.end_ns - self.start_ns)

    @property
    def status(self) -> str:
        """ERROR when any span failed, else OK."""
        return "ERROR" if self.errors else "OK"

    def add(self, row: SpanRow | LogRow) -> None:
        """Keep one row of this trace (a repeated span id keeps the first copy)."""
        if isinstance(row, LogRow):
            self.logs.append(row)
        elif row.span_id in self.spans:
            self.duplicates += 1
        else:
            operation = row.attributes.get("gen_ai.operation.name")
            llm = isinstance(operation, str) and operation in LLM_OPERATIONS
            self.spans[row.span_id] = SpanNode(row, is_llm=llm)

    def finish(self) -> None:
        """Link spans into trees, attach logs, compute the summary; orphans become roots."""
        roots: list[SpanNode] = []
        orphans: list[SpanNode] = []
        for node in self.spans.values():
            parent_id = node.row.parent_span_id
            parent = self.spans.get(parent_id) if parent_id else None
            if parent is not None and parent is not node:
                parent.children.append(node)
            elif parent_id and parent is None:
                node.parent_missing = True
                orphans.append(node)
            else:
                roots.append(node)
        roots.sort(key=_start)
        orphans.sort(key=_start)
        self.roots = roots + orphans
        self._break_cycles()
        self.missing_parents = sum(1 for root in self.roots if root.parent_missing)
        for node in self.spans.values():
            node.children.sort(key=_start)
        for log in self.logs:
            owner = self.spans.get(log.span_id) if log.span_id else None
            (owner.logs if owner is not None else self.loose_logs).append(log)
        self.logs = []
        self._summarise()

    def _break_cycles(self) -> None:
        """Make spans on a parent cycle (unreachable from any root) roots marked parent missing."""
        seen = {id(node) for node, _ in walk(self.roots)}
        if len(seen) == len(self.spans):
            return
        for node in self.spans.values():
            if id(node) in seen:
                continue
            parent = self.spans[node.row.parent_span_id]
            parent.children.remove(node)
            node.parent_missing = True
            self.roots.append(node)
            seen.update(id(n) for n, _ in walk([node]))

    def _summarise(self) -> None:
        """Fill the session summary from the spans."""
        nodes = list(self.spans.values())
        if nodes:
            self.start_ns = min(n.row.start_ns for n in nodes)
            self.end_ns = max(max(n.row.end_ns, n.row.start_ns) for n in nodes)
        elif self.loose_logs:
            self.start_ns = min(log.time_ns for log in self.loose_logs)
            self.end_ns = max(log.time_ns for log in self.loose_logs)
        top = self.roots[0] if self.roots else None
        self.name = top.row.name if top is not None else "(no spans)"
        if top is not None:
            self.service = _str_or_none(top.row.resource.get("service.name"))
            self.session_id = _session_of(top)
        for node in nodes:
            if self.session_id is None:
                self.session_id = _session_of(node)
            if node.is_error:
                self.errors += 1
            if not node.is_llm:
                continue
            self.llm_calls += 1
            self.input_tokens += node.tokens("input_tokens") or 0
            self.output_tokens += node.tokens("output_tokens") or 0
            node.cost_usd = _cost_of(node)
            if node.cost_usd is not None:
                self.priced_calls += 1
                self.cost_usd += node.cost_usd


def _start(node: SpanNode) -> tuple[int, str]:
    """Sort key: start time, then name for a stable order."""
    return (node.row.start_ns, node.row.name)


def _str_or_none(value: Any) -> str | None:
    """A non-empty attribute as text, else None."""
    return str(value) if value not in (None, "") else None


SESSION_KEYS = ("session.id", "llmgine.session.id", "gen_ai.conversation.id")
"""Attributes naming the session (conversation) a span belongs to, first found wins."""


def session_of(attrs: dict[str, Any]) -> str | None:
    """The session (conversation) id in a span's attributes, or None."""
    for key in SESSION_KEYS:
        value = _str_or_none(attrs.get(key))
        if value is not None:
            return value
    return None


def _session_of(node: SpanNode) -> str | None:
    """The llmgine session (or GenAI conversation) id a span carries."""
    return session_of(node.row.attributes)


def _cost_of(node: SpanNode) -> float | None:
    """The recorded `llmgine.cost.usd`, else an offline estimate from the token counts."""
    recorded = _num(node.row.attributes.get("llmgine.cost.usd"))
    if recorded is not None:
        return float(recorded)
    attrs = node.row.attributes
    provider = attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system")
    return estimate_cost_usd(
        str(provider) if provider else None,
        node.model,
        node.tokens("input_tokens"),
        node.tokens("output_tokens"),
        cache_read_tokens=node.tokens("cache_read.input_tokens"),
        cache_write_tokens=node.tokens("cache_creation.input_tokens"),
        reasoning_tokens=node.tokens("reasoning.output_tokens"),
    )


def walk(roots: Iterable[SpanNode]) -> Iterator[tuple[SpanNode, int]]:
    """Depth-first (node, depth) in display order, without recursion."""
    stack = [(node, 0) for node in reversed(list(roots))]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        stack.extend((child, depth + 1) for child in reversed(node.children))


@dataclass(slots=True)
class _Stats:
    """What the selection pass keeps per trace: times, errors and whether the session matched."""

    start_ns: int
    end_ns: int
    error: bool = False
    session: bool = False


def select_traces(
    path: Path,
    *,
    trace_prefix: str | None = None,
    session_id: str | None = None,
    errors_only: bool = False,
    slowest: int | None = None,
) -> set[str]:
    """Trace ids passing the filters, from a pass that keeps a few numbers per trace only."""
    stats: dict[str, _Stats] = {}
    for row in read_telemetry(path, on_problem=lambda _: None):
        if not isinstance(row, SpanRow) or not _id_matches(row.trace_id, trace_prefix):
            continue
        st = stats.get(row.trace_id)
        end = max(row.end_ns, row.start_ns)
        if st is None:
            st = stats[row.trace_id] = _Stats(row.start_ns, end)
        else:
            st.start_ns = min(st.start_ns, row.start_ns)
            st.end_ns = max(st.end_ns, end)
        st.error = st.error or row.status_code == STATUS_ERROR
        if session_id is not None and not st.session:
            attrs = row.attributes
            st.session = any(attrs.get(key) == session_id for key in SESSION_KEYS)
    chosen = {
        tid: st
        for tid, st in stats.items()
        if (session_id is None or st.session) and (not errors_only or st.error)
    }
    if slowest is not None:
        fastest_last = heapq.nlargest(
            slowest, chosen.items(), key=lambda i: i[1].end_ns - i[1].start_ns
        )
        return {tid for tid, _ in fastest_last}
    return set(chosen)


def _id_matches(trace_id: str, prefix: str | None) -> bool:
    """Whether a trace id starts with the (lower-case hex) prefix asked for."""
    return prefix is None or trace_id.startswith(prefix)


@dataclass(slots=True)
class Loaded:
    """The traces read from telemetry, in start order, and what was read."""

    traces: list[Trace]
    spans: int = 0
    logs: int = 0


def load_traces(
    path: Path,
    *,
    on_problem: Problem,
    trace_ids: set[str] | None = None,
    trace_prefix: str | None = None,
) -> Loaded:
    """Read rows into finished traces, dropping rows of traces not asked for while reading."""
    traces: dict[str, Trace] = {}
    spans = logs = 0
    for row in read_telemetry(path, on_problem=on_problem):
        if isinstance(row, SpanRow):
            spans += 1
        else:
            logs += 1
        tid = row.trace_id
        if not tid or (trace_ids is not None and tid not in trace_ids):
            continue
        if not _id_matches(tid, trace_prefix):
            continue
        trace = traces.get(tid)
        if trace is None:
            trace = traces[tid] = Trace(tid)
        trace.add(row)
    result = sorted(traces.values(), key=lambda t: t.trace_id)
    for trace in result:
        trace.finish()
        if trace.missing_parents:
            on_problem(
                f"trace {trace.trace_id}: {trace.missing_parents} span(s) whose parent never "
                "arrived, shown at the top marked (parent missing)"
            )
        if trace.duplicates:
            on_problem(f"trace {trace.trace_id}: {trace.duplicates} repeated span(s) ignored")
    result.sort(key=lambda t: (t.start_ns, t.trace_id))
    return Loaded(result, spans, logs)


@dataclass(slots=True)
class Session:
    """The traces of one session: one (a session traced as one trace) or many (one per
    command, plus the session's start and end), and totals over all of them. ``add`` keeps
    the trace, or (``keep=False``, for ``tail``) only counts it."""

    session_id: str | None
    traces: list[Trace] = field(default_factory=list)
    trace_count: int = 0
    start_ns: int = 0
    end_ns: int = 0
    errors: int = 0
    spans: int = 0
    commands: int = 0
    """Command spans (``llmgine.command.id``), nested ones included."""
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    priced_calls: int = 0
    cost_usd: float = 0.0

    def add(self, trace: Trace, *, keep: bool = True) -> None:
        """Count a finished trace into the session (and keep it, unless told not to)."""
        if keep:
            self.traces.append(trace)
        first = self.trace_count == 0
        self.trace_count += 1
        self.start_ns = trace.start_ns if first else min(self.start_ns, trace.start_ns)
        self.end_ns = trace.end_ns if first else max(self.end_ns, trace.end_ns)
        self.errors += trace.errors
        self.spans += len(trace.spans)
        self.commands += sum(1 for n in trace.spans.values()
                             if "llmgine.command.id" in n.row.attributes)
        self.llm_calls += trace.llm_calls
        self.input_tokens += trace.input_tokens
        self.output_tokens += trace.output_tokens
        self.priced_calls += trace.priced_calls
        self.cost_usd += trace.cost_usd

    @property
    def duration_ns(self) -> int:
        """From the first trace's start to the last one's end."""
        return max(0, self.end_ns - self.start_ns)

    @property
    def status(self) -> str:
        """ERROR when any span of any of its traces failed, else OK."""
        return "ERROR" if self.errors else "OK"


def group_sessions(traces: Iterable[Trace]) -> list[Session]:
    """Traces grouped by session id (a trace of no session is a group of its own), groups in
    order of their first trace's start, traces in start order within a group."""
    groups: dict[str, Session] = {}
    out: list[Session] = []
    for trace in sorted(traces, key=lambda t: (t.start_ns, t.trace_id)):
        sid = trace.session_id
        group = groups.get(sid) if sid is not None else None
        if group is None:
            group = Session(sid)
            out.append(group)
            if sid is not None:
                groups[sid] = group
        group.add(trace)
    return out


def session_json(session: Session) -> dict[str, Any]:
    """A session's summary as JSON (its traces are listed by id)."""
    return {
        "session_id": session.session_id,
        "trace_ids": [t.trace_id for t in session.traces],
        "start_ns": session.start_ns,
        "end_ns": session.end_ns,
        "duration_ms": session.duration_ns / 1e6,
        "status": session.status,
        "errors": session.errors,
        "span_count": session.spans,
        "commands": session.commands,
        "llm_calls": session.llm_calls,
        "input_tokens": session.input_tokens,
        "output_tokens": session.output_tokens,
        "cost_usd": session.cost_usd if session.priced_calls else None,
        "priced_calls": session.priced_calls,
    }


def json_default(value: Any) -> Any:
    """JSON for what OTLP attributes can hold beyond JSON: bytes as hex."""
    return value.hex() if isinstance(value, bytes) else str(value)


def _log_json(log: LogRow) -> dict[str, Any]:
    """A log record as JSON."""
    return {
        "time_ns": log.time_ns,
        "span_id": log.span_id,
        "severity_number": log.severity_number,
        "severity_text": log.severity_text,
        "event_name": log.event_name,
        "body": log.body,
        "attributes": log.attributes,
    }


def trace_json(trace: Trace) -> dict[str, Any]:
    """A trace summary with its spans in tree order (``depth`` gives the nesting) as JSON."""
    spans = []
    for node, depth in walk(trace.roots):
        row = node.row
        spans.append(
            {
                "span_id": row.span_id,
                "parent_span_id": row.parent_span_id,
                "depth": depth,
                "name": row.name,
                "kind": row.kind,
                "start_ns": row.start_ns,
                "end_ns": row.end_ns,
                "offset_ms": (row.start_ns - trace.start_ns) / 1e6,
                "duration_ms": node.duration_ns / 1e6,
                "status_code": row.status_code,
                "status_message": row.status_message,
                "parent_missing": node.parent_missing,
                "cost_usd": node.cost_usd,
                "scope": row.scope,
                "attributes": row.attributes,
                "events": row.events,
                "logs": [_log_json(log) for log in node.logs],
            }
        )
    return {
        "trace_id": trace.trace_id,
        "name": trace.name,
        "session_id": trace.session_id,
        "service": trace.service,
        "start_ns": trace.start_ns,
        "end_ns": trace.end_ns,
        "duration_ms": trace.duration_ns / 1e6,
        "status": trace.status,
        "errors": trace.errors,
        "span_count": len(trace.spans),
        "llm_calls": trace.llm_calls,
        "input_tokens": trace.input_tokens,
        "output_tokens": trace.output_tokens,
        "cost_usd": trace.cost_usd if trace.priced_calls else None,
        "priced_calls": trace.priced_calls,
        "missing_parents": trace.missing_parents,
        "spans": spans,
        "other_logs": [_log_json(log) for log in trace.loose_logs],
    }
