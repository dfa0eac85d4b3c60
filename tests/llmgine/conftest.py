"""Fixtures for the real-llmgine tests (Python 3.12 with llmgine 0.0.1 installed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from llmgine_kit import Otel, fresh_bus


@pytest.fixture
def instrumented() -> Iterator[Callable[..., Otel]]:
    """``instrumented(**config)``: in-memory telemetry with that config (e.g. ``trace_per``),
    fed by the instrumentor for the rest of the test."""
    pytest.importorskip("llmgine.bus.bus")
    from llmgine_otel.instrument import LLMgineInstrumentor

    made: list[Otel] = []
    inst = LLMgineInstrumentor()

    def make(**config: Any) -> Otel:
        assert not made, "one instrumentation per test"
        o = Otel(**config)
        if inst.is_instrumented_by_opentelemetry:
            inst.uninstrument()
        inst.instrument(handler=o.handler)
        made.append(o)
        return o

    yield make
    if made:
        inst.uninstrument()
        made[0].close()


@pytest.fixture
def otel(instrumented: Callable[..., Otel]) -> Otel:
    """In-memory telemetry (default settings), fed by the instrumentor for the test."""
    return instrumented()


@pytest.fixture
async def bus() -> AsyncIterator[Any]:
    """A fresh, started MessageBus; stopped and forgotten afterwards."""
    pytest.importorskip("llmgine.bus.bus")
    from llmgine.bus.bus import MessageBus

    b = fresh_bus()
    await b.start()
    yield b
    await b.stop()
    MessageBus._instance = None
