"""Shared helpers for the core unit tests: an OTelHandler wired to in-memory SDK exporters,
and builders for the real llmgine events (llmgine is importable on Python >= 3.12)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmgine_otel.config import ObservabilityConfig
from llmgine_otel.metrics import histogram_views
from llmgine_otel.translate import OTelHandler

T0 = datetime(2026, 11, 26, 12, 0, 0)


def ts(seconds: float) -> str:
    """A naive local ISO timestamp ``seconds`` after T0 (llmgine's format)."""
    return (T0 + timedelta(seconds=seconds)).isoformat()


def ns(seconds: float) -> int:
    """What ``ts(seconds)`` means in epoch nanoseconds (local time, like llmgine)."""
    return int((T0 + timedelta(seconds=seconds)).timestamp() * 1_000_000) * 1000


def etype(record: Any) -> str:
    """The class name of the bus event a log record was made from (``llmgine.event.type``);
    the record's ``event_name`` is the registry event its mapping rule names."""
    return str((record.attributes or {}).get("llmgine.event.type", ""))


class Harness:
    """An OTelHandler with in-memory span/log exporters and a metric reader."""

    def __init__(self, clock: Any = None, **config: Any) -> None:
        self.config = ObservabilityConfig(**config)
        self.span_exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.span_exporter))
        self.log_exporter = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider(shutdown_on_exit=False)
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.log_exporter))
        self.metric_reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metric_reader],
                                            views=histogram_views(), shutdown_on_exit=False)
        self.handler = OTelHandler(self.tracer_provider, self.logger_provider,
                                   self.meter_provider, self.config)
        if clock is not None:
            self.handler.table._clock = clock

    # -- feeding ---------------------------------------------------------------------------
    def handle(self, *events: Any) -> None:
        for e in events:
            self.handler.handle(e)

    @property
    def outcomes(self) -> dict[str, int]:
        return dict(self.handler.stats.outcomes)

    # -- reading ---------------------------------------------------------------------------
    def spans(self) -> list[ReadableSpan]:
        return list(self.span_exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, (name, [s.name for s in self.spans()])
        return found[0]

    def logs(self) -> list[Any]:
        return [d.log_record for d in self.log_exporter.get_finished_logs()]

    def log(self, event_type: str) -> Any:
        """The one log record made from an event of class ``event_type``."""
        found = [r for r in self.logs() if etype(r) == event_type]
        assert len(found) == 1, (event_type, [etype(r) for r in self.logs()])
        return found[0]

    def all_text(self) -> str:
        """Every span name/attribute/event/status and log body/attribute, as one string."""
        parts: list[str] = []
        for s in self.spans():
            parts.append(s.name)
            parts.append(repr(dict(s.attributes or {})))
            parts.append(repr(s.status.description))
            for ev in s.events:
                parts.append(repr(dict(ev.attributes or {})))
        for r in self.logs():
            parts.append(json.dumps(r.body, default=repr, ensure_ascii=False))
            parts.append(repr(dict(r.attributes or {})))
        return "\n".join(parts)

    def metrics(self) -> dict[str, Any]:
        data = self.metric_reader.get_metrics_data()
        out: dict[str, Any] = {}
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out[m.name] = m
        return out

    def close(self) -> None:
        self.handler.end_open_spans()
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()


def assert_well_formed(spans: list[ReadableSpan]) -> None:
    """Every parent exists in the same trace; no span ends before it starts."""
    by_id = {s.context.span_id: s for s in spans}
    for s in spans:
        assert s.end_time is not None and s.end_time >= s.start_time, s.name
        if s.parent is not None:
            parent = by_id.get(s.parent.span_id)
            assert parent is not None, f"{s.name}: parent missing"
            assert parent.context.trace_id == s.context.trace_id, s.name


def parent_of(child: ReadableSpan, parent: ReadableSpan) -> bool:
    return (child.parent is not None and child.parent.span_id == parent.context.span_id
            and child.context.trace_id == parent.context.trace_id)


def under_session(h: Harness, span: ReadableSpan, sid: str = "s1") -> bool:
    """``span`` is where ``h``'s trace shape puts a span whose parent is the session: its
    child (``session``), or the root of a trace of its own with a span link to the session's
    start (``command``)."""
    sess = next(s for s in h.spans() if s.name == "session"
                and s.attributes["llmgine.session.id"] == sid)
    if h.config.trace_per == "session":
        return parent_of(span, sess)
    return (span.parent is None and span.context.trace_id != sess.context.trace_id
            and [lk.context.span_id for lk in span.links] == [sess.context.span_id])


def session_end_span(h: Harness, sid: str = "s1") -> ReadableSpan:
    """The span that carries the session's end (its time and status): the session span, or
    (``command`` shape) the ``session end`` span, linked to the session's start mark."""
    command_shape = h.config.trace_per == "command"
    name = "session end" if command_shape else "session"
    (span,) = [s for s in h.spans() if s.name == name
               and s.attributes["llmgine.session.id"] == sid]
    if command_shape:
        starts = [s for s in h.spans() if s.name == "session"
                  and s.attributes["llmgine.session.id"] == sid]
        assert span.parent is None and span.start_time == span.end_time
        assert [lk.context.span_id for lk in span.links] == [starts[-1].context.span_id]
        assert all(s.start_time == s.end_time for s in starts)  # marks: never open
    return span


# -- llmgine events --------------------------------------------------------------------------

def session_start(sid: str, t: float = 0.0, **kw: Any) -> Any:
    from llmgine.bus.session import SessionStartEvent

    return SessionStartEvent(session_id=sid, timestamp=ts(t), **kw)


def session_end(sid: str, t: float = 10.0, error: Exception | None = None, **kw: Any) -> Any:
    from llmgine.bus.session import SessionEndEvent

    return SessionEndEvent(session_id=sid, timestamp=ts(t), error=error, **kw)


def command(sid: str, cid: str, **kw: Any) -> Any:
    from llmgine.messages.commands import Command

    return Command(command_id=cid, session_id=sid, **kw)


def command_started(sid: str, cid: str, t: float = 1.0, cmd: Any = None) -> Any:
    from llmgine.messages.events import CommandStartedEvent

    return CommandStartedEvent(command=cmd or command(sid, cid), session_id=sid,
                               timestamp=ts(t))


def command_result(sid: str, cid: str, t: float = 2.0, success: bool = True,
                   error: str | None = None, result: Any = None) -> Any:
    from llmgine.messages.commands import CommandResult
    from llmgine.messages.events import CommandResultEvent

    return CommandResultEvent(
        command_result=CommandResult(success=success, command_id=cid, error=error,
                                     result=result, session_id=sid),
        session_id=sid, timestamp=ts(t))


def tool_result(sid: str, call_id: str = "call-1", t: float = 1.5, ok: bool = True,
                name: str = "get_weather", **kw: Any) -> Any:
    from llmgine.llm.tools.tool_events import ToolExecuteResultEvent

    return ToolExecuteResultEvent(execution_succeed=ok, tool_name=name, tool_call_id=call_id,
                                  session_id=sid, timestamp=ts(t), **kw)


def llm_started(sid: str, call_id: str = "llm-1", t: float = 1.1, **kw: Any) -> Any:
    from llmgine_otel.events import LLMCallStartedEvent

    kw.setdefault("model", "gpt-4o")
    kw.setdefault("provider", "openai")
    return LLMCallStartedEvent(call_id=call_id, session_id=sid, timestamp=ts(t), **kw)


def llm_finished(sid: str, call_id: str = "llm-1", t: float = 1.4, **kw: Any) -> Any:
    from llmgine_otel.events import LLMCallFinishedEvent

    return LLMCallFinishedEvent(call_id=call_id, session_id=sid, timestamp=ts(t), **kw)


def tool_started(sid: str, call_id: str = "call-1", t: float = 1.2, name: str = "get_weather",
                 **kw: Any) -> Any:
    from llmgine_otel.events import ToolExecutionStartedEvent

    return ToolExecutionStartedEvent(tool_call_id=call_id, tool_name=name, session_id=sid,
                                     timestamp=ts(t), **kw)


def tool_finished(sid: str, call_id: str = "call-1", t: float = 1.5, **kw: Any) -> Any:
    from llmgine_otel.events import ToolExecutionFinishedEvent

    return ToolExecutionFinishedEvent(tool_call_id=call_id, session_id=sid, timestamp=ts(t),
                                      **kw)


@contextmanager
def translator_failures() -> Iterator[list[tuple[Any, BaseException]]]:
    """Every event that reached the translator's safety net (``OTelHandler._unreadable``),
    with its exception: hostile input must be handled where it is read, and a failure that
    starts inside llmgine_otel is a bug (``is_ours``), not bad input."""
    from llmgine_otel.translate import OTelHandler

    failures: list[tuple[Any, BaseException]] = []
    original = OTelHandler._unreadable

    def record(self: Any, event: Any, exc: Exception) -> None:
        failures.append((event, exc))
        original(self, event, exc)

    OTelHandler._unreadable = record  # type: ignore[method-assign]
    try:
        yield failures
    finally:
        OTelHandler._unreadable = original  # type: ignore[method-assign]


def is_ours(exc: BaseException) -> bool:
    """The exception was raised by code of this package (its innermost frame is ours)."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and "/llmgine_otel/" in frames[-1].filename


# -- exporters for pipeline tests ----------------------------------------------------------

class Gate:
    """Exporters that block on the gate until it opens; they remember what they got."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()
        self.log_entered = threading.Event()


class BlockedSpans(SpanExporter):
    def __init__(self, gate: Gate, fail: bool = False) -> None:
        self.gate, self.fail, self.got = gate, fail, []

    def export(self, spans):
        self.gate.entered.set()
        self.gate.open.wait(10)
        self.got.extend(spans)
        return SpanExportResult.FAILURE if self.fail else SpanExportResult.SUCCESS

    def shutdown(self):
        self.gate.open.set()


class BlockedLogs(LogRecordExporter):
    def __init__(self, gate: Gate) -> None:
        self.gate, self.got = gate, []

    def export(self, batch):
        self.gate.log_entered.set()
        self.gate.open.wait(10)
        self.got.extend(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self):
        self.gate.open.set()

    def force_flush(self, timeout_millis=0):
        return True


def full_queue_drops(strategy: str) -> str:
    """What a full export queue drops under ``strategy``: the public queue path cannot reach
    the oldest item, so it drops the new one whatever the strategy (pipeline._Managed)."""
    from llmgine_otel import fast_paths

    return strategy if fast_paths.decide("queue").enabled else "drop_newest"

