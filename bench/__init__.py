"""Benchmarks for llmgine-otel (issue 6). Not tests; they do not run in CI.

Run the suite with ``python -m bench [--quick] [--only NAME] [--collector]``. Each benchmark
runs in a fresh subprocess (``python -m bench._worker NAME``) so global providers, threads,
memory and the import cache of one cannot colour the next.

This module holds what every benchmark shares: the standard workload (real llmgine event
classes), null exporters, our side (``configure``) and the raw-SDK side, and statistics.
"""

from __future__ import annotations

import gc
import itertools
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

__all__ = [
    "LLMGINE_ONLY",
    "NullLogExporter",
    "NullSpanExporter",
    "SlowLogExporter",
    "SlowSpanExporter",
    "build_ours",
    "build_raw",
    "make_session",
    "make_sessions",
    "summary",
]

STANDARD_EVENTS = 10
STANDARD_SPANS = 6
STANDARD_LOGS = 10

# -- null / slow exporters -----------------------------------------------------------------


def _results() -> tuple[Any, Any]:
    from opentelemetry.sdk._logs.export import LogRecordExportResult
    from opentelemetry.sdk.trace.export import SpanExportResult

    return SpanExportResult.SUCCESS, LogRecordExportResult.SUCCESS


class NullSpanExporter:
    """Accepts every batch at once (returns SUCCESS)."""

    def __init__(self) -> None:
        self.count = 0
        self._ok = _results()[0]

    def export(self, batch: Sequence[Any]) -> Any:
        self.count += len(batch)
        return self._ok

    def shutdown(self, *a: Any, **k: Any) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class NullLogExporter(NullSpanExporter):
    def __init__(self) -> None:
        super().__init__()
        self._ok = _results()[1]


class SlowSpanExporter(NullSpanExporter):
    """Sleeps ``per_batch_s + per_item_s * len(batch)`` per export call (a slow backend;
    the GIL is free while it waits)."""

    def __init__(self, per_batch_s: float = 0.0, per_item_s: float = 0.0) -> None:
        super().__init__()
        self.per_batch_s = per_batch_s
        self.per_item_s = per_item_s

    def export(self, batch: Sequence[Any]) -> Any:
        time.sleep(self.per_batch_s + self.per_item_s * len(batch))
        return super().export(batch)


class SlowLogExporter(SlowSpanExporter):
    def __init__(self, per_batch_s: float = 0.0, per_item_s: float = 0.0) -> None:
        super().__init__(per_batch_s, per_item_s)
        self._ok = _results()[1]


# -- the standard workload -------------------------------------------------------------------

_counter = itertools.count()

LLMGINE_ONLY = ("SessionStartEvent", "CommandStartedEvent", "ToolExecuteResultEvent",
                "CommandResultEvent", "SessionEndEvent")


def make_session(session_id: str | None = None, *, llm: bool = True) -> list[Any]:
    """One standard session: 10 events -> 6 spans (session, command, 2 LLM, 2 tool) and 10
    log records. ``llm=False``: the 6 events llmgine 0.0.1 can express (no LLM calls)."""
    from llmgine.bus.session import SessionEndEvent, SessionStartEvent
    from llmgine.llm.tools.tool_events import ToolExecuteResultEvent
    from llmgine.messages.commands import Command, CommandResult
    from llmgine.messages.events import CommandResultEvent, CommandStartedEvent

    from llmgine_otel.events import LLMCallFinishedEvent, LLMCallStartedEvent

    sid = session_id or str(uuid.uuid4())
    n = next(_counter)
    cmd = Command(session_id=sid)
    events: list[Any] = [SessionStartEvent(session_id=sid),
                         CommandStartedEvent(command=cmd, session_id=sid)]

    def llm_call(i: int, finish: str, tin: int, tout: int) -> list[Any]:
        start = LLMCallStartedEvent(session_id=sid, model="gpt-4o-mini", provider="openai",
                                    temperature=0.2, max_tokens=1024,
                                    server_address="api.openai.com", server_port=443)
        end = LLMCallFinishedEvent(session_id=sid, call_id=start.call_id,
                                   response_id=f"chatcmpl-{n}-{i}",
                                   response_model="gpt-4o-mini-2024-07-18",
                                   finish_reasons=[finish], input_tokens=tin,
                                   output_tokens=tout)
        return [start, end]

    if llm:
        events += llm_call(1, "tool_calls", 812, 64)
    events += [
        ToolExecuteResultEvent(execution_succeed=True,
                               tool_info={"name": "get_weather", "type": "function",
                                          "description": "Current weather for a city"},
                               tool_args={"city": "Paris"}, tool_result="18C, sunny",
                               tool_name="get_weather", tool_call_id=f"call_{n}_1",
                               session_id=sid),
        ToolExecuteResultEvent(execution_succeed=True,
                               tool_info={"name": "get_time", "type": "function",
                                          "description": "Local time in a time zone"},
                               tool_args={"tz": "Europe/Paris"}, tool_result="12:00",
                               tool_name="get_time", tool_call_id=f"call_{n}_2",
                               session_id=sid),
    ]
    if llm:
        events += llm_call(2, "stop", 900, 120)
    events += [
        CommandResultEvent(command_result=CommandResult(success=True, command_id=cmd.command_id,
                                                        result="It is 18C and sunny in Paris.",
                                                        session_id=sid),
                           session_id=sid),
        SessionEndEvent(session_id=sid),
    ]
    return events


def make_sessions(n: int, *, llm: bool = True) -> list[list[Any]]:
    return [make_session(llm=llm) for _ in range(n)]


def flat(sessions: Iterable[list[Any]]) -> list[Any]:
    return [e for s in sessions for e in s]


# -- our side -------------------------------------------------------------------------------


def build_ours(exporter: str = "null", *, endpoint: str | None = None, env: dict[str, str]
               | None = None, per_batch_s: float = 0.0, per_item_s: float = 0.0,
               **overrides: Any) -> Any:
    """``llmgine_otel.configure(set_global=False, ...)``; ``exporter``: ``null`` (exporters
    replaced by null ones behind the counting wrappers), ``slow`` (sleep per batch),
    ``default`` (as shipped: OTLP-JSON files in a temp dir), ``otlp`` (gRPC to ``endpoint``)."""
    import llmgine_otel

    old = {}
    for k, v in (env or {}).items():
        old[k] = os.environ.get(k)
        os.environ[k] = v
    try:
        overrides.setdefault("output_dir", tempfile.mkdtemp(prefix="bench-otel-"))
        if exporter == "otlp":
            overrides["endpoint"] = endpoint
        if exporter != "default":
            overrides.setdefault("console", False)
        # BENCHMARKS.md was measured with one trace per session, which the raw-SDK baselines
        # build too (same work on both sides); the package's default is one per command.
        overrides.setdefault("trace_per", "session")
        tel = llmgine_otel.configure(set_global=False, **overrides)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    # configure() loads the price table on a background thread (the ~1 s genai-prices
    # import); until it is ready LLM spans go unpriced. Wait for it, so every benchmark
    # measures the steady state and no import thread runs (or is profiled or traced by
    # tracemalloc) inside a measured region.
    from llmgine_otel import cost

    cost._warm.wait(30.0)
    if exporter in ("null", "slow"):
        for sp in tel.span_processors:
            sp.counting.inner = (NullSpanExporter() if exporter == "null"
                                 else SlowSpanExporter(per_batch_s, per_item_s))
        for lp in tel.log_processors:
            lp.counting.inner = (NullLogExporter() if exporter == "null"
                                 else SlowLogExporter(per_batch_s, per_item_s))
    return tel


def flush_ours(tel: Any) -> None:
    for p in (*tel.span_processors, *tel.log_processors):
        p._batch_processor.force_flush()


# -- the raw SDK side ----------------------------------------------------------------------


class RawSDK:
    """The same 6 spans and 10 log records made by hand with the SDK: same providers
    (BatchSpanProcessor + BatchLogRecordProcessor, same queue size), same attributes, same
    log bodies, span times taken from the events' timestamps."""

    def __init__(self, exporter: str = "null", endpoint: str | None = None,
                 queue_size: int = 10_000, event_times: bool = True) -> None:
        from opentelemetry._logs import SeverityNumber
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        if exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            sx: Any = OTLPSpanExporter(endpoint=endpoint)
            lx: Any = OTLPLogExporter(endpoint=endpoint)
        else:
            sx, lx = NullSpanExporter(), NullLogExporter()
        self.span_exporter, self.log_exporter = sx, lx
        resource = Resource.create({"service.name": "llmgine"})
        self.tp = TracerProvider(resource=resource, shutdown_on_exit=False)
        self.bsp = BatchSpanProcessor(sx, max_queue_size=queue_size)
        self.tp.add_span_processor(self.bsp)
        self.lp = LoggerProvider(resource=resource, shutdown_on_exit=False)
        self.blrp = BatchLogRecordProcessor(lx, max_queue_size=queue_size)
        self.lp.add_log_record_processor(self.blrp)
        self.tracer = self.tp.get_tracer("raw")
        self.logger = self.lp.get_logger("raw")
        self.info = SeverityNumber.INFO
        self.event_times = event_times
        self.sessions: dict[str, Any] = {}
        self.commands: dict[str, Any] = {}
        self.calls: dict[str, Any] = {}
        from llmgine_otel.mapping import MAPPING

        self.event_names = {r.event: r.log_event for r in MAPPING}

    def flush(self) -> None:
        self.bsp.force_flush()
        self.blrp.force_flush()

    def shutdown(self) -> None:
        self.tp.shutdown()
        self.lp.shutdown()

    def _ts(self, e: Any) -> int | None:
        if not self.event_times:
            return None
        return int(datetime.fromisoformat(e.timestamp).timestamp() * 1e9)

    def _log(self, e: Any, span: Any, ts: int | None, body: dict[str, Any],
             extra: dict[str, Any] | None = None) -> None:
        """The event's record as ours makes it: the mapping's registry event name, and (for a
        finished LLM call, ``extra``) the span's attributes."""
        from opentelemetry import trace

        name = type(e).__name__
        attrs = {"llmgine.event.type": name, "llmgine.session.id": e.session_id}
        if extra:
            attrs.update(extra)
        self.logger.emit(timestamp=ts or time.time_ns(),
                         context=trace.set_span_in_context(span),
                         severity_number=self.info, severity_text="INFO", body=body,
                         attributes=attrs,
                         event_name=self.event_names[name])

    @staticmethod
    def _base(e: Any) -> dict[str, Any]:
        return {"event_id": e.event_id, "timestamp": e.timestamp,
                "metadata": dict(e.metadata), "session_id": e.session_id}

    def handle(self, e: Any) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        name = type(e).__name__
        ts = self._ts(e)
        sid = e.session_id
        if name == "SessionStartEvent":
            span = self.tracer.start_span(
                "session", attributes={"llmgine.session.id": sid,
                                       "gen_ai.conversation.id": sid}, start_time=ts)
            self.sessions[sid] = span
            self._log(e, span, ts, self._base(e))
        elif name == "SessionEndEvent":
            span = self.sessions.pop(sid)
            span.end(ts)
            self._log(e, span, ts, self._base(e))
        elif name == "CommandStartedEvent":
            cmd = e.command
            parent = trace.set_span_in_context(self.sessions[sid])
            ctype = type(cmd).__name__
            span = self.tracer.start_span(
                f"command {ctype}", context=parent,
                attributes={"llmgine.command.id": cmd.command_id,
                            "llmgine.command.type": ctype, "llmgine.session.id": sid,
                            "gen_ai.conversation.id": sid}, start_time=ts)
            self.commands[cmd.command_id] = span
            body = self._base(e)
            body["command"] = {"type": ctype, "command_id": cmd.command_id,
                               "session_id": cmd.session_id}
            self._log(e, span, ts, body)
        elif name == "CommandResultEvent":
            r = e.command_result
            span = self.commands.pop(r.command_id)
            if not r.success:
                span.set_status(Status(StatusCode.ERROR, r.error or "failed"))
            span.end(ts)
            body = self._base(e)
            body["command_result"] = {"type": type(r).__name__, "success": r.success,
                                      "command_id": r.command_id, "timestamp": r.timestamp,
                                      "error": r.error, "metadata": dict(r.metadata),
                                      "session_id": r.session_id}
            self._log(e, span, ts, body)
        elif name == "LLMCallStartedEvent":
            parent_span = next(reversed(self.commands.values()))
            span = self.tracer.start_span(
                f"{e.operation} {e.model}", context=trace.set_span_in_context(parent_span),
                kind=SpanKind.CLIENT,
                attributes={"gen_ai.operation.name": e.operation,
                            "gen_ai.provider.name": e.provider,
                            "gen_ai.request.model": e.model,
                            "gen_ai.request.temperature": e.temperature,
                            "gen_ai.request.max_tokens": e.max_tokens,
                            "server.address": e.server_address, "server.port": e.server_port,
                            "gen_ai.conversation.id": sid}, start_time=ts)
            self.calls[e.call_id] = span
            body = self._base(e)
            body.update(call_id=e.call_id, model=e.model, provider=e.provider,
                        operation=e.operation, temperature=e.temperature,
                        max_tokens=e.max_tokens, server_address=e.server_address,
                        server_port=e.server_port)
            self._log(e, span, ts, body)
        elif name == "LLMCallFinishedEvent":
            span = self.calls.pop(e.call_id)
            span.set_attributes({"gen_ai.response.id": e.response_id,
                                 "gen_ai.response.model": e.response_model,
                                 "gen_ai.response.finish_reasons": list(e.finish_reasons),
                                 "gen_ai.usage.input_tokens": e.input_tokens,
                                 "gen_ai.usage.output_tokens": e.output_tokens})
            span.end(ts)
            body = self._base(e)
            body.update(call_id=e.call_id, response_id=e.response_id,
                        response_model=e.response_model,
                        finish_reasons=list(e.finish_reasons), input_tokens=e.input_tokens,
                        output_tokens=e.output_tokens)
            self._log(e, span, ts, body, dict(span.attributes))
        elif name == "ToolExecuteResultEvent":
            parent_span = next(reversed(self.commands.values()))
            info = e.tool_info
            span = self.tracer.start_span(
                f"execute_tool {e.tool_name}", context=trace.set_span_in_context(parent_span),
                attributes={"gen_ai.operation.name": "execute_tool",
                            "gen_ai.tool.name": e.tool_name,
                            "gen_ai.tool.call.id": e.tool_call_id,
                            "gen_ai.tool.type": info.get("type", "function"),
                            "gen_ai.tool.description": info.get("description"),
                            "llmgine.session.id": sid}, start_time=ts)
            if not e.execution_succeed:
                span.set_status(Status(StatusCode.ERROR, "tool execution failed"))
            span.end(ts)
            body = self._base(e)
            body.update(tool_manager_id=e.tool_manager_id, engine_id=e.engine_id,
                        execution_succeed=e.execution_succeed, tool_info=dict(info),
                        tool_name=e.tool_name, tool_call_id=e.tool_call_id)
            self._log(e, span, ts, body)


def build_raw(exporter: str = "null", endpoint: str | None = None, **kw: Any) -> RawSDK:
    return RawSDK(exporter, endpoint, **kw)


# -- measuring -------------------------------------------------------------------------------


def timed_round(handle: Any, events: Sequence[Any]) -> tuple[float, float]:
    """Publish ``events`` through ``handle``: (wall ns/event, publisher-thread CPU ns/event)."""
    gc.collect()
    c0 = time.thread_time_ns()
    t0 = time.perf_counter_ns()
    for e in events:
        handle(e)
    t1 = time.perf_counter_ns()
    c1 = time.thread_time_ns()
    n = len(events)
    return (t1 - t0) / n, (c1 - c0) / n


def interleaved_round(sides: dict[str, Any], chunks: Sequence[Sequence[Any]], rotate: int = 0
                      ) -> dict[str, tuple[float, float]]:
    """One round: every chunk (e.g. 2 sessions) is published by every side in turn, so all
    sides sample the same moments of a noisy machine. Returns side -> (wall ns/event,
    publisher-thread CPU ns/event) summed over the round."""
    names = list(sides)
    wall = dict.fromkeys(names, 0)
    cpu = dict.fromkeys(names, 0)
    n = 0
    perf, thread = time.perf_counter_ns, time.thread_time_ns
    gc.collect()
    for i, chunk in enumerate(chunks):
        k = (i + rotate) % len(names)
        for name in names[k:] + names[:k]:
            handle = sides[name]
            c0 = thread()
            t0 = perf()
            for e in chunk:
                handle(e)
            t1 = perf()
            c1 = thread()
            wall[name] += t1 - t0
            cpu[name] += c1 - c0
        n += len(chunk)
    return {name: (wall[name] / n, cpu[name] / n) for name in names}


def summary(values: Sequence[float]) -> dict[str, float]:
    v = sorted(values)
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "n": len(v)}


def percentile(values: Sequence[float], p: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, round(p / 100 * (len(v) - 1))))
    return v[k]


def ratio_summary(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Per-round ratios a[i]/b[i] (rounds alternate, so each pair saw the same noise)."""
    return summary([x / y for x, y in zip(a, b, strict=True)])
