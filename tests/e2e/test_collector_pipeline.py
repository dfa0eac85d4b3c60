"""End-to-end: OpenTelemetry Python SDK -> otelcol-llmgine -> file exporter + Jaeger v2, and
agent -> loadbalancing by trace ID -> two tail-sampling gateways.

Needs Go (the binaries are built by collector/build.sh / build-jaeger.sh on first use, cached
outside the repo). A failed build fails the test; nothing is skipped.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> import support.*

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from support.collector import (
    COLLECTOR_DIR,
    free_port,
    iter_logs,
    iter_spans,
    otlp_json_files,
    read_otlp_json_lines,
    start_collector,
    start_jaeger,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


class Sdk:
    """Tracer + logger providers exporting OTLP/gRPC (insecure) to one endpoint."""

    def __init__(self, endpoint: str, resource: Resource) -> None:
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=endpoint, insecure=True),
                schedule_delay_millis=100,
                max_queue_size=20000,
            )
        )
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(
                OTLPLogExporter(endpoint=endpoint, insecure=True),
                schedule_delay_millis=100,
                max_queue_size=20000,
            )
        )
        self.tracer = self.tracer_provider.get_tracer("llmgine-otel.e2e", "0.1.0")
        self.logger = self.logger_provider.get_logger("llmgine-otel.e2e", "0.1.0")

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()


def _hex_trace(span) -> str:
    return format(span.get_span_context().trace_id, "032x")


def _hex_span(span) -> str:
    return format(span.get_span_context().span_id, "016x")


# ------------------------------------------------------------------------------------------
# 1. SDK -> collector (otelcol.yaml) -> file + Jaeger
# ------------------------------------------------------------------------------------------


def test_sdk_to_collector_file_and_jaeger(tmp_path: Path) -> None:
    run_id = uuid.uuid4().hex
    resource = Resource.create(
        {"service.name": "llmgine-e2e", "service.version": "1.2.3", "test.run_id": run_id}
    )
    with (
        start_jaeger(tmp_path / "jaeger") as jaeger,
        start_collector(
            COLLECTOR_DIR / "otelcol.yaml",
            {"LLMGINE_OTELCOL_BACKEND_ENDPOINT": jaeger.otlp_grpc_hostport},
            workdir=tmp_path / "collector",
        ) as col,
    ):
        sdk = Sdk(col.grpc_endpoint, resource)
        expected_spans: dict[str, dict] = {}  # span_id -> expected fields
        expected_logs: list[dict] = []
        tracer, logger = sdk.tracer, sdk.logger

        with tracer.start_as_current_span("invoke_agent planner", kind=SpanKind.INTERNAL) as root:
            root.set_attribute("gen_ai.operation.name", "invoke_agent")
            root.set_attribute("gen_ai.agent.name", "planner")
            trace_id = _hex_trace(root)
            expected_spans[_hex_span(root)] = {
                "name": "invoke_agent planner",
                "parent": "",
                "attrs": {"gen_ai.agent.name": "planner"},
            }
            for i in range(3):
                with tracer.start_as_current_span(f"chat gpt-4o #{i}", kind=SpanKind.CLIENT) as llm:
                    llm.set_attributes(
                        {
                            "gen_ai.operation.name": "chat",
                            "gen_ai.provider.name": "openai",
                            "gen_ai.request.model": "gpt-4o",
                            "gen_ai.usage.input_tokens": 100 + i,
                            "gen_ai.usage.output_tokens": 7,
                            "gen_ai.response.finish_reasons": ["stop"],
                        }
                    )
                    expected_spans[_hex_span(llm)] = {
                        "name": f"chat gpt-4o #{i}",
                        "parent": _hex_span(root),
                        "attrs": {
                            "gen_ai.request.model": "gpt-4o",
                            "gen_ai.usage.input_tokens": 100 + i,
                            "gen_ai.response.finish_reasons": ["stop"],
                        },
                    }
                    logger.emit(
                        body=f"llm call {i} finished",
                        severity_number=SeverityNumber.INFO,
                        severity_text="INFO",
                        attributes={"llmgine.call_index": i},
                        event_name="gen_ai.client.inference.operation.details",
                    )
                    expected_logs.append(
                        {"body": f"llm call {i} finished", "span_id": _hex_span(llm), "index": i}
                    )
                with tracer.start_as_current_span("execute_tool search") as tool:
                    tool.set_attribute("gen_ai.tool.name", "search")
                    tool.set_status(Status(StatusCode.ERROR, "tool blew up"))
                    expected_spans[_hex_span(tool)] = {
                        "name": "execute_tool search",
                        "parent": _hex_span(root),
                        "attrs": {"gen_ai.tool.name": "search"},
                        "error": True,
                    }
        # A log outside any span.
        logger.emit(body="session ended", severity_number=SeverityNumber.WARN, severity_text="WARN")
        sdk.shutdown()

        n_spans = len(expected_spans)

        def file_complete():
            objs = list(read_otlp_json_lines(col.file_path))
            spans = [s for s in iter_spans(objs) if s.resource.get("test.run_id") == run_id]
            logs = [rec for rec in iter_logs(objs) if rec.resource.get("test.run_id") == run_id]
            return (
                (spans, logs)
                if len(spans) >= n_spans and len(logs) >= len(expected_logs) + 1
                else None
            )

        spans, logs = wait_for(
            file_complete, timeout=20, what="all spans and logs in the file exporter output"
        )

        # --- file exporter: every span, once, with parents, attributes and resource ---
        by_id = {s.span_id: s for s in spans}
        assert len(spans) == n_spans, "duplicate spans in the file output"
        assert set(by_id) == set(expected_spans)
        for sid, exp in expected_spans.items():
            s = by_id[sid]
            assert s.trace_id == trace_id
            assert s.name == exp["name"]
            assert s.parent_span_id == exp["parent"]
            for k, v in exp["attrs"].items():
                assert s.attributes[k] == v, (sid, k)
            assert s.resource["service.name"] == "llmgine-e2e"
            assert s.resource["service.version"] == "1.2.3"
            assert s.scope_name == "llmgine-otel.e2e"
            assert (s.status_code == 2) == bool(exp.get("error")), s
            assert s.end_ns >= s.start_ns > 0
        llm_kinds = {s.kind for s in spans if s.name.startswith("chat")}
        assert llm_kinds == {3}  # CLIENT

        # --- logs: bodies, attributes, trace correlation, resource ---
        assert len(logs) == len(expected_logs) + 1
        for exp in expected_logs:
            (rec,) = [r for r in logs if r.body == exp["body"]]
            assert rec.trace_id == trace_id
            assert rec.span_id == exp["span_id"]
            assert rec.attributes["llmgine.call_index"] == exp["index"]
            assert rec.event_name == "gen_ai.client.inference.operation.details"
            assert rec.severity_text == "INFO"
            assert rec.resource["service.name"] == "llmgine-e2e"
        (orphan,) = [r for r in logs if r.body == "session ended"]
        assert orphan.trace_id == "" and orphan.span_id == ""

        # --- Jaeger: the collector's OTLP exporter forwarded the same trace ---
        jtrace = jaeger.get_trace(trace_id, min_spans=n_spans, timeout=30)
        jspans = {s["spanID"]: s for s in jtrace["spans"]}
        assert set(jspans) == set(expected_spans)
        for sid, exp in expected_spans.items():
            js = jspans[sid]
            assert js["operationName"] == exp["name"]
            parents = [r["spanID"] for r in js.get("references", []) if r["refType"] == "CHILD_OF"]
            assert parents == ([exp["parent"]] if exp["parent"] else [])
            tags = {t["key"]: t["value"] for t in js.get("tags", [])}
            if "gen_ai.request.model" in exp["attrs"]:
                assert tags["gen_ai.request.model"] == "gpt-4o"
            process = jtrace["processes"][js["processID"]]
            assert process["serviceName"] == "llmgine-e2e"
        assert "llmgine-e2e" in jaeger.services()

        # The collector's own metrics endpoint answers (service.telemetry on the overridden port).
        assert "otelcol_" in col.metrics_text()

    # Context managers stopped both processes (SIGTERM, clean exit).
    assert col.proc.poll() is not None
    assert jaeger.proc.poll() is not None
    assert col.proc.returncode == 0, col.log_tail()


# ------------------------------------------------------------------------------------------
# 1b. backend outage + collector crash: the persistent queue (file_storage) delivers afterwards
# ------------------------------------------------------------------------------------------


def test_persistent_queue_survives_backend_outage_and_collector_kill(tmp_path: Path) -> None:
    backend = f"127.0.0.1:{free_port()}"  # nothing listens there yet: the backend is "down"
    run_id = uuid.uuid4().hex
    with start_collector(
        COLLECTOR_DIR / "otelcol.yaml",
        {"LLMGINE_OTELCOL_BACKEND_ENDPOINT": backend},
        workdir=tmp_path / "collector",
    ) as col:
        sdk = Sdk(
            col.grpc_endpoint,
            Resource.create({"service.name": "outage-e2e", "test.run_id": run_id}),
        )
        with sdk.tracer.start_as_current_span("invoke_agent outage") as root:
            trace_id = _hex_trace(root)
            for i in range(4):
                with sdk.tracer.start_as_current_span(f"chat m{i}") as s:
                    s.set_attribute("gen_ai.operation.name", "chat")
        sdk.shutdown()
        # The file exporter sits in the same fan-out as the backend exporter: once the spans are in
        # the file, the backend exporter has them in its persistent queue.
        wait_for(
            lambda: len([s for s in iter_spans(col.read_output()) if s.trace_id == trace_id]) == 5,
            timeout=20,
            what="spans in the file output",
        )
        time.sleep(0.5)
        col.kill()  # crash while the backend is still down
        assert col.proc.poll() is not None
        assert any(col.queue_dir.iterdir()), "no persistent queue files"

        with start_jaeger(
            tmp_path / "jaeger", {"LLMGINE_JAEGER_OTLP_GRPC_ENDPOINT": backend}
        ) as jaeger:
            col.restart()  # same ports, same queue directory
            jtrace = jaeger.get_trace(trace_id, min_spans=5, timeout=40)
            assert len(jtrace["spans"]) == 5
        assert jaeger.proc.poll() is not None
    assert col.proc.poll() is not None


# ------------------------------------------------------------------------------------------
# 1c. file exporter rotation: the reader sees rotated files too
# ------------------------------------------------------------------------------------------


def test_file_exporter_rotates_and_reader_reads_all_files(tmp_path: Path) -> None:
    n = 600
    payload = "x" * 4096  # ~2.5 MB of OTLP-JSON in total -> rotation at 1 MB
    with start_collector(
        COLLECTOR_DIR / "otelcol.yaml",
        {
            "LLMGINE_OTELCOL_FILE_MAX_MB": "1",
            "LLMGINE_OTELCOL_FILE_MAX_BACKUPS": "20",
            # One write larger than max_megabytes is rejected by the rotating writer: keep every
            # batch (100 spans x ~4.6 KB) well under 1 MB.
            "LLMGINE_OTELCOL_BATCH_SIZE": "100",
            "LLMGINE_OTELCOL_BATCH_MAX_SIZE": "100",
        },
        workdir=tmp_path / "collector",
    ) as col:
        sdk = Sdk(col.grpc_endpoint, Resource.create({"service.name": "rotation-e2e"}))
        ids = set()
        for i in range(n):
            with sdk.tracer.start_as_current_span(f"chat {i}") as sp:
                sp.set_attribute("gen_ai.input.messages", payload)
                ids.add(_hex_span(sp))
        sdk.shutdown()
        wait_for(
            lambda: ids <= {s.span_id for s in iter_spans(read_otlp_json_lines(col.file_path))},
            timeout=30,
            what="all spans in the (rotated) output",
        )
    files = otlp_json_files(col.file_path)
    assert len(files) >= 2, files
    assert files[-1] == col.file_path
    spans = list(iter_spans(read_otlp_json_lines(col.file_path)))
    assert len(spans) == n and {s.span_id for s in spans} == ids
    # A directory works as well.
    assert len(list(iter_spans(read_otlp_json_lines(col.file_path.parent)))) == n


# ------------------------------------------------------------------------------------------
# 2. agent -> loadbalancing (traceID) -> 2 gateways with tail sampling
# ------------------------------------------------------------------------------------------

SLOW_MS = 500
LOGS_PER_TRACE = 2


def _emit_traces(sdk: Sdk, n: int, rng: random.Random) -> dict[str, dict]:
    """Send n traces with explicit timestamps (no sleeping). Returns trace_id -> info."""
    tracer, logger = sdk.tracer, sdk.logger
    kinds = [
        "error",
        "slow_llm",
        "fast_llm_slow_trace",
        "slow_non_llm",
        "normal",
        "normal",
        "normal",
    ]
    out: dict[str, dict] = {}
    base = time.time_ns() - 60 * 10**9
    for i in range(n):
        kind = kinds[i % len(kinds)]
        t0 = base + i * 10**7
        root = tracer.start_span("invoke_agent assistant", start_time=t0)
        ctx = trace.set_span_in_context(root)
        n_children = rng.randint(2, 4)
        span_ids = [_hex_span(root)]
        trace_end = t0 + 50 * 10**6
        for c in range(n_children):
            cs = t0 + (c + 1) * 10**6
            if c == 0:
                llm_ms = {"slow_llm": SLOW_MS * 3, "fast_llm_slow_trace": 20}.get(kind, 30)
                child = tracer.start_span(
                    "chat gpt-4o", context=ctx, start_time=cs, kind=SpanKind.CLIENT
                )
                child.set_attribute("gen_ai.operation.name", "chat")
                child.set_attribute("gen_ai.request.model", "gpt-4o")
                ce = cs + llm_ms * 10**6
            else:
                child = tracer.start_span(f"step {c}", context=ctx, start_time=cs)
                dur_ms = (
                    SLOW_MS * 4 if kind in ("slow_non_llm", "fast_llm_slow_trace") and c == 1 else 5
                )
                ce = cs + dur_ms * 10**6
                if kind == "error" and c == n_children - 1:
                    child.set_status(Status(StatusCode.ERROR, "boom"))
            span_ids.append(_hex_span(child))
            if c == 0:
                logger.emit(
                    body=f"trace {i} llm done",
                    severity_number=SeverityNumber.INFO,
                    context=trace.set_span_in_context(child),
                )
            child.end(end_time=ce)
            trace_end = max(trace_end, ce)
        logger.emit(body=f"trace {i} done", severity_number=SeverityNumber.INFO, context=ctx)
        root.end(end_time=trace_end + 10**6)
        out[_hex_trace(root)] = {"kind": kind, "spans": set(span_ids)}
    return out


@pytest.mark.parametrize("percent", [0, 50])
def test_agent_loadbalances_whole_traces_to_tail_sampling_gateways(
    tmp_path: Path, percent: int
) -> None:
    n_traces = 210
    gw_ports = [free_port(), free_port()]
    gateway_env = {
        "LLMGINE_TAIL_DECISION_WAIT": "1s",
        "LLMGINE_TAIL_SAMPLE_PERCENT": str(percent),
        "LLMGINE_SLOW_LLM_MS": str(SLOW_MS),
    }
    gateways = []
    try:
        for g, port in enumerate(gw_ports):
            gateways.append(
                start_collector(
                    COLLECTOR_DIR / "gateway.yaml",
                    {**gateway_env, "LLMGINE_OTELCOL_GRPC_ENDPOINT": f"127.0.0.1:{port}"},
                    workdir=tmp_path / f"gw{g}",
                    name=f"gateway{g}",
                )
            )
        with start_collector(
            COLLECTOR_DIR / "agent.yaml",
            {"LLMGINE_GATEWAYS": ",".join(f"127.0.0.1:{p}" for p in gw_ports)},
            workdir=tmp_path / "agent",
            name="agent",
        ) as agent:
            run_id = uuid.uuid4().hex
            sdk = Sdk(
                agent.grpc_endpoint,
                Resource.create({"service.name": "lb-e2e", "test.run_id": run_id}),
            )
            sent = _emit_traces(sdk, n_traces, random.Random(percent))
            sdk.shutdown()
            t_sent = time.monotonic()

            must_keep = {t for t, info in sent.items() if info["kind"] in ("error", "slow_llm")}

            def gateway_view():
                per_gw = []
                for gw in gateways:
                    objs = list(read_otlp_json_lines(gw.file_path))
                    spans = [s for s in iter_spans(objs) if s.resource.get("test.run_id") == run_id]
                    logs = [r for r in iter_logs(objs) if r.resource.get("test.run_id") == run_id]
                    per_gw.append((spans, logs))
                return per_gw

            last = {"n": -1, "since": time.monotonic()}

            def settled():
                view = gateway_view()
                kept = {s.trace_id for spans, _ in view for s in spans}
                n_spans = sum(len(spans) for spans, _ in view)
                n_logs = sum(len(logs) for _, logs in view)
                now = time.monotonic()
                if n_spans != last["n"]:
                    last.update(n=n_spans, since=now)
                # decision_wait is 1s: judge once every error/slow trace and every log arrived, at
                # least 3 s after the last span was sent, and the output stopped growing for 1.5 s.
                if (
                    must_keep <= kept
                    and n_logs >= LOGS_PER_TRACE * n_traces
                    and now - t_sent > 3.0
                    and now - last["since"] > 1.5
                ):
                    return view
                return None

            wait_for(
                settled,
                timeout=40,
                what="gateways received every log and kept every error/slow trace",
            )
        # agent stopped (flushed); stop the gateways so their files are final.
        for gw in gateways:
            assert gw.stop() == 0, gw.log_tail()
        view = gateway_view()
    finally:
        for gw in gateways:
            gw.stop()

    spans_by_gw: list[dict[str, set[str]]] = []
    for spans, _ in view:
        m: dict[str, set[str]] = defaultdict(set)
        for s in spans:
            m[s.trace_id].add(s.span_id)
        spans_by_gw.append(m)

    kept = set(spans_by_gw[0]) | set(spans_by_gw[1])
    assert set(kept) <= set(sent), "unknown trace ids"
    # No trace split across gateways, and every kept trace is whole.
    assert not (set(spans_by_gw[0]) & set(spans_by_gw[1])), "a trace was split across gateways"
    for m in spans_by_gw:
        for tid, sids in m.items():
            assert sids == sent[tid]["spans"], (
                f"trace {tid} ({sent[tid]['kind']}) incomplete on its gateway"
            )
    # Load was actually balanced.
    assert spans_by_gw[0] and spans_by_gw[1], "one gateway received nothing"

    by_kind: dict[str, set[str]] = defaultdict(set)
    for tid, info in sent.items():
        by_kind[info["kind"]].add(tid)
    assert by_kind["error"] <= kept, "an ERROR trace was dropped"
    assert by_kind["slow_llm"] <= kept, "a slow-LLM trace was dropped"
    rest = set(sent) - by_kind["error"] - by_kind["slow_llm"]
    kept_rest = kept & rest
    assert len(kept) < len(sent)
    if percent == 0:
        # Exactly the policies: a slow trace whose LLM span is fast, or a slow non-LLM span,
        # is not kept.
        assert kept_rest == set(), sorted(sent[t]["kind"] for t in kept_rest)
    else:
        assert 0 < len(kept_rest) < len(rest), (len(kept_rest), len(rest))

    # Logs are routed by trace ID too: each log lands on exactly one gateway, and all logs of one
    # trace on the same gateway. NOT asserted: that it is the gateway holding the trace's spans.
    # loadbalancing v0.161.0 hashes the 16 raw trace-ID bytes for spans but the 32-char hex string
    # for logs, so logs and spans of one trace generally land on different gateways (README).
    log_gw: dict[str, int] = {}
    n_logs = 0
    for g, (_, logs) in enumerate(view):
        for rec in logs:
            n_logs += 1
            assert rec.trace_id in sent
            assert log_gw.setdefault(rec.trace_id, g) == g, "logs of one trace on two gateways"
    assert n_logs == LOGS_PER_TRACE * n_traces, "logs lost or duplicated"
    assert set(log_gw) == set(sent)

    for gw in gateways:
        assert gw.proc.poll() is not None
    assert agent.proc.poll() is not None
