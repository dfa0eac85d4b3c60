"""Thousands of interleaved sessions over asyncio tasks and threads never cross-link, and
shuffled (out-of-order, duplicated, missing) events never leak or mis-parent a span."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import defaultdict

import pytest
from otel_kit import (
    assert_well_formed,
    command_result,
    command_started,
    llm_finished,
    llm_started,
    session_end,
    session_start,
    tool_result,
)

THREADS = 4
SESSIONS_PER_THREAD = 500
# session, command, LLM call, tool (+ the session's end span in the command trace shape)
SPANS_PER_SESSION = {"session": 4, "command": 5}


def _session_events(sid: str) -> list:
    cid = f"{sid}-c"
    return [session_start(sid, 0), command_started(sid, cid, 1),
            llm_started(sid, f"{cid}-llm", 1.1),
            llm_finished(sid, f"{cid}-llm", 1.2, input_tokens=5),
            tool_result(sid, f"{cid}-tool", 1.3), command_result(sid, cid, 1.5),
            session_end(sid, 9)]


def _session_of(span) -> str:
    a = span.attributes
    return a.get("llmgine.session.id") or a.get("gen_ai.conversation.id")


@pytest.mark.parametrize("trace_per", ["command", "session"])
def test_interleaved_sessions_over_tasks_and_threads_never_cross_link(make_otel, trace_per):
    # Spans only: the cross-linking question is about span parents (and it keeps this fast).
    h = make_otel(max_open_spans=100_000, emit_logs=False, emit_metrics=False,
                  trace_per=trace_per)
    errors: list[BaseException] = []

    async def one_session(sid: str) -> None:
        for e in _session_events(sid):
            h.handler.handle(e)
            await asyncio.sleep(0)  # interleave with the other sessions of this loop

    def worker(n: int) -> None:
        async def main() -> None:
            await asyncio.gather(*(one_session(f"t{n}-s{i}")
                                   for i in range(SESSIONS_PER_THREAD)))
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    n_sessions = THREADS * SESSIONS_PER_THREAD
    spans = h.spans()
    assert len(spans) == n_sessions * SPANS_PER_SESSION[trace_per]
    assert len(h.handler.table) == 0
    session_span = {s.attributes["llmgine.session.id"]: s for s in spans if s.name == "session"}
    assert len(session_span) == n_sessions
    assert len({s.context.trace_id for s in session_span.values()}) == n_sessions
    # Every trace holds spans of one session only, and every link points at that session.
    trace_session: dict[int, str] = {}
    for s in spans:
        sid = _session_of(s)
        assert s.attributes["session.id"] == sid
        assert trace_session.setdefault(s.context.trace_id, sid) == sid, s.name
        for link in s.links:
            assert link.context.span_id == session_span[sid].context.span_id, s.name
    if trace_per == "session":
        assert len(trace_session) == n_sessions
    else:  # the session's start, its command (with its LLM call and tool), its end
        assert len(trace_session) == 3 * n_sessions
        for s in spans:
            if s.name != "session":
                assert (s.parent is None) == bool(s.links), s.name  # roots link, children not
    assert_well_formed(spans)
    outcomes = h.outcomes
    for bad in ("rejected", "synthetic_session", "end_without_start", "duplicate_start"):
        assert bad not in outcomes, outcomes


def test_shuffled_duplicated_and_missing_events_across_threads(make_otel):
    h = make_otel(max_open_spans=100_000, emit_metrics=False)
    rng = random.Random(1234)
    per_thread: list[list] = [[] for _ in range(THREADS)]
    for i in range(THREADS * 150):
        events = _session_events(f"x{i}")
        rng.shuffle(events)
        if rng.random() < 0.3:
            events.append(rng.choice(events))  # duplicate
        if rng.random() < 0.3:
            events.pop(rng.randrange(len(events)))  # lost
        per_thread[i % THREADS].append(events)

    def worker(sessions: list[list]) -> None:
        # Interleave this thread's sessions event by event.
        for step in range(max(len(s) for s in sessions)):
            for s in sessions:
                if step < len(s):
                    h.handler.handle(s[step])

    threads = [threading.Thread(target=worker, args=(s,)) for s in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    h.handler.end_open_spans()
    assert len(h.handler.table) == 0
    spans = h.spans()
    assert_well_formed(spans)
    sessions_in_trace: dict[int, set[str]] = defaultdict(set)
    for s in spans:
        sid = _session_of(s)
        if sid:
            sessions_in_trace[s.context.trace_id].add(sid)
    assert all(len(v) == 1 for v in sessions_in_trace.values())  # never cross-linked
    by_id = {s.context.span_id: s for s in spans}
    for s in spans:  # span links (command trace shape) stay within the session too
        for link in s.links:
            target = by_id.get(link.context.span_id)
            assert target is not None and _session_of(target) == _session_of(s), s.name
    assert "rejected" not in h.outcomes
