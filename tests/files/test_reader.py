"""The tolerant reader: every kind of bad input is one clear line and the rest is still read."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from pathlib import Path

import pytest

from llmgine_otel import otlp_json as oj
from llmgine_otel import telemetry_files as tf
from llmgine_otel.telemetry_files import read_telemetry, telemetry_files
from llmgine_otel.telemetry_rows import LogRow, SpanRow

from ._util import sdk_logs, sdk_spans

SPANS_LINE = oj.dumps_line(oj.encode_spans(sdk_spans()))
LOGS_LINE = oj.dumps_line(oj.encode_logs(sdk_logs()))
N_SPANS, N_LOGS = 5, 3

# A line as the Collector's file exporter (pdata JSON marshaler) writes it.
COLLECTOR_LINE = json.dumps({"resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
    "scopeSpans": [{"scope": {"name": "lib"}, "spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
        "parentSpanId": "eee19b7ec3c1b173", "flags": 256, "name": "GET /", "kind": 2,
        "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": "1544712661000000000",
        "attributes": [{"key": "n", "value": {"intValue": "7"}},
                       {"key": "l", "value": {"arrayValue": {"values": [{"doubleValue": 1.5}]}}}],
        "events": [{"timeUnixNano": "1544712660500000000", "name": "ev"}],
        "status": {"code": 2, "message": "bad"}}]}]}]})  # fmt: skip


def _read(path: Path) -> tuple[list[SpanRow | LogRow], list[str]]:
    problems: list[str] = []
    return list(read_telemetry(path, on_problem=problems.append)), problems


def test_reads_a_collector_file_exporter_line(tmp_path: Path) -> None:
    f = tmp_path / "otel.json"
    f.write_text(COLLECTOR_LINE + "\n")
    rows, problems = _read(f)
    assert problems == []
    assert rows == [SpanRow(
        trace_id="5b8efff798038103d269b633813fc60c", span_id="eee19b7ec3c1b174",
        parent_span_id="eee19b7ec3c1b173", name="GET /", kind=2,
        start_ns=1544712660000000000, end_ns=1544712661000000000, status_code=2,
        status_message="bad", attributes={"n": 7, "l": [1.5]},
        events=[{"name": "ev", "time_ns": 1544712660500000000, "attributes": {}}],
        resource={"service.name": "svc"}, scope="lib",
    )]  # fmt: skip


def test_every_malformed_line_is_one_problem_and_the_rest_is_read(tmp_path: Path) -> None:
    f = tmp_path / "telemetry.jsonl"
    f.write_bytes(
        SPANS_LINE
        + b"this is not json\n"
        + b'{"level": "info", "msg": "a log line from another tool"}\n'
        + b"\n"
        + b'{"resourceSpans": {"oops": 1}}\n'
        + b"[1, 2, 3]\n"
        + LOGS_LINE
        + SPANS_LINE[: len(SPANS_LINE) // 2]  # truncated last write
    )
    rows, problems = _read(f)
    assert sum(isinstance(r, SpanRow) for r in rows) == N_SPANS
    assert sum(isinstance(r, LogRow) for r in rows) == N_LOGS
    assert problems == [
        f"{f}:2: not valid JSON, skipped",
        f"{f}:3: not OTLP JSON (no resourceSpans/resourceLogs/resourceMetrics), skipped",
        f"{f}:5: malformed OTLP JSON (AttributeError: 'str' object has no attribute 'get'), "
        "skipped",
        f"{f}:6: not OTLP JSON (no resourceSpans/resourceLogs/resourceMetrics), skipped",
        f"{f}:8: not valid JSON (truncated write?), skipped",
    ]
    assert all("\n" not in p for p in problems)


def test_problems_are_capped_per_file(tmp_path: Path) -> None:
    f = tmp_path / "telemetry.jsonl"
    f.write_bytes(b"garbage\n" * 30 + SPANS_LINE)
    rows, problems = _read(f)
    assert len(rows) == N_SPANS
    assert len(problems) == 21
    assert problems[-1] == f"{f}: ... and 10 more problems"


def test_unreadable_file_is_reported_and_others_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.jsonl").write_bytes(SPANS_LINE)
    (tmp_path / "b.jsonl").write_bytes(LOGS_LINE)
    real_open = tf._open_lines

    def fake_open(path: Path):  # type: ignore[no-untyped-def]
        if path.name == "a.jsonl":
            raise PermissionError(13, "Permission denied")
        return real_open(path)

    monkeypatch.setattr(tf, "_open_lines", fake_open)
    rows, problems = _read(tmp_path)
    assert len(rows) == N_LOGS
    assert problems == [f"{tmp_path / 'a.jsonl'}: cannot read (Permission denied), skipped"]


def test_missing_path_is_one_problem(tmp_path: Path) -> None:
    rows, problems = _read(tmp_path / "nope")
    assert rows == [] and problems == [f"{tmp_path / 'nope'}: no such file or directory"]
    with pytest.raises(FileNotFoundError):
        telemetry_files(tmp_path / "nope")


def test_truncated_gzip_reads_what_is_there(tmp_path: Path) -> None:
    data = gzip.compress(SPANS_LINE * 200)
    f = tmp_path / "telemetry-2026-01-01T00-00-00.000000Z.jsonl.gz"
    f.write_bytes(data[: len(data) * 2 // 3])
    rows, problems = _read(f)
    assert 0 < len(rows) < 200 * N_SPANS
    assert len(problems) == 1 and problems[0].startswith(f"{f}:")
    assert "rest of file skipped" in problems[0]


def test_folder_order_rotated_oldest_first_then_current(tmp_path: Path) -> None:
    names = [
        "telemetry.jsonl",
        "telemetry-2026-03-01T00-00-00.000000Z.jsonl.gz",
        "telemetry-2026-01-01T00-00-00.000000Z.jsonl.gz",
        "telemetry-2026-02-01T00-00-00.000000Z.jsonl",
        "otel-2025-12-31T23-59-59.999.json",  # the Collector's (lumberjack) naming
        "notes.txt",
        ".hidden.jsonl",
    ]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    assert [f.name for f in telemetry_files(tmp_path)] == [
        "otel-2025-12-31T23-59-59.999.json",
        "telemetry-2026-01-01T00-00-00.000000Z.jsonl.gz",
        "telemetry-2026-02-01T00-00-00.000000Z.jsonl",
        "telemetry-2026-03-01T00-00-00.000000Z.jsonl.gz",
        "telemetry.jsonl",
    ]


def test_zstd_without_the_module_is_one_clear_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd")
    (tmp_path / "b.jsonl").write_bytes(SPANS_LINE)
    monkeypatch.setattr(tf, "_zstandard", lambda: None)
    rows, problems = _read(tmp_path)
    assert len(rows) == N_SPANS
    assert problems == [
        f"{tmp_path / 'a.jsonl.zst'}: zstd-compressed; install the 'zstandard' package to read "
        "it, skipped"
    ]


def test_zstd_stream_and_collector_size_prefixed_frames(tmp_path: Path) -> None:
    zstd = pytest.importorskip("zstandard")
    cctx = zstd.ZstdCompressor()
    stream = tmp_path / "native.jsonl.zst"
    stream.write_bytes(cctx.compress(SPANS_LINE) + cctx.compress(LOGS_LINE))
    framed = tmp_path / "legacy.json.zst"
    body = b""
    for line in (SPANS_LINE.rstrip(b"\n"), LOGS_LINE.rstrip(b"\n")):
        frame = cctx.compress(line)
        body += len(frame).to_bytes(4, "big") + frame
    framed.write_bytes(body)
    for f in (stream, framed):
        rows, problems = _read(f)
        assert problems == []
        assert len(rows) == N_SPANS + N_LOGS


def test_reader_streams_without_loading_the_file(tmp_path: Path) -> None:
    f = tmp_path / "telemetry.jsonl"
    with open(f, "wb") as fh:
        for _ in range(600):
            fh.write(SPANS_LINE)
    size = f.stat().st_size
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_telemetry(f))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 600 * N_SPANS
    assert peak < size / 4, (peak, size)
