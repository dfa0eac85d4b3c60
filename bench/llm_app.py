"""One variant of benchmark 10 (``llm_peers``): an llmgine app calling litellm, with one
LLM instrumentation (or none) set up, driven round by round by ``bench.b10_llm_peers``.

``python -m bench.llm_app VARIANT --endpoint URL --base-url URL --reply-fd N``: sets up the
variant (each in its own process: instrumentations patch litellm globally), starts an
llmgine ``MessageBus``, warms up, then reads one JSON command per line on stdin and answers
one JSON line on file descriptor ``N`` (stdout is llmgine's and litellm's to print on):

- ``{"op": "round", "kind": K, "n": N}``: one session with one command whose handler makes
  ``N`` calls of kind ``K`` (``acompletion``: non-streaming with tools; ``astream``: a
  streamed ``acompletion`` iterated to the end; ``completion``: sync, from a worker thread
  via ``asyncio.to_thread`` as apps do; ``mock_acompletion`` / ``mock_astream``: the same
  through litellm's ``mock_response``, no HTTP). Answer: each call's wall time as the app
  sees it, and the process's CPU time (user + sys, all threads) from before the session
  started until litellm's logging callbacks and the bus's queue were drained. The server is
  another process.
- ``{"op": "totals"}``: process CPU since ready (spans, logs and metrics exported first).
- ``{"op": "idle", "s": S}``: process CPU over S seconds of doing nothing.
- ``{"op": "phases", "n": N}``: our wrapper's steps timed one by one (``ours`` only).
- ``{"op": "profile", "kind": K, "n": N}``: a round under cProfile; our functions per call.
- ``{"op": "stop"}``: flush and shut the providers down.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MODEL = "openai/gpt-4o-mini"
MESSAGES = [
    {"role": "system", "content": "You are a helpful travel assistant. Use the tools."},
    {"role": "user", "content": "What is the weather in Paris, and what does ACME trade at?"},
]
STREAM_MESSAGES = [{"role": "user", "content": "Write one sentence about Paris."}]
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_stock_price", "description": "A stock quote.",
        "parameters": {"type": "object", "properties": {"ticker": {"type": "string"}},
                       "required": ["ticker"]}}},
]
KINDS = ("acompletion", "astream", "completion", "mock_acompletion", "mock_astream")
MOCK_TEXT = "It is 18 degrees and sunny in Paris; ACME trades at 101.5."


# -- variants -------------------------------------------------------------------------------
# Each returns (flush, shutdown). flush exports what is queued (spans, log records); metrics
# stay on their periodic readers until the whole-run total collects them.


def _sdk_providers(endpoint: str) -> tuple[Any, Any]:
    """What a plain OpenTelemetry setup for a peer is: global TracerProvider with a
    BatchSpanProcessor and the SDK's OTLP gRPC span exporter, and a MeterProvider with a
    periodic OTLP gRPC metric reader (used by the peers that record metrics)."""
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()  # service.name from OTEL_SERVICE_NAME
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint,
                                                              insecure=True)))
    mp = MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint, insecure=True))])
    trace.set_tracer_provider(tp)
    metrics.set_meter_provider(mp)
    return tp, mp


def _sdk_flush_shutdown(tp: Any, mp: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    def shutdown() -> None:
        tp.shutdown()
        mp.shutdown()
    return (lambda: tp.force_flush(30_000)), shutdown


def setup_none(endpoint: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    return (lambda: None), (lambda: None)


def setup_ours(endpoint: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """The zero-code path in-process: what ``opentelemetry-instrument`` runs with
    OTEL_EXPORTER_OTLP_ENDPOINT set (our configurator, then our instrumentor)."""
    from llmgine_otel import cost
    from llmgine_otel.instrument import LLMgineInstrumentor
    from llmgine_otel.telemetry import get_telemetry

    LLMgineInstrumentor().instrument()
    cost._warm.wait(30.0)  # the price table loads in the background: measure steady state
    tel = get_telemetry()
    assert tel is not None
    return (lambda: tel.force_flush(30.0)), (lambda: tel.shutdown(10.0))


def setup_openinference(endpoint: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    from openinference.instrumentation.litellm import LiteLLMInstrumentor

    tp, mp = _sdk_providers(endpoint)
    LiteLLMInstrumentor().instrument(tracer_provider=tp)
    return _sdk_flush_shutdown(tp, mp)


def setup_openllmetry(endpoint: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    from opentelemetry.instrumentation.litellm import LiteLLMInstrumentor

    tp, mp = _sdk_providers(endpoint)
    LiteLLMInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    return _sdk_flush_shutdown(tp, mp)


def setup_litellm_otel(endpoint: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """litellm's own callback, configured as its docs say (OTEL_EXPORTER=otlp_grpc,
    OTEL_ENDPOINT, set by the coordinator). It builds its TracerProvider (BatchSpanProcessor,
    the SDK's OTLP gRPC exporter) on the first call and makes it the global one."""
    import litellm
    from opentelemetry import trace

    litellm.callbacks = ["otel"]

    def provider() -> Any:
        tp = trace.get_tracer_provider()
        return tp if hasattr(tp, "force_flush") else None

    def flush() -> None:
        tp = provider()
        if tp is not None:
            tp.force_flush(30_000)

    def shutdown() -> None:
        tp = provider()
        if tp is not None:
            tp.shutdown()
    return flush, shutdown


SETUPS: dict[str, Callable[[str], tuple[Callable[[], Any], Callable[[], Any]]]] = {
    "none": setup_none, "ours": setup_ours, "ours-spans": setup_ours,
    "openinference": setup_openinference,
    "openllmetry": setup_openllmetry, "litellm-otel": setup_litellm_otel,
}


# -- the app ----------------------------------------------------------------------------------


class App:
    def __init__(self, base_url: str) -> None:
        import litellm
        from llmgine.bus.bus import MessageBus
        from llmgine.messages.commands import Command, CommandResult

        self.litellm = litellm
        self.base_url = base_url
        self.bus = MessageBus()
        self.walls: list[int] = []
        self.calls = 0
        self.phase_steps: dict[str, list[int]] = {}
        self.CommandResult = CommandResult

        @dataclass
        class BenchCommand(Command):
            kind: str = ""
            n: int = 0

        self.BenchCommand = BenchCommand

    async def start(self) -> None:
        await self.bus.start()

    def _common(self) -> dict[str, Any]:
        return {"model": MODEL, "api_base": self.base_url, "api_key": "bench-key"}

    async def acompletion(self, n: int) -> None:
        acompletion, perf, walls = self.litellm.acompletion, time.perf_counter_ns, self.walls
        kw = self._common()
        for _ in range(n):
            t0 = perf()
            r = await acompletion(messages=MESSAGES, tools=TOOLS, temperature=0.1,
                                  max_tokens=200, **kw)
            walls.append(perf() - t0)
            assert r.choices[0].message.tool_calls, r

    async def astream(self, n: int) -> None:
        acompletion, perf, walls = self.litellm.acompletion, time.perf_counter_ns, self.walls
        kw = self._common()
        for _ in range(n):
            t0 = perf()
            stream = await acompletion(messages=STREAM_MESSAGES, stream=True,
                                       stream_options={"include_usage": True}, **kw)
            chunks = 0
            async for _chunk in stream:
                chunks += 1
            walls.append(perf() - t0)
            assert chunks >= 10, chunks

    def _completion_sync(self, n: int) -> None:
        completion, perf, walls = self.litellm.completion, time.perf_counter_ns, self.walls
        kw = self._common()
        for _ in range(n):
            t0 = perf()
            r = completion(messages=STREAM_MESSAGES, temperature=0.1, max_tokens=100, **kw)
            walls.append(perf() - t0)
            assert r.choices[0].message.content, r

    async def completion(self, n: int) -> None:
        await asyncio.to_thread(self._completion_sync, n)

    async def mock_acompletion(self, n: int) -> None:
        """litellm's own ``mock_response``: its whole call path and callbacks, no HTTP (the
        instrumentation's cost without the network's noise)."""
        acompletion, perf, walls = self.litellm.acompletion, time.perf_counter_ns, self.walls
        kw = self._common()
        for _ in range(n):
            t0 = perf()
            r = await acompletion(messages=MESSAGES, tools=TOOLS, temperature=0.1,
                                  max_tokens=200, mock_response=MOCK_TEXT, **kw)
            walls.append(perf() - t0)
            assert r.choices[0].message.content, r

    async def mock_astream(self, n: int) -> None:
        acompletion, perf, walls = self.litellm.acompletion, time.perf_counter_ns, self.walls
        kw = self._common()
        for _ in range(n):
            t0 = perf()
            stream = await acompletion(messages=STREAM_MESSAGES, stream=True,
                                       mock_response=MOCK_TEXT, **kw)
            chunks = 0
            async for _chunk in stream:
                chunks += 1
            walls.append(perf() - t0)
            assert chunks >= 2, chunks

    async def phases(self, n: int) -> None:
        """This package's steps for one ``acompletion``, as ``litellm_calls._async_wrapper``
        takes them, timed one by one (median per step) around a real litellm response (from
        ``mock_response``), in a command handler on the bus. Needs the ``ours`` variant."""
        from llmgine_otel import litellm_calls as lc

        kw = dict(self._common(), messages=MESSAGES, tools=TOOLS, temperature=0.1,
                  max_tokens=200)
        response = await self.litellm.acompletion(mock_response=MOCK_TEXT, **kw)
        perf = time.perf_counter_ns
        steps: dict[str, list[int]] = {k: [] for k in PHASE_STEPS}
        for _ in range(n):
            t0 = perf()
            lc._skip()
            t1 = perf()
            call = lc._new_call("chat", (), kw)
            t2 = perf()
            await call.astart()
            t3 = perf()
            token = lc._inside.set(True)
            with call.current():
                t4 = perf()
            lc._inside.reset(token)
            t5 = perf()
            lc._record(call, response)
            t6 = perf()
            await call.aend()
            t7 = perf()
            for name, d in zip(PHASE_STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4,
                                             t6 - t5, t7 - t6, t7 - t0), strict=True):
                steps[name].append(d)
        self.phase_steps = steps

    async def handle(self, cmd: Any) -> Any:
        await getattr(self, cmd.kind)(cmd.n)
        return self.CommandResult(success=True, command_id=cmd.command_id)

    async def session(self, kind: str, n: int) -> None:
        """One session, one command, ``n`` calls of ``kind``."""
        async with self.bus.session(f"bench-{uuid.uuid4().hex[:12]}") as session:
            session.register_command_handler(self.BenchCommand, self.handle)
            result = await session.execute_with_session(self.BenchCommand(kind=kind, n=n))
        assert result.success, result.error

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Until the work each call left behind is done: litellm's logging worker (async
        success callbacks) and logging thread pool (sync ones), and the bus's event queue.
        Reads private litellm state (bench only): ``GLOBAL_LOGGING_WORKER.pending_count``
        and the executor's ``_pending_slots`` semaphore."""
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
        from litellm.litellm_core_utils.thread_pool_executor import executor

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await self.bus.wait_for_events()
            busy = GLOBAL_LOGGING_WORKER.pending_count or \
                executor._pending_slots._value != executor._max_pending_tasks
            if not busy:
                # one more turn: a callback may have scheduled more
                await asyncio.sleep(0.002)
                if not GLOBAL_LOGGING_WORKER.pending_count and \
                        executor._pending_slots._value == executor._max_pending_tasks:
                    return
            await asyncio.sleep(0.001)


async def run_round(app: App, kind: str, n: int) -> dict[str, Any]:
    """One turn: the calls, then until litellm's callbacks and the bus are done. Not the
    export: flushing every turn would pay an export call's fixed cost per 15-30 LLM calls
    instead of per batch of up to 512 spans; export CPU is in the whole-run figure."""
    gc.collect()
    app.walls = []
    c0, t0, l0 = time.process_time_ns(), time.perf_counter_ns(), time.thread_time_ns()
    await app.session(kind, n)
    l1 = time.thread_time_ns()
    await app.settle()
    c1, t1 = time.process_time_ns(), time.perf_counter_ns()
    app.calls += n
    return {"wall_ns": app.walls, "cpu_ns": c1 - c0, "loop_thread_cpu_ns": l1 - l0,
            "round_wall_ns": t1 - t0}


PHASE_STEPS = (
    "_skip (re-entry, suppression, GenAI span already current?)",
    "_new_call (request read; LLMCall + LLMCallStartedEvent built)",
    "astart (start translated: span started, log record; bus.publish)",
    "current() enter (span made current: context attach)",
    "current() exit (context detach)",
    "_record (response read: id, model, finish reasons, usage, outputs)",
    "aend (end translated: span ended, log record; bus.publish)",
    "all steps",
)


async def run_phases(app: App, flush: Callable[[], Any], n: int) -> dict[str, Any]:
    """Timed steps (see ``App.phases``), and the CPU the round cost besides: the bus's
    later delivery of the events, the export threads (encoding, gRPC, span metrics)."""
    await app.settle()
    flush()
    c0 = time.process_time_ns()
    res = await run_round(app, "phases", n)
    flush()
    res["cpu_ns"] = time.process_time_ns() - c0
    steps = {k: summary_us(v) for k, v in app.phase_steps.items()}
    return {"calls": n, "steps_us": steps, "cpu_us_per_call": res["cpu_ns"] / n / 1e3,
            "loop_thread_cpu_us_per_call": res["loop_thread_cpu_ns"] / n / 1e3}


def summary_us(values: list[int]) -> dict[str, float]:
    v = sorted(values)
    return {"median": v[len(v) // 2] / 1e3, "min": v[0] / 1e3, "max": v[-1] / 1e3}


async def run_profile(app: App, flush: Callable[[], Any], kind: str, n: int
                      ) -> dict[str, Any]:
    """cProfile over ``n`` calls of ``kind`` (a mock kind: no HTTP, few threads). Since
    Python 3.12 cProfile records every thread, so the export threads' functions show too
    (encoder, span metrics); they are this package's files all the same."""
    import cProfile
    import pstats

    await app.settle()
    flush()
    gc.collect()
    prof = cProfile.Profile()
    prof.enable()
    await app.session(kind, n)
    await app.settle()
    flush()
    prof.disable()
    st = pstats.Stats(prof)
    ours: list[dict[str, Any]] = []
    by_pkg: dict[str, float] = {}
    for (fn, line, name), (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        pkg = ("llmgine_otel" if "llmgine_otel" in fn else
               "opentelemetry" if "opentelemetry" in fn else
               "litellm" if "litellm" in fn else
               "llmgine" if "/llmgine/" in fn else "other")
        by_pkg[pkg] = by_pkg.get(pkg, 0.0) + tt
        if "llmgine_otel" in fn:
            ours.append({"function": f"{fn.split('llmgine_otel/')[-1]}:{line}({name})",
                         "calls_per_llm_call": nc / n, "self_us_per_llm_call": tt / n * 1e6,
                         "cum_us_per_llm_call": ct / n * 1e6})
    by_self = sorted(ours, key=lambda r: -r["self_us_per_llm_call"])
    by_cum = sorted(ours, key=lambda r: -r["cum_us_per_llm_call"])
    return {"kind": kind, "calls": n, "profiled_total_us_per_call": st.total_tt / n * 1e6,
            "self_us_per_call_by_package": {k: v / n * 1e6 for k, v in
                                            sorted(by_pkg.items(), key=lambda kv: -kv[1])},
            "top_self_llmgine_otel": by_self[:25], "top_cum_llmgine_otel": by_cum[:25]}


async def main_async(a: argparse.Namespace) -> int:
    reply = os.fdopen(a.reply_fd, "w", buffering=1)
    flush, shutdown = SETUPS[a.variant](a.endpoint)

    def flush_metrics() -> None:
        from opentelemetry import metrics

        mp = metrics.get_meter_provider()
        if hasattr(mp, "force_flush"):
            mp.force_flush(30_000)
    app = App(a.base_url)
    await app.start()
    for kind in KINDS:  # warm-up: connections, litellm's caches, code paths
        await run_round(app, kind, a.warmup)
    # litellm's import leaves ~400,000 GC-tracked objects: one full collection takes
    # 0.3 s here. Every variant freezes what start-up made (as a long-running app may), so
    # the collection before each round is cheap and no full collection lands in a round.
    gc.collect()
    gc.freeze()
    flush()
    app.calls = 0
    c_ready, t_ready = time.process_time_ns(), time.perf_counter_ns()
    reply.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        cmd = json.loads(line)
        if cmd["op"] == "round":
            out = await run_round(app, cmd["kind"], cmd["n"])
        elif cmd["op"] == "idle":
            # What the process costs doing nothing (export threads, metric readers, gRPC
            # channels waking up): part of the whole-run figure that no call causes.
            await app.settle()
            flush()
            c0, t0 = time.process_time_ns(), time.perf_counter_ns()
            await asyncio.sleep(cmd["s"])
            out = {"cpu_ns": time.process_time_ns() - c0,
                   "wall_ns": time.perf_counter_ns() - t0}
        elif cmd["op"] == "totals":
            # Whole process since ready: every call, every export (spans and logs flushed,
            # metrics collected and exported), and what the idle process did between turns.
            await app.settle()
            flush()
            flush_metrics()
            out = {"cpu_ns": time.process_time_ns() - c_ready, "calls": app.calls,
                   "wall_ns": time.perf_counter_ns() - t_ready,
                   "threads": threading.active_count()}
        elif cmd["op"] == "profile":
            out = await run_profile(app, flush, cmd["kind"], cmd["n"])
        elif cmd["op"] == "phases":
            out = await run_phases(app, flush, cmd["n"])
        elif cmd["op"] == "stop":
            await app.settle()
            flush()
            shutdown()
            await app.bus.stop()
            reply.write(json.dumps({"stopped": True}) + "\n")
            break
        else:
            out = {"error": f"unknown op {cmd['op']!r}"}
        reply.write(json.dumps(out) + "\n")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("variant", choices=sorted(SETUPS))
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--reply-fd", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=10)
    return asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
