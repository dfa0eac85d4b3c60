"""litellm calls and ToolManager runs traced by the instrumentor, in process: real litellm and
its HTTP clients against a local OpenAI-compatible server, real llmgine bus and ToolManager,
in-memory exporters (the export path itself is tested in test_zero_code_llm_tools.py)."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llmgine.bus.bus")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> import support.*

import litellm
from llmgine.llm.tools.tool_manager import ToolManager
from llmgine.llm.tools.toolCall import ToolCall
from llmgine.messages.commands import Command, CommandResult
from llmgine_kit import Otel, attr, parent_of
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import StatusCode
from support.openai_server import COMPLETION_TOKENS, PROMPT_TOKENS, OpenAIServer, Reply

from llmgine_otel.events import LLMCallFinishedEvent, ToolExecutionFinishedEvent
from llmgine_otel.instrument import LLMgineInstrumentor
from llmgine_otel.llm import llm_call

pytestmark = pytest.mark.llmgine

SID = "s-litellm"


@pytest.fixture(scope="module")
def server() -> Any:
    srv = OpenAIServer()
    yield srv
    srv.close()


def ask(server: OpenAIServer, **kw: Any) -> dict[str, Any]:
    kw.setdefault("messages", [{"role": "user", "content": "hi"}])
    return dict(model="openai/local-model", api_base=server.base_url, api_key="k", **kw)


@dataclass
class Run(Command):
    """Holds the test body while its command span is current."""


async def in_command(bus: Any, body: Any, session_id: str = SID) -> Any:
    result: list[Any] = []

    async def handler(cmd: Command) -> CommandResult:
        result.append(await body())
        return CommandResult(success=True, command_id=cmd.command_id)

    async with bus.session(session_id) as s:
        s.register_command_handler(Run, handler)
        res = await s.execute_with_session(Run())
        assert res.success, res.error
    return result[0]


def chat_spans(otel: Otel) -> list[Any]:
    return [s for s in otel.spans() if s.name == "chat local-model"]


# -- instrument / uninstrument --------------------------------------------------------------

def _targets() -> dict[str, Any]:
    import litellm.main

    return {f"{m.__name__}.{n}": getattr(m, n) for m in (litellm, litellm.main)
            for n in ("completion", "acompletion", "embedding", "aembedding")} | {
        "ToolManager.execute_tool_call": ToolManager.__dict__["execute_tool_call"]}


def test_uninstrument_restores_litellm_and_tool_manager_exactly() -> None:
    inst = LLMgineInstrumentor()
    if inst.is_instrumented_by_opentelemetry:
        inst.uninstrument()
    before = _targets()
    for _ in range(2):  # instrument again after uninstrument: wraps again, restores again
        o = Otel()
        inst.instrument(handler=o.handler)
        during = _targets()
        for name, fn in during.items():
            assert fn is not before[name] and fn.__wrapped__ is before[name], name
        inst.uninstrument()
        o.close()
        after = _targets()
        for name, fn in after.items():
            assert fn is before[name], name


def test_bus_only_switch_leaves_litellm_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmgine_otel.config import ConfigError

    inst = LLMgineInstrumentor()
    if inst.is_instrumented_by_opentelemetry:
        inst.uninstrument()
    before = _targets()
    monkeypatch.setenv("LLMGINE_OTEL_INSTRUMENT", "none")
    o = Otel()
    inst.instrument(handler=o.handler)
    assert _targets() == before
    inst.uninstrument()
    monkeypatch.setenv("LLMGINE_OTEL_INSTRUMENT", "litellm,openai")
    with pytest.raises(ConfigError, match=r"LLMGINE_OTEL_INSTRUMENT.*litellm, tools"):
        inst.instrument(handler=o.handler)
    assert not inst.is_instrumented_by_opentelemetry
    o.close()


# -- LLM calls --------------------------------------------------------------------------------

async def test_calls_are_published_on_the_bus_for_every_handler(otel: Otel, bus: Any,
                                                                server: OpenAIServer) -> None:
    seen: list[Any] = []
    bus.register_event_handler(LLMCallFinishedEvent, lambda e: seen.append(e))  # type: ignore[arg-type]

    async def body() -> Any:
        return await litellm.acompletion(**ask(server))

    response = await in_command(bus, body)
    await bus.wait_for_events()
    (span,) = chat_spans(otel)
    assert parent_of(span, otel.spans()).name == "command Run"
    assert attr(span, "gen_ai.usage.input_tokens") == PROMPT_TOKENS
    assert attr(span, "gen_ai.response.id") == response.id
    assert len(seen) == 1 and seen[0].input_tokens == PROMPT_TOKENS
    # Translated once although the bus delivered it too.
    assert not otel.handler.stats.outcomes.get("duplicate_start")


async def test_span_is_current_during_the_call_and_restored_after(otel: Otel, bus: Any,
                                                                 server: OpenAIServer) -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    httpx_inst = HTTPXClientInstrumentor()
    httpx_inst.instrument(tracer_provider=otel.tracer_provider)
    try:
        async def body() -> Any:
            before = trace.get_current_span()
            litellm.completion(**ask(server))  # blocking, on the loop thread (sync httpx)
            assert trace.get_current_span() is before
            return before

        await in_command(bus, body)
    finally:
        httpx_inst.uninstrument()
    (span,) = chat_spans(otel)
    (post,) = [s for s in otel.spans() if s.instrumentation_scope.name.endswith("httpx")]
    assert post.parent.span_id == span.context.span_id
    assert parent_of(span, otel.spans()).name == "command Run"


async def test_one_call_one_event_pair_also_when_sampled_out(bus: Any,
                                                            server: OpenAIServer) -> None:
    """``acompletion`` runs ``completion`` in a worker thread: one call, one pair of events,
    also when the span is not recording (a sampled-out session), where no GenAI span is
    current to step aside for."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    from llmgine_otel.config import ObservabilityConfig
    from llmgine_otel.events import LLMCallStartedEvent
    from llmgine_otel.translate import OTelHandler

    inst = LLMgineInstrumentor()
    if inst.is_instrumented_by_opentelemetry:
        inst.uninstrument()
    from opentelemetry.sdk.trace import TracerProvider

    handler = OTelHandler(TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False),
                          config=ObservabilityConfig(console=False, emit_logs=False,
                                                     emit_metrics=False))
    inst.instrument(handler=handler)
    seen: list[Any] = []
    bus.register_event_handler(LLMCallStartedEvent, lambda e: seen.append(e))  # type: ignore[arg-type]
    try:
        async def body() -> Any:
            return await litellm.acompletion(**ask(server))

        await in_command(bus, body)
        await bus.wait_for_events()
    finally:
        inst.uninstrument()
    assert len(seen) == 1


def test_call_outside_any_command_is_its_own_trace(otel: Otel, server: OpenAIServer) -> None:
    litellm.completion(**ask(server))
    with otel.tracer.start_as_current_span("http request") as outer:
        litellm.completion(**ask(server))
    alone, inside = sorted(chat_spans(otel), key=lambda s: s.start_time)
    assert alone.parent is None
    assert inside.parent.span_id == outer.get_span_context().span_id
    assert attr(alone, "gen_ai.conversation.id") is None


async def test_sync_call_from_a_worker_thread_joins_the_command(otel: Otel, bus: Any,
                                                               server: OpenAIServer) -> None:
    async def body() -> Any:
        return await asyncio.to_thread(litellm.completion, **ask(server))

    await in_command(bus, body)
    (span,) = chat_spans(otel)
    assert parent_of(span, otel.spans()).name == "command Run"
    assert attr(span, "gen_ai.conversation.id") == SID


async def test_failed_call_is_error_with_its_type(otel: Otel, bus: Any,
                                                 server: OpenAIServer) -> None:
    async def body() -> Any:
        with pytest.raises(litellm.BadRequestError):
            await litellm.acompletion(**ask(server, max_tokens=-1))

    await in_command(bus, body)
    (span,) = chat_spans(otel)
    assert span.status.status_code is StatusCode.ERROR
    assert attr(span, "error.type") == "BadRequestError"
    assert attr(span, "gen_ai.request.max_tokens") == -1 or attr(
        span, "gen_ai.request.max_tokens") is None


def test_sync_streams_exhausted_closed_early_and_abandoned(otel: Otel,
                                                           server: OpenAIServer) -> None:
    full = litellm.completion(**ask(server, stream=True,
                                    stream_options={"include_usage": True}))
    assert isinstance(full, litellm.CustomStreamWrapper)  # the proxy is transparent
    assert len(list(full)) >= 10
    closed = litellm.completion(**ask(server, stream=True))
    next(closed), next(closed)
    closed.close()
    dropped = litellm.completion(**ask(server, stream=True))
    next(dropped), next(dropped)
    del dropped
    gc.collect()
    whole, early, gone = sorted(chat_spans(otel), key=lambda s: s.start_time)
    assert attr(whole, "gen_ai.usage.output_tokens") == COMPLETION_TOKENS
    assert attr(whole, "gen_ai.response.finish_reasons") == ("stop",)
    assert attr(whole, "gen_ai.response.time_to_first_chunk") > 0
    assert early.status.status_code is StatusCode.UNSET
    assert attr(early, "llmgine.stream.chunk_count") == 2
    assert gone.status.status_code is StatusCode.ERROR
    assert attr(gone, "error.type") == "stream_abandoned"


async def test_async_stream_pulls_run_under_the_llm_span(otel: Otel, bus: Any,
                                                        server: OpenAIServer) -> None:
    server.script.append(Reply(text="a b c d", chunk_delay_s=0.01))
    currents: list[Any] = []

    class Spy:
        def __init__(self, it: Any) -> None:
            self.it = it

        def __aiter__(self) -> Any:
            return self

        async def __anext__(self) -> Any:
            currents.append(trace.get_current_span())
            return await self.it.__anext__()

    async def body() -> Any:
        stream = await litellm.acompletion(**ask(server, stream=True))
        stream.completion_stream = Spy(stream.completion_stream)
        return [c async for c in stream]

    assert len(await in_command(bus, body)) >= 4
    (span,) = chat_spans(otel)
    assert currents and all(c.get_span_context().span_id == span.context.span_id
                            for c in currents)


async def test_embeddings(otel: Otel, bus: Any, server: OpenAIServer) -> None:
    async def body() -> Any:
        return await litellm.aembedding(model="openai/emb", input=["a", "b", "c"],
                                        api_base=server.base_url, api_key="k")

    await in_command(bus, body)
    span = otel.one("embeddings emb")
    assert attr(span, "gen_ai.operation.name") == "embeddings"
    assert attr(span, "gen_ai.usage.input_tokens") == 15
    assert attr(span, "gen_ai.response.model") == "emb-served"


def test_one_span_when_a_genai_span_is_already_current(otel: Otel,
                                                       server: OpenAIServer) -> None:
    # Another instrumentation wrapped litellm outside ours, or the app's own llm_call block
    # surrounds the call: ours steps aside.
    other = trace.get_tracer("openinference.instrumentation.litellm",
                             tracer_provider=otel.tracer_provider)
    with other.start_as_current_span("completion", attributes={
            "gen_ai.operation.name": "chat"}):
        litellm.completion(**ask(server))
    with llm_call(None, model="local-model", provider="openai", session_id="BUS") as call:
        call.record_response(litellm.completion(**ask(server)))
    with suppress_instrumentation():
        litellm.completion(**ask(server))
    (mine,) = chat_spans(otel)  # the llm_call block's
    assert attr(mine, "gen_ai.usage.input_tokens") == PROMPT_TOKENS


def test_openai_v2_spans_nest_under_ours(otel: Otel, server: OpenAIServer) -> None:
    """opentelemetry-instrumentation-openai-v2 wraps the OpenAI SDK's create(); a call to it
    made while our LLM span is current (here: inside an ``llm_call`` block) is a child."""
    import openai
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=otel.tracer_provider)
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="k")
        with llm_call(None, model="local-model", provider="openai", session_id="BUS") as call:
            call.record_response(client.chat.completions.create(
                model="local-model", messages=[{"role": "user", "content": "hi"}]))
    finally:
        inst.uninstrument()
    ours, theirs = sorted(chat_spans(otel), key=lambda s: s.start_time)
    assert theirs.instrumentation_scope.name != "llmgine_otel"
    assert theirs.parent.span_id == ours.context.span_id


# -- tool runs --------------------------------------------------------------------------------

async def test_tool_runs(otel: Otel, bus: Any) -> None:
    tracer = otel.tracer

    def slow(city: str) -> str:
        """Weather."""
        with tracer.start_as_current_span("weather.fetch"):
            time.sleep(0.1)
        return f"sunny in {city}"

    async def broken(x: int) -> str:
        raise KeyError(x)

    async def sleepy() -> str:
        await asyncio.sleep(5)
        return "late"

    tools = ToolManager(default_timeout_s=0.2)
    for fn in (slow, broken, sleepy):
        tools.register_tool(fn)

    async def body() -> Any:
        return [await tools.execute_tool_call(ToolCall(id=i, name=n, arguments=a))
                for i, n, a in (("c1", "slow", '{"city": "Oslo"}'),
                                ("c2", "broken", '{"x": 1}'), ("c3", "sleepy", "{}"),
                                ("c4", "slow", '{"town": 1}'), ("c5", "missing", "{}"))]

    results = await in_command(bus, body)
    assert results[0] == "sunny in Oslo" and results[1].startswith("Error executing broken")
    assert tools.tools["slow"] is slow  # the per-run wrapper is gone
    spans = {attr(s, "gen_ai.tool.call.id"): s for s in otel.spans()
             if s.name.startswith("execute_tool")}
    cmd = otel.one("command Run")
    for s in spans.values():
        assert parent_of(s, otel.spans()) is cmd
    ok = spans["c1"]
    assert ok.status.status_code is StatusCode.UNSET
    assert (ok.end_time - ok.start_time) >= 100e6
    assert attr(ok, "gen_ai.tool.description") == "Weather."
    assert parent_of(otel.one("weather.fetch"), otel.spans()) is ok  # in the thread pool
    for cid, error_type in (("c2", "KeyError"), ("c3", "ToolTimeoutError"),
                            ("c4", "ToolValidationError"), ("c5", "tool_not_found")):
        assert spans[cid].status.status_code is StatusCode.ERROR, cid
        assert attr(spans[cid], "error.type") == error_type, cid
    assert (spans["c3"].end_time - spans["c3"].start_time) >= 0.2e9


async def test_tool_result_event_published_by_the_app_makes_no_second_span(
        otel: Otel, bus: Any) -> None:
    from llmgine.llm.tools.tool_events import ToolExecuteResultEvent

    seen: list[Any] = []
    bus.register_event_handler(ToolExecutionFinishedEvent, lambda e: seen.append(e))  # type: ignore[arg-type]

    def add(a: int, b: int) -> int:
        return a + b

    tools = ToolManager()
    tools.register_tool(add)

    async def body() -> Any:
        result = await tools.execute_tool_call(ToolCall(id="call-7", name="add",
                                                        arguments='{"a": 1, "b": 2}'))
        await bus.publish(ToolExecuteResultEvent(
            execution_succeed=True, tool_name="add", tool_call_id="call-7", tool_result=result,
            session_id=SID), await_processing=False)
        return result

    assert await in_command(bus, body) == 3
    await bus.wait_for_events()
    assert len([s for s in otel.spans() if s.name == "execute_tool add"]) == 1
    assert len(seen) == 1 and seen[0].tool_call_id == "call-7"
