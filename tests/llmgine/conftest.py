"""Fixtures for the real-llmgine tests (Python 3.12 with llmgine 0.0.1 installed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from llmgine_kit import Otel, fresh_bus


@pytest.fixture
def otel() -> Iterator[Otel]:
    """In-memory telemetry, fed by the instrumentor for the duration of the test."""
    pytest.importorskip("llmgine.bus.bus")
    from llmgine_otel.instrument import LLMgineInstrumentor

    o = Otel()
    inst = LLMgineInstrumentor()
    if inst.is_instrumented_by_opentelemetry:
        inst.uninstrument()
    inst.instrument(handler=o.handler)
    yield o
    inst.uninstrument()
    o.close()


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
