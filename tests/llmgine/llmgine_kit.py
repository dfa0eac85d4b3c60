"""Helpers for the real-llmgine tests: in-memory telemetry behind the instrumentor, a fresh bus,
and span-tree look-ups."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmgine_otel.config import ObservabilityConfig
from llmgine_otel.translate import OTelHandler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (also in child processes)
from support.hermetic import left_out

# llmgine keeps scheduled events in ./message_bus.db unless told otherwise; litellm fetches
# its price map from GitHub at import unless told otherwise. Tests stay local.
os.environ.setdefault("LLMGINE_DB_URL", "sqlite://")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class Otel:
    """An OTelHandler on in-memory span and log exporters (what the instrumentor feeds)."""

    def __init__(self, **config: Any) -> None:
        config.setdefault("console", False)
        config.setdefault("emit_metrics", False)
        self.span_exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.span_exporter))
        self.log_exporter = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider(shutdown_on_exit=False)
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.log_exporter))
        self.handler = OTelHandler(self.tracer_provider, self.logger_provider, None,
                                   ObservabilityConfig(**config))
        self.tracer = self.tracer_provider.get_tracer("app")

    def spans(self) -> list[ReadableSpan]:
        return list(self.span_exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, (name, sorted(s.name for s in self.spans()))
        return found[0]

    def logs(self) -> list[Any]:
        return [d.log_record for d in self.log_exporter.get_finished_logs()]

    def clear(self) -> None:
        self.span_exporter.clear()
        self.log_exporter.clear()

    def close(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()


def parent_of(span: ReadableSpan, spans: Iterable[ReadableSpan]) -> ReadableSpan | None:
    """The span's parent among ``spans``."""
    if span.parent is None:
        return None
    return next((s for s in spans if s.context.span_id == span.parent.span_id), None)


def attr(span: ReadableSpan, name: str) -> Any:
    return (span.attributes or {}).get(name)


def fresh_bus() -> Any:
    """A new llmgine MessageBus (the class is a process-wide singleton)."""
    from llmgine.bus.bus import MessageBus

    MessageBus._instance = None
    return MessageBus()


def read_jsonl_spans(path: Any) -> list[dict[str, Any]]:
    """Spans from an OTLP-JSON lines file, as {name, trace, span, parent, status, attrs}."""
    import json

    out: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            for rs in doc.get("resourceSpans", ()):
                for ss in rs.get("scopeSpans", ()):
                    for s in ss.get("spans", ()):
                        attrs = {a["key"]: next(iter(a["value"].values()), None)
                                 for a in s.get("attributes", ())}
                        out.append({"name": s["name"], "trace": s["traceId"],
                                    "span": s["spanId"], "parent": s.get("parentSpanId") or None,
                                    "status": (s.get("status") or {}).get("code", 0),
                                    "attrs": attrs})
    return out


def offline_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: no OTLP endpoint, no llmgine database file."""
    env = {k: v for k, v in os.environ.items()
           if not left_out(k)}
    env.update(LLMGINE_DB_URL="sqlite://", LITELLM_LOCAL_MODEL_COST_MAP="True",
               PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env
