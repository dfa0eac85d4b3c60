"""An app that configures telemetry, then forks workers (multiprocessing 'fork' context).

    python _fork_app.py ENDPOINT OUT_DIR N_PARENT N_CHILDREN N_PER_CHILD

Parent: publishes N_PARENT sessions, opens one more session (first 2 events), forks the
workers, publishes N_PARENT more sessions while they run, finishes the open session, shuts
down. Each child: publishes N_PER_CHILD sessions and shuts down its own telemetry before it
exits. Every process writes its stats to OUT_DIR/<name>.json.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/ -> reliability._workload

from llmgine_otel import configure
from reliability._workload import session_events


def _dump(out: Path, name: str, tel: Any, report: Any) -> None:
    snap = tel.stats.snapshot()
    (out / f"{name}.json").write_text(json.dumps({
        "pid": os.getpid(), "produced": snap["produced"], "exported": snap["exported"],
        "dropped": snap["dropped"], "outcomes": snap["outcomes"],
        "shutdown_seconds": report.seconds, "completed": report.completed,
        "undelivered": report.undelivered}))


def main() -> None:
    endpoint, out_s, n_parent_s, n_children_s, n_child_s = sys.argv[1:6]
    out = Path(out_s)
    n_parent, n_children, n_child = int(n_parent_s), int(n_children_s), int(n_child_s)
    tel = configure(set_global=False, endpoint=endpoint, console=False,
                    output_dir=out / "local")
    obs = tel.manager.observe_event

    def child(i: int) -> None:
        for j in range(n_child):
            for ev in session_events(f"fork-child{i}-{j:04d}"):
                obs(ev)
        report = tel.shutdown()
        _dump(out, f"child{i}", tel, report)

    for i in range(n_parent):
        for ev in session_events(f"fork-parent-a-{i:04d}"):
            obs(ev)
    spanning = session_events("fork-parent-spanning")
    for ev in spanning[:2]:
        obs(ev)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=child, args=(i,), name=f"worker-{i}")
             for i in range(n_children)]
    for p in procs:
        p.start()
    for i in range(n_parent):
        for ev in session_events(f"fork-parent-b-{i:04d}"):
            obs(ev)
    deadline = time.monotonic() + 90
    codes = []
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(5)
        codes.append(p.exitcode)
    for ev in spanning[2:]:
        obs(ev)
    report = tel.shutdown()
    _dump(out, "parent", tel, report)
    (out / "exitcodes.json").write_text(json.dumps(codes))


if __name__ == "__main__":
    main()
