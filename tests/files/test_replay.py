"""`llmgine-otel replay` against an in-test OTLP gRPC server: exact ids, batching, failures."""

from __future__ import annotations

import argparse
import io
import socket
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from llmgine_otel.cli import replay
from llmgine_otel.exporters.file import (
    JsonlFileLogExporter,
    JsonlFileSpanExporter,
    RotatingJsonlWriter,
)
from llmgine_otel.otlp_json import decode_any
from llmgine_otel.telemetry_files import read_telemetry
from llmgine_otel.telemetry_rows import LogRow, SpanRow

from ._util import make_logs, make_spans, providers, sdk_spans


class Recorder(
    trace_service_pb2_grpc.TraceServiceServicer, logs_service_pb2_grpc.LogsServiceServicer
):
    """Records every request; optionally fails the first ``fail_first`` trace calls."""

    def __init__(self, fail_first: int = 0) -> None:
        self.traces: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.logs: list[logs_service_pb2.ExportLogsServiceRequest] = []
        self.fail_first = fail_first
        self.metadata: list[tuple[str, str]] = []

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.metadata = [(m.key, m.value) for m in context.invocation_metadata()]
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            if self.fail_first > 0:
                self.fail_first -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
            self.traces.append(request)
            return trace_service_pb2.ExportTraceServiceResponse()
        self.logs.append(request)
        return logs_service_pb2.ExportLogsServiceResponse()


@pytest.fixture
def server() -> Iterator[tuple[Recorder, int, grpc.Server]]:
    recorder = Recorder()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(recorder, srv)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(recorder, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield recorder, port, srv
    srv.stop(None)


def _write_telemetry(folder: Path, rounds: int = 1) -> None:
    writer = RotatingJsonlWriter(folder, max_bytes=4000)  # small: several rotated .gz files
    with providers(JsonlFileSpanExporter(writer), JsonlFileLogExporter(writer)) as (tp, lp):
        for _ in range(rounds):
            make_spans(tp)
            make_logs(lp, tp)


def _replay(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    parser_args = _parse(list(argv))
    code = replay.run(parser_args, stderr=err)
    return code, err.getvalue()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    replay.register(parser.add_subparsers())
    return parser.parse_args(["replay", *argv])


def test_replay_sends_exact_ids_parents_times_and_attributes(
    tmp_path: Path, server: tuple[Recorder, int, grpc.Server]
) -> None:
    recorder, port, _ = server
    _write_telemetry(tmp_path, rounds=3)
    assert any(p.name.endswith(".gz") for p in tmp_path.iterdir())
    saved = list(read_telemetry(tmp_path))
    saved_spans = {r.span_id: r for r in saved if isinstance(r, SpanRow)}
    saved_logs = [r for r in saved if isinstance(r, LogRow)]
    code, err = _replay(
        str(tmp_path), "--endpoint", f"http://127.0.0.1:{port}", "--batch-size", "4",
        "--headers", "Authorization=Bearer x,x-tenant=t1",
    )  # fmt: skip
    assert code == 0, err
    assert "18 spans, 9 logs, 0 metrics sent" in err.splitlines()[-1]
    assert ("authorization", "Bearer x") in recorder.metadata
    got: dict[str, Any] = {}
    for req in recorder.traces:
        assert 1 <= _span_count(req) <= 4
        for rs in req.resource_spans:
            resource = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
            assert resource["service.name"] == "files-test"
            for ss in rs.scope_spans:
                for span in ss.spans:
                    got[span.span_id.hex()] = (span, ss.scope.name)
    assert set(got) == set(saved_spans)
    for span_id, row in saved_spans.items():
        span, scope = got[span_id]
        assert span.trace_id.hex() == row.trace_id
        assert span.parent_span_id.hex() == row.parent_span_id
        assert span.name == row.name and span.kind == row.kind and scope == row.scope
        assert (span.start_time_unix_nano, span.end_time_unix_nano) == (row.start_ns, row.end_ns)
        attrs = {kv.key: _pb_any(kv.value) for kv in span.attributes}
        assert attrs == row.attributes
        assert span.status.code == row.status_code
    got_logs = [lr for req in recorder.logs for rl in req.resource_logs for sl in rl.scope_logs
                for lr in sl.log_records]  # fmt: skip
    assert sorted(
        (lr.observed_time_unix_nano, lr.trace_id.hex(), lr.event_name) for lr in got_logs
    ) == sorted((r.observed_ns, r.trace_id, r.event_name) for r in saved_logs)


def _pb_any(value: Any) -> Any:
    return decode_any(MessageToDict(value))


def _span_count(request: trace_service_pb2.ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def test_replay_retries_a_failed_batch(
    tmp_path: Path, server: tuple[Recorder, int, grpc.Server]
) -> None:
    recorder, port, _ = server
    recorder.fail_first = 2
    writer = RotatingJsonlWriter(tmp_path)
    JsonlFileSpanExporter(writer).export(sdk_spans())
    writer.close()
    code, err = _replay(str(tmp_path), "--endpoint", f"127.0.0.1:{port}", "--insecure")
    assert code == 0, err
    assert len(recorder.traces) == 1
    assert "5 spans" in err


def test_replay_to_a_dead_port_fails_fast_with_one_line(tmp_path: Path) -> None:
    writer = RotatingJsonlWriter(tmp_path)
    JsonlFileSpanExporter(writer).export(sdk_spans())
    writer.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    code, err = _replay(str(tmp_path), "--endpoint", f"http://127.0.0.1:{port}", "--timeout", "1")
    assert time.monotonic() - started < 10
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"llmgine-otel replay: cannot reach OTLP endpoint 127.0.0.1:{port}")


def test_replay_reports_a_signal_the_endpoint_does_not_take(tmp_path: Path) -> None:
    recorder = Recorder()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(recorder, srv)  # no logs service
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    try:
        _write_telemetry(tmp_path)
        code, err = _replay(str(tmp_path), "--endpoint", f"http://127.0.0.1:{port}")
    finally:
        srv.stop(None)
    assert code == 1
    assert "does not accept logs (UNIMPLEMENTED)" in err
    assert "3 not sent" in err.splitlines()[-1]
    assert (
        sum(
            len(ss.spans)
            for r in recorder.traces
            for rs in r.resource_spans
            for ss in rs.scope_spans
        )
        == 6
    )


def test_replay_of_a_missing_path_is_one_line(tmp_path: Path) -> None:
    code, err = _replay(str(tmp_path / "nope"))
    assert code == 1 and err.count("\n") == 1 and "no such file or directory" in err


def test_help_documents_idempotence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(["--help"])
    assert "same trace and span ids" in capsys.readouterr().out


def test_replay_splits_requests_over_the_grpc_size_limit(
    tmp_path: Path, server: tuple[Recorder, int, grpc.Server]
) -> None:
    recorder, port, _ = server
    writer = RotatingJsonlWriter(tmp_path)
    with providers(JsonlFileSpanExporter(writer)) as (tp, _lp):
        tracer = tp.get_tracer("big")
        for i in range(24):  # ~7 MB in all: more than one 4 MiB gRPC message
            with tracer.start_as_current_span(f"chat {i}") as span:
                span.set_attribute("gen_ai.input.messages", "x" * 300_000)
    # One exported line per span (SimpleSpanProcessor); gather them into one big batch.
    code, err = _replay(str(tmp_path), "--endpoint", f"http://127.0.0.1:{port}")
    assert code == 0, err
    assert sum(_span_count(r) for r in recorder.traces) == 24
    assert len(recorder.traces) >= 2
    assert all(r.ByteSize() < 4 * 1024 * 1024 for r in recorder.traces)


def test_replay_exits_non_zero_and_counts_what_it_could_not_read(
    tmp_path: Path, server: tuple[Recorder, int, grpc.Server]
) -> None:
    import json

    recorder, port, _ = server
    _write_telemetry(tmp_path)
    bad = next(iter(read_lines(tmp_path)))
    span = bad["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["attributes"].append({"key": "n", "value": {"intValue": "12abc"}})  # unreadable
    n = sum(len(ss["spans"]) for rs in bad["resourceSpans"] for ss in rs["scopeSpans"])
    (tmp_path / "broken.jsonl").write_text(json.dumps(bad) + "\n")
    code, err = _replay(str(tmp_path), "--endpoint", f"http://127.0.0.1:{port}")
    assert code == 1, err
    assert f"not sent (unreadable lines): {n} spans" in err.splitlines()[-1]
    assert _span_count(recorder.traces[0]) >= 1  # the readable lines were still sent


def read_lines(folder: Path) -> Iterator[dict[str, Any]]:
    from llmgine_otel.telemetry_files import iter_objects

    for obj in iter_objects(folder):
        if "resourceSpans" in obj:
            yield obj
