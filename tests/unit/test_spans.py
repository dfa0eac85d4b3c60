"""The open-span table is bounded by entries and age; what falls out is ended with ERROR
and a reason, and nothing is leaked."""

from __future__ import annotations

import pytest
from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan, StatusCode
from otel_kit import command_result, command_started, llm_started, session_start

from llmgine_otel.open_spans import OpenSpan, SpanTable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_capacity_evicts_oldest_with_error_and_reason(make_otel):
    h = make_otel(max_open_spans=3)
    h.handle(*(command_started("BUS", f"c{i}", i) for i in range(5)))
    assert len(h.handler.table) == 3
    evicted = h.spans()
    assert sorted(s.attributes["llmgine.command.id"] for s in evicted) == ["c0", "c1"]
    for s in evicted:
        assert s.status.status_code is StatusCode.ERROR
        assert s.attributes["llmgine.span.end_reason"] == "evicted_capacity"
    assert h.outcomes["evicted_capacity"] == 2
    # The end of an evicted span is a duplicate, not a new span.
    h.handle(command_result("BUS", "c0", 9))
    assert h.outcomes["duplicate_end"] == 1 and len(h.spans()) == 2


# The session's span in each trace shape when eviction or shutdown ends it: the open
# session span itself, or (command shape) the "session end" span its start mark gets.
ENDED_SESSION = {"session": "session", "command": "session end"}


def _ended_early(spans):
    """Spans ended without their end event (the command shape's start marks are not)."""
    return [s for s in spans if "llmgine.span.end_reason" in s.attributes]


@pytest.mark.parametrize("trace_per", ["command", "session"])
def test_age_evicts_on_insert_and_on_sweep(make_otel, trace_per):
    clock = Clock()
    h = make_otel(clock=clock, max_span_age_s=60, trace_per=trace_per)
    h.handle(session_start("s1", 0), command_started("s1", "c1", 1))
    clock.now += 61
    h.handle(session_start("s2", 0))  # insert sweeps the expired ones
    spans = _ended_early(h.spans())
    assert {s.name for s in spans} == {ENDED_SESSION[trace_per], "command Command"}
    assert all(s.attributes["llmgine.span.end_reason"] == "evicted_age" for s in spans)
    assert all(s.status.status_code is StatusCode.ERROR for s in spans)
    assert all(s.attributes["llmgine.session.id"] == "s1" for s in spans)
    assert h.outcomes["evicted_age"] == 2
    assert len(h.handler.table) == 1
    clock.now += 61
    assert h.handler.table.sweep() == 1
    assert len(h.handler.table) == 0 and h.outcomes["evicted_age"] == 3


@pytest.mark.parametrize("trace_per", ["command", "session"])
def test_shutdown_ends_everything_and_leaks_nothing(make_otel, trace_per):
    h = make_otel(max_open_spans=50, trace_per=trace_per)
    for i in range(200):
        h.handle(session_start(f"s{i}", 0), command_started(f"s{i}", f"c{i}", 1),
                 llm_started(f"s{i}", f"L{i}", 2))
    table = h.handler.table
    assert len(table) == 50
    n = h.handler.end_open_spans()
    assert n == 50
    assert len(table) == 0 and not table._stacks and not table._open
    assert len(table._ended) <= table.max_entries
    assert len(table._evicted) <= table.max_entries
    spans = _ended_early(h.spans())
    assert len(spans) == 600
    reasons = [s.attributes.get("llmgine.span.end_reason") for s in spans]
    assert reasons.count("ended_at_shutdown") == 50
    assert reasons.count("evicted_capacity") == 550
    assert all(s.status.status_code is StatusCode.ERROR for s in spans)
    # In the command shape every session's start mark was exported as it started.
    marks = len(h.spans()) - len(spans)
    assert marks == (200 if trace_per == "command" else 0)


def test_table_operations_directly():
    evicted: list[tuple[str, str]] = []
    clock = Clock()
    t = SpanTable(2, 10.0, lambda e, r: evicted.append((e.key[1], r)), clock=clock)

    def entry(fam: str, key: str, session: str | None = "s") -> OpenSpan:
        return OpenSpan((fam, key), NonRecordingSpan(INVALID_SPAN_CONTEXT), session, 0)

    assert t.add(entry("session", "s"))
    assert t.add(entry("command", "a"))
    assert not t.add(entry("command", "a"))  # duplicate
    assert t.innermost("s", ("command",)).key == ("command", "a")
    assert t.innermost("s", ("session",)).key == ("session", "s")
    assert t.add(entry("command", "b"))  # evicts the session (oldest)
    assert evicted == [("s", "evicted_capacity")]
    assert t.pop(("command", "b"))[0] is not None
    assert t.pop(("command", "b")) == (None, True)  # duplicate end
    assert t.pop(("command", "zzz")) == (None, False)  # end without start
    assert not t.add(entry("command", "b"))  # late start after end
    clock.now += 11
    assert t.sweep() == 1 and len(t) == 0 and t._stacks == {}


def test_a_busy_session_lives_past_the_age_limit_counted_from_its_last_activity(make_otel):
    from otel_kit import llm_finished, session_end

    clock = Clock()
    h = make_otel(clock=clock, max_span_age_s=3600)
    h.handle(session_start("s1", 0), command_started("s1", "c0", 1),
             command_result("s1", "c0", 2))
    for i in range(1, 7):  # a command every 50 minutes for 5 hours, one of them long
        clock.now += 3000
        h.handle(command_started("s1", f"c{i}", 10 * i), llm_started("s1", f"L{i}", 10 * i))
        if i == 3:  # this command runs for 100 minutes, with a call every 50
            clock.now += 3000
            h.handle(llm_finished("s1", f"L{i}", 10 * i + 1), llm_started("s1", f"M{i}", 0))
            clock.now += 3000
            h.handle(llm_finished("s1", f"M{i}", 10 * i + 2))
        else:
            h.handle(llm_finished("s1", f"L{i}", 10 * i + 1))
        h.handle(command_result("s1", f"c{i}", 10 * i + 5))
        h.handle(session_start(f"other{i}", 0))  # inserts evict what is inactive
        h.handler.table.sweep()
    h.handle(session_end("s1", 100))
    evicted = [s for s in h.spans() if "llmgine.span.end_reason" in s.attributes]
    assert evicted and all(s.attributes["llmgine.session.id"].startswith("other")
                           for s in evicted)  # the idle sessions went, s1 did not
    mine = [s for s in h.spans() if s.attributes.get("llmgine.session.id") == "s1"
            or s.attributes.get("gen_ai.conversation.id") == "s1"]
    assert all("llmgine.span.end_reason" not in s.attributes for s in mine)
    assert not h.outcomes.get("duplicate_end")
    session = next(s for s in mine if s.name == "session")
    assert session.status.status_code is StatusCode.UNSET


def test_an_idle_span_is_ended_by_the_background_sweeper():
    import time

    evicted: list[str] = []
    table = SpanTable(10, 0.3, lambda e, reason: evicted.append(reason),
                      sweep_in_background=True)
    table.add(OpenSpan(("command", "c1"), NonRecordingSpan(INVALID_SPAN_CONTEXT), "s", 0))
    deadline = time.monotonic() + 5
    while not evicted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert evicted == ["evicted_age"] and len(table) == 0
