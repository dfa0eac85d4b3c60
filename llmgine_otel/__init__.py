"""llmgine-otel: llmgine bus events as OpenTelemetry spans, log records and metrics.

Quick start::

    import llmgine_otel
    telemetry = llmgine_otel.configure()          # reads OTEL_* / LLMGINE_* variables
    bus = MessageBus(observability=telemetry.manager)

or, with no code change, ``opentelemetry-instrument python app.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmgine_otel.config import CaptureMode, ConfigError, ObservabilityConfig
from llmgine_otel.events import (
    AgentInvocationFinishedEvent,
    AgentInvocationStartedEvent,
    LLMCallFinishedEvent,
    LLMCallStartedEvent,
    LLMStreamChunkEvent,
    OtelEvent,
    ToolExecutionFinishedEvent,
    ToolExecutionStartedEvent,
)
from llmgine_otel.manager import (
    AsyncObservabilityHandler,
    ObservabilityHandler,
    ObservabilityManager,
)
from llmgine_otel.span_attributes import span_attributes
from llmgine_otel.telemetry import ShutdownReport, Telemetry, configure, get_telemetry
from llmgine_otel.translate import OTelHandler

if TYPE_CHECKING:
    from llmgine_otel.instrument import LLMgineInstrumentor

__all__ = [
    "AgentInvocationFinishedEvent",
    "AgentInvocationStartedEvent",
    "AsyncObservabilityHandler",
    "CaptureMode",
    "ConfigError",
    "LLMCallFinishedEvent",
    "LLMCallStartedEvent",
    "LLMStreamChunkEvent",
    "LLMgineInstrumentor",
    "OTelHandler",
    "ObservabilityConfig",
    "ObservabilityHandler",
    "ObservabilityManager",
    "OtelEvent",
    "ShutdownReport",
    "Telemetry",
    "ToolExecutionFinishedEvent",
    "ToolExecutionStartedEvent",
    "configure",
    "get_telemetry",
    "span_attributes",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The instrumentor pulls in opentelemetry-instrumentation and wrapt: load it on use.
    if name == "LLMgineInstrumentor":
        from llmgine_otel.instrument import LLMgineInstrumentor

        return LLMgineInstrumentor
    raise AttributeError(name)
