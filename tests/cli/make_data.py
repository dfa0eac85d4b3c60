"""Write the OTLP-JSON fixtures of tests/cli/data (from tests/: python -m cli.make_data)."""

from __future__ import annotations

from pathlib import Path

from .otlp_build import (
    command,
    in_session,
    llm,
    log,
    logs_line,
    session,
    span,
    spans_line,
    tool,
)

DATA = Path(__file__).parent / "data"

NORMAL_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ERROR_TRACE = "0af7651916cd43dd8448eb211c80319c"
ORPHAN_TRACE = "5b8aa5a2d2c872e8321cf37308d69df2"
MESSY_TRACE = "7d1f3a9e0c4b4e6f8a2b3c4d5e6f7a8b"
# A two-hour session traced one trace per command (LLMGINE_OTEL_TRACE_PER=command): its
# start, two commands an hour apart, its end; and another session starting in between.
LONG_START, LONG_CMD1, LONG_CMD2, LONG_END = (
    "1000000000000000000000000000000a",
    "1000000000000000000000000000000b",
    "1000000000000000000000000000000c",
    "1000000000000000000000000000000d",
)
OTHER_TRACE = "2000000000000000000000000000000a"


def normal() -> list[str]:
    """One healthy session: a command, two model calls and a tool call, with bus-event logs."""
    t = NORMAL_TRACE
    root, cmd, chat1, tl, chat2 = (
        "a000000000000001",
        "a000000000000002",
        "a000000000000003",
        "a000000000000004",
        "a000000000000005",
    )
    spans = [
        span(
            t,
            chat1,
            cmd,
            "chat gpt-4o-mini",
            50,
            1200,
            llm(
                "gpt-4o-mini",
                1200,
                150,
                **{"gen_ai.usage.cache_read.input_tokens": 300, "llmgine.cost.usd": 0.0002475},
            ),
            kind=3,
        ),
        span(t, tl, cmd, "execute_tool get_weather", 1250, 1500, tool("get_weather", "call_1")),
        span(t, chat2, cmd, "chat gpt-4o-mini", 1550, 2300, llm("gpt-4o-mini", 1500, 80), kind=3),
        span(t, cmd, root, "command ChatCommand", 10, 2400, command("c-1", "ChatCommand")),
    ]
    logs = [
        log(
            t, cmd, "CommandStartedEvent", 10, {"command_id": "c-1", "command_type": "ChatCommand"}
        ),
        log(t, chat1, "LLMCallEvent", 60, {"model": "gpt-4o-mini", "messages": 3}),
        log(
            t,
            tl,
            "ToolExecuteResultEvent",
            1499,
            {"tool_name": "get_weather", "result": "sunny, 21°C"},
        ),
        log(t, cmd, "CommandResultEvent", 2400, {"command_id": "c-1", "success": True}),
    ]
    last = span(t, root, "", "session", 0, 2500, session("sess-normal"))
    return [spans_line(spans), logs_line(logs), spans_line([last])]


def error() -> list[str]:
    """A session whose tool fails, failing its command; the model call hits a rate limit."""
    t = ERROR_TRACE
    root, cmd, chat, tl = (
        "b000000000000001",
        "b000000000000002",
        "b000000000000003",
        "b000000000000004",
    )
    exc = {
        "name": "exception",
        "timeUnixNano": "1735732800900000000",
        "attributes": [
            {"key": "exception.type", "value": {"stringValue": "ToolError"}},
            {"key": "exception.message", "value": {"stringValue": "weather service down"}},
        ],
    }
    spans = [
        span(
            t,
            chat,
            cmd,
            "chat gpt-4o",
            20,
            400,
            {**llm("gpt-4o", None, None), "error.type": "RateLimitError"},
            kind=3,
            error="429 Too Many Requests",
        ),
        span(
            t,
            tl,
            cmd,
            "execute_tool get_weather",
            500,
            900,
            {**tool("get_weather", "call_9"), "error.type": "ToolError"},
            error="weather service down",
            events=[exc],
        ),
        span(
            t,
            cmd,
            root,
            "command ChatCommand",
            5,
            950,
            {**command("c-9", "ChatCommand"), "error.type": "ToolError"},
            error="tool get_weather failed",
        ),
        span(t, root, "", "session", 0, 1000, session("sess-error")),
    ]
    logs = [
        log(
            t,
            tl,
            "ToolExecuteResultEvent",
            899,
            {"tool_name": "get_weather", "error": "weather service down"},
            17,
        ),
        log(
            t,
            cmd,
            "CommandResultEvent",
            950,
            {"command_id": "c-9", "success": False, "error": "tool get_weather failed"},
            17,
        ),
    ]
    return [logs_line(logs), spans_line(spans)]


def missing_parent() -> list[str]:
    """A trace whose session root never arrived (the process died before exporting it)."""
    t = ORPHAN_TRACE
    cmd, chat, lost = "c000000000000002", "c000000000000003", "c0000000000000ff"
    spans = [
        span(t, chat, cmd, "chat gpt-4o-mini", 30, 700, llm("gpt-4o-mini", 400, 60), kind=3),
        span(t, cmd, lost, "command SummariseCommand", 10, 800, command("c-2", "SummariseCommand")),
        span(
            t,
            "c000000000000009",
            "c0000000000000fe",
            "execute_tool search",
            820,
            900,
            tool("search", "call_3"),
        ),
    ]
    return [spans_line(spans)]


def messy() -> list[str]:
    """A good trace, then a non-JSON line, a line from another tool and a truncated last line."""
    t = MESSY_TRACE
    good = [
        span(
            t,
            "d000000000000002",
            "d000000000000001",
            "command PingCommand",
            1,
            20,
            command("c-3", "PingCommand"),
        ),
        span(t, "d000000000000001", "", "session", 0, 25, session("sess-messy")),
    ]
    tail = spans_line([span(t, "d000000000000009", "d000000000000001", "late", 21, 22)])
    return [
        spans_line(good),
        "this is not json {",
        '{"level":"info","msg":"another tool wrote this","ts":1735732800}',
        tail[: len(tail) // 2],
    ]


def per_command() -> list[str]:
    """``sess-long``: 2 hours, one trace per command, each linked to the session's start (as
    the package's default trace shape writes it); ``sess-short`` (one trace) starts at 30 min.
    Lines in arrival order: each trace as it ended."""
    sid, h = "sess-long", 3_600_000
    start = "e100000000000001"
    link = [(LONG_START, start)]
    mark = span(LONG_START, start, "", "session", 0, 0, {**session(sid), **in_session(sid),
                                                       "user.id": "u-42"})
    cmd1 = [
        span(LONG_CMD1, "e100000000000003", "e100000000000002", "chat gpt-4o-mini", 100, 900,
             {**llm("gpt-4o-mini", 1200, 150), **in_session(sid)}, kind=3),
        span(LONG_CMD1, "e100000000000004", "e100000000000002", "execute_tool get_weather",
             950, 1200, {**tool("get_weather", "call_1"), **in_session(sid)}),
        span(LONG_CMD1, "e100000000000002", "", "command ChatCommand", 50, 1300,
             {**command("c-1", "ChatCommand"), **in_session(sid), "user.id": "u-42"},
             links=link),
    ]
    cmd2 = [
        span(LONG_CMD2, "e100000000000006", "e100000000000005", "execute_tool get_stock_price",
             h + 400, h + 700, {**tool("get_stock_price", "call_2"), **in_session(sid),
                                "error.type": "ConnectionError"}, error="market data down"),
        span(LONG_CMD2, "e100000000000005", "", "command ChatCommand", h, h + 800,
             {**command("c-2", "ChatCommand"), **in_session(sid), "error.type": "ToolError"},
             error="tool get_stock_price failed", links=link),
    ]
    end = span(LONG_END, "e100000000000007", "", "session end", 2 * h, 2 * h,
               {**session(sid), **in_session(sid), "user.id": "u-42"}, links=link)
    other = [
        span(OTHER_TRACE, "f100000000000002", "f100000000000001", "command PingCommand",
             h // 2 + 10, h // 2 + 40, {**command("c-3", "PingCommand"),
                                         **in_session("sess-short")}),
        span(OTHER_TRACE, "f100000000000001", "", "session", h // 2, h // 2 + 50,
             {**session("sess-short"), **in_session("sess-short")}),
    ]
    logs = [log(LONG_CMD2, "e100000000000005", "CommandResultEvent", h + 800,
                {"command_id": "c-2", "success": False}, 17)]
    return [spans_line([mark]), spans_line(cmd1), spans_line(other), spans_line(cmd2),
            logs_line(logs), spans_line([end])]


def write_all() -> None:
    """Write every fixture file (messy.jsonl without a final newline)."""
    DATA.mkdir(exist_ok=True)
    for name, lines in (
        ("normal.jsonl", normal()),
        ("error.jsonl", error()),
        ("missing_parent.jsonl", missing_parent()),
        ("per_command.jsonl", per_command()),
    ):
        (DATA / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (DATA / "messy.jsonl").write_text("\n".join(messy()), encoding="utf-8")
    combined = normal() + error() + missing_parent()
    (DATA / "combined.jsonl").write_text("\n".join(combined) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_all()
