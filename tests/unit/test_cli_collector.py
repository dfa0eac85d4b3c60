"""`llmgine-otel collector env|validate`: the app's environment and the bundled configs."""

from __future__ import annotations

import pytest

from llmgine_otel.cli import main


def test_env_prints_the_endpoint_the_default_config_listens_on(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("LLMGINE_OTELCOL_GRPC_ENDPOINT", raising=False)
    assert main(["collector", "env"]) == 0
    assert capsys.readouterr().out.strip() == \
        "export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317"


def test_env_follows_the_collector_override(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LLMGINE_OTELCOL_GRPC_ENDPOINT", "0.0.0.0:5317")
    assert main(["collector", "env"]) == 0
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:5317" in capsys.readouterr().out


def test_tls_config_env_names_certificate_and_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collector", "env", "--config", "otelcol-tls"]) == 0
    out = capsys.readouterr().out
    assert "https://" in out and "OTEL_EXPORTER_OTLP_CERTIFICATE" in out
    assert "authorization=Bearer" in out


def test_unknown_config_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="no collector config"):
        main(["collector", "env", "--config", "nope"])
