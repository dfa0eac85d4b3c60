"""Metrics: the GenAI histograms and command/tool durations (derived from finished spans),
and this package's self-metrics.

Self-metrics are the counters of :class:`~llmgine_otel.self_stats.SelfStats` (plain integers
bumped on the hot path, no SDK call per event) exposed through observable instruments, so
exporting them costs nothing until a reader collects.
``prometheus_text`` (from ``llmgine_otel.prometheus``) renders every instrument for scraping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.trace import SpanProcessor

from llmgine_otel.prometheus import prometheus_text
from llmgine_otel.self_stats import SelfStats

__all__ = ["PullableReader", "SelfMetrics", "SpanMetrics", "SpanMetricsProcessor",
           "histogram_views", "prometheus_text"]

TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1, 4, 16, ... 67108864
DURATION_BUCKETS = tuple(0.01 * 2**i for i in range(14))  # 0.01 doubling to 81.92 s
CHUNK_BUCKETS = (0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def histogram_views() -> list[View]:
    """Views giving the GenAI semconv bucket boundaries to our histograms."""
    dur = ExplicitBucketHistogramAggregation(DURATION_BUCKETS)
    return [
        View(instrument_name="gen_ai.client.token.usage",
             aggregation=ExplicitBucketHistogramAggregation(TOKEN_BUCKETS)),
        View(instrument_name="gen_ai.client.operation.duration", aggregation=dur),
        View(instrument_name="llmgine.tool.duration", aggregation=dur),
        View(instrument_name="llmgine.command.duration", aggregation=dur),
        View(instrument_name="gen_ai.client.operation.time_to_first_chunk",
             aggregation=ExplicitBucketHistogramAggregation(CHUNK_BUCKETS)),
    ]


# Span attributes copied onto the metrics, per kind of span (semconv metric attributes).
_LLM_KEYS = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
             "gen_ai.response.model", "server.address", "server.port", "error.type")
_TOOL_KEYS = ("gen_ai.tool.name", "error.type")
_COMMAND_KEYS = ("llmgine.command.type", "error.type")
_NOT_INFERENCE = frozenset({"execute_tool", "invoke_agent", "create_agent", "invoke_workflow"})


class SpanMetrics:
    """The GenAI and llmgine histograms, recorded from finished spans.

    Every figure a metric needs (duration, tokens, model, error) is on the span, so metrics
    are derived on the export thread (``record``), like the Collector's spanmetrics
    connector, and cost the application's thread nothing. They describe exported spans: with
    head sampling below 1.0 they cover the sampled sessions.
    """

    def __init__(self, meter: Meter) -> None:
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}",
            description="Number of input and output tokens used.")
        self.operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s",
            description="GenAI operation duration.")
        self.time_to_first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk", unit="s",
            description="Time to receive the first chunk of a streamed response.")
        # Not gen_ai.client.operation.duration: in the conventions v1.41.0 that requires
        # gen_ai.provider.name, which a tool run by the application does not have.
        self.tool_duration = meter.create_histogram(
            "llmgine.tool.duration", unit="s", description="Tool execution duration.")
        self.command_duration = meter.create_histogram(
            "llmgine.command.duration", unit="s", description="llmgine command duration.")
        self.cost = meter.create_counter(
            "llmgine.cost", unit="USD", description="Estimated LLM cost (offline price table).")

    def record(self, spans: Iterable[Any]) -> None:
        """Record the metrics of a batch of finished spans (never raises)."""
        for span in spans:
            try:
                self._record(span)
            except Exception:  # noqa: BLE001 - metrics never fail an export
                pass

    def _record(self, span: Any) -> None:
        a = span.attributes or {}
        op = a.get("gen_ai.operation.name")
        if op is None and "llmgine.command.type" not in a:
            return
        seconds = max(0, (span.end_time or 0) - (span.start_time or 0)) / 1e9
        if op == "execute_tool":
            self.tool_duration.record(seconds, {k: a[k] for k in _TOOL_KEYS if k in a})
        elif op is not None and op not in _NOT_INFERENCE:
            attrs = {k: a[k] for k in _LLM_KEYS if k in a}
            self.operation_duration.record(seconds, attrs)
            attrs.pop("error.type", None)
            for key, token_type in (("gen_ai.usage.input_tokens", "input"),
                                    ("gen_ai.usage.output_tokens", "output")):
                n = a.get(key)
                if isinstance(n, int) and n >= 0:
                    self.token_usage.record(n, {**attrs, "gen_ai.token.type": token_type})
            ttfc = a.get("gen_ai.response.time_to_first_chunk")
            if isinstance(ttfc, float) and ttfc >= 0:  # an event's own figure may be bad
                self.time_to_first_chunk.record(ttfc, attrs)
            cost = a.get("llmgine.cost.usd")
            if isinstance(cost, float):
                self.cost.add(cost, attrs)
        elif op is None:
            self.command_duration.record(seconds, {k: a[k] for k in _COMMAND_KEYS if k in a})


class SpanMetricsProcessor(SpanProcessor):
    """A span processor recording ``SpanMetrics`` at span end (for a handler used with a
    caller's own TracerProvider; ``configure()`` records on the export thread instead)."""

    def __init__(self, metrics: SpanMetrics) -> None:
        self._metrics = metrics

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: Any) -> None:
        if span.context.trace_flags.sampled:
            self._metrics.record((span,))

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


# Self-metric attributes, namespaced and defined in conventions/registry/attributes.yaml.
_HANDLER = "llmgine.observability.handler.name"
_SIGNAL = "llmgine.observability.signal"


class SelfMetrics:
    """The package's own counters (``SelfStats``) as observable instruments."""

    def __init__(self, meter: Meter, stats: SelfStats) -> None:
        st = stats
        counters = (
            ("llmgine.observability.events", "{event}", "Events observed, per handler.",
             lambda: st.events_by_handler, (_HANDLER,)),
            ("llmgine.observability.handler.errors", "{error}",
             "Handler failures (isolated, never raised into the bus).",
             lambda: st.handler_errors, (_HANDLER,)),
            ("llmgine.observability.handler.dropped", "{event}",
             "Events an async handler did not finish: in-flight bound reached or timed out.",
             lambda: st.handler_dropped, (_HANDLER, "llmgine.observability.drop.reason")),
            ("llmgine.observability.handler.duration", "s", "Total time spent in each handler.",
             lambda: st.handler_seconds, (_HANDLER,)),
            ("llmgine.observability.dropped", "{item}",
             "Spans/log records dropped, by signal and reason.",
             lambda: st.dropped, (_SIGNAL, "llmgine.observability.drop.reason")),
            ("llmgine.observability.exported", "{item}",
             "Spans/log records accepted by the exporter.", lambda: st.exported, (_SIGNAL,)),
            ("llmgine.observability.outcomes", "{event}",
             "Out-of-order, duplicate, repaired and rejected events.",
             lambda: st.outcomes, ("llmgine.observability.outcome",)),
        )
        for name, unit, description, source, labels in counters:
            meter.create_observable_counter(name, [_observe(source, labels)], unit=unit,
                                            description=description)
        meter.create_observable_counter(
            "llmgine.observability.buffer",
            [_observe(lambda: st.buffer, (_SIGNAL, "llmgine.observability.buffer.event"))],
            unit="{item}", description="Disk buffer: items spilled, resent, adopted, expired "
            "and dropped_disk_full.")
        meter.create_observable_gauge(
            "llmgine.observability.buffer.items",
            [_observe(lambda: st.buffered, (_SIGNAL,))],
            unit="{item}", description="Items in the disk buffer, waiting to be resent.")
        for key, name, unit, text in (
                ("bytes", "llmgine.observability.buffer.size", "By", "Disk buffer size."),
                ("oldest_age_s", "llmgine.observability.buffer.age", "s",
                 "Age of the oldest batch in the disk buffer.")):
            meter.create_observable_gauge(name, [_observe(_state(st, key), ())], unit=unit,
                                          description=text)
        meter.create_observable_gauge(
            "llmgine.observability.queue.size",
            [_observe(lambda: {s: f() for s, f in st.queue_size.items()}, (_SIGNAL,))],
            unit="{item}", description="Items waiting in the export queue.")


def _state(stats: SelfStats, key: str) -> Callable[[], Mapping[Any, Any]]:
    """One unlabelled value of ``stats.buffer_state`` (nothing while there is no buffer)."""
    return lambda: {(): stats.buffer_state[key]()} if key in stats.buffer_state else {}


def _observe(source: Callable[[], Mapping[Any, Any]], labels: tuple[str, ...]
             ) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """An observable-instrument callback reading one ``SelfStats`` mapping: keys become
    ``labels`` (a tuple key fills several)."""

    def callback(_: CallbackOptions) -> Iterable[Observation]:
        out = []
        for key, value in list(source().items()):
            parts = key if isinstance(key, tuple) else (key,)
            out.append(Observation(value, dict(zip(labels, parts, strict=True))))
        return out

    return callback


class PullableReader:
    """``get_metrics_data()`` from a ``PeriodicExportingMetricReader``, without exporting.

    Every metric reader aggregates every measurement into its own storage, so a second
    reader (an ``InMemoryMetricReader`` for :func:`prometheus_text`) doubles the cost of
    each histogram record on the export thread (measured 61 vs 43 us per span). With
    cumulative temporality (the default) a collection changes nothing, so the periodic
    reader's own collection callback serves pulls too. ``for_`` returns ``None`` when that
    does not hold (delta temporality, or an SDK without the callback), and the caller keeps
    a second reader."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader

    @classmethod
    def for_(cls, reader: Any) -> PullableReader | None:
        from opentelemetry.sdk.metrics.export import AggregationTemporality

        temporality = getattr(reader, "_instrument_class_temporality", None)
        if not temporality or not hasattr(reader, "_collect") or any(
                t is not AggregationTemporality.CUMULATIVE for t in temporality.values()):
            return None
        return cls(reader)

    def get_metrics_data(self, timeout_millis: float = 10_000) -> Any:
        """The current cumulative metrics (``None`` before the reader is registered)."""
        collect = self._reader._collect
        return None if collect is None else collect(self._reader, timeout_millis=timeout_millis)
