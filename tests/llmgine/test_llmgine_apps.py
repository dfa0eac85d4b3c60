"""Whole apps: the chat demo (in-process and as a script), zero-code tracing of an unmodified
app through ``opentelemetry-instrument``, and a trace continued in a second process."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llmgine.bus.bus")

from llmgine.bus.bus import MessageBus
from llmgine.messages.commands import Command, CommandResult
from llmgine_kit import Otel, attr, offline_env, parent_of, read_jsonl_spans
from opentelemetry.trace import StatusCode

from llmgine_otel.propagation import inject_context

pytestmark = pytest.mark.llmgine

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

BLOCK_NETWORK = '''
import socket, sys
def _blocked(*args, **kwargs):
    sys.stderr.write("NETWORK-BLOCKED %r\\n" % (args,))
    raise OSError("network disabled by the test")
socket.socket.connect = _blocked
socket.socket.connect_ex = _blocked
socket.create_connection = _blocked
socket.getaddrinfo = _blocked
'''


def _load_demo() -> Any:
    pytest.importorskip("litellm")
    spec = importlib.util.spec_from_file_location("chat_demo", EXAMPLES / "chat_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chat_demo"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("trace_per", ["command", "session"])
async def test_demo_span_tree_and_logs(instrumented: Any, trace_per: str) -> None:
    otel: Otel = instrumented(trace_per=trace_per)
    demo = _load_demo()
    try:
        assert await demo.main() == 0
    finally:
        MessageBus._instance = None
    spans = otel.spans()
    expected = {
        "session": 1, "command ChatCommand": 1, "command SummarizeCommand": 1,
        "chat gpt-4o-mini": 3, "execute_tool get_weather": 1, "execute_tool get_stock_price": 1}
    if trace_per == "command":
        expected["session end"] = 1
    assert Counter(s.name for s in spans) == expected
    session = otel.one("session")
    chat, summarize = otel.one("command ChatCommand"), otel.one("command SummarizeCommand")
    assert session.parent is None
    for s in spans:  # searchable: the conversation and its user on every span
        assert attr(s, "session.id") == attr(session, "llmgine.session.id"), s.name
        assert attr(s, "user.id") == demo.USER_ID, s.name
    if trace_per == "session":
        assert len({s.context.trace_id for s in spans}) == 1
        assert parent_of(chat, spans) is session and parent_of(summarize, spans) is session
    else:  # each command a trace of its own (with its calls and tools), linked to the session
        assert len({s.context.trace_id for s in spans}) == 4
        for cmd in (chat, summarize):
            assert cmd.parent is None
            assert [lk.context.span_id for lk in cmd.links] == [session.context.span_id]
    assert chat.status.status_code is StatusCode.UNSET
    assert summarize.status.status_code is StatusCode.ERROR
    assert attr(summarize, "error.type") == "ContextWindowExceededError"

    llm = sorted(otel.named("chat gpt-4o-mini"), key=lambda s: s.start_time or 0)
    tools_call, streamed, failed = llm
    assert parent_of(tools_call, spans) is chat and parent_of(streamed, spans) is chat
    assert parent_of(failed, spans) is summarize
    assert attr(tools_call, "gen_ai.usage.input_tokens") > 0
    assert attr(tools_call, "gen_ai.usage.output_tokens") > 0
    assert attr(tools_call, "gen_ai.request.temperature") == 0.2
    assert attr(streamed, "llmgine.stream.chunk_count") > 1
    assert attr(streamed, "gen_ai.usage.output_tokens") > 0  # from the final chunk
    assert failed.status.status_code is StatusCode.ERROR
    assert attr(failed, "error.type") == "ContextWindowExceededError"

    weather = otel.one("execute_tool get_weather")
    stock = otel.one("execute_tool get_stock_price")
    assert parent_of(weather, spans) is chat and parent_of(stock, spans) is chat
    assert weather.status.status_code is StatusCode.UNSET
    assert (weather.end_time - weather.start_time) >= 50e6  # type: ignore[operator]
    assert stock.status.status_code is StatusCode.ERROR
    assert attr(stock, "error.type") == "ConnectionError"
    assert attr(weather, "gen_ai.tool.call.id") == "call_weather"
    assert tools_call.end_time <= weather.start_time  # type: ignore[operator]

    logs = otel.logs()
    names = Counter(r.event_name for r in logs)  # the registry's events (mapping.md)
    assert names["llmgine.command.start"] == 2 and names["llmgine.command.result"] == 2
    assert names["llmgine.llm.call.start"] == 3
    assert names["gen_ai.client.inference.operation.details"] == 3
    assert names["llmgine.tool.execution.start"] == 2
    assert names["llmgine.tool.execution.end"] == 2
    tool_log = next(r for r in logs if r.event_name == "llmgine.tool.execution.end"
                    and r.span_id == stock.context.span_id)
    assert tool_log.span_id == stock.context.span_id
    assert tool_log.trace_id == chat.context.trace_id == stock.context.trace_id
    assert str(tool_log.severity_text) == "ERROR"


def test_demo_script_runs_offline_and_leaves_telemetry(tmp_path: Path) -> None:
    pytest.importorskip("litellm")
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_NETWORK)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "chat_demo.py")], cwd=tmp_path, capture_output=True,
        text=True, timeout=300, env=offline_env(PYTHONPATH=str(blocker)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NETWORK-BLOCKED" not in proc.stderr
    out = tmp_path / "llmgine-telemetry" / "telemetry.jsonl"
    assert out.is_file()
    assert "llmgine-otel view llmgine-telemetry" in proc.stdout
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317" in proc.stdout
    spans = read_jsonl_spans(out)
    names = Counter(s["name"] for s in spans)
    assert names["session"] == names["session end"] == 1 and names["chat gpt-4o-mini"] == 3
    # the default command trace shape: the session's start and end, and its two commands
    assert len({s["trace"] for s in spans}) == 4
    assert {s["attrs"]["session.id"] for s in spans} == {"demo-session"}
    # The printed summary tells how to look at one conversation.
    assert "--session demo-session" in proc.stdout


def _has_entry_points() -> bool:
    return any(ep.name == "llmgine" for ep in entry_points(group="opentelemetry_instrumentor"))


@pytest.mark.skipif(not _has_entry_points(), reason="llmgine-otel is not installed (pip -e .)")
def test_zero_code_opentelemetry_instrument_traces_unmodified_app(tmp_path: Path) -> None:
    source = (EXAMPLES / "plain_app.py").read_text()
    assert "import llmgine_otel" not in source and "from llmgine_otel" not in source
    out_dir = tmp_path / "telemetry"
    env = offline_env(OTEL_PYTHON_DISTRO="llmgine_otel",
                      OTEL_PYTHON_CONFIGURATOR="llmgine_otel",
                      LLMGINE_OTEL_DIR=str(out_dir), PLAIN_APP_SESSION="zero-code-1")
    proc = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, str(EXAMPLES / "plain_app.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "greet: hello Ada; broken: success=False" in proc.stdout
    spans = read_jsonl_spans(out_dir / "telemetry.jsonl")
    assert Counter(s["name"] for s in spans) == {
        "session": 1, "session end": 1, "command GreetCommand": 1, "command BrokenCommand": 1,
        "execute_tool lookup_name": 1}
    session = next(s for s in spans if s["name"] == "session")
    assert session["attrs"]["llmgine.session.id"] == "zero-code-1"
    assert {s["attrs"]["session.id"] for s in spans} == {"zero-code-1"}
    by_name = {s["name"]: s for s in spans}
    # the default command trace shape: each command is a trace root of its own
    assert by_name["command GreetCommand"]["parent"] is None
    assert by_name["command GreetCommand"]["trace"] != session["trace"]
    assert by_name["execute_tool lookup_name"]["parent"] == by_name["command GreetCommand"]["span"]
    assert by_name["command BrokenCommand"]["status"] == 2


@dataclass
class Dispatch(Command):
    """Sends work to another process."""


async def test_traceparent_round_trip_between_processes(otel: Otel, bus: Any) -> None:
    sent: dict[str, Any] = {}

    async def dispatch(cmd: Command) -> CommandResult:
        metadata: dict[str, str] = {}
        assert inject_context(metadata)  # the current span: this command's
        sent.update(session_id=cmd.session_id, metadata=metadata)
        proc = subprocess.run(
            [sys.executable, str(HERE / "remote_child.py"), json.dumps(sent)],
            capture_output=True, text=True, timeout=120, env=offline_env(), cwd=HERE)
        assert proc.returncode == 0, proc.stderr[-3000:]
        sent["child_spans"] = [json.loads(line) for line in proc.stdout.splitlines()
                               if line.startswith("{")]
        return CommandResult(success=True, command_id=cmd.command_id)

    async with bus.session("s-remote") as s:
        s.register_command_handler(Dispatch, dispatch)
        assert (await s.execute_with_session(Dispatch())).success

    parent_cmd = otel.one("command Dispatch")
    child = {c["name"]: c for c in sent["child_spans"]}
    assert set(child) == {"command RemoteCommand", "execute_tool remote_tool"}
    # The remote command continues the trace it was sent from: the Dispatch command's.
    trace_hex = f"{parent_cmd.context.trace_id:032x}"
    assert all(c["trace_id"] == trace_hex for c in child.values())
    assert child["command RemoteCommand"]["parent_id"] == f"{parent_cmd.context.span_id:016x}"
    assert child["execute_tool remote_tool"]["parent_id"] == \
        child["command RemoteCommand"]["span_id"]
