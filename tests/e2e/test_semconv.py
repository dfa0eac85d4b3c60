"""Semantic conventions, proven with the OpenTelemetry project's own tool, Weaver 0.25.1:

- ``weaver registry check`` passes on conventions/registry (with the OpenTelemetry conventions
  v1.41.0 as its dependency), with no warning;
- ``weaver registry live-check`` receives everything the apps in ``LIVE_CHECK_APPS`` send over
  OTLP (spans, log records, metrics) and finds no violation in what this package emits (its
  instrumentation scope ``llmgine_otel``, and the resource); the improvement findings left
  are exactly the ones conventions/mapping.md lists with a reason (``mapping.KEPT_FINDINGS``).
  Telemetry of other instrumentations an app runs beside ours (aiohttp, httpx, openai-v2) and
  of the app's own tracer is received too but not this package's to fix: it is printed, not
  counted.

To live-check one more app, add it to ``LIVE_CHECK_APPS``.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> import support.*

from support.openai_server import openai_server
from support.weaver import Finding, LiveCheckReport, registry_check, start_live_check

from llmgine_otel import mapping

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class App:
    """One application run against the live-check, and what it must have sent."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    events: frozenset[str] = frozenset()
    """Log event names the live-check must have seen from it."""
    metrics: frozenset[str] = frozenset()
    openai_server: bool = False
    """Give it a local OpenAI-compatible server (OPENAI_API_BASE, tests/support)."""


_ZERO_CODE = {"OTEL_PYTHON_DISTRO": "llmgine_otel", "OTEL_PYTHON_CONFIGURATOR": "llmgine_otel"}
_DEMO_EVENTS = frozenset({
    "llmgine.session.start", "llmgine.session.end", "llmgine.command.start",
    "llmgine.command.result", "llmgine.llm.call.start", "llmgine.tool.result",
    "gen_ai.client.inference.operation.details"})
_DEMO_METRICS = frozenset({
    "gen_ai.client.operation.duration", "gen_ai.client.token.usage",
    "gen_ai.client.operation.time_to_first_chunk", "llmgine.tool.duration",
    "llmgine.command.duration", "llmgine.observability.events",
    "llmgine.observability.exported"})

#: The applications whose telemetry Weaver checks, in one place: argv (run from the
#: repository root with OTEL_EXPORTER_OTLP_ENDPOINT set to the live-check), extra
#: environment, and the event/metric names each must produce.
LIVE_CHECK_APPS: tuple[App, ...] = (
    App("chat demo", (sys.executable, "examples/chat_demo.py"),
        events=_DEMO_EVENTS, metrics=_DEMO_METRICS),
    App("chat demo, content captured on spans and events",
        (sys.executable, "examples/chat_demo.py"),
        env={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_AND_EVENT"},
        events=_DEMO_EVENTS, metrics=_DEMO_METRICS),
    App("zero-code plain app (opentelemetry-instrument)",
        (str(BIN / "opentelemetry-instrument"), sys.executable, "examples/plain_app.py"),
        env=_ZERO_CODE,
        events=frozenset({"llmgine.session.start", "llmgine.command.start",
                          "llmgine.tool.result", "llmgine.command.result",
                          "llmgine.session.end"}),
        metrics=frozenset({"llmgine.command.duration", "llmgine.tool.duration"})),
    App("zero-code litellm + ToolManager app (opentelemetry-instrument)",
        (str(BIN / "opentelemetry-instrument"), sys.executable, "examples/tool_agent_app.py"),
        env=_ZERO_CODE, openai_server=True,
        events=frozenset({"llmgine.session.start", "llmgine.command.start",
                          "llmgine.llm.call.start", "gen_ai.client.inference.operation.details",
                          "llmgine.tool.execution.start", "llmgine.tool.execution.end",
                          "llmgine.command.result", "llmgine.session.end"}),
        metrics=frozenset({"gen_ai.client.operation.duration", "gen_ai.client.token.usage",
                           "gen_ai.client.operation.time_to_first_chunk",
                           "llmgine.tool.duration", "llmgine.command.duration"})),
)
OURS = "llmgine_otel"  # this package's instrumentation scope


def _ours(f: Finding) -> bool:
    return f.scope in (OURS, "")  # "" = the resource (configure() makes it)


def _app_env(app: App, endpoint: str, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMGINE_"))}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_SERVICE_NAME="llmgine-semconv",
               OTEL_BSP_SCHEDULE_DELAY="100", OTEL_BLRP_SCHEDULE_DELAY="100",
               LLMGINE_DB_URL="sqlite://", LITELLM_LOCAL_MODEL_COST_MAP="True",
               LLMGINE_OTEL_DIR=str(tmp / "unused-local-files"), PYTHONDONTWRITEBYTECODE="1")
    env.update(app.env)
    return env


def test_registry_check_passes_without_warnings() -> None:
    proc = registry_check()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # Warnings (e.g. a missing stability) leave the exit code 0: a diagnostic report is a fail.
    assert "Diagnostic report" not in out and "⚠" not in out, out
    assert "No `after_resolution` policy violation" in out, out


@pytest.fixture(scope="module")
def live_report(tmp_path_factory: pytest.TempPathFactory) -> LiveCheckReport:
    """Every app of LIVE_CHECK_APPS, run once against one live-check session."""
    tmp = tmp_path_factory.mktemp("semconv")
    with start_live_check(tmp / "weaver") as live, openai_server() as server:
        for i, app in enumerate(LIVE_CHECK_APPS):
            env = _app_env(app, live.endpoint, tmp / f"app{i}")
            if app.openai_server:
                env.update(OPENAI_API_BASE=server.base_url, OPENAI_API_KEY="test-key")
            proc = subprocess.run(list(app.argv), cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=300, check=False)
            assert proc.returncode == 0, f"{app.name}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
        report = live.finish()
    ours = Counter(f.level for f in report.findings if _ours(f))
    others = Counter((f.scope, f.level) for f in report.findings if not _ours(f))
    print("\nweaver live-check statistics (all scopes):",
          report.statistics.get("advice_level_counts"),
          "\nfindings on this package's telemetry:", dict(ours),
          "\nfindings on other instrumentations' and the apps' own:", dict(others))
    return report


def test_live_check_finds_no_violation(live_report: LiveCheckReport) -> None:
    violations = [f for f in live_report.findings if f.level == "violation" and _ours(f)]
    assert not violations, "\n".join(
        f"{f.id}: {f.subject} ({f.signal}): {f.message}" for f in violations)


def test_live_check_saw_everything_the_apps_emit(live_report: LiveCheckReport) -> None:
    """The check is only as good as its input: every app's events and metrics arrived."""
    stats = live_report.statistics

    def seen(kind: str) -> set[str]:
        known = stats.get(f"seen_registry_{kind}") or {}
        return {k for k, n in known.items() if n} | set(stats.get(f"seen_non_registry_{kind}")
                                                      or ())

    seen_events, seen_metrics = seen("events"), seen("metrics")
    for app in LIVE_CHECK_APPS:
        assert app.events <= seen_events, (app.name, sorted(app.events - seen_events))
        assert app.metrics <= seen_metrics, (app.name, sorted(app.metrics - seen_metrics))


def test_improvements_left_are_the_documented_ones(live_report: LiveCheckReport) -> None:
    """Each improvement finding is listed in mapping.md with its reason, and each listed one
    still occurs (so the list stays true)."""
    found = Counter((f.id, f.subject) for f in live_report.findings
                    if f.level == "improvement" and _ours(f))
    kept = mapping.KEPT_FINDINGS

    def listed(key: tuple[str, str], k: mapping.KeptFinding) -> bool:
        return key[0] == k.finding and fnmatch.fnmatchcase(key[1], k.subject)

    unlisted = sorted(key for key in found if not any(listed(key, k) for k in kept))
    assert not unlisted, f"improvement findings not in mapping.KEPT_FINDINGS: {unlisted}"
    stale = [k for k in kept if not any(listed(key, k) for key in found)]
    assert not stale, f"listed in mapping.KEPT_FINDINGS but no longer found: {stale}"
