"""The package's own counters, for exact accounting: every event, span and log record is
observed, then exported, buffered on disk or dropped with a reason.

The identity they keep, per signal: ``produced == exported + buffered + dropped`` (with the
disk buffer's adopted items on the left). Every counter of it is changed under ``lock`` (the
publishers run on many threads; free-threaded Python gives no GIL luck). ``metrics.SelfMetrics``
exposes them as instruments; ``doctor`` and shutdown reports read ``snapshot()``.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

__all__ = ["SelfStats"]


class SelfStats:
    """Counters of what the package did, for exact accounting: every event, span and log
    record is observed, then exported or dropped with a reason."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events_by_handler: Counter[str] = Counter()
        self.handler_errors: Counter[str] = Counter()
        self.handler_seconds: dict[str, float] = defaultdict(float)
        self.handler_dropped: Counter[tuple[str, str]] = Counter()
        """(handler, reason) -> events an async handler did not finish: ``in_flight_limit``
        (not started: its in-flight bound was reached) or ``timeout`` (cancelled)."""
        self.outcomes: Counter[str] = Counter()
        """Translation outcomes: duplicate_start, end_without_start, repaired, rejected, ..."""
        self.produced: Counter[str] = Counter()  # signal -> items handed to the SDK
        self.exported: Counter[str] = Counter()  # signal -> items the exporter accepted
        self.dropped: Counter[tuple[str, str]] = Counter()  # (signal, reason) -> items
        self.queue_size: dict[str, Callable[[], int]] = {}
        self.buffer: Counter[tuple[str, str]] = Counter()
        """Disk buffer, (signal, event) -> items: spilled, resent, adopted (left by a process
        that is gone), expired, dropped_disk_full."""
        self.buffered: Counter[str] = Counter()  # signal -> items on disk now
        self.buffer_state: dict[str, Callable[[], float]] = {}  # "bytes", "oldest_age_s"

    def drop(self, signal: str, reason: str, n: int = 1) -> None:
        with self.lock:
            self.dropped[(signal, reason)] += n

    def outcome(self, name: str, n: int = 1) -> None:
        """Count a translation outcome (atomically: publishers run on many threads)."""
        with self.lock:
            self.outcomes[name] += n

    def produce(self, signal: str, n: int = 1) -> None:
        """Count items handed to the export pipeline (the identity's left-hand side)."""
        with self.lock:
            self.produced[signal] += n

    def dropped_total(self, signal: str) -> int:
        with self.lock:  # export threads may still be counting
            return sum(n for (sig, _), n in self.dropped.items() if sig == signal)

    def snapshot(self) -> dict[str, Any]:
        """A plain copy of every counter (for tests, doctor and shutdown reports)."""
        with self.lock:
            return {
                "events_by_handler": dict(self.events_by_handler),
                "handler_errors": dict(self.handler_errors),
                "handler_dropped": {f"{h}:{r}": n for (h, r), n in self.handler_dropped.items()},
                "outcomes": dict(self.outcomes),
                "produced": dict(self.produced),
                "exported": dict(self.exported),
                "dropped": {f"{s}:{r}": n for (s, r), n in self.dropped.items()},
                "queue_size": {s: f() for s, f in self.queue_size.items()},
                "buffer": {f"{s}:{e}": n for (s, e), n in self.buffer.items()},
                "buffered": dict(self.buffered),
            }
