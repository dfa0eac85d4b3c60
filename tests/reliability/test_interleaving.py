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
def test_concurrent_sessions_stay_in_their_own_trace(otel_env: dict[str, str],
                                                     tmp_path: Path) -> None:
    rng = random.Random(20261126)
    sids = [f"mix-{i:04d}" for i in range(SESSIONS)]
    sessions = {sid: session_events(sid) for sid in sids}
    async_sids, thread_sids = sids[: SESSIONS // 2], sids[SESSIONS // 2:]
    errors: list[BaseException] = []
    with collector(tmp_path / "col") as col:
        tel = make_telemetry(col.grpc_endpoint, tmp_path)
        obs = tel.manager.observe_event

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
        got = wait_collected(col.file_path, SESSIONS * SPANS_PER_SESSION, 0)

    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sp in got.spans.values():
        by_trace[sp["traceId"]].append(sp)
    trace_of_session: dict[str, set[str]] = defaultdict(set)
    sessions_of_trace: dict[str, set[str]] = defaultdict(set)
    orphans = cross = 0
    for sp in got.spans.values():
        a = span_attrs(sp)
        sid = a.get("llmgine.session.id") or a.get("gen_ai.conversation.id")
        assert sid, f"span {sp['name']} carries no session id"
        trace_of_session[sid].add(sp["traceId"])
        sessions_of_trace[sp["traceId"]].add(sid)
        parent = sp.get("parentSpanId", "").lower()
        if parent:
            p = got.spans.get(parent)
            if p is None:
                orphans += 1
            elif p["traceId"] != sp["traceId"]:
                cross += 1
    split_sessions = sum(1 for t in trace_of_session.values() if len(t) != 1)
    mixed_traces = sum(1 for s in sessions_of_trace.values() if len(s) != 1)
    wrong_size = sum(1 for spans in by_trace.values() if len(spans) != SPANS_PER_SESSION)
    roots = sum(1 for sp in got.spans.values() if not sp.get("parentSpanId"))
    record_figures(
        "interleaving", sessions=SESSIONS, asyncio_sessions=len(async_sids),
        thread_sessions=len(thread_sids), threads=THREADS, spans_in_file=len(got.spans),
        traces=len(by_trace), root_spans=roots, orphans=orphans, cross_links=cross,
        sessions_split_over_traces=split_sessions, traces_mixing_sessions=mixed_traces,
        traces_without_6_spans=wrong_size, outcomes=acct["outcomes"],
        shutdown_completed=report.completed)
    assert not errors, errors[:3]
    assert len(got.spans) == SESSIONS * SPANS_PER_SESSION
    assert set(trace_of_session) == set(sids)
    assert orphans == 0 and cross == 0
    assert split_sessions == 0 and mixed_traces == 0 and wrong_size == 0
    assert roots == SESSIONS
    assert acct["outcomes"] == {}, acct["outcomes"]  # no synthetic session, no missing start
