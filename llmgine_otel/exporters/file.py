"""Local telemetry files: one OTLP-JSON line per export, in the Collector file exporter's format.

The span, log and metric exporters share one ``RotatingJsonlWriter`` so one file holds every
signal, as with the Collector's ``file`` exporter (``format: json``). Writes happen on the SDK's
export threads, never on the application's.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import shutil
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from llmgine_otel.otlp_json import dumps_line, encode_logs, encode_metrics, encode_spans
from llmgine_otel.telemetry_files import rotation_stamp

_log = logging.getLogger(__name__)

MiB = 1024 * 1024
_LIVE_WRITERS: weakref.WeakSet[RotatingJsonlWriter] = weakref.WeakSet()


class RotatingJsonlWriter:
    """Appends whole lines to ``directory/filename``, rotating by size and age; thread-safe.

    Rotation renames the file to ``<stem>-<UTC time>.jsonl``, gzips it (outside the write lock)
    and keeps the newest ``max_backups`` rotated files. The file stays open between writes and is
    opened lazily, so a writer for an unwritable folder fails on ``write``, not when built.
    Each line is one unbuffered ``write`` to an O_APPEND file, so a forked child appending to the
    same file cannot tear lines; the child reopens its own handle (rotation is per process).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        filename: str = "telemetry.jsonl",
        max_bytes: int = 64 * MiB,
        max_age_s: float = 24 * 3600.0,
        max_backups: int = 10,
        compress: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / filename
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.max_backups = max_backups
        self.compress = compress
        self._clock = clock
        self._lock = threading.Lock()
        self._maintenance_lock = threading.Lock()
        self._file: Any = None  # an unbuffered FileIO
        self._size = 0
        self._opened_at = 0.0
        self._torn = False
        stem = Path(filename).stem
        self._rotated_prefix = f"{stem}-"
        self._suffix = Path(filename).suffix or ".jsonl"
        _LIVE_WRITERS.add(self)

    def write(self, line: bytes) -> None:
        """Append one newline-terminated line, rotating first if due. Raises OSError."""
        if not line.endswith(b"\n"):
            line += b"\n"
        rotated = False
        with self._lock:
            if self._file is None:
                rotated = self._open()
            if self._size and (
                self._size + len(line) > self.max_bytes
                or self._clock() - self._opened_at >= self.max_age_s
            ):
                self._rotate()
                rotated = True
            if self._torn:  # an earlier write stopped mid-line: end that line first
                line = b"\n" + line
            view = memoryview(line)
            try:
                while view:
                    n = self._file.write(view)
                    view = view[n:]
            finally:
                self._torn = 0 < len(view) < len(line)
                self._size += len(line) - len(view)
        if rotated:
            self._maintain()

    def flush(self) -> None:
        """Lines go straight to the OS on write; nothing is buffered here."""
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def close(self) -> None:
        """Close the file; a later ``write`` reopens it (exporters sharing this writer go on)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def rotated_files(self) -> list[Path]:
        """This writer's rotated files (plain or gzipped), oldest first."""
        found: list[tuple[str, Path]] = []
        try:
            entries = list(self.directory.iterdir())
        except OSError:
            return []
        for f in entries:
            if not f.name.startswith(self._rotated_prefix) or f.name.endswith(".tmp"):
                continue
            stamp = rotation_stamp(f.name)
            if stamp is not None:
                found.append((stamp, f))
        return [f for _, f in sorted(found)]

    # -- internals (callers hold self._lock unless said otherwise) --

    def _open(self) -> bool:
        """Open the current file; True when a stale one left by an earlier run was rotated."""
        self.directory.mkdir(parents=True, exist_ok=True)
        now = self._clock()
        try:
            st = self.path.stat()
        except FileNotFoundError:
            st = None
        stale = st is not None and st.st_size > 0 and now - st.st_mtime >= self.max_age_s
        if stale:
            self._rename_current()  # left by an earlier run and stale: start a new file
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open on purpose
        self._size = os.fstat(self._file.fileno()).st_size
        self._opened_at = now
        self._torn = False
        return stale

    def _rename_current(self) -> None:
        stamp = datetime.fromtimestamp(self._clock(), UTC)
        while True:
            name = f"{self._rotated_prefix}{stamp:%Y-%m-%dT%H-%M-%S.%f}Z{self._suffix}"
            target = self.directory / name
            if not target.exists() and not Path(f"{target}.gz").exists():
                break
            stamp += timedelta(microseconds=1)
        with contextlib.suppress(FileNotFoundError):  # deleted by hand meanwhile: nothing to keep
            os.rename(self.path, target)

    def _rotate(self) -> None:
        self._file.close()
        self._file = None
        self._rename_current()
        self._open()

    def _maintain(self) -> None:
        """Gzip rotated files and prune old ones; runs after a rotation, outside the write lock."""
        with self._maintenance_lock:
            try:
                if self.compress:
                    for f in self.rotated_files():
                        if not f.name.endswith(".gz"):
                            _gzip_file(f)
                excess = self.rotated_files()
                for f in excess[: max(0, len(excess) - self.max_backups)]:
                    f.unlink(missing_ok=True)
            except OSError as exc:
                _log.warning("llmgine-otel: could not compress/prune rotated telemetry: %s", exc)

    def _after_fork(self) -> None:
        """In a forked child: new locks, and drop the parent's handle without touching its data."""
        self._lock = threading.Lock()
        self._maintenance_lock = threading.Lock()
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()  # unbuffered: closing only releases the child's fd
            self._file = None


def _gzip_file(path: Path) -> None:
    """Replace ``path`` by ``path.gz`` (written to a temporary name first), keeping its mtime."""
    gz = path.with_name(path.name + ".gz")
    tmp = path.with_name(path.name + ".gz.tmp")
    st = path.stat()
    with open(path, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst, 1024 * 1024)
    os.utime(tmp, (st.st_atime, st.st_mtime))
    os.replace(tmp, gz)
    path.unlink()


def _reinit_writers_after_fork() -> None:
    for writer in list(_LIVE_WRITERS):
        writer._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_writers_after_fork)


class _FileExporterBase:
    """Shared export-to-writer logic: never raises, logs the first failure only."""

    def __init__(self, writer: RotatingJsonlWriter) -> None:
        self.writer = writer
        self._warned = False
        self._shutdown = False

    def _write(self, encode: Callable[[], dict[str, Any]]) -> bool:
        if self._shutdown:
            return False
        try:
            self.writer.write(dumps_line(encode()))
            return True
        except Exception as exc:  # noqa: BLE001 - an export must never raise
            if not self._warned:
                self._warned = True
                _log.warning(
                    "llmgine-otel: cannot write telemetry to %s (%s); dropping it "
                    "(further errors are not logged)",
                    self.writer.path,
                    exc,
                )
            return False

    def shutdown(self) -> None:
        self._shutdown = True
        self.writer.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.writer.flush()
        return True


class JsonlFileSpanExporter(_FileExporterBase, SpanExporter):
    """Writes each batch of finished spans as one ``{"resourceSpans": ...}`` line."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = not spans or self._write(lambda: encode_spans(spans))
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE


class JsonlFileLogExporter(_FileExporterBase, LogRecordExporter):
    """Writes each batch of log records as one ``{"resourceLogs": ...}`` line."""

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        ok = not batch or self._write(lambda: encode_logs(batch))
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE


class JsonlFileMetricExporter(_FileExporterBase, MetricExporter):
    """Writes each metrics collection as one ``{"resourceMetrics": ...}`` line."""

    def __init__(
        self,
        writer: RotatingJsonlWriter,
        preferred_temporality: dict[type, AggregationTemporality] | None = None,
        preferred_aggregation: dict[type, Any] | None = None,
    ) -> None:
        _FileExporterBase.__init__(self, writer)
        # The protobuf encoders load now, not at the first export: in a short-lived process
        # that export is the one at exit, and an import then that runs exec/eval (protobuf's
        # namedtuples) makes CPython forget an unhandled KeyboardInterrupt, so Ctrl-C would
        # end the process with status 1 instead of by SIGINT (tests/reliability/test_signals).
        import google.protobuf.json_format  # noqa: F401
        import opentelemetry.exporter.otlp.proto.common.metrics_encoder  # noqa: F401

        MetricExporter.__init__(
            self,
            preferred_temporality=preferred_temporality,
            preferred_aggregation=preferred_aggregation,
        )

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        ok = self._write(lambda: encode_metrics(metrics_data))
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        self.writer.flush()
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._shutdown = True
        self.writer.close()
