"""Sessions that last hours, in both trace shapes (``LLMGINE_OTEL_TRACE_PER``), with the clock
injected: two simulated hours of a chat, and a session that goes idle past the age limit and
then continues. Whole (every span, none cut, none orphaned) and readable (the viewer shows the
session's commands together)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import StatusCode
from otel_kit import (
    assert_well_formed,
    command_result,
    command_started,
    llm_finished,
    llm_started,
    ns,
    session_end,
    session_start,
    tool_finished,
    tool_started,
)

from llmgine_otel.otlp_json import dumps_line, encode_spans
from llmgine_otel.span_attributes import span_attributes
from llmgine_otel.view.model import group_sessions, load_traces
from llmgine_otel.view.terminal import Style, render

HOUR = 3600
SHAPES = ["command", "session"]


class Clock:
    """The open-span table's clock, moved by hand (seconds, like ``time.monotonic``)."""

    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def turn(sid: str, n: int, t: float, *, fail: bool = False) -> list[Any]:
    """One command at ``t`` seconds: an LLM call, a tool run (failing with ``fail``), 20 s."""
    cid, call, tool = f"{sid}-c{n}", f"{sid}-L{n}", f"{sid}-T{n}"
    return [command_started(sid, cid, t), llm_started(sid, call, t + 1),
            llm_finished(sid, call, t + 8, input_tokens=100, output_tokens=20),
            tool_started(sid, tool, t + 9),
            tool_finished(sid, tool, t + 15, error="ConnectionError: down" if fail else None),
            command_result(sid, cid, t + 20, success=not fail,
                           error="ToolError: lookup failed" if fail else None)]


def feed(h: Any, clock: Clock, t0: float, events: list[Any], at: float) -> None:
    """Deliver ``events`` with the table's clock at ``at`` seconds into the session, then let
    the background sweeper look (as it does every minute or so)."""
    clock.now = t0 + at
    h.handle(*events)
    h.handler.table.sweep()


def links(span: Any) -> list[int]:
    return [lk.context.span_id for lk in span.links]


def view(spans: list[Any], tmp_path: Path) -> tuple[list[Any], list[str]]:
    """What ``llmgine-otel view`` makes of these spans: sessions, and the terminal lines."""
    path = tmp_path / "telemetry.jsonl"
    path.write_bytes(dumps_line(encode_spans(spans)))
    problems: list[str] = []
    sessions = group_sessions(load_traces(path, on_problem=problems.append).traces)
    assert not problems
    return sessions, list(render(sessions, width=120, style=Style(color=False)))


@pytest.mark.parametrize("trace_per", SHAPES)
def test_a_two_hour_chat_is_whole_and_readable(make_otel: Any, tmp_path: Path,
                                               trace_per: str) -> None:
    clock = Clock()
    h = make_otel(clock=clock, trace_per=trace_per, max_span_age_s=HOUR)
    t0 = clock.now
    with span_attributes({"app.tenant": "acme"}, user_id="u-42"):
        feed(h, clock, t0, [session_start("s1", 0)], 0)
    minutes = range(0, 120, 5)  # a turn every 5 minutes for 2 hours; the one at 60 fails
    for n, minute in enumerate(minutes):
        feed(h, clock, t0, turn("s1", n, minute * 60 + 30, fail=minute == 60), minute * 60 + 30)
    feed(h, clock, t0, [session_end("s1", 2 * HOUR)], 2 * HOUR)

    spans = h.spans()
    assert_well_formed(spans)
    assert len(h.handler.table) == 0 and not h.outcomes  # nothing cut, lost, synthesized
    assert not [s for s in spans if "llmgine.span.end_reason" in s.attributes]
    for s in spans:  # searchable: the conversation, its user, the app's attributes
        assert (s.attributes["session.id"], s.attributes["user.id"],
                s.attributes["app.tenant"]) == ("s1", "u-42", "acme"), s.name
    commands = [s for s in spans if s.name == "command Command"]
    assert len(commands) == len(minutes) == 24
    by_id = {s.context.span_id: s for s in spans}
    for s in spans:  # every LLM call and tool run sits under its own command
        if s.name.startswith(("chat", "execute_tool")):
            cmd = by_id[s.parent.span_id]
            assert cmd.name == "command Command"
            n = cmd.attributes["llmgine.command.id"].removeprefix("s1-c")
            assert s.attributes.get("gen_ai.tool.call.id", f"s1-T{n}") == f"s1-T{n}"
    failed = [s for s in commands if s.status.status_code is StatusCode.ERROR]
    assert [s.attributes["llmgine.command.id"] for s in failed] == ["s1-c12"]

    start = h.span("session")
    if trace_per == "session":
        assert len({s.context.trace_id for s in spans}) == 1
        assert (start.start_time, start.end_time) == (ns(0), ns(2 * HOUR))
        assert all(c.parent.span_id == start.context.span_id for c in commands)
    else:  # a trace per command, each linked to the session's start; a small start and end
        end = h.span("session end")
        assert start.start_time == start.end_time == ns(0)
        assert end.start_time == end.end_time == ns(2 * HOUR)
        assert end.status.status_code is StatusCode.UNSET and links(end) == [
            start.context.span_id]
        assert len({s.context.trace_id for s in spans}) == 24 + 2
        for c in commands:
            assert c.parent is None and links(c) == [start.context.span_id]
        traces = Counter(s.context.trace_id for s in spans)
        assert sorted(traces.values()) == [1, 1] + [3] * 24  # each command whole

    sessions, lines = view(spans, tmp_path)
    (session,) = sessions  # one conversation, whichever the shape
    assert session.session_id == "s1" and session.commands == 24
    assert session.duration_ns == 2 * HOUR * 10**9 and session.errors == 2
    assert session.llm_calls == 24 and session.input_tokens == 2400
    if trace_per == "command":
        assert lines[0].startswith("session s1 · 26 traces")
        assert "2h00m00s · ERROR (2 errors) · 24 commands · 74 spans · 24 LLM calls" in lines[1]
    else:
        assert lines[0].startswith("session s1 · trace ")
        assert "2h00m00s · ERROR (2 errors) · 73 spans · 24 LLM calls" in lines[1]


@pytest.mark.parametrize("trace_per", SHAPES)
def test_a_session_idle_past_the_age_limit_continues_linked_not_orphaned(
        make_otel: Any, trace_per: str) -> None:
    clock = Clock()
    h = make_otel(clock=clock, trace_per=trace_per, max_span_age_s=HOUR)
    t0 = clock.now
    with span_attributes(user_id="u-7"):
        feed(h, clock, t0, [session_start("s1", 0)], 0)
    feed(h, clock, t0, turn("s1", 0, 60), 60)
    clock.now = t0 + 60 + HOUR + 1  # the user went away: nothing for more than an hour
    assert h.handler.table.sweep() == 1  # the background sweep ends the session's span
    evicted = [s for s in h.spans() if s.attributes.get("llmgine.span.end_reason")]
    (first,) = evicted
    assert first.name == ("session" if trace_per == "session" else "session end")
    assert first.attributes["llmgine.span.end_reason"] == "evicted_age"
    assert first.status.status_code is StatusCode.ERROR  # reported as such
    old_start = next(s for s in h.spans() if s.name == "session")

    # Two hours later the user is back: the session goes on, then ends with an error.
    feed(h, clock, t0, turn("s1", 1, 3 * HOUR), 3 * HOUR)
    feed(h, clock, t0, [session_end("s1", 3 * HOUR + 60, error=ValueError("bye"))],
         3 * HOUR + 60)

    spans = h.spans()
    assert_well_formed(spans)
    assert h.outcomes == {"evicted_age": 1, "session_continued": 1}  # no duplicate_end
    starts = [s for s in spans if s.name == "session" and s is not old_start]
    if trace_per == "session":
        starts = [s for s in starts if s.attributes.get("llmgine.session.continued")]
    (cont,) = starts
    assert cont.attributes["llmgine.session.continued"] is True
    assert links(cont) == [old_start.context.span_id]  # a person can follow it back
    for s in spans:  # the same conversation and user all along
        assert (s.attributes["session.id"], s.attributes["user.id"]) == ("s1", "u-7"), s.name
    later = next(s for s in spans if s.attributes.get("llmgine.command.id") == "s1-c1")
    if trace_per == "session":
        assert later.parent.span_id == cont.context.span_id  # under it, not an orphan root
        assert cont.start_time == ns(3 * HOUR) and cont.end_time == ns(3 * HOUR + 60)
        ended = cont
    else:
        assert later.parent is None and links(later) == [cont.context.span_id]
        ends = [s for s in spans if s.name == "session end" and s is not first]
        (ended,) = ends
        assert links(ended) == [cont.context.span_id]
    assert ended.status.status_code is StatusCode.ERROR  # the real end, with its error
    assert ended.attributes["error.type"] == "ValueError"
    assert "llmgine.span.end_reason" not in ended.attributes


@pytest.mark.parametrize("trace_per", SHAPES)
def test_the_end_of_an_evicted_session_is_kept_not_dropped_as_duplicate(
        make_otel: Any, trace_per: str) -> None:
    clock = Clock()
    h = make_otel(clock=clock, trace_per=trace_per, max_span_age_s=HOUR)
    t0 = clock.now
    feed(h, clock, t0, [session_start("s1", 0)], 0)
    clock.now = t0 + HOUR + 1
    h.handler.table.sweep()
    feed(h, clock, t0, [session_end("s1", 2 * HOUR, error=KeyError("k"))], 2 * HOUR)
    assert h.outcomes == {"evicted_age": 1, "session_continued": 1}
    ends = [s for s in h.spans() if s.status.status_code is StatusCode.ERROR
            and "llmgine.span.end_reason" not in s.attributes]
    (end,) = ends
    assert end.attributes["error.type"] == "KeyError" and end.end_time == ns(2 * HOUR)
    assert end.attributes["session.id"] == "s1"
    record = h.log("SessionEndEvent")
    assert record.span_id == end.context.span_id and record.severity_text == "ERROR"
