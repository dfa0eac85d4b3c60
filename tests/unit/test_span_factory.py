"""Direct spans behave like the SDK's own: same ids, sampling, processors, limits, API
semantics and exported data, for the translator's writes and everybody else's."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmgine_otel.span_factory import DirectSpan, span_factory

pytestmark = pytest.mark.usefixtures("fast_path")  # tests of the fast paths themselves


class _Ids(IdGenerator):
    """Deterministic ids, so a direct span and an SDK span can be compared field by field."""

    def __init__(self) -> None:
        self._n = itertools.count(1)

    def generate_span_id(self) -> int:
        return 0x1000 + next(self._n)

    def generate_trace_id(self) -> int:
        return 0xABC0000 + next(self._n)


class _Record(SpanProcessor):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.calls.append(("start", span))

    def _on_ending(self, span: Any) -> None:
        self.calls.append(("ending", span))

    def on_end(self, span: Any) -> None:
        self.calls.append(("end", span))

    def ended(self) -> list[Any]:
        return [s for what, s in self.calls if what == "end"]


def _provider(sampler: Sampler | None = None, limits: SpanLimits | None = None
              ) -> tuple[TracerProvider, _Record]:
    tp = TracerProvider(id_generator=_Ids(), sampler=sampler, span_limits=limits,
                        shutdown_on_exit=False)
    rec = _Record()
    tp.add_span_processor(rec)
    return tp, rec


def _fields(span: Any) -> dict[str, Any]:
    return dict(name=span.name, context=span.context, parent=span.parent, kind=span.kind,
                attributes=dict(span.attributes), events=[(e.name, dict(e.attributes),
                                                           e.timestamp) for e in span.events],
                links=[(lk.context.span_id, dict(lk.attributes or {})) for lk in span.links],
                status=(span.status.status_code,
                                                span.status.description),
                start=span.start_time, end=span.end_time, resource=span.resource,
                scope=span.instrumentation_scope, dropped=(span.dropped_attributes,
                                                          span.dropped_events,
                                                          span.dropped_links))


def _both(build: Any, **provider: Any) -> tuple[Any, Any]:
    """The same story told through ``tracer.start_span`` and through the factory, each on a
    fresh provider with the same deterministic ids."""
    out = []
    for direct in (False, True):
        tp, rec = _provider(**provider)
        tracer = tp.get_tracer("llmgine_otel", "1.0")
        start = span_factory(tracer) if direct else tracer.start_span
        build(start)
        out.append(rec.ended())
    return out[0], out[1]


def _story(start: Any) -> None:
    root = start("session", kind=SpanKind.INTERNAL, attributes={"a": 1, "s": "x"},
                 start_time=100)
    child = start("chat gpt", context=trace.set_span_in_context(root), kind=SpanKind.CLIENT,
                  attributes={"gen_ai.request.model": "gpt", "t": (1, 2)}, start_time=110)
    if isinstance(child, DirectSpan):
        child.set_trusted({"gen_ai.usage.input_tokens": 5})
    else:
        child.set_attributes({"gen_ai.usage.input_tokens": 5})
    child.add_event("exception", {"exception.type": "KeyError"}, timestamp=115)
    child.set_status(Status(StatusCode.ERROR, "boom"))
    child.end(120)
    root.set_attribute("late", [1, 2])  # a list: stored as the SDK stores it (a tuple)
    root.set_status(StatusCode.OK)
    root.set_status(StatusCode.ERROR, "ignored: OK is final")
    root.end(130)


def test_same_spans_as_the_sdk() -> None:
    sdk, direct = _both(_story)
    assert [_fields(s) for s in direct] == [_fields(s) for s in sdk]
    assert all(type(s) is DirectSpan for s in direct)
    assert encode_spans(direct) == encode_spans(sdk)


def test_processors_see_start_ending_and_end_once_with_the_span_itself() -> None:
    tp, rec = _provider()
    span = span_factory(tp.get_tracer("t"))("s", attributes={"k": "v"}, start_time=1)
    span.end(2)
    span.end(3)  # warned and ignored, like the SDK
    assert [w for w, _ in rec.calls] == ["start", "ending", "end"]
    assert all(s is span for _, s in rec.calls)
    assert span.end_time == 2 and not span.is_recording()
    span.set_attribute("after", 1)
    assert "after" not in span.attributes


def test_sampling_drop_and_record_only() -> None:
    tp, rec = _provider(sampler=ALWAYS_OFF)
    span = span_factory(tp.get_tracer("t"))("dropped", attributes={"a": 1})
    assert not span.is_recording() and span.get_span_context().is_valid
    assert not span.get_span_context().trace_flags.sampled
    span.end()
    assert rec.calls == []

    class RecordOnly(Sampler):
        def should_sample(self, *a: Any, **k: Any) -> SamplingResult:
            return SamplingResult(Decision.RECORD_ONLY, {"added": True})

        def get_description(self) -> str:
            return "record-only"

    tp, rec = _provider(sampler=ParentBased(RecordOnly()))
    span = span_factory(tp.get_tracer("t"))("kept", attributes={"a": 1})
    span.end()
    (got,) = rec.ended()
    assert not got.context.trace_flags.sampled
    assert dict(got.attributes) == {"added": True}  # what the sampler returned


def test_children_of_a_direct_span_made_by_any_tracer_share_its_trace() -> None:
    tp, _ = _provider()
    parent = span_factory(tp.get_tracer("llmgine_otel"))("command", start_time=1)
    other = tp.get_tracer("httpx")  # another instrumentation, the SDK's own path
    with trace.use_span(parent, end_on_exit=False), other.start_as_current_span("GET") as child:
        pass
    parent.end(5)
    assert child.parent == parent.get_span_context()
    assert child.context.trace_id == parent.get_span_context().trace_id


def test_other_code_writing_to_a_direct_span_gets_the_sdk_validation_and_limits() -> None:
    def story(start: Any) -> None:
        span = start("s", attributes={"a": 1, "b": 2}, start_time=1)
        span.set_attribute("c", 3)  # over the limit of 3? no: exactly 3
        span.set_attribute("d", 4)  # over: the oldest ("a") goes, counted
        span.set_attribute("bad", object())  # not an attribute value: str()'d
        span.set_attributes({"": 1})  # empty key: dropped
        for i in range(5):
            span.add_event(f"e{i}", {"i": i}, timestamp=10 + i)  # max 2 events: oldest dropped
        span.end(20)

    limits = SpanLimits(max_span_attributes=3, max_events=2)
    sdk, direct = _both(story, limits=limits)
    fs, fd = _fields(sdk[0]), _fields(direct[0])
    assert fd == fs
    assert fd["dropped"][0] >= 2 and fd["dropped"][1] == 3


def test_value_length_limit_applies_to_the_translators_attributes_too() -> None:
    def story(start: Any) -> None:
        start("s", attributes={"long": "x" * 50, "n": 1}, start_time=1).end(2)

    sdk, direct = _both(story, limits=SpanLimits(max_span_attribute_length=10))
    assert direct[0].attributes["long"] == "x" * 10
    assert _fields(direct[0]) == _fields(sdk[0])


def test_exception_in_a_with_block_is_recorded_like_the_sdk() -> None:
    def story(start: Any) -> None:
        span = start("s", start_time=1)
        with pytest.raises(ValueError), trace.use_span(
                span, end_on_exit=True, record_exception=True, set_status_on_exception=True):
            raise ValueError("nope")

    sdk, direct = _both(story)
    fs, fd = _fields(sdk[0]), _fields(direct[0])
    for f in (fs, fd):
        f.pop("end")  # wall clock
        for ev in f["events"]:
            ev[1].pop("exception.stacktrace")
            ev[1].pop("exception.escaped", None)
        f["events"] = [(n, a) for n, a, _ in f["events"]]
    assert fd == fs
    assert fd["status"][0] is StatusCode.ERROR


def test_a_tracer_that_is_not_the_sdks_keeps_its_own_start_span() -> None:
    noop = trace.NoOpTracer()
    assert span_factory(noop) == noop.start_span


def test_links_added_later_follow_the_sdks_limits() -> None:
    from opentelemetry.trace import SpanContext, TraceFlags

    def story(start: Any) -> None:
        span = start("s", start_time=1)
        for i in range(4):
            span.add_link(SpanContext(0xA, 0x100 + i, False, TraceFlags(1)), {"i": i})
        span.add_link(SpanContext(0, 0, False))  # invalid, no attributes: ignored
        span.end(2)

    sdk, direct = _both(story, limits=SpanLimits(max_links=2))
    assert _fields(direct[0]) == _fields(sdk[0])
    assert direct[0].dropped_links == 2 and len(direct[0].links) == 2
