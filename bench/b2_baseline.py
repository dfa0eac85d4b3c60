"""2. Against what llmgine users have today, on the events llmgine 0.0.1 can express.

Sessions of 6 events (session start, command started, 2 tool results, command result,
session end). Sides, interleaved chunk by chunk like benchmark 1:
- llmgine's ``observability.otel_handler.OpenTelemetryHandler`` as shipped (it installs a
  global TracerProvider with a BatchSpanProcessor + ConsoleSpanExporter; the worker's stdout
  goes to /dev/null, so the console text is formatted and written, then discarded);
- llmgine's ``observability.handlers.file_sync.SyncFileEventHandler`` (a JSONL file in a temp
  dir: open/append/close per event);
- ours as shipped with no endpoint (OTLP-JSON files + console summary), and ours with null
  exporters. Targets: >= 4x less publisher time than the OTel handler, >= 2x less than the
  file handler.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

from bench import (
    build_ours,
    flat,
    flush_ours,
    interleaved_round,
    make_sessions,
    ratio_summary,
    summary,
)

OURS = "ours (as shipped: files + console summary)"


def run(quick: bool, collector: bool) -> dict[str, Any]:
    from llmgine.observability.handlers.file_sync import SyncFileEventHandler
    from llmgine.observability.otel_handler import OpenTelemetryHandler

    logging.disable(logging.INFO)
    rounds, per_round = (6, 30) if quick else (16, 60)
    theirs_otel = OpenTelemetryHandler(service_name="llmgine")
    theirs_file = SyncFileEventHandler(log_dir=tempfile.mkdtemp(prefix="bench-llmgine-"))
    ours_default = build_ours("default")
    ours_null = build_ours("null")
    sides = {
        "llmgine OpenTelemetryHandler (console)": theirs_otel.handle,
        "llmgine SyncFileEventHandler": theirs_file.handle,
        OURS: ours_default.handler.handle,
        "ours (null exporter)": ours_null.handler.handle,
    }
    interleaved_round(sides, make_sessions(10, llm=False))
    wall: dict[str, list[float]] = {n: [] for n in sides}
    cpu: dict[str, list[float]] = {n: [] for n in sides}
    for r in range(rounds):
        sessions = make_sessions(per_round, llm=False)
        chunks = [flat(sessions[i:i + 2]) for i in range(0, len(sessions), 2)]
        for n, (w, c) in interleaved_round(sides, chunks, rotate=r).items():
            wall[n].append(w)
            cpu[n].append(c)
        flush_ours(ours_default)
        flush_ours(ours_null)
    out: dict[str, Any] = {"events_per_session": 6, "rounds": rounds,
                           "events_per_round_per_side": per_round * 6, "sides": {}}
    for n in sides:
        out["sides"][n] = {"wall_ns_per_event": summary(wall[n]),
                           "cpu_ns_per_event": summary(cpu[n])}
    out["speedups"] = {}
    for theirs, target in (("llmgine OpenTelemetryHandler (console)", 4.0),
                           ("llmgine SyncFileEventHandler", 2.0)):
        for ours in (OURS, "ours (null exporter)"):
            out["speedups"][f"{theirs} / {ours}"] = {
                "wall": ratio_summary(wall[theirs], wall[ours]),
                "cpu": ratio_summary(cpu[theirs], cpu[ours]), "target": target}
    return out
