"""`llmgine-otel doctor`: effective configuration, and a plain-words endpoint check."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from llmgine_otel.cli import main
from llmgine_otel.cli.doctor import check_endpoint


class _Trace(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, token: str | None = None) -> None:
        self.token = token

    def Export(self, request, context):
        if self.token is not None:
            md = dict(context.invocation_metadata())
            if md.get("authorization") != f"Bearer {self.token}":
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
        return trace_service_pb2.ExportTraceServiceResponse()


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def Export(self, request, context):
        return logs_service_pb2.ExportLogsServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def Export(self, request, context):
        return metrics_service_pb2.ExportMetricsServiceResponse()


def _serve(token: str | None = None, traces_only: bool = False) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Trace(token), server)
    if not traces_only:
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.fixture
def live() -> Iterator[int]:
    server, port = _serve()
    yield port
    server.stop(0)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_live_endpoint_answers(live: int) -> None:
    ok, sentence = check_endpoint(f"http://127.0.0.1:{live}")
    assert ok, sentence
    assert "answered" in sentence


def test_refused_endpoint_says_what_to_fix() -> None:
    ok, sentence = check_endpoint(f"http://127.0.0.1:{_closed_port()}")
    assert not ok
    assert "nothing listens" in sentence and "collector run" in sentence


def test_blackhole_endpoint_is_bounded_and_explained() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        ok, sentence = check_endpoint(f"http://127.0.0.1:{port}", timeout_s=1.0)
    finally:
        stop.set()
        t.join()
        for c in accepted:
            c.close()
        listener.close()
    assert not ok
    assert "no OTLP answer" in sentence


def test_wrong_token_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    server, port = _serve(token="right")
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer wrong")
        ok, sentence = check_endpoint(f"http://127.0.0.1:{port}")
        assert not ok and "credentials" in sentence and "UNAUTHENTICATED" in sentence
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer right")
        assert check_endpoint(f"http://127.0.0.1:{port}")[0]
    finally:
        server.stop(0)


def test_doctor_prints_effective_config_and_exit_codes(
        live: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{live}")
    monkeypatch.setenv("LLMGINE_OBSERVABILITY_QUEUE_SIZE", "4096")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    monkeypatch.setenv("LLMGINE_OTEL_TRACE_PER", "session")
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"OTLP gRPC to http://127.0.0.1:{live}" in out
    assert re.search(r"trace per +session", out)
    assert "4096" in out and "SPAN_ONLY" in out and "check: OK" in out
    assert "(LLMGINE_OBSERVABILITY_QUEUE_SIZE)" in out  # where each value came from
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    assert main(["doctor"]) == 1
    assert "PROBLEM" in capsys.readouterr().out


def test_doctor_reports_invalid_configuration(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LLMGINE_OBSERVABILITY_SAMPLE_RATE", "2.0")
    assert main(["doctor"]) == 2
    out = capsys.readouterr().out
    assert "LLMGINE_OBSERVABILITY_SAMPLE_RATE" in out and "between 0.0 and 1.0" in out


def test_doctor_embedded_default_checks_folder_without_creating_it(
        tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for k in list(os.environ):
        if k.startswith("OTEL_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("LLMGINE_OTEL_DIR", str(tmp_path / "t" / "u"))
    monkeypatch.chdir(tmp_path)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "OTLP-JSON lines in" in out and "will be created" in out
    assert list(tmp_path.iterdir()) == []  # nothing created
    (tmp_path / "t" / "u").mkdir(parents=True)
    assert main(["doctor"]) == 0
    assert "is writable" in capsys.readouterr().out
    assert list((tmp_path / "t" / "u").iterdir()) == []


def test_an_endpoint_without_the_logs_service_is_named(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    server, port = _serve(traces_only=True)
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        assert main(["doctor", "--json"]) == 1
        report = json.loads(capsys.readouterr().out)
        by_signal = {c["signal"]: c for c in report["checks"]}
        assert by_signal["traces"]["ok"] and not by_signal["logs"]["ok"]
        assert "no OTLP logs service" in by_signal["logs"]["message"]
        monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
        assert main(["doctor", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert [c["signal"] for c in report["checks"]] == ["traces"]
        assert report["signals"]["logs"]["exporters"] == {
            "value": [], "source": "OTEL_LOGS_EXPORTER", "text": "none"}
    finally:
        server.stop(0)


def test_doctor_json_says_where_values_come_from(
        live: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for k in list(os.environ):
        if k.startswith(("OTEL_", "LLMGINE_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "7")
    assert main(["doctor", "--json", "--endpoint", f"http://127.0.0.1:{live}"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["ok"] and r["configuration"]["valid"]
    assert r["settings"]["service.name"] == {"value": "from-attrs",
                                             "source": "OTEL_RESOURCE_ATTRIBUTES"}
    assert r["settings"]["queue size (per signal)"] == {"value": 10000, "source": "default"}
    t = r["signals"]["traces"]
    assert t["endpoint"] == {"value": f"http://127.0.0.1:{live}", "source": "argument"}
    assert t["protocol"] == {"value": "grpc", "source": "default"}
    assert t["options"]["timeout"] == {"value": 7.0, "source": "OTEL_EXPORTER_OTLP_TIMEOUT"}


def test_doctor_json_reports_an_invalid_configuration(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaegr")
    assert main(["doctor", "--json"]) == 2
    r = json.loads(capsys.readouterr().out)
    assert not r["ok"] and "OTEL_TRACES_EXPORTER" in r["configuration"]["error"]


def test_doctor_shows_the_disk_buffer_size_and_age(
        live: int, tmp_path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import time

    from llmgine_otel.buffer import DiskBuffer
    from llmgine_otel.self_stats import SelfStats

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{live}")
    monkeypatch.setenv("LLMGINE_OTEL_BUFFER_DIR", str(tmp_path / "buf"))
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'buf'}, up to 256 MiB, 24 h" in out and "disk buffer now: empty" in out
    buf = DiskBuffer(tmp_path / "buf", max_bytes=1 << 20, max_age_s=3600, stats=SelfStats())
    buf.write("spans", b"s" * 300_000, 256, time.time_ns() - 300 * 10**9)
    buf.write("logs", b"l" * 224_288, 100, time.time_ns())
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "0.5 MiB in 2 batches (256 spans, 100 logs), oldest 5 min old" in out, out
    assert "1 process(es) using it" in out
    monkeypatch.setenv("LLMGINE_OTEL_BUFFER", "false")
    assert main(["doctor"]) == 0
    assert "off (LLMGINE_OTEL_BUFFER=false)" in capsys.readouterr().out
