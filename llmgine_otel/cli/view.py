"""`llmgine-otel view`: a trace waterfall in the terminal, as JSON or as one HTML page."""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from llmgine_otel.view.model import (
    group_sessions,
    json_default,
    load_traces,
    select_traces,
    session_json,
    trace_json,
)


def register(subparsers: Any) -> None:
    """Add the `view` sub-command."""
    parser = subparsers.add_parser(
        "view",
        help="show traces from an OTLP-JSON telemetry file or folder",
        description="Show the traces of OTLP-JSON telemetry (a file, or a folder of rotated "
        "files) as a waterfall, as JSON, or as one self-contained HTML page.",
    )
    parser.add_argument("path", type=Path, metavar="PATH", help="telemetry file or folder")
    parser.add_argument("--trace", metavar="ID", help="only the trace with this id (or id prefix)")
    parser.add_argument(
        "--session", metavar="ID", help="only this session (all its traces: one per command)"
    )
    parser.add_argument("--errors", action="store_true", help="only traces with a failed span")
    parser.add_argument("--slowest", type=_positive, metavar="N", help="only the N longest traces")
    parser.add_argument("--json", action="store_true", help="print traces as JSON")
    parser.add_argument("--html", type=Path, metavar="OUT.html", help="write one HTML page")
    parser.add_argument(
        "--width", type=_positive, metavar="N", help="line width (default: terminal)"
    )
    parser.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto", help="colour (default auto)"
    )
    parser.set_defaults(func=run)


def _positive(text: str) -> int:
    """An argparse type: an integer above zero."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _problem(message: str) -> None:
    """One problem, one line on stderr."""
    print(f"llmgine-otel view: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Read, filter and render; 0 when something was shown, 1 when nothing could be."""
    # Rows and trees hold no reference cycles, and the collector's full passes over a heap of
    # 100,000 rows took half the time of a view: pause it while this command runs.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _view(args)
    finally:
        if was_enabled:
            gc.enable()


def _view(args: argparse.Namespace) -> int:
    """The body of `run`."""
    prefix = args.trace.lower() if args.trace else None
    wanted: set[str] | None = None
    if args.session is not None or args.errors or args.slowest is not None:
        wanted = select_traces(
            args.path,
            trace_prefix=prefix,
            session_id=args.session,
            errors_only=args.errors,
            slowest=args.slowest,
        )
    loaded = load_traces(args.path, on_problem=_problem, trace_ids=wanted, trace_prefix=prefix)
    traces = loaded.traces
    if args.slowest is not None:
        traces.sort(key=lambda t: (-t.duration_ns, t.trace_id))
        sessions = [s for t in traces for s in group_sessions([t])]
    else:  # a session's traces together (one per command in the default trace shape)
        sessions = group_sessions(traces)
        traces = [t for s in sessions for t in s.traces]
    if not loaded.spans and not loaded.logs:
        _problem(f"{args.path}: no spans or log records could be read")
        return 1
    if not traces:
        _problem(f"no trace matches ({loaded.spans} spans, {loaded.logs} log records read)")
        return 1
    if args.html is not None:
        from llmgine_otel.view.html import render_html

        args.html.write_text(render_html(sessions, title=str(args.path)), encoding="utf-8")
        print(f"wrote {args.html} ({len(traces)} traces)", file=sys.stderr)
    if args.json:
        document = {
            "traces": [trace_json(t) for t in traces],
            "sessions": [session_json(s) for s in sessions],
        }
        # dumps, not dump: dump streams through json's pure-Python encoder, ~10x slower.
        sys.stdout.write(json.dumps(document, ensure_ascii=False, default=json_default) + "\n")
    elif args.html is None:
        from llmgine_otel.view.terminal import choose_style, render

        style = choose_style(args.color, sys.stdout)
        width = args.width or shutil.get_terminal_size((120, 24)).columns
        out = sys.stdout
        for line in render(sessions, width=width, style=style):
            out.write(line + "\n")
    return 0
