"""6. Start-up: ``import llmgine_otel`` + ``configure()`` in a fresh interpreter.

Median/min/max of 10 runs (--quick 5) of the in-process time (import + configure with
defaults, output in a temp dir) and of the whole process wall time; then
``python -X importtime`` for the top offenders (cumulative and self).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench import summary

TARGET_MS = 150.0

SNIPPET = """
import time, json, sys
t0 = time.perf_counter()
import llmgine_otel
t1 = time.perf_counter()
tel = llmgine_otel.configure(output_dir=sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "configure_ms": (t2 - t1) * 1e3,
                  "total_ms": (t2 - t0) * 1e3}))
"""


def _importtime(outdir: str) -> dict[str, Any]:
    code = ("import llmgine_otel, sys; "
            "llmgine_otel.configure(output_dir=sys.argv[1])")
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", code, outdir],
                       capture_output=True, text=True, timeout=120)
    rows = []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line[len("import time:"):].split("|", 2)
        name = name.rstrip()
        rows.append((name[1:], int(self_us), int(cum_us)))  # one separator space
    top_level = [r for r in rows if not r[0].startswith(" ")]
    by_cum = sorted(top_level, key=lambda r: -r[2])[:12]
    by_self = sorted(rows, key=lambda r: -r[1])[:12]
    total_us = sum(r[1] for r in rows)
    return {"modules": len(rows), "total_self_ms": total_us / 1e3,
            "top_cumulative_ms": [(n.strip(), c / 1e3) for n, _, c in by_cum],
            "top_self_ms": [(n.strip(), s / 1e3) for n, s, _ in by_self]}


def run(quick: bool, collector: bool) -> dict[str, Any]:
    runs = 5 if quick else 10
    inproc: dict[str, list[float]] = {"import_ms": [], "configure_ms": [], "total_ms": []}
    wall: list[float] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMGINE_"))}
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-c", SNIPPET, d], capture_output=True,
                               text=True, timeout=120, env=env)
            wall.append((time.perf_counter() - t0) * 1e3)
            r = json.loads(p.stdout.strip().splitlines()[-1])
            for k in inproc:
                inproc[k].append(r[k])
    with tempfile.TemporaryDirectory() as d:
        it = _importtime(d)
    return {"runs": runs, "target_ms": TARGET_MS,
            **{k: summary(v) for k, v in inproc.items()},
            "process_wall_ms": summary(wall), "importtime": it}
