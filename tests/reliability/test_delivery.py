"""Nothing lost, nothing blocked: delivery to the real built Collector.

1. clean shutdown loses nothing (10,000 sessions);
2. a 30 s Collector outage (SIGKILL, restart on the same ports): no raise, no stall, quick
   recovery, exact accounting;
3. shutdown is bounded when the endpoint refuses or blackholes connections;
4. memory stays bounded while the Collector is down for 1,000,000 events.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support.collector import free_port
from support.hermetic import left_out

from reliability._workload import (
    EVENTS_PER_SESSION,
    LOGS_PER_SESSION,
    SPANS_PER_SESSION,
    session_events,
    wait_collected,
)
from reliability.conftest import accounting, collector, make_telemetry, record_figures

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def _balance(acct: dict[str, Any], sig: str) -> int:
    """produced + adopted - exported - buffered - dropped: 0 when every item is accounted
    for exactly (adopted: items an earlier process left in the disk buffer)."""
    a = acct[sig]
    return (a["produced"] + a["buffer"].get("adopted", 0) - a["exported"] - a["buffered"]
            - a["dropped_total"])


def _publish_paced(tel: Any, n_sessions: int, rate: float) -> tuple[float, float]:
    """Publish ``n_sessions`` standard sessions at ``rate`` sessions/s (building each one just
    before it is due). Returns (seconds, max observe_event seconds)."""
    obs = tel.manager.observe_event
    t0 = time.perf_counter()
    worst = 0.0
    for i in range(n_sessions):
        due = t0 + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        for ev in session_events(f"clean-{i:05d}"):
            a = time.perf_counter()
            obs(ev)
            d = time.perf_counter() - a
            if d > worst:
                worst = d
    return time.perf_counter() - t0, worst


# -- 1 ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_clean_shutdown_loses_nothing(otel_env: dict[str, str], tmp_path: Path) -> None:
    n = 10_000
    rate = 1_000.0  # sessions/s = 10,000 events/s, far above a real LLM app's event rate
    with collector(tmp_path / "col") as col:
        tel = make_telemetry(col.grpc_endpoint, tmp_path)
        seconds, worst = _publish_paced(tel, n, rate)
        report = tel.shutdown()
        acct = accounting(tel)
        got = wait_collected(col.file_path, n * SPANS_PER_SESSION, n * LOGS_PER_SESSION)
    expected_spans, expected_logs = n * SPANS_PER_SESSION, n * LOGS_PER_SESSION
    lost_spans = expected_spans - len(got.spans)
    lost_logs = expected_logs - len(got.logs)
    record_figures(
        "clean_shutdown",
        sessions=n, publish_seconds=round(seconds, 2),
        events_per_s=round(n * EVENTS_PER_SESSION / seconds),
        shutdown_seconds=round(report.seconds, 3), shutdown_completed=report.completed,
        produced=acct["spans"]["produced"], exported_spans=acct["spans"]["exported"],
        produced_logs=acct["logs"]["produced"], exported_logs=acct["logs"]["exported"],
        dropped_spans=acct["spans"]["dropped"], dropped_logs=acct["logs"]["dropped"],
        spans_in_file=len(got.spans), span_rows_in_file=got.span_rows,
        logs_in_file=len(got.logs), log_rows_in_file=got.log_rows,
        lost_spans=lost_spans, lost_logs=lost_logs,
        max_publish_ms=round(worst * 1e3, 2))
    assert acct["spans"]["produced"] == expected_spans
    assert acct["logs"]["produced"] == expected_logs
    assert report.completed, report
    assert acct["spans"]["exported"] == expected_spans, acct
    assert acct["logs"]["exported"] == expected_logs, acct
    assert acct["spans"]["dropped_total"] == 0 and acct["logs"]["dropped_total"] == 0, acct
    assert lost_spans == 0 and lost_logs == 0, (lost_spans, lost_logs)
    assert got.span_rows == expected_spans, "duplicate spans in the collector file"
    assert got.log_rows == expected_logs, "duplicate log records in the collector file"


# -- 2 ----------------------------------------------------------------------------------------


class _Publisher(threading.Thread):
    """Publishes standard sessions at a steady event rate, timing every observe_event call
    (and the garbage-collector pauses inside it) and remembering when each session was
    published."""

    def __init__(self, tel: Any, events_per_s: float) -> None:
        super().__init__(daemon=True, name="publisher")
        self.tel = tel
        self.rate = events_per_s
        self.stop_flag = threading.Event()
        # Plain doubles, not float objects: 250,000 calls in the 120 s run would otherwise
        # add ~16 MB to the RSS the outage tests measure.
        self.latencies = array("d")
        self.net_latencies = array("d")  # minus cyclic-GC pauses inside the call
        self.gc_pauses: list[float] = []
        self.gc_slow_by_gen: Counter[int] = Counter()  # pauses > 10 ms by GC generation
        self.errors: list[BaseException] = []
        self.sessions: list[tuple[float, str]] = []  # (monotonic time published, sid)
        self.slow: list[float] = []  # when calls took > 10 ms net of GC (monotonic)
        self.events = 0
        self._gc_total = 0.0
        self._gc_start = 0.0

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if threading.get_ident() != self.ident:
            return
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            d = time.perf_counter() - self._gc_start
            self._gc_total += d
            self.gc_pauses.append(d)
            if d > 0.010:
                self.gc_slow_by_gen[info.get("generation", -1)] += 1

    def run(self) -> None:
        gc.callbacks.append(self._gc)
        try:
            self._run()
        finally:
            gc.callbacks.remove(self._gc)

    def _run(self) -> None:
        obs = self.tel.manager.observe_event
        lat, net = self.latencies, self.net_latencies
        t0 = time.perf_counter()
        i = 0
        while not self.stop_flag.is_set():
            evs = session_events(f"out-{i:06d}")
            for ev in evs:
                due = t0 + self.events / self.rate
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                g0 = self._gc_total
                a = time.perf_counter()
                try:
                    obs(ev)
                except BaseException as exc:  # noqa: BLE001 - the target: this never happens
                    self.errors.append(exc)
                d = time.perf_counter() - a
                lat.append(d)
                net.append(d - (self._gc_total - g0))
                if net[-1] > 0.010:
                    self.slow.append(time.monotonic())
                self.events += 1
            self.sessions.append((time.monotonic(), f"out-{i:06d}"))
            i += 1


def _scan(path: Path, offset: int, wanted: set[str]) -> tuple[int, int, bool]:
    """Read up to 4 MiB of the file from ``offset`` (the resent backlog is hundreds of MB
    of JSON: read at once it would dominate this process's RSS): (new offset, bytes added,
    a ``wanted`` session seen)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(4 << 20)
    except FileNotFoundError:
        return offset, 0, False
    cut = data.rfind(b"\n") + 1
    chunk = data[:cut]
    return offset + cut, cut, any(sid.encode() in chunk for sid in wanted)


def _pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * q))]


WRITE_THEN_ACK = Path(__file__).resolve().parent / "otelcol-write-then-ack.yaml"
# LLMGINE_RELIABILITY_OUTAGES=30 runs only the 30 s outage (a quick local run).
OUTAGES = [int(x) for x in os.environ.get("LLMGINE_RELIABILITY_OUTAGES", "30,120").split(",")]


@pytest.fixture(scope="module", params=OUTAGES, ids=[f"{s}s" for s in OUTAGES])
def outage(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Steady publishing at 2,000 events/s; the Collector SIGKILLed after 5 s, restarted on
    the same ports after the outage (30 s, 120 s); 15 s more; the disk buffer drained;
    shutdown. Run once per outage length, judged by the tests below.

    The Collector is otelcol-write-then-ack.yaml (no batch processor): it writes a request
    before it acknowledges it, so what it acknowledged before SIGKILL is in its file, and
    the file says exactly what the app delivered."""
    import psutil

    from reliability.conftest import SDK_ENV

    rate = 2_000.0  # events/s
    before, outage_s, after = 5.0, float(request.param), 15.0
    tmp_path = Path(tempfile.mkdtemp(prefix="llmgine-otel-outage-"))
    proc = psutil.Process()
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if left_out(k):
                mp.delenv(k, raising=False)
        for k, v in SDK_ENV.items():
            mp.setenv(k, v)
        with collector(tmp_path / "col", config=str(WRITE_THEN_ACK)) as col:
            tel = make_telemetry(col.grpc_endpoint, tmp_path)
            for ev in session_events("warm-up"):  # first plans compiled, first allocations
                tel.manager.observe_event(ev)
            # What one full collection of this process costs with nothing queued: the floor
            # under any publish call that a full collection lands in.
            full_gc = []
            for _ in range(3):
                g = time.perf_counter()
                gc.collect()
                full_gc.append(time.perf_counter() - g)
            tracked0 = len(gc.get_objects())
            rss0 = rss_peak = proc.memory_info().rss
            pub = _Publisher(tel, rate)
            pub.start()
            try:
                time.sleep(before)
                col.kill()
                killed_at, killed_wall = time.monotonic(), time.time()
                while time.monotonic() - killed_at < outage_s:
                    time.sleep(0.5)
                    rss_peak = max(rss_peak, proc.memory_info().rss)
                rss_outage = rss_peak
                on_disk_at_restart = dict(tel.stats.buffered)
                buffer_bytes_at_restart = tel.stats.buffer_state["bytes"]()
                col.start()  # same binary, config, ports and file (the exporter appends)
                restarted_at = time.monotonic()
                assert col.proc is not None
                col_cpu = psutil.Process(col.proc.pid)
                cpu0, load0 = sum(col_cpu.cpu_times()[:2]), os.getloadavg()[0]
                offset = col.file_path.stat().st_size if col.file_path.exists() else 0
                resumed_after = fresh_after = None
                while time.monotonic() - restarted_at < 60 and fresh_after is None:
                    wanted = {sid for t, sid in pub.sessions[-50:] if t >= restarted_at}
                    offset, added, seen = _scan(col.file_path, offset, wanted)
                    if added and resumed_after is None:
                        resumed_after = time.monotonic() - restarted_at
                    if seen:
                        fresh_after = time.monotonic() - restarted_at
                    rss_peak = max(rss_peak, proc.memory_info().rss)
                    time.sleep(0.2)
                while time.monotonic() - restarted_at < after:
                    time.sleep(0.5)
                    rss_peak = max(rss_peak, proc.memory_info().rss)
            finally:
                pub.stop_flag.set()
                pub.join(10)
            procs = (*tel.span_processors, *tel.log_processors)
            t_drain = time.monotonic()
            while time.monotonic() - t_drain < 240 and (
                    sum(tel.stats.buffered.values()) or sum(p.undelivered() for p in procs)):
                time.sleep(0.2)
            drained_after = time.monotonic() - restarted_at
            collector_cpu = (sum(col_cpu.cpu_times()[:2]) - cpu0) / drained_after
            report = tel.shutdown()
            acct = accounting(tel)
            got = wait_collected(col.file_path, acct["spans"]["produced"],
                                 acct["logs"]["produced"], timeout=60, keep_spans=False)
    shutil.rmtree(tmp_path, ignore_errors=True)
    post_restart = {sid for t, sid in pub.sessions if t >= restarted_at}
    post_in_file = len(post_restart & set(got.log_sessions))
    lat, net, gcp = sorted(pub.latencies), sorted(pub.net_latencies), sorted(pub.gc_pauses)
    mb = 1 << 20
    fig = dict(
        events_per_s_target=rate, events_published=pub.events,
        outage_seconds=round(restarted_at - killed_at, 1),
        publish_errors=len(pub.errors),
        publish_max_ms=round(lat[-1] * 1e3, 3), publish_p99_ms=round(_pct(lat, .99) * 1e3, 3),
        publish_p999_ms=round(_pct(lat, .999) * 1e3, 3),
        publish_calls_over_10ms=sum(1 for x in lat if x > 0.010),
        publish_max_minus_gc_ms=round(net[-1] * 1e3, 3),
        publish_p999_minus_gc_ms=round(_pct(net, .999) * 1e3, 3),
        calls_over_10ms_minus_gc=sum(1 for x in net if x > 0.010),
        calls_over_10ms_minus_gc_by_phase={
            "before": sum(1 for t in pub.slow if t < killed_at),
            "outage": sum(1 for t in pub.slow if killed_at <= t < restarted_at),
            "after_restart": sum(1 for t in pub.slow if t >= restarted_at)},
        gc_pauses_over_10ms=sum(1 for x in gcp if x > 0.010),
        gc_pause_max_ms=round(gcp[-1] * 1e3, 1) if gcp else 0.0,
        gc_pauses_over_10ms_by_generation=dict(sorted(pub.gc_slow_by_gen.items())),
        full_gc_nothing_queued_ms=round(sorted(full_gc)[1] * 1e3, 1),
        gc_tracked_objects_nothing_queued=tracked0,
        rss_start_mb=round(rss0 / mb, 1),
        rss_growth_outage_mb=round((rss_outage - rss0) / mb, 1),
        rss_peak_mb=round(rss_peak / mb, 1), rss_growth_mb=round((rss_peak - rss0) / mb, 1),
        on_disk_at_restart=on_disk_at_restart,
        buffer_mb_at_restart=round(buffer_bytes_at_restart / mb, 1),
        delivery_resumed_after_s=None if resumed_after is None else round(resumed_after, 2),
        post_restart_sessions_after_s=None if fresh_after is None else round(fresh_after, 2),
        backlog_drained_after_s=round(drained_after, 1),
        collector_cpu_cores_while_draining=round(collector_cpu, 2),
        host_load_average_at_restart=round(load0, 1),
        post_restart_sessions=len(post_restart), post_restart_sessions_in_file=post_in_file,
        shutdown_seconds=round(report.seconds, 3), shutdown_report=str(report),
        spans=acct["spans"], logs=acct["logs"],
        spans_balance=_balance(acct, "spans"), logs_balance=_balance(acct, "logs"),
        spans_in_file=len(got.spans), span_rows_in_file=got.span_rows,
        logs_in_file=len(got.logs), log_rows_in_file=got.log_rows,
        duplicates_made_before_the_kill_s=_dup_ages(got, killed_wall),
        handler_errors=tel.stats.snapshot()["handler_errors"], settings=dict(SDK_ENV))
    record_figures(f"collector_outage_{int(outage_s)}s", **fig)
    return {"fig": fig, "pub": pub, "acct": acct, "lat": lat, "net": net}


@pytest.mark.slow
def test_outage_never_raises_and_accounts_exactly(outage: dict[str, Any]) -> None:
    fig, acct = outage["fig"], outage["acct"]
    assert not outage["pub"].errors, outage["pub"].errors[:3]
    assert fig["handler_errors"] == {}
    assert fig["spans_balance"] == 0, acct["spans"]  # exported + buffered + dropped == produced
    assert fig["logs_balance"] == 0, acct["logs"]
    for sig in ("spans", "logs"):
        a = acct[sig]
        assert a["dropped_total"] == 0, a  # nothing lost
        assert a["buffered"] == 0, a  # everything on disk was resent before shutdown
        assert a["buffer"].get("spilled", 0) > 0, a  # the outage went through the disk
        assert a["buffer"].get("resent", 0) == a["buffer"]["spilled"], a
        assert a["exported"] == a["produced"], a


def _dup_ages(got: Any, killed_wall: float) -> dict[str, list[float]]:
    """For duplicated spans / log records: how long before the Collector's SIGKILL each was
    made (min and max, seconds)."""
    out = {}
    for sig, times in (("spans", got.dup_span_end_ns), ("logs", got.dup_log_time_ns)):
        ages = [killed_wall - t / 1e9 for t in times]
        out[sig] = [round(min(ages), 2), round(max(ages), 2), len(ages)] if ages else []
    return out


@pytest.mark.slow
def test_outage_loses_nothing(outage: dict[str, Any]) -> None:
    """Every span and log record produced is in the Collector's file, and once, except what
    the Collector wrote but could not acknowledge when it was SIGKILLed."""
    fig, acct = outage["fig"], outage["acct"]
    assert fig["spans_in_file"] == acct["spans"]["produced"], fig  # nothing lost
    assert fig["logs_in_file"] == acct["logs"]["produced"], fig
    # Once: every batch acknowledged is deleted, never resent. The one exception is
    # inherent to OTLP (a request has no idempotency key): a request the Collector had
    # written when SIGKILL hit it, before its answer left, fails for the client and is
    # resent. That can only be the batch in flight per export pipeline at the kill (<= 256
    # items here), made within moments of it.
    for sig, rows, unique in (("spans", "span_rows_in_file", "spans_in_file"),
                              ("logs", "log_rows_in_file", "logs_in_file")):
        dups = fig[rows] - fig[unique]
        assert dups <= 256, fig
        if dups:
            newest, oldest, _ = fig["duplicates_made_before_the_kill_s"][sig]
            assert newest > -1.0 and oldest < 5.0, fig["duplicates_made_before_the_kill_s"]


@pytest.mark.slow
def test_outage_delivery_resumes_within_10s(outage: dict[str, Any]) -> None:
    fig = outage["fig"]
    resumed = fig["delivery_resumed_after_s"]
    assert resumed is not None and resumed < 10.0, fig
    # the backlog on disk goes first (oldest first); sessions published after the restart
    # follow it (``post_restart_sessions_after_s``: how long that took) and do arrive
    assert fig["post_restart_sessions_in_file"] == fig["post_restart_sessions"], fig


@pytest.mark.slow
def test_outage_publish_never_waits_on_the_exporter(outage: dict[str, Any]) -> None:
    lat, net = outage["lat"], outage["net"]
    assert _pct(lat, .999) < 0.010, outage["fig"]
    assert _pct(net, .999) < 0.010, outage["fig"]
    # Nothing on the publish path waits for the exporter, the network or the disk. Net of
    # cyclic-GC pauses (next test) the worst calls are GIL hand-overs from the exporter,
    # shipper and disk threads (5 ms switch interval) and the OS scheduler of a shared
    # 2-core machine: tens of ms at most, never an export's seconds.
    assert net[-1] < 0.100, outage["fig"]


@pytest.mark.slow
def test_outage_memory_within_the_bounded_queue_figure(outage: dict[str, Any]) -> None:
    # Target 4's bound for queues full in memory (64 MB); with the disk buffer the queues
    # never fill during an outage. Growth of this (pytest) process from before the outage
    # to its peak, during the outage and while the backlog is resent (the publisher's own
    # latency lists, ~3 MB per minute of publishing, included)
    assert outage["fig"]["rss_growth_mb"] <= 64, outage["fig"]


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason=(
    "CPython 3.12's stop-the-world cyclic GC runs a full collection in whichever thread "
    "allocates, usually the publisher, and one full collection of this llmgine process with "
    "nothing queued already costs ~90 ms on this machine (~290 ms in the full CI process; "
    "figure full_gc_nothing_queued_ms). With the disk buffer nothing piles up in memory "
    "during an outage, so a full collection is rare: the 30 s outage often has none and "
    "passes, the 120 s one has had one in every run. Not strict for that reason; "
    "RELIABILITY.md has the measurements."))
def test_outage_no_publish_call_over_10ms(outage: dict[str, Any]) -> None:
    assert outage["lat"][-1] < 0.010, outage["fig"]


# -- 3 ----------------------------------------------------------------------------------------


class _Blackhole:
    """A TCP listener that accepts connections and never reads or answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.mark.parametrize("buffer", [False, True], ids=["no-buffer", "buffer"])
@pytest.mark.parametrize("mode", ["refused", "blackholed"])
def test_bounded_shutdown(otel_env: dict[str, str], tmp_path: Path, mode: str, buffer: bool,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK default export timeout (10 s per export call) is kept here on purpose: the
    # bound must hold even when one export call alone could outlast it.
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TIMEOUT", raising=False)
    hole = _Blackhole() if mode == "blackholed" else None
    port = hole.port if hole else free_port()
    try:
        tel = make_telemetry(f"http://127.0.0.1:{port}", tmp_path, buffer=buffer)
        bound = tel.config.shutdown_timeout_s
        for i in range(300):
            for ev in session_events(f"bounded-{mode}-{i}"):
                tel.manager.observe_event(ev)
        time.sleep(0.5)  # let the exporter pick up a batch: one export call is in flight
        t0 = time.monotonic()
        report = tel.shutdown()
        took = time.monotonic() - t0
        time.sleep(1.0)  # let an abandoned in-flight export return before reading the counts
        acct = accounting(tel)
    finally:
        if hole:
            hole.close()
    undelivered = sum(report.undelivered.values())
    name = f"bounded_shutdown_{mode}" + ("_buffer" if buffer else "")
    record_figures(name, bound_s=bound, shutdown_seconds=round(took, 3),
                   reported_seconds=round(report.seconds, 3), completed=report.completed,
                   undelivered=report.undelivered, buffered=report.buffered,
                   spans=acct["spans"], logs=acct["logs"],
                   spans_balance=_balance(acct, "spans"), logs_balance=_balance(acct, "logs"))
    assert took < bound + 0.5, took
    assert _balance(acct, "spans") == 0 and _balance(acct, "logs") == 0, acct
    if buffer:  # on disk for the next start, nothing lost
        assert report.completed, report
        assert undelivered == 0, report
        assert report.buffered == {"spans": 1800, "logs": 3000}, report
        assert "in the disk buffer for the next start" in str(report)
    else:
        assert not report.completed
        assert undelivered > 0, report
        assert "undelivered" in str(report) and "spans" in str(report)


# -- 4 ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def memory_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """In a fresh interpreter (tests/reliability/_memory_app.py): publish with the Collector
    down (endpoint = a closed port), then start it on that port and let the queues drain.
    Run once, judged by the tests below."""
    from reliability.conftest import SDK_ENV

    # The 1,000,000 events (100,000 sessions), ~3-4 min here (event construction
    # included). LLMGINE_RELIABILITY_MEMORY_EVENTS sets another count for a quick local run.
    n_events = int(os.environ.get("LLMGINE_RELIABILITY_MEMORY_EVENTS", "1000000"))
    tmp_path = tmp_path_factory.mktemp("memory")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not left_out(k)}
    env.update(SDK_ENV)
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve().parent / "_memory_app.py"),
         f"http://127.0.0.1:{port}", str(tmp_path / "app"), str(n_events)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=env)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        down = json.loads(proc.stdout.readline())
        with collector(tmp_path / "col", env={"LLMGINE_OTELCOL_GRPC_ENDPOINT":
                                              f"127.0.0.1:{port}"}):
            proc.stdin.write("up\n")
            proc.stdin.flush()
            drained = json.loads(proc.stdout.readline())
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    mb = 1 << 20
    acct = {}
    for sig in ("spans", "logs"):
        dropped = {k.split(":", 1)[1]: v for k, v in drained["dropped"].items()
                   if k.startswith(sig + ":")}
        acct[sig] = {"produced": drained["produced"].get(sig, 0),
                     "exported": drained["exported"].get(sig, 0), "dropped": dropped,
                     "dropped_total": sum(dropped.values()), "buffered": 0, "buffer": {}}
    fig = dict(
        events=n_events, publish_seconds=round(down["publish_s"], 1),
        us_per_event=round(down["publish_s"] / n_events * 1e6, 1),
        queue_size=down["queue_size"], queued_while_down=down["queued"],
        delivered_after_return=drained["delivered_after_return"],
        rss_start_mb=round(down["rss0"] / mb, 1), rss_peak_mb=round(down["peak"] / mb, 1),
        rss_growth_mb=round((down["peak"] - down["rss0"]) / mb, 1),
        rss_after_drain_mb=round(drained["rss_after"] / mb, 1),
        released_mb=round((down["peak"] - drained["rss_after"]) / mb, 1),
        drained_seconds=round(drained["drained_s"], 1),
        shutdown_seconds=round(drained["shutdown_s"], 2), spans=acct["spans"],
        logs=acct["logs"], spans_balance=_balance(acct, "spans"),
        logs_balance=_balance(acct, "logs"))
    record_figures("bounded_memory", **fig)
    return fig


@pytest.mark.slow
@pytest.mark.timeout(1500)  # whichever runs first pays for the 1,000,000-event run
def test_memory_queues_stay_bounded_and_drain(memory_run: dict[str, Any]) -> None:
    f = memory_run
    assert f["queued_while_down"]["spans"] <= f["queue_size"]
    assert f["queued_while_down"]["logs"] <= f["queue_size"]
    assert f["spans_balance"] == 0 and f["logs_balance"] == 0, f
    # the backlog kept while the Collector was down is delivered once it is back (batches the
    # exporter tried while the Collector was still starting fail and are counted: 3-8 % here)
    for sig in ("spans", "logs"):
        assert f["delivered_after_return"][sig] >= 0.5 * f["queued_while_down"][sig], f


@pytest.mark.slow
@pytest.mark.timeout(1500)  # whichever runs first pays for the 1,000,000-event run
def test_memory_growth_within_64mb(memory_run: dict[str, Any]) -> None:
    assert memory_run["rss_growth_mb"] <= 64, memory_run


@pytest.mark.slow
@pytest.mark.timeout(1500)  # whichever runs first pays for the 1,000,000-event run
@pytest.mark.xfail(strict=True, reason=(
    "RSS does not drop when the queues drain: pymalloc returns a 1 MiB arena only when every "
    "object in it is freed, and objects that outlive the outage (the span table's bounded "
    "memory of recently ended ids, metric state) pin the arenas; malloc_trim returns ~2 MB. "
    "The memory is reused by the next outage (bounded), not returned. See RELIABILITY.md"))
def test_memory_released_after_drain(memory_run: dict[str, Any]) -> None:
    f = memory_run
    assert f["released_mb"] >= 0.5 * max(f["rss_growth_mb"], 1), f
