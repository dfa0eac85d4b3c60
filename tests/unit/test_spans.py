"""The open-span table is bounded by entries and age; what falls out is ended with ERROR
and a reason, and nothing is leaked."""

from __future__ import annotations

from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan, StatusCode
from otel_kit import command_result, command_started, llm_started, session_start

from llmgine_otel.spans import OpenSpan, SpanTable


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


def test_age_evicts_on_insert_and_on_sweep(make_otel):
    clock = Clock()
    h = make_otel(clock=clock, max_span_age_s=60)
    h.handle(session_start("s1", 0), command_started("s1", "c1", 1))
    clock.now += 61
    h.handle(session_start("s2", 0))  # insert sweeps the expired ones
    spans = h.spans()
    assert {s.name for s in spans} == {"session", "command Command"}
    assert all(s.attributes["llmgine.span.end_reason"] == "evicted_age" for s in spans)
    assert all(s.status.status_code is StatusCode.ERROR for s in spans)
    assert h.outcomes["evicted_age"] == 2
    assert len(h.handler.table) == 1
    clock.now += 61
    assert h.handler.table.sweep() == 1
    assert len(h.handler.table) == 0 and h.outcomes["evicted_age"] == 3


def test_shutdown_ends_everything_and_leaks_nothing(make_otel):
    h = make_otel(max_open_spans=50)
    for i in range(200):
        h.handle(session_start(f"s{i}", 0), command_started(f"s{i}", f"c{i}", 1),
                 llm_started(f"s{i}", f"L{i}", 2))
    table = h.handler.table
    assert len(table) == 50
    n = h.handler.end_open_spans()
    assert n == 50
    assert len(table) == 0 and not table._stacks and not table._open
    assert len(table._ended) <= table.max_entries
    spans = h.spans()
    assert len(spans) == 600
    reasons = [s.attributes.get("llmgine.span.end_reason") for s in spans]
    assert reasons.count("ended_at_shutdown") == 50
    assert reasons.count("evicted_capacity") == 550
    assert all(s.status.status_code is StatusCode.ERROR for s in spans)


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
