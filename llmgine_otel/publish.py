"""Publishing this package's own events (LLM calls, tool executions) where they belong.

While a command handler runs, the bus instrumentation records which bus, loop, session and
command it runs for (:func:`command_scope`). An instrumented LLM call or tool run publishes
its events on that bus, so every observability handler and event subscriber of the bus sees
them, as the design says. The translator gets each event first, synchronously
(``OTelHandler.translate_now``), so its span exists at once and can be made the current span
while the call runs; the bus's later delivery to the same translator is skipped.

Nothing here raises into the caller: a failure to publish is logged once and the event is
still translated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["CommandScope", "aemit", "command_scope", "current_scope", "emit"]

_log = logging.getLogger("llmgine_otel")
_pending: set[Any] = set()
_warned = False


@dataclass(frozen=True, slots=True)
class CommandScope:
    """The command a piece of code runs for: its bus, that bus's loop, and the ids."""

    bus: Any
    loop: asyncio.AbstractEventLoop
    session_id: str
    command_id: str | None


_scope: ContextVar[CommandScope | None] = ContextVar("llmgine_otel_command_scope",
                                                    default=None)


def current_scope() -> CommandScope | None:
    """The command whose handler this code runs in (across awaits, tasks and threads that
    copy the context, such as ``asyncio.to_thread``), or None."""
    return _scope.get()


@contextmanager
def command_scope(scope: CommandScope) -> Iterator[None]:
    token = _scope.set(scope)
    try:
        yield
    finally:
        _scope.reset(token)


def translator_for(bus: Any = None) -> Any:
    """The ``OTelHandler`` that translates this process's events (the one the bus delivers
    to, else the instrumentation's, else the configured telemetry's), or None."""
    from llmgine_otel.instrument import active_observer
    from llmgine_otel.telemetry import get_telemetry

    obs = active_observer()
    if obs is not None:
        handler = obs.delivering_handler(bus) if bus is not None else None
        handler = handler or obs.handler
    else:
        handler = getattr(get_telemetry(), "handler", None)
    return handler if callable(getattr(handler, "translate_now", None)) else None


def _translate(event: Any, bus: Any) -> Any:
    handler = translator_for(bus)
    if handler is None:
        return None
    return handler.translate_now(event)


def _observe_without_bus(event: Any) -> None:
    """No bus to publish on: the instrumentation's (or telemetry's) manager gets it, so its
    other handlers see it too (the translator skips what it already translated)."""
    from llmgine_otel.instrument import active_observer
    from llmgine_otel.telemetry import get_telemetry

    obs = active_observer()
    if obs is not None:
        obs.observe(event)
        return
    tel = get_telemetry()
    if tel is not None:
        tel.observe_event(event)


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        _log.warning("llmgine_otel could not publish an event on the bus (translated anyway; "
                     "further failures are silent)", exc_info=True)


def emit(event: Any, target: Any = None) -> Any:
    """Translate ``event`` now and deliver it from synchronous code on any thread.

    ``target``: a MessageBus, any ``publish(event)`` callable, or None (the current
    command's bus, else the manager). Returns the event's open span entry (start events)."""
    bus, loop = _destination(target)
    try:
        entry = _translate(event, bus)
    except Exception:  # noqa: BLE001 - never break the caller
        entry = None
    try:
        _deliver(event, target, bus, loop)
    except Exception:  # noqa: BLE001
        _warn_once()
    return entry


async def aemit(event: Any, target: Any = None) -> Any:
    """:func:`emit` from async code: on the bus's own loop the publish is awaited."""
    bus, loop = _destination(target)
    try:
        entry = _translate(event, bus)
    except Exception:  # noqa: BLE001
        entry = None
    try:
        if bus is not None and _running_loop() is loop:
            await bus.publish(event, await_processing=False)
        elif bus is None and callable(target):
            result = target(event)
            if asyncio.iscoroutine(result):
                await result
        else:
            _deliver(event, target, bus, loop)
    except Exception:  # noqa: BLE001
        _warn_once()
    return entry


def _destination(target: Any) -> tuple[Any, asyncio.AbstractEventLoop | None]:
    """(bus, its loop) for ``target``; (None, None) for a plain callable or nothing."""
    scope = _scope.get()
    if target is None:
        return (scope.bus, scope.loop) if scope is not None else (None, None)
    if callable(getattr(target, "publish", None)):
        if scope is not None and scope.bus is target:
            return target, scope.loop
        return target, _running_loop()
    return None, None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _deliver(event: Any, target: Any, bus: Any, loop: asyncio.AbstractEventLoop | None
             ) -> None:
    if bus is None:
        if callable(target):
            result = target(event)
            if asyncio.iscoroutine(result):
                _schedule_here(result) or result.close()
            return
        _observe_without_bus(event)
        return
    if loop is None or loop.is_closed() or not loop.is_running() \
            or getattr(bus, "_event_queue", None) is None:
        # The bus's loop is gone or the bus is stopped (llmgine would buffer the event and
        # warn): its manager's handlers get it directly.
        _observe_without_bus(event)
        return
    coro = bus.publish(event, await_processing=False)
    if _running_loop() is loop:
        _schedule_here(coro)
    else:  # a worker thread (asyncio.to_thread, litellm's executor): hand it to the loop
        asyncio.run_coroutine_threadsafe(coro, loop)


def _schedule_here(coro: Any) -> bool:
    loop = _running_loop()
    if loop is None:
        return False
    task = loop.create_task(coro)
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    return True
