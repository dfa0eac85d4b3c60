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


def _outage_rows(secs: int) -> list[Row]:
    key = f"collector_outage_{secs}s"
    return [
        (f"2. {secs} s outage: nothing lost, each item once; no raise; exact accounting",
         key,
         lambda f: (f"{f['outage_seconds']} s SIGKILL outage, {f['events_published']} events: "
                    f"{f['publish_errors']} errors; in the Collector file "
                    f"{f['spans_in_file']}/{f['spans']['produced']} spans, "
                    f"{f['logs_in_file']}/{f['logs']['produced']} log records, duplicates "
                    f"{f['span_rows_in_file'] - f['spans_in_file']} / "
                    f"{f['log_rows_in_file'] - f['logs_in_file']}; spans {_acct(f['spans'])}; "
                    f"logs {_acct(f['logs'])}; balance {f['spans_balance']} / "
                    f"{f['logs_balance']}; on disk at restart {f['on_disk_at_restart']} "
                    f"({f['buffer_mb_at_restart']} MB)"),
         "outage"),
        (f"2. {secs} s outage: delivery resumes < 10 s after restart",
         key,
         lambda f: (f"first data {f['delivery_resumed_after_s']} s after restart; sessions "
                    f"published after the restart in the file after "
                    f"{f['post_restart_sessions_after_s']} s (the disk backlog goes first); "
                    f"backlog resent {f['backlog_drained_after_s']} s after restart; "
                    f"{f['post_restart_sessions_in_file']} of {f['post_restart_sessions']} "
                    f"post-restart sessions in the file"),
         "outage"),
        (f"2. {secs} s outage: no publish call stalls; RSS within target 4's 64 MB",
         key,
         lambda f: (f"p99 {f['publish_p99_ms']} ms, p99.9 {f['publish_p999_ms']} ms, max "
                    f"{f['publish_max_ms']} ms ({f['publish_calls_over_10ms']} calls > 10 ms); "
                    f"minus GC pauses: p99.9 {f['publish_p999_minus_gc_ms']} ms, max "
                    f"{f['publish_max_minus_gc_ms']} ms ({f['calls_over_10ms_minus_gc']} calls "
                    f"> 10 ms: {f['calls_over_10ms_minus_gc_by_phase']}); GC pauses > 10 ms: "
                    f"{f['gc_pauses_over_10ms']}, longest {f['gc_pause_max_ms']} ms; RSS growth "
                    f"{f['rss_growth_outage_mb']} MB by the restart, {f['rss_growth_mb']} MB "
                    f"at the peak; host load {f['host_load_average_at_restart']}"),
         "outage"),
    ]


def _run(f: dict[str, Any]) -> str:
    return (f"exit {f['exit_code']} in {f['seconds_to_exit']} s; "
            f"{f['spans_in_file']}/{f['spans_expected']} spans, "
            f"{f['logs_in_file']}/{f['logs_expected']} log records")


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
    *[row for secs in (30, 120) for row in _outage_rows(secs)],
    *[(f"3. bounded shutdown, endpoint {mode}{', disk buffer' if buf else ''}: < 5.5 s, "
       + ("everything kept on disk" if buf else "undelivered reported"),
       f"bounded_shutdown_{mode}{'_buffer' if buf else ''}",
       lambda f: (f"{f['shutdown_seconds']} s (bound {f['bound_s']} s); undelivered "
                  f"{f['undelivered']}; on disk {f.get('buffered', {})}; balance spans "
                  f"{f['spans_balance']}, logs {f['logs_balance']}"),
       "bounded_shutdown")
      for mode in ("refused", "blackholed") for buf in (False, True)],
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
    ("10. SIGTERM, local files: all delivered, exit by SIGTERM (143)", "sigterm_file_default",
     _run, "sigterm_flushes_the_file"),
    ("10. SIGTERM, OTLP to the Collector: all delivered, exit by SIGTERM", "sigterm_otlp",
     _run, "sigterm_flushes_to_the_collector"),
    ("10. SIGTERM, app handler installed before configure(): it runs, all delivered",
     "sigterm_app_handler_before", _run, "app_handler_installed_before"),
    ("10. SIGTERM, app handler installed after, chaining: it runs, all delivered",
     "sigterm_app_handler_after", _run, "app_handler_installed_after"),
    ("10. SIGINT, Python's default handler: all delivered, exit by SIGINT (130)",
     "sigint_default", _run, "sigint_with_pythons_default"),
    ("10. SIGTERM with LLMGINE_OTEL_FLUSH_ON_SIGNAL=false (what it prevents)",
     "sigterm_switched_off", _run, "switched_off_loses"),
    ("11. kill -9 during an outage: the next process resends it, once",
     "kill9_then_resend",
     lambda f: (f"{f['sessions_published_by_first']} sessions published at 200/s, killed "
                f"after 8 s: of the {f['sessions_older_than_one_attempt']} older than one "
                f"export attempt (5.2 s) {f['lost_of_those']} lost; of the "
                f"{f['sessions_in_last_attempt_window']} in that window "
                f"{f['lost_in_that_window']} lost (newest delivered session published "
                f"{f['newest_delivered_session_before_kill_s']} s before the kill); second "
                f"process took over {f['adopted_by_second']} items and resent them in "
                f"{f['second_drained_s']} s; duplicates "
                f"{f['span_rows'] - f['spans_in_file']} / {f['log_rows'] - f['logs_in_file']}"),
     "kill_9"),
    ("12. disk full (256 KiB bound): oldest dropped and counted, identity exact",
     "disk_full",
     lambda f: (f"{f['sessions']} sessions, endpoint down: {f['publish_errors']} errors; "
                f"{f['bytes_on_disk_after_shutdown']} bytes on disk (bound "
                f"{f['bound_bytes']}); spans {_acct(f['spans'])}, buffered "
                f"{f['spans']['buffered']}; logs {_acct(f['logs'])}, buffered "
                f"{f['logs']['buffered']}; balance {f['spans_balance']} / "
                f"{f['logs_balance']}; resent later: {f['resent_spans']} spans, "
                f"{f['resent_logs']} logs, from session {f['first_session_kept']} on"),
     "disk_full"),
    ("13. slow async handler on the real bus: in-flight bound and timeout hold, counted",
     "slow_async_handler",
     lambda f: (f"{f['events']} events, handler sleeping 1 h, bound {f['bound']}, timeout "
                f"{f['timeout_s']} s: {f['started']} calls started, at most "
                f"{f['most_at_once']} at once; {f['in_flight_limit']} not given "
                f"(in-flight bound), {f['timeouts']} cancelled (timeout); worst publish "
                f"{f['worst_publish_ms']} ms"),
     "slow_async_handler"),
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
