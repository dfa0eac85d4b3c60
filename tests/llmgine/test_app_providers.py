"""Plays well with the OpenTelemetry an app already has, and the app's logs join the trace.

Each case runs tests/llmgine/provider_app.py (real llmgine, real SDK providers) in its own
process and reads what the real built Collector received:

- the app set its own SDK providers: llmgine's spans, bus log records and GenAI metrics go
  through them (the app's resource), no second provider is made, nothing is written locally,
  no "Overriding" warning;
- ``tracer_provider=`` (and the logger/meter ones) given to ``instrument()`` win over the
  app's globals;
- ``configure()`` after the app's own setup: its own pipeline, and still no warning;
- zero-code start: a ``logging.getLogger("app").warning(...)`` inside a command handler
  arrives as a log record with that command span's trace and span ids, once;
  ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=false`` turns that off; with the root
  logger at DEBUG and OTLP/HTTP, what the export threads log never comes back as records.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from llmgine_kit import offline_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> import support.*

from support.collector import (
    COLLECTOR_DIR,
    OtlpLog,
    OtlpSpan,
    RunningCollector,
    iter_logs,
    iter_spans,
    read_otlp_json_lines,
    start_collector,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

APP = Path(__file__).resolve().parent / "provider_app.py"
BIN = Path(sys.executable).parent
FAST = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "500"}
# One trace per command (the default shape): the session's start and end marks are spans of
# their own traces, linked from the command's.
LLMGINE_SPANS = {"session", "session end", "command GreetCommand", "chat gpt-test"}


@pytest.fixture(scope="module")
def col(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("llmgine.bus.bus")
    with start_collector(COLLECTOR_DIR / "otelcol.yaml",
                         workdir=tmp_path_factory.mktemp("col")) as c:
        yield c


def run_app(col: RunningCollector, tmp_path: Path, mode: str, *, zero_code: bool = False,
            **env: str) -> tuple[dict[str, Any], str, str]:
    """Run the app; (facts, service name, stderr)."""
    service = f"app-{uuid.uuid4().hex[:8]}"
    full = offline_env(APP_MODE=mode, APP_SERVICE=service,
                       OTEL_EXPORTER_OTLP_ENDPOINT=col.grpc_endpoint, **FAST)
    if zero_code:
        full.update(OTEL_PYTHON_DISTRO="llmgine_otel", OTEL_PYTHON_CONFIGURATOR="llmgine_otel",
                    OTEL_SERVICE_NAME=service)
    full.update(env)
    cmd = [str(BIN / "opentelemetry-instrument")] if zero_code else []
    proc = subprocess.run([*cmd, sys.executable, str(APP)], cwd=tmp_path, env=full,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    return facts, service, proc.stderr


def spans_of(col: RunningCollector, service: str) -> list[OtlpSpan]:
    return [s for s in iter_spans(read_otlp_json_lines(col.file_path))
            if s.resource.get("service.name") == service]


def logs_of(col: RunningCollector, service: str) -> list[OtlpLog]:
    return [r for r in iter_logs(read_otlp_json_lines(col.file_path))
            if r.resource.get("service.name") == service]


def metric_names(col: RunningCollector, service: str) -> set[str]:
    out = set()
    for obj in read_otlp_json_lines(col.file_path):
        for rm in obj.get("resourceMetrics", ()):
            attrs = {a["key"]: a["value"].get("stringValue")
                     for a in rm.get("resource", {}).get("attributes", ())}
            if attrs.get("service.name") == service:
                out |= {m["name"] for sm in rm.get("scopeMetrics", ()) for m in sm["metrics"]}
    return out


def wait_spans(col: RunningCollector, service: str, names: set[str]) -> list[OtlpSpan]:
    def check() -> list[OtlpSpan] | None:
        spans = spans_of(col, service)
        return spans if names <= {s.name for s in spans} else None

    return wait_for(check, timeout=30, what=f"{names} of {service}")


def test_the_apps_own_providers_carry_llmgine_telemetry(col: RunningCollector,
                                                        tmp_path: Path) -> None:
    facts, service, stderr = run_app(col, tmp_path, "app-providers")
    assert facts == {"telemetry": "BorrowedTelemetry", "tracer_providers": 1,
                     "logger_providers": 1, "meter_providers": 1, "local_dir": False}
    assert "Overriding of current" not in stderr
    spans = wait_spans(col, service, LLMGINE_SPANS | {"app work"})
    by_name = {s.name: s for s in spans}
    assert by_name["app work"].parent_span_id == by_name["command GreetCommand"].span_id
    command = by_name["command GreetCommand"]
    assert {s.trace_id for s in spans if s.name not in ("session", "session end")} == \
        {command.trace_id}
    logs = wait_for(lambda: [r for r in logs_of(col, service) if r.event_name] or None,
                    timeout=30, what="bus log records on the app's logger provider")
    assert {"llmgine.command.start", "gen_ai.client.inference.operation.details"} <= \
        {r.event_name for r in logs}
    names = wait_for(lambda: metric_names(col, service) or None, timeout=30,
                     what="metrics on the app's meter provider")
    assert "gen_ai.client.operation.duration" in names
    assert "gen_ai.client.token.usage" in names


def test_providers_given_to_instrument_win_over_the_globals(col: RunningCollector,
                                                            tmp_path: Path) -> None:
    facts, service, stderr = run_app(col, tmp_path, "explicit")
    assert facts["telemetry"] == "BorrowedTelemetry" and facts["tracer_providers"] == 2
    assert "Overriding of current" not in stderr
    spans = wait_spans(col, service, LLMGINE_SPANS)
    assert {s.name for s in spans} == LLMGINE_SPANS  # the app's own span went to its global
    app_span = wait_spans(col, service + "-global", {"app work"})[0]
    command = next(s for s in spans if s.name == "command GreetCommand")
    assert app_span.parent_span_id == command.span_id
    wait_for(lambda: "gen_ai.client.operation.duration" in metric_names(col, service),
             timeout=30, what="GenAI metrics on the given meter provider")
    assert not {s.name for s in spans_of(col, service + "-global")} & LLMGINE_SPANS
    assert any(r.event_name for r in logs_of(col, service))


def test_configure_after_the_apps_setup_warns_nothing(col: RunningCollector,
                                                      tmp_path: Path) -> None:
    facts, service, stderr = run_app(col, tmp_path, "configure-after",
                                     OTEL_SERVICE_NAME="llmgine-own")
    assert facts["telemetry"] == "Telemetry"
    assert "Overriding of current" not in stderr and "not allowed" not in stderr
    wait_spans(col, service, {"app work"})  # the app's pipeline keeps its spans
    wait_spans(col, "llmgine-own", LLMGINE_SPANS)  # llmgine's own pipeline


def _has_entry_points() -> bool:
    return any(ep.name == "llmgine" for ep in entry_points(group="opentelemetry_instrumentor"))


needs_install = pytest.mark.skipif(not _has_entry_points(),
                                   reason="llmgine-otel is not installed (pip -e .)")


@needs_install
def test_app_logging_joins_the_command_span_under_zero_code(col: RunningCollector,
                                                            tmp_path: Path) -> None:
    # OTLP/HTTP and a root logger at DEBUG: urllib3 logs each export connection on the
    # export thread, which must not come back as records (and export again, forever).
    facts, service, _ = run_app(col, tmp_path, "plain", zero_code=True, APP_LOG_LEVEL="DEBUG",
                                OTEL_EXPORTER_OTLP_ENDPOINT=col.http_endpoint,
                                OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    assert facts["telemetry"] == "Telemetry"
    spans = wait_spans(col, service, LLMGINE_SPANS | {"app work"})
    command = next(s for s in spans if s.name == "command GreetCommand")
    def app_logs() -> list[OtlpLog] | None:
        found = [r for r in logs_of(col, service) if r.scope_name == "app"]
        return found if len(found) >= 2 else None

    logs = wait_for(app_logs, timeout=30, what="the app's log records")
    inside = [r for r in logs if str(r.body).startswith("greeting Ada")]
    assert len(inside) == 1, [r.body for r in logs]
    assert (inside[0].trace_id, inside[0].span_id) == (command.trace_id, command.span_id)
    assert inside[0].severity_text == "WARN"
    outside = [r for r in logs if r.body == "outside any command"]
    assert len(outside) == 1 and not outside[0].trace_id
    every = logs_of(col, service)
    scopes = Counter(r.scope_name for r in every)
    assert not [s for s in scopes if s.startswith(("opentelemetry", "llmgine_otel.",
                                                   "urllib3"))], scopes
    # the bus event records are the translator's, once each
    events = Counter(r.event_name for r in every if r.scope_name == "llmgine_otel")
    assert events["llmgine.command.start"] == 1, events
    assert events["gen_ai.client.inference.operation.details"] == 1, events
    assert "DEBUG" in {r.severity_text for r in every}  # the app's level is honoured


@needs_install
def test_OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED_false_keeps_app_logs_out(
        col: RunningCollector, tmp_path: Path) -> None:
    _facts, service, stderr = run_app(
        col, tmp_path, "plain", zero_code=True,
        OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="false")
    assert "greeting Ada" in stderr  # the app's own logging is untouched
    wait_spans(col, service, LLMGINE_SPANS)
    every = wait_for(lambda: logs_of(col, service) or None, timeout=30, what="bus records")
    assert {r.scope_name for r in every} == {"llmgine_otel"}


def test_OTEL_SDK_DISABLED_leaves_the_bus_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llmgine.bus.bus")
    from llmgine.bus.bus import MessageBus

    from llmgine_otel.instrument import LLMgineInstrumentor, active_observer

    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    inst = LLMgineInstrumentor()
    if inst.is_instrumented_by_opentelemetry:
        inst.uninstrument()
    before = MessageBus.publish
    inst.instrument()
    try:
        assert MessageBus.publish is before and active_observer() is None
    finally:
        inst.uninstrument()
