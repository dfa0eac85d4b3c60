"""Export accounting: with a blocked exporter and a tiny queue, every span and log record is
exported or dropped with a reason (produced == exported + dropped), for both strategies."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from otel_kit import command_result, command_started, full_queue_drops, session_end, session_start

from llmgine_otel.sampling import SessionSampler
from llmgine_otel.telemetry import Telemetry


def _produce(tel: Telemetry, start: int, n: int) -> None:
    for i in range(start, start + n):
        tel.observe_event(command_started("BUS", f"c{i:05d}", 1))
        tel.observe_event(command_result("BUS", f"c{i:05d}", 2))


def _check_accounting(tel: Telemetry) -> dict:
    snap = tel.stats.snapshot()
    for sig in ("spans", "logs"):
        dropped = sum(n for k, n in snap["dropped"].items() if k.startswith(sig + ":"))
        assert snap["produced"][sig] == snap["exported"].get(sig, 0) + dropped, (sig, snap)
    return snap


@pytest.mark.parametrize("strategy", ["drop_oldest", "drop_newest"])
def test_produced_equals_exported_plus_dropped(pipeline, strategy):
    tel, gate, span_ex, log_ex = pipeline(queue_size=10, back_pressure_strategy=strategy)
    _produce(tel, 0, 5)  # 5 spans, 10 logs: both workers take a batch and block on it
    assert gate.entered.wait(5) and gate.log_entered.wait(5)
    _produce(tel, 5, 200)  # 10 more of each fit in the queues; the rest is dropped
    snap = tel.stats.snapshot()
    assert snap["dropped"].get(f"spans:queue_full_{full_queue_drops(strategy)}", 0) > 0
    assert snap["dropped"].get(f"logs:queue_full_{full_queue_drops(strategy)}", 0) > 0
    assert snap["queue_size"] == {"spans": 10, "logs": 10}
    gate.open.set()
    report = tel.shutdown(timeout_s=5)
    assert not report.completed and report.seconds < 5  # stopped in time, but items dropped
    snap = _check_accounting(tel)
    assert snap["produced"] == {"spans": 205, "logs": 410}
    assert snap["exported"]["spans"] == len(span_ex[0].got)
    assert snap["exported"]["logs"] == len(log_ex[0].got)
    assert report.undelivered == {"spans": 205 - len(span_ex[0].got),
                                  "logs": 410 - len(log_ex[0].got)}
    ids = sorted(s.attributes.get("llmgine.command.id", s.name) for s in span_ex[0].got)
    assert 11 <= len(ids) <= 15  # the blocked batch(es) of the first 5, then a full queue
    if full_queue_drops(strategy) == "drop_newest":
        assert ids[0] == "c00000"  # the oldest were kept
        assert "c00204" not in ids
    else:
        assert "c00204" in ids  # the newest were kept


def test_failed_exports_are_dropped_with_a_reason(pipeline):
    tel, gate, _, _ = pipeline(fail_spans=True, queue_size=100)
    gate.open.set()
    _produce(tel, 0, 30)
    report = tel.shutdown(timeout_s=5)
    snap = _check_accounting(tel)
    assert snap["dropped"]["spans:export_failed"] == 30
    assert report.undelivered["spans"] == 30 and report.undelivered["logs"] == 0


def test_blocked_exporter_shutdown_is_bounded_and_counts_once(pipeline):
    tel, gate, _, _ = pipeline(queue_size=10)
    _produce(tel, 0, 50)
    assert gate.entered.wait(5)
    t0 = time.monotonic()
    report = tel.shutdown(timeout_s=1)
    assert time.monotonic() - t0 < 2
    assert not report.completed
    assert report.undelivered["spans"] > 0 and report.undelivered["logs"] > 0
    gate.open.set()  # the stuck batch completes after shutdown gave up on it
    time.sleep(0.2)
    _check_accounting(tel)


def test_sharded_workers_keep_traces_together_and_account(pipeline):
    tel, gate, span_ex, log_ex = pipeline(queue_size=4000, num_workers=4)
    gate.open.set()
    _produce(tel, 0, 100)
    report = tel.shutdown(timeout_s=5)
    assert report.completed and report.undelivered == {"spans": 0, "logs": 0}
    assert sum(len(e.got) for e in span_ex) == 100
    assert sum(len(e.got) for e in log_ex) == 200
    for e in span_ex:  # each trace lands in one shard
        assert all(s.context.trace_id % 4 == span_ex.index(e) for s in e.got)
    _check_accounting(tel)


def test_after_shutdown_items_are_counted(pipeline):
    tel, gate, _, _ = pipeline(queue_size=100)
    gate.open.set()
    tel.shutdown(timeout_s=2)
    _produce(tel, 0, 3)
    _check_accounting(tel)
    assert tel.stats.snapshot()["dropped"]["spans:after_shutdown"] == 3


def test_session_sampler_rate_and_adaptive_pressure():
    fill = [0.0]
    clock = [0.0]
    s = SessionSampler(0.5, lambda: fill[0], clock=lambda: clock[0])
    kept = sum(s.should_sample(None, tid, "session").decision.is_sampled()
               for tid in range(0, 2**64, 2**54))
    assert 400 <= kept <= 624
    fill[0] = 0.9
    clock[0] += 1
    s.should_sample(None, 1, "session")
    assert s.factor == 0.5 and s.effective_rate == 0.25
    fill[0] = 0.1
    clock[0] += 1
    s.should_sample(None, 1, "session")
    assert s.factor == 1.0
    s.set_rate(0.0)
    assert not s.should_sample(None, 1, "session").decision.is_sampled()
    with pytest.raises(ValueError):
        s.set_rate(1.5)


def test_sampled_out_sessions_make_no_logs(pipeline):
    tel, gate, span_ex, log_ex = pipeline(queue_size=100, sample_rate=0.0)
    gate.open.set()
    _produce(tel, 0, 10)
    tel.shutdown(timeout_s=2)
    assert span_ex[0].got == [] and log_ex[0].got == []


def test_root_spans_keep_their_start_attributes(pipeline):
    """The session sampler must pass the start attributes through (the SDK uses them)."""
    tel, gate, span_ex, _ = pipeline(queue_size=100, sample_rate=1.0)
    gate.open.set()
    tel.observe_event(session_start("s1", 0))
    tel.observe_event(command_started("BUS", "c1", 1))
    tel.observe_event(command_result("BUS", "c1", 2))
    tel.observe_event(session_end("s1", 3))
    tel.shutdown(timeout_s=2)
    by_name = {s.name: s for s in span_ex[0].got}
    assert by_name["session"].attributes["llmgine.session.id"] == "s1"
    assert by_name["session"].attributes["gen_ai.conversation.id"] == "s1"
    assert by_name["command Command"].attributes["llmgine.command.id"] == "c1"


@pytest.mark.parametrize("rate", [0.0, 0.5])
def test_accounting_holds_with_sampling(pipeline, rate):
    tel, gate, span_ex, _ = pipeline(queue_size=10_000, sample_rate=rate)
    gate.open.set()
    for i in range(200):
        tel.observe_event(session_start(f"s{i}", 0))
        tel.observe_event(command_started(f"s{i}", f"c{i}", 1))
        tel.observe_event(command_result(f"s{i}", f"c{i}", 2))
        tel.observe_event(session_end(f"s{i}", 3))
    tel.shutdown(timeout_s=5)
    snap = _check_accounting(tel) if rate else tel.stats.snapshot()
    assert snap["produced"].get("spans", 0) == len(span_ex[0].got)
    if not rate:
        assert span_ex[0].got == []


def test_queue_size_metric_covers_every_shard(pipeline):
    tel, gate, _, _ = pipeline(queue_size=1000, num_workers=4)
    _produce(tel, 0, 40)
    queued = sum(p.queue_length() for p in tel.span_processors)
    assert queued > 0
    assert tel.stats.snapshot()["queue_size"]["spans"] == queued
    gate.open.set()


def test_queued_spans_are_compacted_without_changing_what_they_say():
    """Finished spans wait in the queue without the SDK's BoundedAttributes/BoundedList
    (objects the cyclic GC walks on every full collection); a span that dropped something
    keeps them, so its dropped counts stay exact."""
    from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider

    from llmgine_otel.pipeline import _compact

    tp = TracerProvider(span_limits=SpanLimits(max_span_attributes=2), shutdown_on_exit=False)
    seen = []

    class Keep(SpanProcessor):
        def on_end(self, span):
            before = (dict(span.attributes), span.events, span.links, span.dropped_attributes)
            _compact(span)
            seen.append((span, before))

    tp.add_span_processor(Keep())
    tracer = tp.get_tracer("t")
    tracer.start_span("small", attributes={"a": 1, "b": "x"}).end()
    tracer.start_span("over", attributes={"a": 1, "b": 2, "c": 3}).end()
    with tracer.start_as_current_span("evented") as sp:
        sp.add_event("e", {"k": "v"})
    (small, b_small), (over, b_over), (evented, b_ev) = seen
    assert type(small._attributes) is dict and small._events == () and small._links == ()
    assert (dict(small.attributes), small.events, small.links, small.dropped_attributes) \
        == b_small
    assert over.dropped_attributes == 1 and b_over[3] == 1  # BoundedAttributes kept
    assert [e.name for e in evented.events] == ["e"] and evented.events == b_ev[1]


def test_identity_is_exact_under_forced_thread_switches(pipeline):
    """8 threads, each running asyncio tasks, publish at once while the interpreter switches
    threads as often as it can: every counter of the identity is updated atomically, so
    produced == exported + dropped holds exactly, and produced is exactly what was made."""
    import asyncio
    import sys
    import threading

    from otel_kit import llm_finished, llm_started

    tel, gate, span_ex, log_ex = pipeline(queue_size=100_000)
    gate.open.set()
    threads, tasks, rounds = 8, 4, 40
    # CPython's GIL happens to make `counter[key] += 1` atomic; free-threaded builds do not.
    # So, besides the totals, check the mechanism: no counter of the identity changes
    # without the stats lock held.
    unlocked: list[str] = []
    lock = tel.stats.lock

    class Guarded(Counter):
        def __setitem__(self, key, value):
            if not lock.locked():
                unlocked.append(str(key))
            super().__setitem__(key, value)

    for name in ("produced", "exported", "dropped", "outcomes"):
        setattr(tel.stats, name, Guarded(getattr(tel.stats, name)))

    async def publisher(t: int, k: int) -> None:
        for i in range(rounds):
            sid = f"s{t}-{k}-{i}"
            for ev in (session_start(sid, 0), command_started(sid, f"{sid}c", 1),
                       llm_started(sid, f"{sid}L", 1.1), llm_finished(sid, f"{sid}L", 1.2),
                       llm_finished(sid, f"{sid}L", 1.3),  # a duplicate end: counted
                       command_result(sid, f"{sid}c", 2), session_end(sid, 3)):
                tel.observe_event(ev)
                await asyncio.sleep(0)

    def worker(t: int) -> None:
        async def main() -> None:
            await asyncio.gather(*(publisher(t, k) for k in range(tasks)))
        asyncio.run(main())

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
        for th in ts:
            th.start()
        for th in ts:
            th.join(120)
    finally:
        sys.setswitchinterval(old)
    tel.shutdown(timeout_s=10)
    assert not unlocked, sorted(set(unlocked))
    sessions = threads * tasks * rounds
    snap = _check_accounting(tel)
    # 4 spans a session: its start and end, the command, the LLM call (command trace shape)
    assert snap["produced"] == {"spans": 4 * sessions, "logs": 7 * sessions}
    assert snap["outcomes"]["duplicate_end"] == sessions
    assert snap["exported"] == {"spans": 4 * sessions, "logs": 7 * sessions}
    assert sum(len(e.got) for e in span_ex) == 4 * sessions
    assert sum(len(e.got) for e in log_ex) == 7 * sessions


@pytest.mark.parametrize("blocked", [False, True])
def test_identity_counts_only_what_this_package_made(pipeline, blocked):
    """Spans and log records of other instrumentation on the same providers (the app's own
    tracer, the logging bridge) are exported but kept out of the identity: produced ==
    exported + dropped holds exactly for what this package made, also when the queue is
    full and drops mix both kinds."""
    tel, gate, span_ex, log_ex = pipeline(queue_size=10)
    if not blocked:
        gate.open.set()
    app_tracer = tel.tracer_provider.get_tracer("app")
    app_logger = tel.logger_provider.get_logger("app")
    for i in range(60 if blocked else 3):
        with app_tracer.start_as_current_span(f"app work {i}"):
            app_logger.emit(body=f"app line {i}")
        _produce(tel, i, 1)
    gate.open.set()
    tel.shutdown(timeout_s=5)
    snap = _check_accounting(tel)
    n = 60 if blocked else 3
    assert snap["produced"] == {"spans": n, "logs": 2 * n}
    got = [s.name for e in span_ex for s in e.got]
    if blocked:
        assert snap["dropped"].get(f"spans:queue_full_{full_queue_drops('drop_oldest')}"), snap
    else:
        assert sum(name.startswith("app work") for name in got) == n  # exported, not counted
        assert sum(len(e.got) for e in log_ex) == 3 * n  # the app's lines too
        assert snap["exported"] == {"spans": n, "logs": 2 * n}
