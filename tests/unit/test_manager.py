"""The manager is a drop-in for llmgine's: same methods, failing handlers isolated, counted
and logged once, async handlers run on the caller's loop."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest
from otel_kit import command_result, command_started, session_end, session_start

from llmgine_otel.manager import AsyncObservabilityHandler, ObservabilityManager


class Recorder:
    def __init__(self, name: str = "rec") -> None:
        self.name = name
        self.events: list = []

    def handle(self, event) -> None:
        self.events.append(event)


class Boom:
    name = "boom"

    def handle(self, event) -> None:
        raise RuntimeError("handler bug")


class AsyncRecorder(AsyncObservabilityHandler):
    name = "arec"

    def __init__(self) -> None:
        self.events: list = []
        self.loops: set[int] = set()

    async def ahandle(self, event) -> None:
        self.loops.add(id(asyncio.get_running_loop()))
        await asyncio.sleep(0)
        self.events.append(event)


def test_same_methods_as_llmgines_manager():
    from llmgine.observability.manager import ObservabilityManager as Theirs

    for name in ("register_handler", "unregister_handler", "observe_event", "set_enabled",
                 "clear_handlers", "handler_count"):
        assert hasattr(Theirs, name) and hasattr(ObservabilityManager, name), name


def test_register_unregister_enable_clear():
    m = ObservabilityManager()
    a, b = Recorder("a"), Recorder("b")
    m.register_handler(a)
    m.register_handler(a)  # idempotent
    m.register_handler(b)
    assert m.handler_count == 2
    m.observe_event("e1")
    m.set_enabled(False)
    m.observe_event("e2")
    m.set_enabled(True)
    m.unregister_handler(a)
    m.unregister_handler(a)  # no-op
    m.observe_event("e3")
    assert a.events == ["e1"] and b.events == ["e1", "e3"]
    m.clear_handlers()
    assert m.handler_count == 0
    m.observe_event("e4")
    assert b.events == ["e1", "e3"]
    assert m.stats.events_by_handler == {"a": 1, "b": 2}
    with pytest.raises(TypeError):
        m.register_handler(object())


def test_failing_handler_is_isolated_counted_and_logged_once(caplog):
    m = ObservabilityManager()
    good = Recorder()
    m.register_handler(Boom())
    m.register_handler(good)
    with caplog.at_level(logging.ERROR, logger="llmgine_otel"):
        for i in range(5):
            m.observe_event(i)
    assert good.events == [0, 1, 2, 3, 4]
    assert m.stats.handler_errors["boom"] == 5
    assert m.stats.events_by_handler["boom"] == 5
    assert len([r for r in caplog.records if "boom" in r.getMessage()]) == 1
    assert m.stats.handler_seconds["rec"] > 0


async def test_async_handler_via_aobserve_event():
    m = ObservabilityManager()
    h = AsyncRecorder()
    m.register_handler(h)
    m.register_handler(Boom())
    for i in range(3):
        await m.aobserve_event(i)
    assert h.events == [0, 1, 2]
    assert h.loops == {id(asyncio.get_running_loop())}
    assert m.stats.handler_errors["boom"] == 3


async def test_async_handler_via_observe_event_in_a_running_loop(monkeypatch):
    def no_new_loops(*a, **k):
        raise AssertionError("a new event loop was made per event")

    monkeypatch.setattr(asyncio, "new_event_loop", no_new_loops)
    monkeypatch.setattr(asyncio, "run", no_new_loops)
    m = ObservabilityManager()
    h = AsyncRecorder()
    m.register_handler(h)
    for i in range(100):
        m.observe_event(i)  # synchronous, like llmgine's bus.publish
    await m.drain()
    assert sorted(h.events) == list(range(100))
    assert h.loops == {id(asyncio.get_running_loop())}
    assert m.stats.events_by_handler["arec"] == 100


def test_async_handler_outside_a_loop_uses_one_background_loop():
    m = ObservabilityManager()
    h = AsyncRecorder()
    m.register_handler(h)
    done = threading.Event()
    for i in range(20):
        m.observe_event(i)

    async def mark() -> None:
        done.set()

    from llmgine_otel.manager import _background_loop

    _background_loop().submit(mark())
    assert done.wait(5)
    for _ in range(100):
        if len(h.events) == 20:
            break
        threading.Event().wait(0.01)
    assert sorted(h.events) == list(range(20))
    assert len(h.loops) == 1


def test_translator_sync_first_even_with_ahandle(otel):
    m = ObservabilityManager()
    m.register_handler(otel.handler)
    assert m._sync and not m._async
    m.observe_event(session_start("s1", 0))
    m.observe_event(session_end("s1", 1))
    assert [s.name for s in otel.spans()] == ["session", "session end"]


def test_translator_on_llmgines_own_manager(otel):
    from llmgine.observability.manager import ObservabilityManager as Theirs

    m = Theirs()
    m.register_handler(otel.handler)
    for e in (session_start("s1", 0), command_started("s1", "c1", 1),
              command_result("s1", "c1", 2), session_end("s1", 3)):
        m.observe_event(e)
    names = sorted(s.name for s in otel.spans())
    assert names == ["command Command", "session", "session end"]
    assert len(otel.logs()) == 4


class Slow(AsyncObservabilityHandler):
    """An async handler that takes ``seconds`` per event and records how many ran at once."""

    name = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.running = 0
        self.most = 0
        self.started = 0
        self.finished = 0

    async def ahandle(self, event) -> None:
        self.started += 1
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.seconds)
            self.finished += 1
        finally:
            self.running -= 1


async def test_async_handler_in_flight_bound_and_timeout_counted():
    m = ObservabilityManager(max_in_flight=5, handler_timeout_s=0.2)
    slow, rec = Slow(60), Recorder()
    m.register_handler(slow)
    m.register_handler(rec)
    worst = 0.0
    for i in range(100):
        t0 = time.perf_counter()
        m.observe_event(i)  # synchronous, like llmgine's bus.publish: never waits
        worst = max(worst, time.perf_counter() - t0)
    assert rec.events == list(range(100))  # sync handlers see every event
    assert m.in_flight(slow) == 5 and len(m._tasks) == 5
    assert m.stats.handler_dropped[("slow", "in_flight_limit")] == 95
    await asyncio.sleep(0.5)
    assert slow.started == 5 and slow.most == 5 and slow.finished == 0
    assert m.stats.handler_dropped[("slow", "timeout")] == 5
    assert m.in_flight(slow) == 0 and not m._tasks  # slots given back after the timeout
    for i in range(3):
        m.observe_event(i)
    await m.drain()
    assert slow.started == 8 and m.stats.handler_dropped[("slow", "timeout")] == 8
    assert worst < 0.1, worst  # far below the 0.2 s timeout: no call waited for a handler
    snap = m.stats.snapshot()["handler_dropped"]
    assert snap == {"slow:in_flight_limit": 95, "slow:timeout": 8}


async def test_aobserve_event_bounded_too():
    m = ObservabilityManager(max_in_flight=2, handler_timeout_s=0.1)
    slow = Slow(60)
    m.register_handler(slow)
    t0 = time.perf_counter()
    await asyncio.gather(*(m.aobserve_event(i) for i in range(10)))
    assert time.perf_counter() - t0 < 1.0
    assert slow.most == 2
    assert m.stats.handler_dropped[("slow", "in_flight_limit")] == 8
    assert m.stats.handler_dropped[("slow", "timeout")] == 2


def test_async_handler_outside_a_loop_bounded():
    m = ObservabilityManager(max_in_flight=3, handler_timeout_s=0.2)
    slow = Slow(60)
    m.register_handler(slow)
    for i in range(50):
        m.observe_event(i)
    assert m.stats.handler_dropped[("slow", "in_flight_limit")] == 47
    deadline = time.monotonic() + 5
    while m.stats.handler_dropped[("slow", "timeout")] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert m.stats.handler_dropped[("slow", "timeout")] == 3 and slow.most == 3
    assert m.in_flight(slow) == 0


def test_configured_bounds_reach_the_manager(tmp_path):
    from llmgine_otel import configure

    tel = configure(set_global=False, console=False, output_dir=tmp_path,
                    handler_max_in_flight=7, handler_timeout_s=1.5)
    try:
        assert tel.manager.max_in_flight == 7 and tel.manager.handler_timeout_s == 1.5
    finally:
        tel.shutdown(timeout_s=2)
def test_the_designs_config_form_works_and_bad_arguments_fail_at_construction():
    from llmgine_otel.config import ObservabilityConfig

    rec = Recorder()
    manager = ObservabilityManager(ObservabilityConfig(queue_size=50_000, sample_rate=0.1))
    manager.register_handler(rec)
    manager.observe_event(session_start("s1"))
    assert len(rec.events) == 1 and manager.stats.events_by_handler["rec"] == 1
    off = ObservabilityManager(ObservabilityConfig(enabled=False))
    off.register_handler(rec)
    off.observe_event(session_end("s1"))
    assert len(rec.events) == 1
    with pytest.raises(TypeError, match="ObservabilityConfig"):
        ObservabilityManager({"enabled": True})
