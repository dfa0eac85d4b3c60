"""Stop signals flush telemetry: on SIGTERM (how Kubernetes, systemd, docker and supervisors
stop a process) every live :class:`~llmgine_otel.telemetry.Telemetry` runs its bounded
shutdown, then the process dies by the signal exactly as it would have without this package
(exit status "killed by SIGTERM", 143 in a shell).

Python's default SIGTERM action kills the process without running ``atexit``, so without
this the queued telemetry of a stopped process is lost. The rules (README "Stop signals"):

- A handler is installed only where the disposition is the OS default (``SIG_DFL``), for
  SIGTERM and SIGINT. A handler the application installed before ``configure()`` is left in
  place and runs as before; when the application then exits normally (``sys.exit``, the end
  of ``main``, an exception), the at-exit shutdown flushes. ``SIG_IGN`` is left alone.
- SIGINT with Python's own handler (``KeyboardInterrupt``) is left alone too: the
  ``KeyboardInterrupt`` reaches interpreter exit, where the at-exit shutdown runs.
- An application that installs its own handler *after* ``configure()`` replaces ours. If it
  chains to the previous handler (``prev = signal.signal(SIGTERM, mine)`` ... ``prev(signum,
  frame)``, the usual convention), ours runs at that point: flush, then the default action.
  If it ends the process with ``sys.exit`` or by returning, the at-exit shutdown flushes.
  Only a handler that kills the process itself (``os._exit``, or re-raising ``SIG_DFL``)
  skips the flush; such a handler should call ``get_telemetry().shutdown()`` first.
- A second signal while the flush runs kills the process at once (the usual "press twice").
- Python runs signal handlers on the main thread only and lets only the main thread install
  them: when ``configure()`` runs on another thread nothing is installed, a warning says so
  once, the at-exit shutdown still flushes on a normal exit, and the application can call
  :func:`install_signal_handlers` from its main thread.

The flush itself runs on a helper thread that the handler waits for within the shutdown
bound: a signal can arrive while the main thread holds a lock the shutdown needs, and a
bounded wait then costs the flush, never a hung process.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmgine_otel.telemetry import Telemetry

__all__ = ["STOP_SIGNALS", "install_signal_handlers", "watch"]

_log = logging.getLogger("llmgine_otel")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_watched: weakref.WeakSet[Telemetry] = weakref.WeakSet()
_lock = threading.Lock()
_warned_thread = False
_stopping = False


def watch(telemetry: Telemetry) -> None:
    """Flush ``telemetry`` on a stop signal (installing the handlers if this is the main
    thread); its ``shutdown`` forgets it again."""
    with _lock:
        _watched.add(telemetry)
    install_signal_handlers()


def forget(telemetry: Telemetry) -> None:
    with _lock:
        _watched.discard(telemetry)


def install_signal_handlers() -> bool:
    """Install the flushing handler for SIGTERM and SIGINT where their disposition is the OS
    default. Call it from the main thread when ``configure()`` ran elsewhere. Returns False
    (after one warning) when called off the main thread."""
    global _warned_thread
    if threading.current_thread() is not threading.main_thread():
        if not _warned_thread:
            _warned_thread = True
            _log.warning(
                "llmgine-otel: configure() ran off the main thread, so SIGTERM/SIGINT cannot "
                "be hooked (Python installs signal handlers from the main thread only); "
                "telemetry is still flushed at a normal exit. Call "
                "llmgine_otel.signals.install_signal_handlers() from the main thread to "
                "flush on SIGTERM too.")
        return False
    for signum in STOP_SIGNALS:
        try:
            if signal.getsignal(signum) == signal.SIG_DFL:
                signal.signal(signum, _on_signal)
        except (ValueError, OSError):  # not supported here (e.g. an embedded interpreter)
            continue
    return True


def _on_signal(signum: int, frame: Any) -> None:
    """Flush every live Telemetry within its bound, then die by ``signum`` by default."""
    global _stopping
    if _stopping:  # a second signal during the flush: stop now
        _die(signum)
    _stopping = True
    with _lock:
        live = [t for t in _watched if not t.is_shut_down]
    if live:
        bound = max(t.config.shutdown_timeout_s for t in live) + 0.5
        threads = [threading.Thread(target=_shutdown_quietly, args=(t,), daemon=True,
                                    name="llmgine-otel-signal-flush") for t in live]
        for t in threads:
            t.start()
        deadline = time.monotonic() + bound
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
    _die(signum)


def _shutdown_quietly(telemetry: Telemetry) -> None:
    try:
        telemetry.shutdown()
    except Exception:  # noqa: BLE001 - the process is stopping; never mask the signal
        pass


def _die(signum: int) -> None:
    """The default action of ``signum``: the process ends killed by the signal."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    time.sleep(1.0)  # the signal is delivered to some thread of the process meanwhile
    os._exit(128 + signum)  # only if it was blocked everywhere
