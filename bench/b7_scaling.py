"""7. Scaling: cost per event with 1, 100 and 10,000 concurrently open sessions.

For each K, a separate Telemetry (null exporters) first opens K background sessions, each
with an open command (2K open spans; ``max_open_spans`` raised to 50,000 so nothing is
evicted), then standard sessions are published through it. The three sides are
interleaved chunk by chunk (as in benchmark 1); ratios are per round against K=1.
"""

from __future__ import annotations

from typing import Any

from bench import (
    build_ours,
    flat,
    flush_ours,
    interleaved_round,
    make_session,
    make_sessions,
    ratio_summary,
    summary,
)

KS = (1, 100, 10_000)


def run(quick: bool, collector: bool) -> dict[str, Any]:
    rounds, per_round = (6, 30) if quick else (16, 60)
    tels = {}
    for k in KS:
        tel = build_ours("null", max_open_spans=50_000)
        for _ in range(k):
            for e in make_session()[:2]:
                tel.handler.handle(e)
        flush_ours(tel)
        tels[f"{k} open sessions"] = tel
    sides = {n: t.handler.handle for n, t in tels.items()}
    interleaved_round(sides, make_sessions(10))
    wall: dict[str, list[float]] = {n: [] for n in sides}
    cpu: dict[str, list[float]] = {n: [] for n in sides}
    for r in range(rounds):
        sessions = make_sessions(per_round)
        chunks = [flat(sessions[i:i + 2]) for i in range(0, len(sessions), 2)]
        for n, (w, c) in interleaved_round(sides, chunks, rotate=r).items():
            wall[n].append(w)
            cpu[n].append(c)
        for t in tels.values():
            flush_ours(t)
    base = f"{KS[0]} open sessions"
    out: dict[str, Any] = {"rounds": rounds, "sides": {}, "ratios_vs_1": {}}
    for n, t in tels.items():
        out["sides"][n] = {"open_spans_at_end": len(t.handler.table),
                           "wall_ns_per_event": summary(wall[n]),
                           "cpu_ns_per_event": summary(cpu[n]),
                           "outcomes": dict(t.stats.outcomes)}
        out["ratios_vs_1"][n] = {"wall": ratio_summary(wall[n], wall[base]),
                                 "cpu": ratio_summary(cpu[n], cpu[base])}
    return out
