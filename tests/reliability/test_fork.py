"""Fork: a process that forks workers after configure(): each child's telemetry is exported
once, nothing is duplicated or lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from reliability._workload import span_attrs, wait_collected
from reliability.conftest import collector, record_figures

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

N_PARENT, N_CHILDREN, N_PER_CHILD = 100, 3, 100
APP = Path(__file__).resolve().parent / "_fork_app.py"


def test_forked_workers_export_once(otel_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "app"
    out.mkdir()
    expected = {f"fork-parent-a-{i:04d}" for i in range(N_PARENT)}
    expected |= {f"fork-parent-b-{i:04d}" for i in range(N_PARENT)}
    expected |= {f"fork-child{c}-{j:04d}" for c in range(N_CHILDREN) for j in range(N_PER_CHILD)}
    expected.add("fork-parent-spanning")
    with collector(tmp_path / "col") as col:
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, str(APP), col.grpc_endpoint, str(out), str(N_PARENT),
             str(N_CHILDREN), str(N_PER_CHILD)],
            capture_output=True, text=True, timeout=180, env=dict(os.environ), check=False)
        took = time.monotonic() - t0
        assert proc.returncode == 0, proc.stderr[-4000:]
        got = wait_collected(col.file_path, len(expected) * 6, len(expected) * 10)
    codes = json.loads((out / "exitcodes.json").read_text())
    stats = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")
             if p.stem != "exitcodes"}
    sessions: Counter[str] = Counter()
    for sp in got.spans.values():
        a = span_attrs(sp)
        sid = a.get("llmgine.session.id") or a.get("gen_ai.conversation.id")
        sessions[sid] += 1
    missing = sorted(expected - set(sessions))
    incomplete = sorted(s for s in expected if 0 < sessions.get(s, 0) != 6)
    unexpected = sorted(set(sessions) - expected)
    duplicate_spans = got.span_rows - len(got.spans)
    duplicate_logs = got.log_rows - len(got.logs)
    pids = {s["pid"] for s in stats.values()}
    record_figures(
        "fork", children=N_CHILDREN, sessions_expected=len(expected),
        sessions_found=len(set(sessions) & expected), missing_sessions=len(missing),
        incomplete_sessions=len(incomplete), unexpected_sessions=len(unexpected),
        spans_in_file=len(got.spans), span_rows=got.span_rows,
        duplicate_spans=duplicate_spans, logs_in_file=len(got.logs),
        duplicate_logs=duplicate_logs, child_exit_codes=codes, seconds=round(took, 1),
        per_process={k: {"produced": v["produced"], "exported": v["exported"],
                         "dropped": v["dropped"], "completed": v["completed"]}
                     for k, v in stats.items()})
    assert codes == [0] * N_CHILDREN, proc.stderr[-4000:]
    assert len(pids) == N_CHILDREN + 1
    assert duplicate_spans == 0 and duplicate_logs == 0
    assert not missing, missing[:10]
    assert not incomplete, incomplete[:10]
    assert not unexpected, unexpected[:10]
    assert len(got.spans) == len(expected) * 6
    assert got.log_rows == len(expected) * 10
    for name, s in stats.items():
        assert s["exported"] == s["produced"], (name, s)
