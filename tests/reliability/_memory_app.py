"""Memory probe in a fresh interpreter (so earlier tests' heap does not hide the growth).

    python _memory_app.py ENDPOINT OUT_DIR N_EVENTS

Publishes N_EVENTS standard-session events while nothing listens at ENDPOINT, prints one
JSON line ("down": RSS figures), waits for a line on stdin (the Collector is up), waits for
the queues to drain, prints a second JSON line ("drained"), shuts down.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

import psutil

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/ -> reliability._workload

from llmgine_otel import configure
from reliability._workload import EVENTS_PER_SESSION, session_events


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def main() -> None:
    endpoint, out, n_events = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    # The in-memory queues are what this probe bounds: the disk buffer (which keeps them
    # nearly empty during an outage) is off here; the outage tests measure RSS with it on.
    tel = configure(set_global=False, endpoint=endpoint, console=False, output_dir=out,
                    buffer=False)
    obs = tel.manager.observe_event
    # The price table loads on a background thread from configure(): let it finish, then one
    # more session (priced this time), so rss0 holds everything but the queued telemetry.
    from llmgine_otel import cost

    warm = getattr(cost, "_warm", None)
    if warm is not None:
        warm.wait(60)
    for sid in ("warm-up-1", "warm-up-2"):  # imports and first allocations out of the way
        for ev in session_events(sid):
            obs(ev)
    rss0 = peak = rss()
    t0 = time.perf_counter()
    for i in range(n_events // EVENTS_PER_SESSION):
        for ev in session_events(f"mem-{i:06d}"):
            obs(ev)
        if i % 2_000 == 0:
            peak = max(peak, int(psutil.Process().memory_info().rss))
    publish_s = time.perf_counter() - t0
    peak = max(peak, rss())
    procs = (*tel.span_processors, *tel.log_processors)
    queued = {"spans": sum(p.queue_length() for p in tel.span_processors),
              "logs": sum(p.queue_length() for p in tel.log_processors)}
    exported_before = dict(tel.stats.exported)
    print(json.dumps({"phase": "down", "rss0": rss0, "peak": peak, "publish_s": publish_s,
                      "queued": queued, "queue_size": tel.config.queue_size}), flush=True)
    sys.stdin.readline()  # the Collector is up
    t_back = time.monotonic()
    while time.monotonic() - t_back < 60 and sum(p.undelivered() for p in procs):
        time.sleep(0.25)
    drained_s = time.monotonic() - t_back
    rss_after = rss()
    report = tel.shutdown()
    snap = tel.stats.snapshot()
    print(json.dumps({
        "phase": "drained", "rss_after": rss_after, "drained_s": drained_s,
        "shutdown_s": report.seconds, "produced": snap["produced"],
        "exported": snap["exported"], "dropped": snap["dropped"],
        "delivered_after_return": {s: snap["exported"].get(s, 0) - exported_before.get(s, 0)
                                   for s in ("spans", "logs")}}), flush=True)


if __name__ == "__main__":
    main()
