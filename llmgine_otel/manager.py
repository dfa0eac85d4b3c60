"""A drop-in for llmgine's ObservabilityManager: isolated, counted handlers, sync and async.

``observe_event`` is what llmgine's bus calls on every publish, on the event loop: handlers
run in order, each failure is caught, counted and logged once per handler, never raised.
Async handlers (``ahandle``) are scheduled on the running loop (or awaited by
``aobserve_event``), never given an event loop of their own per event, and cannot pile up:
at most ``max_in_flight`` calls of one handler run at once (an event beyond that is not
given to it, counted ``in_flight_limit``) and each call is cancelled after
``handler_timeout_s`` (counted ``timeout``). Neither ever blocks the caller.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from llmgine_otel.config import ObservabilityConfig
from llmgine_otel.self_stats import SelfStats

if TYPE_CHECKING:
    import asyncio

__all__ = ["AsyncObservabilityHandler", "ObservabilityHandler", "ObservabilityManager"]

DEFAULT_MAX_IN_FLIGHT = 1_000
DEFAULT_HANDLER_TIMEOUT_S = 30.0

_log = logging.getLogger("llmgine_otel")


class ObservabilityHandler:
    """Interface of a synchronous handler, as in llmgine: ``handle(event)``."""

    def handle(self, event: Any) -> None:
        raise NotImplementedError


class AsyncObservabilityHandler(ObservabilityHandler):
    """A handler whose work is async; ``handle`` is only used when no loop runs."""

    async def ahandle(self, event: Any) -> None:
        raise NotImplementedError

    def handle(self, event: Any) -> None:
        import asyncio

        asyncio.run(self.ahandle(event))


def _name(handler: Any) -> str:
    return str(getattr(handler, "name", None) or type(handler).__name__)


class ObservabilityManager:
    """Runs every registered handler on each event; same methods as llmgine's manager plus
    ``aobserve_event``. Pass it to ``MessageBus(observability=...)``.

    ``ObservabilityManager(config)`` (the design's form) takes ``enabled`` and the async
    handler bounds from an :class:`ObservabilityConfig`; ``ObservabilityManager(stats)``
    counts into a ``SelfStats`` (what ``configure()`` does). Anything else is a ``TypeError``
    here, never at publish."""

    def __init__(self, config: ObservabilityConfig | SelfStats | None = None, *,
                 stats: SelfStats | None = None, enabled: bool | None = None,
                 time_handlers: bool = True, max_in_flight: int | None = None,
                 handler_timeout_s: float | None = None) -> None:
        if isinstance(config, SelfStats):
            stats, config = config, None
        elif config is not None and not isinstance(config, ObservabilityConfig):
            raise TypeError(f"ObservabilityManager takes an ObservabilityConfig (or SelfStats), "
                            f"not {type(config).__name__}")
        if enabled is None:
            enabled = config.enabled if config is not None else True
        if max_in_flight is None:
            max_in_flight = (config.handler_max_in_flight if config is not None
                             else DEFAULT_MAX_IN_FLIGHT)
        if handler_timeout_s is None:
            handler_timeout_s = (config.handler_timeout_s if config is not None
                                 else DEFAULT_HANDLER_TIMEOUT_S)
        self.config = config
        self.stats = stats or SelfStats()
        self._handlers: list[Any] = []
        self._sync: tuple[tuple[Any, str], ...] = ()
        self._async: tuple[tuple[Any, str], ...] = ()
        self._enabled = enabled
        self._time = time_handlers
        self._warned: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()
        self.max_in_flight = max_in_flight
        self.handler_timeout_s = handler_timeout_s
        self._in_flight: dict[int, int] = {}  # id(handler) -> calls running
        self._flight_lock = threading.Lock()  # calls start on any thread, end on a loop

    # -- llmgine's API -----------------------------------------------------------------------
    def register_handler(self, handler: Any) -> None:
        """Add a handler (once; registering the same one again is a no-op)."""
        if not (callable(getattr(handler, "handle", None))
                or callable(getattr(handler, "ahandle", None))):
            raise TypeError(f"{handler!r} has neither handle(event) nor ahandle(event)")
        with self._lock:
            if handler not in self._handlers:
                self._handlers.append(handler)
                self._rebuild()

    def unregister_handler(self, handler: Any) -> None:
        with self._lock:
            if handler in self._handlers:
                self._handlers.remove(handler)
                self._rebuild()

    def clear_handlers(self) -> None:
        with self._lock:
            self._handlers.clear()
            self._rebuild()

    @property
    def handler_count(self) -> int:
        return len(self._handlers)

    @property
    def handlers(self) -> tuple[Any, ...]:
        return tuple(self._handlers)

    def set_enabled(self, enabled: bool) -> None:
        self._enabled = bool(enabled)

    @property
    def enabled(self) -> bool:
        return self._enabled

    def _rebuild(self) -> None:
        sync, asyn = [], []
        for h in self._handlers:
            a = getattr(h, "ahandle", None)
            if a is not None and inspect.iscoroutinefunction(a) and \
                    not _is_sync_first(h):
                asyn.append((h, _name(h)))
            else:
                sync.append((h, _name(h)))
        self._sync, self._async = tuple(sync), tuple(asyn)

    # -- observing -------------------------------------------------------------------------
    def observe_event(self, event: Any) -> None:
        """Hand ``event`` to every handler; never raises, never blocks on I/O."""
        if not self._enabled:
            return
        stats = self.stats
        for handler, name in self._sync:
            t0 = time.perf_counter() if self._time else 0.0
            try:
                handler.handle(event)
            except Exception as exc:  # noqa: BLE001 - isolated, counted, logged once
                self._failed(name, exc)
            stats.events_by_handler[name] += 1
            if self._time:
                stats.handler_seconds[name] += time.perf_counter() - t0
        if self._async:
            import asyncio

            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            for handler, name in self._async:
                if not self._admit(handler, name):
                    continue
                if loop is None:
                    _background_loop().submit(self._run_async(handler, name, event))
                else:
                    task = loop.create_task(self._run_async(handler, name, event))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def aobserve_event(self, event: Any) -> None:
        """Async form: sync handlers inline, async handlers awaited together."""
        if not self._enabled:
            return
        for handler, name in self._sync:
            try:
                handler.handle(event)
            except Exception as exc:  # noqa: BLE001
                self._failed(name, exc)
            self.stats.events_by_handler[name] += 1
        if self._async:
            import asyncio

            await asyncio.gather(*(self._run_async(h, n, event) for h, n in self._async
                                   if self._admit(h, n)))

    def _admit(self, handler: Any, name: str) -> bool:
        """Take one of ``handler``'s in-flight slots; False (counted) when all are taken."""
        key = id(handler)
        with self._flight_lock:
            running = self._in_flight.get(key, 0)
            if running >= self.max_in_flight:
                self.stats.handler_dropped[(name, "in_flight_limit")] += 1
                return False
            self._in_flight[key] = running + 1
        return True

    async def _run_async(self, handler: Any, name: str, event: Any) -> None:
        import asyncio

        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(handler.ahandle(event), self.handler_timeout_s)
        except TimeoutError:
            self.stats.handler_dropped[(name, "timeout")] += 1
        except Exception as exc:  # noqa: BLE001
            self._failed(name, exc)
        finally:
            with self._flight_lock:
                self._in_flight[id(handler)] -= 1
        self.stats.events_by_handler[name] += 1
        self.stats.handler_seconds[name] += time.perf_counter() - t0

    def in_flight(self, handler: Any) -> int:
        """Calls of ``handler`` running now."""
        with self._flight_lock:
            return self._in_flight.get(id(handler), 0)

    async def drain(self) -> None:
        """Wait for async handler tasks scheduled so far (e.g. before shutdown)."""
        if self._tasks:
            import asyncio

            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _failed(self, name: str, exc: BaseException) -> None:
        self.stats.handler_errors[name] += 1
        if name not in self._warned:
            self._warned.add(name)
            _log.error("observability handler %s failed (isolated; further failures are "
                       "only counted in llmgine.observability.handler.errors)", name,
                       exc_info=(type(exc), exc, exc.__traceback__))


def _is_sync_first(handler: Any) -> bool:
    """Handlers that define their own ``handle`` (like our translator) run synchronously."""
    own = getattr(type(handler), "handle", None)
    return own is not None and own is not AsyncObservabilityHandler.handle and \
        own is not ObservabilityHandler.handle


class _BackgroundLoop:
    """One daemon thread with one event loop, for async handlers called outside a loop."""

    def __init__(self) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="llmgine-otel-async-handlers")
        self.thread.start()

    def submit(self, coro: Any) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(coro, self.loop)


_bg: _BackgroundLoop | None = None
_bg_lock = threading.Lock()


def _background_loop() -> _BackgroundLoop:
    global _bg
    with _bg_lock:
        if _bg is None:
            _bg = _BackgroundLoop()
        return _bg
