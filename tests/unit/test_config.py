"""Bad settings raise ConfigError naming the variable and the allowed values, from the
environment and from keyword arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmgine_otel import configure
from llmgine_otel.config import CaptureMode, ConfigError, ObservabilityConfig

BAD_ENV = [
    ("LLMGINE_OBSERVABILITY_SAMPLE_RATE", "2.0", "between 0.0 and 1.0"),
    ("LLMGINE_OBSERVABILITY_SAMPLE_RATE", "nan", "between 0.0 and 1.0"),
    ("LLMGINE_OBSERVABILITY_SAMPLE_RATE", "half", "a number"),
    ("LLMGINE_OBSERVABILITY_QUEUE_SIZE", "abc", "whole number"),
    ("LLMGINE_OBSERVABILITY_QUEUE_SIZE", "0", ">= 1"),
    ("LLMGINE_OBSERVABILITY_WORKERS", "1000", "1 to 64"),
    ("LLMGINE_OBSERVABILITY_BACK_PRESSURE", "drop_random", "drop_oldest, drop_newest, adaptive"),
    ("LLMGINE_OBSERVABILITY_ENABLED", "maybe", "true/false"),
    ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "ALL",
     "NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url", "http://localhost:4317"),
    ("LLMGINE_OTEL_MAX_VALUE_LENGTH", "10", ">= 64"),
    ("LLMGINE_OTEL_MAX_OPEN_SPANS", "-1", ">= 1"),
    ("LLMGINE_OTEL_MAX_SPAN_AGE", "0", "> 0"),
    ("LLMGINE_OTEL_SHUTDOWN_TIMEOUT", "inf", "> 0"),
    ("LLMGINE_OTEL_SHUTDOWN_TIMEOUT", "-3", "> 0"),
    ("LLMGINE_OTEL_LOG_SAMPLE_RATES", "ChunkEvent", "EventType=rate"),
    ("LLMGINE_OTEL_LOG_SAMPLE_RATES", "ChunkEvent=7", "between 0.0 and 1.0"),
    ("LLMGINE_OTEL_STREAM_CHUNK_LOGS", "2", "true/false"),
    ("LLMGINE_OTEL_FLUSH_ON_SIGNAL", "sometimes", "true/false"),
    ("LLMGINE_OTEL_HANDLER_MAX_IN_FLIGHT", "0", ">= 1"),
    ("LLMGINE_OTEL_HANDLER_TIMEOUT", "0", "> 0"),
    ("LLMGINE_OTEL_HANDLER_TIMEOUT", "inf", "finite"),
    ("LLMGINE_OTEL_TRACE_PER", "request", "command, session"),
]


@pytest.mark.parametrize("var, value, allowed", BAD_ENV)
def test_bad_env_value_names_variable_and_allowed(var, value, allowed):
    with pytest.raises(ConfigError) as info:
        ObservabilityConfig.from_env(env={var: value})
    msg = str(info.value)
    assert var in msg and allowed in msg, msg


BAD_KWARGS = [
    ("sample_rate", 2.0, "between 0.0 and 1.0"),
    ("sample_rate", True, "between 0.0 and 1.0"),
    ("queue_size", "abc", "whole number"),
    ("queue_size", 1.5, "whole number"),
    ("num_workers", 0, ">= 1"),
    ("back_pressure_strategy", "fifo", "drop_oldest, drop_newest, adaptive"),
    ("capture_content", "everything", "NO_CONTENT"),
    ("capture_content", 3, "NO_CONTENT"),
    ("enabled", "yes please", "true or false"),
    ("endpoint", "localhost", "host:port"),
    ("service_name", "", "non-empty"),
    ("max_span_age_s", float("nan"), "> 0"),
    ("shutdown_timeout_s", float("inf"), "> 0"),
    ("log_sample_rates", {"X": -1}, "between 0.0 and 1.0"),
    ("redact", "not callable", "callable"),
    ("trace_per", "trace", "command, session"),
    ("trace_per", None, "command, session"),
]


@pytest.mark.parametrize("name, value, allowed", BAD_KWARGS)
def test_bad_kwarg_names_setting_and_allowed(name, value, allowed):
    for build in (lambda: ObservabilityConfig(**{name: value}),
                  lambda: ObservabilityConfig.from_env(env={}, **{name: value}),
                  lambda: configure(set_global=False, **{name: value})):
        with pytest.raises(ConfigError) as info:
            build()
        msg = str(info.value)
        assert name in msg and allowed in msg, msg


def test_unknown_setting_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        ObservabilityConfig.from_env(env={}, sample_rat=0.5)
    assert "sample_rat" in str(info.value) and "sample_rate" in str(info.value)


def test_env_then_overrides():
    env = {"LLMGINE_OBSERVABILITY_QUEUE_SIZE": " 500 ", "OTEL_SERVICE_NAME": "svc",
           "LLMGINE_OBSERVABILITY_SAMPLE_RATE": "0.25", "LLMGINE_OTEL_CONSOLE": "off",
           "LLMGINE_OTEL_EXCLUDE_EVENTS": "A, B,,", "LLMGINE_OTEL_DIR": "/tmp/x",
           "LLMGINE_OTEL_LOG_SAMPLE_RATES": "A=0.5,B=1",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
           "LLMGINE_OBSERVABILITY_WORKERS": ""}
    c = ObservabilityConfig.from_env(env=env, queue_size=700)
    assert c.queue_size == 700 and c.service_name == "svc" and c.sample_rate == 0.25
    assert c.console is False and c.exclude_events == ("A", "B")
    assert c.output_dir == Path("/tmp/x") and c.log_sample_rates == {"A": 0.5, "B": 1.0}
    assert c.endpoint == "http://collector:4317" and c.num_workers == 1
    assert c.describe()["capture_content"] == "NO_CONTENT"


@pytest.mark.parametrize("raw, mode", [
    ("", CaptureMode.NO_CONTENT), ("false", CaptureMode.NO_CONTENT),
    ("TRUE", CaptureMode.SPAN_AND_EVENT), ("1", CaptureMode.SPAN_AND_EVENT),
    ("event_only", CaptureMode.EVENT_ONLY), (" SPAN_ONLY ", CaptureMode.SPAN_ONLY),
])
def test_capture_mode_parse(raw, mode):
    assert CaptureMode.parse(raw) is mode


@pytest.mark.parametrize("value, mode", [
    ("SPAN_ONLY", CaptureMode.SPAN_ONLY), ("true", CaptureMode.SPAN_AND_EVENT),
    (True, CaptureMode.SPAN_AND_EVENT), (False, CaptureMode.NO_CONTENT),
])
def test_capture_mode_from_kwargs_accepts_the_env_spellings(value, mode):
    assert ObservabilityConfig(capture_content=value).capture_content is mode


def test_with_changes_validates():
    c = ObservabilityConfig()
    assert c.with_changes(queue_size=5).queue_size == 5
    with pytest.raises(ConfigError):
        c.with_changes(queue_size=0)


def test_trace_shape_default_and_environment():
    """One trace per command unless told otherwise (README, "Trace shapes")."""
    assert ObservabilityConfig().trace_per == "command"
    assert ObservabilityConfig.from_env(env={}).trace_per == "command"
    assert ObservabilityConfig.from_env(
        env={"LLMGINE_OTEL_TRACE_PER": " Session "}).trace_per == "session"
