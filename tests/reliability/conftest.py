"""Fixtures for the reliability suite: the real built Collector, telemetry wired to it with
documented SDK settings, and the figures file that RELIABILITY.md is refreshed from."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:  # tests/ -> import support.* (appended: never shadow site-packages)
    sys.path.append(_TESTS)
_UNIT = str(Path(_TESTS) / "unit")
if _UNIT not in sys.path:  # test_bad_input imports otel_kit; tests/unit is collected after us
    sys.path.append(_UNIT)

from support.collector import COLLECTOR_DIR, RunningCollector, start_collector  # noqa: E402
from support.hermetic import left_out  # noqa: E402

from llmgine_otel import configure  # noqa: E402
from llmgine_otel.telemetry import Telemetry  # noqa: E402

FIGURES_PATH = Path(__file__).resolve().parent / ".last-figures.json"
_figures_lock = threading.Lock()

# SDK settings used by every test here (documented in RELIABILITY.md):
#  - schedule delays 200 ms: a batch leaves within 0.2 s even at low rates (the defaults,
#    5 s for spans and 1 s for logs, only delay delivery; they change no accounting);
#  - export batches of 256 (default 512): the exporter serializes a whole batch in one C
#    call that holds the GIL (~7 ms for 512 log records here), which a publish call may
#    have to wait for; half the batch, half that wait;
#  - OTLP timeout 5 s (default 10 s): one export call, with its retries and backoff, gives
#    up after 5 s, so a dead Collector costs at most 5 s of exporter time per batch. Not
#    lower: the deadline also covers encoding the batch and reconnecting, and at 2 s
#    batches failed with DEADLINE_EXCEEDED right after the Collector came back.
#  - one trace per session (the package default is one per command): the figures in
#    RELIABILITY.md count spans per session trace and were measured so; the trace shape
#    does not change queues, export, shutdown or accounting (the command shape adds one
#    span per session, its end). test_interleaving runs both shapes.
SDK_ENV = {
    "LLMGINE_OTEL_TRACE_PER": "session",
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    "OTEL_BLRP_SCHEDULE_DELAY": "200",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "256",
    "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "256",
    "OTEL_EXPORTER_OTLP_TIMEOUT": "5",
}


def record_figures(test: str, **values: Any) -> None:
    """Merge this test's measured figures into tests/reliability/.last-figures.json."""
    with _figures_lock:
        try:
            data = json.loads(FIGURES_PATH.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            data = {}
        values["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        data[test] = values
        FIGURES_PATH.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"\n[figures] {test}: {json.dumps(values, sort_keys=True)}")


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A hermetic environment: no inherited OTEL_*/LLMGINE_* settings, plus SDK_ENV."""
    for k in list(os.environ):
        if left_out(k):
            monkeypatch.delenv(k, raising=False)
    for k, v in SDK_ENV.items():
        monkeypatch.setenv(k, v)
    return dict(SDK_ENV)


@contextlib.contextmanager
def collector(workdir: Path, config: str = "otelcol.yaml", env: dict[str, str] | None = None,
              **kw: Any) -> Iterator[RunningCollector]:
    """The real otelcol-llmgine with collector/<config>; always stopped."""
    col = start_collector(COLLECTOR_DIR / config, env or {}, workdir=workdir, **kw)
    try:
        yield col
    finally:
        col.stop()


def make_telemetry(endpoint: str, tmp_path: Path, **overrides: Any) -> Telemetry:
    """configure() against ``endpoint`` (gRPC), not global, no console summary."""
    return configure(set_global=False, endpoint=endpoint, console=False,
                     output_dir=tmp_path / "local", **overrides)


@contextlib.contextmanager
def telemetry(endpoint: str, tmp_path: Path, **overrides: Any) -> Iterator[Telemetry]:
    tel = make_telemetry(endpoint, tmp_path, **overrides)
    try:
        yield tel
    finally:
        tel.shutdown()


def accounting(tel: Telemetry) -> dict[str, Any]:
    """produced / exported / dropped-by-reason / on disk now (buffered) / disk buffer events
    (spilled, resent, adopted, expired, dropped_disk_full) per signal, from telemetry.stats."""
    snap = tel.stats.snapshot()
    out: dict[str, Any] = {}
    for sig in ("spans", "logs"):
        dropped = {k.split(":", 1)[1]: v for k, v in snap["dropped"].items()
                   if k.startswith(sig + ":")}
        buffer = {k.split(":", 1)[1]: v for k, v in snap["buffer"].items()
                  if k.startswith(sig + ":")}
        out[sig] = {"produced": snap["produced"].get(sig, 0),
                    "exported": snap["exported"].get(sig, 0),
                    "dropped": dropped,
                    "dropped_total": sum(dropped.values()),
                    "buffered": snap["buffered"].get(sig, 0),
                    "buffer": buffer}
    out["outcomes"] = snap["outcomes"]
    return out
