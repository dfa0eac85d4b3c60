"""The disk buffer between the application and the Collector: a directory of encoded OTLP
export requests (the exact bytes an exporter sends) waiting to be resent.

Layout under ``root`` (default ``<LLMGINE_OTEL_DIR>/buffer/<service.name>``)::

    <owner>.lock       held with flock(2) by the live process that owns <owner>/
    <owner>/<created_ns>-<pid>-<seq>.<signal>.<items>.otlp      one request per file

Each process writes only into its own ``<owner>/`` directory, created on its first write.
A file appears whole (written under a temporary name, then renamed) and is deleted once the
endpoint acknowledged it. A process whose lock can be taken is gone: the next process that
looks (at start and every 30 s) moves its files into its own directory, one ``rename`` per
file, so each file is resent by exactly one process. Files are not fsynced: they survive
the process (kill -9), not a power cut.

Bounds: ``max_bytes`` for the whole directory this process knows of (its own files and those
it took over); a write that would pass it deletes the oldest files first, counted
``buffer_disk_full``. Files older than ``max_age_s`` are deleted, counted ``buffer_expired``.

Accounting (``SelfStats``): ``buffer[(signal, event)]`` counts items spilled, resent,
adopted, expired and dropped_disk_full; ``buffered[signal]`` is the items on disk now. With
``exported`` counting items resent from disk too, at any quiet moment
``produced + adopted == exported + buffered + dropped`` exactly.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import itertools
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmgine_otel.self_stats import SelfStats

__all__ = ["DiskBuffer", "Entry", "describe", "writable"]

_log = logging.getLogger("llmgine_otel")

SIGNALS = ("spans", "logs")
ADOPT_EVERY_S = 30.0
_NAME = re.compile(r"^(\d{1,20})-(\d+)-(\d+)\.(spans|logs)\.(\d+)\.otlp$")


@dataclass(order=True)
class Entry:
    """One buffered export request."""

    created_ns: int
    seq: int
    path: Path
    signal: str = field(compare=False)
    items: int = field(compare=False)
    size: int = field(compare=False)
    claimed: bool = field(default=False, compare=False)


def writable(root: Path) -> bool:
    """Whether ``root`` exists writable, or could be created under a writable ancestor
    (checked without creating anything)."""
    p = root.absolute()
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


class DiskBuffer:
    """The buffer directory of one process; thread-safe (shippers write and resend)."""

    def __init__(self, root: Path, *, max_bytes: int, max_age_s: float,
                 stats: SelfStats, clock: Any = time.time) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.stats = stats
        self._clock = clock
        self._init_state()
        stats.buffer_state["bytes"] = self.size_bytes
        stats.buffer_state["oldest_age_s"] = self.oldest_age_s
        if hasattr(os, "register_at_fork"):
            import weakref

            ref = weakref.ref(self)

            def after_fork() -> None:
                buf = ref()
                if buf is not None:
                    buf._after_fork()

            os.register_at_fork(after_in_child=after_fork)

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._owner_lock = threading.Lock()
        self._adopt_lock = threading.Lock()
        self._entries: dict[str, list[Entry]] = {s: [] for s in SIGNALS}
        self._bytes = 0
        self._owner: str | None = None
        self._dir: Path | None = None
        self._lock_fd: int | None = None
        self._seq = itertools.count()
        self._failed_once = False
        self._next_adopt = 0.0
        self._closed = False

    # -- ownership ---------------------------------------------------------------------------
    def _ensure_owner(self) -> Path | None:
        """This process's directory (made and locked on first use), None if impossible."""
        if self._dir is not None:
            return self._dir
        with self._owner_lock:
            if self._dir is not None:
                return self._dir
            owner = f"{os.getpid()}-{secrets.token_hex(4)}"
            fd = -1
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.root / f"{owner}.lock",
                             os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                (self.root / owner).mkdir()
            except OSError as exc:
                if fd >= 0:
                    os.close(fd)
                self._fail_once(f"cannot use the disk buffer {self.root}: {exc}")
                return None
            self._owner, self._lock_fd, self._dir = owner, fd, self.root / owner
            return self._dir

    def _fail_once(self, message: str) -> None:
        if not self._failed_once:
            self._failed_once = True
            _log.error("llmgine-otel: %s (batches that cannot be sent are dropped and "
                       "counted; further failures only counted)", message)

    def _after_fork(self) -> None:
        """The child writes into its own directory; the parent's files stay the parent's.
        The inherited lock descriptor is closed, never unlocked (that would unlock the
        parent's lock too: flock locks belong to the shared open file)."""
        fd = self._lock_fd
        self._init_state()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- writing -------------------------------------------------------------------------------
    def write(self, signal: str, payload: bytes, items: int, created_ns: int) -> Entry | str:
        """Store one export request (on a worker thread). Returns its entry, or the reason
        it was dropped (counted): larger than the bound, or the disk refused it."""
        size = len(payload)
        directory = self._ensure_owner()
        if directory is None or self._closed:
            self._count_drop(signal, "buffer_write_failed", items)
            return "buffer_write_failed"
        if size > self.max_bytes:
            self._count_drop(signal, "buffer_disk_full", items, event="dropped_disk_full")
            return "buffer_disk_full"
        evicted = self._make_room(size)
        seq = next(self._seq)
        entry = Entry(created_ns, seq,
                      directory / f"{created_ns:020d}-{os.getpid()}-{seq}.{signal}.{items}.otlp",
                      signal, items, size)
        tmp = entry.path.with_name("." + entry.path.name + ".tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(payload)
            os.replace(tmp, entry.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            with self._lock:
                self._bytes -= size
            self._count_removed(evicted)
            self._fail_once(f"cannot write to the disk buffer {directory}: {exc}")
            self._count_drop(signal, "buffer_write_failed", items)
            return "buffer_write_failed"
        with self._lock:
            bisect.insort(self._entries[signal], entry)
        self._count_removed(evicted)
        with self.stats.lock:
            self.stats.buffer[(signal, "spilled")] += items
            self.stats.buffered[signal] += items
        return entry

    def _make_room(self, size: int) -> list[tuple[Entry, str]]:
        """Reserve ``size`` bytes, deleting the oldest unclaimed files past the bound."""
        evicted: list[tuple[Entry, str]] = []
        with self._lock:
            while self._bytes + size > self.max_bytes:
                oldest = self._oldest_unclaimed()
                if oldest is None:
                    break  # everything left is being resent right now
                self._remove_locked(oldest)
                evicted.append((oldest, "buffer_disk_full"))
            self._bytes += size
        return evicted

    def _oldest_unclaimed(self, signal: str | None = None) -> Entry | None:
        best: Entry | None = None
        for sig in (signal,) if signal else SIGNALS:
            for e in self._entries[sig]:
                if not e.claimed:
                    if best is None or e < best:
                        best = e
                    break
        return best

    def _remove_locked(self, entry: Entry) -> None:
        lst = self._entries[entry.signal]
        i = bisect.bisect_left(lst, entry)
        if i < len(lst) and lst[i] is entry:
            del lst[i]
            self._bytes -= entry.size
            with contextlib.suppress(OSError):
                entry.path.unlink()

    def _count_removed(self, removed: list[tuple[Entry, str]]) -> None:
        if not removed:
            return
        with self.stats.lock:
            for e, reason in removed:
                event = "dropped_disk_full" if reason == "buffer_disk_full" else "expired"
                self.stats.dropped[(e.signal, reason)] += e.items
                self.stats.buffer[(e.signal, event)] += e.items
                self.stats.buffered[e.signal] -= e.items

    def _count_drop(self, signal: str, reason: str, items: int, event: str | None = None,
                    sign: int = 1) -> None:
        with self.stats.lock:
            self.stats.dropped[(signal, reason)] += sign * items
            if event:
                self.stats.buffer[(signal, event)] += sign * items

    def undo_drop(self, signal: str, reason: str, items: int) -> None:
        """A batch whose write failed (counted dropped) was acknowledged after all."""
        event = "dropped_disk_full" if reason == "buffer_disk_full" else None
        self._count_drop(signal, reason, items, event, sign=-1)
        with self.stats.lock:
            self.stats.exported[signal] += items

    # -- resending -------------------------------------------------------------------------------
    def oldest_created(self, signal: str) -> int | None:
        """Creation time of the oldest unclaimed entry of ``signal`` (None: nothing)."""
        with self._lock:
            e = self._oldest_unclaimed(signal)
            return None if e is None else e.created_ns

    def claim_oldest(self, signal: str) -> tuple[Entry, bytes] | None:
        """The oldest entry of ``signal`` and its bytes, reserved for one sender."""
        while True:
            with self._lock:
                entry = self._oldest_unclaimed(signal)
                if entry is None:
                    return None
                entry.claimed = True
            try:
                return entry, entry.path.read_bytes()
            except OSError:  # deleted or unreadable behind our back: drop it, counted
                with self._lock:
                    self._remove_locked(entry)
                self._count_drop(signal, "buffer_corrupt", entry.items)
                with self.stats.lock:
                    self.stats.buffered[signal] -= entry.items

    def release(self, entry: Entry) -> None:
        """The send failed and will be tried again later."""
        with self._lock:
            entry.claimed = False

    def delivered(self, entry: Entry) -> None:
        """The endpoint acknowledged ``entry``: delete it, count it exported."""
        with self._lock:
            entry.claimed = False
            self._remove_locked(entry)
        with self.stats.lock:
            self.stats.exported[entry.signal] += entry.items
            self.stats.buffer[(entry.signal, "resent")] += entry.items
            self.stats.buffered[entry.signal] -= entry.items

    def rejected(self, entry: Entry) -> None:
        """The endpoint refused ``entry`` for good (not retryable): delete it, counted."""
        with self._lock:
            entry.claimed = False
            self._remove_locked(entry)
        with self.stats.lock:
            self.stats.dropped[(entry.signal, "export_failed")] += entry.items
            self.stats.buffered[entry.signal] -= entry.items

    def discard_copy(self, entry: Entry) -> bool:
        """A batch stored at shutdown while its send was in flight was acknowledged after
        all: delete the copy (counted resent) unless someone claimed it. False if kept."""
        with self._lock:
            lst = self._entries[entry.signal]
            i = bisect.bisect_left(lst, entry)
            if entry.claimed or not (i < len(lst) and lst[i] is entry):
                return False
            entry.claimed = True
        self.delivered(entry)
        return True

    # -- upkeep ----------------------------------------------------------------------------------
    def maintain(self) -> None:
        """Expire old files; take over the files of processes that are gone (every 30 s)."""
        now = self._clock()
        cutoff = int((now - self.max_age_s) * 1e9)
        expired: list[tuple[Entry, str]] = []
        with self._lock:
            for sig in SIGNALS:
                for e in list(self._entries[sig]):
                    if e.created_ns >= cutoff:
                        break
                    if not e.claimed:
                        self._remove_locked(e)
                        expired.append((e, "buffer_expired"))
        self._count_removed(expired)
        mono = time.monotonic()
        if mono >= self._next_adopt:
            self._next_adopt = mono + ADOPT_EVERY_S
            self.adopt()

    def adopt(self) -> int:
        """Move the files of gone processes into this process's directory; returns items."""
        if self._closed:
            return 0
        try:
            names = os.listdir(self.root)
        except OSError:
            return 0
        owners = {n[:-5] for n in names if n.endswith(".lock")}
        owners |= {n for n in names if not n.endswith(".lock") and (self.root / n).is_dir()}
        total = 0
        with self._adopt_lock:  # one adoption at a time in this process
            for owner in sorted(owners):
                if owner != self._owner:
                    total += self._adopt_owner(owner)
        return total

    def _adopt_owner(self, owner: str) -> int:
        lock_path = self.root / f"{owner}.lock"
        fd = -1
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            pass  # a directory without its lock: its owner's adopter was interrupted
        except OSError:
            return 0
        try:
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    return 0  # the owner is alive
            src = self.root / owner
            try:
                files = sorted(os.listdir(src))
            except OSError:
                files = []
            moved: list[Entry] = []
            for name in files:
                m = _NAME.match(name)
                if m is None:
                    with contextlib.suppress(OSError):
                        (src / name).unlink()  # a write the owner never finished
                    continue
                directory = self._ensure_owner()
                if directory is None:
                    return 0
                target = directory / name
                try:
                    os.rename(src / name, target)
                    size = target.stat().st_size
                except OSError:
                    continue  # another process took it
                moved.append(Entry(int(m.group(1)), int(m.group(3)), target, m.group(4),
                                   int(m.group(5)), size))
            with contextlib.suppress(OSError):
                src.rmdir()
            with contextlib.suppress(OSError):
                lock_path.unlink()
        finally:
            if fd >= 0:
                os.close(fd)
        if not moved:
            return 0
        evicted = self._make_room(sum(e.size for e in moved))
        with self._lock:
            for e in moved:
                bisect.insort(self._entries[e.signal], e)
        items = 0
        with self.stats.lock:
            for e in moved:
                self.stats.buffer[(e.signal, "adopted")] += e.items
                self.stats.buffered[e.signal] += e.items
                items += e.items
        self._count_removed(evicted)
        _log.info("llmgine-otel: resending %d items left in %s by a process that is gone",
                  items, self.root / owner)
        return items

    # -- introspection -----------------------------------------------------------------------------
    def items(self) -> int:
        with self._lock:
            return sum(e.items for lst in self._entries.values() for e in lst)

    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def oldest_age_s(self) -> float:
        with self._lock:
            heads = [lst[0].created_ns for lst in self._entries.values() if lst]
        return max(0.0, self._clock() - min(heads) / 1e9) if heads else 0.0

    def close(self) -> None:
        """Release the lock; remove this process's directory if it is empty."""
        self._closed = True
        if self._dir is not None:
            with contextlib.suppress(OSError):
                self._dir.rmdir()
                (self.root / f"{self._owner}.lock").unlink()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None


def describe(root: Path) -> dict[str, Any]:
    """What a buffer directory holds, for ``llmgine-otel doctor`` (reads, never changes)."""
    out: dict[str, Any] = {"files": 0, "bytes": 0, "items": {s: 0 for s in SIGNALS},
                           "oldest_ns": None, "live_processes": 0, "exists": root.is_dir()}
    if not out["exists"]:
        return out
    for name in sorted(os.listdir(root)):
        path = root / name
        if name.endswith(".lock"):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                out["live_processes"] += 1
            finally:
                os.close(fd)
            continue
        if not path.is_dir():
            continue
        for f in os.scandir(path):
            m = _NAME.match(f.name)
            if m is None:
                continue
            with contextlib.suppress(OSError):
                out["bytes"] += f.stat().st_size
            out["files"] += 1
            out["items"][m.group(4)] += int(m.group(5))
            created = int(m.group(1))
            if out["oldest_ns"] is None or created < out["oldest_ns"]:
                out["oldest_ns"] = created
    return out
