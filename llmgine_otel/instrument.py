"""``LLMgineInstrumentor``: trace an llmgine app with one line, or none (opentelemetry-instrument).

It wraps three methods of llmgine's ``MessageBus``:

- ``publish``: every event reaches the translator at ingress, whether or not the app gave
  the bus an ObservabilityManager; a W3C ``traceparent`` of the current span is added to the
  event's metadata (when it is in a trace of the event's session), so tool events and the
  like parent correctly even when commands of one session run concurrently;
- ``execute``: the current span's ``traceparent`` (else the session span's) goes into
  ``command.metadata`` (if absent) before the command starts, so nested commands, concurrent
  commands of one session, and commands sent to other processes parent correctly (a command
  whose parent is the session span becomes, with one trace per command, a trace of its own
  linked to it: ``OTelHandler._place`` decides);
- ``_execute_with_middleware``: while the handler runs, the command span is the current
  span of that task, so spans made inside by other instrumentation or the app's own tracer
  (across awaits and ``asyncio.create_task``) become its children; and the command's bus is
  where LLM calls and tool runs inside it publish their events (``publish.command_scope``).

No duplicates: instrumenting twice is refused by ``BaseInstrumentor``; an event is marked
with a per-instrumentation token once observed (re-publishing it is not observed again);
and when the bus's own manager already holds an ``OTelHandler`` (the app registered
``telemetry.handler`` or passed ``telemetry.manager``), the bus delivers and ingress does not.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import logging
import os
from collections.abc import Callable, Collection, MutableMapping
from importlib.util import find_spec
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from llmgine_otel.open_spans import SpanTable
from llmgine_otel.propagation import TRACEPARENT, inject_context, session_parent_span
from llmgine_otel.publish import CommandScope, command_scope
from llmgine_otel.translate import OTelHandler

__all__ = ["LLMgineInstrumentor", "active_observer"]

_log = logging.getLogger("llmgine_otel")
_SEEN = "_llmgine_otel_seen"
_SESSION_EVENTS = frozenset({"SessionStartEvent", "SessionEndEvent", "SessionEvent"})
_WRAPPED = ("publish", "execute", "_execute_with_middleware")
_tokens = itertools.count(1)


class _Observer:
    """What one instrumentation observes with, and the three bus wrappers bound to it."""

    def __init__(self, handler: Any, observe: Callable[[Any], None]) -> None:
        self.handler = handler
        self.observe = observe
        # A plain string: serializers that dump an event's __dict__ stay happy, and a copy
        # of the event in another process (other pid) is observed there.
        self.token = f"{os.getpid()}-{next(_tokens)}"
        self._link_types: dict[type, bool] = {}
        self._failed = False

    # -- look-ups ----------------------------------------------------------------------------
    def delivering_handler(self, bus: Any) -> Any:
        """The OTelHandler the bus's own manager will call on publish, if any."""
        if getattr(bus, "_event_queue", None) is None:
            return None  # not started: llmgine buffers without observing
        mgr = getattr(bus, "_observability", None)
        for h in getattr(mgr, "_handlers", None) or ():
            if h is self.handler or isinstance(h, OTelHandler):
                return h
        return None

    def table_for(self, bus: Any) -> SpanTable | None:
        """The span table holding this bus's spans."""
        h = self.delivering_handler(bus) or self.handler
        table = getattr(h, "table", None)
        return table if isinstance(table, SpanTable) else None

    def _links(self, cls: type) -> bool:
        v = self._link_types.get(cls)
        if v is None:
            v = self._link_types[cls] = not any(c.__name__ in _SESSION_EVENTS
                                                for c in cls.__mro__)
        return v

    def _warn_once(self, what: str) -> None:
        if not self._failed:
            self._failed = True
            _log.warning("llmgine_otel instrumentation failed in %s (further failures are "
                         "silent)", what, exc_info=True)

    # -- wrappers ----------------------------------------------------------------------------
    def publish(self, wrapped: Any, instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        """Observe the event at ingress (sync: before the coroutine even starts)."""
        event = args[0] if args else kwargs.get("event")
        if event is not None and getattr(event, _SEEN, None) != self.token:
            try:
                self._ingress(instance, event)
            except Exception:  # noqa: BLE001 - never break the bus
                self._warn_once("publish")
        return wrapped(*args, **kwargs)

    def _ingress(self, bus: Any, event: Any) -> None:
        delivering = self.delivering_handler(bus)
        md = getattr(event, "metadata", None)
        if isinstance(md, MutableMapping) and TRACEPARENT not in md and self._links(type(event)):
            table = getattr(delivering or self.handler, "table", None)
            span = session_parent_span(table if isinstance(table, SpanTable) else None,
                                    getattr(event, "session_id", None))
            if span is not None:
                inject_context(md, span)
        try:
            object.__setattr__(event, _SEEN, self.token)
        except (AttributeError, TypeError):
            pass  # __slots__ events: the bus-manager check still prevents duplicates
        if delivering is None:
            self.observe(event)

    def execute(self, wrapped: Any, instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        """Put the caller's span context into ``command.metadata`` before it starts: the
        current span (in one of the session's traces), else the session's own span, so
        concurrent commands of one session never become each other's children."""
        command = args[0] if args else kwargs.get("command")
        try:
            md = getattr(command, "metadata", None)
            if isinstance(md, MutableMapping) and TRACEPARENT not in md:
                table = self.table_for(instance)
                sid = getattr(command, "session_id", None)
                span = session_parent_span(table, sid)
                if span is None and table is not None and isinstance(sid, str):
                    entry = table.get(("session", sid))
                    span = entry.span if entry is not None else None
                if span is not None:
                    inject_context(md, span)
        except Exception:  # noqa: BLE001
            self._warn_once("execute")
        return wrapped(*args, **kwargs)

    async def run_handler(self, wrapped: Any, instance: Any, args: tuple[Any, ...],
                          kwargs: dict[str, Any]) -> Any:
        """Run the command handler with the command span current (attach/detach here)."""
        command = args[0] if args else kwargs.get("command")
        span = None
        try:
            table = self.table_for(instance)
            cid = getattr(command, "command_id", None)
            if table is not None and cid is not None:
                entry = table.get(("command", cid if isinstance(cid, str) else str(cid)))
                span = entry.span if entry is not None else None
        except Exception:  # noqa: BLE001
            self._warn_once("_execute_with_middleware")
        scope = _scope_of(instance, command)
        if scope is None:
            return await wrapped(*args, **kwargs)
        with command_scope(scope):
            if span is None:
                return await wrapped(*args, **kwargs)
            # Status and exceptions are the translator's job (from CommandResultEvent).
            with trace.use_span(span, end_on_exit=False, record_exception=False,
                                set_status_on_exception=False):
                return await wrapped(*args, **kwargs)


def _scope_of(bus: Any, command: Any) -> CommandScope | None:
    """Where LLM calls and tool runs inside this command's handler publish their events."""
    try:
        loop = asyncio.get_running_loop()
        sid = getattr(command, "session_id", None)
        cid = getattr(command, "command_id", None)
        return CommandScope(bus, loop, sid if isinstance(sid, str) else str(sid),
                            cid if cid is None or isinstance(cid, str) else str(cid))
    except Exception:  # noqa: BLE001
        return None


_active: _Observer | None = None


def active_observer() -> _Observer | None:
    """The observer of the current instrumentation, or None when not instrumented."""
    return _active


class LLMgineInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instrument llmgine's ``MessageBus``.

    Besides the bus it traces litellm's calls (:mod:`llmgine_otel.litellm_calls`) and
    ToolManager's tool runs (:mod:`llmgine_otel.tool_runs`) when they are importable;
    ``libraries=("litellm",)`` or ``LLMGINE_OTEL_INSTRUMENT`` chooses (``none``: bus only).

    ``instrument()`` uses :func:`llmgine_otel.get_telemetry`, else the app's global
    providers when it set its own, else :func:`configure` (:mod:`llmgine_otel.providers`);
    ``instrument(tracer_provider=..., logger_provider=..., meter_provider=...)`` uses those
    (the contrib convention); ``instrument(telemetry=t)`` uses ``t``;
    ``instrument(handler=h)`` feeds any object with ``handle(event)`` and a ``table`` (an
    :class:`OTelHandler`), e.g. one built on in-memory exporters in tests. With llmgine
    missing, or ``OTEL_SDK_DISABLED=true``, it does nothing and says so once (INFO).
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("llmgine >= 0.0.1",)

    def _check_dependency_conflicts(self) -> Any:
        # A missing llmgine is a documented no-op (logged in _instrument), not an error.
        if find_spec("llmgine") is None:
            return None
        return super()._check_dependency_conflicts()

    def _instrument(self, **kwargs: Any) -> None:
        global _active
        libraries = _libraries(kwargs.get("libraries"))  # ConfigError before any patching
        from llmgine_otel.otel_env import bool_var

        if bool_var("OTEL_SDK_DISABLED", os.environ, False).value:
            _log.info("llmgine_otel: OTEL_SDK_DISABLED=true; LLMgineInstrumentor does nothing")
            return
        try:
            from llmgine.bus import bus as bus_module
        except ImportError as exc:  # missing, or Python < 3.12 (llmgine needs typing.override)
            _log.info("llmgine_otel: llmgine is not importable (%s); LLMgineInstrumentor "
                      "does nothing", exc)
            return
        handler = kwargs.get("handler")
        if handler is not None:
            observe: Callable[[Any], None] = handler.handle
        else:
            telemetry = kwargs.get("telemetry")
            if telemetry is None:
                from llmgine_otel.providers import telemetry_for

                telemetry = telemetry_for(kwargs.get("tracer_provider"),
                                          kwargs.get("logger_provider"),
                                          kwargs.get("meter_provider"))
            handler = telemetry.handler
            observe = telemetry.manager.observe_event
        observer = _Observer(handler, observe)
        for name in _WRAPPED:
            wrapper = {"publish": observer.publish, "execute": observer.execute,
                       "_execute_with_middleware": observer.run_handler}[name]
            wrap_function_wrapper(bus_module, f"MessageBus.{name}", wrapper)
        _active = observer
        for lib in libraries:  # each wraps its library when (or once) it is imported
            importlib.import_module(_LIBRARIES[lib]).instrument()

    def _uninstrument(self, **kwargs: Any) -> None:
        global _active
        if _active is None:
            return
        from llmgine.bus.bus import MessageBus

        for module in _LIBRARIES.values():
            importlib.import_module(module).uninstrument()
        for name in _WRAPPED:
            unwrap(MessageBus, name)
        _active = None


def _libraries(given: Any) -> tuple[str, ...]:
    """What is traced besides the bus: ``libraries=`` or ``LLMGINE_OTEL_INSTRUMENT``
    (comma-separated; ``none`` for the bus only), default all of them."""
    from llmgine_otel.config import ConfigError

    var = "LLMGINE_OTEL_INSTRUMENT"
    if given is None:
        raw = os.environ.get(var, "").strip()
        names = tuple(n.strip() for n in raw.split(",") if n.strip()) if raw \
            else tuple(_LIBRARIES)
    else:
        var = "libraries"
        names = (given,) if isinstance(given, str) else tuple(given)
    if names == ("none",):
        return ()
    unknown = [n for n in names if n not in _LIBRARIES]
    if unknown:
        raise ConfigError(f"{var}={','.join(map(str, names))!r} is not valid; allowed: a "
                          f"comma-separated subset of {', '.join(_LIBRARIES)}, or none")
    return names


# What is traced besides the bus: each module has instrument() and uninstrument().
_LIBRARIES = {"litellm": "llmgine_otel.litellm_calls", "tools": "llmgine_otel.tool_runs"}
