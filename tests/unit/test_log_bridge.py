"""The logging bridge's guards, in process (the end-to-end case, a warning inside a command
handler arriving at the Collector with the command span's ids, is in
tests/llmgine/test_app_providers.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider

from llmgine_otel import log_bridge


@pytest.fixture
def bridge() -> Iterator[tuple[Any, InMemoryLogRecordExporter]]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    root.handlers = [h for h in root.handlers if not log_bridge._is_otel_handler(h)]
    handler = log_bridge.attach(provider)
    assert handler is not None
    yield handler, exporter
    log_bridge.detach(handler)
    root.handlers, root.level = saved
    provider.shutdown()


def bodies(exporter: InMemoryLogRecordExporter) -> list[Any]:
    return [d.log_record.body for d in exporter.get_finished_logs()]


def test_app_records_carry_the_current_span(bridge: Any) -> None:
    _, exporter = bridge
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("t")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("app").warning("inside %s", "work")
    logging.getLogger("app").warning("outside")
    records = [d.log_record for d in exporter.get_finished_logs()]
    assert [r.body for r in records] == ["inside work", "outside"]
    ctx = span.get_span_context()
    assert (records[0].trace_id, records[0].span_id) == (ctx.trace_id, ctx.span_id)
    assert records[1].trace_id in (0, None)


@pytest.mark.parametrize("name", ["llmgine_otel", "llmgine_otel.pipeline", "opentelemetry",
                                  "opentelemetry.exporter.otlp.proto.http.trace_exporter"])
def test_own_and_sdk_records_never_loop_into_export(bridge: Any, name: str) -> None:
    _, exporter = bridge
    logging.getLogger(name).error("Failed to export batch")
    logging.getLogger(name + "x" if "." not in name else "app").error("kept")
    assert bodies(exporter) == ["kept"]


def test_records_logged_while_an_export_runs_are_not_exported(bridge: Any) -> None:
    _, exporter = bridge
    with suppress_instrumentation():  # what the SDK's batch processors set around export
        logging.getLogger("urllib3.connectionpool").warning("Starting new HTTP connection")
    assert bodies(exporter) == []


def test_a_record_logged_from_inside_the_handler_is_dropped(bridge: Any,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    _handler, exporter = bridge
    original = log_bridge.LoggingHandler.emit

    def noisy(self: Any, record: logging.LogRecord) -> None:
        logging.getLogger("app.inner").error("logged during emit")  # would recurse
        original(self, record)

    monkeypatch.setattr(log_bridge.LoggingHandler, "emit", noisy)
    logging.getLogger("app").error("outer")
    assert bodies(exporter) == ["outer"]


def test_basic_config_after_attach_still_configures_and_keeps_the_bridge(bridge: Any) -> None:
    handler, exporter = bridge
    root = logging.getLogger()
    others = [h for h in root.handlers if h is not handler]
    for h in others:
        root.removeHandler(h)
    try:
        logging.basicConfig(level=logging.INFO)  # a no-op if the bridge counted as a handler
        assert root.level == logging.INFO
        assert handler in root.handlers
        assert any(type(h) is logging.StreamHandler for h in root.handlers)
        logging.getLogger("app").info("info now passes")
        assert "info now passes" in bodies(exporter)
    finally:
        for h in root.handlers[:]:
            if h is not handler:
                root.removeHandler(h)
        for h in others:
            root.addHandler(h)


def test_no_bridge_beside_another_otel_handler_and_a_new_one_replaces_ours(
        bridge: Any) -> None:
    import warnings

    from opentelemetry.sdk._logs import LoggingHandler

    handler, _ = bridge
    newer = log_bridge.attach(LoggerProvider(shutdown_on_exit=False))
    root = logging.getLogger()
    assert newer is not None and newer in root.handlers and handler not in root.handlers
    log_bridge.detach(newer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs = LoggingHandler(logger_provider=LoggerProvider(shutdown_on_exit=False))
    root.addHandler(theirs)
    try:
        assert log_bridge.attach(LoggerProvider(shutdown_on_exit=False)) is None
    finally:
        root.removeHandler(theirs)


def test_configure_attaches_and_shutdown_detaches(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Any) -> None:
    from llmgine_otel.telemetry import Telemetry, _set_current, configure, get_telemetry

    monkeypatch.setattr("llmgine_otel.telemetry._set_globals", lambda tel: None)
    previous = get_telemetry()
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [h for h in root.handlers
                                           if not log_bridge._is_otel_handler(h)])
    try:
        for value, attached in (("false", False), ("", True)):
            monkeypatch.setenv("OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED", value)
            tel: Telemetry = configure(console=False, output_dir=tmp_path)
            assert (tel.log_bridge in root.handlers) is attached
            assert (tel.log_bridge is not None) is attached
            tel.shutdown()
            assert not [h for h in root.handlers if isinstance(h, log_bridge.BridgeHandler)]
    finally:
        _set_current(previous)
