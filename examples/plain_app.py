"""An unmodified llmgine app: no llmgine_otel import. Trace it with no code change::

    OTEL_PYTHON_DISTRO=llmgine_otel OTEL_PYTHON_CONFIGURATOR=llmgine_otel \\
        opentelemetry-instrument python examples/plain_app.py

It runs one session with a command that publishes a tool result, and one that fails.
``PLAIN_APP_SESSION`` sets the session id (default ``plain-session``).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from llmgine.bus.bus import MessageBus
from llmgine.llm.tools.tool_events import ToolExecuteResultEvent
from llmgine.messages.commands import Command, CommandResult


@dataclass
class GreetCommand(Command):
    """Say hello to someone."""

    name: str = ""


@dataclass
class BrokenCommand(Command):
    """A command whose handler always raises."""


async def main() -> None:
    """Run one session on the real MessageBus."""
    bus = MessageBus()
    await bus.start()
    session_id = os.environ.get("PLAIN_APP_SESSION", "plain-session")

    async def greet(cmd: Command) -> CommandResult:
        assert isinstance(cmd, GreetCommand)
        await bus.publish(ToolExecuteResultEvent(
            session_id=cmd.session_id, execution_succeed=True, tool_name="lookup_name",
            tool_call_id="call-1", tool_args={"name": cmd.name}, tool_result="found"),
            await_processing=False)
        return CommandResult(success=True, command_id=cmd.command_id,
                             result=f"hello {cmd.name}")

    async def broken(cmd: Command) -> CommandResult:
        raise RuntimeError("this command always fails")

    try:
        async with bus.session(session_id) as session:
            # llmgine types handlers as sync callables; it awaits async ones.
            session.register_command_handler(GreetCommand, greet)  # type: ignore[arg-type]
            session.register_command_handler(BrokenCommand, broken)  # type: ignore[arg-type]
            ok = await session.execute_with_session(GreetCommand(name="Ada"))
            bad = await session.execute_with_session(BrokenCommand())
            print(f"greet: {ok.result}; broken: success={bad.success}")
    finally:
        await bus.stop()


if __name__ == "__main__":
    asyncio.run(main())
