"""Interleaving: 1,000 concurrent sessions over asyncio tasks and 8 threads, events shuffled
within causal order. In the Collector's file every span sits in its own session's trace."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from reliability._workload import SPANS_PER_SESSION, session_events, span_attrs, wait_collected
from reliability.conftest import accounting, collector, make_telemetry, record_figures

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SESSIONS = 1_000
THREADS = 8


def _causal_shuffle(rng: random.Random, sessions: list[list[Any]]) -> list[Any]:
    """One stream of all events: sessions interleaved at random, each session's own events in
    causal order (the two tool results, which are independent, in either order)."""
    queues = []
    for evs in sessions:
        evs = list(evs)
        if rng.random() < 0.5:
            evs[4], evs[5] = evs[5], evs[4]
        queues.append(evs)
    out: list[Any] = []
    live = [q for q in queues if q]
    pos = [0] * len(live)
    idx = list(range(len(live)))
    while idx:
        k = rng.randrange(len(idx))
        i = idx[k]
        out.append(live[i][pos[i]])
        pos[i] += 1
        if pos[i] == len(live[i]):
            idx[k] = idx[-1]
            idx.pop()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("trace_per", ["session", "command"])
def test_concurrent_sessions_stay_in_their_own_trace(otel_env: dict[str, str],
                                                     tmp_path: Path, trace_per: str) -> None:
    rng = random.Random(20261126)
    sids = [f"mix-{i:04d}" for i in range(SESSIONS)]
    sessions = {sid: session_events(sid) for sid in sids}
    async_sids, thread_sids = sids[: SESSIONS // 2], sids[SESSIONS // 2:]
    errors: list[BaseException] = []
    # session shape: 1 trace of 6 spans a session; command shape: its start (1 span), its
    # command (5) and its end (1), 3 traces linked to the start
    trace_sizes = [SPANS_PER_SESSION] if trace_per == "session" else [1, 1, 5]
    per_session = sum(trace_sizes)
    with collector(tmp_path / "col") as col:
        tel = make_telemetry(col.grpc_endpoint, tmp_path, trace_per=trace_per)
        obs = tel.manager.observe_event
        # The price table loads on a background thread from configure() (as _memory_app
        # waits for it): a test that runs first would count its calls `cost_unavailable`.
        from llmgine_otel import cost

        cost._warm.wait(60)

        def thread_main(part: list[str], seed: int) -> None:
            r = random.Random(seed)
            try:
                for ev in _causal_shuffle(r, [sessions[s] for s in part]):
                    obs(ev)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        async def session_task(sid: str, seed: int) -> None:
            r = random.Random(seed)
            evs = list(sessions[sid])
            if r.random() < 0.5:
                evs[4], evs[5] = evs[5], evs[4]
            for ev in evs:
                obs(ev)
                for _ in range(r.randrange(3)):
                    await asyncio.sleep(0)  # let other sessions' tasks run in between

        async def async_main() -> None:
            await asyncio.gather(*(session_task(s, i) for i, s in enumerate(async_sids)))

        parts = [thread_sids[i::THREADS] for i in range(THREADS)]
        threads = [threading.Thread(target=thread_main, args=(p, rng.random()))
                   for p in parts]
        for t in threads:
            t.start()
        asyncio.run(async_main())
        for t in threads:
            t.join()
        report = tel.shutdown()
        acct = accounting(tel)
        got = wait_collected(col.file_path, SESSIONS * per_session, 0)

    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sp in got.spans.values():
        by_trace[sp["traceId"]].append(sp)
    trace_of_session: dict[str, set[str]] = defaultdict(set)
    sessions_of_trace: dict[str, set[str]] = defaultdict(set)
    start_of_session: dict[str, str] = {}
    orphans = cross = bad_links = 0
    for sp in got.spans.values():
        a = span_attrs(sp)
        sid = a.get("llmgine.session.id") or a.get("gen_ai.conversation.id")
        assert sid, f"span {sp['name']} carries no session id"
        assert a.get("session.id") == sid, sp["name"]
        trace_of_session[sid].add(sp["traceId"])
        sessions_of_trace[sp["traceId"]].add(sid)
        if sp["name"] == "session":
            start_of_session[sid] = sp["spanId"].lower()
        parent = sp.get("parentSpanId", "").lower()
        if parent:
            p = got.spans.get(parent)
            if p is None:
                orphans += 1
            elif p["traceId"] != sp["traceId"]:
                cross += 1
    for sp in got.spans.values():  # links (command shape) point at their own session's start
        sid = span_attrs(sp)["session.id"]
        for link in sp.get("links", ()):
            bad_links += link["spanId"].lower() != start_of_session[sid]
    split_sessions = sum(1 for t in trace_of_session.values() if len(t) != len(trace_sizes))
    mixed_traces = sum(1 for s in sessions_of_trace.values() if len(s) != 1)
    wrong_size = sum(1 for sid, traces in trace_of_session.items()
                     if sorted(len(by_trace[t]) for t in traces) != trace_sizes)
    roots = sum(1 for sp in got.spans.values() if not sp.get("parentSpanId"))
    linked = sum(1 for sp in got.spans.values() if sp.get("links"))
    record_figures(
        "interleaving" if trace_per == "session" else "interleaving_command",
        sessions=SESSIONS, asyncio_sessions=len(async_sids),
        thread_sessions=len(thread_sids), threads=THREADS, spans_in_file=len(got.spans),
        traces=len(by_trace), root_spans=roots, orphans=orphans, cross_links=cross,
        sessions_split_over_traces=split_sessions, traces_mixing_sessions=mixed_traces,
        sessions_with_wrong_trace_sizes=wrong_size, linked_roots=linked, bad_links=bad_links,
        outcomes=acct["outcomes"], shutdown_completed=report.completed)
    assert not errors, errors[:3]
    assert len(got.spans) == SESSIONS * per_session
    assert set(trace_of_session) == set(sids)
    assert orphans == 0 and cross == 0 and bad_links == 0
    assert split_sessions == 0 and mixed_traces == 0 and wrong_size == 0
    assert roots == SESSIONS * len(trace_sizes)
    assert linked == SESSIONS * (len(trace_sizes) - 1)
    assert acct["outcomes"] == {}, acct["outcomes"]  # no synthetic session, no missing start
