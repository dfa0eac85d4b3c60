"""Property tests: malformed events never make the handler raise, never leak an open span,
and everything exported still encodes as OTLP protobuf."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from otel_kit import Harness, is_ours, translator_failures

from llmgine_otel import events as own
from llmgine_otel.config import CaptureMode


def _classes() -> list[type]:
    from llmgine.bus.session import SessionEndEvent, SessionStartEvent
    from llmgine.llm.tools.tool_events import (
        ToolCompiledEvent,
        ToolExecuteResultEvent,
        ToolRegisterEvent,
    )
    from llmgine.messages.events import (
        CommandResultEvent,
        CommandStartedEvent,
        DeadLetterCommandEvent,
        Event,
        EventHandlerFailedEvent,
    )

    return [SessionStartEvent, SessionEndEvent, CommandStartedEvent, CommandResultEvent,
            EventHandlerFailedEvent, DeadLetterCommandEvent, ToolExecuteResultEvent,
            ToolRegisterEvent, ToolCompiledEvent, Event, own.LLMCallStartedEvent,
            own.LLMStreamChunkEvent, own.LLMCallFinishedEvent, own.AgentInvocationStartedEvent,
            own.AgentInvocationFinishedEvent]


class BadStr:
    def __str__(self) -> str:
        raise RuntimeError("no __str__")

    __repr__ = __str__


class BadGetattr:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")

    def __str__(self) -> str:
        raise ValueError("nope")


class BadException(Exception):
    def __str__(self) -> str:
        raise RuntimeError("exception __str__ raises")


class WeirdMapping(dict):
    def items(self):  # type: ignore[override]
        raise RuntimeError("items() raises")


class Unknown:
    """Not an llmgine event at all, with odd attributes."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def _cyclic() -> dict:
    d: dict = {"k": "v"}
    d["self"] = d
    d["list"] = [d]
    return d


def _surrogates() -> st.SearchStrategy[str]:
    return st.text(alphabet=st.characters(codec=None, categories=None), max_size=30)


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), _surrogates(), st.binary(max_size=30),
    st.sampled_from(["", "BUS", "None", "2026-11-26T12:00:00", "1900-01-01T00:00:00",
                     "0001-01-01T00:00:00", "9999-12-31T23:59:59+14:00", "s1", "c1", "L1",
                     "sk-abcdefghijklmnop1234", "\ud800", "x" * 100_000]),
    st.builds(BadStr), st.builds(BadGetattr), st.builds(BadException),
    st.builds(lambda: ValueError("plain")), st.builds(_cyclic),
    st.builds(lambda: WeirdMapping(a=1)), st.builds(lambda: Unknown(command_id=BadStr())),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(_surrogates(), st.integers()), inner, max_size=4),
        st.builds(lambda kw: Unknown(**kw),
                  st.dictionaries(st.sampled_from(["command_id", "success", "name",
                                                   "metadata", "error", "result"]), inner,
                                  max_size=3)),
    ),
    max_leaves=8,
)
IDS = st.sampled_from(["s1", "s2", "BUS", "c1", "c2", "L1", "A1", "call-1", ""])


@st.composite
def malformed_event(draw: Any) -> Any:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.one_of(SCALARS, st.builds(BadGetattr)))
    if kind == 1:
        return Unknown(**draw(st.dictionaries(st.sampled_from(
            ["session_id", "timestamp", "metadata", "call_id", "x"]), VALUES, max_size=4)))
    cls = draw(st.sampled_from(_classes()))
    event = cls()
    names = [f.name for f in dataclasses.fields(cls)]
    # Plausible ids most of the time, so starts and ends meet; garbage otherwise.
    for name in names:
        if name in ("session_id", "call_id", "invocation_id", "tool_call_id"):
            setattr(event, name, draw(st.one_of(IDS, VALUES)))
    for name in draw(st.lists(st.sampled_from(names), max_size=4)):
        setattr(event, name, draw(VALUES))
    if "command" in names and draw(st.booleans()):
        from llmgine.messages.commands import Command

        event.command = Command(command_id=draw(st.one_of(IDS, VALUES)),
                                metadata=draw(st.one_of(st.just({}), VALUES)))
    if "command_result" in names and draw(st.booleans()):
        from llmgine.messages.commands import CommandResult

        event.command_result = CommandResult(success=draw(VALUES),
                                             command_id=draw(st.one_of(IDS, VALUES)),
                                             error=draw(VALUES), result=draw(VALUES))
    return event


def _encodes(h: Harness) -> None:
    spans = h.spans()
    if spans:
        encode_spans(spans).SerializeToString()
    logs = list(h.log_exporter.get_finished_logs())
    if logs:
        encode_logs(logs).SerializeToString()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(events=st.lists(malformed_event(), min_size=1, max_size=12),
       capture=st.sampled_from(list(CaptureMode)))
def test_malformed_events_never_raise_leak_or_break_encoding(events, capture):
    h = Harness(console=False, capture_content=capture, max_value_length=1024,
                stream_chunk_logs=True)
    try:
        with translator_failures() as failures:
            for e in events:
                h.handler.handle(e)  # must not raise
        # The safety net is for events that raise when read; a failure that starts in our
        # own code is a bug even though the net caught it.
        ours = [exc for _, exc in failures if is_ours(exc)]
        assert not ours, ours[0]
        h.handler.end_open_spans()
        assert len(h.handler.table) == 0
        assert not h.handler.table._stacks
        _encodes(h)
    finally:
        h.close()


def test_specific_nasties_encode():
    """A fixed set of the worst cases, so a regression shows without hypothesis' luck."""
    from otel_kit import command_started, llm_finished, llm_started, session_start

    h = Harness(console=False, capture_content=CaptureMode.SPAN_AND_EVENT)
    try:
        bad = "\ud800bad\udfff"
        e1 = session_start(bad, 0)
        e1.metadata = _cyclic()
        e2 = command_started(bad, bad, 1)
        e3 = llm_started(bad, bad, 1, model=bad, provider=b"\xff\xfe", messages=[
            {"role": bad, "content": bad}], temperature=float("nan"))
        e4 = llm_finished(bad, bad, 2, error=BadException(), response_model=BadStr(),
                          finish_reasons=[bad, None], input_tokens=2**70)
        e4.metadata = {"llmgine.start_time": -1}
        e5 = Unknown(session_id=bad, timestamp=bad, metadata=WeirdMapping(a=bad))
        for e in (e1, e2, e3, e4, e5, BadGetattr(), command_started(bad, bad, 0)):
            h.handler.handle(e)
        h.handler.end_open_spans()
        assert len(h.handler.table) == 0
        _encodes(h)
    finally:
        h.close()
