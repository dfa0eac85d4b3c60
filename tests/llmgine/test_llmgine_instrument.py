"""LLMgineInstrumentor on the real llmgine 0.0.1 bus: lifecycle, idempotence, context."""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("llmgine.bus.bus")

from llmgine.bus.bus import MessageBus
from llmgine.llm.tools.tool_events import ToolExecuteResultEvent
from llmgine.messages.commands import Command, CommandResult
from llmgine.observability.manager import (
    ObservabilityManager as LlmgineManager,
)
from llmgine_kit import Otel, attr, fresh_bus, parent_of
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from llmgine_otel.instrument import LLMgineInstrumentor, active_observer
from llmgine_otel.manager import ObservabilityManager

pytestmark = pytest.mark.llmgine

_NAMES = ("publish", "execute", "_execute_with_middleware")


@dataclass
class Work(Command):
    """A command that publishes one tool result."""

    label: str = ""


@dataclass
class Outer(Command):
    """A command whose handler runs foreign spans and a nested command."""


async def run_session(bus: Any, session_id: str) -> None:
    """One session: a Work command publishing a tool event."""

    async def work(cmd: Command) -> CommandResult:
        await bus.publish(ToolExecuteResultEvent(
            session_id=cmd.session_id, execution_succeed=True, tool_name="t",
            tool_call_id=f"{cmd.command_id}-tool"), await_processing=False)
        return CommandResult(success=True, command_id=cmd.command_id)

    async with bus.session(session_id) as s:
        s.register_command_handler(Work, work)
        await s.execute_with_session(Work(label=session_id))


def _originals() -> dict[str, Any]:
    return {n: MessageBus.__dict__[n] for n in _NAMES}


async def test_instrument_uninstrument_reinstrument_restores_bus_exactly() -> None:
    originals = _originals()
    o = Otel()
    inst = LLMgineInstrumentor()
    try:
        inst.instrument(handler=o.handler)
        wrapped = _originals()
        assert all(wrapped[n] is not originals[n] for n in _NAMES)
        inst.instrument(handler=o.handler)  # refused by BaseInstrumentor: no second wrapper
        assert _originals() == wrapped
        bus = fresh_bus()
        await bus.start()
        await run_session(bus, "s-first")
        first = sorted(s.name for s in o.spans())
        assert first == ["command Work", "execute_tool t", "session", "session end"]

        inst.uninstrument()
        assert all(MessageBus.__dict__[n] is originals[n] for n in _NAMES)
        assert MessageBus.publish is originals["publish"]
        assert active_observer() is None
        o.clear()
        await run_session(bus, "s-off")
        assert o.spans() == []

        inst.instrument(handler=o.handler)
        await run_session(bus, "s-again")
        assert sorted(s.name for s in o.spans()) == first
        await bus.stop()
    finally:
        if inst.is_instrumented_by_opentelemetry:
            inst.uninstrument()
        MessageBus._instance = None
        o.close()
    assert all(MessageBus.__dict__[n] is originals[n] for n in _NAMES)


@pytest.mark.parametrize("wiring", ["llmgine_manager", "our_manager"])
async def test_handler_also_on_the_apps_manager_gives_no_duplicates(otel: Otel,
                                                                   wiring: str) -> None:
    manager: Any = LlmgineManager() if wiring == "llmgine_manager" else ObservabilityManager()
    manager.register_handler(otel.handler)
    bus = fresh_bus()
    bus.set_observability_manager(manager)
    await bus.start()
    try:
        await run_session(bus, "s-dup")
    finally:
        await bus.stop()
        MessageBus._instance = None
    assert sorted(s.name for s in otel.spans()) == ["command Work", "execute_tool t", "session",
                                                    "session end"]
    names = [r.event_name for r in otel.logs()]
    assert len(names) == len(set(names)) == 5, names
    assert dict(otel.handler.stats.outcomes).get("duplicate_start", 0) == 0


async def test_republished_event_and_prestart_events_are_observed_once(otel: Otel) -> None:
    from llmgine.bus.session import SessionStartEvent

    bus = fresh_bus()
    early = SessionStartEvent(session_id="s-early")  # type: ignore[arg-type]
    await bus.publish(early)  # before start(): llmgine buffers it without observing
    await bus.start()
    try:
        tool = ToolExecuteResultEvent(session_id="s-early", execution_succeed=True,
                                      tool_name="t", tool_call_id="c")
        await bus.publish(tool, await_processing=False)
        await bus.publish(tool, await_processing=False)  # same object again
        from llmgine.bus.session import SessionEndEvent

        await bus.publish(SessionEndEvent(session_id="s-early"))  # type: ignore[arg-type]
    finally:
        await bus.stop()
        MessageBus._instance = None
    assert sorted(s.name for s in otel.spans()) == ["execute_tool t", "session", "session end"]
    assert [r.event_name for r in otel.logs()].count("llmgine.tool.result") == 1


@pytest.mark.parametrize("trace_per", ["command", "session"])
async def test_foreign_spans_in_handler_are_children_of_the_command_span(
        instrumented: Any, bus: Any, caplog: pytest.LogCaptureFixture, trace_per: str) -> None:
    otel = instrumented(trace_per=trace_per)
    caplog.set_level(logging.DEBUG)
    tracer = otel.tracer
    seen: dict[str, Any] = {}

    async def work(cmd: Command) -> CommandResult:
        seen["nested_metadata"] = dict(cmd.metadata)
        with tracer.start_as_current_span("nested-handler-span"):
            await asyncio.sleep(0)
        return CommandResult(success=True, command_id=cmd.command_id)

    async def outer(cmd: Command) -> CommandResult:
        seen["outer_current"] = trace.get_current_span().get_span_context().span_id
        with tracer.start_as_current_span("retrieve"):
            await asyncio.sleep(0.001)

            async def background() -> None:
                with tracer.start_as_current_span("in-task"):
                    await asyncio.sleep(0.001)
                    with tracer.start_as_current_span("in-task-child"):
                        await asyncio.sleep(0)

            await asyncio.gather(asyncio.create_task(background()),
                                 asyncio.create_task(background()))
            await bus.execute(Work(session_id=cmd.session_id))
        with tracer.start_as_current_span("after-await"):
            await asyncio.sleep(0)
        return CommandResult(success=True, command_id=cmd.command_id)

    async with bus.session("s-foreign") as s:
        s.register_command_handler(Outer, outer)
        s.register_command_handler(Work, work)
        await s.execute_with_session(Outer())
        assert trace.get_current_span().get_span_context().is_valid is False

    spans = otel.spans()
    outer_span = otel.one("command Outer")
    retrieve = otel.one("retrieve")
    assert seen["outer_current"] == outer_span.context.span_id
    assert parent_of(retrieve, spans) is outer_span
    assert parent_of(otel.one("after-await"), spans) is outer_span
    tasks = otel.named("in-task")
    assert len(tasks) == 2 and all(parent_of(t, spans) is retrieve for t in tasks)
    assert all(parent_of(c, spans).name == "in-task"  # type: ignore[union-attr]
               for c in otel.named("in-task-child"))
    # The nested command was executed inside "retrieve": its traceparent names that span.
    nested = otel.one("command Work")
    assert parent_of(nested, spans) is retrieve
    assert f"{retrieve.context.span_id:016x}" in seen["nested_metadata"]["traceparent"]
    assert parent_of(otel.one("nested-handler-span"), spans) is nested
    # One trace: the session's (session shape), or the outer command's, which holds the
    # nested command, every foreign span and nothing else (command shape).
    in_outer = [s for s in spans if s.context.trace_id == outer_span.context.trace_id]
    if trace_per == "session":
        assert len(in_outer) == len(spans)
    else:
        assert sorted(s.name for s in spans if s not in in_outer) == ["session", "session end"]
        session = otel.one("session")
        assert outer_span.parent is None
        assert [lk.context.span_id for lk in outer_span.links] == [session.context.span_id]
        assert not nested.links  # a child of its caller, not a trace of its own
    assert "Failed to detach context" not in caplog.text


async def test_command_failure_is_the_translators_status_not_use_span(otel: Otel,
                                                                      bus: Any) -> None:
    async def boom(cmd: Command) -> CommandResult:
        raise ValueError("bad input")

    async with bus.session("s-fail") as s:
        s.register_command_handler(Work, boom)
        result = await s.execute_with_session(Work())
    assert result.success is False
    span = otel.one("command Work")
    assert span.status.status_code is StatusCode.ERROR
    assert attr(span, "error.type") == "ValueError"
    assert [e.name for e in span.events] == []  # use_span recorded nothing itself


@pytest.mark.parametrize("trace_per", ["command", "session"])
async def test_outer_request_span_does_not_pull_a_session_into_its_trace(
        instrumented: Any, bus: Any, trace_per: str) -> None:
    otel = instrumented(trace_per=trace_per)
    async with bus.session("s-http") as s:
        async def work(cmd: Command) -> CommandResult:
            return CommandResult(success=True, command_id=cmd.command_id)

        s.register_command_handler(Work, work)
        with otel.tracer.start_as_current_span("http request"):
            await s.execute_with_session(Work())
    session = otel.one("session")
    command = otel.one("command Work")
    request = otel.one("http request")
    assert command.context.trace_id != request.context.trace_id
    if trace_per == "session":
        assert command.context.trace_id == session.context.trace_id
        assert parent_of(command, otel.spans()) is session
    else:  # a trace of its own, linked to the session
        assert command.parent is None
        assert [lk.context.span_id for lk in command.links] == [session.context.span_id]


def test_missing_llmgine_is_a_logged_no_op(monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    for name in [m for m in sys.modules if m == "llmgine" or m.startswith("llmgine.")]:
        monkeypatch.setitem(sys.modules, name, None)
    originals = _originals()
    inst = LLMgineInstrumentor()
    caplog.set_level(logging.INFO, logger="llmgine_otel")
    try:
        inst.instrument(handler=Otel().handler)
    finally:
        inst.uninstrument()
    assert _originals() == originals
    lines = [r for r in caplog.records if "llmgine is not importable" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
