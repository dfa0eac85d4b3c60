"""Print the RELIABILITY.md figures table from tests/reliability/.last-figures.json.

    .venv/bin/python tests/reliability/render_figures.py

Each row: target, what was measured in the last run of its test, and the command that
reproduces it. Paste the output over the table in RELIABILITY.md after a run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIGURES = Path(__file__).resolve().parent / ".last-figures.json"
CMD = "`.venv/bin/python -m pytest tests/reliability -k {k} -s`"

Row = tuple[str, str, Callable[[dict[str, Any]], str], str]


def _acct(a: dict[str, Any]) -> str:
    dropped = ", ".join(f"{r} {n}" for r, n in sorted(a["dropped"].items())) or "none"
    return f"produced {a['produced']}, exported {a['exported']}, dropped: {dropped}"


ROWS: list[Row] = [
    ("1. clean shutdown: 100% of spans and log records in the Collector file",
     "clean_shutdown",
     lambda f: (f"{f['sessions']} sessions at {f['events_per_s']} events/s: "
                f"{f['spans_in_file']}/{f['produced']} spans, "
                f"{f['logs_in_file']}/{f['produced_logs']} log records in the file; lost "
                f"{f['lost_spans']} spans / {f['lost_logs']} logs; duplicates "
                f"{f['span_rows_in_file'] - f['spans_in_file']}; exported == produced "
                f"({f['exported_spans']} / {f['exported_logs']}); shutdown "
                f"{f['shutdown_seconds']} s"),
     "clean_shutdown"),
    ("2. outage: no raise; exported + dropped == produced exactly",
     "collector_outage",
     lambda f: (f"{f['outage_seconds']} s SIGKILL outage, {f['events_published']} events: "
                f"{f['publish_errors']} errors; spans {_acct(f['spans'])} (balance "
                f"{f['spans_balance']}); logs {_acct(f['logs'])} (balance {f['logs_balance']})"),
     "outage"),
    ("2. outage: delivery resumes < 10 s after restart",
     "collector_outage",
     lambda f: (f"first data {f['delivery_resumed_after_s']} s after restart; sessions "
                f"published after the restart in the file after "
                f"{f['post_restart_sessions_after_s']} s (the 10,000-item backlog goes "
                f"first); {f.get('post_restart_sessions_in_file', '?')} of "
                f"{f.get('post_restart_sessions', '?')} post-restart sessions in the file"),
     "outage"),
    ("2. outage: no publish call stalls (max well under 10 ms)",
     "collector_outage",
     lambda f: (f"p99 {f['publish_p99_ms']} ms, p99.9 {f['publish_p999_ms']} ms, max "
                f"{f['publish_max_ms']} ms ({f['publish_calls_over_10ms']} calls > 10 ms); "
                f"minus GC pauses: max {f['publish_max_minus_gc_ms']} ms "
                f"({f['calls_over_10ms_minus_gc']} calls > 10 ms); GC pauses > 10 ms: "
                f"{f['gc_pauses_over_10ms']}, longest {f['gc_pause_max_ms']} ms"),
     "outage"),
    ("3. bounded shutdown, endpoint refused: < 5.5 s, undelivered reported",
     "bounded_shutdown_refused",
     lambda f: (f"{f['shutdown_seconds']} s (bound {f['bound_s']} s); undelivered "
                f"{f['undelivered']}; balance spans {f['spans_balance']}, logs "
                f"{f['logs_balance']}"),
     "bounded_shutdown"),
    ("3. bounded shutdown, endpoint blackholed: < 5.5 s, undelivered reported",
     "bounded_shutdown_blackholed",
     lambda f: (f"{f['shutdown_seconds']} s (bound {f['bound_s']} s); undelivered "
                f"{f['undelivered']}; balance spans {f['spans_balance']}, logs "
                f"{f['logs_balance']}"),
     "bounded_shutdown"),
    ("4. bounded memory: RSS growth <= 64 MB with the Collector down; released after drain",
     "bounded_memory",
     lambda f: (f"{f['events']} events ({f['us_per_event']} us/event): RSS "
                f"{f['rss_start_mb']} -> peak {f['rss_peak_mb']} MB (growth "
                f"{f['rss_growth_mb']} MB, queues {f['queued_while_down']}); after drain "
                f"{f['rss_after_drain_mb']} MB (released {f['released_mb']} MB)"),
     "bounded_memory"),
    ("5. bad input: nothing raised, nothing left open, all counted, valid OTLP",
     "bad_input",
     lambda f: (f"{f['events']} events ({f['corrupted_events']} corrupted, "
                f"{f['threaded_events']} from foreign threads, {f['big_strings']} x 10 MB): "
                f"{f['exceptions_into_bus']} exceptions into the bus, "
                f"{f['open_spans_after_shutdown']} open spans after shutdown; repaired "
                f"{f['outcomes'].get('repaired', 0)}, rejected "
                f"{f['outcomes'].get('rejected', 0)}; spans {_acct(f['spans'])}; logs "
                f"{_acct(f['logs'])}; Collector refused {f['collector_refused_spans']:.0f} "
                f"spans / {f['collector_refused_logs']:.0f} logs"),
     "bad_input"),
    ("6. interleaving: every span in its own session's trace",
     "interleaving",
     lambda f: (f"{f['sessions']} sessions ({f['asyncio_sessions']} asyncio tasks, "
                f"{f['thread_sessions']} on {f['threads']} threads): {f['traces']} traces, "
                f"{f['cross_links']} cross-links, {f['orphans']} orphans, "
                f"{f['sessions_split_over_traces']} split sessions, "
                f"{f['traces_mixing_sessions']} mixed traces"),
     "interleaving"),
    ("6. interleaving, one trace per command: every span in its session's traces, linked",
     "interleaving_command",
     lambda f: (f"{f['sessions']} sessions ({f['asyncio_sessions']} asyncio tasks, "
                f"{f['thread_sessions']} on {f['threads']} threads): {f['traces']} traces "
                f"(start, command, end per session), {f['linked_roots']} linked roots, "
                f"{f['bad_links']} links to another session, {f['cross_links']} cross-links, "
                f"{f['orphans']} orphans, {f['traces_mixing_sessions']} mixed traces"),
     "interleaving"),
    ("7. privacy, defaults: no canary in the Collector output",
     "privacy_default",
     lambda f: (f"{sum(f['canary_hits'].values())} canary hits in "
                f"{f['bytes_scanned']} bytes"),
     "privacy"),
    ("7. privacy, capture on: secrets scrubbed, content kept",
     "privacy_capture_on",
     lambda f: (f"secret hits {sum(f['secret_hits'].values())}; content hits "
                f"{sum(f['content_hits'].values())}; [REDACTED] markers "
                f"{f['redacted_markers']}"),
     "privacy"),
    ("8. fork: each child's telemetry once, none lost",
     "fork",
     lambda f: (f"{f['children']} children: {f['sessions_found']}/{f['sessions_expected']} "
                f"sessions, {f['duplicate_spans']} duplicate spans, {f['duplicate_logs']} "
                f"duplicate logs, {f['missing_sessions']} missing"),
     "fork"),
    ("9. TLS + bearer token: right token exported, wrong token refused visibly",
     "tls",
     lambda f: (f"right token: {f['spans_in_file']} spans / {f['logs_in_file']} logs in "
                f"the file; wrong token: spans {_acct(f['bad_spans'])}, "
                f"{f['unauthenticated_records']} UNAUTHENTICATED exporter error(s) logged"),
     "tls"),
    ("first publish of a fresh process does not stall (< 10 ms)",
     "first_publish",
     lambda f: f"max {f['max_ms']} ms ({f['slowest_event']})",
     "first_publish"),
]


def render(data: dict[str, Any]) -> str:
    lines = ["| target | measured | reproduce |", "|---|---|---|"]
    for target, key, fmt, k in ROWS:
        f = data.get(key)
        try:
            measured = fmt(f) if f else "not measured"
        except (KeyError, TypeError) as exc:
            measured = f"(figures incomplete: {exc})"
        when = f" ({f['measured_at']})" if f else ""
        lines.append(f"| {target} | {measured}{when} | {CMD.format(k=k)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(json.loads(FIGURES.read_text())))
