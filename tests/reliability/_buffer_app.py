"""An app for the disk-buffer tests (settings from the environment: endpoint, buffer dir).

    python _buffer_app.py until_killed PREFIX SESSIONS_PER_S
        publishes sessions until it is killed, printing "pub <sid> <wall time>" after each
    python _buffer_app.py then_drain PREFIX SESSIONS
        publishes SESSIONS sessions, waits (up to 120 s) until its disk buffer is empty and
        its queues are drained, shuts down, prints one JSON line of its counters
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/ -> reliability._workload

from llmgine_otel import configure
from reliability._workload import session_events


def until_killed(tel: object, prefix: str, rate: float) -> None:
    obs = tel.manager.observe_event  # type: ignore[attr-defined]
    t0 = time.monotonic()
    i = 0
    while True:
        due = t0 + i / rate
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        sid = f"{prefix}-{i:06d}"
        for ev in session_events(sid):
            obs(ev)
        print(f"pub {sid} {time.time():.6f}", flush=True)
        i += 1


def then_drain(tel: object, prefix: str, n: int) -> None:
    obs = tel.manager.observe_event  # type: ignore[attr-defined]
    for i in range(n):
        for ev in session_events(f"{prefix}-{i:06d}"):
            obs(ev)
    procs = (*tel.span_processors, *tel.log_processors)  # type: ignore[attr-defined]
    stats = tel.stats  # type: ignore[attr-defined]
    t0 = time.monotonic()
    time.sleep(1.0)  # the takeover of the earlier process's files runs at start
    while time.monotonic() - t0 < 120 and (sum(stats.buffered.values())
                                           or sum(p.undelivered() for p in procs)):
        time.sleep(0.2)
    drained = time.monotonic() - t0
    report = tel.shutdown()  # type: ignore[attr-defined]
    snap = stats.snapshot()
    print(json.dumps({"drained_s": drained, "report": str(report), "produced": snap["produced"],
                      "exported": snap["exported"], "dropped": snap["dropped"],
                      "buffer": snap["buffer"], "buffered": snap["buffered"]}), flush=True)


def main() -> None:
    mode, prefix, arg = sys.argv[1], sys.argv[2], sys.argv[3]
    tel = configure(set_global=False)
    if mode == "until_killed":
        until_killed(tel, prefix, float(arg))
    else:
        then_drain(tel, prefix, int(arg))


if __name__ == "__main__":
    main()
