"""Whose OpenTelemetry providers llmgine telemetry uses: the app's, or this package's own.

``LLMgineInstrumentor().instrument()`` decides with :func:`telemetry_for`:

1. ``tracer_provider=`` / ``logger_provider=`` / ``meter_provider=`` given: those (a provider
   not given is the app's global one, as in every contrib instrumentation);
2. else the telemetry :func:`llmgine_otel.configure` made, if any;
3. else, when the app already set a tracer provider as the OpenTelemetry global (its own SDK
   setup, ``logfire.configure()``, Langfuse, ``Traceloop.init()``, the SDK's configurator):
   the app's global providers, so llmgine spans join the app's pipeline and no second set of
   providers is made;
4. else this package's own pipeline (:func:`llmgine_otel.configure`).

On borrowed providers (:class:`BorrowedTelemetry`) the translator is the same (same spans,
attributes, log records, the command span current in handlers, LLM and tool spans), but the
app's processors queue and export: this package's exact drop accounting, back-pressure
strategies, export shards, session sampler (``LLMGINE_OBSERVABILITY_SAMPLE_RATE``), direct
wire encoder and log fast path exist only on its own pipeline. GenAI metrics are recorded at
span end on the app's meter provider (given, or its global SDK one); log records for bus
events go through the app's logger provider (given, or the global one, also when the app sets
it later).
"""

from __future__ import annotations

import atexit
import logging
import time
from typing import Any

from opentelemetry import _logs, metrics, trace

from llmgine_otel.config import ObservabilityConfig
from llmgine_otel.manager import ObservabilityManager
from llmgine_otel.self_stats import SelfStats
from llmgine_otel.translate import OTelHandler

__all__ = ["BorrowedTelemetry", "app_providers", "is_set", "telemetry_for"]

_log = logging.getLogger("llmgine_otel")


def is_set(provider: Any) -> bool:
    """True when ``provider`` is one an app set (not the API's stand-in for "none yet").

    The API's stand-ins are ``trace.ProxyTracerProvider`` (public) and the logger's and
    meter's ``ProxyLoggerProvider`` / ``_ProxyMeterProvider``, which the API does not export
    (they live in its ``_internal`` modules), so those two are matched by class name."""
    return provider is not None and not isinstance(provider, trace.ProxyTracerProvider) and \
        type(provider).__name__ not in ("ProxyLoggerProvider", "_ProxyMeterProvider")


def app_providers() -> tuple[Any, Any, Any]:
    """The tracer, logger and meter providers the app set as globals (None where unset)."""
    found = (trace.get_tracer_provider(), _logs.get_logger_provider(),
             metrics.get_meter_provider())
    return tuple(p if is_set(p) else None for p in found)  # type: ignore[return-value]


class BorrowedTelemetry:
    """llmgine telemetry on the app's providers: a translator (``handler``) and a
    ``manager``, nothing else of this package's pipeline."""

    def __init__(self, tracer_provider: Any = None, logger_provider: Any = None,
                 meter_provider: Any = None, config: ObservabilityConfig | None = None) -> None:
        from llmgine_otel.telemetry import _cost_fn

        self.config = config or ObservabilityConfig.from_env()
        self.stats = SelfStats()
        self.tracer_provider = tracer_provider
        self.logger_provider = logger_provider
        self.meter_provider = meter_provider
        if self.config.sample_rate != 1.0:
            _log.warning("llmgine_otel: LLMGINE_OBSERVABILITY_SAMPLE_RATE=%s has no effect on "
                         "the app's own tracer provider: its sampler decides",
                         self.config.sample_rate)
        # GenAI metrics need a span processor on the tracer provider and a meter provider;
        # the handler adds it when both are there.
        self.handler = OTelHandler(tracer_provider, logger_provider, meter_provider,
                                   self.config, self.stats, cost=_cost_fn())
        self.manager = ObservabilityManager(self.stats)
        self.manager.register_handler(self.handler)
        self.manager.set_enabled(self.config.enabled)
        self._ended = False
        # Registered after the app's providers: runs before their own exit flush, so the
        # spans of sessions still open at exit are ended (ERROR) and exported by them.
        atexit.register(self._end_open_spans)

    def _end_open_spans(self) -> int:
        if self._ended:
            return 0
        self._ended = True
        try:
            return self.handler.end_open_spans()
        except Exception:  # noqa: BLE001 - never fail interpreter exit
            return 0

    def observe_event(self, event: Any) -> None:
        self.manager.observe_event(event)

    def force_flush(self, timeout_s: float | None = None) -> bool:
        """Flush the app's providers (they export; this package cannot count drops)."""
        timeout = self.config.shutdown_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        ok = True
        for p in (self.tracer_provider or trace.get_tracer_provider(),
                  self.logger_provider or _logs.get_logger_provider(),
                  self.meter_provider):
            flush = getattr(p, "force_flush", None)
            if callable(flush):
                left = max(0.0, deadline - time.monotonic())
                try:
                    ok = bool(flush(int(left * 1000))) and ok
                except Exception:  # noqa: BLE001
                    ok = False
        return ok

    def shutdown(self, timeout_s: float | None = None) -> Any:
        """End open spans and flush; the app's providers stay up (the app shuts them down)."""
        from llmgine_otel.telemetry import ShutdownReport

        t0 = time.monotonic()
        ended = self._end_open_spans()
        ok = self.force_flush(timeout_s)
        return ShutdownReport(time.monotonic() - t0, ok, {}, ended)

    def prometheus_text(self) -> str:
        """Empty: the app's meter provider has its own readers."""
        return ""


def telemetry_for(tracer_provider: Any = None, logger_provider: Any = None,
                  meter_provider: Any = None) -> Any:
    """The telemetry ``LLMgineInstrumentor().instrument(...)`` feeds (see the module doc)."""
    from llmgine_otel import telemetry as tel_module

    given = (tracer_provider, logger_provider, meter_provider)
    if not any(p is not None for p in given):
        current = tel_module.get_telemetry()
        if current is not None:
            return current
    app = app_providers()
    if any(p is not None for p in given) or app[0] is not None:
        tp, lp, mp = (g if g is not None else a for g, a in zip(given, app, strict=True))
        borrowed = BorrowedTelemetry(tp, lp, mp)
        tel_module._set_current(borrowed)
        return borrowed
    return tel_module.configure()
