"""OTLP over gRPC vs HTTP: what one export costs the export thread (issue 12).

The same batches of real translator output (spans and log records of the standard sessions)
are exported to the real Collector by four exporters: the direct-encoder exporters this
package ships for each protocol (``exporters/otlp.py``, ``exporters/otlp_http.py``) and the
SDK's own exporters for each protocol. Measured per exported item: CPU time of the calling
thread (``time.thread_time``, encoding + the client library's work on that thread) and wall
time of the ``export`` call. Rounds rotate the order of the four; ratios are taken within a
round. ``python -m bench --only protocols`` (needs the built Collector)."""

from __future__ import annotations

import time
from typing import Any

from bench import make_sessions, summary
from bench.collector import running_collector_endpoints

BATCH = 512


def _capture(n_sessions: int) -> tuple[list[Any], list[Any]]:
    """Spans and log records exactly as the translator makes them."""
    from bench import NullLogExporter, NullSpanExporter, build_ours, flat, flush_ours

    class Keep(NullSpanExporter):
        def __init__(self) -> None:
            super().__init__()
            self.items: list[Any] = []

        def export(self, batch: Any) -> Any:
            self.items.extend(batch)
            return super().export(batch)

    class KeepLogs(Keep, NullLogExporter):
        pass

    tel = build_ours("null")
    spans, logs = Keep(), KeepLogs()
    tel.span_processors[0].counting.inner = spans
    tel.log_processors[0].counting.inner = logs
    for e in flat(make_sessions(n_sessions)):
        tel.observe_event(e)
    flush_ours(tel)
    tel.shutdown()
    return spans.items, logs.items


def _exporters(grpc_url: str, http_url: str) -> dict[str, tuple[Any, Any]]:
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GLog
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GSpan,
    )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HLog
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HSpan,
    )

    from llmgine_otel.exporters.otlp import FastOTLPLogExporter, FastOTLPSpanExporter
    from llmgine_otel.exporters.otlp_http import FastHTTPLogExporter, FastHTTPSpanExporter

    return {
        "grpc_direct": (FastOTLPSpanExporter(endpoint=grpc_url, insecure=True),
                        FastOTLPLogExporter(endpoint=grpc_url, insecure=True)),
        "grpc_sdk": (GSpan(endpoint=grpc_url, insecure=True),
                     GLog(endpoint=grpc_url, insecure=True)),
        "http_direct": (FastHTTPSpanExporter(endpoint=f"{http_url}/v1/traces"),
                        FastHTTPLogExporter(endpoint=f"{http_url}/v1/logs")),
        "http_sdk": (HSpan(endpoint=f"{http_url}/v1/traces"),
                     HLog(endpoint=f"{http_url}/v1/logs")),
    }


def _one(exporter: Any, batch: list[Any]) -> tuple[float, float]:
    c0, w0 = time.thread_time(), time.perf_counter()
    result = exporter.export(batch)
    c1, w1 = time.thread_time(), time.perf_counter()
    assert result.name == "SUCCESS", result
    return (c1 - c0) / len(batch), (w1 - w0) / len(batch)


def run(quick: bool, collector: bool) -> dict[str, Any]:
    rounds = 5 if quick else 20
    spans, logs = _capture(BATCH // 6 + 1)
    spans, logs = spans[:BATCH], logs[:BATCH]
    out: dict[str, Any] = {"batch": BATCH, "rounds": rounds}
    with running_collector_endpoints() as (grpc_url, http_url, _pid):
        exporters = _exporters(grpc_url, http_url)
        names = list(exporters)
        for signal, batch, idx in (("spans", spans, 0), ("logs", logs, 1)):
            for name in names:  # warm-up: connections, imports, first-call costs
                _one(exporters[name][idx], batch)
            cpu: dict[str, list[float]] = {n: [] for n in names}
            wall: dict[str, list[float]] = {n: [] for n in names}
            for r in range(rounds):
                for name in names[r % 4:] + names[:r % 4]:
                    c, w = _one(exporters[name][idx], batch)
                    cpu[name].append(c)
                    wall[name].append(w)
            us = 1e6
            out[signal] = {
                n: {"cpu_us_per_item": summary([x * us for x in cpu[n]]),
                    "wall_us_per_item": summary([x * us for x in wall[n]])} for n in names}
            out[signal]["ratios"] = {
                "http_direct/grpc_direct cpu": summary(
                    [a / b for a, b in zip(cpu["http_direct"], cpu["grpc_direct"], strict=True)]),
                "http_sdk/http_direct cpu": summary(
                    [a / b for a, b in zip(cpu["http_sdk"], cpu["http_direct"], strict=True)]),
                "grpc_sdk/grpc_direct cpu": summary(
                    [a / b for a, b in zip(cpu["grpc_sdk"], cpu["grpc_direct"], strict=True)]),
            }
        for sx, lx in exporters.values():
            sx.shutdown()
            lx.shutdown()
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv, True), indent=1))
