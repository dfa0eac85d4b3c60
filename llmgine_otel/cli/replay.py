"""`llmgine-otel replay`: re-send saved OTLP-JSON telemetry files to an OTLP gRPC endpoint."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlparse

import grpc
from google.protobuf.json_format import ParseError
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc import MetricsServiceStub
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.util.re import parse_env_headers

from llmgine_otel.otlp_json import (
    decode_logs,
    decode_metrics,
    decode_traces,
    iter_objects,
    telemetry_files,
)

DEFAULT_ENDPOINT = "http://localhost:4317"
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    }
)
_MAX_ATTEMPTS = 5
_MAX_REQUEST_BYTES = 4_000_000  # receivers reject messages over 4 MiB by default
_MAX_BACKOFF_S = 8.0
_NON_TTY_PROGRESS_EVERY_S = 5.0

_HELP = """\
Re-send telemetry saved as OTLP-JSON lines (this package's local files or the Collector file
exporter's `format: json` output; plain, rotated, .gz or .zst; a file or a folder) to an OTLP gRPC
endpoint, in batches, keeping every trace/span id, parent and timestamp exactly as saved.

Replaying is idempotent where the backend dedupes: span and log identity is in the data, so
sending the same file twice sends the same trace and span ids again (Jaeger, for one, keys spans
by trace and span id). Backends that do not dedupe will store a second copy.
"""


@dataclass(frozen=True, slots=True)
class _Signal:
    """How to batch and send one signal."""

    label: str
    json_keys: tuple[str, str]  # camelCase (as written) and snake_case (also accepted)
    decode: Callable[[dict[str, Any]], Message]
    request: Callable[[], Message]
    resource_field: str
    scope_field: str
    item_field: str
    stub: Callable[[grpc.Channel], Any]
    rejected_field: str


_SIGNALS = (
    _Signal(
        "spans", ("resourceSpans", "resource_spans"), decode_traces, ExportTraceServiceRequest,
        "resource_spans", "scope_spans", "spans", TraceServiceStub, "rejected_spans",
    ),
    _Signal(
        "logs", ("resourceLogs", "resource_logs"), decode_logs, ExportLogsServiceRequest,
        "resource_logs", "scope_logs", "log_records", LogsServiceStub, "rejected_log_records",
    ),
    _Signal(
        "metrics", ("resourceMetrics", "resource_metrics"), decode_metrics,
        ExportMetricsServiceRequest, "resource_metrics", "scope_metrics", "metrics",
        MetricsServiceStub, "rejected_data_points",
    ),
)  # fmt: skip


class EndpointUnreachable(Exception):
    """The endpoint could not be reached at all."""


@dataclass(slots=True)
class _Stats:
    """Counts for progress and the final summary."""

    sent: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("spans", "logs", "metrics"), 0)
    )
    skipped: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("spans", "logs", "metrics"), 0)
    )
    rejected: int = 0
    failed: int = 0


class _Progress:
    """A progress line on stderr: rewritten in place on a TTY, else a line every few seconds."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last = 0.0 if self.tty else time.monotonic()
        self._shown = False

    def update(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        every = 0.1 if self.tty else _NON_TTY_PROGRESS_EVERY_S
        if not force and now - self._last < every:
            return
        self._last = now
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}")
            self._shown = True
        else:
            self.stream.write(f"{text}\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line that stays (a problem or the summary)."""
        if self.tty and self._shown:
            self.stream.write("\r\x1b[K")
            self._shown = False
        self.stream.write(f"{text}\n")
        self.stream.flush()


class _Sender:
    """Sends requests with bounded retries; counts what went and what did not."""

    def __init__(
        self,
        channel: grpc.Channel,
        args: argparse.Namespace,
        stats: _Stats,
        progress: _Progress,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.stubs = {s.label: s.stub(channel) for s in _SIGNALS}
        self.timeout = args.timeout
        self.metadata = args.headers_list
        self.stats = stats
        self.progress = progress
        self.sleep = sleep
        self.unimplemented: set[str] = set()

    def send(self, signal: _Signal, request: Message, count: int) -> None:
        if count > 1 and request.ByteSize() > _MAX_REQUEST_BYTES:  # huge prompts: split
            parts: list[tuple[Message, int]] = []
            splitter = _Batcher(signal, (count + 1) // 2, lambda _s, r, n: parts.append((r, n)))
            splitter.add(request)
            splitter.flush()
            for part, n in parts:
                self.send(signal, part, n)
            return
        if signal.label in self.unimplemented:
            self.stats.failed += count
            return
        delay = 0.5
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                response = self.stubs[signal.label].Export(
                    request, timeout=self.timeout, metadata=self.metadata
                )
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else None
                if code in _RETRYABLE and attempt < _MAX_ATTEMPTS:
                    self.sleep(delay)
                    delay = min(delay * 2, _MAX_BACKOFF_S)
                    continue
                if code == grpc.StatusCode.UNAVAILABLE:  # still down after retries: stop
                    raise EndpointUnreachable(_details(exc)) from exc
                if code == grpc.StatusCode.UNIMPLEMENTED:
                    self.unimplemented.add(signal.label)
                    self.progress.message(
                        f"llmgine-otel replay: the endpoint does not accept {signal.label} "
                        f"(UNIMPLEMENTED); skipping them"
                    )
                else:
                    self.progress.message(
                        f"llmgine-otel replay: a batch of {count} {signal.label} failed after "
                        f"{attempt} attempt(s): {code.name if code else 'error'}: {_details(exc)}"
                    )
                self.stats.failed += count
                return
            partial = getattr(response, "partial_success", None)
            rejected = getattr(partial, signal.rejected_field, 0) if partial is not None else 0
            self.stats.rejected += rejected
            self.stats.sent[signal.label] += (
                count - rejected if signal.label != "metrics" else count
            )
            return


def _details(exc: grpc.RpcError) -> str:
    details = exc.details() if hasattr(exc, "details") else None
    return str(details or exc).splitlines()[0]


class _Batcher:
    """Packs one signal's items from many lines into requests of at most ``limit`` items."""

    def __init__(
        self, signal: _Signal, limit: int, send: Callable[[_Signal, Message, int], None]
    ) -> None:
        self.signal = signal
        self.limit = limit
        self.send = send
        self.pending = signal.request()
        self.count = 0

    def add(self, request: Message) -> None:
        sig = self.signal
        for rs in getattr(request, sig.resource_field):
            for ss in getattr(rs, sig.scope_field):
                items = getattr(ss, sig.item_field)
                start = 0
                while start < len(items):
                    take = min(self.limit - self.count, len(items) - start)
                    out_rs = getattr(self.pending, sig.resource_field).add()
                    out_rs.resource.CopyFrom(rs.resource)
                    out_rs.schema_url = rs.schema_url
                    out_ss = getattr(out_rs, sig.scope_field).add()
                    out_ss.scope.CopyFrom(ss.scope)
                    out_ss.schema_url = ss.schema_url
                    getattr(out_ss, sig.item_field).extend(items[start : start + take])
                    self.count += take
                    start += take
                    if self.count >= self.limit:
                        self.flush()

    def flush(self) -> None:
        if self.count:
            pending, count = self.pending, self.count
            self.pending, self.count = self.signal.request(), 0
            self.send(self.signal, pending, count)


def _target(endpoint: str, insecure: bool | None) -> tuple[str, bool]:
    """(host:port, insecure) from an endpoint URL; http or no scheme means plaintext."""
    if "://" not in endpoint:
        return endpoint, True if insecure is None else insecure
    url = urlparse(endpoint)
    host = url.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    port = url.port or (443 if url.scheme == "https" else 4317)
    default_insecure = url.scheme != "https"
    return f"{host}:{port}", default_insecure if insecure is None else insecure


def _headers(text: str | None) -> list[tuple[str, str]]:
    if not text:
        return []
    return [
        (k.strip().lower(), v.strip()) for k, v in parse_env_headers(text, liberal=True).items()
    ]


def register(subparsers: Any) -> None:
    """Add the ``replay`` sub-command."""
    parser = subparsers.add_parser(
        "replay",
        help="re-send saved OTLP-JSON telemetry files to an OTLP gRPC endpoint",
        description=_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", metavar="PATH", help="a telemetry file or a folder of them")
    parser.add_argument(
        "--endpoint",
        default=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT,
        help="OTLP gRPC endpoint (default: $OTEL_EXPORTER_OTLP_ENDPOINT or %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=512,
        metavar="N",
        help="at most N spans / log records / metrics per request (default: %(default)s)",
    )
    parser.add_argument(
        "--insecure",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="plaintext gRPC (default: yes for http:// or no scheme, no for https://)",
    )
    parser.add_argument(
        "--headers",
        default=os.environ.get("OTEL_EXPORTER_OTLP_HEADERS"),
        metavar="K=V,...",
        help="gRPC metadata to send (default: $OTEL_EXPORTER_OTLP_HEADERS)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait to connect and for each request (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, *, stderr: TextIO | None = None) -> int:
    """Replay ``args.path``; 0 when everything was read and accepted, 1 when anything was
    rejected, not sent or unreadable, 2 if the endpoint is unreachable."""
    err = stderr or sys.stderr
    progress = _Progress(err)
    if args.batch_size < 1:
        progress.message("llmgine-otel replay: --batch-size must be at least 1")
        return 2
    try:
        files = telemetry_files(args.path)
    except OSError as exc:
        progress.message(f"llmgine-otel replay: {exc}")
        return 1
    if not files:
        progress.message(
            f"llmgine-otel replay: no telemetry files (.jsonl/.json[.gz|.zst]) in {args.path}"
        )
        return 1
    target, insecure = _target(args.endpoint, args.insecure)
    args.headers_list = _headers(args.headers)
    if insecure:
        channel = grpc.insecure_channel(target)
    else:
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials())
    stats = _Stats()
    started = time.monotonic()
    problems = 0

    def on_problem(msg: str) -> None:
        nonlocal problems
        problems += 1
        progress.message(f"llmgine-otel replay: {msg}")

    def status() -> str:
        s = stats.sent
        return (
            f"replay → {target}: {s['spans']:,} spans, {s['logs']:,} logs, "
            f"{s['metrics']:,} metrics sent"
        )

    try:
        try:
            grpc.channel_ready_future(channel).result(timeout=args.timeout)
        except grpc.FutureTimeoutError:
            progress.message(
                f"llmgine-otel replay: cannot reach OTLP endpoint {target} "
                f"(no gRPC connection within {args.timeout:g}s; is a collector running?"
                + (" 4318 is OTLP/HTTP, gRPC is usually 4317" if target.endswith(":4318") else "")
                + ")"
            )
            return 2
        sender = _Sender(channel, args, stats, progress)
        batchers = [_Batcher(s, args.batch_size, sender.send) for s in _SIGNALS]
        for obj in iter_objects(args.path, on_problem=on_problem):
            for batcher in batchers:
                camel, snake = batcher.signal.json_keys
                if camel not in obj and snake not in obj:
                    continue
                try:
                    request = batcher.signal.decode(obj)
                except (ParseError, ValueError, TypeError) as exc:
                    n = _items(obj)
                    stats.skipped[batcher.signal.label] += n
                    on_problem(
                        f"cannot decode a {batcher.signal.label} line "
                        f"({str(exc).splitlines()[0]}): {n:,} {batcher.signal.label} skipped"
                    )
                    continue
                batcher.add(request)
            progress.update(status())
        for batcher in batchers:
            batcher.flush()
    except EndpointUnreachable as exc:
        progress.message(
            f"llmgine-otel replay: OTLP endpoint {target} unavailable ({exc}); "
            f"stopped after: {status().split(': ', 1)[1]}"
        )
        return 2
    finally:
        channel.close()
    summary = f"{status()} in {time.monotonic() - started:.1f}s from {len(files)} file(s)"
    if stats.rejected:
        summary += f"; {stats.rejected:,} rejected by the endpoint"
    if stats.failed:
        summary += f"; {stats.failed:,} not sent"
    skipped = ", ".join(f"{n:,} {label}" for label, n in stats.skipped.items() if n)
    if skipped:
        summary += f"; not sent (unreadable lines): {skipped}"
    if problems:
        summary += f"; {problems:,} problem(s) reading the files"
    progress.message(summary)
    return 1 if stats.failed or stats.rejected or problems else 0


def _items(obj: Any) -> int:
    """How many spans, log records or metric data points an OTLP-JSON object holds."""
    n = 0
    for top, scopes, items in (("resourceSpans", "scopeSpans", "spans"),
                               ("resourceLogs", "scopeLogs", "logRecords"),
                               ("resourceMetrics", "scopeMetrics", "metrics")):
        for r in obj.get(top) or ():
            for sc in (r.get(scopes) or ()) if isinstance(r, dict) else ():
                n += len(sc.get(items) or ()) if isinstance(sc, dict) else 0
    return n


def main(argv: list[str] | None = None) -> int:
    """Run only this sub-command (handy in tests)."""
    parser = argparse.ArgumentParser(prog="llmgine-otel")
    register(parser.add_subparsers())
    args = parser.parse_args(["replay", *(argv or [])])
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
