"""Content capture: off by default; the four modes and true/false; semconv message shape;
secrets scrubbed even when captured; the user's redaction hook; huge values truncated and
still valid JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from otel_kit import (
    command_result,
    command_started,
    llm_finished,
    llm_started,
    session_end,
    session_start,
    tool_result,
    ts,
)

from llmgine_otel.config import CaptureMode, ObservabilityConfig
from llmgine_otel.content import Sanitizer, scrub_secrets, to_semconv_messages
from llmgine_otel.events import LLMStreamChunkEvent

CANARY = "CANARY-7f3a"


def _feed(h) -> None:
    from llmgine.messages.commands import Command
    from llmgine.messages.events import DeadLetterCommandEvent, EventHandlerFailedEvent

    @dataclass
    class AskCommand(Command):
        prompt: str = ""

    cmd = AskCommand(command_id="c1", session_id="s1", prompt=f"{CANARY}-command")
    started = command_started("s1", "c1", 1, cmd=cmd)
    h.handle(
        session_start("s1", 0), started,
        llm_started("s1", "L1", 1.1,
                    messages=[{"role": "system", "content": f"{CANARY}-system"},
                              {"role": "user", "content": f"{CANARY}-messages"}],
                    system_instructions=f"{CANARY}-instructions",
                    tool_definitions=[{"name": "t", "description": f"{CANARY}-tooldef"}]),
        LLMStreamChunkEvent(call_id="L1", content=f"{CANARY}-chunk", session_id="s1"),
        llm_finished("s1", "L1", 1.4,
                     output_messages=[{"role": "assistant", "content": f"{CANARY}-output"}]),
        tool_result("s1", "call-1", 1.5, tool_args={"city": f"{CANARY}-tool_args"},
                    tool_result=f"{CANARY}-tool_result"),
        EventHandlerFailedEvent(event=started, handler="h", exception=ValueError("x"),
                                session_id="s1"),
        DeadLetterCommandEvent(command=cmd, error="x", attempts=1, session_id="s1"),
        command_result("s1", "c1", 2, result=f"{CANARY}-result"),
        session_end("s1", 3))


def _span_text(h) -> str:
    return "\n".join(repr(dict(s.attributes)) + repr([dict(e.attributes) for e in s.events])
                     for s in h.spans())


def _log_text(h) -> str:
    return "\n".join(json.dumps(r.body, default=repr) + repr(dict(r.attributes))
                     for r in h.logs())


def test_default_is_no_content_anywhere(make_otel):
    h = make_otel(stream_chunk_logs=True)
    assert h.config.capture_content is CaptureMode.NO_CONTENT
    _feed(h)
    assert len(h.spans()) == 5 and len(h.logs()) == 10  # with the session's end span
    assert CANARY not in h.all_text()


@pytest.mark.parametrize("mode, on_span, on_event", [
    ("NO_CONTENT", False, False), ("SPAN_ONLY", True, False),
    ("EVENT_ONLY", False, True), ("SPAN_AND_EVENT", True, True),
    ("true", True, True), ("false", False, False), ("span_only", True, False),
])
def test_capture_modes(make_otel, mode, on_span, on_event):
    config = ObservabilityConfig.from_env(
        env={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": mode})
    h = make_otel(capture_content=config.capture_content)
    _feed(h)
    spans, logs = _span_text(h), _log_text(h)
    for where in ("messages", "instructions", "tooldef", "output", "tool_args", "tool_result"):
        assert (f"{CANARY}-{where}" in spans) is on_span, where
        assert (f"{CANARY}-{where}" in logs) is on_event, where


def test_semconv_message_shape_on_span(make_otel):
    h = make_otel(capture_content=CaptureMode.SPAN_ONLY)
    h.handle(llm_started("s1", "L1", 1, messages=[
                 {"role": "user", "content": "hi"},
                 {"role": "assistant", "content": None, "tool_calls": [
                     {"id": "t1", "function": {"name": "calc", "arguments": '{"x":1}'}}]},
                 {"role": "tool", "tool_call_id": "t1", "content": "2"}]),
             llm_finished("s1", "L1", 2, output_messages=[
                 {"role": "assistant", "content": "done", "finish_reason": "stop"}]))
    a = h.span("chat gpt-4o").attributes
    assert json.loads(a["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "t1", "name": "calc",
                                         "arguments": '{"x":1}'}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "t1",
                                    "response": "2"}]},
    ]
    assert json.loads(a["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "done"}],
         "finish_reason": "stop"}]


@pytest.mark.parametrize("mode", [CaptureMode.EVENT_ONLY, CaptureMode.SPAN_AND_EVENT,
                                  CaptureMode.SPAN_ONLY, CaptureMode.NO_CONTENT])
def test_inference_details_event_carries_structured_content(make_otel, mode):
    """Capture on events: the call's gen_ai.client.inference.operation.details record has the
    input (held from the start) and output messages in the semconv shape, as structured
    values, and no record body has them. Otherwise no content on any record."""
    h = make_otel(capture_content=mode)
    h.handle(llm_started("s1", "L1", 1, messages=[{"role": "user", "content": "hi"}],
                         system_instructions="be brief"),
             llm_finished("s1", "L1", 2, output_messages=[
                 {"role": "assistant", "content": "done", "finish_reason": "stop"}]))
    (details,) = [r for r in h.logs()
                  if r.event_name == "gen_ai.client.inference.operation.details"]
    (start,) = [r for r in h.logs() if r.event_name == "llmgine.llm.call.start"]
    a = details.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "gpt-4o"
    for rec in (start, details):
        body = json.dumps(rec.body)
        assert "hi" not in body and "done" not in body and "be brief" not in body
    content = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions")
    if not mode.on_event:
        assert not set(content) & set(a)  # not even the span's JSON copy (SPAN_ONLY)
        return
    def plain(v):  # the SDK stores sequences as tuples
        return json.loads(json.dumps(v))

    assert plain(a["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    assert plain(a["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "done"}],
         "finish_reason": "stop"}]
    assert a["gen_ai.system_instructions"] == "be brief"
    assert "gen_ai.input.messages" not in start.attributes
    span = h.span("chat gpt-4o")
    assert ("gen_ai.input.messages" in span.attributes) is mode.on_span


def test_semconv_messages_pass_through_converted_and_unknown():
    done = [{"role": "user", "parts": [{"type": "text", "content": "x"}]}]
    assert to_semconv_messages(done) == done
    assert to_semconv_messages("plain") == "plain"
    assert to_semconv_messages([42]) == [42]


SECRETS = ["sk-proj-abcdefghijklmnop1234", "Bearer eyJhbGciOiJIUzI1NiJ9.abc.def",
           "password=hunter2xyz", "api_key: 'q1w2e3r4t5'", "AKIAABCDEFGHIJKLMNOP",
           "ghp_abcdefghijklmnopqrstuvwxyz0123"]


@pytest.mark.parametrize("secret", SECRETS)
def test_secrets_scrubbed_even_with_capture_on(make_otel, secret):
    h = make_otel(capture_content=CaptureMode.SPAN_AND_EVENT)
    h.handle(session_start("s1", 0),
             llm_started("s1", "L1", 1, messages=[{"role": "user", "content": f"use {secret}"}]),
             llm_finished("s1", "L1", 2, error=f"RuntimeError: auth failed for {secret}"),
             tool_result("s1", "t", 2, tool_args={"auth": f"x {secret}"}),
             session_end("s1", 3, error=PermissionError(f"denied {secret}")))
    text = h.all_text()
    assert "[REDACTED]" in text
    tail = secret.split("=")[-1].split(":")[-1].split()[-1].strip("'")
    assert tail not in text


def test_scrub_keeps_ordinary_text():
    text = "The password policy says tokens expire; skip-list and Bearer of news."
    assert scrub_secrets(text) == text


def test_redaction_hook_rewrites_and_drops(make_otel):
    seen: list[str] = []

    def hook(key, value):
        seen.append(key)
        if key == "gen_ai.tool.call.arguments":
            return None  # drop
        if key == "gen_ai.input.messages":
            return [{"role": "user", "parts": [{"type": "text", "content": "rewritten"}]}]
        return value

    h = make_otel(capture_content=CaptureMode.SPAN_AND_EVENT, redact=hook)
    h.handle(llm_started("s1", "L1", 1, messages=[{"role": "user", "content": "original"}]),
             llm_finished("s1", "L1", 2),
             tool_result("s1", "c", 2, tool_args={"q": "dropped-args"}, tool_result="kept"))
    llm, tool = h.span("chat gpt-4o"), h.span("execute_tool get_weather")
    assert "rewritten" in llm.attributes["gen_ai.input.messages"]
    assert "gen_ai.tool.call.arguments" not in tool.attributes
    assert tool.attributes["gen_ai.tool.call.result"] == "kept"
    text = h.all_text()
    assert "original" not in text and "dropped-args" not in text
    # The same key on spans and on log bodies.
    assert set(seen) == {"gen_ai.input.messages", "gen_ai.tool.call.arguments",
                         "gen_ai.tool.call.result"}


def test_broken_redaction_hook_drops_never_raises(make_otel):
    def hook(key, value):
        raise RuntimeError("bug in hook")

    h = make_otel(capture_content=CaptureMode.SPAN_AND_EVENT, redact=hook)
    h.handle(llm_started("s1", "L1", 1, messages=[{"role": "user", "content": "leak?"}]),
             llm_finished("s1", "L1", 2))
    assert "leak?" not in h.all_text()
    assert h.outcomes.get("rejected", 0) == 0


def test_ten_megabyte_prompt_is_truncated_and_still_json(make_otel):
    h = make_otel(capture_content=CaptureMode.SPAN_AND_EVENT, max_value_length=4096)
    huge = "x" * (10 * 1024 * 1024)
    h.handle(llm_started("s1", "L1", 1, messages=[{"role": "user", "content": huge}],
                         model=huge),
             llm_finished("s1", "L1", 2, response_id=huge),
             tool_result("s1", "c", 2, tool_args={"a": huge}, tool_result=huge))
    for s in h.spans():
        assert len(s.name) <= 256
        for k, v in s.attributes.items():
            if isinstance(v, str):
                assert len(v) < 4096 + 4096, k
        if "gen_ai.input.messages" in s.attributes:
            msgs = json.loads(s.attributes["gen_ai.input.messages"])
            assert "truncated" in msgs[0]["parts"][0]["content"]
    for r in h.logs():
        assert len(json.dumps(r.body)) < 64 * 1024
    assert h.outcomes["repaired"] >= 1


def test_sanitizer_data_is_json_safe():
    class Weird:
        def __str__(self):
            raise RuntimeError("no str")

    cyc: dict = {"a": 1}
    cyc["self"] = cyc
    s = Sanitizer(100)
    out = s.data({"w": Weird(), "cyc": cyc, "b": b"\xff\xfe", "f": float("nan"),
                  "big": 2**70, "deep": [[[[[[[[[["x"]]]]]]]]]], "sur": "a\ud800b",
                  1: "int key", "many": list(range(1000))})
    text = json.dumps(out)
    text.encode("utf-8")
    assert "<cycle>" in text and "too deep" in text
    assert s.repairs > 0


def test_ts_helper_roundtrip():
    assert ts(0).startswith("2026-11-26T12:00:00")
