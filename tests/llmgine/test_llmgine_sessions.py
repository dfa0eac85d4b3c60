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


async def test_200_concurrent_sessions_do_not_cross_link(otel: Otel, bus: Any) -> None:
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
    assert len(per_trace) == SESSIONS
    for sid, root in sessions.items():
        members = per_trace[root.context.trace_id]
        assert Counter(s.name for s in members) == {
            "session": 1, "command Ask": 2, "command Lookup": 2, "chat m": 2,
            "execute_tool a": 1, "execute_tool b": 1}, sid
        for s in members:
            conv = attr(s, "gen_ai.conversation.id")
            assert conv in (None, sid), (s.name, conv, sid)
            if s is not root:
                assert s.parent is not None and s.parent.span_id in by_id
        # Each tool / LLM call / lookup hangs under the Ask command that made it.
        asks = [s for s in members if s.name == "command Ask"]
        assert all(parent_of(a, members) is root for a in asks)
        for s in members:
            if s.name.startswith(("execute_tool", "chat", "command Lookup")):
                assert parent_of(s, members) in asks, (sid, s.name)
        for label in ("a", "b"):
            tool = next(s for s in members if s.name == f"execute_tool {label}")
            owner = parent_of(tool, members)
            assert owner is not None
            assert attr(owner, "llmgine.command.id") + ":tool" == attr(tool, "gen_ai.tool.call.id")
    assert otel.handler.table.__len__() == 0
    assert dict(otel.handler.stats.outcomes).get("synthetic_session", 0) == 0
