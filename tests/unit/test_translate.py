"""Out-of-order, missing and duplicated events: the outcomes documented in mapping.OUTCOMES,
counted in handler.stats.outcomes; span times from the events' timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.trace import StatusCode
from otel_kit import (
    assert_well_formed,
    command_result,
    command_started,
    etype,
    llm_finished,
    llm_started,
    ns,
    session_end,
    session_end_span,
    session_start,
    tool_result,
    ts,
    under_session,
)

from llmgine_otel import mapping
from llmgine_otel.event_time import event_time_ns


@pytest.fixture(params=["command", "session"])
def otel(request: Any, make_otel: Any) -> Any:
    """Each disorder case in both trace shapes (mapping.TRACE_SHAPES)."""
    return make_otel(trace_per=request.param)


def test_every_documented_outcome_counter_is_in_the_doc():
    for counter in ("duplicate_start", "duplicate_end", "end_without_start", "late_start",
                    "synthetic_session", "evicted_capacity", "evicted_age",
                    "ended_at_shutdown", "repaired", "rejected", "session_continued",
                    "exception_without_span"):
        assert f"`{counter}`" in mapping.OUTCOMES


def test_span_times_come_from_event_timestamps(otel):
    otel.handle(session_start("s1", 0), command_started("s1", "c1", 1.25),
                command_result("s1", "c1", 3.5), session_end("s1", 4))
    cmd = otel.span("command Command")
    assert (cmd.start_time, cmd.end_time) == (ns(1.25), ns(3.5))
    rec = otel.log("CommandStartedEvent")
    assert rec.timestamp == ns(1.25)


def test_event_time_parsing():
    aware = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert event_time_ns(aware.isoformat()) == 1767323045678901000
    naive = datetime(2026, 1, 2, 3, 4, 5, 678901)
    assert event_time_ns(naive.isoformat()) == int(naive.timestamp() * 1e6) * 1000
    assert event_time_ns(1767323045.5) == 1767323045500000000
    assert event_time_ns(1767323045500000000) == 1767323045500000000
    for bad in ("yesterday", None, True, -5, float("nan"), [], "0001-01-01T00:00:00",
                "1900-01-01T00:00:00", float("inf"), 1e300, 10**40):
        got = event_time_ns(bad)
        assert got is None or 0 < got < 2**63, (bad, got)


def test_missing_or_bad_timestamp_uses_now_and_counts_repaired(otel):
    e = command_started("BUS", "c1")
    e.timestamp = "not a time"
    otel.handle(e, command_result("BUS", "c1", 0))
    assert otel.outcomes["repaired"] >= 1
    assert len(otel.spans()) == 1


def test_duplicate_start_first_wins(otel):
    otel.handle(session_start("s1", 0), command_started("s1", "c1", 1),
                command_started("s1", "c1", 1.5), command_result("s1", "c1", 2))
    cmd = otel.span("command Command")
    assert cmd.start_time == ns(1)
    assert otel.outcomes["duplicate_start"] == 1


def test_duplicate_session_start(otel):
    otel.handle(session_start("s1", 0), session_start("s1", 0.5), session_end("s1", 1))
    assert [s.start_time for s in otel.spans() if s.name == "session"] == [ns(0)]
    assert session_end_span(otel).end_time == ns(1)
    assert otel.outcomes["duplicate_start"] == 1


def test_duplicate_end_ignored(otel):
    otel.handle(command_started("BUS", "c1", 1), command_result("BUS", "c1", 2),
                command_result("BUS", "c1", 3))
    assert len(otel.spans()) == 1 and otel.span("command Command").end_time == ns(2)
    assert otel.outcomes["duplicate_end"] == 1


def test_duplicate_tool_result_ignored(otel):
    otel.handle(tool_result("s1", "call-1", 1), tool_result("s1", "call-1", 1))
    assert len([s for s in otel.spans() if s.name.startswith("execute_tool")]) == 1
    assert otel.outcomes["duplicate_end"] == 1


def test_result_before_start(otel):
    otel.handle(session_start("s1", 0), command_result("s1", "c1", 2),
                command_started("s1", "c1", 1), session_end("s1", 3))
    spans = otel.spans()
    (cmd,) = [s for s in spans if s.name not in ("session", "session end")]
    assert cmd.name == "command (start missing)"
    assert cmd.attributes["llmgine.span.missing_start"] is True
    assert cmd.attributes["session.id"] == "s1"
    assert cmd.start_time == cmd.end_time == ns(2)
    assert under_session(otel, cmd)
    assert otel.outcomes["end_without_start"] == 1
    assert otel.outcomes["late_start"] == 1
    assert len(otel.handler.table) == 0


def test_missing_start_uses_hinted_start_time(otel):
    e = llm_finished("s1", "L1", 5, input_tokens=3)
    e.metadata["llmgine.start_time"] = ts(4)
    otel.handle(e)
    span = next(s for s in otel.spans() if s.name == "llm (start missing)")
    assert (span.start_time, span.end_time) == (ns(4), ns(5))
    assert span.attributes["gen_ai.usage.input_tokens"] == 3
    assert otel.outcomes["end_without_start"] == 1


def test_failed_result_without_start_is_still_error(otel):
    otel.handle(command_result("BUS", "c1", 2, success=False, error="KeyError: k"))
    span = otel.span("command (start missing)")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "KeyError"


def test_missing_session_start_synthesizes_one_trace(otel):
    otel.handle(command_started("s9", "c1", 1), llm_started("s9", "L1", 1.1),
                llm_finished("s9", "L1", 1.2), command_result("s9", "c1", 2),
                command_started("s9", "c2", 3), command_result("s9", "c2", 4),
                session_end("s9", 5))
    spans = otel.spans()
    sess = otel.span("session")
    assert sess.attributes["llmgine.span.synthetic"] is True
    assert sess.attributes["session.id"] == "s9"
    assert sess.parent is None and session_end_span(otel, "s9").end_time == ns(5)
    if otel.config.trace_per == "session":
        assert len({s.context.trace_id for s in spans}) == 1
    else:  # one link target for every command trace
        for name in ("command Command", "session end"):
            assert all(under_session(otel, s, "s9") for s in spans if s.name == name)
    assert otel.outcomes["synthetic_session"] == 1
    assert_well_formed(spans)


def test_missing_end_is_ended_at_shutdown(otel):
    otel.handle(session_start("s1", 0), command_started("s1", "c1", 1),
                llm_started("s1", "L1", 2))
    assert otel.handler.end_open_spans() == 3
    spans = [s for s in otel.spans() if "llmgine.span.end_reason" in s.attributes]
    ended = "session" if otel.config.trace_per == "session" else "session end"
    assert [s.name for s in spans] == ["chat gpt-4o", "command Command", ended]
    for s in spans:
        assert s.status.status_code is StatusCode.ERROR
        assert s.attributes["llmgine.span.end_reason"] == "ended_at_shutdown"
    assert otel.outcomes["ended_at_shutdown"] == 3
    assert len(otel.handler.table) == 0
    assert_well_formed(otel.spans())


def test_bus_session_commands_are_roots(otel):
    otel.handle(command_started("BUS", "c1", 1), command_started("", "c2", 1),
                command_result("BUS", "c1", 2), command_result("", "c2", 2))
    assert [s.parent for s in otel.spans()] == [None, None]
    assert "synthetic_session" not in otel.outcomes


def test_event_without_key_is_rejected_not_raised(otel):
    from llmgine.messages.events import CommandStartedEvent

    otel.handle(CommandStartedEvent(command=None, session_id="s1"))
    assert otel.outcomes["rejected"] == 1
    assert otel.spans() == []
    assert otel.log("CommandStartedEvent") is not None


def test_wrong_field_types_are_repaired(otel):
    otel.handle(llm_started("s1", "L1", 1, max_tokens="100", temperature="hot",
                            stop_sequences="END", server_port=3.0),
                llm_finished("s1", "L1", 2, input_tokens=12.0, output_tokens=[1],
                             finish_reasons=("stop", 3)))
    a = otel.span("chat gpt-4o").attributes
    assert a["gen_ai.request.max_tokens"] == 100
    assert "gen_ai.request.temperature" not in a
    assert a["gen_ai.request.stop_sequences"] == ("END",)
    assert a["server.port"] == 3
    assert a["gen_ai.usage.input_tokens"] == 12
    assert "gen_ai.usage.output_tokens" not in a
    assert a["gen_ai.response.finish_reasons"] == ("stop", "3")
    assert otel.outcomes["repaired"] >= 2
    assert otel.outcomes.get("rejected", 0) == 0


def test_filters(make_otel):
    h = make_otel(exclude_events=("CommandStartedEvent",), no_log_events=("SessionEvent",))
    h.handle(session_start("s1", 0), command_started("s1", "c1", 1),
             command_result("s1", "c1", 2), session_end("s1", 3))
    names = sorted(s.name for s in h.spans())
    assert names == ["command (start missing)", "session", "session end"]
    assert [etype(r) for r in h.logs()] == ["CommandResultEvent"]
    h2 = make_otel(include_events=("SessionEvent",))
    h2.handle(session_start("s1", 0), command_started("s1", "c1", 1), session_end("s1", 3))
    assert [s.name for s in h2.spans()] == ["session", "session end"]


def test_log_sample_rate_zero_keeps_errors(make_otel):
    h = make_otel(log_sample_rates={"CommandResultEvent": 0.0})
    h.handle(command_started("BUS", "c1", 1), command_result("BUS", "c1", 2),
             command_started("BUS", "c2", 1),
             command_result("BUS", "c2", 2, success=False, error="x"))
    results = [r for r in h.logs() if etype(r) == "CommandResultEvent"]
    assert len(results) == 1 and results[0].severity_text == "ERROR"
    assert h.outcomes["log_sampled_out"] == 1


def test_emit_logs_off(make_otel):
    h = make_otel(emit_logs=False)
    h.handle(session_start("s1", 0), session_end("s1", 1))
    assert h.logs() == [] and len(h.spans()) == 2  # the session's start and end


def test_synthetic_session_race_keeps_one_trace(otel):
    """Two threads synthesize the same missing session at once: the loser must use the
    winner's span, not start a new trace (simulated by winning the race inside the span
    factory)."""
    from llmgine_otel.open_spans import OpenSpan

    handler = otel.handler
    real_start = handler._start_span
    winner = []

    def racing_start(name, *a, **kw):
        span = real_start(name, *a, **kw)
        if name == "session" and not winner:
            other = real_start("session", *a, **kw)
            winner.append(other)
            handler.table.add(OpenSpan(("session", "s7"), other, "s7", kw["start_time"]))
        return span

    handler._start_span = racing_start
    otel.handle(command_started("s7", "c1", 1), command_result("s7", "c1", 2),
                session_end("s7", 3))
    spans = otel.spans()
    assert [s.name for s in spans] == ["command Command", "session"]
    cmd, sess = spans
    assert sess.context.span_id == winner[0].get_span_context().span_id
    assert under_session(otel, cmd, "s7")


def test_log_bodies_hold_nothing_the_gc_must_keep_walking(otel):
    """Lists of strings become tuples and empty dicts are left out, so a queued record's body
    stops being GC-tracked after its first collection (bodies say the same in OTLP)."""
    import gc

    otel.handle(session_start("s1", 0), llm_started("s1", "l1", 1.0),
                llm_finished("s1", "l1", 1.2, finish_reasons=["stop", "length"]))
    body = otel.log("LLMCallFinishedEvent").body
    assert body["finish_reasons"] == ("stop", "length")
    assert "metadata" not in body  # {} on these events
    gc.collect()
    assert not gc.is_tracked(body)
