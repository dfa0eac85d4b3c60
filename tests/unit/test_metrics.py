"""GenAI metrics with the semconv buckets, and the self-metrics in prometheus_text()."""

from __future__ import annotations

import re
from typing import Any

from otel_kit import (
    command_result,
    command_started,
    full_queue_drops,
    llm_finished,
    llm_started,
    session_start,
    tool_result,
)

from llmgine_otel.metrics import prometheus_text

TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864]
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92]


def _points(tel, name):
    data = tel.metric_reader.get_metrics_data()
    return [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
            if m.name == name for p in m.data.data_points]


def test_genai_histograms_with_spec_buckets(pipeline):
    tel, gate, _, _ = pipeline(queue_size=1000)
    gate.open.set()
    for e in (session_start("s1", 0), command_started("s1", "c1", 1),
              llm_started("s1", "L1", 1.0, model="gpt-4o", provider="openai",
                          server_address="api.openai.com", server_port=443),
              llm_finished("s1", "L1", 1.5, input_tokens=120, output_tokens=30,
                           response_model="gpt-4o-2024-08-06"),
              llm_started("s1", "L2", 2.0, model="gpt-4o", provider="openai"),
              llm_finished("s1", "L2", 2.25, error=TimeoutError("slow")),
              tool_result("s1", "t1", 2.5), command_result("s1", "c1", 3)):
        tel.observe_event(e)
    tel.force_flush()  # histograms are recorded from spans on the export thread
    usage = _points(tel, "gen_ai.client.token.usage")
    assert {p.attributes["gen_ai.token.type"]: p.sum for p in usage} == {"input": 120,
                                                                          "output": 30}
    for p in usage:
        assert list(p.explicit_bounds) == TOKEN_BUCKETS
        assert p.attributes["gen_ai.operation.name"] == "chat"
        assert p.attributes["gen_ai.provider.name"] == "openai"
        assert p.attributes["gen_ai.request.model"] == "gpt-4o"
    duration = _points(tel, "gen_ai.client.operation.duration")
    assert len(duration) == 2
    by_error = {p.attributes.get("error.type"): p for p in duration}
    assert by_error[None].sum == 0.5 and by_error["TimeoutError"].sum == 0.25
    # The conventions' recommended attributes, carried from the span when known.
    for p in (*usage, by_error[None]):
        assert p.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
        assert p.attributes["server.address"] == "api.openai.com"
        assert p.attributes["server.port"] == 443
    assert "server.address" not in by_error["TimeoutError"].attributes  # L2 gave none
    for p in duration:
        assert list(p.explicit_bounds) == DURATION_BUCKETS
    (tool,) = _points(tel, "llmgine.tool.duration")
    assert dict(tool.attributes) == {"gen_ai.tool.name": "get_weather"}
    assert list(tool.explicit_bounds) == DURATION_BUCKETS
    assert not [p for p in duration if p.attributes.get("gen_ai.operation.name")
                == "execute_tool"]  # tools are not GenAI client operations here
    (cmd,) = _points(tel, "llmgine.command.duration")
    assert cmd.sum == 2.0 and list(cmd.explicit_bounds) == DURATION_BUCKETS


def test_prometheus_text_has_self_metrics(pipeline):
    tel, gate, _, _ = pipeline(queue_size=2)
    tel.manager.register_handler(type("Broken", (), {
        "name": "broken", "handle": lambda self, e: 1 / 0})())
    for i in range(20):
        tel.observe_event(command_started("BUS", f"c{i}", 1))
        tel.observe_event(command_result("BUS", f"c{i}", 2))
    samples = _samples(tel.prometheus_text())
    handler = "llmgine_observability_handler_name"  # namespaced: conventions/registry
    assert samples[("llmgine_observability_events_total", (handler, "otel"))] == 40
    assert samples[("llmgine_observability_events_total", (handler, "broken"))] == 40
    assert samples[("llmgine_observability_handler_errors_total", (handler, "broken"))] == 40
    assert samples[("llmgine_observability_handler_duration_seconds_total",
                    (handler, "otel"))] > 0
    dropped = [v for (name, *labels), v in samples.items()
               if name == "llmgine_observability_dropped_total"
               and ("llmgine_observability_drop_reason",
                    f"queue_full_{full_queue_drops('drop_oldest')}") in labels]
    assert dropped and sum(dropped) > 0
    assert samples[("llmgine_observability_queue_size",
                    ("llmgine_observability_signal", "spans"))] <= 2
    assert not any(n.startswith("gen_ai_client_operation_duration") for n, *_ in samples)
    gate.open.set()
    tel.force_flush()
    samples = _samples(tel.prometheus_text())
    assert not any(n.startswith("gen_ai_client_operation_duration") for n, *_ in samples)
    exported = tel.stats.exported["spans"]  # command durations come from exported spans
    assert 0 < exported < 20
    assert samples[("llmgine_command_duration_seconds_bucket", ("le", "+Inf"),
                    ("llmgine_command_type", "Command"))] == exported
    assert samples[("llmgine_command_duration_seconds_count",
                    ("llmgine_command_type", "Command"))] == exported


def _samples(text: str) -> dict[tuple[Any, ...], float]:
    """Every sample, parsed by prometheus_client's parser: (name, *sorted labels without
    otel_scope_name) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert s.labels.pop("otel_scope_name") == "llmgine_otel"
            out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


def test_prometheus_text_of_nothing():
    assert prometheus_text(None) == ""


def test_configure_sets_the_bucket_views(tmp_path):
    from llmgine_otel import configure

    tel = configure(set_global=False, console=False, output_dir=tmp_path, emit_logs=False)
    try:
        tel.observe_event(llm_started("s1", "L1", 1.0))
        tel.observe_event(llm_finished("s1", "L1", 1.5, input_tokens=7, output_tokens=9))
        tel.force_flush()
        (duration,) = _points(tel, "gen_ai.client.operation.duration")
        assert list(duration.explicit_bounds) == DURATION_BUCKETS
        for p in _points(tel, "gen_ai.client.token.usage"):
            assert list(p.explicit_bounds) == TOKEN_BUCKETS
    finally:
        assert tel.shutdown().seconds < 5


def test_one_metric_reader_serves_export_and_prometheus_text(tmp_path):
    """Every reader aggregates every record, so configure() registers one: the periodic
    exporting reader, which prometheus_text() pulls from without exporting."""
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    from llmgine_otel import configure
    from llmgine_otel.metrics import PullableReader

    tel = configure(set_global=False, output_dir=tmp_path, console=False)
    try:
        readers = tel.meter_provider._metric_readers
        assert len(readers) == 1 and isinstance(readers[0], PeriodicExportingMetricReader)
        assert isinstance(tel.metric_reader, PullableReader)
        exported = []
        real = readers[0]._exporter.export
        readers[0]._exporter.export = lambda data, **kw: exported.append(data) or real(data, **kw)
        for e in (session_start("s1", 0), command_started("s1", "c1", 1),
                  llm_started("s1", "L1", 1.0, model="gpt-4o", provider="openai"),
                  llm_finished("s1", "L1", 1.5, input_tokens=7, output_tokens=3),
                  command_result("s1", "c1", 3)):
            tel.observe_event(e)
        tel.force_flush()
        text = tel.prometheus_text()
        assert re.search(r'gen_ai_client_token_usage_sum\{[^}]*gen_ai_token_type="input"[^}]*\} 7',
                         text), text
        assert tel.prometheus_text() == text  # cumulative: pulling twice changes nothing
        assert exported == []  # pulls never export
    finally:
        tel.shutdown()


def test_delta_temporality_keeps_a_second_reader():
    from opentelemetry.sdk.metrics import Histogram
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )

    from llmgine_otel.metrics import PullableReader

    delta = PeriodicExportingMetricReader(ConsoleMetricExporter(
        preferred_temporality={Histogram: AggregationTemporality.DELTA}),
        export_interval_millis=10**9)
    cumulative = PeriodicExportingMetricReader(ConsoleMetricExporter(),
                                               export_interval_millis=10**9)
    try:
        assert PullableReader.for_(delta) is None
        assert PullableReader.for_(cumulative) is not None
    finally:
        delta.shutdown()
        cumulative.shutdown()


def test_shutdown_exports_the_metrics_of_spans_flushed_at_shutdown(tmp_path, monkeypatch):
    """The GenAI histograms are recorded when a span batch is exported, so the spans still
    queued at shutdown must reach their exporter before the meter provider's last export:
    a slow span export thread (here: recording takes 0.3 s) still gets its LLM call into the
    final metrics."""
    import time

    from llmgine_otel import configure
    from llmgine_otel.metrics import SpanMetrics

    real_record = SpanMetrics.record

    def slow_record(self, spans):
        time.sleep(0.3)
        real_record(self, spans)

    monkeypatch.setattr(SpanMetrics, "record", slow_record)
    tel = configure(set_global=False, output_dir=tmp_path, console=False)
    exporter = tel.meter_provider._metric_readers[0]._exporter
    exported = []
    real = exporter.export
    exporter.export = lambda data, **kw: exported.append(data) or real(data, **kw)
    for e in (session_start("s1", 0), command_started("s1", "c1", 1),
              llm_started("s1", "L1", 1.0, model="gpt-4o", provider="openai"),
              llm_finished("s1", "L1", 1.5, input_tokens=7, output_tokens=3),
              command_result("s1", "c1", 3)):
        tel.observe_event(e)
    report = tel.shutdown(timeout_s=5)
    assert report.completed, report
    names = {m.name for data in exported for rm in data.resource_metrics
             for sm in rm.scope_metrics for m in sm.metrics}
    assert "gen_ai.client.token.usage" in names, names
