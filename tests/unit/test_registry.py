"""conventions/registry (the llmgine.* semantic-convention registry) and the code agree: every
llmgine.* attribute, log event and metric the package emits is defined there with the type,
instrument and unit it is emitted with, the registry defines nothing the package does not
emit, and otel.yaml names what the package takes from the OpenTelemetry conventions.
(Weaver itself checks the registry and the live telemetry: tests/e2e/test_semconv.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from otel_kit import (
    command_result,
    command_started,
    llm_finished,
    llm_started,
    session_end,
    session_start,
    tool_finished,
    tool_result,
    tool_started,
    ts,
)

from llmgine_otel import mapping
from llmgine_otel.events import (
    AgentInvocationFinishedEvent,
    AgentInvocationStartedEvent,
    LLMStreamChunkEvent,
)

REGISTRY = Path(__file__).resolve().parents[2] / "conventions" / "registry"
_TYPES = {"str": "string", "int": "int", "float": "double", "bool": "boolean",
          "str[]": "string[]"}


def _groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in sorted(REGISTRY.glob("*.yaml")):
        if path.name != "manifest.yaml":
            groups += yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    return groups


def _attributes() -> dict[str, dict[str, Any]]:
    return {a["id"]: a for g in _groups() if g["type"] == "attribute_group"
            for a in g.get("attributes", ()) if "id" in a}


def _events() -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in _groups() if g["type"] == "event"}


def _metrics() -> dict[str, dict[str, Any]]:
    return {g["metric_name"]: g for g in _groups() if g["type"] == "metric"}


def _value_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return "string[]"
    return type(value).__name__


def _registry_type(attr: dict[str, Any]) -> str:
    t = attr["type"]
    return "string" if isinstance(t, dict) else t  # enums here are string enums


def _otel() -> dict[str, Any]:
    return yaml.safe_load((REGISTRY / "otel.yaml").read_text(encoding="utf-8"))


def test_opentelemetry_names_used_are_the_ones_taken_from_the_dependency():
    """otel.yaml lists what the package takes from the OpenTelemetry conventions: every
    non-llmgine attribute a mapping rule sets is referenced there, and its imported metrics
    and events are exactly the ones the mapping records."""
    otel = _otel()
    refs = {a["ref"] for g in otel["groups"] for a in g["attributes"]}
    used = {a.name for r in mapping.MAPPING for a in r.attributes}
    used |= {c.name for r in mapping.MAPPING for c in r.content}
    assert {n for n in used if not n.startswith("llmgine.")} <= refs
    assert not {n for n in refs if n.startswith("llmgine.")}
    assert set(otel["imports"]["metrics"]) == {
        m for r in mapping.MAPPING for m in r.metrics if not m.startswith("llmgine.")}


def test_manifest_declares_the_opentelemetry_conventions_as_its_dependency():
    manifest = yaml.safe_load((REGISTRY / "manifest.yaml").read_text(encoding="utf-8"))
    (dep,) = manifest["dependencies"]
    assert dep["schema_url"] == "https://opentelemetry.io/schemas/1.41.0"
    assert dep["registry_path"] == "semconv-v1.41.0/model"  # where scripts/weaver.sh unpacks it


def test_every_definition_has_type_stability_brief_and_examples():
    for name, attr in _attributes().items():
        assert name.startswith("llmgine."), name
        for key in ("type", "stability", "brief", "examples"):
            assert attr.get(key) not in (None, "", []), (name, key)
        if isinstance(attr["type"], dict):
            for member in attr["type"]["members"]:
                assert member.get("stability") and member.get("brief"), (name, member)
    for group in _groups():
        if group["type"] in ("event", "metric"):
            assert group.get("stability") and group.get("brief"), group["id"]


# -- what the package emits ------------------------------------------------------------------

def _drive(h: Any) -> None:
    """Every mapping rule, the disorder paths, the stream-chunk logs and an unknown event."""
    from dataclasses import dataclass

    from llmgine.llm.tools.tool_events import ToolCompiledEvent, ToolRegisterEvent
    from llmgine.messages.events import DeadLetterCommandEvent, Event, EventHandlerFailedEvent

    @dataclass
    class SomethingHappened(Event):
        count: int = 1

    cmd_started = command_started("s1", "c1", 1)
    h.handle(session_start("s1", 0), cmd_started,
             ToolRegisterEvent(tool_info={"name": "calc"}, session_id="s1"),
             ToolCompiledEvent(tool_compiled_list=[{"name": "calc"}], session_id="s1"),
             AgentInvocationStartedEvent(invocation_id="a1", agent_name="helper",
                                         session_id="s1", timestamp=ts(1.05)),
             llm_started("s1", "L1", 1.1, server_address="api.openai.com", server_port=443),
             LLMStreamChunkEvent(call_id="L1", session_id="s1", timestamp=ts(1.2)),
             LLMStreamChunkEvent(call_id="L1", session_id="s1", timestamp=ts(1.3)),
             llm_finished("s1", "L1", 1.4, input_tokens=5, output_tokens=7),
             llm_started("s1", "L2", 1.5),
             llm_finished("s1", "L2", 1.6, error=TimeoutError("slow")),
             tool_result("s1", "t1", 1.7),
             tool_result("s1", "t2", 1.8, ok=False),
             tool_started("s1", "t3", 1.81), tool_finished("s1", "t3", 1.82),
             tool_started("s1", "t4", 1.83),
             tool_finished("s1", "t4", 1.84, error="KeyError: k", error_type="KeyError"),
             AgentInvocationFinishedEvent(invocation_id="a1", session_id="s1",
                                          timestamp=ts(1.9)),
             EventHandlerFailedEvent(event=cmd_started, handler="h", exception=ValueError("x"),
                                     session_id="s1"),
             DeadLetterCommandEvent(command=cmd_started.command, error="x", attempts=2,
                                    session_id="s1"),
             SomethingHappened(session_id="s1"),
             command_result("s1", "c1", 2, success=False, error="KeyError: k"),
             command_result("s1", "ghost", 2),
             command_started("s2", "c2", 1))
    h.handle(session_end("s1", 3))
    h.handler.end_open_spans()


@pytest.fixture
def emitted(make_otel: Any) -> Any:
    h = make_otel(stream_chunk_logs=True)
    _drive(h)
    h.meter_provider.force_flush()
    return h


def test_every_llmgine_attribute_is_defined_with_its_type(emitted: Any):
    seen: dict[str, set[str]] = {}

    def note(attrs: Any) -> None:
        for k, v in (attrs or {}).items():
            if k.startswith("llmgine."):
                seen.setdefault(k, set()).add(_value_type(v))

    for s in emitted.spans():
        note(s.attributes)
        for e in s.events:
            note(e.attributes)
    for r in emitted.logs():
        note(r.attributes)
    registry = _attributes()
    mapped = {a.name: _TYPES[a.type] for r in mapping.MAPPING for a in r.attributes}
    for name, kinds in seen.items():
        assert name in registry, f"{name} is emitted but not in conventions/registry"
        assert kinds == {_registry_type(registry[name])}, (name, kinds)
    for name, kind in mapped.items():
        if name.startswith("llmgine."):
            assert name in registry, f"{name} is in mapping.py but not in conventions/registry"
            assert _registry_type(registry[name]) == kind, name
    for d in {d for r in mapping.MAPPING for d in r.derived}:
        assert d in registry, d
    # enum members the code can set are the registry's members
    members = {m["value"] for m in registry["llmgine.span.end_reason"]["type"]["members"]}
    assert {"evicted_capacity", "evicted_age", "ended_at_shutdown"} == members
    assert {v for s in emitted.spans()
            for k, v in (s.attributes or {}).items() if k == "llmgine.span.end_reason"} <= members


def test_every_log_event_is_a_registry_event(emitted: Any):
    """Each rule names its event (mapping data); llmgine.* ones are defined in
    conventions/registry/events.yaml, which defines no other; gen_ai.* ones are the
    OpenTelemetry conventions' own (checked by Weaver in tests/e2e/test_semconv.py)."""
    events = _events()
    named = {r.log_event for r in (*mapping.MAPPING, mapping.DEFAULT_RULE)}
    ours = {n for n in named if n.startswith("llmgine.")}
    assert ours == set(events), "events.yaml and the mapping's log_event names differ"
    assert named - ours == set(_otel()["imports"]["events"])
    seen = {r.event_name for r in emitted.logs()}
    assert seen == named, "every rule's event was emitted, and no other name"
    for r in emitted.logs():
        assert r.attributes["llmgine.event.type"]  # the required attribute of every event
        for k in r.attributes:
            assert k.startswith(("llmgine.", "gen_ai.", "server.", "error.", "session.")), k


def test_every_llmgine_metric_is_defined_with_instrument_unit_and_attributes(pipeline):
    tel, gate, _, _ = pipeline(queue_size=1000)
    gate.open.set()
    tel.manager.register_handler(type("Broken", (), {
        "name": "broken", "handle": lambda self, e: 1 / 0})())
    for e in (session_start("s1", 0), command_started("s1", "c1", 1),
              llm_started("s1", "L1", 1.0, model="gpt-4o", provider="openai",
                          server_address="api.openai.com", server_port=443),
              llm_finished("s1", "L1", 1.5, input_tokens=120, output_tokens=30,
                           response_model="gpt-4o-2024"),
              tool_result("s1", "t1", 2.5), tool_result("s1", "t2", 2.6, ok=False),
              tool_started("s1", "t3", 2.7), tool_finished("s1", "t3", 2.8),
              command_result("s1", "c1", 3, success=False, error="KeyError: k"),
              command_result("s1", "ghost", 3)):  # an outcome: end_without_start
        tel.observe_event(e)
    tel.force_flush()
    tel.stats.drop("spans", "export_failed")  # so the dropped counter has a point
    # ... and the async-handler and disk-buffer ones (no async handler, no OTLP here)
    tel.stats.handler_dropped[("broken", "timeout")] += 1
    tel.stats.buffer[("spans", "spilled")] += 1
    tel.stats.buffered["spans"] += 1
    tel.stats.buffer_state.update(bytes=lambda: 100, oldest_age_s=lambda: 1.5)
    data = tel.metric_reader.get_metrics_data()
    seen = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics}
    registry, attributes = _metrics(), _attributes()
    ours = {n for n in seen if n.startswith("llmgine.")}
    # llmgine.cost only once the price table has loaded (in a background thread)
    assert ours - {"llmgine.cost"} == set(registry) - {"llmgine.cost"}
    assert {m for r in mapping.MAPPING for m in r.metrics if m.startswith("llmgine.")} <= ours
    kinds = {"Histogram": "histogram", "Gauge": "gauge"}
    for name in ours:
        m, spec = seen[name], registry[name]
        kind = kinds.get(type(m.data).__name__, "counter")
        assert (kind, m.unit) == (spec["instrument"], spec["unit"]), name
        allowed = {a["ref"] for a in spec["attributes"]}
        required = {a["ref"] for a in spec["attributes"]
                    if a.get("requirement_level") == "required"}
        for p in m.data.data_points:
            keys = set(p.attributes)
            assert required <= keys <= allowed, (name, keys)
            for k in keys:
                assert not k.startswith("llmgine.") or k in attributes, k
    failed = [p for p in seen["llmgine.tool.duration"].data.data_points
              if "error.type" in p.attributes]
    assert len(failed) == 1
    (cmd,) = seen["llmgine.command.duration"].data.data_points
    assert cmd.attributes["error.type"] == "KeyError"
