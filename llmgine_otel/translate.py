"""The translator: bus events -> spans and log records, following ``mapping.MAPPING``.

Each event class is resolved once (by name along its MRO) to a compiled plan; handling an
event is then one dict look-up and one call. Spans are found by id in the ``SpanTable``,
never through ambient context, and their times come from the events. Nothing here raises
into the caller: bad input is repaired or rejected and counted.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from llmgine_otel.config import CaptureMode, ObservabilityConfig
from llmgine_otel.content import Sanitizer, safe_str, scrub_secrets, to_semconv_messages, valid_utf8
from llmgine_otel.error_types import error_type
from llmgine_otel.event_time import event_time_ns
from llmgine_otel.events import OtelEvent
from llmgine_otel.field_paths import compile_name, compile_path
from llmgine_otel.mapping import (
    DEFAULT_RULE,
    MAPPING,
    SESSION_END_NAME,
    TRACE_SHAPES,
    Rule,
    held_content_families,
)
from llmgine_otel.metrics import SpanMetrics, SpanMetricsProcessor
from llmgine_otel.open_spans import OpenSpan, SpanTable
from llmgine_otel.propagation import parse_traceparent, trace_state
from llmgine_otel.self_stats import SelfStats
from llmgine_otel.span_attributes import current_span_attributes
from llmgine_otel.span_factory import DirectSpan, span_factory

__all__ = ["OTelHandler"]

_log = logging.getLogger("llmgine_otel")
_ROOT = Context()
_NO_SESSION = frozenset({"", "BUS", "None"})
_ID_FIELDS = frozenset({"event_id", "session_id", "timestamp", "command_id", "call_id",
                        "tool_call_id", "invocation_id", "agent_id"})
_KINDS = {"INTERNAL": SpanKind.INTERNAL, "CLIENT": SpanKind.CLIENT, "SERVER": SpanKind.SERVER}
_HELD_FAMILIES = held_content_families()

class _Plan:
    """One compiled rule: getters resolved, flags decided, the action bound."""

    __slots__ = ("action", "attrs", "body_fields", "content", "content_in_body", "content_keys",
                 "error_get", "error_type_get", "exc_get", "family", "hold_content", "key_get",
                 "kind", "log_event", "log_rate", "logs", "message_get", "name_get", "own",
                 "parent_families", "parents", "payload_nested", "payload_top", "rule",
                 "scope_get", "span_content_names", "span_record", "success_get")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.action = rule.action
        self.family = rule.family
        self.key_get = compile_path(rule.key) if rule.key else None
        self.scope_get = compile_path(rule.scope) if rule.scope else None
        self.name_get = compile_name(rule.name) if rule.name else None
        self.kind = _KINDS[rule.kind]
        self.parents = tuple((fam, compile_path(p)) for fam, p in rule.parents)
        self.parent_families = rule.parent_families
        self.attrs = tuple((a.name, _unless(compile_path(a.path), a.unset), a.type)
                           for a in rule.attributes)
        self.content = tuple((c.name, compile_path(c.path), c.shape) for c in rule.content)
        # The redaction hook sees the same key (the attribute name) on spans and log bodies.
        self.content_keys = {c.path: c.name for c in rule.content}
        st = rule.status
        self.error_get = compile_path(st.error) if st.error else None
        self.success_get = compile_path(st.success) if st.success else None
        self.message_get = compile_path(st.message) if st.message else None
        self.error_type_get = compile_path(st.error_type) if st.error_type else None
        self.exc_get = compile_path(rule.exception) if rule.exception else None
        self.payload_top = frozenset(p for p in rule.payload if "." not in p)
        self.log_event = rule.log_event
        # log_scope "span": the record also carries the span's attributes and the content of
        # the span's start (held on the open span) and end, as structured attributes.
        self.span_record = rule.log_scope == "span"
        self.hold_content = rule.action == "start" and rule.family in _HELD_FAMILIES
        self.content_in_body = not (self.span_record or self.hold_content)
        starts = [r for r in MAPPING if r.family == rule.family and r.action == "start"]
        self.span_content_names = frozenset(
            c.name for r in (*starts, rule) for c in r.content) if self.span_record else frozenset()
        self.payload_nested = tuple(tuple(p.split(".")) for p in rule.payload if "." in p)
        self.logs = True
        self.log_rate = 1.0
        self.body_fields: tuple[str, ...] | None = None
        self.own = False
        """This package's own event class: may have been translated already (see
        ``translate_now``)."""


class OTelHandler:
    """An llmgine ``ObservabilityHandler`` that turns events into OpenTelemetry telemetry.

    Register it on llmgine's own ``ObservabilityManager`` or on ours; ``configure()`` builds
    one wired to the providers it sets up.
    """

    name = "otel"

    def __init__(self, tracer_provider: Any = None, logger_provider: Any = None,
                 meter_provider: Any = None, config: ObservabilityConfig | None = None,
                 stats: SelfStats | None = None,
                 cost: Callable[..., float | None] | None = None) -> None:
        self.config = config or ObservabilityConfig()
        self.stats = stats or SelfStats()
        # Every counter of the accounting identity is updated under the stats lock: events
        # are translated on many threads (and, on free-threaded Python, truly at once).
        self._count = self.stats.outcome
        self._produce = self.stats.produce
        self._warned_unreadable = False
        self._tracer = trace.get_tracer("llmgine_otel", tracer_provider=tracer_provider)
        self._start_span = span_factory(self._tracer)
        self._logger = None
        if self.config.emit_logs:
            from opentelemetry._logs import get_logger

            self._logger = get_logger("llmgine_otel", logger_provider=logger_provider)
        if self.config.emit_metrics and meter_provider is not None and \
                hasattr(tracer_provider, "add_span_processor"):
            # Standalone use with the caller's providers: metrics from spans as they end.
            # (configure() records them on the export thread instead.)
            tracer_provider.add_span_processor(
                SpanMetricsProcessor(SpanMetrics(meter_provider.get_meter("llmgine_otel"))))
        self.log_sink: Any = None
        """Set by ``configure()``: a ``pipeline.LogSink`` taking finished log records."""
        self._capture: CaptureMode = self.config.capture_content
        self._san = Sanitizer(self.config.max_value_length, redact=self.config.redact,
                              on_repair=lambda n: self._count("repaired", n))
        self.table = SpanTable(self.config.max_open_spans, self.config.max_span_age_s,
                               self._end_evicted, sweep_in_background=True)
        self._cost = cost
        self._plans: dict[type, _Plan | None] = {}
        self._rules = {r.event: r for r in MAPPING}
        self._start_plans = {r.family: _Plan(r) for r in MAPPING if r.action == "start"}
        # The trace shape (mapping.TRACE_SHAPES): what _place and _settle_session do.
        shape = TRACE_SHAPES[self.config.trace_per]
        self._roots_below_session = shape.under_session == "root"
        self._session_marks = shape.session_span == "marks"
        self._session_ids = tuple(a.name for a in self._start_plans["session"].rule.attributes
                                  if a.path == "session_id")
        self._include = frozenset(self.config.include_events)
        self._exclude = frozenset(self.config.exclude_events)
        self._no_log = frozenset(self.config.no_log_events)
        self._rand = random.Random()

    # -- entry points ----------------------------------------------------------------------
    def handle(self, event: Any) -> None:
        """Translate one event. Never raises; a failure is counted as ``rejected``."""
        plan = self._plans.get(type(event), _UNKNOWN)
        if plan is _UNKNOWN:
            plan = self._plan_for(type(event))
        if plan is None:  # filtered out: costs one dict look-up
            return
        if plan.own and getattr(event, _TRANSLATED, None) is self:
            return  # translated synchronously by its publisher (translate_now)
        try:
            sid = getattr(event, "session_id", None)
            if sid.__class__ is str:
                self.table.touch_session(sid)  # a busy session is never aged out
            _ACTIONS[plan.action](self, plan, event)
        except Exception as exc:  # noqa: BLE001 - observability never raises into the bus
            self._unreadable(event, exc)

    def _unreadable(self, event: Any, exc: Exception) -> None:
        """The safety net: an event that raised while being read (an attribute access or a
        ``__str__`` that fails) is skipped and counted as ``rejected``, logged once."""
        self._count("rejected")
        if not self._warned_unreadable:
            self._warned_unreadable = True
            _log.warning("llmgine_otel could not translate a %s event (counted as "
                         "'rejected'; further failures are counted silently)",
                         type(event).__name__, exc_info=exc)

    def translate_now(self, event: Any) -> OpenSpan | None:
        """Translate one of this package's own events at once, for a publisher that needs
        its span before the bus delivers it (to make it current); the bus's later delivery
        to this handler is then skipped. Returns the event's open span, if any."""
        self.handle(event)
        try:
            object.__setattr__(event, _TRANSLATED, self)
        except (AttributeError, TypeError):
            return None  # a __slots__ event: the bus delivers it again (counted duplicate)
        plan = self._plans.get(type(event))
        key = self._key(plan, event) if plan is not None and plan.action == "start" else None
        return self.table.get(key) if key is not None else None

    async def ahandle(self, event: Any) -> None:
        """Async form: the work is in-memory, so this just calls :meth:`handle`."""
        self.handle(event)

    def _plan_for(self, cls: type) -> _Plan | None:
        names = [c.__name__ for c in cls.__mro__]
        plan: _Plan | None
        if (self._include and not self._include.intersection(names)) or \
                self._exclude.intersection(names):
            plan = None
        else:
            rule = next((self._rules[n] for n in names if n in self._rules), DEFAULT_RULE)
            plan = _Plan(rule)
            plan.logs = self._logger is not None and not self._no_log.intersection(names)
            if rule.action == "chunk" and not self.config.stream_chunk_logs:
                plan.logs = False
            rates = self.config.log_sample_rates
            plan.log_rate = next((rates[n] for n in names if n in rates), 1.0)
            if dataclasses.is_dataclass(cls):
                plan.body_fields = tuple(f.name for f in dataclasses.fields(cls))
            plan.own = issubclass(cls, OtelEvent)
        self._plans[cls] = plan
        return plan

    # -- helpers ---------------------------------------------------------------------------
    def _now_or(self, event: Any) -> int:
        ts = event_time_ns(getattr(event, "timestamp", None))
        if ts is None:
            self._count("repaired")
            return time.time_ns()
        return ts

    @staticmethod
    def _session(event: Any) -> str | None:
        sid = getattr(event, "session_id", None)
        if sid is None:
            return None
        if not isinstance(sid, str):
            sid = safe_str(sid)
        return None if sid in _NO_SESSION else sid

    def _key(self, plan: _Plan, event: Any) -> tuple[str, str] | None:
        raw = plan.key_get(event) if plan.key_get else None
        if raw is None or raw == "":
            return None
        key = raw if isinstance(raw, str) else safe_str(raw)
        if plan.scope_get is not None:
            scope = plan.scope_get(event)
            key = f"{scope if isinstance(scope, str) else safe_str(scope)}/{key}"
        return (plan.family, key)

    def _captured(self, plan: _Plan, event: Any) -> dict[str, Any]:
        """The rule's content, converted and sanitized (redaction hook, bounds, scrubbing)."""
        out: dict[str, Any] = {}
        for name, get, shape in plan.content:
            v = get(event)
            if v is None:
                continue
            if shape == "messages":
                v = to_semconv_messages(v)
            v = self._san.content(name, v)
            if v is not None:
                out[name] = v
        return out

    def _attributes(self, plan: _Plan, event: Any,
                    captured: dict[str, Any] | None = None) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        coerce = self._san.attribute
        for name, get, kind in plan.attrs:
            v = get(event)
            if v is None:
                continue
            if kind == "str" and v.__class__ is str and len(v) <= 256 and v.isascii():
                attrs[name] = v
                continue
            v = coerce(v, kind)
            if v is not None:
                attrs[name] = v
        if self._capture.on_span and plan.content:
            if captured is None:
                captured = self._captured(plan, event)
            for name, v in captured.items():
                attrs[name] = v if isinstance(v, str) else self._san.json(v)
        return attrs

    def _parent(self, plan: _Plan, event: Any, session: str | None, ts: int
                ) -> tuple[Context, OpenSpan | None]:
        """The parent context (explicit ids, a traceparent in metadata, the innermost open
        span of the session, a synthesized session span, or a new trace); a parent that
        gets a child is active (``SpanTable.touch``)."""
        found = self._find_parent(plan, event, session, ts)
        self.table.touch(found[1])
        return found

    def _find_parent(self, plan: _Plan, event: Any, session: str | None, ts: int
                     ) -> tuple[Context, OpenSpan | None]:
        table = self.table
        for fam, get in plan.parents:
            pid = get(event)
            if pid:
                entry = table.get((fam, pid if isinstance(pid, str) else safe_str(pid)))
                if entry is not None:
                    return entry.ctx, entry
        remote = self._remote_parent(event, session)
        if remote is not None:
            return remote
        if session is not None and plan.parent_families:
            entry = table.innermost(session, plan.parent_families)
            if entry is None and "session" in plan.parent_families:
                entry = self._synthetic_session(event, session, ts)
            if entry is not None:
                return entry.ctx, entry
        return _ROOT, None

    def _remote_parent(self, event: Any, session: str | None = None
                       ) -> tuple[Context, OpenSpan | None] | None:
        """The W3C ``traceparent`` in the event's (or its command's) metadata. When it names
        an open span of this session (the instrumentor stamps the current span), that local
        span is the parent; otherwise it is a remote parent (another process)."""
        for holder in (event, getattr(event, "command", None)):
            md = getattr(holder, "metadata", None)
            if md.__class__ is not dict and not isinstance(md, Mapping):
                continue
            tp = md.get("traceparent")  # type: ignore[union-attr]
            if tp.__class__ is not str:
                continue
            parsed = parse_traceparent(tp)
            if parsed is None:
                continue
            trace_id, span_id, flags = parsed
            if session is not None:
                local = self.table.find_span(session, span_id)
                if local is not None:
                    return local.ctx, local
            state = md.get("tracestate")  # type: ignore[union-attr]
            sc = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags),
                             trace_state=trace_state(state))
            return trace.set_span_in_context(NonRecordingSpan(sc), _ROOT), None
        return None

    # -- the trace shape ---------------------------------------------------------------------
    def _place(self, ctx: Context, parent: OpenSpan | None
               ) -> tuple[Context, tuple[Link, ...]]:
        """Where a new span goes whose parent resolved to ``parent`` (context ``ctx``): the
        one decision the trace shape makes (``TraceShape.under_session``). Under the parent;
        or, when the parent is the session's span and the shape roots a trace below the
        session, at the root of a trace of its own with a span link to the session's span.
        A calling command, an agent and a remote parent (``traceparent`` from another
        process, ``parent`` None) stay parents in both shapes."""
        if parent is not None and parent.family == "session" and self._roots_below_session:
            return _ROOT, (Link(parent.sc),)
        return ctx, ()

    def _settle_session(self, entry: OpenSpan) -> None:
        """A session span just added to the table: it stays open (``session`` shape), or it
        is a mark (``TraceShape.session_span``; flagged before it was added, so a thread that
        finds it at once already treats it so) and is ended now."""
        if entry.mark:
            entry.span.end(entry.start_ns)
            if entry.sampled:
                self._produce("spans")

    def _session_attributes(self, session: str | None) -> dict[str, Any]:
        """The session's id under every name its start rule gives it (``session.id``, ...)."""
        if session is None:
            return {}
        value = self._san.attribute(session, "str")
        return {name: value for name in self._session_ids} if value is not None else {}

    def _session_end(self, mark: OpenSpan, ts: int) -> OpenSpan:
        """The span a session's end makes when its start is a mark: ``session end``, the
        root of a trace of its own linked to the mark, with the session's attributes; the
        caller gives it the end's status and ends it."""
        attrs = {**(mark.inherit or {}), **self._session_attributes(mark.session)}
        start = max(ts, mark.start_ns)
        span = self._start_span(SESSION_END_NAME, context=_ROOT, kind=SpanKind.INTERNAL,
                                attributes=attrs, start_time=start, links=(Link(mark.sc),))
        entry = OpenSpan(mark.key, span, mark.session, start)
        entry.inherit = mark.inherit
        return entry

    def _new_session(self, event: Any, session: str, ts: int, evicted: OpenSpan | None
                     ) -> OpenSpan:
        """A session span its start event did not make: synthesized (the start was never
        seen) or, after ``evicted`` was ended by eviction, the session's continuation,
        linked to it and carrying what it passed on."""
        inherit = evicted.inherit if evicted is not None else current_span_attributes()
        attrs: dict[str, Any] = {**(inherit or {}), **self._session_attributes(session),
                                 "llmgine.span.synthetic": True}
        links: tuple[Link, ...] = ()
        if evicted is not None:
            attrs["llmgine.session.continued"] = True
            links = (Link(evicted.sc),)
        span = self._start_span(
            "session", context=_ctx_of(self._remote_parent(event)), kind=SpanKind.INTERNAL,
            attributes=attrs, start_time=ts, links=links)
        entry = OpenSpan(("session", session), span, session, ts)
        entry.inherit = inherit
        entry.mark = self._session_marks
        return entry

    def _synthetic_session(self, event: Any, session: str, ts: int) -> OpenSpan | None:
        key = ("session", session)
        existing = self.table.get(key)
        if existing is not None:
            return existing
        evicted = self.table.take_evicted(key)
        entry = self._new_session(event, session, ts, evicted)
        if not self.table.add(entry):
            # Another thread synthesized it first: use theirs, so the session stays one
            # trace. Ours is never ended, hence never exported.
            return self.table.get(key)
        self._settle_session(entry)
        self._count("session_continued" if evicted is not None else "synthetic_session")
        return entry

    def _continued_session(self, event: Any, key: tuple[str, str], ts: int
                           ) -> OpenSpan | None:
        """The end of a session whose span eviction ended, arriving with no event between:
        the continuation, made from the end event (None if eviction did not end it)."""
        evicted = self.table.take_evicted(key)
        if evicted is None:
            return None
        self.table.mark_ended(key)
        entry = self._new_session(event, key[1], self._hinted_start(event, ts), evicted)
        self._settle_session(entry)
        self._count("session_continued")
        return entry

    # -- log records -------------------------------------------------------------------------
    def _emit_log(self, plan: _Plan, event: Any, entry: OpenSpan | None, ts: int,
                  error: bool, captured: dict[str, Any] | None = None) -> None:
        """The event's log record, correlated to ``entry``'s span (if any). ``captured``: the
        event's content, when already made for the span."""
        if not plan.logs:
            return
        if entry is not None and not entry.sampled and not error:
            self._count("log_sampled_out")
            return
        if plan.log_rate < 1.0 and not error and self._rand.random() >= plan.log_rate:
            self._count("log_sampled_out")
            return
        attrs: dict[str, Any] = {"llmgine.event.type": type(event).__name__}
        sid = getattr(event, "session_id", None)
        if isinstance(sid, str) and sid:
            attrs["llmgine.session.id"] = sid if len(sid) <= 256 and sid.isascii() \
                else self._san.attribute(sid, "str")
        if plan.span_record and entry is not None:
            self._span_record_attributes(plan, event, entry, attrs, captured)
        name = plan.log_event
        sink = self.log_sink
        if sink is not None:  # configure(): finished records straight into the batch queue
            sc = entry.sc if entry is not None else INVALID_SPAN_CONTEXT
            sink.emit(ts, sc.trace_id, sc.span_id, sc.trace_flags,
                      _ERROR_SEV if error else _INFO_SEV, "ERROR" if error else "INFO",
                      self._body(plan, event), attrs, name)
        else:  # a caller's LoggerProvider: the SDK's generic path
            self._logger.emit(  # type: ignore[union-attr]
                timestamp=ts,
                context=entry.ctx if entry is not None else _ROOT,
                severity_number=_ERROR_SEV if error else _INFO_SEV,
                severity_text="ERROR" if error else "INFO",
                body=self._body(plan, event),
                attributes=attrs,
                event_name=name,
            )
        self._produce("logs")

    def _span_record_attributes(self, plan: _Plan, event: Any, entry: OpenSpan,
                                attrs: dict[str, Any], captured: dict[str, Any] | None) -> None:
        """A ``log_scope="span"`` record: the span's attributes (minus span-only content) and,
        with capture on events, the start's held content and this event's, structured."""
        names = plan.span_content_names
        for k, v in (getattr(entry.span, "attributes", None) or {}).items():
            if k not in names:
                attrs[k] = v
        if self._capture.on_event:
            if entry.content:
                attrs.update(entry.content)
            attrs.update(captured if captured is not None else self._captured(plan, event))

    def _body(self, plan: _Plan, event: Any) -> dict[str, Any]:
        """The event's fields, safe to serialize, without payload unless captured."""
        san = self._san
        full = self._capture.on_event and plan.content_in_body
        body: dict[str, Any] = {}
        names = plan.body_fields
        if names is None:
            try:
                names = tuple(k for k in vars(event) if not k.startswith("_"))
            except TypeError:
                return {"type": type(event).__name__}
        generic = plan.rule is DEFAULT_RULE
        payload = plan.payload_top
        for name in names:
            try:
                v = getattr(event, name, None)
            except Exception:  # noqa: BLE001 - a property that raises
                self._count("repaired")
                continue
            if v is None:
                continue
            cls = v.__class__
            if name in _ID_FIELDS:
                body[name] = v if cls is str and len(v) <= 256 and v.isascii() \
                    else san.data(v)
            elif name in payload or (generic and not _structural(v)):
                if full:
                    body[name] = san.content(plan.content_keys.get(name, name), v)
                elif v is not None and not isinstance(v, str | bytes | Mapping | list | tuple):
                    body[name] = _skeleton(v)
            elif cls is str and len(v) <= 256 and v.isascii():
                body[name] = scrub_secrets(v)
            elif cls is dict and (flat := _flat_text(v)) is not None:
                if flat:  # an empty dict says nothing, and keeps the body GC-tracked
                    body[name] = flat
            elif (cls is int and -_I64 <= v < _I64) or cls is bool:
                body[name] = v
            elif cls is float:
                body[name] = v if math.isfinite(v) else str(v)
            elif cls is list and len(v) <= 16 and all(
                    x.__class__ is str and len(x) <= 256 and x.isascii() for x in v):
                # A tuple of strings: the GC stops tracking it (and then the body) once it
                # has seen it, so a record waiting in the queue costs collections less.
                body[name] = tuple([scrub_secrets(x) for x in v])
            else:
                body[name] = san.data(v, scrub=True)
        if plan.payload_nested and not full:
            for path in plan.payload_nested:
                holder = body.get(path[0])
                for p in path[1:-1]:
                    holder = holder.get(p) if isinstance(holder, dict) else None
                if isinstance(holder, dict):
                    holder.pop(path[-1], None)
        return body

    # -- span end ----------------------------------------------------------------------------
    def _status(self, plan: _Plan, event: Any) -> tuple[str, str] | None:
        """(error.type, message) when the event says the operation failed, else None."""
        if plan.error_get is not None:
            err = plan.error_get(event)
            if err:
                et = error_type(err, plan.error_type_get(event) if plan.error_type_get
                                 else None)
                return et, self._san.text(safe_str(err), scrub=True)[:1024]
            return None
        if plan.success_get is not None:
            ok = plan.success_get(event)
            if ok is False or (ok is None and plan.family == "tool"):
                msg = plan.message_get(event) if plan.message_get else None
                text = self._san.text(safe_str(msg), scrub=True)[:1024] if msg else "failed"
                # Only a leading exception class name is taken from the typed field (e.g. a
                # tool result "KeyError: ..."), never its text: that may be content.
                typed = plan.error_type_get(event) if plan.error_type_get else msg
                return error_type(typed if isinstance(typed, str) else None, None), text
        return None

    def _finish(self, entry: OpenSpan, plan: _Plan, event: Any, end_ns: int,
                attrs: dict[str, Any]) -> tuple[str, str] | None:
        span = entry.span
        failure = self._status(plan, event)
        if entry.chunks:
            attrs.setdefault("llmgine.stream.chunk_count", entry.chunks)
            attrs.setdefault("gen_ai.response.time_to_first_chunk",
                             max(0, entry.chunk_first_ns - entry.start_ns) / 1e9)
            if entry.chunks > 1:
                attrs["llmgine.stream.chunk_interval.mean"] = (
                    (entry.chunk_last_ns - entry.chunk_first_ns) / (entry.chunks - 1) / 1e9)
                attrs["llmgine.stream.chunk_interval.max"] = entry.chunk_gap_max_ns / 1e9
        if "llmgine.cost.usd" in plan.rule.derived and self._cost is not None:
            cost = self._estimate_cost(entry, attrs)
            if cost is not None:
                attrs["llmgine.cost.usd"] = cost
        if failure is not None:
            attrs["error.type"] = failure[0]
            span.set_status(Status(StatusCode.ERROR, failure[1]))
        if attrs:
            _set_attributes(span, attrs)
        span.end(max(end_ns, entry.start_ns))
        if entry.sampled:  # what the export pipeline sees
            self._produce("spans")
        return failure

    def _estimate_cost(self, entry: OpenSpan, attrs: dict[str, Any]) -> float | None:
        ma = getattr(entry.span, "attributes", None) or {}
        try:
            return self._cost(  # type: ignore[misc]
                ma.get("gen_ai.provider.name"),
                attrs.get("gen_ai.response.model") or ma.get("gen_ai.request.model"),
                attrs.get("gen_ai.usage.input_tokens"), attrs.get("gen_ai.usage.output_tokens"),
                attrs.get("gen_ai.usage.cache_read.input_tokens"),
                attrs.get("gen_ai.usage.cache_creation.input_tokens"),
                attrs.get("gen_ai.usage.reasoning.output_tokens"))
        except LookupError:  # cost.CostNotReady: prices still loading, the call goes unpriced
            self._count("cost_unavailable")
            return None
        except Exception:  # noqa: BLE001 - a price lookup never breaks telemetry
            self._count("cost_failed")
            return None

    def _end_evicted(self, entry: OpenSpan, reason: str) -> None:
        """A span that never got its end event: ERROR with ``llmgine.span.end_reason`` (for
        a session's mark: its ``session end`` span)."""
        if entry.mark:
            entry = self._session_end(entry, time.time_ns())
        span = entry.span
        _set_attributes(span, {"llmgine.span.end_reason": reason})
        span.set_status(Status(StatusCode.ERROR, f"span not ended by its event ({reason})"))
        span.end(max(time.time_ns(), entry.start_ns))
        if entry.sampled:
            self._produce("spans")
        self._count(reason)

    def end_open_spans(self, reason: str = "ended_at_shutdown") -> int:
        """End every open span (ERROR, ``llmgine.span.end_reason``); used at shutdown."""
        entries = self.table.drain()
        for entry in entries:
            try:
                self._end_evicted(entry, reason)
            except Exception:  # noqa: BLE001
                self._count("rejected")
        return len(entries)

    # -- actions -----------------------------------------------------------------------------
    def _do_start(self, plan: _Plan, event: Any) -> None:
        ts = self._now_or(event)
        session = self._session(event)
        key = self._key(plan, event)
        if key is None:
            self._count("rejected")
            self._emit_log(plan, event, None, ts, False)
            return
        links: tuple[Link, ...] = ()
        if plan.family == "session":
            if session is None:
                session = key[1]
            existing = self.table.get(key)
            if existing is not None:
                self._count("duplicate_start")
                self._emit_log(plan, event, existing, ts, False)
                return
            ctx = _ctx_of(self._remote_parent(event))
            parent = None
        else:
            if self.table.get(key) is not None or self.table.was_ended(key):
                self._count("duplicate_start" if self.table.get(key) else "late_start")
                self._emit_log(plan, event, None, ts, False)
                return
            ctx, parent = self._parent(plan, event, session, ts)
            ctx, links = self._place(ctx, parent)
            if parent is None and session is not None:  # an app's span, or remote
                parent = self.table.get(("session", session))
        captured = self._captured(plan, event) if plan.content and (
            self._capture.on_span or (plan.hold_content and self._capture.on_event)) else None
        attrs = self._attributes(plan, event, captured)
        inherit = _inherited(parent)
        if inherit:
            attrs = {**inherit, **attrs}
        name = plan.name_get(event) if plan.name_get else plan.family
        span = self._start_span(name, context=ctx, kind=plan.kind, attributes=attrs,
                                start_time=ts, links=links)
        new = OpenSpan(key, span, session, ts)
        new.inherit = inherit
        new.mark = self._session_marks and plan.family == "session"
        if plan.hold_content and self._capture.on_event and captured:
            new.content = captured  # for the end's record
        entry: OpenSpan | None = new
        if not self.table.add(new):  # lost a race: first wins
            self._count("duplicate_start")
            entry = self.table.get(key)  # ours is never ended
        elif plan.family == "session":
            self._settle_session(new)
        self._emit_log(plan, event, entry, ts, False)

    def _do_end(self, plan: _Plan, event: Any) -> None:
        ts = self._now_or(event)
        key = self._key(plan, event)
        if key is None:
            self._count("rejected")
            self._emit_log(plan, event, None, ts, self._status(plan, event) is not None)
            return
        entry, ended_before = self.table.pop(key)
        if entry is None and ended_before and plan.family == "session":
            entry = self._continued_session(event, key, ts)
        if entry is None:
            if ended_before:
                self._count("duplicate_end")
                self._emit_log(plan, event, None, ts, False)
                return
            self._count("end_without_start")
            entry = self._span_from_end(plan, event, key, ts)
        if entry.mark:
            entry = self._session_end(entry, ts)
        captured = self._captured(plan, event) if plan.content and (
            self._capture.on_span or (plan.span_record and self._capture.on_event)) else None
        failure = self._finish(entry, plan, event, ts, self._attributes(plan, event, captured))
        self._emit_log(plan, event, entry, ts, failure is not None, captured)

    def _span_from_end(self, plan: _Plan, event: Any, key: tuple[str, str], ts: int
                       ) -> OpenSpan:
        """An end whose start never came: a span from the end event alone."""
        start = self._hinted_start(event, ts)
        session = self._session(event)
        sp = self._start_plans.get(plan.family, plan)
        links: tuple[Link, ...] = ()
        parent = None
        if plan.family == "session":
            ctx = _ctx_of(self._remote_parent(event))
        else:
            ctx, parent = self._parent(sp, event, session, start)
            ctx, links = self._place(ctx, parent)
        inherit = _inherited(parent)
        span = self._start_span(
            f"{plan.family} (start missing)" if plan.family != "session" else "session",
            context=ctx, kind=sp.kind, start_time=start, links=links,
            attributes={**(inherit or {}), **self._session_attributes(session),
                        "llmgine.span.missing_start": True})
        return OpenSpan(key, span, session, start)

    @staticmethod
    def _hinted_start(event: Any, ts: int) -> int:
        md = getattr(event, "metadata", None)
        if isinstance(md, Mapping):
            hinted = event_time_ns(md.get("llmgine.start_time"))
            if hinted is not None and hinted <= ts:
                return hinted
        return ts

    def _do_instant(self, plan: _Plan, event: Any) -> None:
        ts = self._now_or(event)
        session = self._session(event)
        key = self._key(plan, event)
        if key is not None:
            covered = self.table.get(key)  # a start/end pair made this span (or is making it)
            if covered is not None or self.table.was_ended(key):
                self._count("duplicate_end")
                self._emit_log(plan, event, covered, ts, False)
                return
        start = self._hinted_start(event, ts)
        ctx, parent = self._parent(plan, event, session, start)
        ctx, links = self._place(ctx, parent)
        if parent is None and session is not None:
            parent = self.table.get(("session", session))
        attrs = self._attributes(plan, event)
        inherit = _inherited(parent)
        if inherit:
            attrs = {**inherit, **attrs}
        name = plan.name_get(event) if plan.name_get else plan.family
        span = self._start_span(name, context=ctx, kind=plan.kind, attributes=attrs,
                                start_time=start, links=links)
        entry = OpenSpan(key or (plan.family, ""), span, session, start)
        if key is not None:
            self.table.mark_ended(key)
        failure = self._finish(entry, plan, event, ts, {})
        self._emit_log(plan, event, entry, ts, failure is not None)

    def _do_exception(self, plan: _Plan, event: Any) -> None:
        ts = self._now_or(event)
        session = self._session(event)
        target: OpenSpan | None = None
        for fam, get in plan.parents:
            pid = get(event)
            if pid:
                target = self.table.get((fam, pid if isinstance(pid, str) else safe_str(pid)))
                if target is not None:
                    break
        if target is None and session is not None:
            target = self.table.innermost(session, plan.parent_families)
        exc = plan.exc_get(event) if plan.exc_get else None
        if target is not None and not target.mark:
            attrs = _exception_attributes(exc, self._san)
            attrs.update(self._attributes(plan, event))
            target.span.add_event("exception", attrs, timestamp=ts)
        else:
            self._count("exception_without_span")
        self._emit_log(plan, event, target, ts, True)

    def _do_chunk(self, plan: _Plan, event: Any) -> None:
        ts = self._now_or(event)
        key = self._key(plan, event)
        entry = self.table.get(key) if key is not None else None
        if entry is None:
            self._count("chunk_without_span")
        else:
            if entry.chunks == 0:
                entry.chunk_first_ns = ts
            else:
                gap = ts - entry.chunk_last_ns
                if gap > entry.chunk_gap_max_ns:
                    entry.chunk_gap_max_ns = gap
            entry.chunk_last_ns = ts
            entry.chunks += 1
        self._emit_log(plan, event, entry, ts, False)

    def _do_log(self, plan: _Plan, event: Any) -> None:
        ts = self._now_or(event)
        session = self._session(event)
        entry = self.table.get(("session", session)) if session is not None else None
        self._emit_log(plan, event, entry, ts, False)


_UNKNOWN: Any = object()
_TRANSLATED = "_llmgine_otel_translated"
_I64 = 2**63

_ACTIONS: dict[str, Callable[[OTelHandler, _Plan, Any], None]] = {
    "start": OTelHandler._do_start,
    "end": OTelHandler._do_end,
    "instant": OTelHandler._do_instant,
    "exception": OTelHandler._do_exception,
    "chunk": OTelHandler._do_chunk,
    "log": OTelHandler._do_log,
}

_INFO_SEV = SeverityNumber.INFO
_ERROR_SEV = SeverityNumber.ERROR


def _flat_text(d: dict[Any, Any]) -> dict[str, str] | None:
    """A small dict of short ASCII strings (typical ``metadata``), scrubbed; else None."""
    if len(d) > 16:
        return None
    out = {}
    for k, v in d.items():
        if k.__class__ is not str or v.__class__ is not str or len(v) > 256 or len(k) > 64 \
                or not v.isascii() or not k.isascii():
            return None
        out[k] = scrub_secrets(v)
    return out


def _set_attributes(span: Any, attrs: dict[str, Any]) -> None:
    """The translator's own attributes: straight into a direct span's dict (typed and bounded
    already), through the API for any other span."""
    if span.__class__ is DirectSpan:
        span.set_trusted(attrs)
    else:
        span.set_attributes(attrs)


def _unless(get: Callable[[Any], Any], unset: tuple[str, ...]) -> Callable[[Any], Any]:
    """``get``, reading the ``unset`` values as None."""
    if not unset:
        return get
    return lambda e: None if (v := get(e)) in unset else v


def _inherited(parent: OpenSpan | None) -> Mapping[str, Any] | None:
    """``span_attributes`` of the publishing context, over those the parent passes on."""
    here = current_span_attributes()
    above = parent.inherit if parent is not None else None
    if above is None or here is None:
        return here if above is None else above
    return {**above, **here}


def _ctx_of(found: tuple[Context, OpenSpan | None] | None) -> Context:
    return found[0] if found is not None else _ROOT


def _structural(value: Any) -> bool:
    """Values an unknown event may keep without content capture: no free text."""
    return value is None or isinstance(value, bool | int | float)


def _skeleton(value: Any) -> dict[str, Any]:
    """A payload object without its content: its type and id fields."""
    out: dict[str, Any] = {"type": type(value).__name__}
    for name in ("command_id", "event_id", "session_id", "success"):
        try:
            v = getattr(value, name, None)
        except Exception:  # noqa: BLE001 - a __getattr__ that raises
            continue
        if isinstance(v, str | bool):
            out[name] = valid_utf8(v[:256]) if isinstance(v, str) else v
    return out


def _exception_attributes(exc: Any, san: Sanitizer) -> dict[str, Any]:
    """Semconv ``exception.*`` attributes, built without trusting ``str(exc)``."""
    if isinstance(exc, BaseException):
        attrs = {"exception.type": type(exc).__qualname__,
                 "exception.message": san.text(safe_str(exc), scrub=True)}
        try:
            stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            attrs["exception.stacktrace"] = san.text(stack, scrub=True)
        except Exception:  # noqa: BLE001 - str() of the exception may raise inside
            pass
        return attrs
    text = safe_str(exc) if exc is not None else "unknown error"
    return {"exception.type": error_type(text, None),
            "exception.message": san.text(text, scrub=True)}
