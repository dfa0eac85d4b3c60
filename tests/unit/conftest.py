"""Fixtures for the core unit tests (tests/unit only)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from otel_kit import BlockedLogs, BlockedSpans, Gate, Harness

from llmgine_otel.config import ObservabilityConfig
from llmgine_otel.telemetry import Telemetry


@pytest.fixture
def make_otel() -> Iterator[Any]:
    """``make_otel(**config)`` -> a Harness; all are closed at teardown."""
    made: list[Harness] = []

    def make(clock: Any = None, **config: Any) -> Harness:
        config.setdefault("console", False)
        h = Harness(clock=clock, **config)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


@pytest.fixture
def otel(make_otel: Any) -> Harness:
    return make_otel()


@pytest.fixture
def pipeline(monkeypatch: Any) -> Iterator[Any]:
    """``pipeline(**config)`` -> (Telemetry, Gate, span exporters, log exporters): the real
    export pipeline with exporters that block until ``gate.open`` is set."""
    made: list[Telemetry] = []
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
    monkeypatch.setenv("OTEL_BLRP_SCHEDULE_DELAY", "20")

    def build(fail_spans: bool = False, **config) -> tuple[Telemetry, Gate, list, list]:
        gate = Gate()
        span_ex, log_ex = [], []

        def spans(self):
            span_ex.append(BlockedSpans(gate, fail_spans))
            return span_ex[-1]

        def logs(self):
            log_ex.append(BlockedLogs(gate))
            return log_ex[-1]

        monkeypatch.setattr(Telemetry, "_span_exporter", spans)
        monkeypatch.setattr(Telemetry, "_log_exporter", logs)
        monkeypatch.setattr(Telemetry, "_metric_readers", lambda self: [])
        tel = Telemetry(ObservabilityConfig(console=False, **config))
        made.append(tel)
        return tel, gate, span_ex, log_ex

    yield build
    for tel in made:
        tel.shutdown(timeout_s=2)
