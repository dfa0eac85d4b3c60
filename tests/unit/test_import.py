"""``import llmgine_otel`` works without llmgine installed (llmgine is optional)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["llmgine"] = None  # any "import llmgine..." now raises ImportError
    import json
    from dataclasses import dataclass
    import llmgine_otel
    from llmgine_otel import (AgentInvocationFinishedEvent, AgentInvocationStartedEvent,
                              LLMCallFinishedEvent, LLMCallStartedEvent, LLMStreamChunkEvent,
                              ObservabilityConfig, ObservabilityManager, OTelHandler, OtelEvent)
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    @dataclass
    class SessionStartEvent(OtelEvent):  # matched by name, like llmgine's
        pass

    @dataclass
    class SessionEndEvent(OtelEvent):
        error: object = None

    exporter = InMemorySpanExporter()
    tp = TracerProvider(shutdown_on_exit=False)
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    handler = OTelHandler(tp, config=ObservabilityConfig(emit_logs=False, console=False))
    manager = ObservabilityManager()
    manager.register_handler(handler)
    for e in (SessionStartEvent(session_id="s1"),
              AgentInvocationStartedEvent(invocation_id="a", agent_name="bot", session_id="s1"),
              LLMCallStartedEvent(call_id="c", model="m", provider="openai", session_id="s1"),
              LLMStreamChunkEvent(call_id="c", session_id="s1"),
              LLMCallFinishedEvent(call_id="c", input_tokens=3, session_id="s1"),
              AgentInvocationFinishedEvent(invocation_id="a", session_id="s1"),
              SessionEndEvent(session_id="s1")):
        manager.observe_event(e)
    spans = exporter.get_finished_spans()
    print(json.dumps({
        "names": sorted(s.name for s in spans),
        "traces": len({s.context.trace_id for s in spans}),
        "llmgine_loaded": sys.modules.get("llmgine") is not None,
        "outcomes": dict(handler.stats.outcomes),
        "errors": dict(manager.stats.handler_errors),
    }))
""")


def test_import_and_translate_without_llmgine():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["names"] == ["chat m", "invoke_agent bot", "session", "session end"]
    assert got["traces"] == 3  # the session's start, the agent with its call, the end
    assert got["llmgine_loaded"] is False
    assert got["outcomes"] == {} and got["errors"] == {}
