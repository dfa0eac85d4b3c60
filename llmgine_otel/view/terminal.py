"""Render traces as a terminal waterfall: an indented span tree with a time bar per span."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from llmgine_otel.view.model import Session, SpanNode, Trace, walk

_RESET = "\x1b[0m"
_CODES = {"red": "1;31", "bold": "1", "dim": "2", "cyan": "36", "yellow": "33", "magenta": "35"}
_OPERATION_COLOURS = {"execute_tool": "yellow", "invoke_agent": "magenta"}


@dataclass(frozen=True, slots=True)
class Style:
    """How to draw: ANSI colour or not, Unicode blocks or ASCII."""

    color: bool = False
    unicode: bool = True

    def paint(self, text: str, name: str) -> str:
        """``text`` in the named colour when colour is on."""
        return f"\x1b[{_CODES[name]}m{text}{_RESET}" if self.color and text else text

    @property
    def block(self) -> str:
        """The character of a time bar."""
        return "█" if self.unicode else "#"

    @property
    def arrow(self) -> str:
        """The marker of a detail line under a span."""
        return "↳" if self.unicode else ">"

    @property
    def cross(self) -> str:
        """The marker of an error line."""
        return "✗" if self.unicode else "x"


def choose_style(mode: str, stream: TextIO) -> Style:
    """Colour for --color always, or auto on a TTY without NO_COLOR; Unicode if it encodes."""
    if mode == "always":
        color = True
    elif mode == "never":
        color = False
    else:
        color = stream.isatty() and not os.environ.get("NO_COLOR")
    try:
        "█↳✗·→".encode(getattr(stream, "encoding", None) or "utf-8")
        unicode = True
    except (UnicodeEncodeError, LookupError):
        unicode = False
    return Style(color=color, unicode=unicode)


def fmt_duration(ns: int) -> str:
    """A duration the way people read it: 850µs, 12.3ms, 1.234s, 2m03.4s."""
    if ns < 1_000_000:
        return f"{ns / 1000:.0f}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.1f}ms"
    if ns < 60_000_000_000:
        return f"{ns / 1e9:.3f}s"
    if ns < 3_600_000_000_000:
        minutes, rest = divmod(ns / 1e9, 60)
        return f"{int(minutes)}m{rest:04.1f}s"
    hours, rest_s = divmod(round(ns / 1e9), 3600)
    return f"{hours}h{rest_s // 60:02d}m{rest_s % 60:02d}s"


def fmt_cost(usd: float) -> str:
    """A USD amount with precision fitting its size."""
    if usd == 0:
        return "$0"
    if usd >= 1:
        return f"${usd:,.2f}"
    if usd >= 0.01:
        return f"${usd:.4f}"
    if usd >= 0.000001:
        return f"${usd:.6f}"
    return "<$0.000001"


def fmt_time(ns: int) -> str:
    """A Unix-nanosecond time in UTC to the millisecond."""
    seconds, rest = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.") + f"{rest // 1_000_000:03d}Z"


def _tokens(node: SpanNode) -> str:
    """'1,200 in / 150 out tokens (300 cached, 50 reasoning)' for an LLM span."""
    inp, out = node.tokens("input_tokens"), node.tokens("output_tokens")
    if inp is None and out is None:
        return ""
    text = f"{inp or 0:,} in / {out or 0:,} out tokens"
    extra = [
        f"{count:,} {label}"
        for label, key in (
            ("cached", "cache_read.input_tokens"),
            ("reasoning", "reasoning.output_tokens"),
        )
        if (count := node.tokens(key))
    ]
    return f"{text} ({', '.join(extra)})" if extra else text


def _cost(trace: Trace | Session) -> str:
    """The trace's (or session's) cost, saying how many calls were priced when not all were."""
    if not trace.priced_calls:
        return ""
    text = fmt_cost(trace.cost_usd)
    if trace.priced_calls < trace.llm_calls:
        text += f" ({trace.priced_calls}/{trace.llm_calls} calls priced)"
    return text


def _plural(count: int, noun: str) -> str:
    """'1 span', '2 spans'."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def title(trace: Trace) -> str:
    """What the trace is: 'session <id>', or the root span's name and the session."""
    if trace.session_id and trace.name == "session":
        return f"session {trace.session_id}"
    if trace.session_id:
        return f"{trace.name} (session {trace.session_id})"
    return trace.name


def summary_parts(trace: Trace) -> list[str]:
    """The facts of a session summary, in reading order (the status is the second)."""
    parts = [fmt_duration(trace.duration_ns)]
    errors = f" ({_plural(trace.errors, 'error')})" if trace.errors else ""
    parts.append(trace.status + errors)
    parts.append(_plural(len(trace.spans), "span"))
    if trace.llm_calls:
        parts.append(_plural(trace.llm_calls, "LLM call"))
    if trace.input_tokens or trace.output_tokens:
        parts.append(f"{trace.input_tokens:,} in / {trace.output_tokens:,} out tokens")
    if cost := _cost(trace):
        parts.append(cost)
    return parts


def summary_line(trace: Trace, style: Style) -> str:
    """One line per session, as `tail` prints it."""
    parts = summary_parts(trace)
    if trace.errors:
        parts[1] = style.paint(parts[1], "red")
    return "  ".join([fmt_time(trace.start_ns), title(trace), *parts, f"trace {trace.trace_id}"])


def _clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, marking the cut."""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…" if width > 0 else ""


def _pack(parts: list[str], width: int) -> list[str]:
    """Facts joined by ' · ' on indented lines no wider than ``width``."""
    lines: list[str] = []
    line = ""
    for part in parts:
        candidate = f"{line} · {part}" if line else f"  {part}"
        if line and len(candidate) > width:
            lines.append(line)
            candidate = f"  {part}"
        line = candidate
    lines.append(line)
    return [_clip(x, width) for x in lines]


@dataclass(frozen=True, slots=True)
class _Layout:
    """Column widths of a waterfall line."""

    label: int
    bar: int

    @classmethod
    def for_width(cls, width: int) -> _Layout:
        """Split the width: 40% label, the rest a bar, then duration (9) and status (5)."""
        width = max(width, 60)
        label = max(24, width * 2 // 5)
        return cls(label=label, bar=max(10, width - label - 17))


def _bar(node: SpanNode, trace: Trace, cells: int, style: Style) -> str:
    """The span's place in the trace as filled cells on an empty track."""
    total = trace.duration_ns or 1
    first = min(cells - 1, (node.row.start_ns - trace.start_ns) * cells // total)
    last = max(
        first + 1, -(-(node.row.start_ns + node.duration_ns - trace.start_ns) * cells // total)
    )
    last = min(last, cells)
    operation = node.row.attributes.get("gen_ai.operation.name")
    colour = "red" if node.is_error else "cyan" if node.is_llm else ""
    colour = colour or (_OPERATION_COLOURS.get(operation, "") if isinstance(operation, str) else "")
    filled = style.block * (last - first)
    filled = style.paint(filled, colour) if colour else filled
    return " " * first + filled + " " * (cells - last)


def _details(node: SpanNode) -> list[tuple[str, str]]:
    """Extra lines under a span: (text, colour) for the model call, tool, or error."""
    lines: list[tuple[str, str]] = []
    attrs = node.row.attributes
    if node.is_llm:
        facts = [x for x in (node.model or "", _tokens(node)) if x]
        if node.cost_usd is not None:
            facts.append(fmt_cost(node.cost_usd))
        if facts:
            lines.append((" · ".join(facts), "dim"))
    tool = attrs.get("gen_ai.tool.name")
    if tool and str(tool) not in node.row.name:
        lines.append((f"tool {tool}", "dim"))
    if node.is_error:
        lines.append((node.error_text(), "red"))
    return lines


def render_trace(trace: Trace, *, width: int, style: Style) -> Iterator[str]:
    """The lines of one trace: a header, the summary, then the waterfall."""
    layout = _Layout.for_width(width)
    head = [title(trace), f"trace {trace.trace_id}"]
    if trace.service:
        head.append(f"service {trace.service}")
    yield style.paint(_clip(" · ".join(head), width), "bold")
    for line in _pack([fmt_time(trace.start_ns), *summary_parts(trace)], width):
        yield style.paint(line, "red") if trace.errors else line
    for node, depth in walk(trace.roots):
        indent = "  " * depth
        mark = " (parent missing)" if node.parent_missing else ""
        label = (_clip(indent + node.row.name, layout.label - len(mark)) + mark).ljust(layout.label)
        status = "ERROR" if node.is_error else ""
        if node.is_error:
            label = style.paint(label, "red")
            status = style.paint(status, "red")
        bar = _bar(node, trace, layout.bar, style)
        yield f"{label} {bar} {fmt_duration(node.duration_ns):>9} {status}".rstrip()
        for text, colour in _details(node):
            marker = style.cross if colour == "red" else style.arrow
            yield style.paint(_clip(f"{indent}  {marker} {text}", width), colour)
    if trace.loose_logs:
        yield style.paint(
            f"  {len(trace.loose_logs)} log record(s) of spans not in the file", "dim"
        )


def session_parts(session: Session) -> list[str]:
    """The facts of a session of several traces, in reading order (the status is the second)."""
    parts = [fmt_duration(session.duration_ns)]
    errors = f" ({_plural(session.errors, 'error')})" if session.errors else ""
    parts.append(session.status + errors)
    parts.append(_plural(session.commands, "command"))
    parts.append(_plural(session.spans, "span"))
    if session.llm_calls:
        parts.append(_plural(session.llm_calls, "LLM call"))
    if session.input_tokens or session.output_tokens:
        parts.append(f"{session.input_tokens:,} in / {session.output_tokens:,} out tokens")
    if cost := _cost(session):
        parts.append(cost)
    return parts


def render_session_head(session: Session, *, width: int, style: Style) -> Iterator[str]:
    """The header of a session traced as several traces (one per command): what it is, how
    many traces, then its totals; its traces follow."""
    service = next((t.service for t in session.traces if t.service), None)
    head = [f"session {session.session_id}", _plural(session.trace_count, "trace")]
    if service:
        head.append(f"service {service}")
    yield style.paint(_clip(" · ".join(head), width), "bold")
    for line in _pack([fmt_time(session.start_ns), *session_parts(session)], width):
        yield style.paint(line, "red") if session.errors else line


def render(sessions: Iterable[Session], *, width: int, style: Style) -> Iterator[str]:
    """Every session's traces together (a header first when it has several), each trace's
    waterfall a blank line apart, then one line of totals."""
    count = spans = failed = grouped = 0
    for session in sessions:
        if len(session.traces) > 1:
            if count:
                yield ""
            yield from render_session_head(session, width=width, style=style)
            grouped += 1
        for trace in session.traces:
            if count:
                yield ""
            yield from render_trace(trace, width=width, style=style)
            count += 1
            spans += len(trace.spans)
            failed += bool(trace.errors)
    if count:
        yield ""
        totals = f"{_plural(count, 'trace')} · {_plural(spans, 'span')} · {failed:,} with errors"
        if grouped:
            totals += f" · {_plural(grouped, 'session')} of several traces"
        yield totals
