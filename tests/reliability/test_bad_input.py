"""Bad input: >= 100,000 hypothesis-generated events through the real pipeline to the real
Collector. Nothing raises into the bus, no span stays open, every repair or rejection is
counted, and the Collector still accepts every batch."""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from llmgine.bus.session import SessionEndEvent, SessionStartEvent
from llmgine.llm.tools.tool_events import ToolExecuteResultEvent, ToolRegisterEvent
from llmgine.messages.commands import CommandResult
from llmgine.messages.events import (
    CommandResultEvent,
    CommandStartedEvent,
    DeadLetterCommandEvent,
    Event,
    EventHandlerFailedEvent,
)
from otel_kit import is_ours, translator_failures
from support.hermetic import left_out

from llmgine_otel.events import (
    AgentInvocationFinishedEvent,
    AgentInvocationStartedEvent,
    LLMCallFinishedEvent,
    LLMCallStartedEvent,
    LLMStreamChunkEvent,
)
from reliability._workload import PromptCommand, read_collected
from reliability.conftest import accounting, collector, make_telemetry, record_figures

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

EXAMPLES = 100
EVENTS_PER_EXAMPLE = 1_000
BIG = 10 * 1024 * 1024
MAX_BIG = 6  # "a few" 10 MB strings in the whole run


# -- hostile values ---------------------------------------------------------------------------


class BadStr:
    """__str__ and __repr__ raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


class BadExc(Exception):
    """An exception whose __str__ raises."""

    def __str__(self) -> str:
        raise ValueError("unprintable exception")


class WeirdStr:
    """__str__ returns a non-string."""

    def __str__(self) -> Any:
        return 42


class Grumpy:
    """Every attribute access raises."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")


class Slotted:
    __slots__ = ("session_id", "x")

    def __init__(self, sid: Any) -> None:
        self.session_id = sid
        self.x = 1


@dataclass
class UnknownEvent(Event):
    """An event class the mapping has never heard of."""

    payload: Any = None
    count: Any = 0


class PlainThing:
    """Not a dataclass, not an Event, but has a session id and a raising property."""

    def __init__(self, sid: Any) -> None:
        self.session_id = sid
        self.timestamp = "yesterday"
        self.value = BadStr()

    @property
    def boom(self) -> Any:
        raise RuntimeError("property raised")


def _cyclic() -> Any:
    d: dict[str, Any] = {"role": "user", "content": "hi"}
    lst: list[Any] = [d]
    d["self"] = d
    d["list"] = lst
    lst.append(lst)
    return d


def _deep(n: int = 200) -> Any:
    v: Any = "bottom"
    for _ in range(n):
        v = {"k": [v]}
    return v


_big_count = [0]
_big_lock = threading.Lock()


def _big(surrogate: bool) -> Any:
    with _big_lock:
        if _big_count[0] >= MAX_BIG:
            return "not so big"
        _big_count[0] += 1
    s = "x" * BIG
    return "ab\ud800c" + s if surrogate else s


BAD_VALUES: tuple[Any, ...] = (
    lambda: None, lambda: 0, lambda: -1, lambda: 2**100, lambda: float("nan"),
    lambda: float("inf"), lambda: "", lambda: "BUS", lambda: "x\ud800y", lambda: "\udfff",
    lambda: b"\xff\xfe\xfd", lambda: bytearray(b"\x80abc"), lambda: BadStr(),
    lambda: BadExc("x"), _cyclic, lambda: {1: 2, (1, 2): "tuple key", None: BadStr()},
    lambda: {1, 2, 3}, lambda: object(), lambda: "a" * 300, lambda: "é\u2028\x00nul",
    lambda: Grumpy(), lambda: True, lambda: 3.5, lambda: [None, BadStr(), b"\xc3"],
    lambda: {"role": None, "content": BadStr(), "tool_calls": [{"function": 7}]},
    _deep, lambda: WeirdStr(), lambda: "9999-12-31T23:59:59", lambda: "0001-01-01T00:00:00",
    lambda: 1e30, lambda: ["a\udcffb", 7], lambda: {"traceparent": 5},
    lambda: {"traceparent": "00-zz-yy-01", "llmgine.start_time": "never"},
    lambda: _big(False), lambda: _big(True),
)

_FIELDS = ("session_id", "event_id", "timestamp", "metadata", "call_id", "model", "provider",
           "messages", "error", "command", "command_result", "tool_args", "tool_name",
           "tool_call_id", "tool_info", "output_messages", "input_tokens", "finish_reasons",
           "exception", "payload", "system_instructions", "temperature", "agent_name",
           "invocation_id", "handler", "event", "content", "index", "attempts", "stream")


# The fields the mapping's span keys are read from (mapping.MAPPING's ``key`` paths).
_KEY_FIELDS = frozenset({"session_id", "command", "command_result", "call_id", "tool_call_id",
                         "event_id", "invocation_id"})


class _Builder:
    """Turns 4 generated bytes into one event (possibly corrupted) of a small session pool,
    remembering open ids so ends usually (not always) match their starts."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.commands: dict[int, Any] = {}
        self.calls: dict[int, str] = {}
        self.invocations: dict[int, str] = {}
        self.kinds: Counter[str] = Counter()
        self.corrupted = 0
        self.chunks = 0
        self.unreadable = 0
        """Events that raise when read (the translator's safety net takes them)."""
        self.keyless = 0
        """Events whose span key field was corrupted (they may have no key to go by)."""

    def sid(self, s: int) -> str:
        return f"{self.prefix}-{s}"

    def build(self, kind: int, s: int, fld: int, val: int) -> Any:
        sid = self.sid(s % 12)
        k = kind % 20
        ev: Any
        if k == 0:
            ev = SessionStartEvent(session_id=sid)
        elif k == 1:
            ev = SessionEndEvent(session_id=sid, error=BadExc("x") if val % 3 == 0 else None)
        elif k in (2, 3):
            cmd = PromptCommand(session_id=sid, prompt="p")
            self.commands[s] = cmd
            ev = CommandStartedEvent(command=cmd, session_id=sid)
        elif k == 4:
            cmd = self.commands.pop(s, None)
            cid = cmd.command_id if cmd is not None and val % 5 else f"never-started-{val}"
            ev = CommandResultEvent(session_id=sid, command_result=CommandResult(
                success=val % 4 != 0, command_id=cid, error="ValueError: nope"))
        elif k in (5, 6):
            call = LLMCallStartedEvent(session_id=sid, model="m", provider="openai",
                                       messages=[{"role": "user", "content": "q"}])
            self.calls[s] = call.call_id
            ev = call
        elif k in (7, 8):
            cid = self.calls.pop(s, None) or f"orphan-{val}"
            ev = LLMCallFinishedEvent(session_id=sid, call_id=cid, input_tokens=3,
                                      output_tokens=4, response_model="m",
                                      error=BadExc() if val % 7 == 0 else None)
        elif k == 9:
            cid = self.calls.get(s, f"nochunk-{val}")
            ev = LLMStreamChunkEvent(session_id=sid, call_id=cid, index=val, content="c")
            self.chunks += 1
        elif k in (10, 11):
            ev = ToolExecuteResultEvent(session_id=sid, execution_succeed=bool(val % 2),
                                        tool_name="t", tool_call_id=f"tc-{self.prefix}-{kind}-"
                                        f"{s}-{fld}-{val}", tool_args={"a": 1},
                                        tool_result="r")
        elif k == 12:
            ev = EventHandlerFailedEvent(session_id=sid, handler="h", exception=BadExc(),
                                         event=CommandStartedEvent(
                                             command=self.commands.get(s), session_id=sid))
        elif k == 13:
            ev = DeadLetterCommandEvent(session_id=sid, command=self.commands.get(s),
                                        error="TimeoutError: slow", attempts=val)
        elif k == 14:
            ev = UnknownEvent(session_id=sid, payload={"x": val}, count=val)
        elif k == 15:
            ev = PlainThing(sid) if val % 2 else Slotted(sid)
        elif k == 16:
            inv = AgentInvocationStartedEvent(session_id=sid, agent_name="a")
            self.invocations[s] = inv.invocation_id
            ev = inv
        elif k == 17:
            ev = AgentInvocationFinishedEvent(
                session_id=sid, invocation_id=self.invocations.pop(s, f"inv-{val}"),
                error="RuntimeError: agent" if val % 2 else None)
        elif k == 18:
            ev = ToolRegisterEvent(session_id=sid, tool_info={"name": "t", "x": BadStr()})
        else:
            ev = Grumpy() if val % 2 else object()
        self.kinds[type(ev).__name__] += 1
        if isinstance(ev, Grumpy):
            self.unreadable += 1
        if fld % 3 == 0:  # two events in three are corrupted in one field
            name = _FIELDS[(fld // 3) % len(_FIELDS)]
            bad = BAD_VALUES[val % len(BAD_VALUES)]()
            try:
                object.__setattr__(ev, name, bad)
                self.corrupted += 1
                self.keyless += name in _KEY_FIELDS
                self.unreadable += isinstance(bad, Grumpy)
            except (AttributeError, TypeError):
                pass
        return ev


def _metric(metrics_text: str, name: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            m = re.search(r"\s([0-9.eE+-]+)$", line)
            if m:
                total += float(m.group(1))
    return total


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the whole hypothesis workload once against the real Collector."""
    from reliability.conftest import SDK_ENV

    tmp_path = tmp_path_factory.mktemp("bad-input")
    _big_count[0] = 0
    raised: list[BaseException] = []
    totals: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    with pytest.MonkeyPatch.context() as mp, collector(tmp_path / "col") as col:
        for k in list(os.environ):
            if left_out(k):
                mp.delenv(k, raising=False)
        for k, v in SDK_ENV.items():
            mp.setenv(k, v)
        tel = make_telemetry(col.grpc_endpoint, tmp_path)
        obs = tel.manager.observe_event
        example = [0]

        def observe(ev: Any) -> None:
            try:
                obs(ev)
            except BaseException as exc:  # noqa: BLE001 - the target is that this never runs
                raised.append(exc)

        @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(blob=st.binary(min_size=4 * EVENTS_PER_EXAMPLE, max_size=4 * EVENTS_PER_EXAMPLE),
               threads=st.integers(0, 4))
        def run(blob: bytes, threads: int) -> None:
            example[0] += 1
            b = _Builder(f"h{example[0]}")
            events = [b.build(*blob[i:i + 4]) for i in range(0, len(blob), 4)]
            totals["events"] += len(events)
            totals["corrupted"] += b.corrupted
            totals["chunks"] += b.chunks
            totals["unreadable"] += b.unreadable
            totals["keyless"] += b.keyless
            kinds.update(b.kinds)
            if threads:  # events from foreign threads, concurrently
                parts = [events[i::threads + 1] for i in range(threads + 1)]
                ts = [threading.Thread(target=lambda p=p: [observe(e) for e in p])
                      for p in parts[1:]]
                for t in ts:
                    t.start()
                for e in parts[0]:
                    observe(e)
                for t in ts:
                    t.join()
                totals["threaded_events"] += len(events) - len(parts[0])
            else:
                for e in events:
                    observe(e)
            tel.force_flush(10)  # keep the export queue short: this test is about validity

        t0 = time.perf_counter()
        with translator_failures() as failures:
            run()
        run_s = time.perf_counter() - t0
        open_before = len(tel.handler.table)
        report = tel.shutdown()
        open_after = len(tel.handler.table)
        acct = accounting(tel)
        time.sleep(2.5)  # collector batch timeout (1 s) + file flush (200 ms)
        got = read_collected(col.file_path)
        metrics = col.metrics_text()
    snap = tel.stats.snapshot()
    fig = {
        "examples": example[0], "events": totals["events"],
        "corrupted_events": totals["corrupted"], "threaded_events": totals["threaded_events"],
        "big_strings": _big_count[0], "seconds": round(run_s, 1), "kinds": dict(kinds),
        "exceptions_into_bus": len(raised), "handler_errors": snap["handler_errors"],
        "open_spans_before_shutdown": open_before, "open_spans_after_shutdown": open_after,
        "ended_at_shutdown": report.open_spans_ended, "outcomes": snap["outcomes"],
        "spans": acct["spans"], "logs": acct["logs"], "spans_in_file": len(got.spans),
        "logs_in_file": got.log_rows,
        "collector_refused_spans": _metric(metrics, "otelcol_receiver_refused_spans"),
        "collector_refused_logs": _metric(metrics, "otelcol_receiver_refused_log_records"),
        "collector_accepted_spans": _metric(metrics, "otelcol_receiver_accepted_spans"),
        "collector_accepted_logs": _metric(metrics, "otelcol_receiver_accepted_log_records"),
    }
    record_figures("bad_input", **fig)
    return {"fig": fig, "raised": raised, "snap": snap, "acct": acct, "totals": totals,
            "got": got, "failures": failures}


@pytest.mark.slow
def test_bad_input_never_raises_and_is_counted(bad_run: dict[str, Any]) -> None:
    fig, snap, totals = bad_run["fig"], bad_run["snap"], bad_run["totals"]
    outcomes = snap["outcomes"]
    assert totals["events"] >= 100_000
    assert not bad_run["raised"], bad_run["raised"][:3]
    # Not raising is the safety net's job; what reached it must be an event that raised
    # when read (hostile __getattr__/__str__ of this module), never our own code failing.
    ours = [exc for _, exc in bad_run["failures"] if is_ours(exc)]
    assert not ours, ours[0]
    assert outcomes.get("rejected", 0) <= totals["unreadable"] + totals["keyless"], outcomes
    assert snap["handler_errors"] == {}, snap["handler_errors"]
    assert snap["events_by_handler"].get("otel") == totals["events"]
    assert fig["open_spans_after_shutdown"] == 0
    # every event is logged, or counted as rejected / sampled out
    loggable = totals["events"] - totals["chunks"]
    assert (snap["produced"].get("logs", 0) + outcomes.get("rejected", 0)
            + outcomes.get("log_sampled_out", 0)) >= loggable
    for outcome in ("repaired", "end_without_start", "duplicate_end", "synthetic_session"):
        assert outcomes.get(outcome, 0) > 0, (outcome, outcomes)


# Lone surrogates used to reach the OTLP encoder (span names, the log attribute
# llmgine.session.id, the body's id fields, explicit error.type) and fail whole batches;
# this test found it and it is fixed in translate.py (valid_utf8 / isascii fast paths).
@pytest.mark.slow
def test_bad_input_still_yields_valid_otlp(bad_run: dict[str, Any]) -> None:
    fig, acct, got = bad_run["fig"], bad_run["acct"], bad_run["got"]
    assert acct["spans"]["dropped"] == {} and acct["logs"]["dropped"] == {}, acct
    assert acct["spans"]["exported"] == acct["spans"]["produced"]
    assert acct["logs"]["exported"] == acct["logs"]["produced"]
    assert fig["collector_refused_spans"] == 0 and fig["collector_refused_logs"] == 0
    assert len(got.spans) == acct["spans"]["produced"]
    assert got.log_rows == acct["logs"]["produced"]
