"""`llmgine-otel tail`: follow a growing telemetry file, one summary line per finished session.

A session traced as one trace gets its line when its root span arrives. A session traced one
trace per command (the default) gets a line per command as each ends, a line when it starts,
and at its end (its ``session end`` span) a line with the totals of all its traces."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any

from llmgine_otel.mapping import SESSION_END_NAME
from llmgine_otel.telemetry_files import telemetry_files
from llmgine_otel.telemetry_rows import SIGNAL_KEYS, SpanRow, rows_from_object
from llmgine_otel.view.model import Session, Trace
from llmgine_otel.view.terminal import (
    choose_style,
    fmt_time,
    session_parts,
    summary_line,
)

_DONE_REMEMBERED = 10_000  # finished trace ids kept so late spans of them are not re-summarised
_SESSIONS_REMEMBERED = 10_000  # running sessions whose totals are kept until their end


def register(subparsers: Any) -> None:
    """Add the `tail` sub-command."""
    parser = subparsers.add_parser(
        "tail",
        help="follow a telemetry file, printing each session (and command) when it ends",
        description="Follow a growing OTLP-JSON telemetry file (or the newest file of a folder), "
        "across rotation, printing one summary line per session as its root span arrives; a "
        "session traced one trace per command gets a line per command as it ends and one with "
        "its totals at its end.",
    )
    parser.add_argument("path", type=Path, metavar="PATH", help="telemetry file or folder")
    parser.add_argument(
        "--interval", type=float, default=0.5, metavar="S", help="poll interval (default 0.5 s)"
    )
    parser.add_argument("--once", action="store_true", help="read what is there, then exit")
    parser.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto", help="colour (default auto)"
    )
    parser.set_defaults(func=run)


class _Follower:
    """Reads complete lines from the current file, reopening it when it is rotated or truncated."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.current: Path | None = None
        self.stream: IO[bytes] | None = None
        self.inode: tuple[int, int] | None = None
        self.partial = b""

    def _target(self) -> Path | None:
        """The file to follow: PATH itself, or the newest uncompressed file of the folder."""
        if self.path.is_dir():
            try:
                files = [f for f in telemetry_files(self.path) if not f.name.endswith(".gz")]
            except OSError:
                return None
            return files[-1] if files else None
        return self.path if self.path.exists() else None

    def _open(self, target: Path) -> None:
        """Start reading ``target`` from its beginning."""
        if self.stream is not None:
            self.stream.close()
        self.stream = target.open("rb")
        stat = os.fstat(self.stream.fileno())
        self.current, self.inode, self.partial = target, (stat.st_dev, stat.st_ino), b""

    def lines(self) -> list[bytes]:
        """The complete lines written since the last call (a partial last line waits)."""
        out = self._drain()
        target = self._target()
        if target is None:
            return out
        try:
            stat = target.stat()
        except OSError:
            return out
        if (
            self.stream is None
            or target != self.current
            or (stat.st_dev, stat.st_ino) != self.inode
        ):
            if self.partial:  # the old file ended without a newline: that line is complete now
                out.append(self.partial)
            self._open(target)
            out.extend(self._drain())
        elif stat.st_size < self.stream.tell():  # truncated in place (copytruncate)
            self._open(target)
            out.extend(self._drain())
        return out

    def _drain(self) -> list[bytes]:
        """Complete lines readable now from the open file."""
        if self.stream is None:
            return []
        data = self.stream.read()
        if not data:
            return []
        data = self.partial + data
        *complete, self.partial = data.split(b"\n")
        return [line for line in complete if line.strip()]

    def close(self) -> None:
        """Close the followed file."""
        if self.stream is not None:
            self.stream.close()


class _Sessions:
    """Collects rows per trace and prints a trace's summary when its root span arrives."""

    def __init__(self, out: IO[str], color: str) -> None:
        self.out = out
        self.style = choose_style(color, out)  # type: ignore[arg-type]
        self.open: dict[str, Trace] = {}
        self.done: OrderedDict[str, None] = OrderedDict()
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.spans = 0

    def feed(self, line: bytes, on_problem: Any) -> None:
        """Take one OTLP-JSON line; print the summaries of the sessions it completes."""
        try:
            obj = json.loads(line)
        except ValueError:
            on_problem("a line that is not JSON, skipped")
            return
        if not isinstance(obj, dict) or not any(key in obj for key in SIGNAL_KEYS):
            on_problem("a line that is not OTLP JSON, skipped")
            return
        try:
            rows = rows_from_object(obj)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            on_problem(f"malformed OTLP JSON ({type(exc).__name__}: {exc}), skipped")
            return
        finished: list[str] = []
        for row in rows:
            tid = row.trace_id
            if not tid or tid in self.done:
                continue
            trace = self.open.get(tid)
            if trace is None:
                trace = self.open[tid] = Trace(tid)
            trace.add(row)
            if isinstance(row, SpanRow):
                self.spans += 1
                if not row.parent_span_id:
                    finished.append(tid)
        for tid in finished:
            self._finish(tid)

    def _finish(self, tid: str) -> None:
        """Print one session's summary and forget its rows."""
        trace = self.open.pop(tid, None)
        if trace is None:
            return
        trace.finish()
        self.out.write(self._line(trace) + "\n")
        self.out.flush()
        self.done[tid] = None
        if len(self.done) > _DONE_REMEMBERED:
            self.done.popitem(last=False)

    def _line(self, trace: Trace) -> str:
        """The trace's summary line; for the end of a session of several traces, the
        session's totals; for its start (a one-span mark), that it started."""
        sid = trace.session_id
        if sid is None:
            return summary_line(trace, self.style)
        session = self.sessions.pop(sid, None) or Session(sid)
        session.add(trace, keep=False)
        root = trace.roots[0] if trace.roots else None
        if root is not None and root.row.name == SESSION_END_NAME:
            parts = session_parts(session)
            if session.errors:
                parts[1] = self.style.paint(parts[1], "red")
            return "  ".join([fmt_time(session.start_ns), f"session {sid} ended",
                              f"{session.trace_count} traces", *parts,
                              f"trace {trace.trace_id}"])
        mark = root is not None and len(trace.spans) == 1 and root.row.name == "session" \
            and root.duration_ns == 0
        if root is not None and root.row.name == "session" and not mark:
            return summary_line(trace, self.style)  # a whole session in one trace
        self.sessions[sid] = session  # most recently active last
        if len(self.sessions) > _SESSIONS_REMEMBERED:
            self.sessions.popitem(last=False)
        if mark:
            return "  ".join([fmt_time(trace.start_ns), f"session {sid} started",
                              f"trace {trace.trace_id}"])
        return summary_line(trace, self.style)


def run(args: argparse.Namespace) -> int:
    """Follow PATH until interrupted (or, with --once, read it once); 1 if it cannot be read."""
    follower = _Follower(args.path)
    sessions = _Sessions(sys.stdout, args.color)
    status = sys.stderr.isatty() and not args.once
    seen_file = False

    def problem(message: str) -> None:
        _clear_status(status)
        where = follower.current or args.path
        print(f"llmgine-otel tail: {where}: {message}", file=sys.stderr, flush=True)

    try:
        while True:
            lines = follower.lines()
            _clear_status(status and bool(lines))
            for line in lines:
                sessions.feed(line, problem)
            seen_file = seen_file or follower.current is not None
            if args.once:
                break
            if status:
                waiting = "waiting for the file" if not seen_file else "waiting…"
                sys.stderr.write(f"\r\x1b[K{waiting} {sessions.spans:,} spans seen")
                sys.stderr.flush()
            time.sleep(args.interval)
    finally:
        follower.close()
        _clear_status(status)
    if not seen_file:
        print(f"llmgine-otel tail: {args.path}: no telemetry file there", file=sys.stderr)
        return 1
    if follower.partial.strip():
        problem("the last line is incomplete (still being written?), not read")
    if args.once and sessions.open:
        problem(f"{len(sessions.open)} trace(s) whose root span has not arrived yet, not shown")
    return 0


def _clear_status(active: bool) -> None:
    """Erase the status line on stderr before other output."""
    if active:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()
