"""llmgine's ``ToolManager.execute_tool_call`` as tool execution events and ``execute_tool``
spans, with no code in the app.

Each run publishes a ``ToolExecutionStartedEvent`` as it starts and a
``ToolExecutionFinishedEvent`` with its real end, on the bus of the command that runs it
(``publish``); the span is current while the tool runs, so spans the tool makes nest under
it. ToolManager 0.0.1 never raises: it returns ``"Error executing {name}: ..."`` for an
exception, a timeout or invalid arguments, and ``"Error: Tool '{name}' not found"``; those
are ERROR spans with ``error.type`` the exception's class (or llmgine's
``ToolTimeoutError`` / ``ToolValidationError``, or ``tool_not_found``).

ToolManager runs a sync tool with ``loop.run_in_executor(None, ...)``, which does not carry
the context into the worker thread. So, for the duration of one run, the tool's entry in the
manager's public ``tools`` dict is a thin wrapper that runs it in a copy of the context (the
tool span current) and notes what it raised; the original is put back when the run ends.
ToolManager reads ``self.tools[name]`` before its first ``await``, so the swap and that read
cannot interleave with another run on the same loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import sys
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from wrapt import register_post_import_hook, wrap_function_wrapper

from llmgine_otel.events import ToolExecutionFinishedEvent, ToolExecutionStartedEvent
from llmgine_otel.propagation import inject_context, session_parent_span
from llmgine_otel.publish import aemit, current_scope, translator_for

__all__ = ["instrument", "uninstrument"]

_log = logging.getLogger("llmgine_otel")
_MODULE = "llmgine.llm.tools.tool_manager"
_ORIGINAL = "_llmgine_otel_original"
_active = False
_hooked = False
_wanted = False
_warned = False


def instrument() -> None:
    """Wrap ``ToolManager.execute_tool_call`` now, or when llmgine's tools are imported."""
    global _hooked, _wanted
    _wanted = True
    if not _hooked:
        _hooked = True
        register_post_import_hook(_on_import, _MODULE)  # runs now if already imported
    elif _MODULE in sys.modules:  # instrumented again after uninstrument()
        _on_import(sys.modules[_MODULE])


def uninstrument() -> None:
    global _active, _wanted
    _wanted = False
    if _active:
        from llmgine.llm.tools.tool_manager import ToolManager

        unwrap(ToolManager, "execute_tool_call")
        _active = False


def _on_import(module: Any) -> None:
    global _active
    if _wanted and not _active and hasattr(module, "ToolManager"):
        wrap_function_wrapper(module, "ToolManager.execute_tool_call", _execute_tool_call)
        _active = True


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        _log.warning("llmgine_otel: tracing a tool run failed; the tool itself ran "
                     "(further failures are silent)", exc_info=True)


class _Run:
    """One tool run: its events, and what the tool raised (seen by the swapped-in wrapper)."""

    __slots__ = ("called", "error", "name", "session_id", "tool_call_id")

    def __init__(self, tool_call: Any) -> None:
        self.name = str(getattr(tool_call, "name", "") or "")
        tcid = getattr(tool_call, "id", None)
        self.tool_call_id = tcid if isinstance(tcid, str) and tcid else None
        scope = current_scope()
        self.session_id = scope.session_id if scope is not None else "BUS"
        self.error: BaseException | None = None
        self.called = False

    def started_event(self, manager: Any, tool_call: Any) -> ToolExecutionStartedEvent:
        kwargs: dict[str, Any] = {}
        if self.tool_call_id is not None:
            kwargs["tool_call_id"] = self.tool_call_id
        ev = ToolExecutionStartedEvent(
            session_id=self.session_id, tool_name=self.name,
            tool_type=str(getattr(tool_call, "type", None) or "function"),
            tool_description=_description(manager, self.name),
            arguments=getattr(tool_call, "arguments", None), **kwargs)
        self.tool_call_id = ev.tool_call_id
        parent = session_parent_span(getattr(translator_for(), "table", None), self.session_id)
        if parent is not None:
            inject_context(ev.metadata, parent)
        return ev

    def finished_event(self, result: Any, raised: BaseException | None = None
                       ) -> ToolExecutionFinishedEvent:
        error, error_type = ((raised, type(raised).__qualname__) if raised is not None
                             else self._failure(result))
        return ToolExecutionFinishedEvent(session_id=self.session_id,
                                          tool_call_id=self.tool_call_id or "", result=result,
                                          error=error, error_type=error_type)

    def _failure(self, result: Any) -> tuple[Any, str | None]:
        """(error, error.type) when the run failed, from what the tool raised or from the
        error string ToolManager returned instead of raising."""
        if isinstance(self.error, asyncio.CancelledError) or (
                isinstance(result, str) and result.startswith(f"Error executing {self.name}:")
                and "timed out after" in result):
            return result if isinstance(result, str) else self.error, "ToolTimeoutError"
        if self.error is not None:
            return self.error, type(self.error).__qualname__
        if isinstance(result, str):
            if result.startswith(f"Error executing {self.name}:"):
                # Raised before the tool was called: llmgine's argument validation.
                return result, "ToolValidationError" if not self.called else "ToolExecutionError"
            if result == f"Error: Tool '{self.name}' not found":
                return result, "tool_not_found"
        return None, None

    def traced(self, func: Any, ctx: contextvars.Context) -> Any:
        """``func`` for this run: in ``ctx`` (sync tools, run in a worker thread), noting what
        it raises."""
        run = self

        if asyncio.iscoroutinefunction(func):
            @functools.wraps(func)
            async def atool(*args: Any, **kwargs: Any) -> Any:
                run.called = True
                try:
                    return await func(*args, **kwargs)
                except BaseException as exc:
                    run.error = exc
                    raise
            tool: Any = atool
        else:
            @functools.wraps(func)
            def stool(*args: Any, **kwargs: Any) -> Any:
                run.called = True
                try:
                    return ctx.run(func, *args, **kwargs)
                except BaseException as exc:
                    run.error = exc
                    raise
            tool = stool
        setattr(tool, _ORIGINAL, func)
        return tool


def _description(manager: Any, name: str) -> str | None:
    for schema in getattr(manager, "tool_schemas", None) or ():
        fn = schema.get("function") if isinstance(schema, dict) else None
        if isinstance(fn, dict) and fn.get("name") == name:
            desc = fn.get("description")
            return desc if isinstance(desc, str) else None
    return None


async def _execute_tool_call(wrapped: Any, instance: Any, args: tuple[Any, ...],
                             kwargs: dict[str, Any]) -> Any:
    if not is_instrumentation_enabled():
        return await wrapped(*args, **kwargs)
    tool_call = args[0] if args else kwargs.get("tool_call")
    try:
        run = _Run(tool_call)
        entry = await aemit(run.started_event(instance, tool_call))
        span = getattr(entry, "span", None)
    except Exception:  # noqa: BLE001 - never break the tool run
        _warn_once()
        return await wrapped(*args, **kwargs)
    token = otel_context.attach(trace.set_span_in_context(span)) if span is not None else None
    tools = getattr(instance, "tools", None)
    func = tools.get(run.name) if isinstance(tools, dict) else None
    original = getattr(func, _ORIGINAL, func)
    swapped = None
    try:
        if original is not None:
            swapped = tools[run.name] = run.traced(  # type: ignore[index]
                original, contextvars.copy_context())
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:  # ToolManager never raises, but cancellation does
        await _end(run, None, exc)
        raise
    finally:
        if swapped is not None and tools.get(run.name) is swapped:  # type: ignore[union-attr]
            tools[run.name] = original  # type: ignore[index]
        if token is not None:
            otel_context.detach(token)
    await _end(run, result)
    return result


async def _end(run: _Run, result: Any, raised: BaseException | None = None) -> None:
    try:
        await aemit(run.finished_event(result, raised))
    except Exception:  # noqa: BLE001
        _warn_once()
