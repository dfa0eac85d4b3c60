"""200 concurrent sessions on one real bus: every span stays in its own session's trace."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("llmgine.bus.bus")

from llmgine.llm.tools.tool_events import ToolExecuteResultEvent
from llmgine.messages.commands import Command, CommandResult
from llmgine_kit import Otel, attr, parent_of

from llmgine_otel.llm import llm_call

pytestmark = pytest.mark.llmgine

SESSIONS = 200


@dataclass
class Ask(Command):
    """Calls the model, runs a tool and a nested lookup."""

    label: str = ""


@dataclass
class Lookup(Command):
    """A nested command."""


@pytest.mark.parametrize("trace_per", ["command", "session"])
async def test_200_concurrent_sessions_do_not_cross_link(instrumented: Any, bus: Any,
                                                        trace_per: str) -> None:
    otel: Otel = instrumented(trace_per=trace_per)

    async def lookup(cmd: Command) -> CommandResult:
        await asyncio.sleep(0)
        return CommandResult(success=True, command_id=cmd.command_id)

    async def ask(cmd: Command) -> CommandResult:
        assert isinstance(cmd, Ask)
        async with llm_call(bus, model="m", provider="openai", session_id=cmd.session_id) as c:
            await asyncio.sleep(0)
            c.record_usage(input_tokens=3, output_tokens=4)
        await asyncio.sleep(0)
        await bus.publish(ToolExecuteResultEvent(
            session_id=cmd.session_id, execution_succeed=True, tool_name=cmd.label,
            tool_call_id=f"{cmd.command_id}:tool"), await_processing=False)
        await bus.execute(Lookup(session_id=cmd.session_id))
        return CommandResult(success=True, command_id=cmd.command_id)

    async def one_session(i: int) -> None:
        async with bus.session(f"sess-{i}") as s:
            s.register_command_handler(Ask, ask)
            s.register_command_handler(Lookup, lookup)
            # Two commands of one session at once: children must follow their own command.
            await asyncio.gather(s.execute_with_session(Ask(label="a")),
                                 s.execute_with_session(Ask(label="b")))

    await asyncio.gather(*(one_session(i) for i in range(SESSIONS)))

    spans = otel.spans()
    by_id = {s.context.span_id: s for s in spans}
    sessions = {attr(s, "llmgine.session.id"): s for s in spans if s.name == "session"}
    assert len(sessions) == SESSIONS
    assert len({s.context.trace_id for s in sessions.values()}) == SESSIONS
    per_trace: dict[int, list[Any]] = defaultdict(list)
    for s in spans:
        per_trace[s.context.trace_id].append(s)
        sid = attr(s, "session.id")
        assert sid in sessions and attr(s, "gen_ai.conversation.id") in (None, sid), s.name
        for link in s.links:  # links only ever point at the span's own session
            assert link.context.span_id == sessions[sid].context.span_id, s.name
    # The spans of one Ask command: itself, its LLM call, its tool, its nested Lookup.
    ask_unit = {"command Ask": 1, "command Lookup": 1, "chat m": 1}
    if trace_per == "session":
        assert len(per_trace) == SESSIONS
        units = {sid: [per_trace[root.context.trace_id]] for sid, root in sessions.items()}
    else:  # the session's start, its end, and each Ask command as a trace of its own
        assert len(per_trace) == 4 * SESSIONS
        units = defaultdict(list)
        for members in per_trace.values():
            roots = [s for s in members if s.parent is None]
            assert len(roots) == 1
            assert bool(roots[0].links) == (roots[0].name != "session")
            if roots[0].name == "command Ask":
                units[attr(roots[0], "session.id")].append(members)
            else:
                assert len(members) == 1 and roots[0].name in ("session", "session end")
    for sid, traces in units.items():
        members = [s for t in traces for s in t]
        expected = {k: 2 * v for k, v in ask_unit.items()}
        expected.update({"execute_tool a": 1, "execute_tool b": 1})
        if trace_per == "session":
            expected["session"] = 1
        assert Counter(s.name for s in members) == expected, sid
        for s in members:
            if s.parent is not None:
                assert s.parent.span_id in by_id
        # Each tool / LLM call / lookup hangs under the Ask command that made it.
        asks = [s for s in members if s.name == "command Ask"]
        root = sessions[sid]
        assert all(parent_of(a, members) is (root if trace_per == "session" else None)
                   for a in asks)
        for s in members:
            if s.name.startswith(("execute_tool", "chat", "command Lookup")):
                owner = parent_of(s, members)
                assert owner in asks, (sid, s.name)
                assert owner.context.trace_id == s.context.trace_id
        for label in ("a", "b"):
            tool = next(s for s in members if s.name == f"execute_tool {label}")
            owner = parent_of(tool, members)
            assert owner is not None
            assert attr(owner, "llmgine.command.id") + ":tool" == attr(tool, "gen_ai.tool.call.id")
    assert otel.handler.table.__len__() == 0
    assert dict(otel.handler.stats.outcomes).get("synthetic_session", 0) == 0
