"""Metrics on a dashboard, with the parts this machine can run for real.

The demo app (real llmgine, litellm against a local server) sends its telemetry to the real
Collector running the bundled otelcol.yaml; a second run with a one-item export queue drops
spans, so the dropped-telemetry series exists too. Then:

* the Collector's Prometheus endpoint is scraped and parsed by prometheus_client's parser:
  the GenAI series are there with the right labels;
* a real Prometheus (collector/build-prometheus.sh) runs with collector/prometheus/
  prometheus.yml (targets pointed at this Collector) and evaluates every query of the
  Grafana dashboard (and its variables): each parses, and each finds data;
* every GenAI/llmgine histogram and counter the app exports is on the dashboard (a renamed
  metric fails here, not silently on a screen);
* the compose file validates against the compose-spec schema, the dashboard round-trips
  through the Grafana Foundation SDK's types (generated from Grafana's schemas) without
  losing a field, and the provisioning files against the schema below.

Grafana and Tempo are AGPL: configured only, never built or run here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> import support.*

from support.collector import (
    COLLECTOR_DIR,
    RunningCollector,
    RunningPrometheus,
    _http_get,
    start_collector,
    start_prometheus,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "chat_demo.py"
DASHBOARD = COLLECTOR_DIR / "grafana" / "dashboards" / "llmgine-genai.json"
PROVISIONING = COLLECTOR_DIR / "grafana" / "provisioning"
PROMETHEUS_CONFIG = COLLECTOR_DIR / "prometheus" / "prometheus.yml"
# What Grafana puts in for its variables when the dashboard shows everything.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s",
                "$service": ".*", "$provider": ".*", "$model": ".*"}


def _demo_env(endpoint: str, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMGINE_"))}
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100",
                "OTEL_BLRP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "1000",
                "LLMGINE_DB_URL": "sqlite://", "LLMGINE_OTEL_DIR": str(tmp / "unused")})
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("dashboard")
    with start_collector(COLLECTOR_DIR / "otelcol.yaml", workdir=tmp / "collector") as col:
        for name, extra in (("demo", {"OTEL_SERVICE_NAME": "llmgine-demo"}),
                            # One queued item at a time, exported every 5 s: the demo's
                            # spans/log records overflow the queue and are counted as dropped.
                            ("overflow", {"LLMGINE_OBSERVABILITY_QUEUE_SIZE": "1",
                                          "OTEL_BSP_SCHEDULE_DELAY": "5000",
                                          "OTEL_SERVICE_NAME": "llmgine-overflow"})):
            proc = subprocess.run([sys.executable, str(DEMO)], cwd=tmp, text=True,
                                  env=_demo_env(col.grpc_endpoint, tmp, **extra),
                                  capture_output=True, timeout=300, check=False)
            assert proc.returncode == 0, f"{name}: {proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        yield col


def _scrape(col: RunningCollector) -> str:
    status, body = _http_get(col.prometheus_url, timeout=5)
    assert status == 200
    return body.decode()


def _families(text: str) -> dict[str, Any]:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


def _wait_families(col: RunningCollector, names: set[str], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        fams = _families(_scrape(col))
        if names <= fams.keys() or time.monotonic() > deadline:
            return fams
        time.sleep(0.5)


GENAI = {"gen_ai_client_token_usage", "gen_ai_client_operation_duration_seconds",
         "llmgine_tool_duration_seconds", "llmgine_command_duration_seconds",
         "llmgine_cost_USD", "llmgine_observability_dropped"}


def test_the_collector_serves_the_genai_metrics_as_valid_prometheus_text(collector) -> None:
    fams = _wait_families(collector, GENAI)
    assert fams.keys() >= GENAI, sorted(fams)

    def labels(family: str, suffix: str = "_count") -> list[dict[str, str]]:
        return [s.labels for s in fams[family].samples if s.name == family + suffix]

    tokens = labels("gen_ai_client_token_usage")
    assert {t["gen_ai_token_type"] for t in tokens} == {"input", "output"}
    for t in tokens:
        assert (t["gen_ai_provider_name"], t["gen_ai_request_model"], t["gen_ai_operation_name"]
                ) == ("openai", "gpt-4o-mini", "chat")
        assert t["job"] in ("llmgine-demo", "llmgine-overflow")  # service.name
    assert fams["gen_ai_client_token_usage"].type == "histogram"
    durations = labels("gen_ai_client_operation_duration_seconds")
    assert {d.get("error_type", "") for d in durations} == {"", "ContextWindowExceededError"}
    tools = {(t["gen_ai_tool_name"], t.get("error_type", ""))
             for t in labels("llmgine_tool_duration_seconds")}
    assert tools == {("get_weather", ""), ("get_stock_price", "ConnectionError")}
    commands = {(c["llmgine_command_type"], c.get("error_type", ""))
                for c in labels("llmgine_command_duration_seconds")}
    assert commands == {("ChatCommand", ""), ("SummarizeCommand", "ContextWindowExceededError")}
    (cost,) = {s.value for s in fams["llmgine_cost_USD"].samples
               if s.labels["job"] == "llmgine-demo"}
    assert cost > 0
    dropped = [s for s in fams["llmgine_observability_dropped"].samples
               if s.name.endswith("_total")]
    assert dropped and all(s.labels["job"] == "llmgine-overflow" for s in dropped)
    assert {s.labels["llmgine_observability_signal"] for s in dropped} <= {"spans", "logs"}
    assert sum(s.value for s in dropped) > 0 and all(
        s.labels["llmgine_observability_drop_reason"] for s in dropped)


@pytest.fixture(scope="module")
def prometheus(collector, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The repository's prometheus.yml, its two targets pointed at this Collector and
    scraped every second."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"]["scrape_interval"] = "1s"
    targets = {"otelcol:8889": collector.prometheus_url.split("/")[2],
               "otelcol:8888": collector.metrics_url.split("/")[2]}
    for job in config["scrape_configs"]:
        for sc in job["static_configs"]:
            sc["targets"] = [targets[t] for t in sc["targets"]]
    with start_prometheus(yaml.safe_dump(config), tmp_path_factory.mktemp("prometheus")) as p:
        yield p


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every Prometheus query of the dashboard, variables included."""
    out = []
    for panel in _dashboard()["panels"]:
        for t in panel.get("targets", []):
            if t.get("datasource", panel.get("datasource", {})).get("type") == "prometheus":
                out.append((f"{panel['title']} / {t['refId']}", t["expr"]))
    for var in _dashboard()["templating"]["list"]:
        # label_values(SELECTOR, LABEL) is Grafana's: the selector is PromQL.
        m = re.fullmatch(r"label_values\((.*), *(\w+)\)", var["query"]["query"])
        assert m, var
        out.append((f"variable {var['name']}", m.group(1)))
    return out


def _substitute(expr: str) -> str:
    for var, value in sorted(GRAFANA_VARS.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(var, value)
    assert "$" not in expr, expr
    return expr


def test_every_dashboard_query_runs_on_a_real_prometheus_and_finds_data(
        prometheus: RunningPrometheus) -> None:
    queries = _queries()
    assert len(queries) >= 20
    pending = dict(queries)
    answers: dict[str, Any] = {}
    deadline = time.monotonic() + 60  # rate() needs two scrapes inside its window
    while pending and time.monotonic() < deadline:
        for where, expr in list(pending.items()):
            answer = prometheus.query(_substitute(expr))
            assert answer["status"] == "success", (where, expr, answer)  # it parses and runs
            answers[where] = answer
            if answer["data"]["result"]:
                del pending[where]
        time.sleep(1)
    assert not pending, {w: answers.get(w) for w in pending}


def test_a_broken_query_is_rejected_by_the_same_prometheus(prometheus) -> None:
    """The check above can fail: a typo in a query is a parse error, an unknown metric
    finds nothing."""
    assert prometheus.query("sum by (le (rate(x[1m]))")["status"] == "error"
    assert prometheus.query("rate(gen_ai_client_token_usage_typo[1m])")["data"]["result"] == []


def test_every_genai_metric_the_app_exports_is_on_the_dashboard(collector) -> None:
    """What arrives decides: each histogram and counter of the app's GenAI/llmgine metrics
    (and the dropped-telemetry self-metric) is used by some dashboard query."""
    fams = _wait_families(collector, GENAI)
    app = {name for name, f in fams.items()
           if f.type in ("histogram", "counter") and name.startswith(("gen_ai_", "llmgine_"))
           and not name.startswith(("llmgine_calls", "llmgine_duration"))  # span_metrics
           and name not in ("llmgine_observability_events", "llmgine_observability_exported",
                            "llmgine_observability_handler_duration_seconds")}
    assert app >= GENAI
    text = " ".join(expr for _, expr in _queries())
    assert {name for name in app if not re.search(rf"\b{name}(_bucket|_count|_sum|_total)?\b",
                                                  text)} == set()


def test_compose_file_validates_against_the_compose_spec() -> None:
    compose = COLLECTOR_DIR / "docker-compose.yaml"
    ok = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                         "vendor.compose-spec", str(compose)], capture_output=True, text=True,
                        check=False, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    doc = yaml.safe_load(compose.read_text())
    assert {"otelcol", "jaeger", "tempo", "prometheus", "grafana"} <= doc["services"].keys()
    services = doc["services"]
    mounts = " ".join(services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    for path in ("./prometheus/prometheus.yml", "./grafana/provisioning", "./grafana/dashboards"):
        assert path in mounts and (COLLECTOR_DIR / path).exists()


def test_the_compose_schema_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  prometheus:\n    image: prom/prometheus\n    ports: 9090\n")
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.compose-spec", str(bad)], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode != 0


def _round_trip(doc: dict[str, Any]) -> Any:
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()
    return json.loads(json.dumps(Dashboard.from_json(doc).to_json(),
                                 default=lambda o: o.to_json()))


def _lost(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths of ``a`` that ``b`` does not hold with the same value."""
    if isinstance(a, dict):
        if not isinstance(b, dict):
            return [path]
        return [p for k, v in a.items()
                for p in ([f"{path}/{k}"] if k not in b else _lost(v, b[k], f"{path}/{k}"))]
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return [path]
        return [p for i, (x, y) in enumerate(zip(a, b, strict=True))
                for p in _lost(x, y, f"{path}[{i}]")]
    return [] if a == b else [path]


def test_dashboard_round_trips_through_grafana_s_schema_types() -> None:
    doc = _dashboard()
    assert _lost(doc, _round_trip(doc)) == []
    # ... and the check can fail: a misspelt field is not in the schema and is lost.
    ts = next(p for p in doc["panels"] if p["type"] == "timeseries")
    ts["options"]["legend"]["dispayMode"] = "table"
    ts["targets"][0]["exprr"] = "up"
    assert len(_lost(doc, _round_trip(doc))) == 2


# Grafana's provisioning file format (https://grafana.com/docs/grafana/latest/administration/
# provisioning/), the parts these files use.
_DATASOURCE = {
    "type": "object", "required": ["name", "type", "uid", "access", "url"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "type": {"enum": ["tempo", "jaeger", "prometheus"]},
                   "uid": {"type": "string"}, "access": {"enum": ["proxy", "direct"]},
                   "url": {"type": "string", "format": "uri"}, "isDefault": {"type": "boolean"},
                   "editable": {"type": "boolean"}, "jsonData": {"type": "object"}},
}
_PROVIDER = {
    "type": "object", "required": ["name", "type", "options"], "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "orgId": {"type": "integer"},
                   "folder": {"type": "string"}, "type": {"const": "file"},
                   "disableDeletion": {"type": "boolean"}, "allowUiUpdates": {"type": "boolean"},
                   "updateIntervalSeconds": {"type": "integer"},
                   "options": {"type": "object", "required": ["path"],
                               "properties": {"path": {"type": "string"},
                                              "foldersFromFilesStructure": {"type": "boolean"}}}},
}
PROVISIONING_SCHEMA = {
    "type": "object", "required": ["apiVersion"], "additionalProperties": False,
    "properties": {"apiVersion": {"const": 1},
                   "datasources": {"type": "array", "items": _DATASOURCE},
                   "providers": {"type": "array", "items": _PROVIDER}},
}


def test_provisioning_files_validate_and_match_the_dashboard() -> None:
    import jsonschema

    files = sorted(PROVISIONING.rglob("*.yaml"))
    assert {f.parent.name for f in files} == {"datasources", "dashboards"}
    uids = set()
    for f in files:
        doc = yaml.safe_load(f.read_text())
        jsonschema.validate(doc, PROVISIONING_SCHEMA)
        uids |= {d["uid"] for d in doc.get("datasources", [])}
    assert uids == {"tempo", "jaeger", "prometheus"}
    used = {p["datasource"]["uid"] for p in _dashboard()["panels"] if "datasource" in p}
    assert used <= uids and {"prometheus", "tempo"} <= used
    # The panels link to the traces of what they show.
    links = [link["url"] for p in _dashboard()["panels"]
             for link in p.get("fieldConfig", {}).get("defaults", {}).get("links", [])]
    assert any("tempo" in u and "gen_ai.request.model" in u for u in links)
    assert any("16686" in u for u in links)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"apiVersion": 1, "datasources": [{"name": "x", "type": "loki"}]},
                            PROVISIONING_SCHEMA)


def test_a_real_prometheus_scrapes_the_app_endpoint(tmp_path: Path) -> None:
    """LLMGINE_OTEL_PROMETHEUS_PORT's endpoint, scraped by Prometheus itself (its Go text
    parser): label values with quotes, backslashes, newlines and unicode come back exactly,
    and the dashboard's LLM query finds the app's series there too (same names as the
    Collector's)."""
    from llmgine_otel import configure
    from llmgine_otel.llm import llm_call

    tricky = 'gpt "4o"\\mini\nv2 漢🙂'
    tel = configure(set_global=False, console=False, output_dir=tmp_path / "files",
                    prometheus_port=0, service_name="scraped-app")
    try:
        with llm_call(tel.observe_event, model=tricky, provider="openai",
                      session_id="s1") as call:
            call.record_response({"usage": {"prompt_tokens": 3, "completion_tokens": 2}})
        tel.force_flush()
        config = {"global": {"scrape_interval": "1s"},
                  "scrape_configs": [{"job_name": "app", "static_configs": [
                      {"targets": [f"127.0.0.1:{tel.prometheus_endpoint.port}"]}]}]}
        with start_prometheus(yaml.safe_dump(config), tmp_path / "prometheus") as prom:
            query = ('sum by (gen_ai_request_model) (rate(gen_ai_client_operation_duration_'
                     'seconds_count{gen_ai_provider_name=~".*"}[1m]))')
            deadline = time.monotonic() + 60
            while True:
                up = prom.query('up{job="app"}')["data"]["result"]
                answer = prom.query(query)
                if answer["data"]["result"] or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert up and up[0]["value"][1] == "1", up
            (series,) = answer["data"]["result"]
            assert series["metric"]["gen_ai_request_model"] == tricky
            tokens = prom.query("gen_ai_client_token_usage_sum")["data"]["result"]
            assert {s["metric"]["gen_ai_token_type"]: s["value"][1] for s in tokens} == \
                {"input": "3", "output": "2"}
    finally:
        tel.shutdown()
