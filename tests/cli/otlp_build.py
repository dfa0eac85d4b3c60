"""Build OTLP-JSON lines (the Collector file exporter's `format: json`) for the CLI tests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

T0 = 1_735_732_800_000_000_000  # 2025-01-01 12:00:00Z in Unix nanoseconds
MS = 1_000_000


def value(v: Any) -> dict[str, Any]:
    """A Python value as an OTLP-JSON AnyValue."""
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [value(x) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": attrs(v)}}
    return {"stringValue": str(v)}


def attrs(d: dict[str, Any]) -> list[dict[str, Any]]:
    """Attributes as OTLP-JSON KeyValues."""
    return [{"key": k, "value": value(v)} for k, v in d.items()]


def span(
    trace: str,
    span_id: str,
    parent: str,
    name: str,
    start_ms: float,
    end_ms: float,
    attributes: dict[str, Any] | None = None,
    *,
    kind: int = 1,
    error: str | None = None,
    events: list[dict[str, Any]] | None = None,
    links: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """One OTLP-JSON span; times in ms after T0; ``error`` sets status ERROR with that message;
    ``links``: (trace id, span id) of linked spans."""
    out: dict[str, Any] = {
        "traceId": trace,
        "spanId": span_id,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(T0 + int(start_ms * MS)),
        "endTimeUnixNano": str(T0 + int(end_ms * MS)),
        "attributes": attrs(attributes or {}),
        "status": {"code": 2, "message": error} if error is not None else {},
    }
    if parent:
        out["parentSpanId"] = parent
    if events:
        out["events"] = events
    if links:
        out["links"] = [{"traceId": t, "spanId": s} for t, s in links]
    return out


def log(
    trace: str, span_id: str, event: str, at_ms: float, body: Any, severity: int = 9
) -> dict[str, Any]:
    """One OTLP-JSON log record for an llmgine bus event."""
    return {
        "timeUnixNano": str(T0 + int(at_ms * MS)),
        "observedTimeUnixNano": str(T0 + int(at_ms * MS)),
        "severityNumber": severity,
        "severityText": "INFO" if severity < 17 else "ERROR",
        "body": value(body),
        "traceId": trace,
        "spanId": span_id,
        "eventName": event,
    }


def _resource(service: str) -> dict[str, Any]:
    return {"attributes": attrs({"service.name": service, "telemetry.sdk.language": "python"})}


def spans_line(spans: Iterable[dict[str, Any]], service: str = "llmgine") -> str:
    """A ``{"resourceSpans": ...}`` line."""
    obj = {
        "resourceSpans": [
            {
                "resource": _resource(service),
                "scopeSpans": [{"scope": {"name": "llmgine_otel"}, "spans": list(spans)}],
            }
        ]
    }
    return json.dumps(obj, separators=(",", ":"))


def logs_line(records: Iterable[dict[str, Any]], service: str = "llmgine") -> str:
    """A ``{"resourceLogs": ...}`` line."""
    obj = {
        "resourceLogs": [
            {
                "resource": _resource(service),
                "scopeLogs": [{"scope": {"name": "llmgine_otel"}, "logRecords": list(records)}],
            }
        ]
    }
    return json.dumps(obj, separators=(",", ":"))


def llm(model: str, inp: int | None, out: int | None, **extra: Any) -> dict[str, Any]:
    """The attributes of a GenAI chat span (no usage attributes when the counts are None)."""
    usage = {"gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out}
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        **{k: v for k, v in usage.items() if v is not None},
        "gen_ai.response.finish_reasons": ["stop"],
        **extra,
    }


def tool(name: str, call_id: str) -> dict[str, Any]:
    """The attributes of a GenAI tool span."""
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.id": call_id,
    }


def session(session_id: str) -> dict[str, Any]:
    """The attributes of an llmgine session root span."""
    return {"llmgine.session.id": session_id, "gen_ai.conversation.id": session_id}


def in_session(session_id: str) -> dict[str, Any]:
    """The session attributes every span of a session carries (``session.id`` and llmgine's)."""
    return {"session.id": session_id, "llmgine.session.id": session_id}


def command(command_id: str, command_type: str) -> dict[str, Any]:
    """The attributes of an llmgine command span."""
    return {"llmgine.command.id": command_id, "llmgine.command.type": command_type}


def big_file(path: Path, sessions: int, spans_per_session: int, batch: int = 512) -> int:
    """Write ``sessions`` traces of ``spans_per_session`` spans each; returns the span count."""
    pending: list[dict[str, Any]] = []
    written = 0
    with path.open("w") as f:
        for s in range(sessions):
            trace = f"{s + 1:032x}"
            root = f"{s + 1:08x}00000000"
            base = s * 10.0
            children = spans_per_session - 1
            for c in range(children):
                sid = f"{s + 1:08x}{c + 1:08x}"
                if c % 3 == 0:
                    a = llm("gpt-4o-mini", 100 + c, 20 + c)
                    name = "chat gpt-4o-mini"
                elif c % 3 == 1:
                    a, name = tool("lookup", f"call_{c}"), "execute_tool lookup"
                else:
                    a, name = command(f"cmd-{c}", "ChatCommand"), "command ChatCommand"
                err = "boom" if (s % 50 == 0 and c == 1) else None
                pending.append(
                    span(
                        trace,
                        sid,
                        root,
                        name,
                        base + c * 0.05,
                        base + c * 0.05 + 0.04,
                        a,
                        error=err,
                    )
                )
            pending.append(
                span(
                    trace, root, "", "session", base, base + children * 0.05 + 1, session(f"s-{s}")
                )
            )
            while len(pending) >= batch:
                f.write(spans_line(pending[:batch]) + "\n")
                written += batch
                del pending[:batch]
        if pending:
            f.write(spans_line(pending) + "\n")
            written += len(pending)
    return written
