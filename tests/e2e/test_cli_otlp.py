"""The CLI speaks both protocols, against the real built Collector: ``doctor --json`` against
a live and a dead endpoint, gRPC and HTTP, plain and TLS (CA + bearer token); ``replay`` over
HTTP and gRPC with TLS, from the exporter's variables. Neither creates a directory."""

from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> import support.*

from support.collector import (
    COLLECTOR_DIR,
    RunningCollector,
    iter_logs,
    iter_spans,
    read_otlp_json_lines,
    start_collector,
    wait_for,
)
from support.pki import Pki, make_pki

from llmgine_otel import configure
from llmgine_otel.cli import main
from llmgine_otel.events import LLMCallFinishedEvent, LLMCallStartedEvent

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

TOKEN = "cli-test-token-2b9c"
PROTOCOLS = ["grpc", "http/protobuf"]


@pytest.fixture(scope="module")
def col(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    with start_collector(COLLECTOR_DIR / "otelcol.yaml",
                         workdir=tmp_path_factory.mktemp("col")) as c:
        yield c


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_col(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[RunningCollector]:
    env = {"LLMGINE_OTELCOL_TLS_CERT_FILE": str(pki.server_cert),
           "LLMGINE_OTELCOL_TLS_KEY_FILE": str(pki.server_key),
           "LLMGINE_OTELCOL_BEARER_TOKEN": TOKEN}
    with start_collector(COLLECTOR_DIR / "otelcol-tls.yaml", env,
                         workdir=tmp_path_factory.mktemp("tls")) as c:
        yield c


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., None]:
    for k in list(os.environ):
        if k.startswith(("OTEL_", "LLMGINE_OTEL_", "LLMGINE_OBSERVABILITY_")):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)

    def set_(**variables: Any) -> None:
        for k, v in variables.items():
            monkeypatch.setenv(k, str(v))

    return set_


def url(col: RunningCollector, protocol: str, tls: bool = False) -> str:
    u = col.grpc_endpoint if protocol == "grpc" else col.http_endpoint
    return u.replace("http://", "https://") if tls else u


def doctor_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["doctor", "--json", "--timeout", "2", *argv])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_doctor_json_live_endpoint(protocol: str, tls: bool, col: RunningCollector,
                                   tls_col: RunningCollector, pki: Pki,
                                   env: Callable[..., None], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    target = tls_col if tls else col
    env(OTEL_EXPORTER_OTLP_ENDPOINT=url(target, protocol, tls),
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
    if tls:
        env(OTEL_EXPORTER_OTLP_CERTIFICATE=pki.ca,
            OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{TOKEN}")
    code, r = doctor_json(capsys)
    assert code == 0, r
    assert [(c["signal"], c["protocol"], c["ok"]) for c in r["checks"]] == [
        (s, protocol, True) for s in ("traces", "logs", "metrics")]
    assert r["signals"]["traces"]["protocol"] == {"value": protocol,
                                                  "source": "OTEL_EXPORTER_OTLP_PROTOCOL"}
    assert r["signals"]["traces"]["endpoint"]["source"] == "OTEL_EXPORTER_OTLP_ENDPOINT"
    if protocol != "grpc":
        assert r["signals"]["logs"]["endpoint"]["value"].endswith("/v1/logs")
    if tls:
        assert "(TLS)" in r["checks"][0]["message"]
        assert r["signals"]["traces"]["options"]["headers"] == {
            "value": "set", "source": "OTEL_EXPORTER_OTLP_HEADERS"}  # never the token
        env(OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20wrong")
        code, r = doctor_json(capsys)
        assert code == 1 and "refused the credentials" in r["checks"][0]["message"]
        other_ca = make_pki(tmp_path.parent / f"{tmp_path.name}-other").ca
        env(OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{TOKEN}",
            OTEL_EXPORTER_OTLP_CERTIFICATE=other_ca)  # another CA: untrusted
        code, r = doctor_json(capsys)
        assert code == 1, r
        assert "TLS" in r["checks"][0]["message"]
    assert list(tmp_path.iterdir()) == []  # no llmgine-telemetry folder


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_doctor_json_dead_endpoint(protocol: str, env: Callable[..., None], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env(OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
    code, r = doctor_json(capsys, "--endpoint", f"http://127.0.0.1:{port}")
    assert code == 1 and not r["ok"]
    assert all(not c["ok"] and "nothing listens" in c["message"] for c in r["checks"])
    assert r["signals"]["traces"]["endpoint"]["source"] == "argument"
    assert list(tmp_path.iterdir()) == []


def test_doctor_names_the_protocol_mismatch(col: RunningCollector, env: Callable[..., None],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    env(OTEL_EXPORTER_OTLP_ENDPOINT=col.grpc_endpoint)  # gRPC port, HTTP protocol
    code, r = doctor_json(capsys, "--protocol", "http/protobuf")
    assert code == 1, r
    assert r["signals"]["traces"]["protocol"] == {"value": "http/protobuf",
                                                  "source": "argument"}


def _saved_session(folder: Path, service: str) -> None:
    """Local files from a real configure() run (the embedded default)."""
    tel = configure(set_global=False, console=False, output_dir=folder, service_name=service)
    start = LLMCallStartedEvent(model="gpt-replay", provider="openai")
    tel.observe_event(start)
    tel.observe_event(LLMCallFinishedEvent(call_id=start.call_id, input_tokens=2))
    assert tel.shutdown().completed


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_replay_with_tls_and_headers_from_the_exporter_variables(
        protocol: str, tls_col: RunningCollector, pki: Pki, env: Callable[..., None],
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    service = f"replay-{uuid.uuid4().hex[:8]}"
    saved = tmp_path / "saved"
    _saved_session(saved, service)
    local = list(iter_spans(read_otlp_json_lines(saved)))
    assert [s.name for s in local] == ["chat gpt-replay"]
    env(OTEL_EXPORTER_OTLP_ENDPOINT=url(tls_col, protocol, tls=True),
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol, OTEL_EXPORTER_OTLP_CERTIFICATE=pki.ca,
        OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{TOKEN}")
    code = main(["replay", str(saved), "--timeout", "5"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "1 spans, 2 logs" in err

    def arrived() -> Any:
        spans = [s for s in iter_spans(read_otlp_json_lines(tls_col.file_path))
                 if s.resource.get("service.name") == service]
        logs = [r for r in iter_logs(read_otlp_json_lines(tls_col.file_path))
                if r.resource.get("service.name") == service]
        return (spans, logs) if spans and len(logs) == 2 else None

    spans, _logs = wait_for(arrived, timeout=30, what="replayed telemetry")
    assert [(s.trace_id, s.span_id, s.start_ns) for s in spans] == \
        [(s.trace_id, s.span_id, s.start_ns) for s in local]
    # The same without the CA: the handshake fails, and replay says so.
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_CERTIFICATE")
    code = main(["replay", str(saved), "--timeout", "2"])
    err = capsys.readouterr().err
    assert code != 0 and ("cannot reach" in err or "not sent" in err), err
    assert list(tmp_path.iterdir()) == [saved]
