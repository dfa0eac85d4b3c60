"""The disk buffer with real processes and the real Collector.

- kill -9 during an outage: what the first process had published longer than one export
  attempt before (batch delay + export timeout) was on disk by then, and the next process
  sharing the directory resends it, once;
- disk full (a tiny bound): the oldest batches are deleted and counted, nothing is raised,
  the accounting is exact, and what is kept (and later resent) is the newest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support.collector import free_port
from support.hermetic import left_out

from reliability._workload import (
    LOGS_PER_SESSION,
    SPANS_PER_SESSION,
    read_collected,
    session_events,
    span_attrs,
    wait_collected,
)
from reliability.conftest import SDK_ENV, accounting, collector, make_telemetry, record_figures

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

APP = Path(__file__).resolve().parent / "_buffer_app.py"


def _env(tmp_path: Path, endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not left_out(k)}
    env.update(SDK_ENV)
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "LLMGINE_OTEL_CONSOLE": "false",
                "LLMGINE_OTEL_DIR": str(tmp_path / "app"),
                "LLMGINE_OTEL_BUFFER_DIR": str(tmp_path / "buffer")})
    return env


def _spans_by_session(got: Any) -> Counter[str]:
    out: Counter[str] = Counter()
    for sp in got.spans.values():
        a = span_attrs(sp)
        out[a.get("llmgine.session.id") or a.get("gen_ai.conversation.id")] += 1
    return out


def _balance(acct: dict[str, Any], sig: str) -> int:
    a = acct[sig]
    return (a["produced"] + a["buffer"].get("adopted", 0) - a["exported"] - a["buffered"]
            - a["dropped_total"])


def test_kill_9_during_an_outage_the_next_process_resends_once(tmp_path: Path) -> None:
    port = free_port()  # nothing listens yet: the Collector is down
    env = _env(tmp_path, f"http://127.0.0.1:{port}")
    attempt_s = 0.2 + 5.0  # batch delay + export timeout (SDK_ENV)
    first = subprocess.Popen([sys.executable, str(APP), "until_killed", "k1", "200"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    published: list[tuple[str, float]] = []

    def read() -> None:
        assert first.stdout is not None
        for line in first.stdout:
            _, sid, wall = line.split()
            published.append((sid, float(wall)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not published and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(8.0)  # 200 sessions/s = 2,000 events/s into a Collector that is down
        killed_at = time.time()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    reader.join(5)
    on_disk = sorted((tmp_path / "buffer").glob("*/*.otlp"))
    with collector(tmp_path / "col",
                   env={"LLMGINE_OTELCOL_GRPC_ENDPOINT": f"127.0.0.1:{port}"}) as col:
        second = subprocess.run([sys.executable, str(APP), "then_drain", "k2", "100"], env=env,
                                capture_output=True, text=True, timeout=180, check=False)
        assert second.returncode == 0, second.stderr[-3000:]
        stats = json.loads(second.stdout.strip().splitlines()[-1])
        expected = len(published) + 100
        got = wait_collected(col.file_path, expected * SPANS_PER_SESSION,
                             expected * LOGS_PER_SESSION, timeout=30)
    spans = _spans_by_session(got)
    old = [sid for sid, wall in published if wall < killed_at - attempt_s]
    late = [sid for sid, wall in published if wall >= killed_at - attempt_s]
    lost_old = [s for s in old if spans[s] != SPANS_PER_SESSION
                or got.log_sessions[s] != LOGS_PER_SESSION]
    lost_late = [s for s in late if spans[s] != SPANS_PER_SESSION
                 or got.log_sessions[s] != LOGS_PER_SESSION]
    newest_complete = max((wall for sid, wall in published
                           if spans[sid] == SPANS_PER_SESSION
                           and got.log_sessions[sid] == LOGS_PER_SESSION), default=0.0)
    adopted = {k.split(":")[0]: v for k, v in stats["buffer"].items() if k.endswith(":adopted")}
    record_figures(
        "kill9_then_resend", sessions_published_by_first=len(published),
        files_left_on_disk=len(on_disk), sessions_older_than_one_attempt=len(old),
        lost_of_those=len(lost_old), sessions_in_last_attempt_window=len(late),
        lost_in_that_window=len(lost_late),
        newest_delivered_session_before_kill_s=round(killed_at - newest_complete, 2),
        adopted_by_second=adopted, second_drained_s=round(stats["drained_s"], 1),
        second=stats, spans_in_file=len(got.spans), span_rows=got.span_rows,
        logs_in_file=len(got.logs), log_rows=got.log_rows)
    assert len(old) > 500, len(old)
    assert not lost_old, lost_old[:5]  # on disk by the kill, resent by the second process
    assert got.span_rows == len(got.spans) and got.log_rows == len(got.logs)  # once
    assert adopted.get("spans", 0) > 0 and adopted.get("logs", 0) > 0, stats
    # Every span in the file came through the second process (the first never reached the
    # Collector): its own 100 sessions and what it took over from the first.
    assert len(got.spans) == stats["exported"]["spans"], stats
    assert got.log_rows == stats["exported"]["logs"], stats
    for sig in ("spans", "logs"):
        assert stats["buffered"].get(sig, 0) == 0 and not stats["dropped"], stats
        assert (stats["produced"][sig] + adopted[sig] == stats["exported"][sig]), stats


def test_disk_full_drops_the_oldest_counted(otel_env: dict[str, str], tmp_path: Path) -> None:
    bound = 256 * 1024
    n = 1000
    buffer_dir = tmp_path / "buffer"
    tel = make_telemetry(f"http://127.0.0.1:{free_port()}", tmp_path, buffer_dir=buffer_dir,
                         buffer_max_bytes=bound)
    errors = 0
    for i in range(n):
        for ev in session_events(f"full-{i:05d}"):
            try:
                tel.manager.observe_event(ev)
            except Exception:  # noqa: BLE001 - counted: the target is that none happens
                errors += 1
    report = tel.shutdown()
    acct = accounting(tel)
    on_disk = sum(p.stat().st_size for p in buffer_dir.glob("*/*.otlp"))
    # A second process (here: a second Telemetry on the same directory) resends what is left.
    with collector(tmp_path / "col") as col:
        again = make_telemetry(col.grpc_endpoint, tmp_path / "again", buffer_dir=buffer_dir)
        deadline = time.monotonic() + 60
        time.sleep(1.0)
        while sum(again.stats.buffered.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        again.shutdown()
        again_acct = accounting(again)
        kept = {s: acct[s]["buffered"] for s in ("spans", "logs")}
        got = wait_collected(col.file_path, kept["spans"], kept["logs"], timeout=30)
    kept_sessions = {"spans": _spans_by_session(got), "logs": got.log_sessions}
    first = {sig: min(int(s.rsplit("-", 1)[1]) for s in c) for sig, c in kept_sessions.items()}
    record_figures(
        "disk_full", bound_bytes=bound, bytes_on_disk_after_shutdown=on_disk, sessions=n,
        publish_errors=errors, report=str(report), spans=acct["spans"], logs=acct["logs"],
        spans_balance=_balance(acct, "spans"), logs_balance=_balance(acct, "logs"),
        resent_spans=again_acct["spans"]["exported"], resent_logs=again_acct["logs"]["exported"],
        first_session_kept=first, spans_in_file=len(got.spans), logs_in_file=got.log_rows)
    assert errors == 0
    assert on_disk <= bound
    for sig in ("spans", "logs"):
        a = acct[sig]
        assert a["dropped"].get("buffer_disk_full", 0) > 0, a
        assert a["buffer"]["dropped_disk_full"] == a["dropped"]["buffer_disk_full"], a
        assert _balance(acct, sig) == 0, a  # produced == exported + buffered + dropped
        assert a["exported"] == 0 and a["buffered"] > 0, a
        assert again_acct[sig]["buffer"].get("adopted") == a["buffered"], again_acct[sig]
        assert _balance(again_acct, sig) == 0, again_acct[sig]
    assert report.buffered == {"spans": acct["spans"]["buffered"],
                               "logs": acct["logs"]["buffered"]}
    # What was kept is the newest: per signal, every session after the first one kept is
    # whole, up to the last one published; the oldest are the ones that were dropped.
    for sig, per_session in (("spans", SPANS_PER_SESSION), ("logs", LOGS_PER_SESSION)):
        assert first[sig] > 0, first
        for i in range(first[sig] + 1, n):
            sid = f"full-{i:05d}"
            assert kept_sessions[sig][sid] == per_session, (sig, sid, kept_sessions[sig][sid])
    assert got.log_rows == acct["logs"]["buffered"] and len(got.spans) == acct["spans"]["buffered"]
    assert read_collected(col.file_path).span_rows == len(got.spans)  # none twice
