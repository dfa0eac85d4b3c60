"""8. The seed knobs, set through their environment variables.

- LLMGINE_OBSERVABILITY_QUEUE_SIZE: a burst of sessions published flat out into a slow
  exporter (5 ms per item); drops counted by telemetry.stats at 1,000 / 10,000 / 50,000.
- LLMGINE_OBSERVABILITY_WORKERS: throughput to a slow exporter (5 ms per item, the GIL free
  while it waits) with 1 vs 2 export shards: items exported per second while a publisher
  runs flat out.
- LLMGINE_OBSERVABILITY_SAMPLE_RATE: publisher cost per event at 1.0 vs 0.1 (null exporter,
  interleaved as in benchmark 1).
"""

from __future__ import annotations

import time
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

SLOW_PER_ITEM_S = 0.005


def _queue(quick: bool) -> dict[str, Any]:
    burst = 500 if quick else 1_500
    out: dict[str, Any] = {"burst_sessions": burst, "slow_exporter_s_per_item": SLOW_PER_ITEM_S}
    for q in (1_000, 10_000, 50_000):
        events = flat(make_sessions(burst))
        tel = build_ours("slow", per_item_s=SLOW_PER_ITEM_S,
                         env={"LLMGINE_OBSERVABILITY_QUEUE_SIZE": str(q)})
        t0 = time.perf_counter()
        for e in events:
            tel.handler.handle(e)
        pub = time.perf_counter() - t0
        snap = tel.stats.snapshot()
        out[f"queue_size={q}"] = {"publish_s": pub, "produced": snap["produced"],
                                  "dropped": snap["dropped"]}
        tel.shutdown(0.5)
    return out


def _workers(quick: bool) -> dict[str, Any]:
    duration = 5.0 if quick else 15.0
    out: dict[str, Any] = {"duration_s": duration, "slow_exporter_s_per_item": SLOW_PER_ITEM_S}
    for w in (1, 2):
        tel = build_ours("slow", per_item_s=SLOW_PER_ITEM_S,
                         env={"LLMGINE_OBSERVABILITY_WORKERS": str(w)})
        warm = 2.0
        t0 = time.perf_counter()
        e0 = None
        sessions = 0
        while (now := time.perf_counter()) - t0 < duration + warm:
            if e0 is None and now - t0 >= warm:
                snap = tel.stats.snapshot()
                e0 = (now, snap["exported"].get("spans", 0), snap["exported"].get("logs", 0))
            for e in make_session():
                tel.handler.handle(e)
            sessions += 1
        t1 = time.perf_counter()
        snap = tel.stats.snapshot()
        assert e0 is not None
        out[f"workers={w}"] = {
            "spans_exported_per_s": (snap["exported"].get("spans", 0) - e0[1]) / (t1 - e0[0]),
            "logs_exported_per_s": (snap["exported"].get("logs", 0) - e0[2]) / (t1 - e0[0]),
            "spans_produced_per_s": snap["produced"].get("spans", 0) / (t1 - t0),
            "dropped": snap["dropped"]}
        tel.shutdown(0.5)
    a, b = out["workers=1"], out["workers=2"]
    out["speedup_2_vs_1"] = b["spans_exported_per_s"] / max(a["spans_exported_per_s"], 1e-9)
    return out


def _sample(quick: bool) -> dict[str, Any]:
    rounds, per_round = (6, 30) if quick else (12, 50)
    tels = {f"sample_rate={r}": build_ours("null", env={"LLMGINE_OBSERVABILITY_SAMPLE_RATE": r})
            for r in ("1.0", "0.1")}
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
    out: dict[str, Any] = {"sides": {}}
    for n, t in tels.items():
        out["sides"][n] = {"wall_ns_per_event": summary(wall[n]),
                           "cpu_ns_per_event": summary(cpu[n]),
                           "produced": dict(t.stats.produced)}
    out["ratio_0.1_vs_1.0"] = {"wall": ratio_summary(wall["sample_rate=0.1"],
                                                     wall["sample_rate=1.0"]),
                               "cpu": ratio_summary(cpu["sample_rate=0.1"],
                                                    cpu["sample_rate=1.0"])}
    return out


def run(quick: bool, collector: bool) -> dict[str, Any]:
    return {"queue_size": _queue(quick), "workers": _workers(quick),
            "sample_rate": _sample(quick)}
