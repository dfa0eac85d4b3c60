"""`llmgine-otel replay`: re-send saved OTLP-JSON telemetry files to an OTLP endpoint, over
gRPC or HTTP, with the exporter's TLS and header variables (:mod:`.otlp_client`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from google.protobuf.json_format import ParseError
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.util.re import parse_env_headers

from llmgine_otel.cli.otlp_client import Outcome, Target, grpc_channel, http_session, send
from llmgine_otel.config import ConfigError
from llmgine_otel.otel_env import read
from llmgine_otel.otlp_json import decode_logs, decode_metrics, decode_traces
from llmgine_otel.telemetry_files import iter_objects, telemetry_files

_MAX_ATTEMPTS = 5
_MAX_REQUEST_BYTES = 4_000_000  # receivers reject messages over 4 MiB by default
_MAX_BACKOFF_S = 8.0
_NON_TTY_PROGRESS_EVERY_S = 5.0

_HELP = """\
Re-send telemetry saved as OTLP-JSON lines (this package's local files or the Collector file
exporter's `format: json` output; plain, rotated, .gz or .zst; a file or a folder) to an OTLP
endpoint over gRPC or HTTP, in batches, keeping every trace/span id, parent and timestamp exactly
as saved.

Where and how it sends follows the exporter's variables: OTEL_EXPORTER_OTLP_ENDPOINT (and the
per-signal ones), OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_HEADERS,
OTEL_EXPORTER_OTLP_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_KEY / _CLIENT_CERTIFICATE,
OTEL_EXPORTER_OTLP_INSECURE and OTEL_EXPORTER_OTLP_COMPRESSION; the options below override them.

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
    response: Callable[[bytes], Message]
    rejected_field: str
    otel: str  # the signal's name in OTEL_* variables


_SIGNALS = (
    _Signal(
        "spans", ("resourceSpans", "resource_spans"), decode_traces, ExportTraceServiceRequest,
        "resource_spans", "scope_spans", "spans", ExportTraceServiceResponse.FromString,
        "rejected_spans", "traces",
    ),
    _Signal(
        "logs", ("resourceLogs", "resource_logs"), decode_logs, ExportLogsServiceRequest,
        "resource_logs", "scope_logs", "log_records", ExportLogsServiceResponse.FromString,
        "rejected_log_records", "logs",
    ),
    _Signal(
        "metrics", ("resourceMetrics", "resource_metrics"), decode_metrics,
        ExportMetricsServiceRequest, "resource_metrics", "scope_metrics", "metrics",
        ExportMetricsServiceResponse.FromString, "rejected_data_points", "metrics",
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
        targets: dict[str, Target],
        args: argparse.Namespace,
        stats: _Stats,
        progress: _Progress,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.targets = targets
        self.timeout = args.timeout
        self.stats = stats
        self.progress = progress
        self.sleep = sleep
        self.unimplemented: set[str] = set()
        self._channels: dict[tuple[str, str], Any] = {}  # one per distinct gRPC destination
        self._session: Any = None

    def _send(self, target: Target, body: bytes) -> Outcome:
        if target.protocol == "grpc":
            key = (target.hostport, repr(target))
            channel = self._channels.get(key)
            if channel is None:
                channel = self._channels[key] = grpc_channel(target)
            return send(target, body, self.timeout, channel=channel)
        if self._session is None:
            self._session = http_session(target)
        return send(target, body, self.timeout, session=self._session)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        if self._session is not None:
            self._session.close()

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
        target = self.targets[signal.otel]
        body = request.SerializeToString()
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            outcome = self._send(target, body)
            if not outcome.ok:
                if outcome.retryable and attempt < _MAX_ATTEMPTS:
                    retry_after = str(outcome.extra.get("retry_after") or "")
                    self.sleep(min(float(retry_after), _MAX_BACKOFF_S)
                               if retry_after.isdigit() else delay)
                    delay = min(delay * 2, _MAX_BACKOFF_S)
                    continue
                if outcome.kind == "refused" or outcome.extra.get("code") == "UNAVAILABLE":
                    raise EndpointUnreachable(outcome.detail)  # still down after retries: stop
                if outcome.kind in ("unimplemented", "not_found"):
                    self.unimplemented.add(signal.label)
                    why = "UNIMPLEMENTED" if outcome.kind == "unimplemented" else outcome.detail
                    self.progress.message(
                        f"llmgine-otel replay: the endpoint does not accept {signal.label} "
                        f"({why}); skipping them"
                    )
                else:
                    self.progress.message(
                        f"llmgine-otel replay: a batch of {count} {signal.label} failed after "
                        f"{attempt} attempt(s): {outcome.detail or outcome.kind}"
                    )
                self.stats.failed += count
                return
            try:
                response = signal.response(outcome.response or b"")
            except Exception:  # noqa: BLE001 - an unreadable answer: no partial success
                response = None
            partial = getattr(response, "partial_success", None)
            rejected = getattr(partial, signal.rejected_field, 0) if partial is not None else 0
            self.stats.rejected += rejected
            self.stats.sent[signal.label] += (
                count - rejected if signal.label != "metrics" else count
            )
            return


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


def _targets(args: argparse.Namespace) -> dict[str, Target]:
    """Each signal's target from the exporter variables, with the command line's overrides
    (``--endpoint`` beats the per-signal endpoint variables too)."""
    env = dict(os.environ)
    if args.endpoint:
        env = {k: v for k, v in env.items()
               if not (k.startswith("OTEL_EXPORTER_OTLP_") and k.endswith("_ENDPOINT"))}
    plan = read(args.endpoint or None, endpoint_is_argument=bool(args.endpoint) or None,
                protocol=args.protocol, env=env)
    from llmgine_otel.cli.otlp_client import target_for

    out = {}
    for name, p in plan.signals.items():
        t = target_for(p, env)
        if args.headers is not None:
            t = dataclasses.replace(t, headers=_headers(args.headers))
        if args.insecure is not None:
            t = dataclasses.replace(t, insecure=args.insecure)
        out[name] = t
    return out


def _headers(text: str | None) -> tuple[tuple[str, str], ...]:
    if not text:
        return ()
    return tuple(
        (k.strip().lower(), v.strip()) for k, v in parse_env_headers(text, liberal=True).items()
    )


def _reachable(target: Target, timeout_s: float) -> str | None:
    """None when ``target`` answers a connection (gRPC: the channel gets ready), else why."""
    if target.protocol == "grpc":
        import grpc

        channel = grpc_channel(target)
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout_s)
            return None
        except grpc.FutureTimeoutError:
            return (f"no gRPC connection within {timeout_s:g}s; is a collector running?"
                    + (" 4318 is OTLP/HTTP, gRPC is usually 4317"
                       if target.hostport.endswith(":4318") else ""))
        finally:
            channel.close()
    host, port, _ = target.host_port_tls()
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"no connection within {timeout_s:g}s: {exc}; is a collector running?"


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
        default=None,
        help="OTLP endpoint (default: $OTEL_EXPORTER_OTLP_ENDPOINT and the per-signal "
        "variables, else http://localhost:4317 for gRPC, http://localhost:4318 for HTTP)",
    )
    parser.add_argument(
        "--protocol",
        choices=("grpc", "http/protobuf"),
        default=None,
        help="OTLP protocol (default: $OTEL_EXPORTER_OTLP_PROTOCOL, else grpc)",
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
        help="plaintext gRPC (default: as the exporter decides: no for https://, else "
        "$OTEL_EXPORTER_OTLP_INSECURE, else yes for http://)",
    )
    parser.add_argument(
        "--headers",
        default=None,
        metavar="K=V,...",
        help="headers (gRPC metadata) to send (default: $OTEL_EXPORTER_OTLP_HEADERS and the "
        "per-signal ones)",
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
    try:
        targets = _targets(args)
    except ConfigError as exc:
        progress.message(f"llmgine-otel replay: {exc}")
        return 2
    first = targets["traces"]
    target = first.hostport if first.protocol == "grpc" else first.endpoint.rsplit("/v1/", 1)[0]
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

    why = _reachable(first, args.timeout)
    if why is not None:
        progress.message(f"llmgine-otel replay: cannot reach OTLP endpoint {target} ({why})")
        return 2
    sender = _Sender(targets, args, stats, progress)
    try:
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
        sender.close()
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
