"""A tool-calling llmgine app on litellm, with no tracing code at all.

Run it against any OpenAI-compatible server (vLLM, llama.cpp, Ollama's ``/v1``, or the
OpenAI API itself) under ``opentelemetry-instrument``, and its trace holds the sessions,
commands, every LLM call (with tokens, streaming and errors) and every tool run::

    OPENAI_API_BASE=http://127.0.0.1:8000/v1 OPENAI_API_KEY=... \\
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 \\
        opentelemetry-instrument python examples/tool_agent_app.py

What it does, in one session:

1. ``AskCommand``: the model picks tools (``get_weather`` is sync and slow, so ToolManager
   runs it in a thread; ``get_stock_price`` fails; ``search_docs`` makes a span of its own),
   ToolManager runs them, then the answer is streamed back;
2. ``ChoresCommand``: an embedding, a sync ``litellm.completion`` from a worker thread, a
   stream the app stops reading after two chunks, and a request the server rejects.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LLMGINE_DB_URL", "sqlite://")

import litellm
from llmgine.bus.bus import MessageBus
from llmgine.llm.tools.tool_manager import ToolManager
from llmgine.llm.tools.toolCall import ToolCall
from llmgine.messages.commands import Command, CommandResult
from opentelemetry import trace

MODEL = os.environ.get("APP_MODEL", "openai/gpt-4o-mini")
EMBEDDING_MODEL = os.environ.get("APP_EMBEDDING_MODEL", "openai/text-embedding-3-small")
tracer = trace.get_tracer("tool_agent_app")


def get_weather(city: str) -> str:
    """Current weather for a city."""
    time.sleep(0.2)  # a slow, blocking client: ToolManager runs it in a thread
    return f"18°C and sunny in {city}"


async def get_stock_price(ticker: str) -> str:
    """A stock quote."""
    raise ConnectionError(f"quote service unavailable for {ticker}")


async def search_docs(query: str) -> str:
    """Search the product documentation."""
    with tracer.start_as_current_span("docs.search") as span:
        span.set_attribute("docs.query.length", len(query))
        await asyncio.sleep(0.01)
        return "Returns are accepted within 30 days."


@dataclass
class AskCommand(Command):
    question: str = ""


@dataclass
class ChoresCommand(Command):
    pass


class Agent:
    def __init__(self) -> None:
        self.tools = ToolManager()
        for tool in (get_weather, get_stock_price, search_docs):
            self.tools.register_tool(tool)

    async def ask(self, cmd: Command) -> CommandResult:
        assert isinstance(cmd, AskCommand)
        messages: list[dict[str, Any]] = [{"role": "user", "content": cmd.question}]
        response = await litellm.acompletion(model=MODEL, messages=messages,
                                             tools=self.tools.parse_tools_to_list(),
                                             temperature=0.1, max_tokens=200)
        message = response.choices[0].message
        messages.append(message.model_dump())
        for call in message.tool_calls or ():
            result = await self.tools.execute_tool_call(ToolCall(
                id=call.id, name=call.function.name, arguments=call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id,
                             "content": json.dumps(result)})
        answer = []
        stream = await litellm.acompletion(model=MODEL, messages=messages, stream=True,
                                           stream_options={"include_usage": True})
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                answer.append(chunk.choices[0].delta.content)
        return CommandResult(success=True, command_id=cmd.command_id, result="".join(answer))

    async def chores(self, cmd: Command) -> CommandResult:
        await litellm.aembedding(model=EMBEDDING_MODEL, input=["returns policy", "weather"])
        # A blocking client call, moved off the event loop.
        await asyncio.to_thread(litellm.completion, model=MODEL,
                                messages=[{"role": "user", "content": "Say hi."}])
        # The user stops reading after two chunks.
        stream = await litellm.acompletion(model=MODEL, stream=True, messages=[
            {"role": "user", "content": "Tell me a long story."}])
        read = 0
        async for _ in stream:
            read += 1
            if read == 2:
                break
        del stream
        try:
            await litellm.acompletion(model=MODEL, max_tokens=-1,  # rejected by the server
                                      messages=[{"role": "user", "content": "?"}])
        except litellm.BadRequestError as exc:
            return CommandResult(success=True, command_id=cmd.command_id,
                                 result=f"rejected: {type(exc).__name__}")
        return CommandResult(success=True, command_id=cmd.command_id)


async def main() -> None:
    bus = MessageBus()
    await bus.start()
    agent = Agent()
    try:
        async with bus.session("tool-agent-session") as session:
            session.register_command_handler(AskCommand, agent.ask)  # type: ignore[arg-type]
            session.register_command_handler(ChoresCommand, agent.chores)  # type: ignore[arg-type]
            asked = await session.execute_with_session(
                AskCommand(question="Weather in Paris, the ACME quote, and the returns policy?"))
            print("ask:", asked.success, asked.result or asked.error)
            chores = await session.execute_with_session(ChoresCommand())
            print("chores:", chores.success, chores.result or chores.error)
    finally:
        await bus.stop()


if __name__ == "__main__":
    asyncio.run(main())
