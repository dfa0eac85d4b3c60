"""The mapping, as data: what each bus event becomes in OpenTelemetry.

``MAPPING`` is the one table; ``conventions/mapping.md`` is rendered from it
(``python -m llmgine_otel.mapping > conventions/mapping.md``) and a test fails when they
differ. Event classes are matched by name along the MRO, so a subclass maps like its base
and llmgine need not be importable. Field paths are ``a.b`` (attribute or dict key),
alternatives ``a|b`` (first non-empty), ``a:type`` (the value's class name) and ``=text``
(a constant).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

__all__ = ["KEPT_FINDINGS", "MAPPING", "SESSION_END_NAME", "TRACE_SHAPES", "Attr", "Content",
           "KeptFinding", "Rule", "Status", "TraceShape", "render_markdown"]

# Span families: which open-span table namespace a rule's key lives in.
FAMILIES = ("session", "command", "agent", "llm", "tool")
ACTIONS = ("start", "end", "instant", "exception", "chunk", "log")
LOG_SCOPES = ("event", "span")


@dataclass(frozen=True)
class Attr:
    """One span attribute taken from an event field (coerced to ``type``)."""

    name: str
    path: str
    type: str = "str"  # str | int | float | bool | str[]
    unset: tuple[str, ...] = ()
    """Values that mean "not set" (llmgine's ``BUS`` session is no session)."""


@dataclass(frozen=True)
class Content:
    """Prompt/completion/tool content: recorded only when capture is on (see README)."""

    name: str
    path: str
    shape: str = "raw"  # raw | messages (converted to the semconv {role, parts} shape)


@dataclass(frozen=True)
class Status:
    """How a rule decides ERROR: a truthy ``error`` field, or a false ``success`` field."""

    error: str = ""
    success: str = ""
    message: str = ""
    error_type: str = ""

    def describe(self) -> str:
        if self.error:
            return f"ERROR if `{self.error}` is set"
        if self.success:
            typed = (f"; `error.type` = the exception name `{self.error_type}` starts with"
                     if self.error_type else "")
            return f"ERROR if `{self.success}` is false (message `{self.message}`{typed})"
        return "unset"


@dataclass(frozen=True)
class Rule:
    """What one event type becomes. ``action``:

    - ``start``: open a span of ``family`` keyed by ``key``; ``end``: close it;
    - ``instant``: a span that starts and ends with this event;
    - ``exception``: an ``exception`` span event on the span of ``targets`` (first found);
    - ``chunk``: fold a streamed chunk into the open span (count and timing);
    - ``log``: only the log record (every event gets one in any case).
    """

    event: str
    action: str
    family: str = ""
    key: str = ""
    scope: str = ""
    """The key is unique only within this field's value (tool call ids come from the model
    and may repeat across sessions)."""
    name: str = ""
    kind: str = "INTERNAL"
    parents: tuple[tuple[str, str], ...] = ()
    """Explicit parents tried first: (family, field path of its id)."""
    parent_families: tuple[str, ...] = ()
    """Then the innermost open span of these families in the same session."""
    attributes: tuple[Attr, ...] = ()
    content: tuple[Content, ...] = ()
    status: Status = field(default_factory=Status)
    exception: str = ""
    """For ``exception``: the field holding the exception (or error text)."""
    metrics: tuple[str, ...] = ()
    derived: tuple[str, ...] = ()
    """Attributes computed by the translator (e.g. ``llmgine.cost.usd``)."""
    payload: tuple[str, ...] = ()
    """Fields left out of the log record body unless content capture reaches events."""
    log_event: str = ""
    """The log record's ``event_name``: an event defined in ``conventions/registry``
    (``llmgine.*``) or in the OpenTelemetry semantic conventions (``gen_ai.*``)."""
    log_scope: str = "event"
    """``event``: the record describes this bus event. ``span`` (end rules): it describes the
    operation the span stands for, as the conventions' event does: it also carries the span's
    attributes and, with content capture on events, the ``content`` of the span's start and end
    rules as structured attributes (the start's held until the end), never in a body."""
    note: str = ""


_NO_SESSION = ("BUS", "None")
_SESSION_ID = Attr("gen_ai.conversation.id", "session_id", unset=_NO_SESSION)
_LLMGINE_SESSION = Attr("llmgine.session.id", "session_id", unset=_NO_SESSION)
_OTEL_SESSION = Attr("session.id", "session_id", unset=_NO_SESSION)
"""The OpenTelemetry ``session.id`` on every span of a session, in both trace shapes: what
Jaeger's tag search and Tempo's TraceQL find a conversation by."""

MAPPING: tuple[Rule, ...] = (
    Rule(
        "SessionStartEvent", "start", "session", key="session_id", name="session",
        attributes=(_LLMGINE_SESSION, _SESSION_ID, _OTEL_SESSION),
        log_event="llmgine.session.start",
        note="New trace (root span), or a child of a `traceparent` found in `metadata`; open "
             "until the session ends (`session` shape) or ended at once (`command` shape, see "
             "*Trace shapes*).",
    ),
    Rule(
        "SessionEndEvent", "end", "session", key="session_id",
        status=Status(error="error"), log_event="llmgine.session.end",
        note="Ends the session span (`session` shape) or makes the `session end` span "
             "(`command` shape); ERROR with `error.type` when `error` is set.",
    ),
    Rule(
        "CommandStartedEvent", "start", "command", key="command.command_id",
        name="command {command:type}",
        parent_families=("command", "agent", "session"),
        attributes=(
            Attr("llmgine.command.id", "command.command_id"),
            Attr("llmgine.command.type", "command:type"),
            _LLMGINE_SESSION,
            _SESSION_ID,
            _OTEL_SESSION,
        ),
        payload=("command",), log_event="llmgine.command.start",
        note="Child of the calling command (traceparent in `command.metadata`); else child "
             "of the session (`session` shape) or root of its own trace linked to it "
             "(`command` shape).",
    ),
    Rule(
        "CommandResultEvent", "end", "command", key="command_result.command_id",
        status=Status(success="command_result.success", message="command_result.error"),
        metrics=("llmgine.command.duration",),
        payload=("command_result.result",), log_event="llmgine.command.result",
        note="Ends the command span; ERROR with `error.type` parsed from `error` on failure.",
    ),
    Rule(
        "EventHandlerFailedEvent", "exception",
        parents=(("command", "event.command.command_id"),
                 ("command", "event.command_result.command_id")),
        parent_families=("session",),
        exception="exception",
        attributes=(Attr("llmgine.handler.name", "handler"),
                    Attr("llmgine.handler.event_type", "event:type")),
        payload=("event",), log_event="llmgine.handler.failure",
        note="`exception` span event on the failed event's command span, else the session's "
             "(`command` shape: its span is ended already, the ERROR log record carries it).",
    ),
    Rule(
        "DeadLetterCommandEvent", "exception",
        parents=(("command", "command.command_id"),),
        parent_families=("session",),
        exception="error",
        attributes=(Attr("llmgine.command.id", "command.command_id"),
                    Attr("llmgine.command.attempts", "attempts", "int")),
        payload=("command",), log_event="llmgine.command.dead_letter",
        note="`exception` span event on the command's span (or the session's); ERROR log.",
    ),
    Rule(
        "ToolExecutionStartedEvent", "start", "tool", key="tool_call_id", scope="session_id",
        name="execute_tool {tool_name}",
        parent_families=("agent", "command", "session"),
        attributes=(
            Attr("gen_ai.operation.name", "=execute_tool"),
            Attr("gen_ai.tool.name", "tool_name"),
            Attr("gen_ai.tool.call.id", "tool_call_id"),
            Attr("gen_ai.tool.type", "tool_type"),
            Attr("gen_ai.tool.description", "tool_description"),
            _LLMGINE_SESSION,
            _OTEL_SESSION,
        ),
        content=(Content("gen_ai.tool.call.arguments", "arguments"),),
        payload=("arguments",), log_event="llmgine.tool.execution.start",
        note="Published by the ToolManager instrumentation as a tool starts; parent: the "
             "span current at the call (`traceparent` in `metadata`), else the innermost open "
             "agent/command/session.",
    ),
    Rule(
        "ToolExecutionFinishedEvent", "end", "tool", key="tool_call_id", scope="session_id",
        content=(Content("gen_ai.tool.call.result", "result"),),
        status=Status(error="error", error_type="error_type"),
        metrics=("llmgine.tool.duration",),
        payload=("result",), log_event="llmgine.tool.execution.end",
        note="Ends the tool span; ERROR when the tool raised, timed out, got invalid "
             "arguments or returned the tool manager's error string.",
    ),
    Rule(
        "ToolExecuteResultEvent", "instant", "tool", key="tool_call_id|event_id",
        scope="session_id",
        name="execute_tool {tool_name|tool_info.name|tool_info.function.name}",
        parent_families=("agent", "command", "session"),
        attributes=(
            Attr("gen_ai.operation.name", "=execute_tool"),
            Attr("gen_ai.tool.name", "tool_name|tool_info.name|tool_info.function.name"),
            Attr("gen_ai.tool.call.id", "tool_call_id"),
            Attr("gen_ai.tool.type", "tool_info.type|=function"),
            Attr("gen_ai.tool.description",
                 "tool_info.description|tool_info.function.description"),
            _LLMGINE_SESSION,
            _OTEL_SESSION,
        ),
        content=(Content("gen_ai.tool.call.arguments", "tool_args"),
                 Content("gen_ai.tool.call.result", "tool_result")),
        status=Status(success="execution_succeed", message="=tool execution failed",
                      error_type="tool_result"),
        metrics=("llmgine.tool.duration",),
        payload=("tool_args", "tool_result"), log_event="llmgine.tool.result",
        note="Starts at `metadata['llmgine.start_time']` when given, else at the event. "
             "No span when the same call's tool span is open or ended (the ToolManager "
             "instrumentation made it): log record only, counted `duplicate_end`.",
    ),
    Rule(
        "LLMCallStartedEvent", "start", "llm", key="call_id", name="{operation} {model}",
        kind="CLIENT",
        parents=(("agent", "agent_invocation_id"), ("command", "command_id")),
        parent_families=("agent", "command", "session"),
        attributes=(
            Attr("gen_ai.operation.name", "operation"),
            Attr("gen_ai.provider.name", "provider"),
            Attr("gen_ai.request.model", "model"),
            Attr("gen_ai.request.temperature", "temperature", "float"),
            Attr("gen_ai.request.top_p", "top_p", "float"),
            Attr("gen_ai.request.top_k", "top_k", "float"),
            Attr("gen_ai.request.max_tokens", "max_tokens", "int"),
            Attr("gen_ai.request.seed", "seed", "int"),
            Attr("gen_ai.request.stop_sequences", "stop_sequences", "str[]"),
            Attr("gen_ai.request.frequency_penalty", "frequency_penalty", "float"),
            Attr("gen_ai.request.presence_penalty", "presence_penalty", "float"),
            Attr("gen_ai.request.choice.count", "choice_count", "int"),
            Attr("gen_ai.request.stream", "stream", "bool"),
            Attr("server.address", "server_address"),
            Attr("server.port", "server_port", "int"),
            _SESSION_ID,
            _OTEL_SESSION,
        ),
        content=(Content("gen_ai.input.messages", "messages", "messages"),
                 Content("gen_ai.system_instructions", "system_instructions"),
                 Content("gen_ai.tool.definitions", "tool_definitions")),
        payload=("messages", "system_instructions", "tool_definitions"),
        log_event="llmgine.llm.call.start",
        note="GenAI inference span; parent: given agent/command, else innermost open one. "
             "`server.address`/`server.port`: the litellm instrumentation takes them from the "
             "call's `api_base` (or `base_url`, litellm's, the environment's, else the "
             "provider's public API); with `llm_call` they are what the caller passes "
             "(`server_address=`, `server_port=`), else absent.",
    ),
    Rule(
        "LLMStreamChunkEvent", "chunk", "llm", key="call_id",
        payload=("content",), log_event="llmgine.llm.call.chunk",
        note="No span: counted into the LLM span (chunk count, first/last chunk times); "
             "a log record only when `stream_chunk_logs` is on.",
    ),
    Rule(
        "LLMCallFinishedEvent", "end", "llm", key="call_id",
        attributes=(
            Attr("gen_ai.response.id", "response_id"),
            Attr("gen_ai.response.model", "response_model"),
            Attr("gen_ai.response.finish_reasons", "finish_reasons", "str[]"),
            Attr("gen_ai.usage.input_tokens", "input_tokens", "int"),
            Attr("gen_ai.usage.output_tokens", "output_tokens", "int"),
            Attr("gen_ai.usage.cache_read.input_tokens", "cache_read_input_tokens", "int"),
            Attr("gen_ai.usage.cache_creation.input_tokens", "cache_creation_input_tokens",
                 "int"),
            Attr("gen_ai.usage.reasoning.output_tokens", "reasoning_output_tokens", "int"),
            Attr("gen_ai.response.time_to_first_chunk", "time_to_first_chunk", "float"),
            Attr("llmgine.stream.chunk_count", "chunk_count", "int"),
            Attr("server.address", "server_address"),
            Attr("server.port", "server_port", "int"),
        ),
        content=(Content("gen_ai.output.messages", "output_messages", "messages"),),
        status=Status(error="error", error_type="error_type"),
        metrics=("gen_ai.client.operation.duration", "gen_ai.client.token.usage",
                 "gen_ai.client.operation.time_to_first_chunk"),
        derived=("llmgine.cost.usd",),
        payload=("output_messages",),
        log_event="gen_ai.client.inference.operation.details", log_scope="span",
        note="Ends the LLM span with response, usage and cost; ERROR when `error` is set.",
    ),
    Rule(
        "AgentInvocationStartedEvent", "start", "agent", key="invocation_id",
        name="invoke_agent {agent_name}",
        parents=(("command", "command_id"),),
        parent_families=("agent", "command", "session"),
        attributes=(
            Attr("gen_ai.operation.name", "=invoke_agent"),
            Attr("gen_ai.agent.name", "agent_name"),
            Attr("gen_ai.agent.id", "agent_id"),
            Attr("gen_ai.agent.description", "agent_description"),
            _SESSION_ID,
            _OTEL_SESSION,
        ),
        log_event="llmgine.agent.start",
        note="In-process agent: kind INTERNAL.",
    ),
    Rule(
        "AgentInvocationFinishedEvent", "end", "agent", key="invocation_id",
        status=Status(error="error", error_type="error_type"), log_event="llmgine.agent.end",
        note="Ends the agent span; ERROR when `error` is set.",
    ),
    Rule("ToolRegisterEvent", "log", payload=("tool_info",), log_event="llmgine.tool.register",
         note="Log record only."),
    Rule("ToolCompiledEvent", "log", payload=("tool_compiled_list",),
         log_event="llmgine.tool.compiled", note="Log record only."),
)

DEFAULT_RULE = Rule(
    "*", "log", log_event="llmgine.bus.event",
    note="Any other event: a log record whose body keeps ids, timestamps, numbers and "
         "booleans; other fields only when content capture reaches events.",
)


SESSION_SPANS = ("open", "marks")
UNDER_SESSION = ("child", "root")
SESSION_END_NAME = "session end"
"""The name of the span a session's end makes when its start is a mark (``marks``)."""


@dataclass(frozen=True)
class TraceShape:
    """How a session's spans are cut into traces (``LLMGINE_OTEL_TRACE_PER``). The rules above
    say what each event becomes; the shape says only where a span whose parent would be the
    session's span goes, and how long the session's own span stays open."""

    name: str
    session_span: str
    """``open``: the ``SessionStartEvent`` span stays open until ``SessionEndEvent`` ends it.
    ``marks``: it is ended at once (a mark of the session's start, exported at once, the link
    target of the session's traces); ``SessionEndEvent`` makes a span named
    ``SESSION_END_NAME`` at the end, in a trace of its own linked to that mark, with the end's
    status (ERROR and ``error.type`` when the session ended with an error)."""
    under_session: str
    """Where a span goes whose parent resolved to the session's span: ``child`` (under it), or
    ``root`` (the root of a trace of its own, with a span link to the session's span; it
    carries the session's ids and the attributes the session passes on). A calling command,
    an agent, or a ``traceparent`` from another process stay parents in both shapes."""
    traces: str
    """What a person sees in Jaeger or Tempo."""


TRACE_SHAPES: dict[str, TraceShape] = {s.name: s for s in (
    TraceShape(
        "command", session_span="marks", under_session="root",
        traces="One trace per command (with its LLM calls, tool runs and nested commands), "
               "plus a one-span trace for the session's start and one for its end; "
               "`session.id` groups them."),
    TraceShape(
        "session", session_span="open", under_session="child",
        traces="One trace per session: the session span is the root of every command, LLM "
               "call and tool run in it, and is exported when the session ends."),
)}


@dataclass(frozen=True)
class KeptFinding:
    """A Weaver live-check finding (level *improvement*) the package's telemetry still has,
    and why it is kept. tests/e2e/test_semconv.py fails on any finding not listed here, and on
    a listed one that no longer occurs."""

    finding: str
    """Weaver's finding id (``not_stable``, ``recommended_attribute_not_present``, ...)."""
    subject: str
    """The attribute key, metric name or event name it is about (``*`` matches any text)."""
    reason: str


KEPT_FINDINGS: tuple[KeptFinding, ...] = (
    KeptFinding(
        "not_stable", "gen_ai.*",
        "The GenAI conventions (attributes, metrics, the inference-details event) are all at "
        "*development* stability in v1.41.0: there is no stable name to use instead."),
    KeptFinding(
        "not_stable", "session.id",
        "The conventions' id of a session, on every span of one so that Jaeger's tag search "
        "and Tempo's TraceQL find a conversation in both trace shapes, is *development* in "
        "v1.41.0: there is no stable name for it."),
    KeptFinding(
        "not_stable", "user.id",
        "`llmgine_otel.span_attributes(user_id=...)` puts the conventions' `user.id` on every "
        "span of a session (the demo sets it); *development* in v1.41.0, no stable name."),
    KeptFinding(
        "not_stable", "llmgine.*",
        "This package's own names are *development* in conventions/registry until the "
        "package reaches 1.0 (they changed in this release to follow the conventions)."),
    KeptFinding(
        "recommended_attribute_not_present", "gen_ai.request.*",
        "Request parameters (temperature, top_p, max_tokens, stop sequences, penalties) are "
        "recorded when the request sets them; the apps' calls leave most to the provider's "
        "defaults, and the package does not invent the provider's default values."),
    KeptFinding(
        "recommended_attribute_not_present", "gen_ai.response.*",
        "A failed or abandoned call has no (complete) response (id, model, finish reasons); "
        "`gen_ai.response.time_to_first_chunk` is recommended only for streamed calls, which "
        "Weaver does not distinguish."),
    KeptFinding(
        "recommended_attribute_not_present", "gen_ai.usage.*",
        "Token counts the provider did not report: none for a failed call; cache and "
        "reasoning tokens only when the model used them."),
)


def _check_table() -> None:
    seen: set[str] = set()
    for rule in (*MAPPING, DEFAULT_RULE):
        assert rule.event not in seen, f"duplicate rule for {rule.event}"
        seen.add(rule.event)
        assert rule.action in ACTIONS, rule
        assert not rule.family or rule.family in FAMILIES, rule
        assert rule.action in ("log", "exception") or (rule.family and rule.key), rule
        assert rule.log_event, (f"{rule.event}: give the rule a log_event (an event defined "
                                "in conventions/registry/events.yaml or otel.yaml)")
        assert rule.log_scope in LOG_SCOPES, rule
        assert rule.log_scope == "event" or rule.action == "end", rule
    for shape in TRACE_SHAPES.values():
        assert shape.session_span in SESSION_SPANS, shape
        assert shape.under_session in UNDER_SESSION, shape


def held_content_families() -> frozenset[str]:
    """Span families whose end record is ``log_scope="span"``: their start rule's content is
    held for that record instead of going in the start's own record."""
    return frozenset(r.family for r in MAPPING if r.log_scope == "span")


_check_table()


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _attr_cell(rule: Rule) -> str:
    parts = [f"`{a.name}` ← `{a.path}`" + ("" if a.type == "str" else f" ({a.type})")
             + (f" (unset when {'/'.join(a.unset)})" if a.unset else "")
             for a in rule.attributes]
    parts += [f"`{d}` (derived)" for d in rule.derived]
    return "<br>".join(parts)


def _parent_cell(rule: Rule) -> str:
    if rule.action in ("end", "chunk", "log"):
        return ""
    bits = [f"{fam} `{path}`" for fam, path in rule.parents]
    if rule.parent_families:
        bits.append("innermost open " + "/".join(rule.parent_families))
    return " → ".join(bits) or "root (or remote `traceparent`)"


def _log_cell(rule: Rule) -> str:
    """What a log record carries beyond ``llmgine.event.type`` / ``llmgine.session.id``."""
    if rule.log_scope == "span":
        start = next((r for r in MAPPING if r.family == rule.family and r.action == "start"),
                     None)
        held = (*(start.content if start is not None else ()), *rule.content)
        content = ", ".join(f"`{c.name}`" for c in held)
        return ("the span's attributes (start and end); with content capture on events, "
                f"{content} as structured values (always out of the body)")
    if rule.action == "start" and rule.family in held_content_families():
        end = next(r for r in MAPPING if r.family == rule.family and r.log_scope == "span")
        return (f"nothing more: its content goes in the `{end.log_event}` record, never in "
                "this body")
    return ""


def _row(*cells: str) -> str:
    """A markdown table row; pipes inside cells (path alternatives) are escaped."""
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def render_markdown() -> str:
    """conventions/mapping.md, from ``MAPPING``."""
    lines = [
        "# Event mapping",
        "",
        "Generated from `llmgine_otel/mapping.py` by `python -m llmgine_otel.mapping`;",
        "a test fails when this file and the code differ. Do not edit by hand.",
        "",
        "Event classes match by name along the MRO (a subclass maps like its base).",
        "Every event also becomes one LogRecord (see *Log records*). Span times come from",
        "the events' `timestamp`.",
        "",
        "## Spans",
        "",
        "| Event | Action | Span (family, key) | Name | Kind | Parent | Status |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in (*MAPPING, DEFAULT_RULE):
        fam = f"{r.family} by `{r.key}`" if r.family else ""
        if r.scope:
            fam += f" within `{r.scope}`"
        lines.append(_row(
            f"`{r.event}`", r.action, fam, _code(r.name),
            r.kind if r.action in ("start", "instant") else "", _parent_cell(r),
            r.status.describe() if r.action in ("end", "instant") else ""))
    lines += ["", "## Trace shapes", "", SHAPES.strip(), "",
              "| `LLMGINE_OTEL_TRACE_PER` | Session span | Span whose parent would be the "
              "session | What a backend shows |", "|---|---|---|---|"]
    for shape in TRACE_SHAPES.values():
        lines.append(_row(f"`{shape.name}`", _SESSION_SPAN_TEXT[shape.session_span],
                          _UNDER_SESSION_TEXT[shape.under_session], shape.traces))
    lines += ["", "## Attributes, content, metrics", "",
              "Metrics are recorded from each rule's finished span on the export thread "
              "(`metrics.SpanMetrics`), so they cost the bus nothing and describe exported "
              "spans.",
              "",
              "| Event | Attributes | Content (opt-in) | Metrics | Notes |",
              "|---|---|---|---|---|"]
    for r in (*MAPPING, DEFAULT_RULE):
        content = "<br>".join(f"`{c.name}` ← `{c.path}`"
                              + (" (semconv messages)" if c.shape == "messages" else "")
                              for c in r.content)
        metrics = "<br>".join(f"`{m}`" for m in r.metrics)
        lines.append(_row(f"`{r.event}`", _attr_cell(r), content, metrics, r.note))
    lines += ["", "## Log records", "", LOG_RECORDS.strip(), "",
              "| Event | Event name | Also carries | Body leaves out |",
              "|---|---|---|---|"]
    for r in (*MAPPING, DEFAULT_RULE):
        lines.append(_row(f"`{r.event}`", f"`{r.log_event}`", _log_cell(r),
                          ", ".join(f"`{p}`" for p in r.payload)))
    lines += ["", "## Where the events come from, with no code", "", SOURCES.strip()]
    lines += ["", "## Outcomes for out-of-order and missing events", "",
              OUTCOMES.strip(), ""]
    lines += ["## Semantic-convention findings kept", "", FINDINGS.strip(), "",
              "| Finding | About | Why it is kept |", "|---|---|---|"]
    for f in KEPT_FINDINGS:
        lines.append(_row(f"`{f.finding}`", f"`{f.subject}`", f.reason))
    lines.append("")
    return "\n".join(lines)


_SESSION_SPAN_TEXT = {
    "open": "`session`, open from `SessionStartEvent` to `SessionEndEvent` (ERROR with "
            "`error.type` when the end has an `error`)",
    "marks": f"`session`, ended at once (the start); `{SESSION_END_NAME}` at "
             "`SessionEndEvent`, a trace of its own linked to it (ERROR with `error.type` "
             "when the end has an `error`)",
}
_UNDER_SESSION_TEXT = {
    "child": "its child",
    "root": "the root of a trace of its own, with a span link to the session's `session` span",
}

SHAPES = """
`LLMGINE_OTEL_TRACE_PER` (default `command`) chooses how a session's spans are cut into
traces; the rules below are the same in both. The *Parent* column says where a span goes
when its parent resolves to a command, agent, remote `traceparent` or the session: only the
last case differs between the shapes. Every span of a session carries `session.id` and the
attributes the session passes on (`user.id` and the app's, `llmgine_otel.span_attributes`),
in both shapes. Head sampling (`LLMGINE_OBSERVABILITY_SAMPLE_RATE`) decides once per
session: a trace linked to the session's span takes that span's decision, so a session's
traces are kept or dropped together, each whole with its log records.
"""

SOURCES = """
llmgine 0.0.1 publishes sessions, commands and handler failures itself. `LLMgineInstrumentor`
(and so `opentelemetry-instrument`) publishes the rest on the bus of the command that runs
the call, so every observability handler and subscriber of that bus sees them; the
translator gets them first, so their span is the current span while the call runs (spans of
HTTP client and SDK instrumentations made during it are its children).

| Events | Published by | With no code for |
|---|---|---|
| `LLMCallStartedEvent`, `LLMStreamChunkEvent` (only with `chunk_events`), `LLMCallFinishedEvent` | `llmgine_otel.litellm_calls` | litellm `completion`, `acompletion`, `embedding`, `aembedding`, streams included (the span ends when the stream is exhausted, closed, or dropped unfinished: `error.type` `stream_abandoned`); any other client: `llmgine_otel.llm.llm_call` |
| `ToolExecutionStartedEvent`, `ToolExecutionFinishedEvent` | `llmgine_otel.tool_runs` | llmgine `ToolManager.execute_tool_call` (every tool it runs; sync tools run in its thread pool with the tool span current) |
| `AgentInvocationStartedEvent`, `AgentInvocationFinishedEvent` | the app | (no agent abstraction in llmgine 0.0.1) |

One span per LLM call: inside litellm's own call chain (`acompletion` runs `completion` in a
worker thread) the inner call passes through; when a GenAI inference span is already
current (another instrumentation wrapped litellm outside ours, or an `llm_call` block
surrounds the call) ours steps aside; spans of instrumentations of the provider SDK under
litellm (e.g. opentelemetry-instrumentation-openai-v2) are children of ours, never beside
it. `suppress_instrumentation()` is honoured. `LLMGINE_OTEL_INSTRUMENT` chooses what is
traced besides the bus (`litellm,tools`, the default; `none`).
"""

LOG_RECORDS = """
Every event becomes one LogRecord, correlated to the span it started, ended or targeted
(else its parent). Its `event_name` is the rule's event, defined in
`conventions/registry/events.yaml` (`llmgine.*`) or in the OpenTelemetry GenAI conventions
(`gen_ai.*`); attributes `llmgine.event.type` (the event class name) and
`llmgine.session.id`; body = the event's fields made safe to serialize (None and empty dicts
left out), minus the fields in *Body leaves out* unless content capture reaches events
(content that *Also carries* puts in attributes is never in a body). Severity ERROR when the
event reports a failure, else INFO.
"""

FINDINGS = """
`make test` runs OpenTelemetry Weaver 0.25.1 (`weaver registry live-check`, with
`conventions/registry` and the OpenTelemetry semantic conventions v1.41.0) on everything the
demo and the zero-code apps (`examples/plain_app.py`, `examples/tool_agent_app.py`) send over
OTLP (`LIVE_CHECK_APPS` in `tests/e2e/test_semconv.py`), and fails on any *violation* in this
package's telemetry (scope `llmgine_otel` and the resource; spans of other instrumentations
the apps run, e.g. aiohttp's with the older HTTP conventions, are not this package's). The
*improvement* findings left are these, each kept for the reason given (the test also fails
when one is not listed here, or is listed and no longer occurs). *Information* findings
(opt-in or conditionally required attributes absent, undocumented enum values) are not
listed.
"""

OUTCOMES = """
| Case | Outcome | Counted as |
|---|---|---|
| start for a key already open | ignored (the first start wins) | `duplicate_start` |
| end for a key that was just ended (a session ended by eviction: see below) | ignored | `duplicate_end` |
| end with no start seen (result before start, or start lost) | a span is made from the end event alone (start = end time, or `metadata['llmgine.start_time']`), attribute `llmgine.span.missing_start=true` | `end_without_start` |
| start arriving after its end was already used | ignored | `late_start` |
| child whose session never started (session id known) | a session span is synthesized (`llmgine.span.synthetic=true`), so the session stays one trace (`session` shape) or its traces keep one link target (`command` shape) | `synthetic_session` |
| span never ended | ended at eviction (table full, or inactive for longer than `max_span_age_s`: no event of its session, no new child; checked on activity and by a background sweep) or at shutdown with status ERROR and `llmgine.span.end_reason` = `evicted_capacity`, `evicted_age` or `ended_at_shutdown`; a session whose start is a mark (`command` shape) gets its `session end` span so, with that status and reason | `evicted_capacity`, `evicted_age`, `ended_at_shutdown` |
| event of a session whose span was ended by eviction | the session continues: a new session span (`llmgine.session.continued=true`, `llmgine.span.synthetic=true`) with a span link to the evicted one, the same `session.id` and the attributes it passed on; its later spans go under it (`session` shape) or link to it (`command` shape); a `SessionEndEvent` then ends it (or, arriving alone, is made into it) with the end's status | `session_continued` |
| exception for the session itself in the `command` shape (its span is a mark, already ended) | no span event; the ERROR log record, correlated to the mark, carries it | `exception_without_span` |
| session id `BUS`, empty or missing | no session span: commands become trace roots | |
| field of the wrong type / unprintable / oversized / invalid UTF-8 | coerced, truncated or replaced by a placeholder; attribute dropped when impossible | `repaired` |
| event the handler cannot read at all | skipped, never raised | `rejected` |
"""


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(render_markdown())
