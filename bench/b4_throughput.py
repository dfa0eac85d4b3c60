"""4. End-to-end throughput into the real collector (needs --collector).

Standard sessions published flat out (events built in the loop, as an app would) for 60 s
(--quick 10 s) through the manager, OTLP gRPC to the bundled collector at defaults. Then a
bounded flush, and the exact accounting from ``telemetry.stats``: produced, exported,
dropped. CPU seconds: psutil for this process and for the collector's pid. If the flat-out
run dropped anything, a paced run at 80% of the exported rate checks the zero-drop rate.
"""

from __future__ import annotations

import time
from typing import Any

from bench import build_ours, make_session

TARGET = 20_000


def _run(endpoint: str, pid: int, duration: float, pace_spans_s: float | None
         ) -> dict[str, Any]:
    import psutil

    me, col = psutil.Process(), psutil.Process(pid)
    tel = build_ours("otlp", endpoint=endpoint)
    observe = tel.manager.observe_event
    c_me0, c_col0 = me.cpu_times(), col.cpu_times()
    t0 = time.perf_counter()
    sessions = 0
    while (now := time.perf_counter()) - t0 < duration:
        if pace_spans_s and sessions * 6 > (now - t0) * pace_spans_s:
            time.sleep(0.001)
            continue
        for e in make_session():
            observe(e)
        sessions += 1
    publish_s = time.perf_counter() - t0
    ok = tel.force_flush(30.0)
    total_s = time.perf_counter() - t0
    c_me1, c_col1 = me.cpu_times(), col.cpu_times()
    snap = tel.stats.snapshot()
    tel.shutdown(5.0)
    spans = snap["produced"].get("spans", 0)
    dropped = {k: v for k, v in snap["dropped"].items()}
    return {
        "paced_at_spans_s": pace_spans_s, "publish_s": publish_s, "flush_ok": ok,
        "total_s_incl_flush": total_s, "spans_produced": spans,
        "spans_exported": snap["exported"].get("spans", 0),
        "logs_exported": snap["exported"].get("logs", 0), "dropped": dropped,
        "spans_per_s_published": spans / publish_s,
        "spans_per_s_exported_incl_flush": snap["exported"].get("spans", 0) / total_s,
        "cpu_s_ours": (c_me1.user + c_me1.system) - (c_me0.user + c_me0.system),
        "cpu_s_collector": (c_col1.user + c_col1.system) - (c_col0.user + c_col0.system),
        "zero_drops": not any(dropped.values()),
    }


def run(quick: bool, collector: bool) -> dict[str, Any]:
    if not collector:
        return {"not_measured": "needs --collector", "target_spans_s": TARGET}
    from bench.collector import running_collector

    duration = 10.0 if quick else 60.0
    out: dict[str, Any] = {"target_spans_s": TARGET, "duration_s": duration}
    try:
        with running_collector() as (endpoint, pid):
            out["flat_out"] = _run(endpoint, pid, duration, None)
            if not out["flat_out"]["zero_drops"]:
                rate = 0.8 * out["flat_out"]["spans_per_s_exported_incl_flush"]
                out["paced"] = _run(endpoint, pid, duration, rate)
    except RuntimeError as exc:
        out["not_measured"] = str(exc)
    return out
