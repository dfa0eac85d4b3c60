"""The standard reliability workload and readers for what the Collector wrote.

One session = SessionStart, CommandStarted, LLM start, LLM finish, 2 x ToolExecuteResult,
LLM start, LLM finish, CommandResult, SessionEnd: 10 events -> 6 spans (session, command,
2 x LLM, 2 x tool) and 10 log records. Real llmgine event classes, plus llmgine_otel.events
for the LLM calls (llmgine 0.0.1 has none).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmgine.bus.session import SessionEndEvent, SessionStartEvent
from llmgine.llm.tools.tool_events import ToolExecuteResultEvent
from llmgine.messages.commands import Command, CommandResult
from llmgine.messages.events import CommandResultEvent, CommandStartedEvent

from llmgine_otel.events import LLMCallFinishedEvent, LLMCallStartedEvent

EVENTS_PER_SESSION = 10
SPANS_PER_SESSION = 6
"""With one trace per session (``SDK_ENV``); one trace per command adds the session's end."""
LOGS_PER_SESSION = 10


@dataclass
class PromptCommand(Command):
    """A Command subclass carrying user content (for the privacy test)."""

    prompt: str = ""


@dataclass
class Content:
    """Free text placed in every content-bearing field of a session."""

    prompt: str = "What is the weather in Paris?"
    system: str = "You are a helpful assistant."
    completion: str = "It is sunny."
    tool_arg: str = "Paris"
    tool_result: str = "sunny, 21C"
    command_prompt: str = "plan a trip"
    extra: dict[str, Any] = field(default_factory=dict)


def session_events(sid: str | None = None, content: Content | None = None) -> list[Any]:
    """The 10 events of one standard session, in causal order."""
    sid = sid or f"s-{uuid.uuid4().hex}"
    c = content or Content()
    cmd = PromptCommand(session_id=sid, prompt=c.command_prompt)
    out: list[Any] = [SessionStartEvent(session_id=sid),
                      CommandStartedEvent(command=cmd, session_id=sid)]
    for turn in range(2):
        call = LLMCallStartedEvent(
            session_id=sid, model="gpt-4o-mini", provider="openai",
            command_id=cmd.command_id, temperature=0.2, max_tokens=256,
            server_address="api.openai.com", server_port=443,
            messages=[{"role": "system", "content": c.system},
                      {"role": "user", "content": c.prompt}],
            system_instructions=c.system)
        out.append(call)
        if turn == 0:
            out.append(LLMCallFinishedEvent(
                session_id=sid, call_id=call.call_id, response_id=f"r-{uuid.uuid4().hex[:8]}",
                response_model="gpt-4o-mini", finish_reasons=["tool_calls"], input_tokens=42,
                output_tokens=7,
                output_messages=[{"role": "assistant", "content": c.completion}]))
            for i in range(2):
                out.append(ToolExecuteResultEvent(
                    session_id=sid, execution_succeed=True, tool_name=f"get_weather_{i}",
                    tool_call_id=f"tc-{uuid.uuid4().hex}",
                    tool_info={"name": f"get_weather_{i}", "description": "weather lookup"},
                    tool_args={"city": c.tool_arg, **c.extra}, tool_result=c.tool_result))
        else:
            out.append(LLMCallFinishedEvent(
                session_id=sid, call_id=call.call_id, response_id=f"r-{uuid.uuid4().hex[:8]}",
                response_model="gpt-4o-mini", finish_reasons=["stop"], input_tokens=64,
                output_tokens=12,
                output_messages=[{"role": "assistant", "content": c.completion}]))
    out.append(CommandResultEvent(
        command_result=CommandResult(success=True, command_id=cmd.command_id,
                                     result=c.completion, session_id=sid),
        session_id=sid))
    out.append(SessionEndEvent(session_id=sid))
    assert len(out) == EVENTS_PER_SESSION
    return out


# -- reading the Collector's file exporter output ------------------------------------------


@dataclass
class Collected:
    """Spans by id and log records by identity, as written by the Collector."""

    spans: dict[str, dict[str, Any]] = field(default_factory=dict)
    span_rows: int = 0
    """Span rows in the file (more than ``len(spans)`` means duplicates)."""
    logs: Counter[str] = field(default_factory=Counter)
    """Log identity (the event_id in the body, else a digest of the record) -> copies."""
    log_sessions: Counter[str] = field(default_factory=Counter)
    lines: int = 0
    dup_span_end_ns: list[int] = field(default_factory=list)
    """End times of the span rows seen a second time (when were the duplicates made)."""
    dup_log_time_ns: list[int] = field(default_factory=list)

    @property
    def log_rows(self) -> int:
        return sum(self.logs.values())


def _attrs(kvs: Iterable[dict[str, Any]] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs or ():
        v = kv.get("value") or {}
        if "stringValue" in v:
            out[kv["key"]] = v["stringValue"]
        elif "boolValue" in v:
            out[kv["key"]] = v["boolValue"]
        elif "intValue" in v:
            out[kv["key"]] = int(v["intValue"])
    return out


def _body_event_id(body: dict[str, Any] | None) -> str | None:
    for kv in ((body or {}).get("kvlistValue") or {}).get("values", []):
        if kv.get("key") == "event_id":
            return (kv.get("value") or {}).get("stringValue")
    return None


def _files(path: Path) -> list[Path]:
    rotated = sorted(path.parent.glob(f"{path.stem}-*{path.suffix}"))
    return [*rotated, *([path] if path.exists() else [])]


_DECODER = json.JSONDecoder()


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects in the file(s), one per line. A Collector killed with SIGKILL can
    lose the newline after its last object (the file exporter buffers the newline), and
    after its restart the next object follows on the same line: both are read."""
    for f in _files(path):
        with open(f, encoding="utf-8") as fh:
            data = fh.read()
        parts = data.split("\n")
        for i, line in enumerate(parts):
            pos, end = 0, len(line)
            while pos < end and line[pos:].strip():
                try:
                    obj, stop = _DECODER.raw_decode(line, pos)
                except json.JSONDecodeError:
                    if i == len(parts) - 1:
                        break  # being written
                    raise
                yield obj
                pos = stop
                while pos < end and line[pos].isspace():
                    pos += 1


_NO_SPAN: dict[str, Any] = {}


def read_collected(path: Path, keep_spans: bool = True) -> Collected:
    """Spans by id and log records by identity; ``keep_spans=False`` keeps only the span
    ids (a 120 s outage writes ~150,000 spans)."""
    out = Collected()
    for obj in _lines(path):
        out.lines += 1
        for rs in obj.get("resourceSpans", ()):
            for ss in rs.get("scopeSpans", ()):
                for sp in ss.get("spans", ()):
                    out.span_rows += 1
                    sid = sp.get("spanId", "").lower()
                    if sid in out.spans:
                        out.dup_span_end_ns.append(int(sp.get("endTimeUnixNano", 0)))
                    out.spans[sid] = sp if keep_spans else _NO_SPAN
        for rl in obj.get("resourceLogs", ()):
            for sl in rl.get("scopeLogs", ()):
                for lr in sl.get("logRecords", ()):
                    ident = _body_event_id(lr.get("body"))
                    if ident is None:
                        ident = json.dumps(lr, sort_keys=True)
                    if out.logs[ident]:
                        out.dup_log_time_ns.append(int(lr.get("timeUnixNano", 0)))
                    out.logs[ident] += 1
                    sid = _attrs(lr.get("attributes")).get("llmgine.session.id")
                    if sid:
                        out.log_sessions[sid] += 1
    return out


def span_attrs(sp: dict[str, Any]) -> dict[str, Any]:
    return _attrs(sp.get("attributes"))


def wait_collected(path: Path, spans: int, logs: int, *, timeout: float = 60.0,
                   settle: float = 5.0, keep_spans: bool = True) -> Collected:
    """Poll the file until it holds ``spans`` unique spans and ``logs`` log records; give up
    when nothing new arrived for ``settle`` seconds or after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_key: tuple[int, int] = (-1, -1)
    last_change = time.monotonic()
    while True:
        got = read_collected(path, keep_spans)
        if len(got.spans) >= spans and got.log_rows >= logs:
            time.sleep(1.5)  # a duplicate batch would land within the collector's batch timeout
            return read_collected(path, keep_spans)
        now = time.monotonic()
        key = (len(got.spans), got.log_rows)
        if key != last_key:
            last_key, last_change = key, now
        elif now - last_change > settle or now > deadline:
            return got
        time.sleep(0.5)
