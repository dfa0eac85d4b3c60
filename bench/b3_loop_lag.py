"""3. Event-loop lag: an asyncio app publishing 5,000 events/s (standard sessions) through
the manager, as llmgine's bus does (``observe_event`` synchronously on the loop).

A ticker task measures its own lateness every 1 ms; the publisher publishes 5 sessions
(50 events) every 10 ms on absolute deadlines and times each ``observe_event``. Events are
built on the loop just before publishing (outside the timed publish, but inside the loop's
time), so the "no telemetry" row (manager disabled) is the app's own lag to compare with.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import build_ours, make_session, percentile

RATE = 5_000
TICK_S = 0.010


async def _app(observe: Any, duration: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    publish_ns: list[int] = []
    stop = False

    async def ticker() -> None:
        while not stop:
            t = loop.time()
            await asyncio.sleep(0.001)
            lags.append(max(0.0, loop.time() - t - 0.001))

    async def publisher() -> int:
        per_tick = int(RATE * TICK_S) // 10  # sessions per tick
        start = loop.time()
        k = 0
        sent = 0
        perf = time.perf_counter_ns
        while loop.time() - start < duration:
            for _ in range(per_tick):
                for e in make_session():
                    t0 = perf()
                    observe(e)
                    publish_ns.append(perf() - t0)
                    sent += 1
            k += 1
            await asyncio.sleep(max(0.0, start + k * TICK_S - loop.time()))
        return sent

    tick = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    sent = await publisher()
    elapsed = time.perf_counter() - t0
    stop = True
    await tick
    return {
        "events": sent, "events_per_s": sent / elapsed,
        "lag_ms": {"p50": percentile(lags, 50) * 1e3, "p99": percentile(lags, 99) * 1e3,
                   "p99.9": percentile(lags, 99.9) * 1e3, "max": max(lags) * 1e3},
        "publish_us": {"p50": percentile(publish_ns, 50) / 1e3,
                       "p99": percentile(publish_ns, 99) / 1e3,
                       "p99.9": percentile(publish_ns, 99.9) / 1e3,
                       "max": max(publish_ns) / 1e3},
    }


def _one(kind: str, duration: float, endpoint: str | None = None) -> dict[str, Any]:
    tel = build_ours("null" if kind == "none" else kind, endpoint=endpoint)
    if kind == "none":
        tel.manager.set_enabled(False)
    res = asyncio.run(_app(tel.manager.observe_event, duration))
    res["stats"] = tel.stats.snapshot()
    t0 = time.perf_counter()
    rep = tel.shutdown(5.0)
    res["shutdown"] = {"seconds": time.perf_counter() - t0, "completed": rep.completed,
                       "undelivered": rep.undelivered}
    return res


def run(quick: bool, collector: bool) -> dict[str, Any]:
    from bench.collector import closed_endpoint, running_collector

    duration = 5.0 if quick else 30.0
    out: dict[str, Any] = {"rate_target": RATE, "duration_s": duration,
                           "targets": {"p99_lag_ms": 5.0, "p99.9_publish_ms": 1.0}}
    out["no telemetry (manager disabled)"] = _one("none", duration)
    out["null exporter"] = _one("null", duration)
    out["as shipped (files)"] = _one("default", duration)
    out["OTLP, collector down"] = _one("otlp", duration, closed_endpoint())
    if collector:
        try:
            with running_collector() as (endpoint, _pid):
                out["OTLP, collector up"] = _one("otlp", duration, endpoint)
        except RuntimeError as exc:
            out["OTLP, collector up"] = {"not_measured": str(exc)}
    else:
        out["OTLP, collector up"] = {"not_measured": "needs --collector"}
    return out
