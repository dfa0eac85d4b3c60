"""Configuration: one dataclass, read from arguments and the environment, validated at setup.

Every knob here does something real (see README "Configuration"); a bad value raises
:class:`ConfigError` naming the variable and the allowed values, never later at run time.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

__all__ = [
    "BACK_PRESSURE_STRATEGIES",
    "TRACE_SHAPES",
    "CaptureMode",
    "ConfigError",
    "ObservabilityConfig",
]

BACK_PRESSURE_STRATEGIES = ("drop_oldest", "drop_newest", "adaptive")
TRACE_SHAPES = ("command", "session")
"""``trace_per``: one trace per command (linked to its session) or one per session; what each
shape does is data, ``mapping.TRACE_SHAPES``."""

RedactHook = Callable[[str, Any], Any]
"""``hook(key, value) -> value``: rewrite captured content, or return ``None`` to drop it."""


class ConfigError(ValueError):
    """A setting has a value this package cannot use; the message names it and what is allowed."""


class CaptureMode(enum.Enum):
    """Where prompt/completion/tool content goes.

    Set by OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT."""

    NO_CONTENT = "NO_CONTENT"
    SPAN_ONLY = "SPAN_ONLY"
    EVENT_ONLY = "EVENT_ONLY"
    SPAN_AND_EVENT = "SPAN_AND_EVENT"

    @property
    def on_span(self) -> bool:
        return self in (CaptureMode.SPAN_ONLY, CaptureMode.SPAN_AND_EVENT)

    @property
    def on_event(self) -> bool:
        return self in (CaptureMode.EVENT_ONLY, CaptureMode.SPAN_AND_EVENT)

    @classmethod
    def parse(cls, raw: str, name: str = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
              ) -> CaptureMode:
        """Accept the four modes (any case) and the older true/false spelling."""
        value = raw.strip().upper()
        if value in ("", "FALSE", "0", "NO"):
            return cls.NO_CONTENT
        if value in ("TRUE", "1", "YES"):
            return cls.SPAN_AND_EVENT
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(m.value for m in cls) + " (or true/false)"
            raise ConfigError(f"{name}={raw!r} is not valid; allowed: {allowed}") from None


# Environment variable -> config field. The OTEL_* variables the SDK reads itself
# (OTEL_BSP_*, OTEL_BLRP_*, OTEL_EXPORTER_OTLP_*, OTEL_TRACES_SAMPLER, ...) are honoured
# by the SDK objects we build; those below are the ones this package interprets.
ENV_VARS: dict[str, str] = {
    "LLMGINE_OBSERVABILITY_ENABLED": "enabled",
    "LLMGINE_OBSERVABILITY_QUEUE_SIZE": "queue_size",
    "LLMGINE_OBSERVABILITY_WORKERS": "num_workers",
    "LLMGINE_OBSERVABILITY_SAMPLE_RATE": "sample_rate",
    "LLMGINE_OBSERVABILITY_BACK_PRESSURE": "back_pressure_strategy",
    "OTEL_SERVICE_NAME": "service_name",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "endpoint",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "capture_content",
    "LLMGINE_OTEL_DIR": "output_dir",
    "LLMGINE_OTEL_CONSOLE": "console",
    "LLMGINE_OTEL_LOGS": "emit_logs",
    "LLMGINE_OTEL_METRICS": "emit_metrics",
    "LLMGINE_OTEL_MAX_VALUE_LENGTH": "max_value_length",
    "LLMGINE_OTEL_MAX_OPEN_SPANS": "max_open_spans",
    "LLMGINE_OTEL_MAX_SPAN_AGE": "max_span_age_s",
    "LLMGINE_OTEL_TRACE_PER": "trace_per",
    "LLMGINE_OTEL_SHUTDOWN_TIMEOUT": "shutdown_timeout_s",
    "LLMGINE_OTEL_INCLUDE_EVENTS": "include_events",
    "LLMGINE_OTEL_EXCLUDE_EVENTS": "exclude_events",
    "LLMGINE_OTEL_NO_LOG_EVENTS": "no_log_events",
    "LLMGINE_OTEL_LOG_SAMPLE_RATES": "log_sample_rates",
    "LLMGINE_OTEL_STREAM_CHUNK_LOGS": "stream_chunk_logs",
    "LLMGINE_OTEL_FILE_MAX_BYTES": "file_max_bytes",
    "LLMGINE_OTEL_FILE_MAX_AGE": "file_max_age_s",
    "LLMGINE_OTEL_FILE_BACKUPS": "file_backups",
    "LLMGINE_OTEL_FLUSH_ON_SIGNAL": "flush_on_signal",
    "LLMGINE_OTEL_HANDLER_MAX_IN_FLIGHT": "handler_max_in_flight",
    "LLMGINE_OTEL_HANDLER_TIMEOUT": "handler_timeout_s",
    "LLMGINE_OTEL_BUFFER": "buffer",
    "LLMGINE_OTEL_BUFFER_DIR": "buffer_dir",
    "LLMGINE_OTEL_BUFFER_MAX_BYTES": "buffer_max_bytes",
    "LLMGINE_OTEL_BUFFER_MAX_AGE": "buffer_max_age_s",
    "LLMGINE_OTEL_PROMETHEUS_PORT": "prometheus_port",
    "LLMGINE_OTEL_PROMETHEUS_HOST": "prometheus_host",
}


@dataclass(frozen=True)
class ObservabilityConfig:
    """Everything :func:`llmgine_otel.configure` needs; build it with :meth:`from_env`.

    The settings llmgine's observability design names (``enabled``, ``queue_size``,
    ``num_workers``, ``sample_rate``, ``back_pressure_strategy``) keep those names.
    """

    enabled: bool = True
    queue_size: int = 10_000
    """Max spans (and, separately, log records) waiting for export; beyond it the
    back-pressure strategy decides what is dropped (and counted)."""
    num_workers: int = 1
    """Export pipelines: spans and log records are sharded by trace id over this many
    batch processors, each with its own exporter thread (export concurrency)."""
    back_pressure_strategy: str = "drop_oldest"
    sample_rate: float = 1.0
    """Head sampling of whole sessions: ParentBased(SessionSampler(sample_rate)) (a ratio
    by trace id whose rate can change at run time, see ``Telemetry.set_sample_rate``)."""
    service_name: str | None = None
    """``service.name``; None: ``OTEL_RESOURCE_ATTRIBUTES``' service.name, else ``llmgine``."""
    endpoint: str | None = None
    """The general OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT``); ``None``, with no
    per-signal endpoint or exporter variable set either, means the embedded default (local
    files + console summary). See :mod:`llmgine_otel.otel_env`."""
    capture_content: CaptureMode = CaptureMode.NO_CONTENT
    output_dir: Path = Path("llmgine-telemetry")
    console: bool = True
    emit_logs: bool = True
    emit_metrics: bool = True
    max_value_length: int = 16_384
    """Longest string kept in any attribute or log body value (longer ones are truncated)."""
    max_open_spans: int = 10_000
    max_span_age_s: float = 3_600.0
    trace_per: str = "command"
    """``command``: every command is the root of a trace of its own, linked to its session
    (which gets two small spans, its start and its end); ``session``: the whole session is one
    trace. See README "Trace shapes" for when to use which."""
    shutdown_timeout_s: float = 5.0
    include_events: tuple[str, ...] = ()
    """Only these event types (class names, base classes match) are observed; empty = all."""
    exclude_events: tuple[str, ...] = ()
    no_log_events: tuple[str, ...] = ()
    """Event types that still make spans but no log record."""
    log_sample_rates: Mapping[str, float] = field(default_factory=dict)
    """Per event type share of log records kept (errors are always kept)."""
    stream_chunk_logs: bool = False
    """Emit one log record per streamed chunk (off: chunks are folded into the LLM span)."""
    file_max_bytes: int = 64 * 1024 * 1024
    """Embedded default: the local file rotates at this size (rotated files are gzipped)."""
    file_max_age_s: float = 86_400.0
    """Embedded default: ... or at this age."""
    file_backups: int = 10
    """Embedded default: rotated files kept."""
    flush_on_signal: bool = True
    """SIGTERM (and SIGINT where the OS default is in place) runs the bounded shutdown, then
    the process dies by the signal as before (see :mod:`llmgine_otel.signals`)."""
    handler_max_in_flight: int = 1_000
    """Async observability handlers: calls of one handler running at once; beyond it an
    event is not given to that handler (counted)."""
    handler_timeout_s: float = 30.0
    """Async observability handlers: a call still running after this is cancelled (counted)."""
    buffer: bool = True
    """OTLP: batches that cannot be sent now (endpoint down or slow) wait in a disk buffer
    and are resent oldest first, also by the next process (see :mod:`llmgine_otel.buffer`)."""
    buffer_dir: Path | None = None
    """Default ``<output_dir>/buffer/<service_name>``."""
    buffer_max_bytes: int = 256 * 1024 * 1024
    """Disk buffer bound; past it the oldest batches are deleted (counted)."""
    buffer_max_age_s: float = 86_400.0
    """Buffered batches older than this are deleted (counted)."""
    prometheus_port: int | None = None
    """Serve the metrics on ``http://prometheus_host:port/metrics`` (None: off; 0: any
    free port, see ``Telemetry.prometheus_endpoint.url``)."""
    prometheus_host: str = "127.0.0.1"
    redact: RedactHook | None = None
    resource_attributes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Keyword arguments may use the environment spellings ("SPAN_ONLY", "true", True).
        if isinstance(self.capture_content, str | bool):
            raw = self.capture_content
            object.__setattr__(self, "capture_content", CaptureMode.parse(
                str(raw), _label("capture_content")))
        _check(self)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any
                 ) -> ObservabilityConfig:
        """Defaults, then the environment, then explicit keyword overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        # The SDK's own queue variable counts when the seed's is not set.
        if not env.get("LLMGINE_OBSERVABILITY_QUEUE_SIZE", "").strip() and \
                env.get("OTEL_BSP_MAX_QUEUE_SIZE", "").strip():
            values["queue_size"] = _parse_int("OTEL_BSP_MAX_QUEUE_SIZE",
                                              env["OTEL_BSP_MAX_QUEUE_SIZE"])
        for var, name in ENV_VARS.items():
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                continue
            values[name] = _PARSERS[name](var, raw)
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            allowed = ", ".join(f.name for f in fields(cls))
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; allowed: {allowed}")
        values.update(overrides)
        return cls(**values)

    def buffer_path(self, service_name: str | None = None) -> Path:
        """Where the disk buffer lives: ``buffer_dir``, or under ``output_dir`` per service
        (``service_name``: the resource's effective one, e.g. from OTEL_SERVICE_NAME)."""
        if self.buffer_dir is not None:
            return Path(self.buffer_dir)
        name = service_name or self.service_name or "llmgine"
        service = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        return Path(self.output_dir) / "buffer" / service

    def with_changes(self, **changes: Any) -> ObservabilityConfig:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        """Plain values for printing (doctor) and logging."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, enum.Enum):
                v = v.value
            elif isinstance(v, Path):
                v = str(v)
            elif callable(v):
                v = getattr(v, "__qualname__", repr(v))
            elif isinstance(v, Mapping):
                v = dict(v)
            out[f.name] = v
        return out


def _parse_bool(var: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{var}={raw!r} is not valid; allowed: true/false (or 1/0, yes/no, on/off)")


def _parse_int(var: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not valid; allowed: a whole number") from None


def _parse_float(var: str, raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not valid; allowed: a number") from None


def _parse_names(var: str, raw: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in raw.split(",") if n.strip())


def _parse_rates(var: str, raw: str) -> dict[str, float]:
    """``Type=0.1,Other=0.5``."""
    rates: dict[str, float] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ConfigError(
                f"{var}={raw!r} is not valid; allowed: comma-separated EventType=rate pairs"
            )
        rates[name.strip()] = _parse_float(var, value)
    return rates


def _text(var: str, raw: str) -> str:
    return raw.strip()


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "enabled": _parse_bool,
    "queue_size": _parse_int,
    "num_workers": _parse_int,
    "sample_rate": _parse_float,
    "back_pressure_strategy": _text,
    "service_name": _text,
    "endpoint": _text,
    "capture_content": lambda var, raw: CaptureMode.parse(raw, var),
    "output_dir": lambda var, raw: Path(raw.strip()),
    "console": _parse_bool,
    "emit_logs": _parse_bool,
    "emit_metrics": _parse_bool,
    "max_value_length": _parse_int,
    "max_open_spans": _parse_int,
    "max_span_age_s": _parse_float,
    "trace_per": lambda var, raw: raw.strip().lower(),
    "shutdown_timeout_s": _parse_float,
    "include_events": _parse_names,
    "exclude_events": _parse_names,
    "no_log_events": _parse_names,
    "log_sample_rates": _parse_rates,
    "stream_chunk_logs": _parse_bool,
    "file_max_bytes": _parse_int,
    "file_max_age_s": _parse_float,
    "file_backups": _parse_int,
    "flush_on_signal": _parse_bool,
    "handler_max_in_flight": _parse_int,
    "handler_timeout_s": _parse_float,
    "buffer": _parse_bool,
    "buffer_dir": lambda var, raw: Path(raw.strip()),
    "buffer_max_bytes": _parse_int,
    "buffer_max_age_s": _parse_float,
    "prometheus_port": _parse_int,
    "prometheus_host": _text,
}

_FIELD_TO_ENV = {name: var for var, name in ENV_VARS.items()}


def _label(name: str) -> str:
    var = _FIELD_TO_ENV.get(name)
    return f"{name} ({var})" if var else name


def _check(c: ObservabilityConfig) -> None:
    """Raise ConfigError for the first value outside its allowed range."""

    def bad(name: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(f"{_label(name)}={value!r} is not valid; allowed: {allowed}")

    for name in ("enabled", "console", "emit_logs", "emit_metrics", "stream_chunk_logs",
                 "flush_on_signal", "buffer"):
        if not isinstance(getattr(c, name), bool):
            raise bad(name, getattr(c, name), "true or false")
    for name, low in (("queue_size", 1), ("num_workers", 1), ("max_value_length", 64),
                      ("max_open_spans", 1), ("file_max_bytes", 1024), ("file_backups", 0),
                      ("handler_max_in_flight", 1), ("buffer_max_bytes", 1024)):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise bad(name, v, f"a whole number >= {low}")
    if c.num_workers > 64:
        raise bad("num_workers", c.num_workers, "1 to 64 export pipelines")
    for name in ("sample_rate",):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v <= 1.0:
            raise bad(name, v, "a number between 0.0 and 1.0")
    for name in ("max_span_age_s", "shutdown_timeout_s", "file_max_age_s", "handler_timeout_s",
                 "buffer_max_age_s"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
            raise bad(name, v, "a number of seconds > 0")
    for name in ("shutdown_timeout_s", "handler_timeout_s"):
        if getattr(c, name) == float("inf"):  # a bound is the point (and join(inf) raises)
            raise bad(name, getattr(c, name), "a finite number of seconds > 0")
    if c.back_pressure_strategy not in BACK_PRESSURE_STRATEGIES:
        raise bad("back_pressure_strategy", c.back_pressure_strategy,
                  ", ".join(BACK_PRESSURE_STRATEGIES))
    if c.trace_per not in TRACE_SHAPES:
        raise bad("trace_per", c.trace_per, ", ".join(TRACE_SHAPES))
    if not isinstance(c.capture_content, CaptureMode):
        raise bad("capture_content", c.capture_content, ", ".join(m.value for m in CaptureMode))
    if c.service_name is not None and (not isinstance(c.service_name, str)
                                       or not c.service_name):
        raise bad("service_name", c.service_name, "a non-empty string")
    if c.endpoint is not None and not _looks_like_endpoint(c.endpoint):
        raise bad("endpoint", c.endpoint, "a URL such as http://localhost:4317 or host:port")
    for event_type, rate in dict(c.log_sample_rates).items():
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise bad("log_sample_rates", f"{event_type}={rate}", "rates between 0.0 and 1.0")
    port = c.prometheus_port
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                             or not 0 <= port <= 65535):
        raise bad("prometheus_port", port, "a TCP port 1..65535 (0: any free port; unset: off)")
    if not isinstance(c.prometheus_host, str) or not c.prometheus_host.strip():
        raise bad("prometheus_host", c.prometheus_host, "a host name or IP address to bind")
    if c.redact is not None and not callable(c.redact):
        raise bad("redact", c.redact, "a callable hook(key, value) -> value or None")


def _looks_like_endpoint(value: str) -> bool:
    if "://" in value:
        scheme, _, rest = value.partition("://")
        return scheme in ("http", "https", "grpc", "unix") and bool(rest)
    host, sep, port = value.rpartition(":")
    return bool(sep and host and port.isdigit())
