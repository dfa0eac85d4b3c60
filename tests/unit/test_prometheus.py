"""prometheus_text() is valid Prometheus text for any label value and HELP text, and the
optional scrape endpoint (LLMGINE_OTEL_PROMETHEUS_PORT) serves it, scraped for real.

The parser is prometheus_client's; tests/e2e/test_metrics_dashboard.py::
test_a_real_prometheus_scrapes_the_app_endpoint adds Prometheus's own (Go) parser.
"""

from __future__ import annotations

import socket
import threading
import urllib.request
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from otel_kit import command_result, command_started
from prometheus_client.parser import text_string_to_metric_families

from llmgine_otel import configure
from llmgine_otel.config import ConfigError, ObservabilityConfig
from llmgine_otel.prometheus import prometheus_name, prometheus_text

# Raw newlines, quotes, backslashes, braces, '#', unicode (also outside the BMP), lone
# surrogates (not UTF-8: replaced), empty strings.
TRICKY = st.text(alphabet=st.one_of(
    st.sampled_from(list('\n\r\t"\\{}=,# \x00\u2028é漢🙂')),
    st.characters(codec="utf-8"), st.characters(categories=["Cs"])), max_size=30)


def _parse(text: str) -> dict[str, Any]:
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), f"a family appears twice: {names}"
    # Prometheus: one TYPE line per metric name, all of its samples grouped after it.
    type_lines = [line for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(type_lines) == len(set(type_lines))
    return {f.name: f for f in families}


def _utf8(s: str) -> str:
    return s.encode(errors="replace").decode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(TRICKY, min_size=1, max_size=4), help_text=TRICKY,
       scopes=st.integers(min_value=1, max_value=3))
def test_any_label_value_and_help_text_parse_back(values: list[str], help_text: str,
                                                  scopes: int) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        # Several meters (scopes) making the same families: one family each in the text.
        for i in range(scopes):
            meter = provider.get_meter(f"scope-{i}")
            counter = meter.create_counter("llm.calls", unit="{call}", description=help_text)
            hist = meter.create_histogram("op.duration", unit="s", description=help_text)
            gauge = meter.create_up_down_counter("queue.depth", description=help_text)
            for j, v in enumerate(values):
                attrs = {"model": v, "attr.with-dots": v, "n": j}
                counter.add(j + 1, attrs)
                hist.record(0.5 * j, attrs)
                gauge.add(j, attrs)
        text = prometheus_text(reader.get_metrics_data())
    finally:
        provider.shutdown()
    fams = _parse(text)
    assert fams.keys() == {"llm_calls", "op_duration_seconds", "queue_depth"}
    want = {(f"scope-{i}", _utf8(v), str(j)) for i in range(scopes)
            for j, v in enumerate(values)}
    for name, suffix in (("llm_calls", "_total"), ("op_duration_seconds", "_count"),
                         ("queue_depth", "")):
        fam = fams[name]
        # (prometheus_client's parser trims the ends of a HELP line)
        assert fam.documentation.strip() == _utf8(help_text).strip()
        got = {(s.labels["otel_scope_name"], s.labels["model"], s.labels["n"])
               for s in fam.samples if s.name == name + suffix}
        assert got == want
        for s in fam.samples:
            assert s.labels["attr_with_dots"] == s.labels["model"]
    for s in fams["llm_calls"].samples:
        assert s.value == int(s.labels["n"]) + 1


def test_help_text_survives_exactly() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    doc = 'two\nlines, a "quote" and a back\\slash'
    provider.get_meter("m").create_counter("c", description=doc).add(1, {"k": "v\nw"})
    fams = _parse(prometheus_text(reader.get_metrics_data()))
    assert fams["c"].documentation == doc
    assert fams["c"].samples[0].labels["k"] == "v\nw"
    provider.shutdown()


@pytest.mark.parametrize(("name", "unit", "counter", "expected"), [
    ("gen_ai.client.operation.duration", "s", False, "gen_ai_client_operation_duration_seconds"),
    ("gen_ai.client.token.usage", "{token}", False, "gen_ai_client_token_usage"),
    ("llmgine.cost", "USD", True, "llmgine_cost_USD"),
    ("llmgine.observability.events", "{event}", True, "llmgine_observability_events"),
    ("requests.total", "", True, "requests"),
    ("9lives", "By", False, "_9lives_bytes"),
])
def test_names_follow_the_collector_s_prometheus_exporter(name, unit, counter, expected):
    """The same names as the Collector's endpoint, so one dashboard fits both (the e2e
    dashboard test compares what the Collector actually serves)."""
    assert prometheus_name(name, unit, counter=counter) == expected


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.headers["Content-Type"], resp.read().decode()


def test_scrape_endpoint_is_off_by_default(tmp_path) -> None:
    tel = configure(set_global=False, console=False, output_dir=tmp_path)
    try:
        assert tel.prometheus_endpoint is None
    finally:
        tel.shutdown()


def test_scrape_endpoint_serves_prometheus_text_and_stops_at_shutdown(tmp_path,
                                                                      monkeypatch) -> None:
    port = _free_port()
    monkeypatch.setenv("LLMGINE_OTEL_PROMETHEUS_PORT", str(port))
    tel = configure(set_global=False, console=False, output_dir=tmp_path)
    try:
        ep = tel.prometheus_endpoint
        assert ep.url == f"http://127.0.0.1:{port}/metrics"
        for i in range(3):
            tel.observe_event(command_started("s", f"c{i}", 1))
            tel.observe_event(command_result("s", f"c{i}", 2))
        tel.force_flush()
        status, ctype, body = _get(ep.url)
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        fams = _parse(body)
        (count,) = [s for s in fams["llmgine_command_duration_seconds"].samples
                    if s.name.endswith("_count")]
        assert count.value == 3
        assert fams["llmgine_observability_events"].type == "counter"
        # Served from its own daemon thread, on localhost unless told otherwise.
        assert ep._thread.daemon and ep._thread.is_alive()
        assert ep._thread is not threading.current_thread()
        assert ep.host == "127.0.0.1"
    finally:
        tel.shutdown()
    with pytest.raises(OSError):
        _get(f"http://127.0.0.1:{port}/metrics")
    with socket.socket() as s:  # no listener left (TIME_WAIT connections may remain)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_port_zero_picks_a_free_port_and_host_can_be_set(tmp_path) -> None:
    tel = configure(set_global=False, console=False, output_dir=tmp_path,
                    prometheus_port=0, prometheus_host="localhost")
    try:
        assert tel.prometheus_endpoint.port > 0
        assert _get(tel.prometheus_endpoint.url)[0] == 200
    finally:
        tel.shutdown()


@pytest.mark.parametrize("raw", ["-1", "65536", "http", "8.5"])
def test_bad_port_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="LLMGINE_OTEL_PROMETHEUS_PORT"):
        ObservabilityConfig.from_env({"LLMGINE_OTEL_PROMETHEUS_PORT": raw})


def test_a_port_in_use_is_a_config_error_at_setup(tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=r"LLMGINE_OTEL_PROMETHEUS_PORT.*cannot be served"):
            configure(set_global=False, console=False, output_dir=tmp_path,
                      prometheus_port=port)


def test_empty_host_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="LLMGINE_OTEL_PROMETHEUS_HOST"):
        ObservabilityConfig(prometheus_port=9464, prometheus_host=" ")
