# Scratch experiment (issue 6 profiling): interleaves the unpatched snapshot (orig_x) and
# the patched copy (llmgine_otel_x, see p1-p3-p5-scratch.diff) in one process. Set up with
# the package copied to /tmp/scratch/{orig_x,llmgine_otel_x,p3_x} and imports renamed.
# Usage: python bench/proposals/experiment.py ROUNDS SESSIONS_PER_ROUND
import sys, importlib, tempfile, json
sys.path.insert(0, "/tmp/scratch"); sys.path.insert(0, "/work/main")
from bench import (NullSpanExporter, NullLogExporter, flat, interleaved_round, make_sessions,
                   ratio_summary, summary)

def build(mod, **kw):
    m = importlib.import_module(mod)
    tel = m.configure(set_global=False, output_dir=tempfile.mkdtemp(), console=False, **kw)
    for sp in tel.span_processors: sp.counting.inner = NullSpanExporter()
    for lp in tel.log_processors: lp.counting.inner = NullLogExporter()
    return tel

tels = {"orig": build("orig_x"), "orig metrics off": build("orig_x", emit_metrics=False),
        "orig logs off": build("orig_x", emit_logs=False),
        "patched (P1-P4)": build("llmgine_otel_x"),
        "patched, metrics off": build("llmgine_otel_x", emit_metrics=False), "P3 only (one metric reader)": build("p3_x")}
from bench import build_raw
raw = build_raw("null")
sides = {n: t.handler.handle for n, t in tels.items()}
sides["raw SDK"] = raw.handle
interleaved_round(sides, make_sessions(10))
rounds, per = int(sys.argv[1]), int(sys.argv[2])
cpu = {n: [] for n in sides}; wall = {n: [] for n in sides}
for r in range(rounds):
    ss = make_sessions(per)
    chunks = [flat(ss[i:i+2]) for i in range(0, len(ss), 2)]
    for n, (w, c) in interleaved_round(sides, chunks, rotate=r).items():
        wall[n].append(w); cpu[n].append(c)
    for t in tels.values():
        for p in (*t.span_processors, *t.log_processors): p._batch_processor.force_flush()
    raw.flush()
out = {}
for n in sides:
    out[n] = {"cpu_us": summary([c/1e3 for c in cpu[n]]), "wall_us": summary([w/1e3 for w in wall[n]]),
              "cpu_vs_orig": ratio_summary(cpu[n], cpu["orig"]), "cpu_vs_raw": ratio_summary(cpu[n], cpu["raw SDK"]),
              "wall_vs_orig": ratio_summary(wall[n], wall["orig"])}
json.dump(out, open("/tmp/scratch/exp.json", "w"), indent=1)
for n, o in out.items():
    f = lambda s: f"{s['median']:.2f} [{s['min']:.2f}..{s['max']:.2f}]"
    print(f"{n:24s} cpu us/ev {o['cpu_us']['median']:7.1f}  cpu/orig {f(o['cpu_vs_orig'])}  wall/orig {f(o['wall_vs_orig'])}  cpu/raw {f(o['cpu_vs_raw'])}")
