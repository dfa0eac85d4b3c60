"""The disk buffer (files, bounds, takeover of a gone process's files) and the shipper's
decisions (send, spill, resend oldest first, keep the in-flight batch at shutdown), with a
scripted transport. Delivery to the real Collector: tests/reliability/test_buffer.py and
the outage tests in tests/reliability/test_delivery.py."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from llmgine_otel.buffer import DiskBuffer, describe, writable
from llmgine_otel.exporters.shipper import SendResult, Shipper
from llmgine_otel.self_stats import SelfStats


def _buffer(root: Path, stats: SelfStats | None = None, **kw: Any) -> DiskBuffer:
    kw.setdefault("max_bytes", 1 << 20)
    kw.setdefault("max_age_s", 3600.0)
    return DiskBuffer(root, stats=stats or SelfStats(), **kw)


def _files(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.otlp"))


def test_write_claim_deliver_counts(tmp_path: Path) -> None:
    stats = SelfStats()
    buf = _buffer(tmp_path, stats)
    for i, t in enumerate((30, 10, 20)):  # written out of order: resent by creation time
        assert buf.write("spans", bytes([i]) * 100, 10, t)
    buf.write("logs", b"L" * 50, 7, 5)
    assert len(_files(tmp_path)) == 4 and buf.size_bytes() == 350
    assert stats.buffered == {"spans": 30, "logs": 7}
    assert stats.buffer[("spans", "spilled")] == 30
    entry, payload = buf.claim_oldest("spans")
    assert entry.created_ns == 10 and payload == bytes([1]) * 100
    assert buf.claim_oldest("spans")[0].created_ns == 20  # the claimed one is skipped
    buf.delivered(entry)
    assert not entry.path.exists()
    assert stats.exported["spans"] == 10 and stats.buffer[("spans", "resent")] == 10
    assert stats.buffered["spans"] == 20
    assert buf.oldest_created("logs") == 5


def test_bound_drops_the_oldest_counted(tmp_path: Path) -> None:
    stats = SelfStats()
    buf = _buffer(tmp_path, stats, max_bytes=3000)
    for t in range(5):
        buf.write("logs", b"x" * 1000, 4, t)
    assert buf.size_bytes() == 3000
    assert [int(p.name.split("-")[0]) for p in _files(tmp_path)] == [2, 3, 4]  # newest kept
    assert stats.dropped[("logs", "buffer_disk_full")] == 8
    assert stats.buffer[("logs", "dropped_disk_full")] == 8
    assert buf.write("logs", b"y" * 5000, 9, 9) == "buffer_disk_full"  # alone over the bound
    assert stats.dropped[("logs", "buffer_disk_full")] == 17
    entry, _ = buf.claim_oldest("logs")  # a batch being resent is never deleted under it
    buf.write("logs", b"z" * 2000, 1, 10)
    assert entry.path.exists() and buf.size_bytes() <= 3000
    spilled = stats.buffer[("logs", "spilled")]
    assert spilled == stats.buffered["logs"] + stats.buffer[("logs", "dropped_disk_full")] - 9


def test_old_batches_expire_counted(tmp_path: Path) -> None:
    now = [1000.0]
    stats = SelfStats()
    buf = _buffer(tmp_path, stats, max_age_s=60, clock=lambda: now[0])
    buf.write("spans", b"a", 3, int(950e9))
    buf.write("spans", b"b", 5, int(990e9))
    now[0] = 1030.0
    buf.maintain()
    assert stats.dropped[("spans", "buffer_expired")] == 3
    assert stats.buffer[("spans", "expired")] == 3 and stats.buffered["spans"] == 5
    assert len(_files(tmp_path)) == 1
    assert buf.oldest_age_s() == pytest.approx(40.0)


def test_a_gone_process_is_taken_over_once(tmp_path: Path) -> None:
    gone = _buffer(tmp_path)
    for t in range(20):
        gone.write("spans" if t % 2 else "logs", b"p" * 10, 3, t)
    (gone._dir / ".unfinished.tmp").write_bytes(b"half")  # type: ignore[operator]
    gone.close()  # its lock released, its files left behind: as after kill -9
    stats_b, stats_c = SelfStats(), SelfStats()
    b, c = _buffer(tmp_path, stats_b), _buffer(tmp_path, stats_c)
    barrier = threading.Barrier(2)

    def adopt(buf: DiskBuffer) -> None:
        barrier.wait()
        buf.adopt()

    threads = [threading.Thread(target=adopt, args=(x,)) for x in (b, c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    adopted = [sum(n for (_, e), n in s.buffer.items() if e == "adopted")
               for s in (stats_b, stats_c)]
    assert sum(adopted) == 60, adopted  # every file taken by exactly one of them
    assert len(_files(tmp_path)) == 20
    assert not gone._dir.exists() and not list(tmp_path.glob(f"{gone._owner}*"))  # type: ignore[union-attr]
    assert b.items() + c.items() == 60


def test_a_live_process_is_left_alone(tmp_path: Path) -> None:
    live = _buffer(tmp_path)
    live.write("spans", b"x", 2, 1)
    other = _buffer(tmp_path)
    assert other.adopt() == 0
    assert live.items() == 2 and len(_files(tmp_path)) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_writes_its_own_directory(tmp_path: Path) -> None:
    parent = _buffer(tmp_path)
    parent.write("spans", b"parent", 1, 1)
    pid = os.fork()
    if pid == 0:  # child: write, then exit without cleanup (like a crash)
        try:
            parent.write("spans", b"child", 1, 2)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    dirs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(dirs) == 2  # the child did not write into the parent's directory
    other = _buffer(tmp_path)
    assert other.adopt() == 1  # the child's file: it is gone; the parent still holds its lock
    assert parent.items() == 1 and (parent._dir / os.listdir(parent._dir)[0]).exists()  # type: ignore[operator]


def test_describe_and_writable(tmp_path: Path) -> None:
    buf = _buffer(tmp_path / "b")
    buf.write("spans", b"x" * 10, 4, 1_000_000_000)
    buf.write("logs", b"y" * 20, 6, 2_000_000_000)
    d = describe(tmp_path / "b")
    assert d["files"] == 2 and d["bytes"] == 30 and d["items"] == {"spans": 4, "logs": 6}
    assert d["oldest_ns"] == 1_000_000_000 and d["live_processes"] == 1
    assert describe(tmp_path / "none")["exists"] is False
    assert writable(tmp_path / "not" / "yet")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert os.geteuid() == 0 or not writable(ro / "x")
    finally:
        ro.chmod(0o700)


# -- the shipper -------------------------------------------------------------------------------


class Scripted:
    """A transport whose answer the test decides; ``hang`` blocks calls until set."""

    timeout_s = 5.0

    def __init__(self) -> None:
        self.result = SendResult.OK
        self.sent: list[bytes] = []
        self.hang = threading.Event()
        self.hang.set()
        self.calls = 0
        self.resets = 0

    def send(self, payload: bytes, timeout_s: float) -> tuple[SendResult, float | None, str]:
        self.calls += 1
        self.hang.wait(30)
        if self.result is SendResult.OK:
            self.sent.append(payload)
        return self.result, 0.05, "UNAVAILABLE: test" if self.result is not SendResult.OK else ""

    def reset(self) -> None:
        self.resets += 1

    def close(self) -> None:
        pass  # a call in flight stays in flight (the test decides when it returns)


def _shipper(tmp_path: Path, transport: Scripted, **kw: Any) -> tuple[Shipper, SelfStats]:
    stats = SelfStats()
    buf = _buffer(tmp_path / "buf", stats)
    return Shipper("spans", transport, lambda batch: b"".join(batch), stats, buf, **kw), stats


def _until(cond: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _identity(stats: SelfStats, produced: int) -> None:
    dropped = sum(n for (sig, _), n in stats.dropped.items() if sig == "spans")
    assert produced == stats.exported["spans"] + stats.buffered["spans"] + dropped, (
        stats.snapshot())


def test_down_goes_to_disk_then_resent_oldest_first(tmp_path: Path) -> None:
    t = Scripted()
    t.result = SendResult.RETRY
    sh, stats = _shipper(tmp_path, t)
    for i in range(6):
        sh.put(f"b{i}".encode(), 10)
        time.sleep(0.002)
    assert _until(lambda: stats.buffered["spans"] == 60 and not sh.pending_items())
    assert t.resets >= 1  # a new channel before the next probe
    t.result = SendResult.OK
    assert _until(lambda: stats.exported["spans"] == 60)
    assert t.sent == [f"b{i}".encode() for i in range(6)]  # oldest first, each once
    assert stats.buffer[("spans", "resent")] == 60 and stats.buffered["spans"] == 0
    sh.shutdown(1000)
    _identity(stats, 60)


def test_rejected_batches_are_dropped_counted(tmp_path: Path) -> None:
    t = Scripted()
    t.result = SendResult.REJECTED
    sh, stats = _shipper(tmp_path, t)
    sh.put(b"x", 4)
    assert _until(lambda: stats.dropped[("spans", "export_failed")] == 4)
    assert stats.buffered["spans"] == 0
    sh.shutdown(1000)
    _identity(stats, 4)


def test_past_the_outbox_bound_the_newest_go_to_disk(tmp_path: Path) -> None:
    t = Scripted()
    t.hang.clear()  # the endpoint takes the first call and never answers it
    sh, stats = _shipper(tmp_path, t, outbox_max_bytes=300)
    sh.put(b"0" * 100, 1)
    assert _until(lambda: t.calls == 1)
    for i in range(1, 10):
        sh.put(str(i).encode() * 100, 1)
        sh.relieve()
    assert stats.buffered["spans"] == 6  # 3 batches (300 bytes) wait in memory, 6 on disk
    assert sh.pending_items() == 4  # the 3 and the one in flight
    t.hang.set()
    assert _until(lambda: stats.exported["spans"] == 10)
    assert sorted(t.sent) == sorted(str(i).encode() * 100 for i in range(10))
    assert t.sent[:4] == [b"0" * 100, b"1" * 100, b"2" * 100, b"3" * 100]  # oldest first
    sh.shutdown(1000)
    _identity(stats, 10)


@pytest.mark.parametrize("answer", [SendResult.OK, SendResult.RETRY])
def test_shutdown_keeps_the_call_in_flight(tmp_path: Path, answer: SendResult) -> None:
    t = Scripted()
    t.hang.clear()
    sh, stats = _shipper(tmp_path, t)
    sh.put(b"inflight", 5)
    assert _until(lambda: t.calls == 1)
    sh.put(b"queued", 3)
    t0 = time.monotonic()
    sh.shutdown(600)
    assert time.monotonic() - t0 < 0.8
    assert stats.buffered["spans"] == 8  # both on disk for the next process
    t.result = answer
    t.hang.set()  # the call in flight returns after the bound
    time.sleep(0.2)
    if answer is SendResult.OK:  # acknowledged after all: its copy is deleted, not resent
        assert stats.exported["spans"] == 5 and stats.buffered["spans"] == 3
        assert len(_files(tmp_path / "buf")) == 1
    else:
        assert stats.buffered["spans"] == 8 and len(_files(tmp_path / "buf")) == 2
    _identity(stats, 8)


def test_buffer_self_metrics(tmp_path: Path) -> None:
    import socket

    from otel_kit import session_end, session_start

    from llmgine_otel import configure

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    tel = configure(endpoint=f"http://127.0.0.1:{port}", set_global=False, console=False,
                    buffer_dir=tmp_path / "buf", shutdown_timeout_s=1)
    try:
        tel.observe_event(session_start("s1", 0))
        tel.observe_event(session_end("s1", 1))
        assert tel.force_flush(5)
        assert _until(lambda: tel.stats.buffered["spans"] >= 1 and not sum(
            p.undelivered() for p in tel.span_processors))
        spans = tel.stats.buffered["spans"]
        lines = tel.prometheus_text().splitlines()

        def value(name: str, *labels: str) -> float | None:
            for line in lines:
                if line.startswith(name + "{") and all(lb in line for lb in labels):
                    return float(line.rsplit(" ", 1)[1])
            return None

        assert value("llmgine_observability_buffer_total", '"spilled"', '"spans"') == spans
        assert value("llmgine_observability_buffer_items", '"spans"') == spans
        assert (value("llmgine_observability_buffer_size_bytes") or 0) > 0
        assert value("llmgine_observability_buffer_age_seconds") is not None
    finally:
        tel.shutdown()
