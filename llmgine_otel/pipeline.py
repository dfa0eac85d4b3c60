"""The export pipeline around the SDK's batch processors: exact accounting, back-pressure
strategies and export shards.

We build on ``BatchSpanProcessor``/``BatchLogRecordProcessor`` and only add what they lack:
a full SDK queue evicts its oldest item with one warning and no count per item; here every
item this package made is counted as exported or dropped (with a reason), ``drop_newest``
keeps the queue's oldest instead, and shutdown and flush keep their time bounds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry._logs import LogRecord as APILogRecord
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import LogRecordLimits, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import get_current_span

from llmgine_otel.self_stats import SelfStats

__all__ = [
    "CountingLogExporter",
    "CountingSpanExporter",
    "FanoutLogExporter",
    "FanoutSpanExporter",
    "LogSink",
    "ManagedLogProcessor",
    "ManagedSpanProcessor",
    "ShardedSpanProcessor",
]


SCOPE = "llmgine_otel"
"""The instrumentation scope of everything this package makes (spans and log records)."""


def ours(item: Any) -> bool:
    """Did this package make ``item`` (a span or log record)? Spans and records of other
    instrumentation on a shared provider are exported too, but kept out of the identity."""
    scope = getattr(item, "instrumentation_scope", None)
    return scope is not None and scope.name == SCOPE


def count_ours(batch: Sequence[Any]) -> int:
    return sum(1 for item in batch if ours(item))


class _Counting:
    """Counts what an exporter accepted or failed, of what this package made (``ours``);
    ``in_flight`` is that count for the batch being sent."""

    def __init__(self, inner: Any, stats: SelfStats, signal: str) -> None:
        self.inner = inner
        self.on_batch: Callable[[Sequence[Any]], None] | None = None
        """Called with each batch before it is sent (span metrics are recorded here)."""
        self.on_taken: Callable[[int, int], None] | None = None
        """Called under the stats lock with (items, ours) of each batch the processor's
        worker took from its queue (the public path's queue count)."""
        self.stats = stats
        self.signal = signal
        self.in_flight = 0
        self.sealed = False
        """Set by a bounded shutdown that counted everything left as dropped: nothing after
        it is counted again."""

    def _take(self, batch: Sequence[Any]) -> int:
        n = count_ours(batch)
        with self.stats.lock:
            self.in_flight = n
            if self.on_taken is not None:
                self.on_taken(len(batch), n)
        return n

    def _export(self, batch: Sequence[Any], success: Any) -> bool:
        n = self._take(batch)
        if hasattr(self.inner, "put"):
            return self._hand_over(batch, n)
        ok = False
        try:
            ok = self.inner.export(batch) == success
        except Exception:  # noqa: BLE001 - an exporter bug must not kill the worker
            pass  # counted below as export_failed
        with self.stats.lock:
            self.in_flight = 0
            if self.sealed:  # counted as shutdown_timeout already: never count twice
                pass
            elif ok:
                self.stats.exported[self.signal] += n
            else:
                self.stats.dropped[(self.signal, "export_failed")] += n
        return ok

    def _hand_over(self, batch: Sequence[Any], n: int) -> bool:
        """Encode the batch for a :class:`~llmgine_otel.exporters.shipper.Shipper`, which
        counts ``n`` items once it knows where they went (exported, on disk, dropped)."""
        try:
            payload: bytes | None = self.inner.encode(batch)
        except Exception:  # noqa: BLE001 - an encoder bug must not kill the worker
            payload = None
        with self.stats.lock:
            self.in_flight = 0
            if self.sealed:  # counted as shutdown_timeout already: never count twice
                return False
            if payload is None:
                self.stats.dropped[(self.signal, "export_failed")] += n
                return False
            self.inner.put(payload, n)
        self.inner.relieve()
        return True

    def pending(self) -> int:
        """Items handed over but still in memory (not yet sent, not yet on disk)."""
        pending = getattr(self.inner, "pending_items", None)
        return pending() if pending is not None else 0

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        try:
            self.inner.shutdown(timeout_millis=timeout_millis)
        except TypeError:
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        flush = getattr(self.inner, "force_flush", None)
        return bool(flush(timeout_millis)) if flush else True


class CountingSpanExporter(_Counting, SpanExporter):
    """A span exporter wrapper that counts exported and failed spans."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.on_batch is not None:
            self.on_batch(spans)
        ok = self._export(spans, SpanExportResult.SUCCESS)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE


class CountingLogExporter(_Counting, LogRecordExporter):
    """A log record exporter wrapper that counts exported and failed log records."""

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        ok = self._export(batch, LogRecordExportResult.SUCCESS)
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE


class _Fanout:
    """Sends each batch to several exporters; the first one's result is the result."""

    def __init__(self, *exporters: Any) -> None:
        self.exporters = exporters

    def export(self, batch: Sequence[Any]) -> Any:
        result = self.exporters[0].export(batch)
        for extra in self.exporters[1:]:
            try:
                extra.export(batch)
            except Exception:  # noqa: BLE001 - a secondary sink never fails the batch
                pass
        return result

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        for e in self.exporters:
            try:
                e.shutdown()
            except Exception:  # noqa: BLE001
                pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(getattr(e, "force_flush", lambda *_: True)(timeout_millis)
                   for e in self.exporters)


class FanoutSpanExporter(_Fanout, SpanExporter):
    """Span exporters in a row (e.g. the local file and the console summary)."""


class FanoutLogExporter(_Fanout, LogRecordExporter):
    """Log record exporters in a row."""


class _Managed:
    """Shared logic of the managed processors: strategy on a full queue, drop counting,
    bounded shutdown and flush, queue length.

    Two ways to know the queue, chosen by :mod:`llmgine_otel.fast_paths` (path ``queue``):

    - fast (tested SDK versions): read the SDK batch processor's private ``_queue``,
      ``_max_queue_size`` and ``_shutdown``; a full queue drops its oldest item (or the new
      one, ``drop_newest``), and a bounded shutdown clears what is left;
    - public: count items in (``emit``) and out (each batch the worker hands the exporter)
      ourselves, under the stats lock. The count is never below the SDK's real queue length,
      so the SDK's deque never evicts silently; a full queue drops the *new* item (the oldest
      cannot be reached without private names: reason ``queue_full_drop_newest`` whatever the
      strategy), and what a timed-out shutdown leaves is counted, then nothing after it.
    """

    _batch_processor: Any
    signal: str

    def _setup(self, stats: SelfStats, strategy: str, exporter: _Counting,
               max_queue_size: int) -> None:
        from llmgine_otel import fast_paths

        self.stats = stats
        self.strategy = strategy
        self.counting = exporter
        self.max_queue_size = max_queue_size
        self._admit_lock = threading.Lock()
        decision = fast_paths.decide("queue")
        bp = self._batch_processor
        if decision.enabled and _QUEUE_NAMES.difference(vars(bp)):
            decision = fast_paths.Decision("queue", False, "the SDK batch processor has no "
                                           + ", ".join(sorted(_QUEUE_NAMES - set(vars(bp)))))
        fast_paths.report(decision)
        self.fast = decision.enabled
        self._queue: Any = bp._queue if self.fast else None
        self._queued = 0  # public path: items emitted and not yet taken by the worker
        self._queued_ours = 0
        self._closed = False
        exporter.on_taken = None if self.fast else self._taken

    def _taken(self, n: int, n_ours: int) -> None:
        self._queued -= n
        self._queued_ours -= n_ours

    def queue_length(self) -> int:
        return len(self._queue) if self.fast else max(0, self._queued)

    def fill(self) -> float:
        """How full the export queue is, 0.0 to 1.0 (drives the adaptive strategy)."""
        return self.queue_length() / self.max_queue_size

    def _offer(self, emit: Callable[[Any], Any], item: Any) -> None:
        """Add ``item`` through ``emit`` (the SDK's), making room by the strategy first.

        Producers take turns (the lock), so the SDK's deque never evicts silently; the
        exporter thread only takes items out, so a drop is counted only when one was made."""
        with self._admit_lock:
            if self._admit(item) if self.fast else self._admit_public(item):
                emit(item)

    def _admit(self, item: Any) -> bool:
        """Account for a full queue before an item is added; False drops the new item."""
        if self._closed or self._batch_processor._shutdown:
            self._drop(item, "after_shutdown")
            return False
        if len(self._queue) >= self.max_queue_size:
            if self.strategy == "drop_newest":
                self._drop(item, "queue_full_drop_newest")
                return False
            try:
                oldest = self._queue.pop()  # the SDK appends on the left
            except IndexError:  # the exporter thread just took everything: no drop
                return True
            self._drop(oldest, "queue_full_drop_oldest")
        return True

    def _admit_public(self, item: Any) -> bool:
        mine = ours(item)
        with self.stats.lock:
            if self._closed:
                reason = "after_shutdown"
            elif self._queued >= self.max_queue_size:
                reason = "queue_full_drop_newest"
            else:
                self._queued += 1
                self._queued_ours += mine
                return True
            if mine:
                self.stats.dropped[(self.signal, reason)] += 1
        return False

    def _drop(self, item: Any, reason: str) -> None:
        if ours(item):
            self.stats.drop(self.signal, reason)

    def _left_ours(self) -> int:
        """Items of ours still in the queue (the caller holds the stats lock)."""
        if self.fast:
            return count_ours(tuple(self._queue))
        return self._queued_ours

    def undelivered(self) -> int:
        """Items of ours still queued or in flight (meaningful after shutdown)."""
        with self.stats.lock:
            left = self._left_ours() + self.counting.in_flight
        return left + self.counting.pending()

    def _close(self) -> None:
        """No item is admitted after this (public path; the SDK's own flag on the fast one)."""
        with self._admit_lock:
            self._closed = True

    def bounded_shutdown(self, timeout_s: float) -> int:
        """Stop within ``timeout_s``; returns how many items of ours could not be delivered."""
        self._close()
        t = threading.Thread(target=self._batch_processor.shutdown,
                             kwargs={"timeout_millis": timeout_s * 900}, daemon=True,
                             name=f"llmgine-otel-shutdown-{self.signal}")
        t.start()
        t.join(timeout_s)
        with self.stats.lock:  # the same lock _Counting counts under
            left = self._left_ours() + self.counting.in_flight
            if left or t.is_alive():
                self.counting.sealed = True
            if left:
                self.stats.dropped[(self.signal, "shutdown_timeout")] += left
                self._queued = self._queued_ours = 0
                if self.fast:
                    self._queue.clear()
        return left

    def bounded_flush(self, timeout_s: float) -> bool:
        """``force_flush`` that honours its timeout (the SDK's exports on the caller)."""
        done = threading.Event()

        def run() -> None:
            try:
                self._batch_processor.force_flush()
            finally:
                done.set()

        deadline = time.monotonic() + timeout_s
        threading.Thread(target=run, daemon=True, name="llmgine-otel-flush").start()
        if not done.wait(timeout_s) or self.queue_length():
            return False
        flush = getattr(self.counting.inner, "force_flush", None)
        if hasattr(self.counting.inner, "put") and flush is not None:  # a shipper's outbox
            return bool(flush(max(0.0, deadline - time.monotonic()) * 1000))
        return True


# Private names of the SDK's BatchProcessor the fast queue path reads (tested: fast_paths).
_QUEUE_NAMES = frozenset({"_queue", "_max_queue_size", "_shutdown"})


class ManagedSpanProcessor(_Managed, BatchSpanProcessor):
    """``BatchSpanProcessor`` with counted drops and a back-pressure strategy."""

    signal = "spans"

    def __init__(self, exporter: CountingSpanExporter, stats: SelfStats, *,
                 max_queue_size: int, strategy: str = "drop_oldest", **kwargs: Any) -> None:
        # The SDK refuses a batch larger than the queue (default batch 512): cap it.
        kwargs.setdefault("max_export_batch_size", min(
            BatchSpanProcessor._default_max_export_batch_size(), max_queue_size))
        BatchSpanProcessor.__init__(self, exporter, max_queue_size=max_queue_size, **kwargs)
        self._setup(stats, strategy, exporter, max_queue_size)

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        _compact(span)
        self._offer(self._batch_processor.emit, span)

    def shutdown(self) -> None:
        self._close()
        self._batch_processor.shutdown()


_EMPTY: tuple[Any, ...] = ()


def _compact(span: Any) -> None:
    """Lighten a finished span before it waits in the queue. The SDK hands over the live
    span's ``BoundedAttributes`` and two ``BoundedList``s (each a lock plus a deque or dict):
    ~8 objects the cyclic GC walks for every queued span, in every full collection, for as
    long as the span waits (seconds normally, the whole queue during an outage). A finished
    span's attributes are immutable, so the plain dict inside says the same; empty event
    and link lists become the shared empty tuple. Kept as they are when anything was
    dropped, so the dropped counts stay exact."""
    try:
        attrs = span._attributes
        if isinstance(attrs, BoundedAttributes) and not attrs.dropped:
            span._attributes = attrs._dict
        if not span._events and not span.dropped_events:
            span._events = _EMPTY
        if not span._links and not span.dropped_links:
            span._links = _EMPTY
    except AttributeError:  # another SDK's or a user's span type: queued as it is
        pass


class ManagedLogProcessor(_Managed, BatchLogRecordProcessor):
    """``BatchLogRecordProcessor`` with counted drops and a back-pressure strategy."""

    signal = "logs"

    def __init__(self, exporter: CountingLogExporter, stats: SelfStats, *,
                 max_queue_size: int, strategy: str = "drop_oldest", **kwargs: Any) -> None:
        kwargs.setdefault("max_export_batch_size", min(
            BatchLogRecordProcessor._default_max_export_batch_size(), max_queue_size))
        BatchLogRecordProcessor.__init__(self, exporter, max_queue_size=max_queue_size, **kwargs)
        self._setup(stats, strategy, exporter, max_queue_size)

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self._offer(lambda r: BatchLogRecordProcessor.on_emit(self, r), log_record)

    def shutdown(self) -> None:
        self._close()
        BatchLogRecordProcessor.shutdown(self)

    def offer_readable(self, record: ReadableLogRecord) -> None:
        """Queue an already finished record (``LogSink``)."""
        self._offer(self._batch_processor.emit, record)


class ShardedSpanProcessor(SpanProcessor):
    """Spans sharded by trace id over several processors: N export threads at once, and a
    trace's spans always in the same shard (so in order)."""

    def __init__(self, shards: Sequence[SpanProcessor]) -> None:
        self.shards = tuple(shards)

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        self.shards[span.context.trace_id % len(self.shards)].on_end(span)

    def shutdown(self) -> None:
        for s in self.shards:
            s.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(s.force_flush(timeout_millis) for s in self.shards)


class ShardedLogProcessor:
    """Log records sharded by trace id like their spans."""

    def __init__(self, shards: Sequence[Any]) -> None:
        self.shards = tuple(shards)

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        ctx = log_record.log_record.context
        tid = get_current_span(ctx).get_span_context().trace_id if ctx is not None else 0
        self.shards[tid % len(self.shards)].on_emit(log_record)

    def shutdown(self) -> None:
        for s in self.shards:
            s.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(s.force_flush(timeout_millis) for s in self.shards)


class LogSink:
    """This package's own log records, queued as finished ``ReadableLogRecord``s.

    The SDK's ``Logger.emit`` builds an API record, wraps it in a ``ReadWriteLogRecord``
    (copying attributes into ``BoundedAttributes``), then the batch processor copies it again
    into a ``ReadableLogRecord``. Our records are final when made (bounded by the sanitizer,
    correlated by ids we hold), so we build the ``ReadableLogRecord`` once and hand it to
    the same batch processors: the same queue, accounting and exporters, less work.
    """

    def __init__(self, processors: Sequence[ManagedLogProcessor], resource: Any,
                 scope: Any) -> None:
        self._shards = tuple(processors)
        self._resource = resource
        self._scope = scope
        self._limits = LogRecordLimits()

    def emit(self, timestamp: int, trace_id: int, span_id: int, flags: Any,
             severity_number: Any, severity_text: str, body: Any, attributes: dict[str, Any],
             event_name: str) -> None:
        record = _new_api_record()
        record.timestamp = timestamp
        record.observed_timestamp = time.time_ns()
        record.context = None
        record.trace_id = trace_id
        record.span_id = span_id
        record.trace_flags = flags
        record.severity_text = severity_text
        record.severity_number = severity_number
        record.body = body
        record.attributes = attributes
        record.event_name = event_name
        record.exception = None
        readable = ReadableLogRecord(log_record=record, resource=self._resource,
                                     instrumentation_scope=self._scope, limits=self._limits)
        shards = self._shards
        shard = shards[trace_id % len(shards)] if len(shards) > 1 else shards[0]
        shard.offer_readable(readable)


def _new_api_record() -> Any:
    """An API LogRecord without running its ``__init__`` (which looks up the ambient
    context we never use): every field is set by ``LogSink.emit``."""
    return APILogRecord.__new__(APILogRecord)
