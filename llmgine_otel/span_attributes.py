"""Who and what: ``user.id`` and the app's own attributes on every span of a session.

::

    with llmgine_otel.span_attributes({"app.tenant": "acme"}, user_id="u-42"):
        async with bus.session("chat-1") as session:
            ...

Every span this package starts inside the block (session, commands, LLM calls, tool runs),
also in tasks and threads that copy the context, carries them; and a span passes them on to
its children, so commands and LLM calls of that session carry them even when they start
elsewhere. Backends filter on them: Jaeger's tag search, Tempo's TraceQL, Langfuse's user
and session views. Values are strings, booleans, numbers or lists of strings; others are
turned into strings (never raised).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["current_span_attributes", "span_attributes"]

_current: ContextVar[Mapping[str, Any] | None] = ContextVar("llmgine_otel_span_attributes",
                                                           default=None)


def current_span_attributes() -> Mapping[str, Any] | None:
    """The attributes set by the enclosing :func:`span_attributes` blocks, or None."""
    return _current.get()


def _value(v: Any) -> Any:
    if isinstance(v, str | bool | int | float):
        return v
    if isinstance(v, list | tuple) and all(isinstance(x, str) for x in v):
        return tuple(v)
    return str(v)


@contextmanager
def span_attributes(values: Mapping[str, Any] | None = None, /, *,
                    user_id: str | None = None) -> Iterator[None]:
    """Add ``values`` (and ``user.id``) to the spans started inside the block; nested blocks
    add to (and override) the outer ones."""
    merged = dict(_current.get() or {})
    for k, v in (values or {}).items():
        if v is not None:
            merged[str(k)] = _value(v)
    if user_id is not None:
        merged["user.id"] = _value(user_id)
    token = _current.set(merged or None)
    try:
        yield
    finally:
        _current.reset(token)
