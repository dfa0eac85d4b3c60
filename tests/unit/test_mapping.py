"""One test per row of mapping.MAPPING: span name, kind, parent, attributes, status, and the
log record (event_name = the rule's registry event, llmgine.event.type = the event class,
correlated to the span, body safe to serialize).
Plus: conventions/mapping.md is the rendered table (the registry side: test_registry.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from otel_kit import (
    command,
    command_result,
    command_started,
    llm_finished,
    llm_started,
    ns,
    session_end,
    session_end_span,
    session_start,
    tool_finished,
    tool_result,
    tool_started,
    ts,
    under_session,
)

from llmgine_otel import mapping
from llmgine_otel.events import (
    AgentInvocationFinishedEvent,
    AgentInvocationStartedEvent,
    LLMStreamChunkEvent,
)

ROOT = Path(__file__).resolve().parents[2]
COVERED: set[str] = set()


def covers(event: str):
    COVERED.add(event)
    return lambda f: f


def check_log(h: Any, event_type: str, span: Any, *, error: bool = False,
              event_name: str | None = None) -> Any:
    """The log record of the event of class ``event_type``: named after its rule's registry
    event (``event_name``, default the rule for that class), on the span's trace/span, safe
    body."""
    rec = h.log(event_type)
    rule = next((r for r in mapping.MAPPING if r.event == event_type), mapping.DEFAULT_RULE)
    assert rec.event_name == (event_name or rule.log_event)
    assert rec.attributes["llmgine.event.type"] == event_type
    if span is not None:
        assert rec.trace_id == span.context.trace_id
        assert rec.span_id == span.context.span_id
    assert (rec.severity_text == "ERROR") is error
    json.dumps(rec.body)  # plain JSON-safe data
    assert isinstance(rec.body, dict)
    return rec


def parent_of(child: Any, parent: Any) -> bool:
    return (child.parent is not None and child.parent.span_id == parent.context.span_id
            and child.context.trace_id == parent.context.trace_id)


@pytest.fixture(params=["command", "session"])
def otel(request: Any, make_otel: Any) -> Any:
    """Every row in both trace shapes (mapping.TRACE_SHAPES): the rules are the same; the
    shapes differ only in where a span goes whose parent is the session, and in the
    session's own spans (``under_session``, ``session_end_span``)."""
    return make_otel(trace_per=request.param)


@covers("SessionStartEvent")
def test_session_start_is_a_root_span_in_a_new_trace(otel):
    otel.handle(session_start("s1", 0), session_start("s2", 0))
    otel.handle(session_end("s1", 3), session_end("s2", 3))
    s1 = next(s for s in otel.spans() if s.attributes["llmgine.session.id"] == "s1")
    s2 = next(s for s in otel.spans() if s.attributes["llmgine.session.id"] == "s2")
    assert s1.name == "session" and s1.kind is SpanKind.INTERNAL and s1.parent is None
    assert s1.context.trace_id != s2.context.trace_id
    assert s1.attributes["gen_ai.conversation.id"] == "s1"
    assert s1.attributes["session.id"] == "s1"
    assert s1.start_time == ns(0) and session_end_span(otel, "s1").end_time == ns(3)
    recs = [r for r in otel.logs() if r.event_name == "llmgine.session.start"]
    assert {r.span_id for r in recs} == {s1.context.span_id, s2.context.span_id}
    assert recs[0].body["session_id"] in ("s1", "s2")


@covers("SessionStartEvent")
def test_session_start_continues_a_remote_traceparent(otel):
    tid = "0af7651916cd43dd8448eb211c80319c"
    start = session_start("s1", 0, metadata={"traceparent": f"00-{tid}-b7ad6b7169203331-01"})
    otel.handle(start, session_end("s1", 1))
    span = otel.span("session")
    assert format(span.context.trace_id, "032x") == tid
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331"


@covers("SessionEndEvent")
def test_session_end_ends_root_ok(otel):
    otel.handle(session_start("s1", 0), session_end("s1", 5))
    span = session_end_span(otel)
    assert span.status.status_code is StatusCode.UNSET
    assert span.end_time == ns(5)
    assert span.attributes["session.id"] == "s1"
    check_log(otel, "SessionEndEvent", span)


@covers("SessionEndEvent")
def test_session_end_with_error_is_error(otel):
    otel.handle(session_start("s1", 0), session_end("s1", 5, error=KeyError("boom")))
    span = session_end_span(otel)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "KeyError"
    assert "boom" in span.status.description
    check_log(otel, "SessionEndEvent", span, error=True)


@covers("CommandStartedEvent")
def test_command_started_is_child_of_session(otel):
    otel.handle(session_start("s1", 0), command_started("s1", "c1", 1),
                command_result("s1", "c1", 2), session_end("s1", 3))
    sess, cmd = otel.span("session"), otel.span("command Command")
    assert cmd.kind is SpanKind.INTERNAL and under_session(otel, cmd)
    assert sess.attributes["session.id"] == cmd.attributes["session.id"] == "s1"
    assert cmd.attributes["llmgine.command.id"] == "c1"
    assert cmd.attributes["llmgine.command.type"] == "Command"
    assert cmd.attributes["llmgine.session.id"] == "s1"
    assert cmd.attributes["gen_ai.conversation.id"] == "s1"
    assert (cmd.start_time, cmd.end_time) == (ns(1), ns(2))
    rec = check_log(otel, "CommandStartedEvent", cmd)
    assert rec.body["command"]["command_id"] == "c1"


@covers("CommandStartedEvent")
def test_nested_command_is_child_of_calling_command(otel):
    otel.handle(session_start("s1", 0), command_started("s1", "outer", 1),
                command_started("s1", "inner", 1.5), command_result("s1", "inner", 1.7),
                command_result("s1", "outer", 2))
    spans = {s.attributes["llmgine.command.id"]: s for s in otel.spans()
             if s.name.startswith("command")}
    assert parent_of(spans["inner"], spans["outer"])


@covers("CommandStartedEvent")
def test_command_without_session_is_a_trace_root(otel):
    otel.handle(command_started("BUS", "c1", 1), command_result("BUS", "c1", 2))
    cmd = otel.span("command Command")
    assert cmd.parent is None
    assert "session" not in [s.name for s in otel.spans()]


@covers("CommandResultEvent")
def test_command_result_ends_span_ok(otel):
    otel.handle(session_start("s1", 0), command_started("s1", "c1", 1),
                command_result("s1", "c1", 2, result="the answer"))
    cmd = otel.span("command Command")
    assert cmd.status.status_code is StatusCode.UNSET
    assert "error.type" not in cmd.attributes
    rec = check_log(otel, "CommandResultEvent", cmd)
    assert "the answer" not in json.dumps(rec.body)  # result is payload


@covers("CommandResultEvent")
def test_command_result_failure_is_error_with_type_and_message(otel):
    otel.handle(session_start("s1", 0), command_started("s1", "c1", 1),
                command_result("s1", "c1", 2, success=False, error="ValueError: bad input"))
    cmd = otel.span("command Command")
    assert cmd.status.status_code is StatusCode.ERROR
    assert cmd.attributes["error.type"] == "ValueError"
    assert "bad input" in cmd.status.description
    check_log(otel, "CommandResultEvent", cmd, error=True)


@covers("LLMCallStartedEvent")
@covers("LLMCallFinishedEvent")
def test_llm_call_is_a_genai_client_span(otel):
    otel.handle(
        session_start("s1", 0), command_started("s1", "c1", 1),
        llm_started("s1", "L1", 1.1, model="gpt-4o", provider="openai", temperature=0.2,
                    top_p=0.9, max_tokens=100, seed=7, stop_sequences=["END"], stream=True,
                    server_address="api.openai.com", server_port=443, choice_count=1),
        llm_finished("s1", "L1", 1.6, response_id="resp-1", response_model="gpt-4o-2024",
                     finish_reasons=["stop"], input_tokens=120, output_tokens=30,
                     cache_read_input_tokens=100, cache_creation_input_tokens=20,
                     reasoning_output_tokens=12, time_to_first_chunk=0.25),
        command_result("s1", "c1", 2))
    span, cmd = otel.span("chat gpt-4o"), otel.span("command Command")
    assert span.kind is SpanKind.CLIENT and parent_of(span, cmd)
    a = span.attributes
    expected = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o", "gen_ai.request.temperature": 0.2,
        "gen_ai.request.top_p": 0.9, "gen_ai.request.max_tokens": 100,
        "gen_ai.request.seed": 7, "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.request.stream": True, "gen_ai.request.choice.count": 1,
        "server.address": "api.openai.com", "server.port": 443,
        "gen_ai.conversation.id": "s1", "session.id": "s1",
        "gen_ai.response.id": "resp-1", "gen_ai.response.model": "gpt-4o-2024",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 30,
        "gen_ai.usage.cache_read.input_tokens": 100,
        "gen_ai.usage.cache_creation.input_tokens": 20,
        "gen_ai.usage.reasoning.output_tokens": 12,
        "gen_ai.response.time_to_first_chunk": 0.25,
    }
    for k, v in expected.items():
        assert a[k] == v, k
    assert (span.start_time, span.end_time) == (ns(1.1), ns(1.6))
    assert span.status.status_code is StatusCode.UNSET
    check_log(otel, "LLMCallStartedEvent", span)
    details = check_log(otel, "LLMCallFinishedEvent", span)
    # The conventions' inference-details event describes the whole call: the span's attributes.
    assert details.event_name == "gen_ai.client.inference.operation.details"
    for k, v in expected.items():
        assert details.attributes[k] == v, k


@covers("LLMCallFinishedEvent")
def test_llm_call_error(otel):
    otel.handle(session_start("s1", 0), llm_started("s1", "L1", 1),
                llm_finished("s1", "L1", 2, error=TimeoutError("upstream slow")),
                session_end("s1", 3))
    span = otel.span("chat gpt-4o")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "TimeoutError"
    assert under_session(otel, span)
    rec = check_log(otel, "LLMCallFinishedEvent", span, error=True)
    assert rec.attributes["error.type"] == "TimeoutError"


@covers("LLMCallFinishedEvent")
def test_llm_call_error_type_explicit(otel):
    otel.handle(llm_started("s1", "L1", 1),
                llm_finished("s1", "L1", 2, error="rate limited", error_type="RateLimitError"))
    assert otel.span("chat gpt-4o").attributes["error.type"] == "RateLimitError"


@covers("LLMStreamChunkEvent")
def test_stream_chunks_are_folded_into_the_llm_span(otel):
    otel.handle(session_start("s1", 0), llm_started("s1", "L1", 1, stream=True))
    for i, t in enumerate((1.2, 1.3, 1.6)):
        otel.handle(LLMStreamChunkEvent(call_id="L1", index=i, content=f"tok{i}",
                                        session_id="s1", timestamp=ts(t)))
    otel.handle(llm_finished("s1", "L1", 2))
    span = otel.span("chat gpt-4o")
    assert span.attributes["llmgine.stream.chunk_count"] == 3
    assert span.attributes["gen_ai.response.time_to_first_chunk"] == pytest.approx(0.2)
    assert span.attributes["llmgine.stream.chunk_interval.max"] == pytest.approx(0.3)
    assert span.attributes["llmgine.stream.chunk_interval.mean"] == pytest.approx(0.2)
    assert not [r for r in otel.logs() if r.event_name == "llmgine.llm.call.chunk"]
    # no span per chunk (the command shape's session start mark is there already)
    assert [s.name for s in otel.spans() if s.name != "session"] == ["chat gpt-4o"]


@covers("LLMStreamChunkEvent")
def test_stream_chunk_logs_when_enabled(make_otel):
    h = make_otel(stream_chunk_logs=True)
    h.handle(llm_started("s1", "L1", 1),
             LLMStreamChunkEvent(call_id="L1", content="secret tok", session_id="s1",
                                 timestamp=ts(1.2)),
             llm_finished("s1", "L1", 2))
    rec = check_log(h, "LLMStreamChunkEvent", h.span("chat gpt-4o"))
    assert "secret tok" not in json.dumps(rec.body)


@covers("ToolExecuteResultEvent")
def test_tool_result_is_an_execute_tool_span(otel):
    otel.handle(session_start("s1", 0), command_started("s1", "c1", 1),
                tool_result("s1", "call-9", 1.5, name="get_weather",
                            tool_info={"description": "Weather now"},
                            metadata={"llmgine.start_time": ts(1.2)}),
                command_result("s1", "c1", 2))
    span, cmd = otel.span("execute_tool get_weather"), otel.span("command Command")
    assert span.kind is SpanKind.INTERNAL and parent_of(span, cmd)
    assert span.attributes["gen_ai.operation.name"] == "execute_tool"
    assert span.attributes["gen_ai.tool.name"] == "get_weather"
    assert span.attributes["gen_ai.tool.call.id"] == "call-9"
    assert span.attributes["gen_ai.tool.type"] == "function"
    assert span.attributes["gen_ai.tool.description"] == "Weather now"
    assert span.status.status_code is StatusCode.UNSET
    assert (span.start_time, span.end_time) == (ns(1.2), ns(1.5))
    check_log(otel, "ToolExecuteResultEvent", span)


@covers("ToolExecuteResultEvent")
def test_failed_tool_is_error(otel):
    otel.handle(session_start("s1", 0), tool_result("s1", "call-1", 1, ok=False),
                session_end("s1", 2))
    span = otel.span("execute_tool get_weather")
    assert span.status.status_code is StatusCode.ERROR
    assert "error.type" in span.attributes
    assert under_session(otel, span)
    check_log(otel, "ToolExecuteResultEvent", span, error=True)


@covers("ToolExecuteResultEvent")
def test_tool_name_from_tool_info(otel):
    otel.handle(tool_result("s1", "c", 1, name="", tool_info={"function": {"name": "calc"}}))
    assert otel.span("execute_tool calc").attributes["gen_ai.tool.name"] == "calc"


@covers("ToolExecutionStartedEvent")
@covers("ToolExecutionFinishedEvent")
def test_tool_execution_is_an_execute_tool_span_with_its_real_times(otel):
    otel.handle(session_start("s1", 0), command_started("s1", "c1", 1),
                tool_started("s1", "call-9", 1.2, tool_description="Weather now",
                             arguments='{"city": "Oslo"}'),
                tool_finished("s1", "call-9", 1.7, result="sunny"),
                command_result("s1", "c1", 2))
    span, cmd = otel.span("execute_tool get_weather"), otel.span("command Command")
    assert span.kind is SpanKind.INTERNAL and parent_of(span, cmd)
    assert (span.start_time, span.end_time) == (ns(1.2), ns(1.7))
    a = span.attributes
    assert (a["gen_ai.operation.name"], a["gen_ai.tool.name"], a["gen_ai.tool.call.id"],
            a["gen_ai.tool.type"], a["gen_ai.tool.description"]) == (
        "execute_tool", "get_weather", "call-9", "function", "Weather now")
    assert "gen_ai.tool.call.arguments" not in a and "gen_ai.tool.call.result" not in a
    assert span.status.status_code is StatusCode.UNSET
    assert "Oslo" not in json.dumps(check_log(otel, "ToolExecutionStartedEvent", span).body)
    assert "sunny" not in json.dumps(check_log(otel, "ToolExecutionFinishedEvent", span).body)


@covers("ToolExecutionStartedEvent")
def test_tool_execution_follows_the_traceparent_of_the_calling_span(otel):
    otel.handle(session_start("s1", 0), command_started("s1", "c1", 1),
                llm_started("s1", "L1", 1.1))
    llm = otel.handler.table.get(("llm", "L1")).span.get_span_context()
    tp = f"00-{llm.trace_id:032x}-{llm.span_id:016x}-01"
    otel.handle(tool_started("s1", "call-1", 1.2, metadata={"traceparent": tp}),
                tool_finished("s1", "call-1", 1.3), llm_finished("s1", "L1", 1.4))
    assert parent_of(otel.span("execute_tool get_weather"), otel.span("chat gpt-4o"))


@covers("ToolExecutionFinishedEvent")
def test_tool_execution_error_and_content_capture():
    from otel_kit import Harness

    h = Harness(capture_content="SPAN_ONLY", console=False)
    h.handle(session_start("s1", 0), tool_started("s1", arguments='{"a": 1}'),
             tool_finished("s1", error="Error executing get_weather: timed out",
                           error_type="ToolTimeoutError", result="Error executing ..."))
    span = h.span("execute_tool get_weather")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ToolTimeoutError"
    assert span.attributes["gen_ai.tool.call.arguments"] == '{"a": 1}'
    assert span.attributes["gen_ai.tool.call.result"] == "Error executing ..."
    check_log(h, "ToolExecutionFinishedEvent", span, error=True)
    h.close()


@covers("ToolExecuteResultEvent")
def test_tool_result_of_a_traced_execution_makes_no_second_span(otel):
    # The app publishes llmgine's result event too: once while the traced run is open, once
    # after it ended. One span; each result event still gets its log record, on that span.
    otel.handle(session_start("s1", 0), tool_started("s1", "call-1", 1.2),
                tool_result("s1", "call-1", 1.3), tool_finished("s1", "call-1", 1.4),
                tool_result("s1", "call-1", 1.5), session_end("s1", 2))
    span = otel.span("execute_tool get_weather")
    assert span.start_time == ns(1.2)
    recs = [r for r in otel.logs() if r.event_name == "llmgine.tool.result"]
    assert len(recs) == 2 and recs[0].span_id == span.context.span_id
    assert otel.outcomes["duplicate_end"] == 2


@covers("ToolExecutionStartedEvent")
def test_tool_call_ids_are_keys_within_a_session(otel):
    # Some models number their calls (call_0, call_1, ...) in every conversation.
    for sid in ("s1", "s2"):
        otel.handle(session_start(sid, 0), tool_started(sid, "call_0", 1),
                    tool_finished(sid, "call_0", 1.1), tool_result(sid, "call_0", 1.2),
                    session_end(sid, 2))
    spans = [s for s in otel.spans() if s.name == "execute_tool get_weather"]
    assert sorted(s.attributes["llmgine.session.id"] for s in spans) == ["s1", "s2"]
    assert not otel.outcomes.get("late_start")


def test_translate_now_then_bus_delivery_is_one_translation(otel):
    start = llm_started("s1", "L1", 1.1)
    otel.handle(session_start("s1", 0))
    entry = otel.handler.translate_now(start)
    assert entry is otel.handler.table.get(("llm", "L1"))
    otel.handle(start)  # the bus delivers it later: skipped, not a duplicate start
    otel.handle(llm_finished("s1", "L1", 1.4), session_end("s1", 2))
    assert len([s for s in otel.spans() if s.name == "chat gpt-4o"]) == 1
    assert len([r for r in otel.logs() if r.event_name == "llmgine.llm.call.start"]) == 1
    assert not otel.outcomes.get("duplicate_start")


def test_span_attributes_reach_every_span_of_the_session(otel):
    from llmgine_otel.span_attributes import span_attributes

    with span_attributes({"app.tenant": "acme", "app.tags": ["a", "b"]}, user_id="u-42"):
        otel.handle(session_start("s1", 0))
    # Published elsewhere (another task without the block): inherited from the session.
    otel.handle(command_started("s1", "c1", 1), llm_started("s1", "L1", 1.1),
                llm_finished("s1", "L1", 1.2), tool_started("s1", "t1", 1.3),
                tool_finished("s1", "t1", 1.4))
    with span_attributes(user_id="u-7"):  # the innermost block wins
        otel.handle(tool_result("s1", "t2", 1.5))
    otel.handle(command_result("s1", "c1", 2), session_end("s1", 3))
    assert {s.name for s in otel.spans()} >= {"session", "command Command", "chat gpt-4o",
                                             "execute_tool get_weather"}
    for s in otel.spans():
        assert s.attributes["session.id"] == "s1", s.name
        assert s.attributes["app.tenant"] == "acme", s.name
        assert s.attributes["app.tags"] == ("a", "b"), s.name
        assert s.attributes["user.id"] == ("u-7" if s.name == "execute_tool get_weather"
                                           and s.attributes["gen_ai.tool.call.id"] == "t2"
                                           else "u-42"), s.name
    otel.handle(session_start("s2", 4), session_end("s2", 5))  # outside: nothing
    assert "user.id" not in next(s for s in otel.spans()
                             if s.attributes.get("llmgine.session.id") == "s2").attributes


@covers("EventHandlerFailedEvent")
def test_handler_failure_is_an_exception_event_on_the_command_span(otel):
    from llmgine.messages.events import EventHandlerFailedEvent

    started = command_started("s1", "c1", 1)
    otel.handle(session_start("s1", 0), started)
    try:
        raise RuntimeError("handler broke")
    except RuntimeError as exc:
        err = exc
    otel.handle(EventHandlerFailedEvent(event=started, handler="my_handler", exception=err,
                                        session_id="s1", timestamp=ts(1.5)),
                command_result("s1", "c1", 2), session_end("s1", 3))
    cmd = otel.span("command Command")
    (ev,) = cmd.events
    assert ev.name == "exception" and ev.timestamp == ns(1.5)
    assert ev.attributes["exception.type"] == "RuntimeError"
    assert ev.attributes["exception.message"] == "handler broke"
    assert "handler broke" in ev.attributes["exception.stacktrace"]
    assert ev.attributes["llmgine.handler.name"] == "my_handler"
    assert ev.attributes["llmgine.handler.event_type"] == "CommandStartedEvent"
    assert not otel.span("session").events
    check_log(otel, "EventHandlerFailedEvent", cmd, error=True)


@covers("EventHandlerFailedEvent")
def test_handler_failure_falls_back_to_the_session_span(otel):
    from llmgine.messages.events import EventHandlerFailedEvent

    otel.handle(session_start("s1", 0),
                EventHandlerFailedEvent(event=session_start("s1"), handler="h",
                                        exception=ValueError("x"), session_id="s1",
                                        timestamp=ts(1)),
                session_end("s1", 2))
    sess = otel.span("session")
    if otel.config.trace_per == "session":
        assert [e.name for e in sess.events] == ["exception"]
    else:  # the session's span is a mark, ended already: the ERROR log record carries it
        assert not sess.events and otel.outcomes["exception_without_span"] == 1
    check_log(otel, "EventHandlerFailedEvent", sess, error=True)


@covers("DeadLetterCommandEvent")
def test_dead_letter_is_an_exception_event_and_error_log(otel):
    from llmgine.messages.events import DeadLetterCommandEvent

    otel.handle(session_start("s1", 0), command_started("s1", "c1", 1),
                DeadLetterCommandEvent(command=command("s1", "c1"),
                                       error="TimeoutError: gave up", attempts=3,
                                       session_id="s1", timestamp=ts(1.5)),
                command_result("s1", "c1", 2, success=False, error="TimeoutError: gave up"))
    cmd = otel.span("command Command")
    (ev,) = cmd.events
    assert ev.attributes["exception.type"] == "TimeoutError"
    assert ev.attributes["llmgine.command.attempts"] == 3
    assert ev.attributes["llmgine.command.id"] == "c1"
    check_log(otel, "DeadLetterCommandEvent", cmd, error=True)


@covers("DeadLetterCommandEvent")
def test_dead_letter_without_any_span_is_still_logged(otel):
    from llmgine.messages.events import DeadLetterCommandEvent

    otel.handle(DeadLetterCommandEvent(command=command("BUS", "c1"), error="x", attempts=1))
    assert otel.spans() == []
    check_log(otel, "DeadLetterCommandEvent", None, error=True)
    assert otel.outcomes["exception_without_span"] == 1


@covers("AgentInvocationStartedEvent")
@covers("AgentInvocationFinishedEvent")
def test_agent_invocation_span_parents_its_llm_calls(otel):
    otel.handle(
        session_start("s1", 0), command_started("s1", "c1", 1),
        AgentInvocationStartedEvent(invocation_id="A1", agent_name="planner", agent_id="p-1",
                                    agent_description="plans", session_id="s1",
                                    timestamp=ts(1.1)),
        llm_started("s1", "L1", 1.2), llm_finished("s1", "L1", 1.3),
        AgentInvocationFinishedEvent(invocation_id="A1", session_id="s1", timestamp=ts(1.5)),
        command_result("s1", "c1", 2))
    agent, cmd, llm = (otel.span("invoke_agent planner"), otel.span("command Command"),
                       otel.span("chat gpt-4o"))
    assert agent.kind is SpanKind.INTERNAL and parent_of(agent, cmd) and parent_of(llm, agent)
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert agent.attributes["gen_ai.agent.name"] == "planner"
    assert agent.attributes["gen_ai.agent.id"] == "p-1"
    assert agent.attributes["gen_ai.agent.description"] == "plans"
    assert agent.attributes["gen_ai.conversation.id"] == "s1"
    assert agent.status.status_code is StatusCode.UNSET
    check_log(otel, "AgentInvocationStartedEvent", agent)
    check_log(otel, "AgentInvocationFinishedEvent", agent)


@covers("AgentInvocationFinishedEvent")
def test_agent_failure_is_error(otel):
    otel.handle(AgentInvocationStartedEvent(invocation_id="A1", agent_name="x", session_id="s1"),
                AgentInvocationFinishedEvent(invocation_id="A1", error=ValueError("no"),
                                             session_id="s1"))
    span = otel.span("invoke_agent x")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"


@covers("ToolRegisterEvent")
@covers("ToolCompiledEvent")
def test_tool_registration_events_are_logs_only(otel):
    from llmgine.llm.tools.tool_events import ToolCompiledEvent, ToolRegisterEvent

    otel.handle(session_start("s1", 0),
                ToolRegisterEvent(tool_info={"name": "calc"}, session_id="s1"),
                ToolCompiledEvent(tool_compiled_list=[{"name": "calc"}], session_id="s1"))
    # the session is still open (command shape: only its start mark is there)
    marks = [] if otel.config.trace_per == "session" else ["session"]
    assert [s.name for s in otel.spans()] == marks
    sess_id = otel.handler.table.get(("session", "s1")).span.get_span_context().span_id
    for name in ("ToolRegisterEvent", "ToolCompiledEvent"):
        rec = check_log(otel, name, None)
        assert rec.span_id == sess_id
    assert otel.outcomes.get("rejected", 0) == 0


@covers("*")
def test_unknown_event_is_a_log_record_only(otel):
    from dataclasses import dataclass

    from llmgine.messages.events import Event

    @dataclass
    class SomethingHappened(Event):
        count: int = 3
        note: str = "free text"

    class NotAnEvent:
        def __init__(self) -> None:
            self.n = 1

    otel.handle(SomethingHappened(session_id="s1"), NotAnEvent(), object(), 42, None)
    assert otel.spans() == []
    rec = check_log(otel, "SomethingHappened", None)
    assert rec.body["count"] == 3 and "note" not in rec.body
    assert otel.outcomes.get("rejected", 0) == 0


def test_subclass_maps_like_its_base(otel):
    from llmgine.messages.commands import Command
    from llmgine.messages.events import CommandStartedEvent

    class MyStarted(CommandStartedEvent):
        pass

    class MyCommand(Command):
        pass

    otel.handle(session_start("s1", 0),
                MyStarted(command=MyCommand(command_id="c1", session_id="s1"),
                          session_id="s1", timestamp=ts(1)),
                command_result("s1", "c1", 2))
    cmd = otel.span("command MyCommand")
    assert cmd.attributes["llmgine.command.type"] == "MyCommand"
    assert cmd.end_time == ns(2)
    check_log(otel, "MyStarted", cmd, event_name="llmgine.command.start")


def test_every_mapping_row_has_a_test():
    assert {r.event for r in mapping.MAPPING} | {"*"} == COVERED


# -- code and documents agree --------------------------------------------------------------

def test_mapping_md_is_the_rendered_table():
    doc = (ROOT / "conventions" / "mapping.md").read_text(encoding="utf-8")
    assert doc == mapping.render_markdown(), (
        "conventions/mapping.md is stale: run `python -m llmgine_otel.mapping > "
        "conventions/mapping.md`")
