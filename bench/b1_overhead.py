"""1. Publisher-thread cost per event: this package vs the raw SDK doing the same by hand.

Standard sessions (10 events -> 6 spans + 10 log records), pre-built outside the timed
region and shared by every side (each side has its own providers and state). The machine
is shared and noisy, so sides are interleaved finely: every chunk of 2 sessions is
published by each side in turn (rotating order) and a round sums many chunks. Between
rounds each side's queues are flushed outside the timed region. Reported: wall ns/event
(what the caller waits) and publisher-thread CPU ns/event, median/min/max over rounds, and
per-round ratios ours/raw.
"""

from __future__ import annotations

from typing import Any

from bench import (
    build_ours,
    build_raw,
    flat,
    flush_ours,
    interleaved_round,
    make_sessions,
    ratio_summary,
    summary,
)

TARGET = 1.10
BASE = "raw SDK (event times)"


def _sides(exporter: str, endpoint: str | None) -> tuple[dict[str, Any], list[Any]]:
    kind = "null" if exporter == "null" else "otlp"
    ours = build_ours(kind, endpoint=endpoint)
    ours_mgr = build_ours(kind, endpoint=endpoint)
    ours_nm = build_ours(kind, endpoint=endpoint, emit_metrics=False)
    raw = build_raw(kind, endpoint)
    raw_clock = build_raw(kind, endpoint, event_times=False)
    sides = {
        "ours (handler.handle)": ours.handler.handle,
        "ours (manager.observe_event)": ours_mgr.manager.observe_event,
        "ours, metrics off": ours_nm.handler.handle,
        BASE: raw.handle,
        "raw SDK (SDK clock)": raw_clock.handle,
    }
    flushes = [lambda: flush_ours(ours), lambda: flush_ours(ours_mgr),
               lambda: flush_ours(ours_nm), raw.flush,
               raw_clock.flush]
    return sides, flushes


def measure(exporter: str, rounds: int, per_round: int, endpoint: str | None = None
            ) -> dict[str, Any]:
    sides, flushes = _sides(exporter, endpoint)
    names = list(sides)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    # Every side has its own providers and state, so one pre-built set of events per round
    # is shared. Warm-up first (plans compiled, code paths hot).
    warm = make_sessions(20)
    interleaved_round(sides, warm)
    for f in flushes:
        f()
    for r in range(rounds):
        sessions = make_sessions(per_round)
        chunks = [flat(sessions[i:i + 2]) for i in range(0, len(sessions), 2)]
        res = interleaved_round(sides, chunks, rotate=r)
        for n, (w, c) in res.items():
            wall[n].append(w)
            cpu[n].append(c)
        for f in flushes:
            f()
    out: dict[str, Any] = {"exporter": exporter, "rounds": rounds,
                           "events_per_round_per_side": per_round * 10, "sides": {}}
    for n in names:
        out["sides"][n] = {"wall_ns_per_event": summary(wall[n]),
                           "cpu_ns_per_event": summary(cpu[n])}
    out["ratios"] = {}
    for n in names:
        if n.startswith("ours"):
            out["ratios"][f"{n} / {BASE}"] = {"wall": ratio_summary(wall[n], wall[BASE]),
                                             "cpu": ratio_summary(cpu[n], cpu[BASE])}
            out["ratios"][f"{n} / raw SDK (SDK clock)"] = {
                "wall": ratio_summary(wall[n], wall["raw SDK (SDK clock)"]),
                "cpu": ratio_summary(cpu[n], cpu["raw SDK (SDK clock)"])}
    out["target_ratio"] = TARGET
    return out


def run(quick: bool, collector: bool) -> dict[str, Any]:
    rounds, per_round = (6, 30) if quick else (16, 60)
    res: dict[str, Any] = {"null": measure("null", rounds, per_round)}
    if collector:
        from bench.collector import running_collector

        try:
            with running_collector() as (endpoint, _pid):
                res["otlp_collector"] = measure("otlp", rounds, per_round, endpoint)
        except RuntimeError as exc:
            res["otlp_collector"] = {"not_measured": str(exc)}
    else:
        res["otlp_collector"] = {"not_measured": "needs --collector"}
    return res
