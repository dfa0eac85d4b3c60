"""`llmgine-otel doctor`: effective configuration, and a plain-words endpoint check."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
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


def _serve(token: str | None = None) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Trace(token), server)
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
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    assert main(["doctor"]) == 1
    assert "PROBLEM" in capsys.readouterr().out


def test_doctor_reports_invalid_configuration(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LLMGINE_OBSERVABILITY_SAMPLE_RATE", "2.0")
    assert main(["doctor"]) == 2
    out = capsys.readouterr().out
    assert "LLMGINE_OBSERVABILITY_SAMPLE_RATE" in out and "between 0.0 and 1.0" in out


def test_doctor_embedded_default_checks_folder(
        tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.setenv("LLMGINE_OTEL_DIR", str(tmp_path / "t"))
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "embedded default" in out and "writable" in out
