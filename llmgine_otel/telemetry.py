"""Setup: one call builds the providers, the export pipeline, the translator and a manager.

Where each signal goes is what the standard variables say (:mod:`llmgine_otel.otel_env`):
OTLP over gRPC or HTTP when an endpoint is set, ``OTEL_{SIGNAL}_EXPORTER`` to choose; with
nothing set, the embedded default writes OTLP-JSON lines under ``output_dir`` (the Collector
file exporter's format) and prints a one-line summary per session. ``OTEL_SDK_DISABLED=true``
builds nothing. Shutdown is registered at exit and bounded (default 5 s) even when the
endpoint is unreachable.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from llmgine_otel import log_bridge, otel_env
from llmgine_otel import signals as stop_signals
from llmgine_otel.buffer import DiskBuffer, writable
from llmgine_otel.config import ConfigError, ObservabilityConfig
from llmgine_otel.manager import ObservabilityManager
from llmgine_otel.metrics import (
    PullableReader,
    SelfMetrics,
    SpanMetrics,
    SpanMetricsProcessor,
    histogram_views,
    prometheus_text,
)
from llmgine_otel.pipeline import (
    CountingLogExporter,
    CountingSpanExporter,
    FanoutLogExporter,
    FanoutSpanExporter,
    LogSink,
    ManagedLogProcessor,
    ManagedSpanProcessor,
    ShardedLogProcessor,
    ShardedSpanProcessor,
)
from llmgine_otel.sampling import SessionSampler
from llmgine_otel.self_stats import SelfStats
from llmgine_otel.trace_ids import PrivateIdGenerator
from llmgine_otel.translate import OTelHandler

__all__ = ["ShutdownReport", "Telemetry", "configure", "get_telemetry"]

_log = logging.getLogger("llmgine_otel")
_current: Telemetry | None = None
_current_lock = threading.Lock()


@dataclass
class ShutdownReport:
    """What shutdown achieved within its bound."""

    seconds: float
    completed: bool
    """Nothing was lost (everything delivered, or kept in the disk buffer for the next
    process) and every worker stopped within the bound."""
    undelivered: dict[str, int] = field(default_factory=dict)
    """Items lost, by signal (every drop of this process, whatever its reason)."""
    open_spans_ended: int = 0
    buffered: dict[str, int] = field(default_factory=dict)
    """Items left in the disk buffer, resent by the next process that uses it."""

    def __str__(self) -> str:
        lost = ", ".join(f"{n} {s}" for s, n in self.undelivered.items() if n) or "nothing"
        text = (f"llmgine-otel shutdown in {self.seconds:.2f}s: "
                f"{'complete' if self.completed else 'incomplete'}; undelivered: {lost}")
        if any(self.buffered.values()):
            kept = ", ".join(f"{n} {s}" for s, n in self.buffered.items() if n)
            text += f"; in the disk buffer for the next start: {kept}"
        return text


class Telemetry:
    """The configured providers, pipeline, translator (``handler``) and ``manager``."""

    def __init__(self, config: ObservabilityConfig) -> None:
        self.config = config
        self.stats = SelfStats()
        self.exports = otel_env.read(config.endpoint)
        """Where each signal goes, and why (``llmgine-otel doctor`` prints it)."""
        self.log_bridge: log_bridge.BridgeHandler | None = None
        self._shutdown_report: ShutdownReport | None = None
        self._shutdown_lock = threading.Lock()
        if self.exports.sdk_disabled.value:
            self._build_nothing()
            return
        # First, so that a port that cannot be served fails setup before any thread starts.
        self.prometheus_endpoint = self._scrape_endpoint()
        signals = self.exports.signals
        # OTEL_LOGS_EXPORTER=none: no log records at all (as LLMGINE_OTEL_LOGS=false).
        emit_logs = config.emit_logs and bool(signals["logs"].exporters.value)
        self.resource = otel_env.resource(config.service_name, config.resource_attributes)
        self.sampler = self._build_sampler()
        self.tracer_provider = TracerProvider(resource=self.resource, sampler=self.sampler,
                                              id_generator=PrivateIdGenerator(),
                                              shutdown_on_exit=False)
        self.span_processors = self._span_pipeline() if signals["traces"].exporters.value \
            else []
        if self.span_processors:
            self.tracer_provider.add_span_processor(
                self.span_processors[0] if len(self.span_processors) == 1
                else ShardedSpanProcessor(self.span_processors))
        self.log_processors: list[ManagedLogProcessor] = []
        self.logger_provider: LoggerProvider | None = None
        if emit_logs:
            self.logger_provider = LoggerProvider(resource=self.resource,
                                                  shutdown_on_exit=False)
            self.log_processors = self._log_pipeline()
            self.logger_provider.add_log_record_processor(
                self.log_processors[0] if len(self.log_processors) == 1
                else ShardedLogProcessor(self.log_processors))  # type: ignore[arg-type]
        self.metric_reader: Any = InMemoryMetricReader()
        """Where :meth:`prometheus_text` reads from (``get_metrics_data()``)."""
        self.meter_provider: MeterProvider | None = None
        if config.emit_metrics:
            readers = self._metric_readers()
            # One reader serves export and pulls, so every record is aggregated once; with
            # delta temporality (or no exporter) the in-memory reader is a second one.
            pull = PullableReader.for_(readers[0]) if readers else None
            if pull is not None:
                self.metric_reader = pull
            else:
                readers.append(self.metric_reader)
            self.meter_provider = MeterProvider(resource=self.resource, metric_readers=readers,
                                                views=histogram_views(), shutdown_on_exit=False)
            meter = self.meter_provider.get_meter("llmgine_otel")
            SelfMetrics(meter, self.stats)
            # GenAI/command/tool histograms come from the spans, on the export thread.
            span_metrics = SpanMetrics(meter)
            for sp in self.span_processors:
                sp.counting.on_batch = span_metrics.record
            if not self.span_processors:  # OTEL_TRACES_EXPORTER=none: at span end instead
                self.tracer_provider.add_span_processor(SpanMetricsProcessor(span_metrics))
        # Every shard's queue, not only the first one's.
        self.stats.queue_size["spans"] = lambda: sum(
            p.queue_length() for p in self.span_processors)
        if self.log_processors:
            self.stats.queue_size["logs"] = lambda: sum(
                p.queue_length() for p in self.log_processors)
        self.handler = OTelHandler(self.tracer_provider, self.logger_provider, None,
                                   config if emit_logs == config.emit_logs
                                   else config.with_changes(emit_logs=False),
                                   self.stats, cost=_cost_fn())
        if self.log_processors:
            self.handler.log_sink = LogSink(
                self.log_processors, self.resource,
                InstrumentationScope("llmgine_otel", _version()))
        self.manager = ObservabilityManager(self.stats,
                                            max_in_flight=config.handler_max_in_flight,
                                            handler_timeout_s=config.handler_timeout_s)
        self.manager.register_handler(self.handler)
        self.manager.set_enabled(config.enabled)
        atexit.register(self._atexit)
        if config.flush_on_signal:
            stop_signals.watch(self)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    # -- building ----------------------------------------------------------------------------
    def _scrape_endpoint(self) -> Any:
        """``LLMGINE_OTEL_PROMETHEUS_PORT``: /metrics served from a background thread."""
        if self.config.prometheus_port is None or not self.config.emit_metrics:
            return None
        from llmgine_otel.prometheus import ScrapeEndpoint

        try:
            return ScrapeEndpoint(lambda: self.metric_reader.get_metrics_data(),
                                  self.config.prometheus_host, self.config.prometheus_port)
        except OSError as exc:  # port taken, host not on this machine: a setup error
            raise ConfigError(
                f"prometheus_port (LLMGINE_OTEL_PROMETHEUS_PORT)={self.config.prometheus_port}"
                f" on {self.config.prometheus_host!r} cannot be served: {exc}; allowed: a "
                "free port on an address of this machine") from None

    def _build_sampler(self) -> Sampler:
        if os.environ.get("OTEL_TRACES_SAMPLER"):
            from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

            self.session_sampler: SessionSampler | None = None
            return _get_from_env_or_default()
        pressure = self._pressure if self.config.back_pressure_strategy == "adaptive" else None
        self.session_sampler = SessionSampler(self.config.sample_rate, pressure,
                                              stats=self.stats)
        return ParentBased(root=self.session_sampler)

    def _pressure(self) -> float:
        fills = [p.fill() for p in (*self.span_processors, *self.log_processors)]
        return max(fills) if fills else 0.0

    def _queue_per_shard(self) -> int:
        return max(1, self.config.queue_size // self.config.num_workers)

    def _span_pipeline(self) -> list[ManagedSpanProcessor]:
        out = []
        for _ in range(self.config.num_workers):
            exporter = CountingSpanExporter(self._span_exporter(), self.stats, "spans")
            out.append(ManagedSpanProcessor(exporter, self.stats,
                                            max_queue_size=self._queue_per_shard(),
                                            strategy=self._strategy()))
        return out

    def _log_pipeline(self) -> list[ManagedLogProcessor]:
        out = []
        for _ in range(self.config.num_workers):
            exporter = CountingLogExporter(self._log_exporter(), self.stats, "logs")
            out.append(ManagedLogProcessor(exporter, self.stats,
                                           max_queue_size=self._queue_per_shard(),
                                           strategy=self._strategy()))
        return out

    def _strategy(self) -> str:
        s = self.config.back_pressure_strategy
        return "drop_oldest" if s == "adaptive" else s

    def _writer(self) -> Any:
        if not hasattr(self, "_file_writer"):
            from llmgine_otel.exporters.file import RotatingJsonlWriter

            c = self.config
            self._file_writer = RotatingJsonlWriter(
                c.output_dir, max_bytes=c.file_max_bytes, max_age_s=c.file_max_age_s,
                max_backups=c.file_backups)
        return self._file_writer

    def _disk_buffer(self) -> DiskBuffer | None:
        """The disk buffer (one per Telemetry), or None: switched off, or no writable place."""
        if not hasattr(self, "_buffer"):
            self._buffer: DiskBuffer | None = None
            service = str(self.resource.attributes.get("service.name") or "")
            path = self.config.buffer_path(service).absolute()  # the app may chdir later
            if self.config.buffer and writable(path):
                self._buffer = DiskBuffer(path, max_bytes=self.config.buffer_max_bytes,
                                          max_age_s=self.config.buffer_max_age_s,
                                          stats=self.stats)
            elif self.config.buffer:
                _log.warning("llmgine-otel: %s is not writable: no disk buffer, so batches "
                             "the endpoint cannot take now are retried for one export "
                             "timeout, then dropped (counted). Set LLMGINE_OTEL_BUFFER_DIR "
                             "to a writable folder.", path)
        return self._buffer

    def _exporters(self, signal: str) -> list[Any]:
        """The exporters ``OTEL_{SIGNAL}_EXPORTER`` and the endpoints choose for ``signal``
        (one set per export worker); the embedded default is local files (and, for traces,
        the console summary)."""
        from llmgine_otel.exporters.build import exporter

        plan = self.exports.signals[signal]
        out: list[Any] = []
        for name in plan.exporters.value:
            if name != otel_env.EMBEDDED:
                out.append(self._through_buffer(plan, name) or exporter(plan, name))
                continue
            from llmgine_otel.exporters import console, file

            out.append({"traces": file.JsonlFileSpanExporter, "logs": file.JsonlFileLogExporter,
                        "metrics": file.JsonlFileMetricExporter}[signal](self._writer()))
            if signal == "traces" and self.config.console:
                out.append(console.ConsoleSummaryExporter())
        return out

    def _through_buffer(self, plan: Any, name: str) -> Any:
        """OTLP/gRPC spans and log records through the disk buffer: a Shipper, or None (then
        the plain exporter): buffer off or not writable, another exporter beside this one
        for the signal, or OTLP/HTTP (no transport for it yet)."""
        if plan.signal not in ("traces", "logs") or name != otel_env.GRPC or \
                len(plan.exporters.value) != 1:
            return None
        buffer = self._disk_buffer()
        if buffer is None:
            return None
        from llmgine_otel import otlp_proto
        from llmgine_otel.exporters.otlp import grpc_transport
        from llmgine_otel.exporters.shipper import Shipper

        transport = grpc_transport(plan)
        if plan.signal == "traces":
            return Shipper("spans", transport, otlp_proto.encode_spans, self.stats, buffer)
        return Shipper("logs", transport, otlp_proto.encode_logs, self.stats, buffer)

    def _span_exporter(self) -> Any:
        made = self._exporters("traces")
        return made[0] if len(made) == 1 else FanoutSpanExporter(*made)

    def _log_exporter(self) -> Any:
        made = self._exporters("logs")
        return made[0] if len(made) == 1 else FanoutLogExporter(*made)

    def _metric_readers(self) -> list[Any]:
        from opentelemetry.sdk.metrics.export import MetricReader

        return [m if isinstance(m, MetricReader) else PeriodicExportingMetricReader(m)
                for m in self._exporters("metrics")]

    def _build_nothing(self) -> None:
        """OTEL_SDK_DISABLED=true: no providers, pipeline, files, threads or exit hooks; the
        translator has a no-op tracer and the manager is off, so nothing is produced."""
        from opentelemetry.trace import NoOpTracerProvider

        self.prometheus_endpoint = None
        self.resource = None
        self.sampler = None  # type: ignore[assignment]
        self.session_sampler = None
        self.tracer_provider = NoOpTracerProvider()  # type: ignore[assignment]
        self.span_processors = []
        self.log_processors = []
        self.logger_provider = None
        self.meter_provider = None
        self.metric_reader = InMemoryMetricReader()
        self.handler = OTelHandler(self.tracer_provider, None, None, self.config.with_changes(
            emit_logs=False, emit_metrics=False), self.stats)
        self.manager = ObservabilityManager(self.stats)
        self.manager.register_handler(self.handler)
        self.manager.set_enabled(False)

    # -- using -------------------------------------------------------------------------------
    def set_sample_rate(self, rate: float) -> None:
        """Change the share of new sessions kept; running sessions keep their decision."""
        if self.session_sampler is None:
            raise RuntimeError("the sampler comes from OTEL_TRACES_SAMPLER; unset it to "
                               "change the session sample rate at run time")
        self.session_sampler.set_rate(rate)

    def observe_event(self, event: Any) -> None:
        """Shortcut for ``manager.observe_event``."""
        self.manager.observe_event(event)

    def prometheus_text(self) -> str:
        """All metrics (GenAI and self-metrics) in Prometheus text format."""
        if self.meter_provider is None:
            return ""
        return prometheus_text(self.metric_reader.get_metrics_data())

    def force_flush(self, timeout_s: float | None = None) -> bool:
        """Export what is queued, waiting at most ``timeout_s`` (default: shutdown bound)."""
        timeout = self.config.shutdown_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        ok = True
        for p in (*self.span_processors, *self.log_processors):
            ok = p.bounded_flush(max(0.0, deadline - time.monotonic())) and ok
        return ok

    @property
    def is_shut_down(self) -> bool:
        return self._shutdown_report is not None

    def shutdown(self, timeout_s: float | None = None) -> ShutdownReport:
        """End open spans (ERROR, reason ``shutdown``), export what is queued, stop: all
        within ``timeout_s`` (default ``shutdown_timeout_s``). Safe to call twice."""
        with self._shutdown_lock:
            if self._shutdown_report is not None:
                return self._shutdown_report
            timeout = self.config.shutdown_timeout_s if timeout_s is None else timeout_s
            t0 = time.monotonic()
            log_bridge.detach(self.log_bridge)
            ended = self.handler.end_open_spans()
            undelivered: dict[str, int] = {}
            threads = []
            results: dict[str, int] = {}

            def stop(p: Any, key: str, budget: float) -> None:
                results[key] = p.bounded_shutdown(budget)

            budget = max(0.05, timeout - (time.monotonic() - t0)) * 0.95
            for i, p in enumerate((*self.span_processors, *self.log_processors)):
                t = threading.Thread(target=stop, args=(p, f"{p.signal}:{i}", budget),
                                     daemon=True)
                t.start()
                threads.append(t)
            if self.prometheus_endpoint is not None:
                self.prometheus_endpoint.stop(budget)
            if self.meter_provider is not None:
                # After the span pipelines: the GenAI histograms are recorded as span batches
                # are exported, so the last metric export must come after the last span batch.
                mt = threading.Thread(target=self._stop_metrics_after,
                                      args=(tuple(threads), budget), daemon=True)
                mt.start()
                threads.append(mt)
            for t in threads:
                t.join(max(0.0, timeout - (time.monotonic() - t0)))
            left = 0
            for key, n in results.items():
                left += n
                undelivered.setdefault(key.split(":")[0], 0)
            # Everything produced but not exported: still queued at the deadline, failed
            # exports (e.g. endpoint refusing connections), queue overflow.
            for sig in undelivered:
                undelivered[sig] = self.stats.dropped_total(sig)
            completed = (all(not t.is_alive() for t in threads) and not left
                         and not any(undelivered.values()))
            writer = getattr(self, "_file_writer", None)
            if writer is not None:
                try:
                    writer.close()
                except Exception:  # noqa: BLE001
                    completed = False
            buffered = self._close_buffer()
            report = ShutdownReport(time.monotonic() - t0, completed, undelivered, ended,
                                    buffered)
            self._shutdown_report = report
            stop_signals.forget(self)
            if not completed or any(undelivered.values()):
                _log.warning("%s", report)
            return report

    def _stop_metrics_after(self, pipelines: tuple[threading.Thread, ...],
                            budget: float) -> None:
        """Stop the meter provider once the span and log pipelines have stopped, waiting for
        them at most half the budget (the other half is the metrics' own export)."""
        deadline = time.monotonic() + budget
        for t in pipelines:
            t.join(max(0.0, deadline - budget / 2 - time.monotonic()))
        self._stop_metrics(max(0.05, deadline - time.monotonic()))

    def _stop_metrics(self, budget: float) -> None:
        try:
            self.meter_provider.shutdown(timeout_millis=budget * 1000)  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001
            pass

    def _atexit(self) -> None:
        try:
            self.shutdown()
        except RuntimeError:
            # Python 3.12 forbids new threads at exit ("can't create new thread at
            # interpreter shutdown"), which shutdown() uses: stop on this thread instead.
            try:
                self._shutdown_on_this_thread()
            except Exception:  # noqa: BLE001 - never fail interpreter exit
                pass
        except Exception:  # noqa: BLE001 - never fail interpreter exit
            pass

    def _shutdown_on_this_thread(self) -> None:
        """Thread-free shutdown for interpreter exit, bounded by the SDK's own worker join."""
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        log_bridge.detach(self.log_bridge)
        self.handler.end_open_spans()
        for p in (*self.span_processors, *self.log_processors):
            left = max(0.05, deadline - time.monotonic())
            p._batch_processor.shutdown(timeout_millis=left * 1000)
        if self.prometheus_endpoint is not None:
            self.prometheus_endpoint.stop(max(0.05, deadline - time.monotonic()))
        if self.meter_provider is not None:
            self._stop_metrics(max(0.05, deadline - time.monotonic()))
        writer = getattr(self, "_file_writer", None)
        if writer is not None:
            writer.close()
        self._close_buffer()

    def _close_buffer(self) -> dict[str, int]:
        """Release the disk buffer; the items left on it (for the next process)."""
        buffer = getattr(self, "_buffer", None)
        if buffer is None:
            return {}
        buffer.close()
        with self.stats.lock:
            return {s: self.stats.buffered[s] for s in ("spans", "logs") if self.stats.buffered[s]}

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's open spans and counts (the SDK clears
        its queues itself), so nothing is exported twice."""
        self.handler.table.drain()
        fresh = SelfStats()
        fresh.queue_size = self.stats.queue_size
        for name in ("events_by_handler", "handler_errors", "handler_seconds", "outcomes",
                     "produced", "exported", "dropped", "buffer", "buffered"):
            getattr(self.stats, name).clear()
        self.stats.lock = fresh.lock


def _version() -> str:
    from llmgine_otel import __version__

    return __version__


def _cost_fn() -> Any:
    """The translator's price lookup; the table loads in the background from now on."""
    from llmgine_otel.cost import estimate_cost_if_ready, warm_up

    warm_up()
    return estimate_cost_if_ready


def configure(config: ObservabilityConfig | None = None, *, set_global: bool = True,
              **overrides: Any) -> Telemetry:
    """Build telemetry from ``config`` (default: the environment) plus ``overrides``.

    Raises :class:`ConfigError` for bad settings. With ``set_global`` the providers become
    the OpenTelemetry globals where the app has not set its own (so other instrumentation
    shares them), the app's Python logging joins the trace (:mod:`llmgine_otel.log_bridge`,
    unless ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=false``), and this Telemetry
    becomes the one :func:`get_telemetry` returns.
    """
    if config is None:
        config = ObservabilityConfig.from_env(**overrides)
    elif overrides:
        config = config.with_changes(**overrides)
    tel = Telemetry(config)
    if set_global:
        if not tel.exports.sdk_disabled.value:
            _set_globals(tel)
            if tel.exports.log_bridge.value and tel.logger_provider is not None:
                tel.log_bridge = log_bridge.attach(tel.logger_provider)
        _set_current(tel)
    return tel


def _set_current(tel: Any) -> None:
    """Make ``tel`` the one :func:`get_telemetry` returns (also borrowed telemetry)."""
    global _current
    with _current_lock:
        _current = tel


def get_telemetry() -> Telemetry | None:
    """The Telemetry made by the last global :func:`configure` (or the telemetry on the app's
    providers that ``LLMgineInstrumentor().instrument()`` made), if any."""
    return _current


def _set_globals(tel: Telemetry) -> None:
    """Set each OpenTelemetry global the app has not set. The API allows one set per global
    (a second is refused with a warning), so an app's own providers are left alone."""
    from opentelemetry import _logs, metrics, trace

    from llmgine_otel.providers import app_providers

    app_tp, app_lp, app_mp = app_providers()
    kept = []
    setters: tuple[tuple[Any, Any, Any, str], ...] = (
        (tel.tracer_provider, app_tp, trace.set_tracer_provider, "tracer"),
        (tel.logger_provider, app_lp, _logs.set_logger_provider, "logger"),
        (tel.meter_provider, app_mp, metrics.set_meter_provider, "meter"))
    for mine, theirs, setter, what in setters:
        if mine is None:
            continue
        if theirs is None:
            setter(mine)
        elif theirs is not mine:
            kept.append(what)
    if kept:
        _log.info("llmgine_otel: the app already set the global %s provider(s); llmgine "
                  "telemetry runs on its own pipeline beside them. To put it on the app's "
                  "providers instead, call LLMgineInstrumentor().instrument() without "
                  "configure(), or pass tracer_provider=...", "/".join(kept))
