"""Event classes for what llmgine 0.0.1 cannot express: LLM calls, streaming chunks, tool
executions with a start and an end, agents.

They carry the same four base fields as ``llmgine.messages.events.Event`` (event_id,
timestamp, metadata, session_id) so they can be published on llmgine's MessageBus and are
read the same way, but they do not import llmgine: this package works without it.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "AgentInvocationFinishedEvent",
    "AgentInvocationStartedEvent",
    "LLMCallFinishedEvent",
    "LLMCallStartedEvent",
    "LLMStreamChunkEvent",
    "OtelEvent",
    "ToolExecutionFinishedEvent",
    "ToolExecutionStartedEvent",
]


def _new_id() -> str:
    return str(uuid.uuid4())


def _now() -> str:
    return datetime.now().isoformat()


@dataclass
class OtelEvent:
    """Base of this package's events; field-compatible with llmgine's ``Event``."""

    event_id: str = field(default_factory=_new_id)
    timestamp: str = field(default_factory=_now)
    metadata: dict[str, Any] = field(default_factory=dict)
    session_id: str = "BUS"

    def to_dict(self) -> dict[str, Any]:
        """Fields as a dict, like llmgine's ``Event.to_dict``."""
        return asdict(self)


@dataclass
class LLMCallStartedEvent(OtelEvent):
    """An LLM request was sent. ``call_id`` links it to its finish event."""

    call_id: str = field(default_factory=_new_id)
    model: str = ""
    provider: str = ""
    """``gen_ai.provider.name``: openai, anthropic, aws.bedrock, gcp.gemini, ..."""
    operation: str = "chat"
    command_id: str | None = None
    """The command this call belongs to; default: the innermost open command of the session."""
    agent_invocation_id: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop_sequences: list[str] | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    choice_count: int | None = None
    stream: bool | None = None
    server_address: str | None = None
    server_port: int | None = None
    # Content: recorded only when content capture is on.
    messages: list[Any] | None = None
    system_instructions: Any = None
    tool_definitions: list[Any] | None = None


@dataclass
class LLMStreamChunkEvent(OtelEvent):
    """One streamed chunk arrived; folded into the LLM span (count, first/last chunk time)."""

    call_id: str = ""
    index: int | None = None
    content: Any = None


@dataclass
class LLMCallFinishedEvent(OtelEvent):
    """An LLM call ended, with its response and usage, or with ``error``."""

    call_id: str = ""
    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: list[str] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None
    time_to_first_chunk: float | None = None
    """Seconds from request to the first streamed chunk."""
    chunk_count: int | None = None
    server_address: str | None = None
    server_port: int | None = None
    """Where the request went, when only the response says (it overrides the start's)."""
    error: BaseException | str | None = None
    error_type: str | None = None
    # Content: recorded only when content capture is on.
    output_messages: list[Any] | None = None


@dataclass
class AgentInvocationStartedEvent(OtelEvent):
    """An agent started working (``invoke_agent`` span)."""

    invocation_id: str = field(default_factory=_new_id)
    agent_name: str = ""
    agent_id: str | None = None
    agent_description: str | None = None
    command_id: str | None = None


@dataclass
class AgentInvocationFinishedEvent(OtelEvent):
    """An agent finished, successfully or with ``error``."""

    invocation_id: str = ""
    error: BaseException | str | None = None
    error_type: str | None = None


@dataclass
class ToolExecutionStartedEvent(OtelEvent):
    """A tool started running (``execute_tool`` span). ``tool_call_id`` is the model's id of
    the call; the span is keyed by it within the session, so an app that also publishes
    llmgine's ``ToolExecuteResultEvent`` for the same call gets one span, not two."""

    tool_call_id: str = field(default_factory=_new_id)
    tool_name: str = ""
    tool_type: str = "function"
    tool_description: str | None = None
    command_id: str | None = None
    # Content: recorded only when content capture is on.
    arguments: Any = None


@dataclass
class ToolExecutionFinishedEvent(OtelEvent):
    """A tool finished, with its result, or with ``error`` (raised, timed out, invalid
    arguments, or an error string the tool manager returned instead of raising)."""

    tool_call_id: str = ""
    error: BaseException | str | None = None
    error_type: str | None = None
    # Content: recorded only when content capture is on.
    result: Any = None
