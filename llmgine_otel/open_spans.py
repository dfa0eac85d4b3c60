"""The open-span table: spans found by (family, id), never by ambient context.

Bounded by entry count and by age since *last activity* (a span is active while events of
its session arrive or children start under it: a session busy for hours is never cut).
Entries that fall out are handed back to the caller to be ended with ERROR and a reason, so
no span is silently dropped or leaked; that happens when a span is added, and every
``sweep_interval_s`` on a background thread, so spans left open by an app that went quiet
are ended (and exported) too. One lock guards the table; every operation is O(1) amortized,
whatever the number of open spans.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import set_span_in_context

__all__ = ["OpenSpan", "SpanTable"]

Key = tuple[str, str]
_ROOT = Context()


class OpenSpan:
    """A started span and what its end needs: start time, stream chunk tallies, its
    context (built once, reused for every child and log record), and the start's captured
    content when the end's log record carries it (``mapping.Rule.log_scope``)."""

    __slots__ = ("_ctx", "chunk_first_ns", "chunk_gap_max_ns", "chunk_last_ns", "chunks",
                 "content", "family", "inherit", "key", "mark", "mono", "sampled", "sc",
                 "session", "span", "start_ns")

    def __init__(self, key: Key, span: Any, session: str | None, start_ns: int) -> None:
        self.key = key
        self.family = key[0]
        self.span = span
        self.session = session
        self.start_ns = start_ns
        self.mono = 0.0
        self.sc = span.get_span_context()
        self.sampled: bool = self.sc.trace_flags.sampled
        self._ctx: Context | None = None
        self.chunks = 0
        self.chunk_first_ns = 0
        self.chunk_last_ns = 0
        self.chunk_gap_max_ns = 0
        self.inherit: Mapping[str, Any] | None = None
        """Attributes this span's children carry too (``span_attributes``)."""
        self.content: dict[str, Any] | None = None
        self.mark = False
        """The span is ended already (a session's start in the ``command`` trace shape): the
        entry stays for what its session needs, its context (a link target), the attributes
        it passes on, and the end it waits for."""

    @property
    def ctx(self) -> Context:
        """A context whose current span is this one (parent of children and log records)."""
        if self._ctx is None:
            self._ctx = set_span_in_context(self.span, _ROOT)
        return self._ctx


class SpanTable:
    """Open spans by key, plus per-session stacks for "innermost open span" look-ups and a
    bounded memory of recently ended keys (to tell duplicates from missing starts)."""

    def __init__(self, max_entries: int, max_age_s: float,
                 on_evict: Callable[[OpenSpan, str], None],
                 clock: Callable[[], float] = time.monotonic, *,
                 sweep_in_background: bool = False) -> None:
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self._on_evict = on_evict
        self._clock = clock
        # Activity is recorded at most this often per span (a lock and a move per event
        # would cost the bus more than the precision is worth).
        self._touch_every = min(1.0, max_age_s / 100)
        # Least recently active first: age eviction looks at the front only.
        self._open: OrderedDict[Key, OpenSpan] = OrderedDict()
        self._stacks: dict[str, list[OpenSpan]] = {}
        self._ended: OrderedDict[Key, None] = OrderedDict()
        # Session spans ended by eviction, by key: a session that goes on continues from them.
        self._evicted: OrderedDict[Key, OpenSpan] = OrderedDict()
        self._lock = threading.Lock()
        if sweep_in_background:
            _Sweeper.watch(self)

    def __len__(self) -> int:
        return len(self._open)

    def get(self, key: Key) -> OpenSpan | None:
        return self._open.get(key)

    def add(self, entry: OpenSpan) -> bool:
        """Insert; False if the key is already open (duplicate start) or recently ended."""
        evicted: list[tuple[OpenSpan, str]] = []
        with self._lock:
            if entry.key in self._open or entry.key in self._ended:
                return False
            entry.mono = now = self._clock()
            self._open[entry.key] = entry
            if entry.session is not None:
                self._stacks.setdefault(entry.session, []).append(entry)
            # Evict the oldest entries: past max age, or beyond capacity.
            horizon = now - self.max_age_s
            while self._open:
                oldest = next(iter(self._open.values()))
                if oldest.mono < horizon:
                    reason = "evicted_age"
                elif len(self._open) > self.max_entries:
                    reason = "evicted_capacity"
                else:
                    break
                self._evict_locked(oldest)
                evicted.append((oldest, reason))
        for old, reason in evicted:
            self._on_evict(old, reason)
        return True

    def touch(self, entry: OpenSpan | None) -> None:
        """``entry`` is active now (its age counts from here)."""
        if entry is None:
            return
        now = self._clock()
        if now - entry.mono < self._touch_every:
            return
        with self._lock:
            if self._open.get(entry.key) is entry:
                entry.mono = now
                self._open.move_to_end(entry.key)

    def touch_session(self, session: str | None) -> None:
        """An event of ``session`` arrived: its root span is active."""
        if session is not None:
            self.touch(self._open.get(("session", session)))

    @property
    def sweep_interval_s(self) -> float:
        """How often the background sweeper looks (a tenth of the age limit, 1 s..60 s)."""
        return max(1.0, min(60.0, self.max_age_s / 10))

    def pop(self, key: Key) -> tuple[OpenSpan | None, bool]:
        """Remove the open span for ``key`` and remember the key as ended.

        Returns ``(entry, ended_before)``: ``(None, True)`` is a duplicate end,
        ``(None, False)`` an end whose start was never seen."""
        with self._lock:
            entry = self._open.get(key)
            if entry is not None:
                self._remove_locked(entry)
                return entry, False
            ended_before = key in self._ended
            self._remember_ended(key)
            return None, ended_before

    def was_ended(self, key: Key) -> bool:
        return key in self._ended

    def mark_ended(self, key: Key) -> None:
        with self._lock:
            self._remember_ended(key)

    def find_span(self, session: str, span_id: int) -> OpenSpan | None:
        """The open span of ``session`` with this span id (stacks are short: a few entries)."""
        stack = self._stacks.get(session)
        if not stack:
            return None
        with self._lock:
            for entry in reversed(stack):
                if entry.span.get_span_context().span_id == span_id:
                    return entry
        return None

    def innermost(self, session: str, families: tuple[str, ...]) -> OpenSpan | None:
        """The most recently started open span of one of ``families`` in ``session``."""
        stack = self._stacks.get(session)
        if not stack:
            return None
        with self._lock:
            for entry in reversed(stack):
                if entry.family in families:
                    return entry
        return None

    def drain(self) -> list[OpenSpan]:
        """Remove and return every open span (children before parents), for shutdown."""
        with self._lock:
            entries = list(self._open.values())
            self._open.clear()
            self._stacks.clear()
        entries.reverse()
        return entries

    def sweep(self) -> int:
        """Evict entries inactive for longer than max age now; returns how many."""
        evicted: list[OpenSpan] = []
        with self._lock:
            horizon = self._clock() - self.max_age_s
            while self._open:
                oldest = next(iter(self._open.values()))
                if oldest.mono >= horizon:
                    break
                self._evict_locked(oldest)
                evicted.append(oldest)
        for old in evicted:
            self._on_evict(old, "evicted_age")
        return len(evicted)

    def take_evicted(self, key: Key) -> OpenSpan | None:
        """The session span of ``key`` if eviction ended it (not its end event): forgotten
        here, and the key may be opened again, by the session's continuation."""
        with self._lock:
            entry = self._evicted.pop(key, None)
            if entry is not None:
                self._ended.pop(key, None)
            return entry

    def trace_belongs(self, session: str, trace_id: int) -> bool | None:
        """Whether ``trace_id`` is the trace of an open span of ``session`` (None: the
        session has no open span here)."""
        stack = self._stacks.get(session)
        if not stack:
            return None
        with self._lock:
            return any(e.sc.trace_id == trace_id for e in stack)

    def _evict_locked(self, entry: OpenSpan) -> None:
        self._remove_locked(entry)
        if entry.family == "session":
            evicted = self._evicted
            evicted[entry.key] = entry
            if len(evicted) > self.max_entries:
                evicted.popitem(last=False)

    def _remove_locked(self, entry: OpenSpan) -> None:
        self._open.pop(entry.key, None)
        self._remember_ended(entry.key)
        if entry.session is not None:
            stack = self._stacks.get(entry.session)
            if stack is not None:
                # Usually the top of the stack: O(1) in the common case.
                for i in range(len(stack) - 1, -1, -1):
                    if stack[i] is entry:
                        del stack[i]
                        break
                if not stack:
                    del self._stacks[entry.session]

    def _remember_ended(self, key: Key) -> None:
        ended = self._ended
        ended[key] = None
        if len(ended) > self.max_entries:
            ended.popitem(last=False)


class _Sweeper:
    """One daemon thread for every table that asked for background sweeps (weakly held:
    a table that is gone is forgotten); started again in a forked child."""

    _tables: weakref.WeakSet[SpanTable] = weakref.WeakSet()
    _thread: threading.Thread | None = None
    _pid = 0
    _lock = threading.Lock()
    _wake = threading.Event()

    @classmethod
    def watch(cls, table: SpanTable) -> None:
        with cls._lock:
            cls._tables.add(table)
            if cls._thread is None or cls._pid != os.getpid() or not cls._thread.is_alive():
                cls._pid = os.getpid()
                cls._thread = threading.Thread(target=cls._run, name="llmgine-otel-sweeper",
                                               daemon=True)
                cls._thread.start()
            cls._wake.set()  # a new table may want a shorter interval

    @classmethod
    def _run(cls) -> None:
        while True:
            tables = list(cls._tables)
            interval = min((t.sweep_interval_s for t in tables), default=60.0)
            cls._wake.wait(interval)
            cls._wake.clear()
            for table in list(cls._tables):
                try:
                    table.sweep()
                except Exception:  # noqa: BLE001 - the sweeper must outlive a bad callback
                    pass
