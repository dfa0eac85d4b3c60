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


def test_config_prints_the_bundled_file_or_its_path(capsys: pytest.CaptureFixture[str]) -> None:
    from llmgine_otel.cli.collector_binary import bundled_dir

    assert main(["collector", "config", "--path"]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(bundled_dir() / "otelcol.yaml")
    assert main(["collector", "config", "--config", "gateway"]) == 0
    assert capsys.readouterr().out == (bundled_dir() / "gateway.yaml").read_text()


def test_the_package_s_collector_folder_is_the_repository_s(monkeypatch: pytest.MonkeyPatch,
                                                            ) -> None:
    """One copy: in the repository llmgine_otel/collector is collector/ (a link), and the
    wheel carries the files under the same package path (tests/e2e/test_wheel.py)."""
    from pathlib import Path

    from llmgine_otel.cli.collector_binary import bundled_dir

    monkeypatch.delenv("LLMGINE_OTEL_COLLECTOR_DIR", raising=False)
    repo_collector = Path(__file__).resolve().parents[2] / "collector"
    assert bundled_dir().resolve() == repo_collector.resolve()
