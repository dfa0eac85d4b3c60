"""Publish latency and RSS through a Collector outage, disk buffer on vs off (A/B).

    .venv/bin/python -m bench.outage_publish [--rounds 3] [--outage 30]

Each round runs both modes, alternating, each in a fresh interpreter: 2,000 events/s of the
standard reliability workload into the real Collector (tests/reliability/
otelcol-write-then-ack.yaml) for 5 s, the Collector SIGKILLed for ``--outage`` s, restarted,
25 s more. Per phase (before / outage / after the restart): p99.9 and max of the publish
call net of cyclic-GC pauses in it, calls over 10 ms; RSS growth from before the outage to
its end. Prints medians [min .. max] over the rounds, and the host load at the start of each
run (the outage tests share this 2-core machine with whatever else runs).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tests" / "reliability" / "otelcol-write-then-ack.yaml"
RATE = 2_000.0
SDK_ENV = {"OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_BLRP_SCHEDULE_DELAY": "200",
           "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "256", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "256",
           "OTEL_EXPORTER_OTLP_TIMEOUT": "5"}


def child(buffer: bool, outage: float) -> dict[str, Any]:
    import psutil

    sys.path.append(str(ROOT / "tests"))
    from reliability._workload import session_events
    from support.collector import start_collector

    from llmgine_otel import configure, cost

    tmp = Path(tempfile.mkdtemp(prefix="bench-outage-"))
    col = start_collector(CONFIG, {}, workdir=tmp / "col")
    try:
        tel = configure(set_global=False, endpoint=col.grpc_endpoint, console=False,
                        output_dir=tmp / "app", buffer=buffer)
        warm = getattr(cost, "_warm", None)
        if warm is not None:
            warm.wait(60)
        gc_time = [0.0, 0.0]
        me = threading.get_ident()

        def on_gc(phase: str, info: dict[str, Any]) -> None:
            if threading.get_ident() == me:
                if phase == "start":
                    gc_time[1] = time.perf_counter()
                else:
                    gc_time[0] += time.perf_counter() - gc_time[1]

        gc.callbacks.append(on_gc)
        obs = tel.manager.observe_event
        n_session = [0]

        def run(seconds: float) -> dict[str, Any]:
            lat = array("d")
            n = 0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                for ev in session_events(f"b-{n_session[0]}"):
                    wait = t0 + n / RATE - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    g0, a = gc_time[0], time.perf_counter()
                    obs(ev)
                    lat.append(time.perf_counter() - a - (gc_time[0] - g0))
                    n += 1
                n_session[0] += 1
            s = sorted(lat)
            return {"p999_ms": s[int(len(s) * 0.999)] * 1e3, "max_ms": s[-1] * 1e3,
                    "over_10ms": sum(1 for x in s if x > 0.010)}

        proc = psutil.Process()
        out: dict[str, Any] = {"load": os.getloadavg()[0], "before": run(5.0)}
        rss0 = proc.memory_info().rss
        col.kill()
        out["outage"] = run(outage)
        out["rss_growth_mb"] = (proc.memory_info().rss - rss0) / (1 << 20)
        col.start()
        out["after"] = run(25.0)
        tel.shutdown()
        return out
    finally:
        col.stop()


def _stat(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} [{min(xs):.2f} .. {max(xs):.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--outage", type=float, default=30.0)
    ap.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child == "on", args.outage)), flush=True)
        return
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "LLMGINE_OBSERVABILITY_", "LLMGINE_OTEL_"))}
    env.update(SDK_ENV)
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for r in range(args.rounds):
        for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
            p = subprocess.run([sys.executable, "-m", "bench.outage_publish", "--child", mode,
                                "--outage", str(args.outage)], cwd=ROOT, env=env,
                               capture_output=True, text=True, check=True, timeout=600)
            runs[mode].append(json.loads(p.stdout.strip().splitlines()[-1]))
    print(f"{args.rounds} rounds, {args.outage:g} s outage, {RATE:,.0f} events/s; "
          "median [min .. max]")
    print("| disk buffer | phase | publish p99.9 ms | max ms | calls > 10 ms |")
    print("|---|---|---|---|---|")
    for mode, rs in runs.items():
        for phase in ("before", "outage", "after"):
            print(f"| {mode} | {phase} | {_stat([x[phase]['p999_ms'] for x in rs])} | "
                  f"{_stat([x[phase]['max_ms'] for x in rs])} | "
                  f"{_stat([x[phase]['over_10ms'] for x in rs])} |")
        print(f"| {mode} | RSS growth during the outage, MB | "
              f"{_stat([x['rss_growth_mb'] for x in rs])} | | |")
    print("host load at the start of each run: "
          + ", ".join(f"{mode} {x['load']:.1f}" for mode, rs in runs.items() for x in rs))


if __name__ == "__main__":
    main()
