"""Fast paths into SDK internals run only where proven: tested versions, the same span fields
as the SDK's own; otherwise (or with LLMGINE_OTEL_PUBLIC_PATH=true) the public API path runs,
with nothing lost. Simulated SDK changes show the switch."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import Span
from opentelemetry.trace import StatusCode
from otel_kit import Harness, command_result, command_started, session_end, session_start

from llmgine_otel import fast_paths, span_factory
from llmgine_otel.config import ConfigError
from llmgine_otel.span_factory import DirectSpan

pytestmark = pytest.mark.usefixtures("fast_path")  # tests of the fast paths themselves


@pytest.fixture(autouse=True)
def fresh_decisions() -> Iterator[None]:
    def clear() -> None:
        fast_paths._by_version.cache_clear()
        span_factory._structure_problem.cache_clear()
        fast_paths._reported.clear()

    clear()
    yield
    clear()


def run_session(h: Harness) -> list[Any]:
    h.handle(session_start("s1", 0), command_started("s1", "c1", 1),
             command_result("s1", "c1", 2, success=False, error="ValueError: bad"),
             session_end("s1", 3))
    return h.spans()


def check_whole(h: Harness, spans: list[Any]) -> None:
    assert sorted(s.name for s in spans) == ["command Command", "session", "session end"]
    by_name = {s.name: s for s in spans}
    cmd = by_name["command Command"]
    assert cmd.status.status_code is StatusCode.ERROR
    assert cmd.attributes["error.type"] == "ValueError"
    # The command trace shape's links are made on both paths.
    assert [lk.context.span_id for lk in cmd.links] == [by_name["session"].context.span_id]
    assert [lk.context.span_id for lk in by_name["session end"].links] == \
        [by_name["session"].context.span_id]
    assert not h.outcomes.get("rejected")


def test_tested_sdk_gets_direct_spans() -> None:
    h = Harness(console=False)
    assert h.handler._start_span.__class__.__name__ == "_Factory"
    spans = run_session(h)
    check_whole(h, spans)
    assert all(type(s) is DirectSpan for s in spans)
    h.close()


def test_public_path_forced_by_the_environment(monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(fast_paths.ENV, "true")
    with caplog.at_level(logging.INFO, "llmgine_otel"):
        h = Harness(console=False)
    spans = run_session(h)
    check_whole(h, spans)
    assert not any(type(s) is DirectSpan for s in spans)
    assert "public API path for 'spans' (LLMGINE_OTEL_PUBLIC_PATH=true)" in caplog.text
    h.close()
    monkeypatch.setenv(fast_paths.ENV, "maybe")
    with pytest.raises(ConfigError, match="LLMGINE_OTEL_PUBLIC_PATH"):
        Harness(console=False)


def test_untested_sdk_version_takes_the_public_path_with_one_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(fast_paths, "_installed", lambda package: "1.46.0")
    with caplog.at_level(logging.WARNING, "llmgine_otel"):
        h1, h2 = Harness(console=False), Harness(console=False)
    warnings = [r for r in caplog.records if "public API path for 'spans'" in r.getMessage()]
    assert len(warnings) == 1
    assert "opentelemetry-sdk 1.46.0 is not a tested version (1.45.2)" in warnings[0].getMessage()
    for h in (h1, h2):
        spans = run_session(h)
        check_whole(h, spans)
        assert not any(type(s) is DirectSpan for s in spans)
        h.close()


def test_an_sdk_span_field_direct_spans_do_not_know_switches_to_the_public_path(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A release that adds a private field to Span and reads it in an inherited method (here
    ``set_status``) would break every direct span; the structural check catches it even on a
    version that claims to be tested."""
    original_init, original_set_status = Span.__init__, Span.set_status

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._status_history = []

    def set_status(self: Any, *args: Any, **kwargs: Any) -> None:
        self._status_history.append(args)
        original_set_status(self, *args, **kwargs)

    monkeypatch.setattr(Span, "__init__", init)
    monkeypatch.setattr(Span, "set_status", set_status)
    with caplog.at_level(logging.WARNING, "llmgine_otel"):
        h = Harness(console=False)
    assert "fields DirectSpan does not set: _status_history" in caplog.text
    spans = run_session(h)
    check_whole(h, spans)  # nothing lost: every span, its status, no rejected event
    h.close()


def test_without_the_check_that_change_loses_the_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reason for the check: the same simulated change with the fast path forced on."""
    original_set_status = Span.set_status

    def set_status(self: Any, *args: Any, **kwargs: Any) -> None:
        self._status_history.append(args)
        original_set_status(self, *args, **kwargs)

    monkeypatch.setattr(Span, "set_status", set_status)
    monkeypatch.setattr(span_factory, "_structure_problem", lambda: None)
    h = Harness(console=False)
    run_session(h)
    assert h.outcomes.get("rejected")
    h.close()


def test_a_renamed_batch_queue_switches_to_the_public_queue_path(
        pipeline: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A release that renames the batch processor's ``_queue`` (on a version that claims to
    be tested) turns the queue fast path off at setup, with one warning, and the identity
    still holds exactly, drops included."""
    from opentelemetry.sdk._shared_internal import BatchProcessor

    # The SDK's own code still works (it goes through the property); ours must not see it.
    monkeypatch.setattr(BatchProcessor, "_queue", property(
        lambda self: self._items, lambda self, v: setattr(self, "_items", v)), raising=False)
    with caplog.at_level(logging.WARNING, "llmgine_otel"):
        tel, gate, span_ex, _ = pipeline(queue_size=10)
    assert "public API path for 'queue': the SDK batch processor has no _queue" in caplog.text
    assert not any(p.fast for p in (*tel.span_processors, *tel.log_processors))
    for i in range(40):
        tel.observe_event(command_started("BUS", f"c{i}", 1))
        tel.observe_event(command_result("BUS", f"c{i}", 2))
    gate.open.set()
    tel.shutdown(timeout_s=5)
    snap = tel.stats.snapshot()
    for sig, n in (("spans", 40), ("logs", 80)):
        dropped = sum(v for k, v in snap["dropped"].items() if k.startswith(sig + ":"))
        assert snap["produced"][sig] == n == snap["exported"].get(sig, 0) + dropped, snap
    assert sum(len(e.got) for e in span_ex) == snap["exported"]["spans"]
