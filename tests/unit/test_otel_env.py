"""The standard OTEL_* variables as read by otel_env: the SDK's precedence, this package's
defaults, and a ConfigError naming the variable for every value it cannot use. (What each
variable does to what arrives is tested against the real Collector in
tests/e2e/test_otel_switches.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmgine_otel.config import ConfigError
from llmgine_otel.otel_env import EMBEDDED, GRPC, HTTP, read, resource


def plan(env: dict[str, str], **kw: object):
    return read(env=env, **kw)  # type: ignore[arg-type]


def test_nothing_set_is_the_embedded_default_for_every_signal() -> None:
    p = plan({})
    for s in ("traces", "logs", "metrics"):
        assert p.signals[s].exporters.value == (EMBEDDED,)
    assert p.sdk_disabled.value is False and p.log_bridge.value is True
    assert p.log_bridge.source == "default"


def test_general_endpoint_sends_every_signal_over_grpc_by_default() -> None:
    p = plan({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"})
    for s in ("traces", "logs", "metrics"):
        sig = p.signals[s]
        assert sig.exporters.value == (GRPC,)
        assert sig.endpoint.value == "http://c:4317"
        assert sig.endpoint.source == "OTEL_EXPORTER_OTLP_ENDPOINT"
        assert sig.protocol.source == "default"


def test_http_appends_the_signal_path_to_the_general_endpoint_only() -> None:
    p = plan({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4318/otlp/",
              "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
              "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "https://l:9999/custom"})
    assert p.signals["traces"].endpoint.value == "https://c:4318/otlp/v1/traces"
    assert p.signals["metrics"].endpoint.value == "https://c:4318/otlp/v1/metrics"
    assert p.signals["logs"].endpoint.value == "https://l:9999/custom"  # as given
    assert p.signals["traces"].exporters.value == (HTTP,)


def test_per_signal_endpoint_alone_sends_that_signal_only() -> None:
    p = plan({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4317"})
    assert p.signals["traces"].exporters.value == (GRPC,)
    assert p.signals["logs"].exporters.value == (EMBEDDED,)
    assert p.signals["metrics"].exporters.value == (EMBEDDED,)


def test_per_signal_protocol_beats_the_general_one() -> None:
    p = plan({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
              "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
              "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf"})
    assert p.signals["traces"].exporters.value == (GRPC,)
    assert p.signals["logs"].exporters.value == (HTTP,)
    assert p.signals["logs"].protocol.source == "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"


def test_exporter_variables_choose_and_default_endpoints_follow_the_protocol() -> None:
    p = plan({"OTEL_TRACES_EXPORTER": "otlp,console", "OTEL_LOGS_EXPORTER": "none",
              "OTEL_METRICS_EXPORTER": "otlp_proto_http"})
    assert p.signals["traces"].exporters.value == (GRPC, "console")
    assert p.signals["traces"].endpoint.value == "http://localhost:4317"
    assert p.signals["logs"].exporters.value == ()
    assert p.signals["metrics"].exporters.value == (HTTP,)
    assert p.signals["metrics"].endpoint.value == "http://localhost:4318/v1/metrics"


def test_a_protocol_variable_decides_every_otlp_exporter_name_as_in_the_sdk() -> None:
    p = plan({"OTEL_TRACES_EXPORTER": "otlp_proto_grpc",
              "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert p.signals["traces"].exporters.value == (HTTP,)


def test_arguments_count_as_arguments() -> None:
    p = read("http://arg:4317", protocol="http/protobuf", env={
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    t = p.signals["traces"]
    assert (t.endpoint.value, t.endpoint.source) == ("http://arg:4317/v1/traces", "argument")
    assert (t.protocol.value, t.protocol.source) == ("http/protobuf", "argument")


def test_effective_options_per_signal_first(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    p = plan({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4317",
              "OTEL_EXPORTER_OTLP_TIMEOUT": "3", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1.5",
              "OTEL_EXPORTER_OTLP_CERTIFICATE": str(ca),
              "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20x"})
    t = p.signals["traces"].options
    assert t["timeout"].value == 1.5 and t["timeout"].source.endswith("TRACES_TIMEOUT")
    assert p.signals["logs"].options["timeout"].value == 3.0
    assert t["certificate"].value == str(ca)
    assert t["headers"].value == "set"  # never the secret itself


def test_grpc_exporters_get_the_tls_files_option_by_option(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK's gRPC exporters would take a signal's client key and certificate only with
    # that signal's CA variable; they get credentials made from the files as the effective
    # options say (each per signal first). A configured SDK credential provider decides alone.
    import os

    from grpc import Compression

    from llmgine_otel.cli import otlp_client
    from llmgine_otel.exporters.build import grpc_kwargs

    for k in list(os.environ):
        if k.startswith(("OTEL_EXPORTER_OTLP_", "OTEL_PYTHON_EXPORTER_OTLP_")):
            monkeypatch.delenv(k)
    monkeypatch.setattr(otlp_client, "grpc_credentials", lambda *files: files)
    assert grpc_kwargs("traces") == {}
    for var, value in {"CERTIFICATE": "ca", "CLIENT_KEY": "key", "CLIENT_CERTIFICATE": "crt",
                       "TRACES_CLIENT_KEY": "t-key", "TRACES_CLIENT_CERTIFICATE": "t-crt",
                       "METRICS_CERTIFICATE": "m-ca", "COMPRESSION": "gzip",
                       "LOGS_COMPRESSION": "none"}.items():
        monkeypatch.setenv(f"OTEL_EXPORTER_OTLP_{var}", value)
    assert grpc_kwargs("traces") == {"credentials": ("ca", "t-key", "t-crt")}
    assert grpc_kwargs("logs") == {"credentials": ("ca", "key", "crt"),
                                   "compression": Compression.NoCompression}
    assert grpc_kwargs("metrics") == {"credentials": ("m-ca", "key", "crt")}
    monkeypatch.setenv("OTEL_PYTHON_EXPORTER_OTLP_GRPC_TRACES_CREDENTIAL_PROVIDER", "mine")
    assert "credentials" not in grpc_kwargs("traces") and "credentials" in grpc_kwargs("logs")
    monkeypatch.setenv("OTEL_PYTHON_EXPORTER_OTLP_GRPC_CREDENTIAL_PROVIDER", "mine")
    assert "credentials" not in grpc_kwargs("logs")


BAD = [
    ("OTEL_SDK_DISABLED", "yes", "true, false"),
    ("OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED", "off", "true, false"),
    ("OTEL_TRACES_EXPORTER", "jaeger", "otlp"),
    ("OTEL_LOGS_EXPORTER", "otlp,none", "or none"),
    ("OTEL_METRICS_EXPORTER", "otlp,otlp_proto_http", "one OTLP exporter"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "http/protobuf"),
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "udp", "grpc, http/protobuf"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "not a url", "URL"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "seconds > 0"),
    ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "0", "seconds > 0"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "gzip, none"),
    ("OTEL_EXPORTER_OTLP_INSECURE", "maybe", "true, false"),
    ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem", "readable PEM"),
    ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/nonexistent/key.pem", "readable PEM"),
    ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/nonexistent/c.pem", "readable PEM"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "authorization", "key=value"),
]


@pytest.mark.parametrize(("var", "value", "allowed"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_value_is_a_config_error_naming_the_variable(var: str, value: str,
                                                           allowed: str) -> None:
    with pytest.raises(ConfigError) as err:
        plan({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", var: value})
    assert var in str(err.value) and allowed in str(err.value)


def test_configure_raises_the_same_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmgine_otel import configure

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin-typo")
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER"):
        configure(set_global=False)


def test_http_deflate_compression_is_allowed_on_http_only() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_COMPRESSION":
           "deflate", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    assert plan(env).signals["traces"].options["compression"].value == "deflate"
    with pytest.raises(ConfigError, match="gzip, none"):
        plan({**env, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


@pytest.mark.parametrize(("env", "arg", "want"), [
    ({}, None, "llmgine"),
    ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,team=a"}, None, "from-attrs"),
    ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs", "OTEL_SERVICE_NAME": "svc"},
     None, "svc"),
    ({"OTEL_SERVICE_NAME": "svc"}, "from-code", "from-code"),
], ids=["default", "resource-attributes", "service-name-wins", "argument-wins"])
def test_service_name_precedence(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                 arg: str | None, want: str) -> None:
    for k in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert resource(arg).attributes["service.name"] == want


_PLUGIN = '''
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

SPANS = []
READERS = []


class SpanRecorder(SpanExporter):
    def export(self, spans):
        SPANS.extend(spans)
        return SpanExportResult.SUCCESS


class Reader(InMemoryMetricReader):
    def __init__(self):
        super().__init__()
        READERS.append(self)
'''


def test_installed_exporter_entry_points_are_used_as_the_sdk_does(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An exporter package's entry point (here a minimal installed distribution on sys.path):
    a span exporter, and a metric reader for metrics (as the SDK's configurator takes them)."""
    import importlib

    from llmgine_otel import configure
    from llmgine_otel.events import LLMCallFinishedEvent, LLMCallStartedEvent

    (tmp_path / "fake_llmgine_exporters.py").write_text(_PLUGIN)
    info = tmp_path / "fake_llmgine_exporters-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-llmgine-exporters\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[opentelemetry_traces_exporter]\nrecorder = fake_llmgine_exporters:SpanRecorder\n\n"
        "[opentelemetry_metrics_exporter]\npullreader = fake_llmgine_exporters:Reader\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_LOGS_EXPORTER"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "recorder")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "pullreader")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
    plugin = importlib.import_module("fake_llmgine_exporters")
    tel = configure(set_global=False, console=False, output_dir=tmp_path / "local")
    start = LLMCallStartedEvent(model="m", provider="openai")
    tel.observe_event(start)
    tel.observe_event(LLMCallFinishedEvent(call_id=start.call_id, input_tokens=1))
    (reader,) = plugin.READERS
    tel.force_flush()
    data = reader.get_metrics_data()
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics
             for m in sm.metrics}
    assert "llmgine.observability.events" in names
    tel.shutdown()
    assert [s.name for s in plugin.SPANS] == ["chat m"]
    assert not (tmp_path / "local").exists()
    with pytest.raises(ConfigError, match="recorder"):  # listed among the allowed names
        read(env={"OTEL_TRACES_EXPORTER": "recordr"})
