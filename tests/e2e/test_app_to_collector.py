"""End-to-end with this package: the demo app -> bundled Collector -> file and Jaeger, the
README's "send to a collector" path as written, replay of saved files, and doctor live."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> import support.*

from support.collector import (
    COLLECTOR_DIR,
    free_port,
    iter_logs,
    iter_spans,
    read_otlp_json_lines,
    start_collector,
    start_jaeger,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "chat_demo.py"
CLI = [sys.executable, "-m", "llmgine_otel"]
# The demo's session, one trace per command (the default): its start, its end, and 2
# commands -> 3 LLM calls + 2 tool calls.
DEMO_SPANS = Counter({"session": 1, "session end": 1, "command ChatCommand": 1,
                      "command SummarizeCommand": 1, "chat gpt-4o-mini": 3,
                      "execute_tool get_weather": 1, "execute_tool get_stock_price": 1})
DEMO_TRACES = 4
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100",
               "OTEL_METRIC_EXPORT_INTERVAL": "1000", "LLMGINE_DB_URL": "sqlite://"}


def _demo_env(extra: dict[str, str], tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMGINE_"))}
    env.update(FAST_EXPORT)
    env.update(extra)
    env["LLMGINE_OTEL_DIR"] = str(tmp / "unused-local-files")
    return env


def _run_demo(env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run([sys.executable, str(DEMO)], env=env, cwd=cwd, text=True,
                          capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _check_demo_trace(spans: list[Any]) -> set[str]:
    """The demo's session: its start, its end and each command a whole, well-parented trace,
    linked to the start, every span with the session's id; returns the trace ids."""
    assert Counter(s.name for s in spans) == DEMO_SPANS
    trace_ids = {s.trace_id for s in spans}
    assert len(trace_ids) == DEMO_TRACES
    by_id = {s.span_id: s for s in spans}
    roots = [s for s in spans if not s.parent_span_id]
    assert sorted(r.name for r in roots) == [
        "command ChatCommand", "command SummarizeCommand", "session", "session end"]
    session = next(r for r in roots if r.name == "session")
    for r in roots:
        links = [lk["spanId"].lower() for lk in r.raw.get("links", [])]
        assert links == ([] if r is session else [session.span_id]), r.name
    for s in spans:
        assert s.attributes["session.id"] == "demo-session" and \
            s.attributes["user.id"] == "demo-user", s.name
        if s.parent_span_id:
            assert s.parent_span_id in by_id, f"{s.name}: parent missing"
            assert by_id[s.parent_span_id].trace_id == s.trace_id
    parent_of = {s.name: by_id[s.parent_span_id].name for s in spans if s.parent_span_id}
    assert parent_of["execute_tool get_weather"] == "command ChatCommand"
    llm = [s for s in spans if s.name == "chat gpt-4o-mini"]
    assert all(by_id[s.parent_span_id].name.startswith("command ") for s in llm)
    ok = [s for s in llm if s.attributes.get("gen_ai.usage.output_tokens")]
    assert len(ok) == 2 and all(s.attributes["gen_ai.provider.name"] == "openai" for s in ok)
    failed = {s.name for s in spans if s.status_code == 2}
    assert {"command SummarizeCommand", "execute_tool get_stock_price"} <= failed
    for s in spans:
        assert s.resource.get("service.name") == "llmgine-demo"
    return trace_ids


def test_readme_collector_path_as_written(tmp_path: Path) -> None:
    """`llmgine-otel collector run`, then the env `llmgine-otel collector env` prints, then the
    demo: every span and log record it made is in the collector's file."""
    ports = {"LLMGINE_OTELCOL_GRPC_ENDPOINT": f"localhost:{free_port()}",
             "LLMGINE_OTELCOL_HTTP_ENDPOINT": f"localhost:{free_port()}",
             "LLMGINE_OTELCOL_HEALTH_ENDPOINT": f"localhost:{free_port()}",
             "LLMGINE_OTELCOL_METRICS_PORT": str(free_port()),
             "LLMGINE_OTELCOL_PROMETHEUS_ENDPOINT": f"localhost:{free_port()}",
             "LLMGINE_OTELCOL_BACKEND_ENDPOINT": f"localhost:{free_port()}",
             "LLMGINE_OTELCOL_FILE": str(tmp_path / "col" / "otel.jsonl"),
             "LLMGINE_OTELCOL_FILE_FLUSH_INTERVAL": "200ms",
             "LLMGINE_OTELCOL_QUEUE_DIR": str(tmp_path / "col" / "queue")}
    env = {**os.environ, **ports}
    printed = subprocess.run([*CLI, "collector", "env"], env=env, text=True,
                             capture_output=True, check=True).stdout
    app_env = dict(line.removeprefix("export ").split("=", 1)
                   for line in printed.strip().splitlines())
    assert app_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == \
        f"http://{ports['LLMGINE_OTELCOL_GRPC_ENDPOINT']}"
    collector = subprocess.Popen([*CLI, "collector", "run"], env=env, cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        health = f"http://{ports['LLMGINE_OTELCOL_HEALTH_ENDPOINT']}/"

        def healthy() -> bool:
            import urllib.request
            try:
                with urllib.request.urlopen(health, timeout=1) as r:
                    return bool(r.status == 200)
            except OSError:
                return collector.poll() is not None  # died: stop waiting, fail below

        wait_for(healthy, timeout=90, what="collector health")
        assert collector.poll() is None, collector.stdout.read() if collector.stdout else ""
        out = _run_demo(_demo_env({**app_env, "OTEL_SERVICE_NAME": "llmgine-demo"}, tmp_path),
                        tmp_path)
        assert "complete; undelivered: nothing" in out, out
        path = Path(ports["LLMGINE_OTELCOL_FILE"])

        def demo_arrived() -> list[Any]:
            objs = list(read_otlp_json_lines(path)) if path.exists() else []
            spans = list(iter_spans(objs))
            return spans if len(spans) >= sum(DEMO_SPANS.values()) else []

        spans = wait_for(demo_arrived, timeout=30, what="demo spans in the collector file")
        trace_ids = _check_demo_trace(spans)
        time.sleep(1.0)  # logs are batched separately
        logs = list(iter_logs(read_otlp_json_lines(path)))
        names = Counter(lg.attributes.get("llmgine.event.type") for lg in logs)
        assert names["SessionStartEvent"] == 1 and names["SessionEndEvent"] == 1
        assert names["CommandStartedEvent"] == 2 and names["CommandResultEvent"] == 2
        assert names["LLMCallStartedEvent"] == 3 and names["LLMCallFinishedEvent"] == 3
        # The demo's tools run through ToolManager (traced by the instrumentor).
        assert names["ToolExecutionStartedEvent"] == names["ToolExecutionFinishedEvent"] == 2
        assert {lg.trace_id for lg in logs if lg.trace_id} == trace_ids
        span_ids = {s.span_id for s in spans}
        assert all(lg.span_id in span_ids for lg in logs if lg.span_id)
    finally:
        collector.terminate()
        try:
            collector.wait(15)
        except subprocess.TimeoutExpired:
            collector.kill()
            collector.wait(5)


def test_demo_through_collector_into_jaeger_and_replay(tmp_path: Path) -> None:
    """Demo -> collector -> Jaeger (query API shows the whole tree); then the collector's own
    file replayed into a second collector reproduces the spans exactly."""
    with (
        start_jaeger(tmp_path / "jaeger") as jaeger,
        start_collector(COLLECTOR_DIR / "otelcol.yaml",
                        {"LLMGINE_OTELCOL_BACKEND_ENDPOINT": jaeger.otlp_grpc_hostport},
                        workdir=tmp_path / "collector") as col,
    ):
        _run_demo(_demo_env({"OTEL_EXPORTER_OTLP_ENDPOINT": col.grpc_endpoint,
                             "OTEL_SERVICE_NAME": "llmgine-demo"}, tmp_path), tmp_path)
        want = sum(DEMO_SPANS.values())
        spans = wait_for(lambda: [s for s in iter_spans(col.read_output())]
                         if len(list(iter_spans(col.read_output()))) >= want else [],
                         timeout=30, what="demo spans")
        trace_ids = _check_demo_trace(spans)
        def in_jaeger() -> list[dict[str, Any]]:
            spans = [s for tid in sorted(trace_ids) for s in _jaeger_spans(jaeger, tid, 1)]
            return spans if len(spans) >= want else []

        got = wait_for(in_jaeger, timeout=60, what="the traces in Jaeger")
        by_id = {s["spanID"]: s for s in got}
        assert Counter(s["operationName"] for s in got) == DEMO_SPANS
        for s in got:
            refs = [r for r in s.get("references", []) if r["refType"] == "CHILD_OF"]
            if not s["operationName"].startswith(("session", "command ")):
                assert refs and refs[0]["spanID"] in by_id, s["operationName"]
        saved = col.file_path
        time.sleep(1.0)

    original = {s.span_id: s for s in iter_spans(read_otlp_json_lines(saved))}
    with start_collector(COLLECTOR_DIR / "otelcol.yaml", workdir=tmp_path / "replayed") as col2:
        proc = subprocess.run([*CLI, "replay", str(saved), "--endpoint", col2.grpc_endpoint],
                              text=True, capture_output=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        replayed = wait_for(
            lambda: {s.span_id: s for s in iter_spans(col2.read_output())}
            if len(list(iter_spans(col2.read_output()))) >= len(original) else {},
            timeout=30, what="replayed spans")
    assert replayed.keys() == original.keys()
    for sid, s in original.items():
        r = replayed[sid]
        assert (r.trace_id, r.parent_span_id, r.name, r.start_ns, r.end_ns, r.status_code) == \
            (s.trace_id, s.parent_span_id, s.name, s.start_ns, s.end_ns, s.status_code)
        assert r.attributes == s.attributes and r.resource == s.resource
        assert r.raw.get("links") == s.raw.get("links")  # a command's link to its session


def _jaeger_spans(jaeger: Any, trace_id: str, want: int) -> list[dict[str, Any]]:
    data = jaeger.get_trace(trace_id)
    if not data:
        return []
    spans = data["spans"] if "spans" in data else data.get("data", [{}])[0].get("spans", [])
    return spans if len(spans) >= want else []


def test_doctor_against_the_real_collector(tmp_path: Path) -> None:
    with start_collector(COLLECTOR_DIR / "otelcol.yaml", workdir=tmp_path / "c") as col:
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": col.grpc_endpoint}
        proc = subprocess.run([*CLI, "doctor"], env=env, text=True, capture_output=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "check: OK" in proc.stdout
        wrong = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": col.http_endpoint}  # HTTP port
        proc = subprocess.run([*CLI, "doctor", "--timeout", "2"], env=wrong, text=True,
                              capture_output=True, timeout=60, check=False)
        assert proc.returncode == 1 and "PROBLEM" in proc.stdout


def test_viewer_reads_the_collector_file(tmp_path: Path) -> None:
    """`llmgine-otel view` on what the real Collector wrote: the demo session's waterfall."""
    with start_collector(COLLECTOR_DIR / "otelcol.yaml", workdir=tmp_path / "c") as col:
        _run_demo(_demo_env({"OTEL_EXPORTER_OTLP_ENDPOINT": col.grpc_endpoint,
                             "OTEL_SERVICE_NAME": "llmgine-demo"}, tmp_path), tmp_path)
        wait_for(lambda: len(list(iter_spans(col.read_output()))) >= sum(DEMO_SPANS.values()),
                 timeout=30, what="demo spans")
        time.sleep(1.0)
        path = col.file_path
    proc = subprocess.run([*CLI, "view", str(path), "--json"], text=True,
                          capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    names = Counter(s["name"] for t in doc["traces"] for s in t["spans"])
    assert names == DEMO_SPANS
    (session,) = doc["sessions"]  # the session's four traces, together
    assert session["session_id"] == "demo-session" and len(session["trace_ids"]) == DEMO_TRACES
    assert session["commands"] == 2 and session["status"] == "ERROR"
    text = subprocess.run([*CLI, "view", str(path), "--color", "never", "--width", "100"],
                          text=True, capture_output=True, timeout=60, check=True).stdout
    assert text.startswith("session demo-session · 4 traces")
    assert "execute_tool get_stock_price" in text and "ERROR" in text
