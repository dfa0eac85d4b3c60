"""The OTLP/HTTP exporters with the direct encoder, against an in-process HTTP server: they
send what the SDK's exporters send (same message, same headers and compression), retry with
the same bytes, and fall back to the SDK's exporters on an untested release. (Against the
real Collector: tests/e2e/test_otel_switches.py.)"""

from __future__ import annotations

import gzip
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as pb_encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as pb_encode_spans
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExportResult

from llmgine_otel import fast_paths
from llmgine_otel import otlp_proto as op
from llmgine_otel.exporters import otlp_http
from llmgine_otel.exporters.otlp_http import (
    FastHTTPLogExporter,
    FastHTTPSpanExporter,
    http_exporter,
    session_for,
)

from ._util import sdk_logs, sdk_spans


class _Receiver:
    """An OTLP/HTTP receiver on 127.0.0.1 recording (path, headers, body); the first
    ``fail_first`` requests get 503."""

    def __init__(self, fail_first: int = 0) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, dict(self.headers), body))
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    self.send_response(503)
                    self.send_header("Retry-After", "0")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def bodies(self, path: str) -> list[bytes]:
        out = []
        for p, headers, body in self.requests:
            if p == path:
                out.append(gzip.decompress(body) if headers.get("Content-Encoding") == "gzip"
                           else body)
        return out

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver(fail_first=1)
    try:
        yield r
    finally:
        r.stop()


def test_fast_http_exporters_send_the_sdks_message_and_encode_once(
        receiver: _Receiver, monkeypatch: pytest.MonkeyPatch, fast_path: None) -> None:
    calls = []
    real = op.encode_spans
    monkeypatch.setattr(FastHTTPSpanExporter, "_encode",
                        staticmethod(lambda batch: calls.append(1) or real(batch)))
    spans, logs = sdk_spans(), sdk_logs()
    sx = http_exporter("traces", f"{receiver.url}/v1/traces")
    lx = http_exporter("logs", f"{receiver.url}/v1/logs")
    assert isinstance(sx, FastHTTPSpanExporter) and isinstance(lx, FastHTTPLogExporter)
    try:
        assert sx.export(spans) == SpanExportResult.SUCCESS  # 503 first, retried
        assert lx.export(logs).name == "SUCCESS"
    finally:
        sx.shutdown()
        lx.shutdown()
    assert len(calls) == 1, "a retry must not encode the batch again"
    traces = receiver.bodies("/v1/traces")
    assert len(traces) == 2 and traces[0] == traces[1]
    assert ExportTraceServiceRequest.FromString(traces[1]) == pb_encode_spans(spans)
    assert ExportLogsServiceRequest.FromString(receiver.bodies("/v1/logs")[0]) == \
        pb_encode_logs(logs)


def test_headers_and_compression_are_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20t0k,x-team=genai")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    spans = sdk_spans()
    got = {}
    for name, exporter in (("fast", http_exporter), ("sdk", None)):
        r = _Receiver()
        try:
            url = f"{r.url}/v1/traces"
            x = exporter("traces", url) if exporter else OTLPSpanExporter(endpoint=url)
            assert x.export(spans) == SpanExportResult.SUCCESS
            x.shutdown()
            path, headers, _ = r.requests[0]
            got[name] = ({k.lower(): v for k, v in headers.items()
                          if k.lower() in ("authorization", "x-team", "content-encoding",
                                           "content-type")},
                         ExportTraceServiceRequest.FromString(r.bodies(path)[0]))
        finally:
            r.stop()
    assert got["fast"] == got["sdk"]
    assert got["fast"][0]["authorization"] == "Bearer t0k"
    assert got["fast"][0]["content-encoding"] == "gzip"


@pytest.fixture
def fresh_decisions() -> Iterator[None]:
    fast_paths._by_version.cache_clear()
    fast_paths._reported.clear()
    yield
    fast_paths._by_version.cache_clear()
    fast_paths._reported.clear()


@pytest.mark.parametrize("how", ["untested release", "LLMGINE_OTEL_PUBLIC_PATH"])
def test_the_public_path_gets_the_sdks_own_exporters(
        how: str, receiver: _Receiver, monkeypatch: pytest.MonkeyPatch,
        fresh_decisions: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "llmgine_otel")
    if how == "untested release":
        monkeypatch.setattr(fast_paths, "_installed", lambda package: "1.46.0")
    else:
        monkeypatch.setenv(fast_paths.ENV, "true")
    sx = http_exporter("traces", f"{receiver.url}/v1/traces")
    lx = http_exporter("logs", f"{receiver.url}/v1/logs")
    assert type(sx) is OTLPSpanExporter and type(lx) is OTLPLogExporter
    assert sx.export(sdk_spans()) == SpanExportResult.SUCCESS
    sx.shutdown()
    lx.shutdown()
    assert "public API path for 'otlp_http'" in caplog.text


def test_missing_internals_fall_back_too(receiver: _Receiver,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp_http, "_NEEDED", ("_client", "_an_internal_that_moved"))
    sx = http_exporter("traces", f"{receiver.url}/v1/traces")
    assert type(sx) is OTLPSpanExporter
    sx.shutdown()


def test_the_certificate_variable_beats_requests_ca_bundle(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not used here")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    assert session_for("traces") is None  # nothing configured: the SDK's own session
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", str(ca))
    session = session_for("traces")
    assert session is not None and session_for("logs") is None
    session.verify = str(ca)  # what the SDK's transport sets from the variable
    settings = session.merge_environment_settings("https://c:4318/v1/traces", {}, None,
                                                  None, None)
    assert settings["verify"] == str(ca)
    plain = type(session).__mro__[1]()  # requests.Session: the environment wins there
    plain.verify = str(ca)
    assert plain.merge_environment_settings("https://c:4318", {}, None, None, None)[
        "verify"] != str(ca)
