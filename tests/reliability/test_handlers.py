"""A slow async observability handler on the real llmgine bus cannot pile up: at most
``max_in_flight`` of its calls run at once, each is cancelled after the timeout, both are
counted, and ``bus.publish`` never waits for it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

pytest.importorskip("llmgine.bus.bus")

from llmgine.bus.session import SessionEndEvent, SessionStartEvent

from llmgine_otel.manager import AsyncObservabilityHandler, ObservabilityManager
from reliability.conftest import record_figures

pytestmark = [pytest.mark.llmgine, pytest.mark.timeout(120)]

EVENTS, BOUND, TIMEOUT = 2_000, 50, 0.3


class SlowSink(AsyncObservabilityHandler):
    """Sends each event somewhere that never answers (sleeps far past the timeout)."""

    name = "slow_sink"

    def __init__(self) -> None:
        self.running = self.most = self.started = 0

    async def ahandle(self, event: Any) -> None:
        self.started += 1
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(3600)
        finally:
            self.running -= 1


async def test_slow_async_handler_on_the_real_bus() -> None:
    from llmgine.bus.bus import MessageBus

    manager = ObservabilityManager(max_in_flight=BOUND, handler_timeout_s=TIMEOUT)
    sink = SlowSink()
    manager.register_handler(sink)
    MessageBus._instance = None
    bus = MessageBus(observability=manager)
    await bus.start()
    try:
        worst, most_tasks = 0.0, 0
        t_start = time.monotonic()
        for i in range(EVENTS // 2):
            sid = f"h-{i}"
            for ev in (SessionStartEvent(session_id=sid), SessionEndEvent(session_id=sid)):
                t0 = time.perf_counter()
                await bus.publish(ev, await_processing=False)
                worst = max(worst, time.perf_counter() - t0)
                most_tasks = max(most_tasks, len(manager._tasks))
            if i % 100 == 0:
                await asyncio.sleep(0.05)  # let time pass: timed-out calls free their slots
        published_in = time.monotonic() - t_start
        await manager.drain()
    finally:
        await bus.stop()
        MessageBus._instance = None
    dropped = manager.stats.handler_dropped
    assert sink.most <= BOUND and most_tasks <= BOUND, (sink.most, most_tasks)
    assert dropped[("slow_sink", "timeout")] == sink.started  # every call it got timed out
    assert sink.started + dropped[("slow_sink", "in_flight_limit")] == EVENTS
    assert sink.started > BOUND  # slots came back after each timeout
    assert manager.in_flight(sink) == 0 and sink.running == 0
    assert worst < 0.05, worst  # publish never waited for the handler
    record_figures("slow_async_handler", events=EVENTS, bound=BOUND, timeout_s=TIMEOUT,
                   published_in_s=round(published_in, 2), started=sink.started,
                   most_at_once=sink.most, most_tasks=most_tasks,
                   in_flight_limit=dropped[("slow_sink", "in_flight_limit")],
                   timeouts=dropped[("slow_sink", "timeout")],
                   worst_publish_ms=round(worst * 1e3, 2))
