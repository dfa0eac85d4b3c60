"""llm_call on the real bus: responses, usage, errors, decorator, and every way a stream ends."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("llmgine.bus.bus")

from llmgine.messages.commands import Command, CommandResult
from llmgine_kit import Otel, attr, parent_of
from opentelemetry.trace import StatusCode

from llmgine_otel.events import LLMCallFinishedEvent, LLMCallStartedEvent
from llmgine_otel.llm import llm_call

pytestmark = pytest.mark.llmgine

SID = "s-llm"
RESPONSE = {
    "id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "hi"}}],
    "usage": {"prompt_tokens": 120, "completion_tokens": 30,
              "prompt_tokens_details": {"cached_tokens": 100},
              "completion_tokens_details": {"reasoning_tokens": 12}},
}


def chunk(i: int, final: bool = False) -> Any:
    """An OpenAI-shaped stream chunk (objects, like the SDKs return)."""
    choice = SimpleNamespace(finish_reason="stop" if final else None,
                             delta=SimpleNamespace(content=f"t{i}"))
    usage = SimpleNamespace(prompt_tokens=7, completion_tokens=5) if final else None
    return SimpleNamespace(id="chatcmpl-s", model="m-2025", choices=[choice], usage=usage)


async def agen(n: int, closed: list[str]) -> AsyncIterator[Any]:
    try:
        for i in range(n):
            await asyncio.sleep(0)
            yield chunk(i, final=i == n - 1)
    finally:
        closed.append("closed")


def sgen(n: int) -> Iterator[Any]:
    for i in range(n):
        yield chunk(i, final=i == n - 1)


async def settle(bus: Any) -> None:
    for _ in range(3):
        await asyncio.sleep(0)
    await bus.wait_for_events()


@dataclass
class Ask(Command):
    """Holds the test body while its command span is current."""


async def in_command(bus: Any, body: Any) -> None:
    """Run ``body()`` as a command handler inside a session."""
    async def handler(cmd: Command) -> CommandResult:
        await body()
        return CommandResult(success=True, command_id=cmd.command_id)

    async with bus.session(SID) as s:
        s.register_command_handler(Ask, handler)
        result = await s.execute_with_session(Ask())
        assert result.success, result.error


async def test_response_usage_and_parent(otel: Otel, bus: Any) -> None:
    async def body() -> None:
        async with llm_call(bus, model="gpt-4o-mini", provider="openai", session_id=SID,
                            temperature=0.5, max_tokens=64, stop="END", n=1) as call:
            call.record_response(RESPONSE)

    await in_command(bus, body)
    span = otel.one("chat gpt-4o-mini")
    assert parent_of(span, otel.spans()) is otel.one("command Ask")
    assert span.status.status_code is StatusCode.UNSET
    expected = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini", "gen_ai.request.temperature": 0.5,
        "gen_ai.request.max_tokens": 64, "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.request.choice.count": 1, "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.finish_reasons": ("stop",), "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30, "gen_ai.usage.cache_read.input_tokens": 100,
        "gen_ai.usage.reasoning.output_tokens": 12, "gen_ai.conversation.id": SID,
    }
    for k, v in expected.items():
        assert attr(span, k) == v, k
    assert attr(span, "gen_ai.input.messages") is None  # content capture is off


async def test_exception_in_block_ends_span_with_error(otel: Otel, bus: Any) -> None:
    async def body() -> None:
        with pytest.raises(TimeoutError):
            async with llm_call(bus, model="m", provider="openai", session_id=SID):
                raise TimeoutError("upstream took too long")

    await in_command(bus, body)
    span = otel.one("chat m")
    assert span.status.status_code is StatusCode.ERROR
    assert attr(span, "error.type") == "TimeoutError"


async def test_sync_block_callable_target_and_decorator(otel: Otel, bus: Any) -> None:
    published: list[Any] = []

    async def publish(ev: Any) -> None:
        published.append(ev)
        await bus.publish(ev, await_processing=False)

    @llm_call(publish, model="deco", provider="anthropic", session_id=SID)
    async def ask_model(prompt: str) -> dict[str, Any]:
        return RESPONSE

    async def body() -> None:
        with llm_call(bus, model="sync", provider="openai", session_id=SID) as call:
            call.record_usage(input_tokens=1, output_tokens=2)
        assert await ask_model("a") is RESPONSE
        assert await ask_model("b") is RESPONSE
        await asyncio.sleep(0)

    await in_command(bus, body)
    assert attr(otel.one("chat sync"), "gen_ai.usage.output_tokens") == 2
    deco = otel.named("chat deco")
    assert len(deco) == 2 and {attr(s, "gen_ai.usage.input_tokens") for s in deco} == {120}
    assert [type(e) for e in published] == [LLMCallStartedEvent, LLMCallFinishedEvent] * 2
    assert len({e.call_id for e in published}) == 2


async def test_stream_exhausted(otel: Otel, bus: Any) -> None:
    closed: list[str] = []

    async def body() -> None:
        async with llm_call(bus, model="m", provider="openai", session_id=SID,
                            stream=True) as call:
            got = [c async for c in call.wrap_stream(agen(5, closed))]
        assert len(got) == 5 and call.finished

    await in_command(bus, body)
    span = otel.one("chat m")
    assert span.status.status_code is StatusCode.UNSET
    assert attr(span, "llmgine.stream.chunk_count") == 5
    assert attr(span, "gen_ai.request.stream") is True
    assert attr(span, "gen_ai.usage.input_tokens") == 7
    assert attr(span, "gen_ai.usage.output_tokens") == 5
    assert attr(span, "gen_ai.response.id") == "chatcmpl-s"
    assert attr(span, "gen_ai.response.finish_reasons") == ("stop",)
    assert attr(span, "gen_ai.response.time_to_first_chunk") >= 0


async def test_stream_closed_early_by_aclose_and_by_break(otel: Otel, bus: Any) -> None:
    closed: list[str] = []

    async def body() -> None:
        async with llm_call(bus, model="aclose", provider="openai", session_id=SID) as call:
            stream = call.wrap_stream(agen(10, closed))
            await stream.__anext__()
            await stream.aclose()
        async with llm_call(bus, model="break", provider="openai", session_id=SID) as call:
            async for _ in call.wrap_stream(agen(10, closed)):
                break
        # A stream handed out of the block ends the span itself (here: as a context manager).
        async with llm_call(bus, model="handed", provider="openai", session_id=SID) as call:
            stream = call.wrap_stream(agen(10, closed))
        async with stream:
            await stream.__anext__()

    await in_command(bus, body)
    for name, chunks in (("chat aclose", 1), ("chat break", 1), ("chat handed", 1)):
        span = otel.one(name)
        assert span.status.status_code is StatusCode.UNSET, name
        assert attr(span, "llmgine.stream.chunk_count") == chunks, name
    assert closed.count("closed") == 3


async def test_stream_abandoned_is_ended_by_gc(otel: Otel, bus: Any) -> None:
    closed: list[str] = []

    async def body() -> None:
        # The usual shape: a helper returns the stream out of its llm_call block ...
        async with llm_call(bus, model="abandoned", provider="openai", session_id=SID) as call:
            stream = call.wrap_stream(agen(10, closed))
        await stream.__anext__()
        await stream.__anext__()
        del stream  # ... and the consumer drops it half read (client went away)
        gc.collect()
        await settle(bus)

    await in_command(bus, body)
    span = otel.one("chat abandoned")
    assert span.status.status_code is StatusCode.ERROR
    assert attr(span, "error.type") == "stream_abandoned"
    assert attr(span, "llmgine.stream.chunk_count") == 2


def test_sync_stream_exhausted_closed_and_abandoned_without_a_bus(otel: Otel) -> None:
    # No bus: events go straight to the instrumentor's handler.
    with llm_call(None, model="sync-all", provider="openai", session_id=SID) as call:
        assert len(list(call.wrap_stream(sgen(3)))) == 3
    with llm_call(None, model="sync-close", provider="openai", session_id=SID) as call:
        stream = call.wrap_stream(sgen(3))
        next(stream)
        stream.close()
    with llm_call(None, model="sync-gc", provider="openai", session_id=SID) as call:
        stream = call.wrap_stream(sgen(3))
    next(stream)
    del stream
    gc.collect()
    assert attr(otel.one("chat sync-all"), "llmgine.stream.chunk_count") == 3
    assert otel.one("chat sync-close").status.status_code is StatusCode.UNSET
    gone = otel.one("chat sync-gc")
    assert gone.status.status_code is StatusCode.ERROR
    assert attr(gone, "error.type") == "stream_abandoned"


async def test_chunk_events_fold_into_the_span(otel: Otel, bus: Any) -> None:
    async def body() -> None:
        async with llm_call(bus, model="chunks", provider="openai", session_id=SID,
                            chunk_events=True) as call:
            async for _ in call.wrap_stream(agen(4, [])):
                pass

    await in_command(bus, body)
    span = otel.one("chat chunks")
    assert attr(span, "llmgine.stream.chunk_count") == 4
    assert otel.handler.stats.outcomes.get("chunk_without_span", 0) == 0
