"""Every standard OTEL_* switch the package reads, one test each, against the real built
Collector (OTLP gRPC 4317-style and HTTP 4318-style receivers; TLS with a bearer token, and
mTLS): what arrives at the Collector, or that nothing does.

Each test sends one LLM call (1 span, 2 log records, GenAI and self metrics) through
``configure()`` under the variables it sets, shuts down (which flushes every signal), and
reads the Collector's file exporter output, matched by ``service.name``. "Nothing arrives" is
checked after a later, good send to the same Collector has arrived (its pipelines are FIFO).
Which receiver took the data (gRPC or HTTP) comes from the Collector's own
``otelcol_receiver_accepted_*{transport=...}`` counters.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> import support.*

from support.collector import (
    COLLECTOR_DIR,
    RunningCollector,
    read_otlp_json_lines,
    start_collector,
    wait_for,
)
from support.hermetic import left_out
from support.pki import Pki, make_pki

from llmgine_otel import configure, fast_paths
from llmgine_otel.events import LLMCallFinishedEvent, LLMCallStartedEvent
from llmgine_otel.telemetry import ShutdownReport, Telemetry

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

FAST = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "5"}
TOKEN = "switch-test-token-7d1e"
SIGNALS = ("spans", "logs", "metrics")
_ENV_SIGNAL = {"spans": "TRACES", "logs": "LOGS", "metrics": "METRICS"}


# -- Collectors --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def col(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    with start_collector(COLLECTOR_DIR / "otelcol.yaml",
                         workdir=tmp_path_factory.mktemp("col")) as c:
        yield c


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls_env(pki: Pki, client_ca: bool = False) -> dict[str, str]:
    env = {"LLMGINE_OTELCOL_TLS_CERT_FILE": str(pki.server_cert),
           "LLMGINE_OTELCOL_TLS_KEY_FILE": str(pki.server_key),
           "LLMGINE_OTELCOL_BEARER_TOKEN": TOKEN}
    if client_ca:
        env["LLMGINE_OTELCOL_TLS_CLIENT_CA_FILE"] = str(pki.ca)
    return env


@pytest.fixture(scope="module")
def tls_col(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[RunningCollector]:
    with start_collector(COLLECTOR_DIR / "otelcol-tls.yaml", _tls_env(pki),
                         workdir=tmp_path_factory.mktemp("tls")) as c:
        yield c


def _url(col: RunningCollector, protocol: str, tls: bool = False) -> str:
    url = col.grpc_endpoint if protocol == "grpc" else col.http_endpoint
    return url.replace("http://", "https://") if tls else url


# -- Sending and reading -----------------------------------------------------------------------
@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """A clean environment (no inherited OTEL_*/LLMGINE_*) plus fast batches; returns a
    setter for the variables under test."""

    def clear() -> None:
        for k in list(os.environ):
            if left_out(k):
                monkeypatch.delenv(k)
        for k, v in FAST.items():
            monkeypatch.setenv(k, v)

    def set_(_clear: bool = False, **variables: Any) -> None:
        if _clear:
            clear()
        for k, v in variables.items():
            monkeypatch.setenv(k, str(v))

    clear()
    return set_


def marker() -> str:
    return f"svc-{uuid.uuid4().hex[:10]}"


def emit(tmp_path: Path, service: str | None, messages: Any = None, **overrides: Any
         ) -> tuple[Telemetry, ShutdownReport]:
    """One LLM call through configure() under the current environment; shut down."""
    kw: dict[str, Any] = {"set_global": False, "console": False,
                          "output_dir": tmp_path / "local"}
    if service is not None:
        kw["service_name"] = service
    tel = configure(**kw, **overrides)
    start = LLMCallStartedEvent(model="gpt-test", provider="openai", messages=messages)
    tel.observe_event(start)
    tel.observe_event(LLMCallFinishedEvent(call_id=start.call_id, input_tokens=3,
                                           output_tokens=5, response_model="gpt-test"))
    return tel, tel.shutdown(timeout_s=10)


def got(col: RunningCollector, service: str) -> Counter[str]:
    """Spans, log records and metrics the Collector wrote for ``service``."""
    out: Counter[str] = Counter()
    layout = (("resourceSpans", "scopeSpans", "spans", "spans"),
              ("resourceLogs", "scopeLogs", "logRecords", "logs"),
              ("resourceMetrics", "scopeMetrics", "metrics", "metrics"))
    for obj in read_otlp_json_lines(col.file_path):
        for top, scope, items, label in layout:
            for r in obj.get(top, ()):
                attrs = {a["key"]: a["value"].get("stringValue")
                         for a in r.get("resource", {}).get("attributes", ())}
                if attrs.get("service.name") == service:
                    out[label] += sum(len(s.get(items, ())) for s in r.get(scope, ()))
    return out


def arrives(col: RunningCollector, service: str, *signals: str) -> Counter[str]:
    def check() -> Counter[str] | None:
        c = got(col, service)
        return c if all(c[s] for s in signals) else None

    return wait_for(check, timeout=30, what=f"{signals} of {service} at the Collector")


def accepted(col: RunningCollector) -> Counter[tuple[str, str]]:
    """The Collector's otelcol_receiver_accepted_* counters by (signal, transport)."""
    out: Counter[tuple[str, str]] = Counter()
    names = {"spans": "spans", "log_records": "logs", "metric_points": "metrics"}
    for line in col.metrics_text().splitlines():
        if not line.startswith("otelcol_receiver_accepted_"):
            continue
        head, _, value = line.rpartition(" ")
        metric = head.split("{")[0].removeprefix("otelcol_receiver_accepted_")
        transport = head.split('transport="')[1].split('"')[0] if "transport=" in head else ""
        if metric in names:
            out[(names[metric], transport)] += int(float(value))
    return out


def dropped(tel: Telemetry, signal: str, reason: str = "export_failed") -> int:
    return int(tel.stats.snapshot()["dropped"].get(f"{signal}:{reason}", 0))


def exported(tel: Telemetry, signal: str) -> int:
    return int(tel.stats.snapshot()["exported"].get(signal, 0))


def failed(tel: Telemetry, signal: str) -> int:
    """Items whose export failed: dropped (``export_failed``), or kept in the disk buffer
    for a later process (OTLP/gRPC keeps what failed in a way worth retrying, which a TLS
    handshake or a timeout is to gRPC: ``UNAVAILABLE``, ``DEADLINE_EXCEEDED``)."""
    return dropped(tel, signal) + int(tel.stats.snapshot()["buffered"].get(signal, 0))


# -- Endpoints and protocols -------------------------------------------------------------------
def test_OTEL_EXPORTER_OTLP_ENDPOINT_sends_every_signal_over_grpc(
        col: RunningCollector, env: Callable[..., None], tmp_path: Path) -> None:
    env(OTEL_EXPORTER_OTLP_ENDPOINT=col.grpc_endpoint)
    before, svc = accepted(col), marker()
    _tel, report = emit(tmp_path, svc)
    assert report.completed, report
    c = arrives(col, svc, *SIGNALS)
    assert c["spans"] == 1 and c["logs"] == 2
    delta = accepted(col) - before
    assert {k for k in delta if k[1] == "http"} == set(), delta
    assert all(delta[(s, "grpc")] for s in SIGNALS), delta
    assert not (tmp_path / "local").exists()  # no local files


def test_OTEL_EXPORTER_OTLP_PROTOCOL_http_sends_every_signal_over_http(
        col: RunningCollector, env: Callable[..., None], tmp_path: Path) -> None:
    env(OTEL_EXPORTER_OTLP_ENDPOINT=col.http_endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    before, svc = accepted(col), marker()
    tel, report = emit(tmp_path, svc)
    assert report.completed, report
    # The direct-encoder exporters on the fast path, the SDK's own on the public API path.
    prefix = "FastHTTP" if fast_paths.decide("otlp_http").enabled else "OTLP"
    assert type(tel.span_processors[0].counting.inner).__name__ == f"{prefix}SpanExporter"
    assert type(tel.log_processors[0].counting.inner).__name__ == f"{prefix}LogExporter"
    c = arrives(col, svc, *SIGNALS)
    assert c["spans"] == 1 and c["logs"] == 2
    delta = accepted(col) - before
    assert all(delta[(s, "http")] for s in SIGNALS) and not delta[("spans", "grpc")], delta


@pytest.mark.parametrize("signal", SIGNALS)
def test_OTEL_EXPORTER_OTLP_signal_PROTOCOL_beats_the_general_protocol(
        signal: str, col: RunningCollector, env: Callable[..., None], tmp_path: Path) -> None:
    # General: gRPC; one signal: HTTP to its own (full) endpoint.
    up = _ENV_SIGNAL[signal]
    path = {"spans": "traces", "logs": "logs", "metrics": "metrics"}[signal]
    env(OTEL_EXPORTER_OTLP_ENDPOINT=col.grpc_endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        **{f"OTEL_EXPORTER_OTLP_{up}_PROTOCOL": "http/protobuf",
           f"OTEL_EXPORTER_OTLP_{up}_ENDPOINT": f"{col.http_endpoint}/v1/{path}"})
    before, svc = accepted(col), marker()
    _tel, report = emit(tmp_path, svc)
    assert report.completed, report
    arrives(col, svc, *SIGNALS)
    delta = accepted(col) - before
    for s in SIGNALS:
        want = "http" if s == signal else "grpc"
        assert delta[(s, want)] and not delta[(s, "grpc" if want == "http" else "http")], delta


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("signal", SIGNALS)
def test_OTEL_EXPORTER_OTLP_signal_ENDPOINT_alone_sends_that_signal_only(
        signal: str, protocol: str, col: RunningCollector, env: Callable[..., None],
        tmp_path: Path) -> None:
    up = _ENV_SIGNAL[signal]
    url = col.grpc_endpoint if protocol == "grpc" else \
        f"{col.http_endpoint}/v1/{up.lower()}"  # per-signal OTLP/HTTP URLs are used as given
    env(**{f"OTEL_EXPORTER_OTLP_{up}_ENDPOINT": url, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol})
    svc = marker()
    _tel, report = emit(tmp_path, svc)
    assert report.completed, report
    c = arrives(col, svc, signal)
    local = (tmp_path / "local" / "telemetry.jsonl").read_text()
    for s in SIGNALS:
        key = {"spans": '"resourceSpans"', "logs": '"resourceLogs"',
               "metrics": '"resourceMetrics"'}[s]
        if s == signal:
            assert key not in local  # sent, not written locally
        else:
            assert key in local and c[s] == 0  # the embedded default, not the Collector


# -- Exporter choice ---------------------------------------------------------------------------
def _control(col: RunningCollector, env: Callable[..., None], tmp_path: Path) -> None:
    """A good send to ``col``; returns once it arrived (earlier sends have, too)."""
    env(_clear=True, OTEL_EXPORTER_OTLP_ENDPOINT=col.grpc_endpoint)
    svc = marker()
    emit(tmp_path / "control", svc)
    arrives(col, svc, *SIGNALS)


# Metrics: a self-metric, collected at shutdown whatever the order in which the span and
# metric pipelines stop.
CONSOLE_MARK = {"spans": '"name": "chat gpt-test"',
                "logs": '"event_name": "llmgine.llm.call.start"',
                "metrics": '"name": "llmgine.observability.events"'}


@pytest.mark.parametrize("value", ["none", "console", "otlp,console"])
@pytest.mark.parametrize("signal", SIGNALS)
def test_OTEL_signal_EXPORTER(signal: str, value: str, col: RunningCollector,
                              env: Callable[..., None], tmp_path: Path,
                              capfd: pytest.CaptureFixture[str]) -> None:
    var = f"OTEL_{_ENV_SIGNAL[signal]}_EXPORTER"
    env(OTEL_EXPORTER_OTLP_ENDPOINT=col.grpc_endpoint, **{var: value})
    svc = marker()
    tel, report = emit(tmp_path, svc)
    assert report.completed, report
    out = capfd.readouterr().out
    others = [s for s in SIGNALS if s != signal]
    c = arrives(col, svc, *others)
    if "otlp" in value:
        c = arrives(col, svc, *SIGNALS)
    else:
        _control(col, env, tmp_path)
        c = got(col, svc)
        assert c[signal] == 0, c  # nothing of this signal reached the Collector
    if "console" in value:
        assert CONSOLE_MARK[signal] in out
    else:
        assert CONSOLE_MARK[signal] not in out
    for s in others:
        assert CONSOLE_MARK[s] not in out
    if value == "none" and signal == "spans":
        assert tel.span_processors == []  # no span pipeline, no export thread
    if value == "none" and signal == "logs":
        assert tel.log_processors == [] and tel.logger_provider is None


def _disabled_run(tmp_path: Path, service: str) -> Telemetry:
    threads = set(threading.enumerate())
    tel = configure(set_global=False, service_name=service)
    assert set(threading.enumerate()) <= threads  # no exporter, reader or cost thread
    start = LLMCallStartedEvent(model="gpt-test", provider="openai")
    tel.observe_event(start)
    tel.observe_event(LLMCallFinishedEvent(call_id=start.call_id, input_tokens=3))
    assert set(threading.enumerate()) <= threads
    assert tel.shutdown().completed
    assert tel.stats.snapshot()["produced"] == {}
    assert list(tmp_path.iterdir()) == []  # no llmgine-telemetry folder
    return tel


def test_OTEL_SDK_DISABLED_produces_nothing(col: RunningCollector, env: Callable[..., None],
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    env(OTEL_EXPORTER_OTLP_ENDPOINT=col.grpc_endpoint, OTEL_SDK_DISABLED="true")
    monkeypatch.chdir(tmp_path)
    svc = marker()
    _disabled_run(tmp_path, svc)
    _control(col, env, tmp_path / "c")
    assert got(col, svc) == Counter()


def test_OTEL_SDK_DISABLED_without_endpoint_writes_no_files(
        env: Callable[..., None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env(OTEL_SDK_DISABLED="TRUE")
    monkeypatch.chdir(tmp_path)
    _disabled_run(tmp_path, marker())


# -- Resource ----------------------------------------------------------------------------------
def test_OTEL_SERVICE_NAME_beats_OTEL_RESOURCE_ATTRIBUTES(
        col: RunningCollector, env: Callable[..., None], tmp_path: Path) -> None:
    svc, other = marker(), marker()
    env(OTEL_EXPORTER_OTLP_ENDPOINT=col.grpc_endpoint, OTEL_SERVICE_NAME=svc,
        OTEL_RESOURCE_ATTRIBUTES=f"service.name={other},deployment.environment=test")
    emit(tmp_path, None)
    arrives(col, svc, *SIGNALS)
    assert got(col, other) == Counter()


def test_OTEL_RESOURCE_ATTRIBUTES_service_name_beats_the_default(
        col: RunningCollector, env: Callable[..., None], tmp_path: Path) -> None:
    svc = marker()
    env(OTEL_EXPORTER_OTLP_ENDPOINT=col.grpc_endpoint,
        OTEL_RESOURCE_ATTRIBUTES=f"service.name={svc},team=genai")
    emit(tmp_path, None)
    arrives(col, svc, *SIGNALS)


# -- Transport security and headers ------------------------------------------------------------
PROTOCOLS = ["grpc", "http/protobuf"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_OTEL_EXPORTER_OTLP_HEADERS_carry_the_token_per_signal_first(
        protocol: str, tls_col: RunningCollector, pki: Pki, env: Callable[..., None],
        tmp_path: Path) -> None:
    env(OTEL_EXPORTER_OTLP_ENDPOINT=_url(tls_col, protocol, tls=True),
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol, OTEL_EXPORTER_OTLP_CERTIFICATE=pki.ca,
        OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20wrong",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS=f"authorization=Bearer%20{TOKEN}")
    wrong = marker()
    bad_tel, _ = emit(tmp_path / "bad", wrong)
    assert exported(bad_tel, "spans") == 1  # the per-signal header is right
    assert dropped(bad_tel, "logs") == 2 and exported(bad_tel, "logs") == 0
    env(OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{TOKEN}")
    right = marker()
    _tel, report = emit(tmp_path / "good", right)
    assert report.completed, report
    arrives(tls_col, right, *SIGNALS)
    c = got(tls_col, wrong)
    assert c["spans"] == 1 and c["logs"] == 0 and c["metrics"] == 0, c


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_OTEL_EXPORTER_OTLP_CERTIFICATE_trusts_the_collectors_ca(
        protocol: str, tls_col: RunningCollector, pki: Pki, env: Callable[..., None],
        tmp_path: Path) -> None:
    env(OTEL_EXPORTER_OTLP_ENDPOINT=_url(tls_col, protocol, tls=True),
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol, OTEL_EXPORTER_OTLP_TIMEOUT="3",
        OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{TOKEN}")
    untrusted = marker()
    bad_tel, _ = emit(tmp_path / "bad", untrusted)  # system CAs only: the handshake fails
    assert exported(bad_tel, "spans") == 0 and failed(bad_tel, "spans") == 1
    env(OTEL_EXPORTER_OTLP_CERTIFICATE=pki.ca)
    svc = marker()
    _tel, report = emit(tmp_path / "good", svc)
    assert report.completed, report
    arrives(tls_col, svc, *SIGNALS)
    assert got(tls_col, untrusted) == Counter()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_OTEL_EXPORTER_OTLP_signal_CERTIFICATE_for_that_signal_only(
        protocol: str, tls_col: RunningCollector, pki: Pki, env: Callable[..., None],
        tmp_path: Path) -> None:
    env(OTEL_EXPORTER_OTLP_ENDPOINT=_url(tls_col, protocol, tls=True),
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol, OTEL_EXPORTER_OTLP_TIMEOUT="3",
        OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{TOKEN}",
        OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE=pki.ca)
    svc = marker()
    tel, _ = emit(tmp_path, svc)
    assert exported(tel, "spans") == 1
    assert exported(tel, "logs") == 0 and failed(tel, "logs") == 2
    c = arrives(tls_col, svc, "spans")
    assert c["logs"] == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_OTEL_EXPORTER_OTLP_CLIENT_KEY_and_CLIENT_CERTIFICATE_for_mtls(
        protocol: str, pki: Pki, env: Callable[..., None], tmp_path: Path) -> None:
    with start_collector(COLLECTOR_DIR / "otelcol-tls.yaml", _tls_env(pki, client_ca=True),
                         workdir=tmp_path / "mtls") as mtls:
        env(OTEL_EXPORTER_OTLP_ENDPOINT=_url(mtls, protocol, tls=True),
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol, OTEL_EXPORTER_OTLP_TIMEOUT="3",
            OTEL_EXPORTER_OTLP_CERTIFICATE=pki.ca,
            OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{TOKEN}")
        anonymous = marker()
        bad_tel, _ = emit(tmp_path / "bad", anonymous)  # no client certificate: refused
        assert exported(bad_tel, "spans") == 0 and failed(bad_tel, "spans") == 1
        env(OTEL_EXPORTER_OTLP_CLIENT_KEY=pki.client_key,
            OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=pki.client_cert)
        svc = marker()
        _tel, report = emit(tmp_path / "good", svc)
        assert report.completed, report
        arrives(mtls, svc, *SIGNALS)
        assert got(mtls, anonymous) == Counter()


@pytest.fixture(scope="module")
def mtls_col(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[RunningCollector]:
    with start_collector(COLLECTOR_DIR / "otelcol-tls.yaml", _tls_env(pki, client_ca=True),
                         workdir=tmp_path_factory.mktemp("mtls")) as c:
        yield c


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("signal", SIGNALS)
def test_OTEL_EXPORTER_OTLP_signal_CLIENT_KEY_and_CLIENT_CERTIFICATE_beat_the_general_ones(
        signal: str, protocol: str, mtls_col: RunningCollector, pki: Pki,
        env: Callable[..., None], tmp_path: Path) -> None:
    # General: a client certificate of another CA, which the mTLS receiver refuses; one
    # signal: the client certificate it trusts (the CA file stays the general one).
    other = make_pki(tmp_path / "other-pki")
    up = _ENV_SIGNAL[signal]
    env(OTEL_EXPORTER_OTLP_ENDPOINT=_url(mtls_col, protocol, tls=True),
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol, OTEL_EXPORTER_OTLP_TIMEOUT="3",
        OTEL_EXPORTER_OTLP_CERTIFICATE=pki.ca,
        OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{TOKEN}",
        OTEL_EXPORTER_OTLP_CLIENT_KEY=other.client_key,
        OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=other.client_cert,
        **{f"OTEL_EXPORTER_OTLP_{up}_CLIENT_KEY": pki.client_key,
           f"OTEL_EXPORTER_OTLP_{up}_CLIENT_CERTIFICATE": pki.client_cert})
    svc = marker()
    tel, _ = emit(tmp_path / "run", svc)
    arrives(mtls_col, svc, signal)
    counted = {"spans": 1, "logs": 2}  # metrics have no export counter
    for s, n in counted.items():
        if s == signal:
            assert exported(tel, s) == n and failed(tel, s) == 0, tel.stats.snapshot()
        else:
            assert exported(tel, s) == 0 and failed(tel, s) == n, tel.stats.snapshot()
    # The general client certificate, made the trusted one: every signal arrives (after
    # the first run's, had any of them been taken).
    env(OTEL_EXPORTER_OTLP_CLIENT_KEY=pki.client_key,
        OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=pki.client_cert)
    control = marker()
    emit(tmp_path / "control", control)
    arrives(mtls_col, control, *SIGNALS)
    c = got(mtls_col, svc)
    assert all(bool(c[s]) == (s == signal) for s in SIGNALS), c


def test_OTEL_EXPORTER_OTLP_INSECURE_for_an_endpoint_without_scheme(
        col: RunningCollector, env: Callable[..., None], tmp_path: Path) -> None:
    env(OTEL_EXPORTER_OTLP_ENDPOINT=col.grpc_hostport, OTEL_EXPORTER_OTLP_TIMEOUT="3",
        OTEL_EXPORTER_OTLP_INSECURE="false")  # TLS to a plaintext receiver: fails
    tls_attempt = marker()
    bad_tel, _ = emit(tmp_path / "bad", tls_attempt)
    assert exported(bad_tel, "spans") == 0 and failed(bad_tel, "spans") == 1
    env(OTEL_EXPORTER_OTLP_INSECURE="true")
    svc = marker()
    _tel, report = emit(tmp_path / "good", svc)
    assert report.completed, report
    arrives(col, svc, *SIGNALS)
    assert got(col, tls_attempt) == Counter()


def test_OTEL_EXPORTER_OTLP_signal_INSECURE_beats_the_general_one(
        col: RunningCollector, env: Callable[..., None], tmp_path: Path) -> None:
    env(OTEL_EXPORTER_OTLP_ENDPOINT=col.grpc_hostport, OTEL_EXPORTER_OTLP_TIMEOUT="3",
        OTEL_EXPORTER_OTLP_INSECURE="false", OTEL_EXPORTER_OTLP_LOGS_INSECURE="true",
        LLMGINE_OTEL_METRICS="false")
    svc = marker()
    tel, _ = emit(tmp_path, svc)
    assert exported(tel, "logs") == 2 and exported(tel, "spans") == 0
    c = arrives(col, svc, "logs")
    assert c["spans"] == 0


# -- Timeout and compression -------------------------------------------------------------------
@contextlib.contextmanager
def _blackhole() -> Iterator[int]:
    """Accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    srv.settimeout(0.05)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conns.append(srv.accept()[0])

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join(2)
        for c in conns:
            c.close()
        srv.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_OTEL_EXPORTER_OTLP_TIMEOUT_bounds_each_export(
        protocol: str, env: Callable[..., None], tmp_path: Path) -> None:
    with _blackhole() as port:
        env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol, OTEL_EXPORTER_OTLP_TIMEOUT="1",
            LLMGINE_OTEL_METRICS="false")
        t0 = time.monotonic()
        tel, report = emit(tmp_path, marker())
        took = time.monotonic() - t0
    # The export gave up after ~1 s (the default, 10 s, would hit the 10 s shutdown bound
    # and count the batch as shutdown_timeout instead); over gRPC the batch is then kept in
    # the disk buffer, over HTTP (no buffer yet) dropped.
    assert took < 6, took
    assert failed(tel, "spans") == 1 and dropped(tel, "spans", "shutdown_timeout") == 0
    assert report.undelivered["spans"] + report.buffered.get("spans", 0) == 1


class _CountingProxy:
    """A TCP proxy to ``target`` counting the bytes clients send through it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sent = 0
        self._lock = threading.Lock()
        self._srv = socket.socket()
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(16)
        self._srv.settimeout(0.05)
        self.port = self._srv.getsockname()[1]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client = self._srv.accept()[0]
            except OSError:
                continue
            upstream = socket.create_connection(self.target)
            for a, b, count in ((client, upstream, True), (upstream, client, False)):
                t = threading.Thread(target=self._pump, args=(a, b, count), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, a: socket.socket, b: socket.socket, count: bool) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                if count:
                    with self._lock:
                        self.sent += len(data)
                b.sendall(data)
        with contextlib.suppress(OSError):
            b.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        self._srv.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_OTEL_EXPORTER_OTLP_COMPRESSION_gzip_shrinks_what_is_sent(
        protocol: str, col: RunningCollector, env: Callable[..., None], tmp_path: Path) -> None:
    url = _url(col, protocol)
    host, port = url.removeprefix("http://").split(":")
    text = "the quick brown fox jumps over the lazy dog " * 300  # ~13 KB, compressible
    sizes = {}
    for compression in ("none", "gzip"):
        proxy = _CountingProxy((host, int(port)))
        try:
            env(_clear=True, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{proxy.port}",
                OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
                OTEL_EXPORTER_OTLP_COMPRESSION=compression,
                OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="SPAN_ONLY",
                LLMGINE_OTEL_LOGS="false", LLMGINE_OTEL_METRICS="false")
            svc = marker()
            _tel, report = emit(tmp_path / compression, svc,
                               messages=[{"role": "user", "content": text}])
            assert report.completed, report
            arrives(col, svc, "spans")
            sizes[compression] = proxy.sent
        finally:
            proxy.close()
    assert sizes["none"] > 13_000, sizes
    assert sizes["gzip"] < sizes["none"] / 3, sizes


def _signal_url(base: str, protocol: str, signal: str) -> str:
    """``signal``'s own endpoint at ``base`` (per-signal OTLP/HTTP URLs are used as given)."""
    path = {"spans": "traces", "logs": "logs", "metrics": "metrics"}[signal]
    return base if protocol == "grpc" else f"{base}/v1/{path}"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("signal", SIGNALS)
def test_OTEL_EXPORTER_OTLP_signal_TIMEOUT_beats_the_general_one(
        signal: str, protocol: str, col: RunningCollector, env: Callable[..., None],
        tmp_path: Path) -> None:
    # General: 3 s; one signal: 0.5 s. One signal at a time goes to an endpoint that never
    # answers (its own endpoint variable), the others to the Collector: shutdown waits for
    # the export to the black hole, which gives up after its signal's timeout. Over HTTP
    # the batch is then dropped; over gRPC the disk buffer keeps it, and its shipper,
    # stopping, tries it once more from disk: two timeouts.
    up = _ENV_SIGNAL[signal]
    other = "logs" if signal == "spans" else "spans"
    counted = {"spans": 1, "logs": 2}  # metrics have no export counter
    took = {}
    with _blackhole() as port:
        for slow in (signal, other):
            env(_clear=True, OTEL_EXPORTER_OTLP_ENDPOINT=_url(col, protocol),
                OTEL_EXPORTER_OTLP_PROTOCOL=protocol, OTEL_EXPORTER_OTLP_TIMEOUT="3",
                **{f"OTEL_EXPORTER_OTLP_{up}_TIMEOUT": "0.5",
                   f"OTEL_EXPORTER_OTLP_{_ENV_SIGNAL[slow]}_ENDPOINT":
                       _signal_url(f"http://127.0.0.1:{port}", protocol, slow)})
            svc = marker()
            t0 = time.monotonic()
            tel, _ = emit(tmp_path / slow, svc)
            took[slow] = time.monotonic() - t0
            arrives(col, svc, *(s for s in SIGNALS if s != slow))
            if slow in counted:  # gave up at its timeout, not at the 10 s shutdown bound
                assert failed(tel, slow) == counted[slow], tel.stats.snapshot()
                assert dropped(tel, slow, "shutdown_timeout") == 0, tel.stats.snapshot()
            for s in counted:
                if s != slow:
                    assert exported(tel, s) == counted[s], tel.stats.snapshot()
    assert took[signal] < 2, took  # its own 0.5 s (once or twice), not the general 3 s
    assert 2.9 < took[other] < 8, took  # the general 3 s, not 0.5 s nor the shutdown bound


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("signal", SIGNALS)
def test_OTEL_EXPORTER_OTLP_signal_COMPRESSION_beats_the_general_one(
        signal: str, protocol: str, col: RunningCollector, env: Callable[..., None],
        tmp_path: Path) -> None:
    # Each signal through its own byte-counting proxy (its own endpoint variable), every one
    # carrying ~13 KB of compressible text (in the span, the log records and, as the model
    # name, in the metrics' attributes). Sizes with no compression anywhere, then with one
    # signal's compression against the general one both ways.
    up = _ENV_SIGNAL[signal]
    url = _url(col, protocol)
    host, port = url.removeprefix("http://").split(":")
    text = "the quick brown fox jumps over the lazy dog " * 300
    model = "gpt-" + "lazy-dog-" * 200
    runs = {"none": {}, "signal-gzip": {f"OTEL_EXPORTER_OTLP_{up}_COMPRESSION": "gzip"},
            "general-gzip": {"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
                             f"OTEL_EXPORTER_OTLP_{up}_COMPRESSION": "none"}}
    sizes: dict[str, dict[str, int]] = {}
    for run, variables in runs.items():
        proxies = {s: _CountingProxy((host, int(port))) for s in SIGNALS}
        try:
            env(_clear=True, **{
                "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_AND_EVENT",
                **{f"OTEL_EXPORTER_OTLP_{_ENV_SIGNAL[s]}_ENDPOINT":
                   _signal_url(f"http://127.0.0.1:{p.port}", protocol, s)
                   for s, p in proxies.items()},
                **variables})
            svc = marker()
            tel = configure(set_global=False, console=False, output_dir=tmp_path / run / "local",
                            service_name=svc)
            start = LLMCallStartedEvent(model=model, provider="openai",
                                        messages=[{"role": "user", "content": text}])
            tel.observe_event(start)
            tel.observe_event(LLMCallFinishedEvent(call_id=start.call_id, input_tokens=3,
                                                   output_tokens=5, response_model=model))
            report = tel.shutdown(timeout_s=10)
            assert report.completed, report
            arrives(col, svc, *SIGNALS)
            sizes[run] = {s: p.sent for s, p in proxies.items()}
        finally:
            for p in proxies.values():
                p.close()
    base, gz, ungz = sizes["none"], sizes["signal-gzip"], sizes["general-gzip"]
    assert all(base[s] > 13_000 for s in SIGNALS), sizes
    for s in SIGNALS:
        if s == signal:  # its own variable, over the general one
            assert gz[s] < base[s] / 3 and ungz[s] > base[s] * 0.8, sizes
        else:  # the general one
            assert gz[s] > base[s] * 0.8 and ungz[s] < base[s] / 3, sizes
