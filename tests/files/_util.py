"""Helpers shared by the tests/files modules: real SDK providers writing through an exporter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    set_span_in_context,
)
from opentelemetry.trace.span import TraceFlags, TraceState

RESOURCE = Resource.create({"service.name": "files-test", "deployment.environment": "test"})

ATTRS: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 34,
    "x.float": 0.25,
    "x.bool": False,
    "x.empty": "",
    "x.list": ["a", "b"],
    "x.ints": [1, 2, 3],
    "x.unicode": "héllo ✓ 日本",
}


def make_spans(tp: TracerProvider) -> None:
    """A small session trace: root, two LLM calls (one failing), a tool, a remote-parented span."""
    tracer = tp.get_tracer("llmgine_otel.test", "9.9", schema_url="https://example/schema")
    with tracer.start_as_current_span("llmgine session", attributes={"llmgine.session.id": "s-1"}):
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as span:
            span.set_attributes(ATTRS)
            span.add_event("gen_ai.choice", {"index": 0, "finish": "stop"})
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_status(Status(StatusCode.ERROR, "boom"))
        with tracer.start_as_current_span("execute_tool search") as span:
            span.set_attribute("gen_ai.tool.name", "search")
    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "v1")]),
    )
    ctx = set_span_in_context(NonRecordingSpan(remote))
    link = Link(remote, {"link.kind": "follows"})
    with tracer.start_as_current_span("remote child", context=ctx, links=[link]) as span:
        span.set_status(Status(StatusCode.OK))


def make_logs(lp: LoggerProvider, tp: TracerProvider) -> None:
    """Log records of several shapes, one inside a span so it carries trace context."""
    logger = lp.get_logger("llmgine_otel.test", "1.0")
    logger.emit(body="plain text", severity_number=SeverityNumber.INFO, severity_text="INFO")
    with tp.get_tracer("t").start_as_current_span("with-log"):
        logger.emit(
            event_name="gen_ai.client.inference.operation.details",
            body={"messages": [{"role": "user", "content": "hi"}], "n": 2, "ok": True},
            attributes={"gen_ai.request.model": "gpt-4o-mini", "k.bytes": b"\x00\xff"},
            severity_number=SeverityNumber.WARN,
        )
    logger.emit(body=None, attributes={"only": "attrs"})


def sdk_spans() -> tuple[ReadableSpan, ...]:
    """The spans of make_spans, captured in memory."""
    mem = InMemorySpanExporter()
    tp = TracerProvider(resource=RESOURCE)
    tp.add_span_processor(SimpleSpanProcessor(mem))
    make_spans(tp)
    return mem.get_finished_spans()


def sdk_logs() -> list[Any]:
    """The log records of make_logs, captured in memory (ReadableLogRecord objects)."""
    mem = InMemoryLogRecordExporter()
    lp = LoggerProvider(resource=RESOURCE)
    lp.add_log_record_processor(SimpleLogRecordProcessor(mem))
    make_logs(lp, TracerProvider(resource=RESOURCE))
    return list(mem.get_finished_logs())


@contextmanager
def providers(
    span_exporter: SpanExporter, log_exporter: LogRecordExporter | None = None
) -> Iterator[tuple[TracerProvider, LoggerProvider]]:
    """A TracerProvider and LoggerProvider exporting synchronously, shut down on exit."""
    tp = TracerProvider(resource=RESOURCE)
    tp.add_span_processor(SimpleSpanProcessor(span_exporter))
    lp = LoggerProvider(resource=RESOURCE)
    if log_exporter is not None:
        lp.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    try:
        yield tp, lp
    finally:
        tp.shutdown()
        lp.shutdown()
