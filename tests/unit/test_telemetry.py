"""Setup and bounded shutdown: against an endpoint that refuses connections and against a
blackhole that accepts but never answers, shutdown returns within its bound and reports
what was not delivered. No threads or sockets are left behind."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import psutil
import pytest
from otel_kit import command_result, command_started, session_start

from llmgine_otel import configure


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def blackhole() -> Iterator[int]:
    """A TCP listener that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    srv.settimeout(0.05)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True, name="test-blackhole")
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join(2)
        for c in conns:
            c.close()
        srv.close()


def _feed(tel, n: int = 20) -> None:
    tel.observe_event(session_start("s1", 0))
    for i in range(n):
        tel.observe_event(command_started("s1", f"c{i}", 1))
        tel.observe_event(command_result("s1", f"c{i}", 2))


def _wait_threads_gone(before: set[threading.Thread], timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _connections_to(port: int) -> list:
    return [c for c in psutil.Process().net_connections(kind="tcp")
            if c.raddr and c.raddr.port == port]


def _identity(tel) -> None:
    """produced == exported + on disk + dropped, per signal, exactly."""
    snap = tel.stats.snapshot()
    for sig in ("spans", "logs"):
        dropped = sum(n for k, n in snap["dropped"].items() if k.startswith(sig + ":"))
        assert snap["produced"][sig] == (snap["exported"].get(sig, 0) + dropped
                                         + snap["buffered"].get(sig, 0)), snap


@pytest.mark.parametrize("buffer", [False, True])
def test_shutdown_against_refused_endpoint_is_bounded_and_reports(buffer, tmp_path):
    port = _free_port()  # nothing listens: connections are refused
    before = set(threading.enumerate())
    tel = configure(endpoint=f"http://127.0.0.1:{port}", shutdown_timeout_s=2,
                    set_global=False, console=False, buffer=buffer,
                    buffer_dir=tmp_path / "buffer")
    _feed(tel)
    t0 = time.monotonic()
    report = tel.shutdown()
    elapsed = time.monotonic() - t0
    assert elapsed < 2.5, report
    assert report.seconds <= elapsed
    assert report.open_spans_ended == 1  # the session never ended
    # 22 spans: the session's start, 20 commands, and the session's end made at shutdown.
    assert tel.shutdown() is report  # idempotent
    if buffer:  # kept on disk for the next process: nothing lost
        assert report.completed, report
        assert report.undelivered == {"spans": 0, "logs": 0}, report
        assert report.buffered == {"spans": 22, "logs": 41}, report
        assert "in the disk buffer for the next start: 22 spans, 41 logs" in str(report)
        assert len(list((tmp_path / "buffer").glob("*/*.otlp"))) >= 2
    else:
        assert report.undelivered["spans"] == 22 and report.undelivered["logs"] == 41, report
        assert not report.completed
        assert "22 spans" in str(report) and "41 logs" in str(report)
    _identity(tel)
    assert _wait_threads_gone(before) == []
    assert _connections_to(port) == []


@pytest.mark.parametrize("buffer", [False, True])
def test_shutdown_against_blackhole_is_bounded(buffer, tmp_path):
    before = set(threading.enumerate())
    with blackhole() as port:
        before.update(t for t in threading.enumerate() if t.name == "test-blackhole")
        tel = configure(endpoint=f"http://127.0.0.1:{port}", shutdown_timeout_s=2,
                        set_global=False, console=False, buffer=buffer,
                        buffer_dir=tmp_path / "buffer")
        _feed(tel)
        time.sleep(0.3)
        t0 = time.monotonic()
        report = tel.shutdown()
        assert time.monotonic() - t0 < 2.5, report
        if buffer:  # the call in flight never answers: its batch is kept on disk too
            assert report.completed, report
            assert report.buffered == {"spans": 22, "logs": 41}, report
        else:
            assert not report.completed
            assert report.undelivered["spans"] == 22 and report.undelivered["logs"] == 41
    assert _wait_threads_gone(before) == []
    assert _connections_to(port) == []
    _identity(tel)  # the abandoned batch is not counted twice


def test_tiny_queue_and_many_workers_configure(pipeline):
    tel, gate, _, _ = pipeline(queue_size=3, num_workers=2)
    gate.open.set()
    _feed(tel, 2)
    assert tel.shutdown(timeout_s=2).open_spans_ended == 1


def test_set_sample_rate_applies_to_new_sessions(pipeline):
    tel, gate, span_ex, _ = pipeline(queue_size=1000)
    gate.open.set()
    tel.observe_event(session_start("kept", 0))
    tel.set_sample_rate(0.0)
    tel.observe_event(session_start("dropped", 0))
    tel.observe_event(command_started("kept", "c1", 1))
    tel.observe_event(command_result("kept", "c1", 2))
    tel.observe_event(command_started("dropped", "c2", 1))
    tel.observe_event(command_result("dropped", "c2", 2))
    tel.shutdown(timeout_s=2)
    sessions = {s.attributes.get("llmgine.session.id") for s in span_ex[0].got}
    assert sessions == {"kept"}
    with pytest.raises(ValueError):
        tel.set_sample_rate(3)


def test_trace_ids_do_not_follow_the_applications_random_seed(tmp_path) -> None:
    """An app calling random.seed(n) must not get the same trace ids on every run."""
    import random

    from llmgine_otel.config import ObservabilityConfig
    from llmgine_otel.telemetry import Telemetry

    ids = []
    for _ in range(2):
        tel = Telemetry(ObservabilityConfig(output_dir=tmp_path, console=False,
                                            emit_metrics=False))
        random.seed(1234)
        span = tel.tracer_provider.get_tracer("t").start_span("x")
        ids.append(span.get_span_context().trace_id)
        span.end()
        tel.shutdown(timeout_s=2)
    assert ids[0] != ids[1]
