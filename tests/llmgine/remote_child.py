"""Child process for the traceparent round trip: continue a session from a command's metadata.

Reads ``{"session_id", "metadata"}`` (JSON) from argv[1], executes ``RemoteCommand`` with that
metadata on its own instrumented bus, and prints its finished spans as JSON lines.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass

from llmgine.bus.bus import MessageBus
from llmgine.llm.tools.tool_events import ToolExecuteResultEvent
from llmgine.messages.commands import Command, CommandResult
from llmgine_kit import Otel

from llmgine_otel.instrument import LLMgineInstrumentor


@dataclass
class RemoteCommand(Command):
    """Work sent over from the parent process."""


async def main(session_id: str, metadata: dict[str, str]) -> None:
    bus = MessageBus()
    await bus.start()

    async def handle(cmd: Command) -> CommandResult:
        await bus.publish(ToolExecuteResultEvent(
            session_id=cmd.session_id, execution_succeed=True, tool_name="remote_tool",
            tool_call_id="remote-1"), await_processing=False)
        return CommandResult(success=True, command_id=cmd.command_id)

    bus.register_command_handler(RemoteCommand, handle, session_id)  # type: ignore[arg-type]
    command = RemoteCommand(session_id=session_id, metadata=metadata)  # type: ignore[arg-type]
    result = await bus.execute(command)
    assert result.success, result.error
    await bus.wait_for_events()
    await bus.stop()


if __name__ == "__main__":
    request = json.loads(sys.argv[1])
    otel = Otel()
    LLMgineInstrumentor().instrument(handler=otel.handler)
    asyncio.run(main(request["session_id"], request["metadata"]))
    for s in otel.spans():
        print(json.dumps({"name": s.name, "trace_id": f"{s.context.trace_id:032x}",
                          "span_id": f"{s.context.span_id:016x}",
                          "parent_id": f"{s.parent.span_id:016x}" if s.parent else None}))
