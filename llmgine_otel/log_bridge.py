"""The app's Python ``logging`` records as OpenTelemetry log records, in the current trace.

:func:`attach` puts the SDK's ``LoggingHandler`` on the root logger, feeding this package's
logger provider: every record that reaches the root logger's handlers (``WARNING`` and up
unless the app lowers the level) becomes a log record with the trace and span ids of the
span current where it was logged (inside a command handler: that command's span). It is what
``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED`` switches in the SDK's own setup; under
this package's setup it is on unless that variable is ``false``.

What never goes through it, so nothing loops back into export and nothing is doubled:

- records of this package's loggers (``llmgine_otel``) and of the OpenTelemetry SDK and
  exporters (``opentelemetry``): export failures would otherwise be exported, and fail again;
- records logged while instrumentation is suppressed, which is what the SDK's batch
  processors and metric reader do around every export: an HTTP client's debug line about the
  export connection is not exported by the export it describes;
- a record logged from inside the handler itself (re-entry is dropped);
- the log records this package makes for bus events: they never go through ``logging``.

The SDK marks its ``LoggingHandler`` deprecated in favour of the one in
``opentelemetry-instrumentation-logging``; that package's instrumentor would also install
itself on every zero-code start. The SDK's handler is the one the SDK's variable controls, so
it is used here (its deprecation warning is silenced at construction). When a handler of
either kind is already on the root logger, none is added.

As in the SDK's own setup, ``logging.basicConfig`` / ``logging.config.dictConfig`` /
``fileConfig`` are wrapped so that an app configuring logging after this package (the usual
order under a zero-code start) gets its configuration, not a no-op because the root logger
already has a handler, and keeps the bridge.
"""

from __future__ import annotations

import functools
import logging
import logging.config
import threading
import warnings
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk._logs import LoggingHandler

__all__ = ["BridgeHandler", "attach", "detach"]

_OWN = ("llmgine_otel", "opentelemetry")


def _ours(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in _OWN)


class BridgeHandler(LoggingHandler):
    """The SDK's ``LoggingHandler`` with the guards above."""

    _emitting: ContextVar[bool] = ContextVar("llmgine_otel_log_bridge", default=False)

    def __init__(self, logger_provider: Any, level: int = logging.NOTSET) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            super().__init__(level=level, logger_provider=logger_provider)

    def filter(self, record: logging.LogRecord) -> Any:
        if _ours(record.name) or not is_instrumentation_enabled():
            return False
        return super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        if self._emitting.get():
            return
        token = self._emitting.set(True)
        try:
            super().emit(record)
        except Exception:  # noqa: BLE001 - a log call never fails because of us
            pass
        finally:
            self._emitting.reset(token)

    def flush(self) -> None:
        # The SDK's flush starts a thread to force-flush the provider on every call
        # (logging.shutdown calls it at exit); this package's shutdown flushes instead.
        pass


def _is_otel_handler(handler: logging.Handler) -> bool:
    """The SDK's handler or opentelemetry-instrumentation-logging's (not this package's)."""
    if isinstance(handler, BridgeHandler):
        return False
    return isinstance(handler, LoggingHandler) or (
        type(handler).__name__ == "LoggingHandler"
        and type(handler).__module__.startswith("opentelemetry."))


def attach(logger_provider: Any) -> BridgeHandler | None:
    """Add the bridge to the root logger (replacing an earlier one of this package, so the
    latest ``configure()`` gets the app's records), unless another OpenTelemetry logging
    handler is there."""
    root = logging.getLogger()
    for h in root.handlers[:]:
        if isinstance(h, BridgeHandler):
            root.removeHandler(h)
    if any(_is_otel_handler(h) for h in root.handlers):
        return None
    handler = BridgeHandler(logger_provider)
    root.addHandler(handler)
    _wrap_config_functions()
    return handler


_wrapped = False
_wrap_lock = threading.Lock()


def _keep_bridge(config_fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(config_fn)
    def configure_logging(*args: Any, **kwargs: Any) -> Any:
        root = logging.getLogger()
        bridges = [h for h in root.handlers if isinstance(h, BridgeHandler)]
        for h in bridges:
            root.removeHandler(h)
        try:
            return config_fn(*args, **kwargs)
        finally:
            for h in bridges:
                if h not in root.handlers:
                    root.addHandler(h)

    return configure_logging


def _wrap_config_functions() -> None:
    global _wrapped
    with _wrap_lock:
        if _wrapped:
            return
        _wrapped = True
        logging.basicConfig = _keep_bridge(logging.basicConfig)
        logging.config.dictConfig = _keep_bridge(logging.config.dictConfig)
        logging.config.fileConfig = _keep_bridge(logging.config.fileConfig)


def detach(handler: BridgeHandler | None) -> None:
    if handler is not None:
        logging.getLogger().removeHandler(handler)
