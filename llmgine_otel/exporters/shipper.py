"""Sending encoded OTLP batches, with the disk buffer behind them.

The SDK's batch processor thread hands each batch to :class:`Shipper` (``encode`` + ``put``:
no network, no disk); the shipper's own thread sends batches oldest first, from memory (its
outbox) and from the disk buffer alike, one attempt each, through a :class:`Transport`
(gRPC today; OTLP/HTTP sends the same bytes). What cannot go out now goes to disk:

- a send fails in a way worth retrying (refused, unreachable, timeout, UNAVAILABLE, ...):
  that batch is written to disk, and while the endpoint is down (0.5 s, doubling to 5 s,
  between probes) every batch goes straight to disk; the next probe is the oldest batch on
  disk, and once one is acknowledged the backlog is resent oldest first, alongside new data;
- the outbox passes its bound (``outbox_max_bytes``, default 4 MiB: the endpoint is slower
  than the application, or one call hangs): the batch processor thread writes the newest
  batches to disk instead of queueing them in memory;
- shutdown: sending goes on until shortly before the bound, then what is left in memory is
  written to disk for the next process (a call still in flight is written too; if it is
  acknowledged after all, its copy is deleted).

A batch the endpoint refuses for good (UNAUTHENTICATED, INVALID_ARGUMENT, ...) is dropped and
counted ``export_failed``, as without the buffer. Nothing here runs on the publishing thread.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from llmgine_otel.buffer import DiskBuffer, Entry
from llmgine_otel.self_stats import SelfStats

__all__ = ["SendResult", "Shipper", "Transport"]

_log = logging.getLogger("llmgine_otel")

OUTBOX_MAX_BYTES = 4 * 1024 * 1024
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 5.0
MAINTAIN_EVERY_S = 1.0
FORK_WAIT_S = 2.0


class SendResult(enum.Enum):
    OK = "ok"
    RETRY = "retry"
    """Not delivered, worth sending again later (the batch is kept)."""
    REJECTED = "rejected"
    """Refused for good (the batch is dropped, counted ``export_failed``)."""


class Transport(Protocol):
    """One attempt to send one encoded export request (OTLP/gRPC, OTLP/HTTP)."""

    timeout_s: float

    def send(self, payload: bytes, timeout_s: float) -> tuple[SendResult, float | None, str]:
        """(result, retry delay the server asked for or None, detail for logs)."""
        ...

    def reset(self) -> None:
        """Reconnect from scratch before the next attempt (after a failure)."""
        ...

    def close(self) -> None:
        """Stop: a call in flight returns (failed) soon after."""
        ...


@dataclass
class _Batch:
    payload: bytes
    items: int
    created_ns: int
    state: str = "queued"
    """queued, sending; at shutdown with its send in flight: copying, then copied."""
    result: SendResult | None = None
    copy: Entry | None = None
    """Written to disk at shutdown while its send was still in flight."""


class Shipper:
    """Sends one signal's encoded batches for one export pipeline (see module doc)."""

    def __init__(self, signal: str, transport: Transport, encode: Callable[[Sequence[Any]], bytes],
                 stats: SelfStats, buffer: DiskBuffer, *,
                 outbox_max_bytes: int = OUTBOX_MAX_BYTES) -> None:
        self.signal = signal
        self.transport = transport
        self.encode = encode
        self.stats = stats
        self.buffer = buffer
        self.outbox_max_bytes = outbox_max_bytes
        self._start()
        if hasattr(os, "register_at_fork"):
            import weakref

            ref = weakref.ref(self)

            def call(method: str) -> Callable[[], None]:
                def hook() -> None:
                    s = ref()
                    if s is not None:
                        getattr(s, method)()
                return hook

            os.register_at_fork(before=call("_before_fork"),
                                after_in_parent=call("_after_fork_in_parent"),
                                after_in_child=call("_after_fork"))

    def _start(self) -> None:
        self._gate = threading.Lock()
        """Held during each gRPC call: a fork waits for the call in flight (gRPC skips its
        fork handlers while another thread is inside a call, and the child can abort)."""
        self._gate_held = False
        self._cond = threading.Condition()
        self._outbox: deque[_Batch] = deque()
        self._outbox_bytes = 0
        self._inflight: _Batch | None = None
        self._down_until = 0.0
        self._failures = 0
        self._closing = False
        self._network_stop_at = float("inf")
        self._stopped = False
        self._next_maintain = 0.0
        self._rejections_logged: set[str] = set()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"llmgine-otel-shipper-{self.signal}")
        self._thread.start()

    def _before_fork(self) -> None:
        self._gate_held = self._gate.acquire(timeout=FORK_WAIT_S)

    def _after_fork_in_parent(self) -> None:
        if self._gate_held:
            self._gate_held = False
            self._gate.release()

    def _after_fork(self) -> None:
        """The child sends its own batches: the parent's outbox stays the parent's. The
        transport is kept as inherited, as the SDK's exporters do (closing a gRPC channel
        inherited from the parent aborts the child)."""
        self._start()

    # -- the batch processor's side ------------------------------------------------------------
    def put(self, payload: bytes, items: int) -> None:
        """Queue one encoded batch (cheap: no I/O). Call :meth:`relieve` after."""
        with self._cond:
            self._outbox.append(_Batch(payload, items, time.time_ns()))
            self._outbox_bytes += len(payload)
            self._cond.notify()

    def relieve(self) -> None:
        """Past the outbox bound, write the newest batches to disk (on the caller's worker
        thread, while the shipper's thread is busy sending)."""
        while True:
            with self._cond:
                if self._outbox_bytes <= self.outbox_max_bytes or len(self._outbox) < 2:
                    return
                batch = self._outbox.pop()
                self._outbox_bytes -= len(batch.payload)
            self._spill(batch)

    def pending_items(self) -> int:
        """Items in memory here (outbox and the send in flight), not yet sent or on disk."""
        with self._cond:
            n = sum(b.items for b in self._outbox)
            if self._inflight is not None and self._inflight.state == "sending":
                n += self._inflight.items
            return n

    # -- the shipper's thread --------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while self._step():
                pass
        except Exception:  # noqa: BLE001 - log; shutdown still writes the outbox to disk
            _log.exception("llmgine-otel: the %s shipper stopped", self.signal)

    def _step(self) -> bool:
        now = time.monotonic()
        if now >= self._next_maintain:
            self._next_maintain = now + MAINTAIN_EVERY_S
            self.buffer.maintain()
        with self._cond:
            if self._stopped:
                return False
            if now >= self._network_stop_at:  # shutdown: what is left goes to disk
                spill = self._take_all()
                self._stopped = True
            elif now < self._down_until:
                spill = self._take_all()
                if self._closing:  # nothing to wait for: the rest goes to disk
                    self._stopped = True
                elif not spill:
                    self._cond.wait(min(MAINTAIN_EVERY_S, self._down_until - now))
                    return True
            else:
                spill = []
        if spill:
            for b in spill:
                self._spill(b)
            return not self._stopped
        return self._send_oldest()

    def _send_oldest(self) -> bool:
        on_disk = self.buffer.oldest_created(self.signal)
        with self._cond:
            head = self._outbox[0] if self._outbox else None
            if head is not None and (on_disk is None or head.created_ns <= on_disk):
                self._outbox.popleft()
                self._outbox_bytes -= len(head.payload)
                head.state = "sending"
                self._inflight = head
                batch: _Batch | None = head
            else:
                batch = None
            if batch is None and on_disk is None:
                if self._closing:
                    self._stopped = True
                    return False
                self._cond.wait(MAINTAIN_EVERY_S)
                return True
        if batch is not None:
            self._send_batch(batch)
            return True
        claimed = self.buffer.claim_oldest(self.signal)
        if claimed is not None:
            self._send_entry(*claimed)
        return True

    def _send_batch(self, batch: _Batch) -> None:
        result, delay, detail = self._attempt(batch.payload)
        with self._cond:
            self._inflight = None
            batch.result = result
            state, copy = batch.state, batch.copy
        if state == "copying":  # shutdown is writing it to disk: it handles the outcome
            return
        if state == "copied":  # written to disk at shutdown while this call was in flight
            if result is SendResult.OK and copy is not None:
                self.buffer.discard_copy(copy)
            return
        if result is SendResult.OK:
            with self.stats.lock:
                self.stats.exported[self.signal] += batch.items
        elif result is SendResult.RETRY:
            self._down(delay)
            self._spill(batch)
        else:
            self._rejected(detail)
            self.stats.drop(self.signal, "export_failed", batch.items)

    def _send_entry(self, entry: Entry, payload: bytes) -> None:
        result, delay, detail = self._attempt(payload)
        if result is SendResult.OK:
            self.buffer.delivered(entry)
        elif result is SendResult.RETRY:
            self.buffer.release(entry)
            self._down(delay)
        else:
            self._rejected(detail)
            self.buffer.rejected(entry)

    def _attempt(self, payload: bytes) -> tuple[SendResult, float | None, str]:
        try:
            with self._gate:
                result, delay, detail = self.transport.send(payload, self.transport.timeout_s)
        except Exception as exc:  # noqa: BLE001 - a transport bug: keep the batch
            return SendResult.RETRY, None, f"{type(exc).__name__}: {exc}"
        if result is SendResult.OK:
            self._failures = 0
            self._down_until = 0.0
        return result, delay, detail

    def _down(self, delay: float | None) -> None:
        """The endpoint is not answering: disk only until the next probe."""
        self._failures += 1
        backoff = delay if delay is not None else min(
            MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (self._failures - 1))
        with self._cond:
            self._down_until = time.monotonic() + backoff
        if not self._closing:
            with self._gate, contextlib.suppress(Exception):
                self.transport.reset()

    def _rejected(self, detail: str) -> None:
        code = detail.split(":", 1)[0]
        if code not in self._rejections_logged:
            self._rejections_logged.add(code)
            _log.error("Failed to export %s: %s (not retryable: dropped, counted "
                       "export_failed; further ones only counted)", self.signal, detail)

    def _take_all(self) -> list[_Batch]:
        out = list(self._outbox)
        self._outbox.clear()
        self._outbox_bytes = 0
        return out

    def _spill(self, batch: _Batch) -> Entry | None:
        stored = self.buffer.write(self.signal, batch.payload, batch.items, batch.created_ns)
        return stored if isinstance(stored, Entry) else None

    # -- stopping ----------------------------------------------------------------------------------
    def force_flush(self, timeout_millis: float = 30_000) -> bool:
        """Wait until nothing is in memory here (sent, or on disk)."""
        deadline = time.monotonic() + timeout_millis / 1000
        while self.pending_items() and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self.pending_items()

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Send what is in memory while time allows, then write the rest to disk; bounded."""
        budget = max(0.0, timeout_millis / 1000)
        deadline = time.monotonic() + budget
        with self._cond:
            self._closing = True
            self._network_stop_at = deadline - min(0.5, 0.2 * budget)
            self._cond.notify_all()
        self._thread.join(max(0.0, self._network_stop_at - time.monotonic()))
        if self._thread.is_alive():  # a call in flight: keep its batch, stop the thread
            with self._cond:
                self._stopped = True
                left = self._take_all()
                inflight = self._inflight
                if inflight is not None and inflight.state == "sending":
                    inflight.state = "copying"
                else:
                    inflight = None
            for b in left:
                self._spill(b)
            if inflight is not None:
                stored = self.buffer.write(self.signal, inflight.payload, inflight.items,
                                           inflight.created_ns)
                copy = stored if isinstance(stored, Entry) else None
                with self._cond:
                    inflight.state, inflight.copy = "copied", copy
                    acked = inflight.result is SendResult.OK
                if acked:  # acknowledged while the copy was written
                    if copy is not None:
                        self.buffer.discard_copy(copy)
                    else:
                        self.buffer.undo_drop(self.signal, str(stored), inflight.items)
        with contextlib.suppress(Exception):
            self.transport.close()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:  # the thread ended without reaching the outbox (it crashed)
            left = self._take_all()
        for b in left:
            self._spill(b)
