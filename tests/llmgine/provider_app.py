"""A small llmgine app for the provider and log tests, run as a subprocess (the OpenTelemetry
globals can be set once per process).

``APP_MODE``:

- ``plain``: no setup code at all (run it under ``opentelemetry-instrument``);
- ``app-providers``: the app sets its own SDK tracer, logger and meter providers (OTLP to
  ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``service.name`` = ``APP_SERVICE``) as the globals, as a
  hand-made setup (or Logfire, Langfuse, Traceloop) does, then
  ``LLMgineInstrumentor().instrument()``;
- ``explicit``: the app sets providers with ``service.name`` = ``APP_SERVICE-global`` as the
  globals and passes other ones (``APP_SERVICE``) as ``tracer_provider=`` /
  ``logger_provider=`` / ``meter_provider=``;
- ``configure-after``: the app sets its own global providers, then calls
  ``llmgine_otel.configure()`` and instruments.

The command handler makes a span with the app's tracer, logs a warning on the ``app`` logger
and publishes one LLM call. ``APP_LOG_LEVEL=DEBUG`` runs ``logging.basicConfig`` at DEBUG
first. Prints one JSON line of facts about the process.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from llmgine.bus.bus import MessageBus
from llmgine.messages.commands import Command, CommandResult
from opentelemetry import trace

MODE = os.environ.get("APP_MODE", "plain")
SERVICE = os.environ.get("APP_SERVICE", "provider-app")


@dataclass
class GreetCommand(Command):
    name: str = ""


def _providers(service: str) -> tuple[Any, Any, Any]:
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service})
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    lp = LoggerProvider(resource=resource)
    lp.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    mp = MeterProvider(resource=resource,
                       metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())])
    return tp, lp, mp


def setup() -> tuple[Any, ...]:
    if MODE == "plain":
        return ()
    from opentelemetry import _logs, metrics

    from llmgine_otel import LLMgineInstrumentor, configure

    own = _providers(SERVICE + "-global" if MODE == "explicit" else SERVICE)
    trace.set_tracer_provider(own[0])
    _logs.set_logger_provider(own[1])
    metrics.set_meter_provider(own[2])
    if MODE == "explicit":
        given = _providers(SERVICE)
        LLMgineInstrumentor().instrument(tracer_provider=given[0], logger_provider=given[1],
                                         meter_provider=given[2])
        return own + given
    if MODE == "configure-after":
        configure()
    LLMgineInstrumentor().instrument()
    return own


def facts() -> dict[str, Any]:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    from llmgine_otel import get_telemetry

    gc.collect()
    alive = gc.get_objects()
    return {
        "telemetry": type(get_telemetry()).__name__,
        "tracer_providers": sum(isinstance(o, TracerProvider) for o in alive),
        "logger_providers": sum(isinstance(o, LoggerProvider) for o in alive),
        "meter_providers": sum(isinstance(o, MeterProvider) for o in alive),
        "local_dir": os.path.exists("llmgine-telemetry"),
    }


async def main() -> None:
    if os.environ.get("APP_LOG_LEVEL"):
        logging.basicConfig(level=os.environ["APP_LOG_LEVEL"])
    providers = setup()
    from llmgine_otel.events import LLMCallFinishedEvent, LLMCallStartedEvent

    bus = MessageBus()
    await bus.start()

    async def greet(cmd: Command) -> CommandResult:
        assert isinstance(cmd, GreetCommand)
        with trace.get_tracer("app").start_as_current_span("app work"):
            pass
        logging.getLogger("app").warning("greeting %s in %s", cmd.name, cmd.command_id)
        call = LLMCallStartedEvent(session_id=cmd.session_id, model="gpt-test",
                                   provider="openai")
        await bus.publish(call)
        await bus.publish(LLMCallFinishedEvent(session_id=cmd.session_id, call_id=call.call_id,
                                               input_tokens=3, output_tokens=5))
        return CommandResult(success=True, command_id=cmd.command_id, result="hi")

    logging.getLogger("app").warning("outside any command")
    try:
        async with bus.session("provider-session") as session:
            session.register_command_handler(GreetCommand, greet)  # type: ignore[arg-type]
            result = await session.execute_with_session(GreetCommand(name="Ada"))
            assert result.success, result
    finally:
        await bus.stop()
    print(json.dumps(facts()), flush=True)
    for p in providers:
        p.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
