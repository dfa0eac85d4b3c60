"""5. Memory: bytes per open span in the open-span table, and RSS with 10,000 open sessions.

(a) tracemalloc diff over N CommandStartedEvents left open in one session (events pre-built
before the first snapshot; span/log queues flushed before both snapshots, so only what the
open spans keep alive is counted), with a breakdown by file.
(b) RSS (psutil) before and after opening 10,000 sessions (SessionStartEvent only: 10,000
open spans = the default ``max_open_spans``), and 10,000 sessions each with an open
command and LLM call (30,000 open spans; ``max_open_spans`` raised to 40,000 for this).
"""

from __future__ import annotations

import gc
import tracemalloc
import uuid
from typing import Any

from bench import build_ours, flush_ours


def _open_commands(n: int) -> dict[str, Any]:
    from llmgine.bus.session import SessionStartEvent
    from llmgine.messages.commands import Command
    from llmgine.messages.events import CommandStartedEvent

    tel = build_ours("null", max_open_spans=max(10_000, n + 10))
    sid = str(uuid.uuid4())
    tel.handler.handle(SessionStartEvent(session_id=sid))
    events = [CommandStartedEvent(command=Command(session_id=sid), session_id=sid)
              for _ in range(n)]
    flush_ours(tel)
    gc.collect()
    tracemalloc.start(5)
    s1 = tracemalloc.take_snapshot()
    for e in events:
        tel.handler.handle(e)
    flush_ours(tel)
    gc.collect()
    s2 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    assert len(tel.handler.table) == n + 1, len(tel.handler.table)
    diff = s2.compare_to(s1, "filename")
    total = sum(d.size_diff for d in diff)
    by_file = [{"file": d.traceback[0].filename.split("site-packages/")[-1]
                .replace("/work/main/", ""), "bytes_per_span": d.size_diff / n}
               for d in sorted(diff, key=lambda d: -d.size_diff)[:8]]
    return {"open_spans": n, "bytes_per_open_span": total / n, "top_files": by_file}


def _rss(sessions: int, deep: bool) -> dict[str, Any]:
    import psutil

    from bench import make_session

    proc = psutil.Process()
    tel = build_ours("null", max_open_spans=40_000 if deep else 10_000)
    events = []
    for _ in range(sessions):
        s = make_session()
        events += s[:3] if deep else s[:1]  # session start (+ command start, LLM start)
    flush_ours(tel)
    gc.collect()
    before = proc.memory_info().rss
    for e in events:
        tel.handler.handle(e)
    flush_ours(tel)
    gc.collect()
    after = proc.memory_info().rss
    open_spans = len(tel.handler.table)
    return {"sessions": sessions, "open_spans": open_spans, "rss_before_mb": before / 2**20,
            "rss_after_mb": after / 2**20, "rss_delta_mb": (after - before) / 2**20,
            "rss_bytes_per_open_span": (after - before) / max(open_spans, 1),
            "evicted": dict(tel.stats.outcomes)}


def run(quick: bool, collector: bool) -> dict[str, Any]:
    n = 2_000 if quick else 5_000
    return {"tracemalloc": _open_commands(n),
            "rss_10k_sessions": _rss(10_000, deep=False),
            "rss_10k_sessions_3_open_spans_each": _rss(10_000, deep=True)}
