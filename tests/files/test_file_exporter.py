"""The rotating writer and the file exporters, through real SDK providers and the reader."""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
from pathlib import Path

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmgine_otel.exporters.file import (
    JsonlFileLogExporter,
    JsonlFileMetricExporter,
    JsonlFileSpanExporter,
    RotatingJsonlWriter,
)
from llmgine_otel.telemetry_files import read_telemetry, telemetry_files
from llmgine_otel.telemetry_rows import LogRow, SpanRow

from ._util import ATTRS, RESOURCE, make_logs, make_spans, providers, sdk_logs, sdk_spans


class FakeClock:
    """A settable clock for age-based rotation."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _read(path: Path) -> tuple[list[SpanRow], list[LogRow], list[str]]:
    problems: list[str] = []
    rows = list(read_telemetry(path, on_problem=problems.append))
    return (
        [r for r in rows if isinstance(r, SpanRow)],
        [r for r in rows if isinstance(r, LogRow)],
        problems,
    )


def test_spans_and_logs_round_trip_through_a_file(tmp_path: Path) -> None:
    writer = RotatingJsonlWriter(tmp_path)
    span_exp, log_exp = JsonlFileSpanExporter(writer), JsonlFileLogExporter(writer)
    mem = InMemorySpanExporter()
    tp = TracerProvider(resource=RESOURCE)
    tp.add_span_processor(BatchSpanProcessor(span_exp))
    tp.add_span_processor(SimpleSpanProcessor(mem))
    lmem = InMemoryLogRecordExporter()
    lp = LoggerProvider(resource=RESOURCE)
    lp.add_log_record_processor(BatchLogRecordProcessor(log_exp))
    lp.add_log_record_processor(SimpleLogRecordProcessor(lmem))
    make_spans(tp)
    make_logs(lp, tp)
    tp.shutdown()
    lp.shutdown()

    spans, logs, problems = _read(tmp_path)
    assert problems == []
    expected = {s.context.span_id: s for s in mem.get_finished_spans()}
    assert len(spans) == len(expected) == 6
    for row in spans:
        sdk = expected[int(row.span_id, 16)]
        ctx = sdk.context
        assert row.trace_id == f"{ctx.trace_id:032x}"
        assert row.parent_span_id == (f"{sdk.parent.span_id:016x}" if sdk.parent else "")
        assert row.name == sdk.name
        assert row.kind == sdk.kind.value + 1
        assert (row.start_ns, row.end_ns) == (sdk.start_time, sdk.end_time)
        assert row.attributes == {k: (list(v) if isinstance(v, tuple) else v)
                                  for k, v in (sdk.attributes or {}).items()}  # fmt: skip
        assert row.status_code == sdk.status.status_code.value
        assert row.status_message == (sdk.status.description or "")
        assert row.resource == dict(RESOURCE.attributes)
        assert [e["name"] for e in row.events] == [e.name for e in sdk.events]
        assert [e["time_ns"] for e in row.events] == [e.timestamp for e in sdk.events]
    chat = next(r for r in spans if r.attributes.get("gen_ai.usage.input_tokens"))
    assert chat.attributes["x.unicode"] == ATTRS["x.unicode"]
    assert chat.scope == "llmgine_otel.test"
    assert chat.events[0]["attributes"] == {"index": 0, "finish": "stop"}

    sdk_logs_ = list(lmem.get_finished_logs())
    assert len(logs) == len(sdk_logs_) == 3
    by_time = {lr.log_record.observed_timestamp: lr.log_record for lr in sdk_logs_}
    for lrow in logs:
        rec = by_time[lrow.observed_ns]
        assert lrow.time_ns == (rec.timestamp or 0)
        assert lrow.body == rec.body
        assert lrow.event_name == (rec.event_name or "")
        assert lrow.trace_id == (f"{rec.trace_id:032x}" if rec.trace_id else "")
        assert lrow.span_id == (f"{rec.span_id:016x}" if rec.span_id else "")
        assert lrow.severity_number == (rec.severity_number.value if rec.severity_number else 0)
        assert lrow.attributes == dict(rec.attributes or {})


def test_one_file_holds_every_signal_one_object_per_line(tmp_path: Path) -> None:
    writer = RotatingJsonlWriter(tmp_path)
    assert JsonlFileSpanExporter(writer).export(sdk_spans()) is SpanExportResult.SUCCESS
    assert JsonlFileLogExporter(writer).export(sdk_logs()) is LogRecordExportResult.SUCCESS
    reader = PeriodicExportingMetricReader(JsonlFileMetricExporter(writer))
    mp = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    mp.get_meter("m").create_counter("c").add(1)
    mp.shutdown()
    lines = (tmp_path / "telemetry.jsonl").read_bytes().splitlines()
    keys = [next(iter(json.loads(line))) for line in lines]
    assert keys[:2] == ["resourceSpans", "resourceLogs"] and "resourceMetrics" in keys
    _, _, problems = _read(tmp_path)
    assert problems == []  # metrics lines are not rows, and not problems either


def test_rotation_by_size_gzips_prunes_and_reads_back_in_order(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = RotatingJsonlWriter(tmp_path, max_bytes=3000, max_backups=3, clock=clock)
    exporter = JsonlFileSpanExporter(writer)
    spans = sdk_spans()
    for i in range(12):
        clock.now += 1
        assert (
            exporter.export(spans[i % len(spans) : i % len(spans) + 1]) is SpanExportResult.SUCCESS
        )
    names = sorted(p.name for p in tmp_path.iterdir())
    rotated = [n for n in names if n != "telemetry.jsonl"]
    assert rotated and all(n.endswith(".jsonl.gz") for n in rotated), names
    assert len(rotated) == 3  # pruned to max_backups
    for n in rotated:
        with gzip.open(tmp_path / n) as fh:
            assert all(json.loads(line) for line in fh)
    files = telemetry_files(tmp_path)
    assert files[-1].name == "telemetry.jsonl"
    assert [f.name for f in files[:-1]] == sorted(rotated)  # timestamps sort oldest first
    # Lines come back in write order across the rotated files and the current one.
    spans_read, _, problems = _read(tmp_path)
    assert problems == []
    starts = [r.start_ns for r in spans_read]
    assert len(starts) >= 4
    stamps = [s.start_time for s in spans]
    expected = [stamps[i % len(spans)] for i in range(12)][-len(starts) :]
    assert starts == expected


def test_rotation_by_age_with_an_injected_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = RotatingJsonlWriter(tmp_path, max_age_s=60, clock=clock, compress=False)
    writer.write(b'{"resourceSpans":[]}\n')
    clock.now += 59
    writer.write(b'{"resourceSpans":[]}\n')
    assert [p.name for p in tmp_path.iterdir()] == ["telemetry.jsonl"]
    clock.now += 2
    writer.write(b'{"resourceLogs":[]}\n')
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2 and names[0].startswith("telemetry-2027-01-15T08-")
    assert names[0].endswith("Z.jsonl")  # uncompressed: compress=False
    assert (tmp_path / "telemetry.jsonl").read_bytes() == b'{"resourceLogs":[]}\n'
    writer.close()


def test_stale_file_from_an_earlier_run_is_rotated_on_open(tmp_path: Path) -> None:
    old = tmp_path / "telemetry.jsonl"
    old.write_bytes(b'{"resourceSpans":[]}\n')
    os.utime(old, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    writer = RotatingJsonlWriter(tmp_path, max_age_s=86400)
    writer.write(b'{"resourceLogs":[]}\n')
    writer.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2 and names[0].endswith(".jsonl.gz") and names[1] == "telemetry.jsonl"


def test_interrupted_compression_is_not_read_twice(tmp_path: Path) -> None:
    line = b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"5"}]}]}]}\n'
    plain = tmp_path / "telemetry-2026-01-01T00-00-00.000000Z.jsonl"
    plain.write_bytes(line)
    with gzip.open(f"{plain}.gz", "wb") as fh:
        fh.write(line)
    assert [f.name for f in telemetry_files(tmp_path)] == [plain.name]


def test_writer_is_thread_safe(tmp_path: Path) -> None:
    writer = RotatingJsonlWriter(tmp_path, max_bytes=200_000, max_backups=100)
    exporter = JsonlFileSpanExporter(writer)
    spans = sdk_spans()

    def work() -> None:
        for _ in range(60):
            assert exporter.export(spans) is SpanExportResult.SUCCESS

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    spans_read, _, problems = _read(tmp_path)
    assert problems == []
    assert len(spans_read) == 6 * 60 * len(spans)


def test_exporters_return_failure_on_an_unwritable_directory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the folder should be")
    writer = RotatingJsonlWriter(blocker / "sub")
    span_exp = JsonlFileSpanExporter(writer)
    assert span_exp.export(sdk_spans()) is SpanExportResult.FAILURE
    assert span_exp.export(sdk_spans()) is SpanExportResult.FAILURE
    assert JsonlFileLogExporter(writer).export(sdk_logs()) is LogRecordExportResult.FAILURE
    warnings = [r for r in caplog.records if "cannot write telemetry" in r.getMessage()]
    assert len(warnings) == 2  # once per exporter, not once per export


def test_metric_exporter_failure_result(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    mp = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    mp.get_meter("m").create_counter("c").add(1)
    data = reader.get_metrics_data()
    assert data is not None
    (tmp_path / "f").write_text("")
    bad = JsonlFileMetricExporter(RotatingJsonlWriter(tmp_path / "f" / "sub"))
    assert bad.export(data) is MetricExportResult.FAILURE
    good = JsonlFileMetricExporter(RotatingJsonlWriter(tmp_path / "ok"))
    assert good.export(data) is MetricExportResult.SUCCESS
    mp.shutdown()


def test_writer_after_shutdown_of_one_exporter_keeps_serving_the_others(tmp_path: Path) -> None:
    writer = RotatingJsonlWriter(tmp_path)
    span_exp, log_exp = JsonlFileSpanExporter(writer), JsonlFileLogExporter(writer)
    span_exp.shutdown()
    assert span_exp.export(sdk_spans()) is SpanExportResult.FAILURE
    assert log_exp.export(sdk_logs()) is LogRecordExportResult.SUCCESS
    assert len(_read(tmp_path)[1]) == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_writes_whole_lines_to_the_same_file(tmp_path: Path) -> None:
    writer = RotatingJsonlWriter(tmp_path)
    exporter = JsonlFileSpanExporter(writer)
    spans = sdk_spans()
    exporter.export(spans)
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            for _ in range(50):
                if exporter.export(spans) is not SpanExportResult.SUCCESS:
                    code = 1
        finally:
            os._exit(code)
    for _ in range(50):
        exporter.export(spans)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    writer.close()
    spans_read, _, problems = _read(tmp_path)
    assert problems == []
    assert len(spans_read) == 101 * len(spans)


def test_providers_helper_smoke(tmp_path: Path) -> None:
    writer = RotatingJsonlWriter(tmp_path)
    with providers(JsonlFileSpanExporter(writer), JsonlFileLogExporter(writer)) as (tp, lp):
        make_spans(tp)
        make_logs(lp, tp)
    spans, logs, _ = _read(tmp_path)
    assert len(spans) == 6 and len(logs) == 3


def test_a_write_torn_mid_line_does_not_glue_onto_the_next(tmp_path: Path) -> None:
    writer = RotatingJsonlWriter(tmp_path)
    writer.write(b'{"resourceSpans":[]}\n')
    real = writer._file

    class HalfThenFull:
        """Writes half the first line, then fails (a full disk)."""

        def __init__(self) -> None:
            self.calls = 0

        def write(self, data: memoryview) -> int:
            self.calls += 1
            if self.calls == 1:
                return real.write(data[: len(data) // 2])
            raise OSError(28, "No space left on device")

    writer._file = HalfThenFull()
    with pytest.raises(OSError):
        writer.write(b'{"resourceLogs":[]}\n')
    writer._file = real
    writer.write(b'{"resourceMetrics":[]}\n')
    writer.close()
    lines = (tmp_path / "telemetry.jsonl").read_bytes().splitlines()
    assert lines[0] == b'{"resourceSpans":[]}' and lines[-1] == b'{"resourceMetrics":[]}'
    assert len(lines) == 3  # the torn line stays on its own line
