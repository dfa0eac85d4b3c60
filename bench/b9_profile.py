"""9. Profile of the OTelHandler.handle path (standard sessions, null exporters, defaults).

cProfile for exact self time per function (its overhead inflates small functions evenly),
grouped also by package; pyinstrument (sampling) for a call-tree view when installed.

Since Python 3.12 cProfile uses ``sys.monitoring`` and records every thread, so the export
threads (span metrics, batching) would be mixed into the publisher's profile. ``QUIET``
keeps them idle while profiling: queues and export batches larger than the profiled run and
a 10-minute schedule delay, so nothing is exported until the flush after the profile.
"""

from __future__ import annotations

import cProfile
import pstats
from typing import Any

from bench import build_ours, flat, flush_ours, make_sessions


def _where(filename: str) -> str:
    if "llmgine_otel" in filename:
        return "llmgine_otel"
    if "opentelemetry/sdk/metrics" in filename:
        return "otel sdk metrics"
    if "opentelemetry" in filename:
        return "otel sdk/api (traces, logs, attributes)"
    if filename.startswith("~") or filename == "<built-in>":
        return "builtins"
    return "other (stdlib)"


QUIET = {"LLMGINE_OBSERVABILITY_QUEUE_SIZE": "100000",
         "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "100000", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "100000",
         "OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_BLRP_SCHEDULE_DELAY": "600000"}


def run(quick: bool, collector: bool) -> dict[str, Any]:
    n = 300 if quick else 1_000
    tel = build_ours("null", env=QUIET)
    for e in flat(make_sessions(20)):
        tel.handler.handle(e)
    flush_ours(tel)
    events = flat(make_sessions(n))
    exported0 = sum(sp.counting.inner.count for sp in tel.span_processors)
    prof = cProfile.Profile()
    prof.enable()
    for e in events:
        tel.handler.handle(e)
    prof.disable()
    exported_during_profile = sum(sp.counting.inner.count for sp in tel.span_processors) - \
        exported0
    flush_ours(tel)
    st = pstats.Stats(prof)
    total = st.total_tt
    rows = []
    groups: dict[str, float] = {}
    for (fn, line, name), (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        short = fn.split("site-packages/")[-1].replace("/work/main/", "")
        rows.append({"function": f"{short}:{line}({name})", "calls_per_event": nc / len(events),
                     "self_pct": 100 * tt / total, "cum_pct": 100 * ct / total})
        g = _where(fn)
        groups[g] = groups.get(g, 0.0) + 100 * tt / total
    rows.sort(key=lambda r: -r["self_pct"])
    cum = sorted(rows, key=lambda r: -r["cum_pct"])
    out: dict[str, Any] = {"events": len(events), "top_self": rows[:20],
                           "spans_exported_during_profile": exported_during_profile,
                           "top_cumulative_llmgine_otel": [r for r in cum if "llmgine_otel" in
                                                           r["function"]][:15],
                           "self_pct_by_package": dict(sorted(groups.items(),
                                                              key=lambda kv: -kv[1]))}
    try:
        from pyinstrument import Profiler
    except ImportError:
        out["pyinstrument"] = "not installed"
        return out
    tel2 = build_ours("null", env=QUIET)
    events = flat(make_sessions(n))
    p = Profiler(interval=0.0002)
    p.start()
    for e in events:
        tel2.handler.handle(e)
    p.stop()
    out["pyinstrument"] = p.output_text(unicode=False, color=False, show_all=False)
    return out
