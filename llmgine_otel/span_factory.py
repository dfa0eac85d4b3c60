"""Spans for the translator, made without the SDK's generic per-span machinery.

``Tracer.start_span`` builds, for every span, a ``BoundedAttributes`` (a lock, a dict, and a
validation pass over every value), two ``BoundedList``s (a lock and a deque each), a lock,
a fresh ``TraceFlags``, and at the end a second object (the ``ReadableSpan`` snapshot) for
the processors. The translator's attributes are already typed and bounded (``content``), so
:class:`DirectSpan` keeps them in a plain dict, makes event and link lists only when used,
shares one lock and the ``TraceFlags`` values, and hands *itself* to ``on_end`` (like the
SDK's span it is a ``ReadableSpan``, and once ended nothing changes it). Everything else is
the SDK's: the tracer's sampler, id generator, resource, limits, scope, processors
(``on_start``, ``_on_ending``, ``on_end``) and its own metrics hook; a value set by other
code (``trace.get_current_span().set_attribute(...)`` in a handler) is validated as the SDK
validates it. With a tracer that is not the SDK's, :func:`span_factory` returns its own
``start_span``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from time import time_ns
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, Span
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from llmgine_otel import fast_paths

__all__ = ["DirectSpan", "span_factory"]

_log = logging.getLogger(__name__)
_LOCK = threading.Lock()  # mutations of live spans are rare and brief: one lock for all
_UNSET = Status(StatusCode.UNSET)
_FLAGS = {f: TraceFlags(f) for f in range(256)}
_EMPTY: tuple[Any, ...] = ()


class DirectSpan(Span):
    """An SDK span (``opentelemetry.sdk.trace.Span``) built by :class:`_Factory`."""

    # Fields that start out the same for every span: read from the class until a span sets
    # its own, so making a span stores only what differs.
    _trace_config = None
    _record_exception = True
    _set_status_on_exception = True
    _lock = _LOCK
    _events: Any = _EMPTY
    _links: Any = _EMPTY
    _status = _UNSET
    _end_time: int | None = None
    _dropped_events = 0
    _dropped_links = 0

    def __init__(self, name: str, context: SpanContext, parent: SpanContext | None,
                 attributes: dict[str, Any], kind: SpanKind, tracer: Any,
                 record_end_metrics: Callable[[], None] | None) -> None:
        # No super().__init__: every field the SDK's Span and ReadableSpan read is set here.
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._resource = tracer.resource
        self._instrumentation_info = tracer.instrumentation_info
        self._instrumentation_scope = tracer._instrumentation_scope
        self._sampler = tracer.sampler
        self._span_processor = tracer.span_processor
        self._limits = tracer._span_limits
        self._attributes: Any = attributes
        self._start_time: int | None = None
        self._record_end_metrics = record_end_metrics

    # -- what the exporters read -------------------------------------------------------------
    @property
    def dropped_attributes(self) -> int:
        attrs = self._attributes
        return attrs.dropped if isinstance(attrs, BoundedAttributes) else 0

    @property
    def dropped_events(self) -> int:
        return self._dropped_events

    @property
    def dropped_links(self) -> int:
        return self._dropped_links

    # -- the translator's own writes (values already typed and bounded) ------------------------
    def set_trusted(self, attributes: Mapping[str, Any]) -> None:
        """Add attributes made by the translator, without validating them again."""
        with self._lock:
            if self._end_time is not None:
                return
            attrs = self._attributes
            limit = self._limits.max_span_attributes
            if attrs.__class__ is dict and (limit is None or
                                            len(attrs) + len(attributes) <= limit):
                attrs.update(attributes)
                return
        self.set_attributes(attributes)

    # -- the API, for everybody else: the SDK's own validation and limits ----------------------
    def set_attribute(self, key: str, value: Any) -> None:
        self.set_attributes({key: value})

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        with self._lock:
            if self._end_time is not None:
                _log.warning("Setting attribute on ended span.")
                return
            attrs = self._attributes
            if attrs.__class__ is dict:  # from now on exactly the SDK's BoundedAttributes
                limits = self._limits
                attrs = self._attributes = BoundedAttributes(
                    limits.max_span_attributes, attrs, immutable=False,
                    max_value_len=limits.max_span_attribute_length)
            attrs._set_items(attributes)

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None
                  ) -> None:
        limits = self._limits
        event = Event(name=name, timestamp=timestamp, attributes=BoundedAttributes(
            limits.max_event_attributes, attributes, max_value_len=limits.max_attribute_length,
            immutable=True))
        with self._lock:
            if not self._ended("add_event"):
                self._events, dropped = _bounded_append(self._events, event, limits.max_events)
                self._dropped_events += dropped

    def add_link(self, context: SpanContext, attributes: Any = None) -> None:
        if not (context and (context.is_valid or attributes or context.trace_state)):
            return  # the SDK's _is_valid_link
        limits = self._limits
        link = trace_api.Link(context, BoundedAttributes(
            limits.max_link_attributes, attributes, max_value_len=limits.max_attribute_length,
            immutable=True))
        with self._lock:
            if not self._ended("add_link"):
                self._links, dropped = _bounded_append(self._links, link, limits.max_links)
                self._dropped_links += dropped

    def _ended(self, what: str) -> bool:
        if self._end_time is None:
            return False
        _log.warning("Calling %s on an ended span.", what)
        return True

    def start(self, start_time: int | None = None, parent_context: Any = None) -> None:
        self._start_time = start_time if start_time is not None else time_ns()
        self._span_processor.on_start(self, parent_context=parent_context)

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._end_time is not None:
                _log.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else time_ns()
            if isinstance(self._attributes, BoundedAttributes):
                self._attributes._immutable = True  # as the SDK's span does at its end
            if self._events.__class__ is list:
                self._events = tuple(self._events)
            if self._links.__class__ is list:
                self._links = tuple(self._links)
        if self._record_end_metrics is not None:
            self._record_end_metrics()
        proc = self._span_processor
        on_ending = getattr(proc, "_on_ending", None)
        if on_ending is not None:
            on_ending(self)
        proc.on_end(self)  # ended: nothing changes it any more, so no snapshot is needed


def _bounded_append(items: Any, item: Any, maxlen: int | None) -> tuple[list[Any], int]:
    """``items`` with ``item`` appended (a new list in place of the shared empty tuple) and
    how many of the oldest went to stay within ``maxlen``, as in the SDK's BoundedList."""
    if items is _EMPTY:
        items = []
    dropped = 0
    if maxlen is not None and len(items) >= maxlen:
        items.pop(0)
        dropped = 1
    items.append(item)
    return items, dropped


class _Factory:
    """``start(name, context, kind, attributes, start_time)`` with the SDK tracer's
    sampling, ids and processors (``Tracer.start_span``'s steps, in its order)."""

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer
        self._metrics = tracer._tracer_metrics
        self._random_ids = tracer.id_generator.is_trace_id_random()
        limits = tracer._span_limits
        self._max_attrs = limits.max_span_attributes
        self._max_len = limits.max_span_attribute_length

    def __call__(self, name: str, context: Any = None, kind: SpanKind = SpanKind.INTERNAL,
                 attributes: dict[str, Any] | None = None, start_time: int | None = None,
                 links: Sequence[Any] = ()) -> Any:
        tracer = self._tracer
        parent: SpanContext | None = trace_api.get_current_span(context).get_span_context()
        if not tracer._is_enabled():
            return trace_api.NonRecordingSpan(context=parent)  # type: ignore[arg-type]
        ids = tracer.id_generator
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = ids.generate_trace_id()
            random_ids = self._random_ids
        else:
            trace_id = parent.trace_id
            random_ids = parent.trace_flags.random_trace_id
        result = tracer.sampler.should_sample(context, trace_id, name, kind, attributes, links)
        decision = result.decision
        flags = (TraceFlags.SAMPLED if decision.is_sampled() else TraceFlags.DEFAULT) | \
            (TraceFlags.RANDOM_TRACE_ID if random_ids else 0)
        span_context = SpanContext(trace_id, ids.generate_span_id(), is_remote=False,
                                   trace_flags=_FLAGS[flags], trace_state=result.trace_state)
        record_end = self._metrics.start_span(parent, decision)
        if not decision.is_recording():
            return trace_api.NonRecordingSpan(context=span_context)
        got = result.attributes
        # The samplers pass the attributes through (a read-only view of this very dict);
        # keep the translator's dict unless the sampler changed them.
        attrs: Any = attributes if attributes is not None and got == attributes else dict(got)
        max_attrs, max_len = self._max_attrs, self._max_len
        if (max_attrs is not None and len(attrs) > max_attrs) or max_len is not None:
            # the SDK's limits apply
            attrs = BoundedAttributes(max_attrs, attrs, immutable=False, max_value_len=max_len)
        span = DirectSpan(name, span_context, parent, attrs, kind, tracer,
                          None if record_end is _NOOP_END else record_end)
        for link in links:  # the SDK's limits and validity check, as Tracer.start_span's
            span.add_link(link.context, link.attributes)
        span.start(start_time, context)
        return span


def _noop() -> None:
    pass


try:  # the SDK's "no metrics" hook, so spans skip calling it
    from opentelemetry.sdk.trace._tracer_metrics import noop as _NOOP_END
except ImportError:  # pragma: no cover - another SDK version
    _NOOP_END = _noop

_NEEDED = ("sampler", "resource", "span_processor", "id_generator", "instrumentation_info",
           "_span_limits", "_instrumentation_scope", "_tracer_metrics", "_is_enabled")


def span_factory(tracer: Any) -> Callable[..., Any]:
    """A ``start_span``-like callable for ``tracer``: direct spans for the SDK's tracer when
    the ``spans`` fast path is on (tested SDK version, same span fields as the SDK's own), the
    tracer's own ``start_span`` for anything else (the public path, an API no-op tracer)."""
    if not all(hasattr(tracer, n) for n in _NEEDED):
        return tracer.start_span  # type: ignore[no-any-return]
    decision = fast_paths.decide("spans")
    if decision.enabled:
        problem = _structure_problem()
        if problem is not None:
            decision = fast_paths.Decision("spans", False, problem)
    fast_paths.report(decision)
    return _Factory(tracer) if decision.enabled else tracer.start_span


@cache
def _structure_problem() -> str | None:
    """Why DirectSpan no longer matches the SDK's Span, or None: every field a span made by
    ``Tracer.start_span`` holds must be one DirectSpan sets or defaults (a field that a new
    SDK adds and its methods read would otherwise be missing from every direct span)."""
    from opentelemetry.sdk.trace import TracerProvider

    try:
        tracer = TracerProvider(shutdown_on_exit=False).get_tracer("llmgine_otel.probe")
        real = tracer.start_span("probe")
        direct = _Factory(tracer)("probe", attributes={})
        missing = sorted(n for n in vars(real)
                         if n not in vars(direct) and n not in DirectSpan.__dict__)
        real.end()
        direct.end()
    except Exception as exc:  # noqa: BLE001 - any surprise means: not the SDK we know
        return f"the SDK's Span could not be matched ({type(exc).__name__}: {exc})"
    if missing:
        return f"the SDK's Span has fields DirectSpan does not set: {', '.join(missing)}"
    return None
