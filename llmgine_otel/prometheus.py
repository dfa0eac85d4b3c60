"""Prometheus exposition of the SDK's metrics, written by ``prometheus_client``.

:func:`prometheus_text` turns a pulled ``MetricsData`` into ``prometheus_client`` metric
families and lets the library write the text (escaping of label values and HELP, ``_total``,
bucket formatting). :class:`ScrapeEndpoint` serves the same on ``/metrics`` from
``prometheus_client``'s HTTP server thread (``LLMGINE_OTEL_PROMETHEUS_PORT``).

Names follow the Collector's prometheus exporter (dots to underscores, the unit as a suffix,
``{annotations}`` dropped, ``_total`` on monotonic sums), so the bundled Grafana dashboard's
queries match both. Points of every scope with the same name go into one family, told
apart by an ``otel_scope_name`` label, as the Collector does. The ``opentelemetry-exporter-
prometheus`` reader would be a second metric reader aggregating every record again (see
``metrics.PullableReader``), so the conversion is done here on the one reader's data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

__all__ = ["ScrapeEndpoint", "metric_families", "prometheus_name", "prometheus_text"]

# OTel unit -> Prometheus suffix (the subset of the Collector's translator we can meet).
_UNITS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds",
          "min": "minutes", "h": "hours", "d": "days", "By": "bytes", "KiBy": "kibibytes",
          "MiBy": "mebibytes", "GiBy": "gibibytes", "%": "percent"}
_INVALID = re.compile(r"[^a-zA-Z0-9_]+")


def _sanitize(name: str, strip: bool = False) -> str:
    out = _INVALID.sub("_", name)
    out = out.strip("_") if strip else out
    return f"_{out}" if out[:1].isdigit() else out


def prometheus_name(name: str, unit: str = "", *, counter: bool = False) -> str:
    """``gen_ai.client.operation.duration`` + ``s`` -> ``gen_ai_client_operation_duration_
    seconds`` (without ``_total``: the counter family adds it)."""
    out = _sanitize(name, strip=True) or "_"
    suffix = "" if unit.startswith("{") or unit == "1" else _sanitize(_UNITS.get(unit, unit))
    if suffix and not out.endswith(f"_{suffix}"):
        out = f"{out}_{suffix}"
    if counter and out.endswith("_total"):
        out = out[: -len("_total")]
    return out


def _label_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    text = (json.dumps(list(v), ensure_ascii=False, default=str) if isinstance(v, list | tuple)
            else str(v))
    try:
        text.encode()
    except UnicodeEncodeError:  # lone surrogates: the exposition is UTF-8
        text = text.encode(errors="replace").decode()
    return text


def _labels(attrs: Mapping[str, Any], scope: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in attrs.items():
        name = _sanitize(str(key)) or "_"
        if name.startswith("__"):  # reserved for Prometheus itself
            name = f"key{name}"
        text = _label_value(value)
        # Two keys that sanitize alike ("a.b", "a_b") share one label, values joined.
        out[name] = f"{out[name]};{text}" if name in out else text
    out["otel_scope_name"] = scope
    return out


def metric_families(metrics_data: Any) -> list[Metric]:
    """``prometheus_client`` families for an SDK ``MetricsData`` (``None``: none)."""
    families: dict[str, Metric] = {}
    if metrics_data is None:
        return []
    for rm in metrics_data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                _add(families, m, sm.scope.name)
    return list(families.values())


def _add(families: dict[str, Metric], m: Any, scope: str) -> None:
    kind = type(m.data).__name__
    monotonic = kind == "Sum" and bool(getattr(m.data, "is_monotonic", False))
    typ = "histogram" if kind == "Histogram" else "counter" if monotonic else "gauge"
    if kind not in ("Histogram", "Sum", "Gauge"):
        return  # exponential histograms: not produced by this package's views
    name = prometheus_name(m.name, m.unit or "", counter=typ == "counter")
    family = families.get(name)
    if family is None:
        family = families[name] = Metric(name, _label_value(m.description or ""), typ)
    elif family.type != typ:
        return  # the same name with another type in another scope: keep the first
    for p in m.data.data_points:
        labels = _labels(p.attributes or {}, scope)
        if typ == "histogram":
            cumulative = 0
            for bound, count in zip(p.explicit_bounds, p.bucket_counts, strict=False):
                cumulative += count
                family.add_sample(f"{name}_bucket", {**labels, "le": floatToGoString(bound)},
                                  cumulative)
            family.add_sample(f"{name}_bucket", {**labels, "le": "+Inf"}, p.count)
            family.add_sample(f"{name}_count", labels, p.count)
            family.add_sample(f"{name}_sum", labels, p.sum)
        elif typ == "counter":
            family.add_sample(f"{name}_total", labels, p.value)
        else:
            family.add_sample(name, labels, p.value)


class _Families:
    """A ``prometheus_client`` collector reading fresh data at each collection."""

    def __init__(self, pull: Callable[[], Any]) -> None:
        self._pull = pull

    def collect(self) -> Iterator[Metric]:
        yield from metric_families(self._pull())


def prometheus_text(metrics_data: Any) -> str:
    """Prometheus text exposition (format 0.0.4) of an SDK ``MetricsData``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(lambda: metrics_data))  # type: ignore[arg-type]
    return generate_latest(registry).decode()


class ScrapeEndpoint:
    """``/metrics`` on ``host:port`` (port 0: any free port), served by
    ``prometheus_client``'s HTTP server from a daemon thread; ``pull()`` is called on
    each scrape, on that thread."""

    def __init__(self, pull: Callable[[], Any], host: str, port: int) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(pull))  # type: ignore[arg-type]
        self._server, self._thread = start_http_server(port, host, registry)
        self.host = host
        self.port = int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop serving and close the socket (safe to call twice)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout_s)
        self._server.server_close()
