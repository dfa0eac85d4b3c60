"""Head sampling of whole sessions, at a rate that can change while running."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

from llmgine_otel.self_stats import SelfStats

__all__ = ["SessionSampler"]

_TRACE_ID_LIMIT = (1 << 64) - 1


class SessionSampler(Sampler):
    """Ratio sampler for new traces (sessions) whose rate can change while running.

    Used as the root of ``ParentBased``, so a change applies only to traces that start
    afterwards: a running session keeps its decision. That holds in both trace shapes: a
    root span of a session (it carries ``session.id``) with a span link, which the
    translator gives it to the session's span (``command`` shape: every command trace and
    the session's end; a session continued after eviction), takes that span's decision, so
    a session's traces are kept or dropped together. With ``pressure`` (the adaptive
    back-pressure strategy), the rate is scaled down while the export queue is above the
    high-water mark and restored once it drains below the low-water mark.
    """

    def __init__(self, rate: float, pressure: Callable[[], float] | None = None, *,
                 high_water: float = 0.8, low_water: float = 0.5, min_factor: float = 0.05,
                 clock: Callable[[], float] = time.monotonic,
                 stats: SelfStats | None = None) -> None:
        self._pressure = pressure
        self.stats = stats
        self.high_water = high_water
        self.low_water = low_water
        self.min_factor = min_factor
        self.factor = 1.0
        self._clock = clock
        self._last_adjust = 0.0
        self.set_rate(rate)

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def effective_rate(self) -> float:
        return self._rate * self.factor

    def set_rate(self, rate: float) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError(f"sample rate {rate!r} is not valid; allowed: 0.0 to 1.0")
        self._rate = float(rate)

    def _adjust(self) -> None:
        now = self._clock()
        if now - self._last_adjust < 0.1:
            return
        self._last_adjust = now
        fill = self._pressure() if self._pressure else 0.0
        if fill >= self.high_water:
            self.factor = max(self.min_factor, self.factor / 2)
        elif fill <= self.low_water and self.factor < 1.0:
            self.factor = min(1.0, self.factor * 2)

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None,
                      attributes: Any = None, links: Any = None, trace_state: Any = None
                      ) -> SamplingResult:
        if self._pressure is not None:
            self._adjust()
        if links and attributes and "session.id" in attributes:
            if links[0].context.trace_flags.sampled:
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, trace_state)
            return SamplingResult(Decision.DROP, None, trace_state)
        scale = _TRACE_ID_LIMIT + 1
        low = trace_id & _TRACE_ID_LIMIT
        if low < round(self._rate * self.factor * scale):
            # The SDK starts the span with the sampler's attributes: pass them through.
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, trace_state)
        if self.factor < 1.0 and self.stats is not None and low < round(self._rate * scale):
            # Kept by the configured rate, dropped only because the queue is under pressure.
            self.stats.drop("sessions", "adaptive_sampling")
        return SamplingResult(Decision.DROP, None, trace_state)

    def get_description(self) -> str:
        return f"SessionSampler{{rate={self._rate}, factor={self.factor}}}"
