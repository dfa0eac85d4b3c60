"""The console summary: one short line per finished trace root, built from the trace's spans."""

from __future__ import annotations

import io
import re

from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode, set_span_in_context

from llmgine_otel.exporters.console import ConsoleSummaryExporter

from ._util import RESOURCE, make_spans


def _run(stream: io.StringIO, **kwargs: int) -> TracerProvider:
    tp = TracerProvider(resource=RESOURCE)
    tp.add_span_processor(SimpleSpanProcessor(ConsoleSummaryExporter(stream, **kwargs)))
    return tp


def test_one_line_per_root_with_counts() -> None:
    out = io.StringIO()
    tp = _run(out)
    make_spans(tp)
    tp.shutdown()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the session root and the remote-parented span
    session, remote = lines
    assert re.fullmatch(
        r"llmgine session s-1 ok \d+\.\d\ds · 4 spans · 2 LLM calls \(gpt-4o-mini, 1,234 tok\)"
        r" · 1 tool · 1 error · trace [0-9a-f]{32}",
        session,
    ), session
    assert remote.startswith("llmgine remote child ok ")
    assert remote.endswith(" · 1 span · trace 0af7651916cd43dd8448eb211c80319c")


def test_error_root_long_session_id_and_many_models() -> None:
    out = io.StringIO()
    tp = _run(out)
    tracer = tp.get_tracer("t")
    with tracer.start_as_current_span(
        "s", attributes={"llmgine.session.id": "3f2a9c1d-77"}
    ) as root:
        for model in ("m1", "m2", "m3", "m4"):
            with tracer.start_as_current_span(f"chat {model}") as span:
                span.set_attributes(
                    {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}
                )
        root.set_status(Status(StatusCode.ERROR))
    tp.shutdown()
    line = out.getvalue().strip()
    assert line.startswith("llmgine session 3f2a9c1d… error ")
    assert "· 4 LLM calls (m1, m2, m3, +1) ·" in line  # no tokens recorded: none shown
    assert "· 1 error ·" in line


def test_per_trace_tallies_are_bounded() -> None:
    out = io.StringIO()
    exporter = ConsoleSummaryExporter(out, max_traces=5)
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tp.get_tracer("t")
    roots = []
    for _ in range(20):  # children whose roots never end
        root = tracer.start_span("root")
        roots.append(root)
        with tracer.start_as_current_span("child", context=_ctx(root)):
            pass
    assert len(exporter._tallies) == 5
    for root in roots:
        root.end()
    assert len(out.getvalue().splitlines()) == 20
    tp.shutdown()


def _ctx(span: Span) -> Context:
    return set_span_in_context(span)


def test_a_closed_stream_never_fails_the_export() -> None:
    """Called directly, not through a span processor (which would swallow an exception)."""
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    mem = InMemorySpanExporter()
    tp = TracerProvider(resource=RESOURCE)
    tp.add_span_processor(SimpleSpanProcessor(mem))
    make_spans(tp)
    out = io.StringIO()
    out.close()  # writing to it raises ValueError
    exporter = ConsoleSummaryExporter(out)
    assert exporter.export(mem.get_finished_spans()) is SpanExportResult.SUCCESS
    tp.shutdown()


def test_one_trace_per_command_names_the_command_and_the_sessions_start_and_end() -> None:
    """What the package's default trace shape prints: the session's start, each command (of
    its session), the session's end."""
    from llmgine_otel.config import ObservabilityConfig
    from llmgine_otel.translate import OTelHandler

    out = io.StringIO()
    tp = _run(out)
    handler = OTelHandler(tp, config=ObservabilityConfig(emit_logs=False, console=False))
    for e in _chat_session("3f2a9c1d-77"):
        handler.handle(e)
    tp.shutdown()
    start, command, end = out.getvalue().splitlines()
    assert re.fullmatch(r"llmgine session 3f2a9c1d… started · trace [0-9a-f]{32}", start)
    assert command.startswith("llmgine command Command (session 3f2a9c1d…) error 1.00s · ")
    assert "· 1 span · 1 error · trace " in command
    assert re.fullmatch(r"llmgine session 3f2a9c1d… ended ok · trace [0-9a-f]{32}", end)


def _chat_session(sid: str) -> list[object]:
    from llmgine.bus.session import SessionEndEvent, SessionStartEvent
    from llmgine.messages.commands import Command, CommandResult
    from llmgine.messages.events import CommandResultEvent, CommandStartedEvent

    at = "2026-11-26T12:00:0{}".format
    cmd = Command(command_id="c1", session_id=sid)
    return [SessionStartEvent(session_id=sid, timestamp=at(0)),
            CommandStartedEvent(command=cmd, session_id=sid, timestamp=at(1)),
            CommandResultEvent(command_result=CommandResult(
                success=False, command_id="c1", error="boom", session_id=sid),
                session_id=sid, timestamp=at(2)),
            SessionEndEvent(session_id=sid, timestamp=at(3))]
