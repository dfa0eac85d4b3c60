"""1. Publisher-thread cost per event: this package vs the raw SDK doing the same by hand.

Standard sessions (10 events -> 6 spans + 10 log records), pre-built outside the timed
region and shared by every side (each side has its own providers and state). The machine
is shared and noisy, so sides are interleaved finely: every chunk of 2 sessions is
published by each side in turn (rotating order) and a round sums many chunks. Between
rounds each side's queues are flushed outside the timed region. Reported: wall ns/event
(what the caller waits) and publisher-thread CPU ns/event, median/min/max over rounds, and
per-round ratios ours/raw.

One of our sides runs on the public API path (issue 14): ``LLMGINE_OTEL_PUBLIC_PATH=true``
while its ``configure()`` runs, which is when every fast path is decided (the translator's
spans, the queue accounting, the OTLP transport or exporters), so the fast and public paths
are compared within one run. ``paths`` in the result says which path each side really took.
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
FAST = "ours (handler.handle)"
PUBLIC = "ours, public API path (handler.handle)"
PUBLIC_ENV = {"LLMGINE_OTEL_PUBLIC_PATH": "true"}


def _paths(tel: Any) -> dict[str, Any]:
    """Which path a configured side really took: its translator's span factory (direct spans
    or ``Tracer.start_span``), each processor's queue accounting, and what exports."""
    start = tel.handler._start_span
    return {
        "spans": type(getattr(start, "__self__", start)).__name__ + "." +
                 getattr(start, "__name__", "__call__"),
        "queue_fast": [getattr(p, "fast", None)
                       for p in (*tel.span_processors, *tel.log_processors)],
        "exporters": [type(getattr(inner, "transport", inner)).__name__ for inner in
                      (p.counting.inner for p in (*tel.span_processors, *tel.log_processors))],
    }


def _sides(exporter: str, endpoint: str | None
           ) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    kind = "null" if exporter == "null" else "otlp"
    ours = build_ours(kind, endpoint=endpoint)
    ours_mgr = build_ours(kind, endpoint=endpoint)
    ours_nm = build_ours(kind, endpoint=endpoint, emit_metrics=False)
    ours_pub = build_ours(kind, endpoint=endpoint, env=PUBLIC_ENV)
    raw = build_raw(kind, endpoint)
    raw_clock = build_raw(kind, endpoint, event_times=False)
    sides = {
        FAST: ours.handler.handle,
        "ours (manager.observe_event)": ours_mgr.manager.observe_event,
        "ours, metrics off": ours_nm.handler.handle,
        PUBLIC: ours_pub.handler.handle,
        BASE: raw.handle,
        "raw SDK (SDK clock)": raw_clock.handle,
    }
    flushes = [lambda: flush_ours(ours), lambda: flush_ours(ours_mgr),
               lambda: flush_ours(ours_nm), lambda: flush_ours(ours_pub), raw.flush,
               raw_clock.flush]
    paths = {FAST: _paths(ours), "ours (manager.observe_event)": _paths(ours_mgr),
             "ours, metrics off": _paths(ours_nm), PUBLIC: _paths(ours_pub)}
    return sides, flushes, paths


def measure(exporter: str, rounds: int, per_round: int, endpoint: str | None = None
            ) -> dict[str, Any]:
    sides, flushes, paths = _sides(exporter, endpoint)
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
                           "events_per_round_per_side": per_round * 10, "paths": paths,
                           "sides": {}}
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
    out["public_vs_fast"] = {"wall": ratio_summary(wall[PUBLIC], wall[FAST]),
                             "cpu": ratio_summary(cpu[PUBLIC], cpu[FAST])}
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
