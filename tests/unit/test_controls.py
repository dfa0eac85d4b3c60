"""The seed's Phase 3 controls (issue 8): each test fails if its control is ignored."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from otel_kit import (
    Harness,
    command_result,
    command_started,
    etype,
    full_queue_drops,
    llm_finished,
    llm_started,
    session_end,
    session_start,
    tool_result,
    ts,
)

from llmgine_otel.config import ConfigError, ObservabilityConfig
from llmgine_otel.events import LLMStreamChunkEvent
from llmgine_otel.telemetry import Telemetry


def _session(sid: str, *, error: bool = False) -> list[Any]:
    cid = f"{sid}-c"
    return [
        session_start(sid, 0.0), command_started(sid, cid, 0.1),
        llm_started(sid, f"{sid}-l1", 0.2), llm_finished(sid, f"{sid}-l1", 0.3, input_tokens=5),
        tool_result(sid, f"{sid}-t1", 0.35), tool_result(sid, f"{sid}-t2", 0.36, ok=not error),
        llm_started(sid, f"{sid}-l2", 0.4), llm_finished(sid, f"{sid}-l2", 0.5),
        command_result(sid, cid, 0.6, success=not error, error="ValueError: x" if error else None),
        session_end(sid, 0.7, error=ValueError("boom") if error else None),
    ]


class _SdkCalls:
    """Counts spans started (the translator's span factory) and logger.emit calls."""

    def __init__(self, h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
        self.spans = 0
        self.logs = 0
        logger = h.handler._logger
        real_start, real_emit = h.handler._start_span, logger.emit

        def start_span(*a: Any, **k: Any) -> Any:
            self.spans += 1
            return real_start(*a, **k)

        def emit(*a: Any, **k: Any) -> Any:
            self.logs += 1
            return real_emit(*a, **k)

        monkeypatch.setattr(h.handler, "_start_span", start_span)
        monkeypatch.setattr(logger, "emit", emit)


# -- 1. event-type filtering -------------------------------------------------------------------

def test_excluded_events_make_nothing_and_cost_no_sdk_calls(
        make_otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make_otel(exclude_events=("ToolManagerEvent",))  # a base class of ToolExecuteResult
    calls = _SdkCalls(h, monkeypatch)
    h.handle(*_session("s1"))
    assert not [s for s in h.spans() if s.name.startswith("execute_tool")]
    assert not [r for r in h.logs() if etype(r) == "ToolExecuteResultEvent"]
    # 7 spans (the session's start and end, a command, 2 LLM calls, 2 tools in the default
    # command trace shape) and 10 logs unfiltered, minus 2 tools
    assert (calls.spans, calls.logs) == (5, 8)
    unfiltered = make_otel()
    calls_all = _SdkCalls(unfiltered, monkeypatch)
    unfiltered.handle(*_session("s2"))
    assert (calls_all.spans, calls_all.logs) == (7, 10)
    # the filtered handler never even resolved a plan with work for the tool events
    tool_cls = type(tool_result("x"))
    assert h.handler._plans[tool_cls] is None


def test_include_list_keeps_only_named_types(make_otel: Any) -> None:
    h = make_otel(include_events=("SessionEvent",))  # base of SessionStart/SessionEnd
    h.handle(*_session("s1"))
    assert [s.name for s in h.spans()] == ["session", "session end"]
    assert {etype(r) for r in h.logs()} == {"SessionStartEvent", "SessionEndEvent"}


def test_filters_come_from_the_environment() -> None:
    cfg = ObservabilityConfig.from_env(env={
        "LLMGINE_OTEL_EXCLUDE_EVENTS": "ToolRegisterEvent, ToolCompiledEvent",
        "LLMGINE_OTEL_NO_LOG_EVENTS": "LLMCallStartedEvent",
        "LLMGINE_OTEL_LOG_SAMPLE_RATES": "ToolExecuteResultEvent=0.25"})
    assert cfg.exclude_events == ("ToolRegisterEvent", "ToolCompiledEvent")
    assert cfg.no_log_events == ("LLMCallStartedEvent",)
    assert cfg.log_sample_rates == {"ToolExecuteResultEvent": 0.25}
    with pytest.raises(ConfigError, match="LLMGINE_OTEL_LOG_SAMPLE_RATES"):
        ObservabilityConfig.from_env(env={"LLMGINE_OTEL_LOG_SAMPLE_RATES": "Tool=2"})


def test_no_log_switch_keeps_spans_but_drops_log_records(make_otel: Any) -> None:
    h = make_otel(no_log_events=("LLMCallStartedEvent", "LLMCallFinishedEvent"))
    h.handle(*_session("s1"))
    assert len([s for s in h.spans() if s.name.startswith("chat ")]) == 2
    names = [etype(r) for r in h.logs()]
    assert "LLMCallStartedEvent" not in names and "LLMCallFinishedEvent" not in names
    assert len(names) == 6


# -- 2. sampling that never splits a session ----------------------------------------------------

def test_per_event_type_log_rates_keep_errors(make_otel: Any) -> None:
    h = make_otel(log_sample_rates={"ToolExecuteResultEvent": 0.0, "SessionEndEvent": 0.0})
    h.handle(*_session("ok"), *_session("bad", error=True))
    tool_logs = [r for r in h.logs() if etype(r) == "ToolExecuteResultEvent"]
    assert len(tool_logs) == 1 and tool_logs[0].severity_text == "ERROR"  # only the failure
    ends = [r for r in h.logs() if etype(r) == "SessionEndEvent"]
    assert len(ends) == 1 and ends[0].severity_text == "ERROR"
    assert h.outcomes["log_sampled_out"] == 3 + 1  # 3 ok tools + 1 ok session end


@pytest.mark.parametrize(("trace_per", "spans"), [("command", 7), ("session", 6)])
def test_rate_change_never_splits_a_session(pipeline: Any, trace_per: str, spans: int) -> None:
    """One decision per session in both trace shapes (in the command shape the session's
    command and end traces take the decision of its start, which they link to)."""
    tel, gate, span_ex, _ = pipeline(sample_rate=1.0, trace_per=trace_per)
    gate.open.set()
    sessions = [f"s{i}" for i in range(1000)]
    events = {sid: _session(sid) for sid in sessions}
    rng = random.Random(7)
    # Start every session, change the rate while all are running, then finish them.
    for sid in sessions[:500]:
        for e in events[sid][:4]:
            tel.observe_event(e)
    tel.set_sample_rate(0.3)
    for sid in sessions[500:]:
        for e in events[sid][:4]:
            tel.observe_event(e)
    order = list(sessions)
    rng.shuffle(order)
    for sid in order:
        for e in events[sid][4:]:
            tel.observe_event(e)
    assert tel.shutdown(timeout_s=10).completed
    by_session: dict[str, int] = {}
    for s in (sp for ex in span_ex for sp in ex.got):
        sid = s.attributes.get("gen_ai.conversation.id") or s.attributes.get("llmgine.session.id")
        by_session[sid] = by_session.get(sid, 0) + 1
    assert set(by_session.values()) == {spans}, "a session was exported in part"
    first_half = sum(1 for sid in sessions[:500] if sid in by_session)
    second_half = sum(1 for sid in sessions[500:] if sid in by_session)
    assert first_half == 500  # started before the change: all kept, whole
    assert 90 <= second_half <= 210  # ~30% of the 500 started after it


def test_set_sample_rate_validates() -> None:
    tel = Telemetry(ObservabilityConfig(console=False, emit_metrics=False))
    try:
        with pytest.raises(ValueError, match=r"0\.0 to 1\.0"):
            tel.set_sample_rate(1.5)
    finally:
        tel.shutdown(timeout_s=1)


# -- 3. back-pressure strategies ----------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["drop_oldest", "drop_newest"])
def test_strategy_drops_are_counted_by_reason(pipeline: Any, strategy: str) -> None:
    tel, gate, span_ex, _ = pipeline(queue_size=50, back_pressure_strategy=strategy)
    tel.observe_event(session_start("warm", 0))
    tel.observe_event(session_end("warm", 0.1))
    assert gate.entered.wait(5)  # the exporter thread is now blocked
    for i in range(100):
        for e in _session(f"s{i}"):
            tel.observe_event(e)
    gate.open.set()
    report = tel.shutdown(timeout_s=10)
    assert report.seconds < 10
    st = tel.stats
    for signal in ("spans", "logs"):
        reason = f"{signal}:queue_full_{full_queue_drops(strategy)}"
        assert st.snapshot()["dropped"].get(reason, 0) > 0, st.snapshot()
        assert st.exported[signal] + st.dropped_total(signal) == st.produced[signal]
    kept = [s for ex in span_ex for s in ex.got]
    if full_queue_drops(strategy) == "drop_newest":  # the oldest stay: first sessions complete
        assert any(s.attributes.get("llmgine.session.id") == "s0" for s in kept)
    else:  # the newest stay
        assert any(s.attributes.get("llmgine.session.id") == "s99" for s in kept)


class _SlowSpans(SpanExporter):
    def __init__(self) -> None:
        self.delay = 0.05
        self.got = 0

    def export(self, spans: Any) -> SpanExportResult:
        time.sleep(self.delay)
        self.got += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.delay = 0


def test_adaptive_lowers_then_restores_the_session_rate(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "32")
    slow = _SlowSpans()
    monkeypatch.setattr(Telemetry, "_span_exporter", lambda self: slow)
    monkeypatch.setattr(Telemetry, "_metric_readers", lambda self: [])
    tel = Telemetry(ObservabilityConfig(console=False, emit_logs=False, queue_size=400,
                                        back_pressure_strategy="adaptive"))
    sampler = tel.session_sampler
    assert sampler is not None
    try:
        lowest = 1.0
        for i in range(400):  # a burst far faster than 32 spans / 50 ms
            for e in _session(f"b{i}"):
                tel.observe_event(e)
            lowest = min(lowest, sampler.factor)
            time.sleep(0.0005)
        assert lowest < 0.5, "adaptive never lowered the rate under pressure"
        assert tel.stats.snapshot()["dropped"].get("sessions:adaptive_sampling", 0) > 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and tel.span_processors[0].queue_length():
            time.sleep(0.05)
        for i in range(60):  # drained: new sessions raise the factor back
            tel.observe_event(session_start(f"r{i}", 0))
            tel.observe_event(session_end(f"r{i}", 0.1))
            time.sleep(0.11)
            if sampler.factor == 1.0:
                break
        assert sampler.factor == 1.0, "adaptive never restored the rate"
    finally:
        tel.shutdown(timeout_s=5)


def test_workers_shard_exports_by_trace(pipeline: Any) -> None:
    tel, gate, span_ex, log_ex = pipeline(num_workers=2)
    gate.open.set()
    assert len(tel.span_processors) == 2 and len(span_ex) == 2 and len(log_ex) == 2
    for i in range(50):
        for e in _session(f"s{i}"):
            tel.observe_event(e)
    assert tel.shutdown(timeout_s=10).completed
    traces = [{s.context.trace_id for s in ex.got} for ex in span_ex]
    assert traces[0] and traces[1] and not traces[0] & traces[1]  # both used, never split
    for i, ex in enumerate(log_ex):
        assert {r.log_record.trace_id for r in ex.got} <= traces[i]


def test_workers_out_of_range_is_rejected() -> None:
    with pytest.raises(ConfigError, match="LLMGINE_OBSERVABILITY_WORKERS"):
        ObservabilityConfig.from_env(env={"LLMGINE_OBSERVABILITY_WORKERS": "0"})


# -- 4. compression ----------------------------------------------------------------------------

def test_otlp_gzip_compression_is_configured_the_standard_way(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from grpc import Compression

    from llmgine_otel.exporters.otlp import PublicGrpcTransport

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    tel = Telemetry(ObservabilityConfig(endpoint="http://127.0.0.1:9", emit_metrics=False))
    try:
        for p in (tel.span_processors[0], tel.log_processors[0]):
            transport = p.counting.inner.transport  # the disk buffer's sender's
            if isinstance(transport, PublicGrpcTransport):
                assert transport._target.compression == "gzip"
            else:  # the fast path: on a gRPC exporter of the SDK
                assert transport._exporter._compression == Compression.Gzip
    finally:
        tel.shutdown(timeout_s=1)


def test_local_files_rotate_compress_and_view(tmp_path: Any) -> None:
    from llmgine_otel.exporters.file import RotatingJsonlWriter
    from llmgine_otel.telemetry_files import read_telemetry
    from llmgine_otel.telemetry_rows import SpanRow
    from llmgine_otel.view.model import load_traces

    cfg = ObservabilityConfig.from_env(env={"LLMGINE_OTEL_FILE_MAX_BYTES": "4096",
                                            "LLMGINE_OTEL_FILE_BACKUPS": "1000"},
                                       output_dir=tmp_path, console=False, emit_metrics=False)
    tel = Telemetry(cfg)
    assert isinstance(tel._file_writer, RotatingJsonlWriter)
    for i in range(40):
        for e in _session(f"s{i}"):
            tel.observe_event(e)
        tel.force_flush(5)
    assert tel.shutdown(timeout_s=5).completed
    gz = sorted(tmp_path.glob("*.gz"))
    assert len(gz) >= 2, sorted(p.name for p in tmp_path.iterdir())
    problems: list[str] = []
    rows = list(read_telemetry(tmp_path, on_problem=problems.append))
    assert not problems
    spans = [r for r in rows if isinstance(r, SpanRow)]
    assert len(spans) == 40 * 7 and len({s.span_id for s in spans}) == 280
    loaded = load_traces(tmp_path, on_problem=problems.append)
    # Three traces per session (its start, its command, its end), grouped by session id.
    assert len(loaded.traces) == 3 * 40 and not problems
    assert len({t.session_id for t in loaded.traces}) == 40


# -- 5. chunk aggregation ----------------------------------------------------------------------

def test_stream_chunks_fold_into_one_span(make_otel: Any) -> None:
    h = make_otel()
    sid = "s1"
    h.handle(session_start(sid, 0), llm_started(sid, "c", 1.0, stream=True))
    for i, t in enumerate((1.25, 1.3, 1.35, 1.75)):
        h.handle(LLMStreamChunkEvent(call_id="c", index=i, session_id=sid, timestamp=ts(t),
                                     content="secret words"))
    h.handle(llm_finished(sid, "c", 1.8, output_tokens=4), session_end(sid, 2))
    span = h.span("chat gpt-4o")
    a = span.attributes
    assert a["llmgine.stream.chunk_count"] == 4
    assert a["gen_ai.response.time_to_first_chunk"] == pytest.approx(0.25)
    assert a["llmgine.stream.chunk_interval.max"] == pytest.approx(0.4)
    assert a["llmgine.stream.chunk_interval.mean"] == pytest.approx(0.5 / 3)
    assert not [r for r in h.logs() if etype(r) == "LLMStreamChunkEvent"]
    assert sorted(s.name for s in h.spans()) == ["chat gpt-4o", "session", "session end"]
    ttfc = h.metrics()["gen_ai.client.operation.time_to_first_chunk"]
    assert ttfc.data.data_points[0].count == 1


def test_stream_chunk_logs_on_request(make_otel: Any) -> None:
    h = make_otel(stream_chunk_logs=True)
    h.handle(session_start("s", 0), llm_started("s", "c", 1.0))
    h.handle(LLMStreamChunkEvent(call_id="c", session_id="s", timestamp=ts(1.1),
                                 content="secret words"))
    logs = [r for r in h.logs() if etype(r) == "LLMStreamChunkEvent"]
    assert len(logs) == 1 and "secret words" not in repr(logs[0].body)  # content still off


def test_concurrent_rate_changes_are_safe(pipeline: Any) -> None:
    tel, gate, span_ex, _ = pipeline()
    gate.open.set()
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            tel.set_sample_rate(random.random())

    t = threading.Thread(target=flip)
    t.start()
    try:
        for i in range(300):
            for e in _session(f"s{i}"):
                tel.observe_event(e)
    finally:
        stop.set()
        t.join()
    assert tel.shutdown(timeout_s=10).completed
    counts: dict[str, int] = {}
    for s in (sp for ex in span_ex for sp in ex.got):
        sid = s.attributes.get("gen_ai.conversation.id") or s.attributes.get("llmgine.session.id")
        counts[sid] = counts.get(sid, 0) + 1
    assert set(counts.values()) <= {7}  # whole sessions (start, end, command, 2 LLMs, 2 tools)


def test_sdk_queue_variable_is_honoured_when_the_seed_one_is_unset() -> None:
    assert ObservabilityConfig.from_env(env={"OTEL_BSP_MAX_QUEUE_SIZE": "4096"}).queue_size == 4096
    both = {"OTEL_BSP_MAX_QUEUE_SIZE": "4096", "LLMGINE_OBSERVABILITY_QUEUE_SIZE": "128"}
    assert ObservabilityConfig.from_env(env=both).queue_size == 128
    with pytest.raises(ConfigError, match="OTEL_BSP_MAX_QUEUE_SIZE"):
        ObservabilityConfig.from_env(env={"OTEL_BSP_MAX_QUEUE_SIZE": "lots"})
