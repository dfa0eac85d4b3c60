"""A small llmgine chat app, traced with one line: ``LLMgineInstrumentor().instrument()``
(at the bottom, so tests can import this module and feed their own telemetry).

Run it (no network, no API keys: litellm answers from ``mock_response``)::

    python examples/chat_demo.py

What it does, on llmgine's real MessageBus, in one session:

1. ``ChatCommand`` asks the model (litellm) which tools to call; llmgine's ``ToolManager``
   runs the two it picks, ``get_weather`` (works) and ``get_stock_price`` (fails); then the
   final answer is streamed from the model.
2. ``SummarizeCommand`` fails: the model rejects the request (context window exceeded) and
   the handler raises.

There is no tracing code in the handlers: the instrumentor traces the bus, every litellm
call and every ToolManager run, so each command is a trace (command -> LLM calls and tool
executions, with token usage, streaming, statuses and errors) linked to its session, and
every span carries ``session.id`` and the ``user.id`` the app names with
``llmgine_otel.span_attributes`` (LLMGINE_OTEL_TRACE_PER=session makes the whole session one
trace instead). Telemetry goes to
./llmgine-telemetry (the embedded default), or to a Collector when
OTEL_EXPORTER_OTLP_ENDPOINT is set. The same app with no line of tracing at all, under
``opentelemetry-instrument``, is examples/tool_agent_app.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Keep litellm offline and quiet: the bundled price map, no callbacks.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_TELEMETRY", "False")
# llmgine keeps scheduled events in ./message_bus.db unless told otherwise; the demo has none.
os.environ.setdefault("LLMGINE_DB_URL", "sqlite://")

import litellm
from llmgine.bus.bus import MessageBus
from llmgine.llm.tools.tool_manager import ToolManager
from llmgine.llm.tools.toolCall import ToolCall
from llmgine.messages.commands import Command, CommandResult

import llmgine_otel
from llmgine_otel.instrument import LLMgineInstrumentor

MODEL = "gpt-4o-mini"
SESSION_ID = "demo-session"
USER_ID = "demo-user"
# What the (mocked) model answers: it calls both tools.
TOOL_CALLS = [
    {"id": "call_weather", "type": "function",
     "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}},
    {"id": "call_stock", "type": "function",
     "function": {"name": "get_stock_price", "arguments": json.dumps({"ticker": "ACME"})}},
]


@dataclass
class ChatCommand(Command):
    """A user message to answer, using tools when the model asks for them."""

    text: str = ""


@dataclass
class SummarizeCommand(Command):
    """Summarize a (too long) document."""

    document: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)


def get_weather(city: str) -> str:
    """Weather now."""
    time.sleep(0.05)  # a blocking client: ToolManager runs it in a worker thread
    return f"18°C and sunny in {city}"


def get_stock_price(ticker: str) -> str:
    """A quote."""
    raise ConnectionError(f"quote service unavailable for {ticker}")


TOOLS = ToolManager()
TOOLS.register_tool(get_weather)
TOOLS.register_tool(get_stock_price)


async def handle_chat(cmd: ChatCommand) -> CommandResult:
    """Model -> tools -> model (streamed)."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": cmd.text}]
    response = await litellm.acompletion(
        model=MODEL, messages=messages, tools=TOOLS.parse_tools_to_list(), temperature=0.2,
        max_tokens=256, mock_response="", mock_tool_calls=TOOL_CALLS)
    assistant = response.choices[0].message
    messages.append({"role": "assistant", "content": assistant.content or "",
                     "tool_calls": TOOL_CALLS})
    for call in assistant.tool_calls or ():
        result = await TOOLS.execute_tool_call(ToolCall(
            id=call.id, name=call.function.name, arguments=call.function.arguments))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": str(result)})

    answer = []
    stream = await litellm.acompletion(
        model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True},
        mock_response="It is 18°C and sunny in Paris. I could not get the ACME quote.")
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            answer.append(chunk.choices[0].delta.content)
    return CommandResult(success=True, command_id=cmd.command_id, result="".join(answer))


async def handle_summarize(cmd: SummarizeCommand) -> CommandResult:
    """Fails: the model rejects the request, and the handler lets the error propagate."""
    await litellm.acompletion(
        model=MODEL, messages=[{"role": "user", "content": f"Summarize: {cmd.document}"}],
        mock_response=litellm.ContextWindowExceededError(
            message="This model's maximum context length is 128000 tokens",
            model=MODEL, llm_provider="openai"))
    return CommandResult(success=True, command_id=cmd.command_id)  # not reached


async def main() -> int:
    """Run the session, then say where the telemetry went."""
    litellm.telemetry = False
    litellm.callbacks = []
    MessageBus._instance = None  # a fresh bus even if something made one before
    bus = MessageBus()
    await bus.start()
    try:
        # Who the conversation is with: user.id on every span of the session.
        with llmgine_otel.span_attributes(user_id=USER_ID):
            async with bus.session(SESSION_ID) as session:
                # llmgine types handlers as sync callables; async ones are what it awaits.
                session.register_command_handler(
                    ChatCommand, handle_chat)  # type: ignore[arg-type]
                session.register_command_handler(
                    SummarizeCommand, handle_summarize)  # type: ignore[arg-type]
                chat = await session.execute_with_session(
                    ChatCommand(text="What's the weather in Paris, and how is ACME doing?"))
                print(f"chat      -> success={chat.success}: {chat.result}")
                summary = await session.execute_with_session(
                    SummarizeCommand(document="..." * 50))
                print(f"summarize -> success={summary.success}: {summary.error}")
    finally:
        await bus.stop()
    return 0


def report() -> None:
    """Flush telemetry and print where it is and how to look at it."""
    telemetry = llmgine_otel.get_telemetry()
    if telemetry is None:
        return
    result = telemetry.shutdown()
    print()
    if telemetry.config.endpoint:
        print(f"Telemetry sent to {telemetry.config.endpoint} ({result}).")
        return
    where = (telemetry.config.output_dir / "telemetry.jsonl").resolve()
    cli = _here(shutil.which("llmgine-otel") or Path(sys.executable).with_name("llmgine-otel"))
    python = _here(sys.executable)
    print(f"Telemetry written to {where}")
    print(f"  view it:             {cli} view {telemetry.config.output_dir}")
    print(f"  one conversation:    {cli} view {telemetry.config.output_dir} "
          f"--session {SESSION_ID}")
    print(f"                       {cli} view {telemetry.config.output_dir} --html trace.html")
    print(f"  send to a Collector: {cli} collector run   (in another terminal), then")
    print(f"                       OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 "
          f"{python} examples/chat_demo.py")


def _here(path: str | Path) -> str:
    """``path`` relative to the current folder when it is inside it (shorter to type)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    LLMgineInstrumentor().instrument()  # the one line: every bus event becomes telemetry
    # llmgine logs each failed command with a traceback; the trace has it already.
    logging.getLogger("llmgine.bus.bus").setLevel(logging.CRITICAL)
    code = asyncio.run(main())
    report()
    sys.exit(code)
