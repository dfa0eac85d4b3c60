"""10. Per-LLM-call overhead against the peers (issue 11; needs --collector).

The same llmgine app (``bench/llm_app.py``: a command whose handler calls litellm) against
the same local OpenAI-compatible server (``tests/support/openai_server.py``, in a process of
its own), once per variant, each variant in its own process (instrumentations patch litellm
globally), all exporting OTLP/gRPC to the same real Collector:

- ``none``: no instrumentation;
- ``ours``: this package's zero-code path (``LLMgineInstrumentor().instrument()`` with
  OTEL_EXPORTER_OTLP_ENDPOINT set): spans, log records and metrics, as shipped;
- ``ours-spans``: the same with LLMGINE_OTEL_LOGS=false and LLMGINE_OTEL_METRICS=false (like
  for like with the span-only peers);
- ``openinference``: openinference-instrumentation-litellm on a plain SDK TracerProvider
  (BatchSpanProcessor, OTLP gRPC exporter);
- ``openllmetry``: OpenLLMetry's opentelemetry-instrumentation-litellm on the same, plus a
  MeterProvider with a periodic OTLP gRPC reader (it records metrics);
- ``litellm-otel``: litellm's own callback (``litellm.callbacks = ["otel"]``,
  OTEL_EXPORTER=otlp_grpc, OTEL_ENDPOINT), which builds its own provider.

Every variant runs at its defaults (content capture included: what a user gets). The
variants' processes stay up and are driven in rounds: in each round, for each kind of call
(``acompletion``, ``astream``, ``completion``, and the same without HTTP through litellm's
``mock_response``), every variant makes its calls in turn, in an order that rotates from
round to round, so all of them sample the same moments of a shared, noisy machine. Per
call: the wall time the app sees (median [min .. max] over all calls), the overhead against
``none`` (difference of the medians, and per round), and the process's CPU (user + sys, all
threads, the server excluded) per call in the turn. Then per variant the whole run's CPU
per call (every export included) with and without the idle cost, our wrapper's steps timed
one by one and under cProfile, and what reached the Collector per variant.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import summary

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("none", "ours", "ours-spans", "openinference", "openllmetry", "litellm-otel")
KINDS = ("acompletion", "astream", "completion", "mock_acompletion", "mock_astream")
PEERS = ("openinference", "openllmetry", "litellm-otel")
# Each variant's own environment on top of the common one (the coordinator's environment
# less every OTEL_/LLMGINE_OTEL_/peer variable, so nothing leaks in).
VARIANT_ENV = {
    "none": {},
    "ours": {"OTEL_EXPORTER_OTLP_ENDPOINT": "{endpoint}"},
    # Like for like with the span-only peers: no log records, no metrics.
    "ours-spans": {"OTEL_EXPORTER_OTLP_ENDPOINT": "{endpoint}", "LLMGINE_OTEL_LOGS": "false",
                   "LLMGINE_OTEL_METRICS": "false"},
    "openinference": {},
    "openllmetry": {},
    "litellm-otel": {"OTEL_EXPORTER": "otlp_grpc", "OTEL_ENDPOINT": "{endpoint}"},
}
QUIET = {"LLMGINE_OBSERVABILITY_QUEUE_SIZE": "200000", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "200000",
         "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "200000", "OTEL_BSP_SCHEDULE_DELAY": "600000",
         "OTEL_BLRP_SCHEDULE_DELAY": "600000"}
IDLE_S = 8.0
# Calls per variant per round, by kind (the mock kinds are cheap and the steadiest).
CALLS = {"acompletion": 15, "astream": 8, "completion": 15, "mock_acompletion": 30,
         "mock_astream": 15}
_SCRUB = ("OTEL_", "LLMGINE_OTEL_", "LLMGINE_OBSERVABILITY_", "TRACELOOP_", "OPENINFERENCE_",
          "LITELLM_OTEL_", "OPENAI_", "DISABLE_AIOHTTP_TRANSPORT", "USE_OTEL_")


class Worker:
    """One variant's process, answering one JSON line per command on a pipe of its own."""

    def __init__(self, python: str, variant: str, endpoint: str, base_url: str,
                 log_dir: str, extra_env: dict[str, str] | None = None,
                 name: str | None = None) -> None:
        self.variant = name or variant
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
        env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LLMGINE_DB_URL="sqlite://",
                   OTEL_SERVICE_NAME=f"bench-{self.variant}", PYTHONDONTWRITEBYTECODE="1")
        env.update({k: v.format(endpoint=endpoint) for k, v in VARIANT_ENV[variant].items()})
        env.update(extra_env or {})
        r, w = os.pipe()
        self.log_path = f"{log_dir}/{self.variant}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [python, "-m", "bench.llm_app", variant, "--endpoint", endpoint,
             "--base-url", base_url, "--reply-fd", str(w)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.log,
            pass_fds=(w,), cwd=str(ROOT), env=env, text=True)
        os.close(w)
        self._fd = r
        self._reply = os.fdopen(r, "r")

    def _read(self, timeout_s: float) -> dict[str, Any]:
        ready, _, _ = select.select([self._fd], [], [], timeout_s)
        line = self._reply.readline() if ready else ""
        if not line:
            self.log.flush()
            tail = open(self.log_path, errors="replace").read()[-3000:]
            raise RuntimeError(f"variant {self.variant}: no answer (exit "
                               f"{self.proc.poll()}): {tail}")
        return json.loads(line)  # type: ignore[no-any-return]

    def ready(self, timeout_s: float = 300.0) -> dict[str, Any]:
        return self._read(timeout_s)

    def ask(self, timeout_s: float = 300.0, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read(timeout_s)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ask(timeout_s=60.0, op="stop")
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reply.close()
        self.log.close()


@contextlib.contextmanager
def llm_server(python: str) -> Iterator[tuple[str, int]]:
    """The local OpenAI-compatible server in its own process: (base URL, pid)."""
    proc = subprocess.Popen([python, "-m", "bench.llm_server"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, cwd=str(ROOT), text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        base = proc.stdout.readline().strip() if ready else ""
        if not base.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the local OpenAI server did not start ({base!r})")
        yield base, proc.pid
    finally:
        with contextlib.suppress(Exception):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _attr(attrs: list[dict[str, Any]], key: str) -> Any:
    for a in attrs:
        if a.get("key") == key:
            return next(iter(a.get("value", {}).values()), None)
    return None


def collector_accounting(path: str) -> dict[str, Any]:
    """What reached the Collector, per service.name (= per variant)."""
    out: dict[str, Any] = defaultdict(lambda: {"spans": 0, "log_records": 0,
                                               "span_names": Counter(), "metrics": set(),
                                               "llm_span_attributes": [],
                                               "otlp_json_bytes": 0})
    try:
        lines = open(path).read().splitlines()
    except OSError as exc:
        return {"error": str(exc)}
    for line in lines:
        if not line.strip():
            continue
        doc = json.loads(line)
        for kind in ("resourceSpans", "resourceLogs", "resourceMetrics"):
            for rs in doc.get(kind, ()):
                svc = _attr(rs.get("resource", {}).get("attributes", []), "service.name")
                acc = out[str(svc)]
                acc["otlp_json_bytes"] += len(json.dumps(rs))
                if kind == "resourceSpans":
                    for ss in rs.get("scopeSpans", ()):
                        for sp in ss.get("spans", ()):
                            acc["spans"] += 1
                            name = sp.get("name", "")
                            acc["span_names"][name] += 1
                            if any(w in name for w in ("chat", "completion", "acompletion",
                                                       "litellm")):
                                acc["llm_span_attributes"].append(len(sp.get("attributes",
                                                                             ())))
                elif kind == "resourceLogs":
                    for sl in rs.get("scopeLogs", ()):
                        acc["log_records"] += len(sl.get("logRecords", ()))
                else:
                    for sm in rs.get("scopeMetrics", ()):
                        for m in sm.get("metrics", ()):
                            acc["metrics"].add(m.get("name"))
    result = {}
    for svc, acc in out.items():
        attrs = acc.pop("llm_span_attributes")
        acc["span_names"] = dict(acc["span_names"].most_common())
        acc["metrics"] = sorted(acc["metrics"])
        acc["attributes_per_llm_span_median"] = statistics.median(attrs) if attrs else None
        result[svc] = acc
    return result


def _stats(walls: dict[str, list[float]], per_round: dict[str, list[float]],
           cpu: dict[str, list[float]], loop_cpu: dict[str, list[float]]) -> dict[str, Any]:
    """Per variant for one kind of call; times in microseconds."""
    base_med = statistics.median(walls["none"])
    out: dict[str, Any] = {}
    for v in walls:
        pooled = statistics.median(walls[v])
        row = {"wall_us": summary(walls[v]), "cpu_us_per_call": summary(cpu[v]),
               "loop_thread_cpu_us_per_call": summary(loop_cpu[v]),
               "round_median_wall_us": summary(per_round[v])}
        if v != "none":
            row["overhead_us"] = pooled - base_med
            row["ratio"] = pooled / base_med
            row["overhead_us_per_round"] = summary(
                [a - b for a, b in zip(per_round[v], per_round["none"], strict=True)])
            row["ratio_per_round"] = summary(
                [a / b for a, b in zip(per_round[v], per_round["none"], strict=True)])
            row["cpu_overhead_us_per_call_per_round"] = summary(
                [a - b for a, b in zip(cpu[v], cpu["none"], strict=True)])
        out[v] = row
    return out


def _whole_run(totals: dict[str, dict[str, Any]], idle: dict[str, dict[str, Any]]
               ) -> dict[str, Any]:
    """Whole-process CPU per call over the run (every kind, every export, and the idle
    time between turns: the variants' processes lived equally long), overhead vs none;
    and the same without the idle cost (CPU per idle second x the run's wall time)."""
    out: dict[str, Any] = {}
    for v, t in totals.items():
        idle_rate = idle[v]["cpu_ns"] / idle[v]["wall_ns"]
        busy_ns = t["cpu_ns"] - idle_rate * t["wall_ns"]
        out[v] = {"cpu_us_per_call": t["cpu_ns"] / t["calls"] / 1e3, "calls": t["calls"],
                  "cpu_s": t["cpu_ns"] / 1e9, "wall_s": t["wall_ns"] / 1e9,
                  "threads": t["threads"], "idle_cpu_ms_per_s": idle_rate * 1e3,
                  "cpu_us_per_call_less_idle": busy_ns / t["calls"] / 1e3}
    for v, row in out.items():
        none = out.get("none")
        row["overhead_us_per_call"] = None if none is None or v == "none" else \
            row["cpu_us_per_call"] - none["cpu_us_per_call"]
        row["overhead_us_per_call_less_idle"] = None if none is None or v == "none" else \
            row["cpu_us_per_call_less_idle"] - none["cpu_us_per_call_less_idle"]
    return out


def _vs_peers(res: dict[str, Any]) -> dict[str, Any]:
    """Ours against the best peer per kind: overheads (wall, CPU) and their ratio."""
    out = {}
    for kind, rows in res.items():
        if "ours" not in rows:
            continue
        peers = [p for p in PEERS if p in rows]  # ours-spans is ours, not a peer
        if not peers:
            continue
        best_wall = min(peers, key=lambda p: rows[p]["overhead_us"])
        best_cpu = min(peers, key=lambda p: rows[p]["cpu_overhead_us_per_call_per_round"]
                       ["median"])
        ours_cpu = rows["ours"]["cpu_overhead_us_per_call_per_round"]["median"]
        peer_cpu = rows[best_cpu]["cpu_overhead_us_per_call_per_round"]["median"]
        out[kind] = {
            "best_peer_wall": best_wall, "ours_wall_overhead_us": rows["ours"]["overhead_us"],
            "best_peer_wall_overhead_us": rows[best_wall]["overhead_us"],
            "wall_overhead_ours_over_best_peer": rows["ours"]["overhead_us"] /
            rows[best_wall]["overhead_us"] if rows[best_wall]["overhead_us"] > 0 else None,
            "best_peer_cpu": best_cpu, "ours_cpu_overhead_us": ours_cpu,
            "best_peer_cpu_overhead_us": peer_cpu,
            "cpu_overhead_ours_over_best_peer": ours_cpu / peer_cpu if peer_cpu > 0 else None,
            "lowest_wall_overhead": min([*peers, "ours"],
                                        key=lambda p: rows[p]["overhead_us"]),
            "lowest_cpu_overhead": min([*peers, "ours"], key=lambda p: rows[p][
                "cpu_overhead_us_per_call_per_round"]["median"]),
        }
    return out


def measure(rounds: int, n: dict[str, int], profile_n: int,
            variants: tuple[str, ...] = VARIANTS) -> dict[str, Any]:
    from bench import peers_env
    from bench.collector import running_collector_with_file

    python = peers_env.python()
    walls: dict[str, dict[str, list[float]]] = {k: defaultdict(list) for k in KINDS}
    per_round: dict[str, dict[str, list[float]]] = {k: defaultdict(list) for k in KINDS}
    cpu: dict[str, dict[str, list[float]]] = {k: defaultdict(list) for k in KINDS}
    loop_cpu: dict[str, dict[str, list[float]]] = {k: defaultdict(list) for k in KINDS}
    out: dict[str, Any] = {"variants": list(variants), "rounds": rounds,
                           "calls_per_round_per_kind": n, "python": python}
    log_dir = tempfile.mkdtemp(prefix="bench-llm-peers-")
    t_start = time.monotonic()
    with running_collector_with_file() as (endpoint, _col_pid, col_file), \
            llm_server(python) as (base_url, _srv_pid):
        workers = {v: Worker(python, v, endpoint, base_url, log_dir) for v in variants}
        try:
            out["setup"] = {v: w.ready() for v, w in workers.items()}
            for r in range(rounds):
                for ki, kind in enumerate(KINDS):
                    k = (r + ki) % len(variants)
                    for v in variants[k:] + variants[:k]:
                        res = workers[v].ask(op="round", kind=kind, n=n[kind])
                        w_us = [x / 1e3 for x in res["wall_ns"]]
                        walls[kind][v] += w_us
                        per_round[kind][v].append(statistics.median(w_us))
                        cpu[kind][v].append(res["cpu_ns"] / 1e3 / n[kind])
                        loop_cpu[kind][v].append(res["loop_thread_cpu_ns"] / 1e3 / n[kind])
            out["measure_s"] = time.monotonic() - t_start
            totals = {v: workers[v].ask(op="totals") for v in variants}
            idle = {v: workers[v].ask(op="idle", s=IDLE_S) for v in variants}
            out["whole_run"] = _whole_run(totals, idle)
            if profile_n and "ours" in workers:
                # Export on: the CPU the export threads spend per call. Then a worker whose
                # export threads stay idle (queues and batches larger than the run, a
                # 10-minute delay): the steps alone, timed, then under cProfile.
                out["phases_ours"] = workers["ours"].ask(op="phases", n=profile_n * 10)
                quiet = Worker(python, "ours", endpoint, base_url, log_dir, QUIET,
                               name="ours-quiet")
                workers["ours-quiet"] = quiet
                quiet.ready()
                out["phases_ours_quiet"] = quiet.ask(op="phases", n=profile_n * 10)
                out["profile_ours_quiet"] = quiet.ask(op="profile", kind="phases",
                                                      n=profile_n * 5)
        finally:
            for w in workers.values():
                w.close()
        time.sleep(3.0)  # the Collector's batch (1 s) and file flush (1 s) intervals
        out["collector"] = collector_accounting(col_file)
    out["results"] = {kind: _stats(walls[kind], per_round[kind], cpu[kind], loop_cpu[kind])
                      for kind in KINDS}
    out["ours_vs_best_peer"] = _vs_peers(out["results"])
    return out


def run(quick: bool, collector: bool) -> dict[str, Any]:
    if not collector:
        return {"not_measured": "needs --collector"}
    rounds, scale, profile_n = (4, 0.5, 30) if quick else (24, 1.0, 200)
    n = {k: max(3, round(v * scale)) for k, v in CALLS.items()}
    only = os.environ.get("BENCH_LLM_VARIANTS")
    variants = tuple(v.strip() for v in only.split(",")) if only else VARIANTS
    try:
        return measure(rounds, n, profile_n, variants)
    except RuntimeError as exc:
        if "collector binary not built" in str(exc):
            return {"not_measured": str(exc)}
        raise


if __name__ == "__main__":  # quick look: python -m bench.b10_llm_peers
    json.dump(run("--quick" in sys.argv, True), sys.stdout, indent=1, default=str)
