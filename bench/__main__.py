"""``python -m bench [--quick] [--only NAME[,NAME]] [--collector]``: run the suite, print a
table, write ``bench/results/latest.json``. Each benchmark runs in a fresh subprocess whose
stdout goes to /dev/null (llmgine's console exporter would flood the terminal)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.registry import MODULES

HERE = Path(__file__).resolve().parent


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    versions = {}
    for pkg in ("opentelemetry-sdk", "llmgine", "llmgine-otel", "grpcio"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            versions[pkg] = None
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "loadavg_at_start": load, "packages": versions}


def _m(s: dict[str, Any], scale: float = 1.0, fmt: str = "{:,.1f}") -> str:
    return (f"{fmt.format(s['median'] * scale)} [{fmt.format(s['min'] * scale)} .. "
            f"{fmt.format(s['max'] * scale)}]")


def table(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(benchmark, what, median [min .. max], target/verdict)."""
    rows: list[tuple[str, str, str, str]] = []
    us = 1e-3
    r = results.get("overhead")
    if r and "error" not in r:
        for key in ("null", "otlp_collector"):
            sub = r.get(key, {})
            if "not_measured" in sub:
                rows.append(("1 overhead", f"[{key}] all", "not yet measured",
                             sub["not_measured"]))
                continue
            for n, s in sub.get("sides", {}).items():
                rows.append(("1 overhead", f"[{key}] {n} us/event wall",
                             _m(s["wall_ns_per_event"], us),
                             f"cpu {_m(s['cpu_ns_per_event'], us)}"))
            for n, s in sub.get("ratios", {}).items():
                if "SDK clock" in n and "handler" not in n:
                    continue
                ok = "meets" if s["wall"]["median"] <= r["null"]["target_ratio"] else "MISSES"
                rows.append(("1 overhead", f"[{key}] ratio {n}", _m(s["wall"], 1, "{:.2f}"),
                             f"<= 1.10: {ok}; cpu {_m(s['cpu'], 1, '{:.2f}')}"))
            for n, pth in sub.get("paths", {}).items():
                rows.append(("1 overhead", f"[{key}] path of {n}", pth["spans"],
                             f"queue fast {pth['queue_fast']}; export {pth['exporters']}"))
            s = sub.get("public_vs_fast")
            if s:
                rows.append(("1 overhead", f"[{key}] ratio ours public path / ours fast path",
                             _m(s["wall"], 1, "{:.2f}"), f"cpu {_m(s['cpu'], 1, '{:.2f}')}"))
    r = results.get("baseline")
    if r and "error" not in r:
        for n, s in r["sides"].items():
            rows.append(("2 baseline", f"{n} us/event wall", _m(s["wall_ns_per_event"], us),
                         f"cpu {_m(s['cpu_ns_per_event'], us)}"))
        for n, s in r["speedups"].items():
            ok = "meets" if s["wall"]["median"] >= s["target"] else "MISSES"
            rows.append(("2 baseline", f"speed-up {n}", _m(s["wall"], 1, "{:.2f}"),
                         f">= {s['target']:.0f}x: {ok}; cpu {_m(s['cpu'], 1, '{:.2f}')}"))
    r = results.get("loop_lag")
    if r and "error" not in r:
        for n, s in r.items():
            if not isinstance(s, dict) or n == "targets":
                continue
            if "not_measured" in s:
                rows.append(("3 loop lag", n, "not yet measured", s["not_measured"]))
                continue
            ok = ("meets" if s["lag_ms"]["p99"] <= 5 and s["publish_us"]["p99.9"] <= 1000
                  else "MISSES")
            rows.append(("3 loop lag", f"{n} ({s['events_per_s']:,.0f} ev/s)",
                         f"lag p99 {s['lag_ms']['p99']:.2f} ms, publish p99.9 "
                         f"{s['publish_us']['p99.9']:.0f} us",
                         f"p99 lag <= 5 ms, p99.9 publish <= 1 ms: {ok}; lag max "
                         f"{s['lag_ms']['max']:.1f} ms"))
    r = results.get("throughput")
    if r and "error" not in r:
        if "not_measured" in r:
            rows.append(("4 throughput", "spans/s into the collector", "not yet measured",
                         r["not_measured"]))
        for k in ("flat_out", "paced"):
            if k in r:
                s = r[k]
                ok = "meets" if s["zero_drops"] and s["spans_per_s_exported_incl_flush"] >= \
                    r["target_spans_s"] else "MISSES"
                rows.append(("4 throughput", f"{k}: spans/s exported (drops {s['dropped']})",
                             f"{s['spans_per_s_exported_incl_flush']:,.0f}",
                             f">= 20,000 with zero drops: {ok}; cpu s ours "
                             f"{s['cpu_s_ours']:.1f}, collector {s['cpu_s_collector']:.1f}"))
    r = results.get("memory")
    if r and "error" not in r:
        t = r["tracemalloc"]
        rows.append(("5 memory", f"bytes per open command span (tracemalloc, N={t['open_spans']})",
                     f"{t['bytes_per_open_span']:,.0f}", ""))
        for k in ("rss_10k_sessions", "rss_10k_sessions_3_open_spans_each"):
            s = r[k]
            rows.append(("5 memory", f"{k}: RSS delta ({s['open_spans']} open spans)",
                         f"{s['rss_delta_mb']:.1f} MB",
                         f"RSS {s['rss_after_mb']:.0f} MB; "
                         f"{s['rss_bytes_per_open_span']:,.0f} B/span"))
    r = results.get("startup")
    if r and "error" not in r:
        ok = "meets" if r["total_ms"]["median"] <= r["target_ms"] else "MISSES"
        rows.append(("6 start-up", "import + configure() ms", _m(r["total_ms"]),
                     f"<= 150 ms: {ok}; import {_m(r['import_ms'])}, configure "
                     f"{_m(r['configure_ms'])}"))
        rows.append(("6 start-up", "whole process wall ms", _m(r["process_wall_ms"]), ""))
        top = ", ".join(f"{n} {ms:.0f}" for n, ms in r["importtime"]["top_cumulative_ms"][:5])
        rows.append(("6 start-up", "importtime top (cumulative ms)", top, ""))
    r = results.get("scaling")
    if r and "error" not in r:
        for n, s in r["sides"].items():
            rows.append(("7 scaling", f"{n} us/event wall", _m(s["wall_ns_per_event"], us),
                         f"ratio vs 1: {_m(r['ratios_vs_1'][n]['wall'], 1, '{:.2f}')}, cpu "
                         f"{_m(r['ratios_vs_1'][n]['cpu'], 1, '{:.2f}')}"))
    r = results.get("knobs")
    if r and "error" not in r:
        for k, s in r["queue_size"].items():
            if k.startswith("queue_size="):
                rows.append(("8 knobs", f"QUEUE_SIZE {k.split('=')[1]}: dropped in burst",
                             json.dumps(s["dropped"]), f"produced {json.dumps(s['produced'])}"))
        w = r["workers"]
        for k in ("workers=1", "workers=2"):
            rows.append(("8 knobs", f"WORKERS {k.split('=')[1]}: spans/s exported to slow exporter",
                         f"{w[k]['spans_exported_per_s']:,.0f}",
                         f"logs/s {w[k]['logs_exported_per_s']:,.0f}"))
        rows.append(("8 knobs", "WORKERS 2 vs 1 speed-up", f"{w['speedup_2_vs_1']:.2f}", ""))
        sr = r["sample_rate"]
        for n, s in sr["sides"].items():
            rows.append(("8 knobs", f"SAMPLE_RATE {n.split('=')[1]} us/event wall",
                         _m(s["wall_ns_per_event"], us), f"cpu {_m(s['cpu_ns_per_event'], us)}"))
        rows.append(("8 knobs", "SAMPLE_RATE 0.1 / 1.0 cost ratio",
                     _m(sr["ratio_0.1_vs_1.0"]["wall"], 1, "{:.2f}"), ""))
    r = results.get("profile")
    if r and "error" not in r:
        for row in r["top_self"][:8]:
            rows.append(("9 profile", f"self {row['function']}", f"{row['self_pct']:.1f}%",
                         f"{row['calls_per_event']:.2f} calls/event"))
    r = results.get("llm_peers")
    if r and "error" not in r:
        if "not_measured" in r:
            rows.append(("10 llm peers", "all", "not yet measured", r["not_measured"]))
        for kind, variants in r.get("results", {}).items():
            for v in r["variants"]:
                s = variants[v]
                extra = "" if v == "none" else (
                    f"overhead {s['overhead_us']:+,.0f} us (x{s['ratio']:.2f}), per round "
                    f"{_m(s['overhead_us_per_round'], 1, '{:+,.0f}')}; ")
                cpu_ovh = "" if v == "none" else \
                    f", overhead {_m(s['cpu_overhead_us_per_call_per_round'], 1, '{:+,.0f}')}"
                rows.append(("10 llm peers", f"[{kind}] {v} us/call wall", _m(s["wall_us"]),
                             f"{extra}cpu us/call {_m(s['cpu_us_per_call'])}{cpu_ovh}"))
        for v, s in r.get("whole_run", {}).items():
            ovh, ovh2 = s["overhead_us_per_call"], s["overhead_us_per_call_less_idle"]
            rows.append(("10 llm peers", f"[whole run] {v} cpu us/call, all threads",
                         f"{s['cpu_us_per_call']:,.0f}",
                         ("" if ovh is None else f"overhead {ovh:+,.0f} us/call; ") +
                         f"idle {s['idle_cpu_ms_per_s']:.1f} ms/s; less idle "
                         f"{s['cpu_us_per_call_less_idle']:,.0f}" +
                         ("" if ovh2 is None else f", overhead {ovh2:+,.0f}")))
        for kind, s in r.get("ours_vs_best_peer", {}).items():
            w, c = s["wall_overhead_ours_over_best_peer"], s["cpu_overhead_ours_over_best_peer"]
            rows.append(("10 llm peers", f"[{kind}] ours / best peer overhead",
                         f"wall {'n/a' if w is None else f'{w:.2f}'} ({s['best_peer_wall']}), "
                         f"cpu {'n/a' if c is None else f'{c:.2f}'} ({s['best_peer_cpu']})",
                         f"<= 0.5 aimed; lowest: wall {s['lowest_wall_overhead']}, cpu "
                         f"{s['lowest_cpu_overhead']}"))
    for name, r in results.items():
        if isinstance(r, dict) and "error" in r:
            rows.append((name, "ERROR", r["error"].strip().splitlines()[-1][:80], ""))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="shorter runs")
    ap.add_argument("--only", default="", help="comma-separated: " + ", ".join(MODULES))
    ap.add_argument("--collector", action="store_true",
                    help="also run the benchmarks that need the bundled collector")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.json"))
    a = ap.parse_args()
    names = [n.strip() for n in a.only.split(",") if n.strip()] or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(MODULES)}")
    info = machine()
    print(f"# {info['nproc']} x {info['cpu']}, Python {info['python']}, load "
          f"{info['loadavg_at_start']}", flush=True)
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for n in names:
        print(f"running {n} ...", end="", flush=True)
        fd, path = tempfile.mkstemp(suffix=".json")
        os.close(fd)
        cmd = [sys.executable, "-m", "bench._worker", n, "--out", path]
        cmd += ["--quick"] if a.quick else []
        cmd += ["--collector"] if a.collector else []
        t0 = time.perf_counter()
        err = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err,
                              cwd=str(HERE.parent))
        seconds[n] = time.perf_counter() - t0
        try:
            results[n] = json.load(open(path))
        except (OSError, json.JSONDecodeError):
            err.seek(0)
            results[n] = {"error": f"worker exit {proc.returncode}: {err.read()[-2000:]}"}
        os.unlink(path)
        print(f" {seconds[n]:.0f} s", flush=True)
    out = {"machine": info, "command": " ".join(["python -m bench", *sys.argv[1:]]),
           "quick": a.quick, "collector": a.collector, "seconds": seconds,
           "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": results}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1, default=str)
    rows = table(results)
    w = [max(len(r[i]) for r in rows) if rows else 0 for i in range(3)]
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}")
    print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
