"""Every configuration in collector/ validates with the binaries we build (no Docker needed).

Needs Go on first run (collector/build.sh, collector/build-jaeger.sh; cached afterwards).
A failed build FAILS these tests, it never skips them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> import support.*

from support.collector import (
    BUILD_SCRIPT,
    COLLECTOR_DIR,
    JAEGER_BUILD_SCRIPT,
    collector_binary,
    jaeger_binary,
    validate_config,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

# Configs that are not collector configs or are validated elsewhere in this file.
NOT_COLLECTOR_CONFIGS = {
    "builder-config.yaml",  # ocb manifest
    "docker-compose.yaml",  # compose file (its collector command is validated below)
    "tempo.yaml",  # Tempo config
}


@pytest.fixture(scope="module")
def otelcol() -> str:
    return collector_binary()


def _tls_material(tmp: Path) -> dict[str, str]:
    key, crt = tmp / "server.key", tmp / "server.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(crt),
        ],
        check=True,
        capture_output=True,
    )
    return {
        "LLMGINE_OTELCOL_TLS_CERT_FILE": str(crt),
        "LLMGINE_OTELCOL_TLS_KEY_FILE": str(key),
        "LLMGINE_OTELCOL_BEARER_TOKEN": "test-token",
    }


def _base_env(tmp: Path) -> dict[str, str]:
    """Test values for every variable the configs read (all on 127.0.0.1, all paths in tmp)."""
    return {
        "LLMGINE_OTELCOL_GRPC_ENDPOINT": "127.0.0.1:24317",
        "LLMGINE_OTELCOL_HTTP_ENDPOINT": "127.0.0.1:24318",
        "LLMGINE_OTELCOL_HEALTH_ENDPOINT": "127.0.0.1:23133",
        "LLMGINE_OTELCOL_METRICS_HOST": "127.0.0.1",
        "LLMGINE_OTELCOL_METRICS_PORT": "28888",
        "LLMGINE_OTELCOL_PROMETHEUS_ENDPOINT": "127.0.0.1:28889",
        "LLMGINE_OTELCOL_FILE": str(tmp / "out" / "otel.jsonl"),
        "LLMGINE_OTELCOL_QUEUE_DIR": str(tmp / "queue"),
        "LLMGINE_OTELCOL_BACKEND_ENDPOINT": "127.0.0.1:24319",
        "LLMGINE_OTELCOL_DEBUG_VERBOSITY": "detailed",
        "LLMGINE_GATEWAYS": "127.0.0.1:24417,127.0.0.1:24517",
        "LLMGINE_TAIL_DECISION_WAIT": "1s",
        "LLMGINE_TAIL_SAMPLE_PERCENT": "50",
        "LLMGINE_SLOW_LLM_MS": "250",
        "LLMGINE_KAFKA_BROKERS": "127.0.0.1:29092",
    }


# name -> (config files merged in order, extra env)
CASES: dict[str, tuple[list[str], dict[str, str]]] = {
    "otelcol.yaml": (["otelcol.yaml"], {}),
    "otelcol.yaml (defaults only)": (["otelcol.yaml"], {"__no_env__": "1"}),
    "otelcol-tls.yaml": (["otelcol-tls.yaml"], {"__tls__": "1"}),
    "otelcol-tls.yaml + mTLS": (["otelcol-tls.yaml"], {"__tls__": "1", "__mtls__": "1"}),
    "agent.yaml": (["agent.yaml"], {}),
    "agent.yaml (defaults only)": (["agent.yaml"], {"__no_env__": "1"}),
    "agent.yaml (YAML list of gateways)": (
        ["agent.yaml"],
        {"LLMGINE_GATEWAYS": "[gw-a:4317, gw-b:4317, gw-c:4317]"},
    ),
    "gateway.yaml": (["gateway.yaml"], {}),
    "gateway.yaml (defaults only)": (["gateway.yaml"], {"__no_env__": "1"}),
    "gateway.yaml + backend": (
        ["gateway.yaml"],
        {"LLMGINE_GATEWAY_TRACE_EXPORTERS": "[file, otlp_grpc/backend, debug]"},
    ),
    "docker-compose collector (otelcol.yaml + compose-overlay.yaml)": (
        ["otelcol.yaml", "compose-overlay.yaml"],
        {
            "LLMGINE_OTELCOL_GRPC_ENDPOINT": "0.0.0.0:4317",
            "LLMGINE_OTELCOL_TEMPO_ENDPOINT": "tempo:4317",
            "LLMGINE_OTELCOL_BACKEND_ENDPOINT": "jaeger:4317",
            "LLMGINE_OTELCOL_METRICS_HOST": "0.0.0.0",
        },
    ),
}


def _env_for(extra: dict[str, str], tmp: Path) -> dict[str, str]:
    env = {} if extra.get("__no_env__") else _base_env(tmp)
    if extra.get("__tls__"):
        env.update(_tls_material(tmp))
        if extra.get("__mtls__"):
            env["LLMGINE_OTELCOL_TLS_CLIENT_CA_FILE"] = env["LLMGINE_OTELCOL_TLS_CERT_FILE"]
    env.update({k: v for k, v in extra.items() if not k.startswith("__")})
    return env


@pytest.mark.parametrize("case", list(CASES))
def test_config_validates(otelcol: str, tmp_path: Path, case: str) -> None:
    files, extra = CASES[case]
    res = validate_config(
        [COLLECTOR_DIR / f for f in files], _env_for(extra, tmp_path), binary=otelcol
    )
    assert res.returncode == 0, f"{case} does not validate:\n{res.stdout}\n{res.stderr}"


def test_invalid_config_is_rejected(otelcol: str, tmp_path: Path) -> None:
    """validate really checks things: a bad env value makes it fail."""
    env = _base_env(tmp_path) | {"LLMGINE_OTELCOL_DEBUG_VERBOSITY": "chatty"}
    res = validate_config(COLLECTOR_DIR / "otelcol.yaml", env, binary=otelcol)
    assert res.returncode != 0
    assert "verbosity" in (res.stdout + res.stderr).lower()


def test_tls_config_requires_token(otelcol: str, tmp_path: Path) -> None:
    env = _env_for({"__tls__": "1"}, tmp_path)
    del env["LLMGINE_OTELCOL_BEARER_TOKEN"]
    res = validate_config(COLLECTOR_DIR / "otelcol-tls.yaml", env, binary=otelcol)
    assert res.returncode != 0, "otelcol-tls.yaml must refuse to start without a bearer token"


def test_tls_config_is_otelcol_yaml_plus_tls(tmp_path: Path) -> None:
    """otelcol-tls.yaml must not drift from otelcol.yaml: every non-comment line of the base
    appears, in order, in the TLS variant."""

    def body(name: str) -> list[str]:
        return [
            ln.rstrip()
            for ln in (COLLECTOR_DIR / name).read_text().splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")
        ]

    base, tls = body("otelcol.yaml"), body("otelcol-tls.yaml")
    it = iter(tls)
    missing = [
        ln
        for ln in base
        if not any(
            ln == t or (t.endswith("# TLS/auth") and t.startswith(ln.rstrip("]"))) for t in it
        )
    ]
    assert not missing, f"lines of otelcol.yaml missing from otelcol-tls.yaml: {missing[:5]}"


@pytest.mark.parametrize("name", ["agent-kafka.yaml", "gateway-kafka.yaml"])
def test_kafka_configs_need_contrib(otelcol: str, tmp_path: Path, name: str) -> None:
    """Kafka is not compiled into otelcol-llmgine (README: proxy refuses its modules). Our binary
    must reject the file ONLY because of the kafka component; with LLMGINE_OTELCOL_CONTRIB_BIN
    (an upstream otelcol-contrib 0.161.0) the file must validate fully."""
    env = _base_env(tmp_path)
    res = validate_config(COLLECTOR_DIR / name, env, binary=otelcol)
    out = (res.stdout + res.stderr).lower()
    assert res.returncode != 0 and "kafka" in out and "unknown type" in out, out
    contrib = os.environ.get("LLMGINE_OTELCOL_CONTRIB_BIN")
    if contrib:
        res = validate_config(COLLECTOR_DIR / name, env, binary=contrib)
        assert res.returncode == 0, f"{name} with {contrib}:\n{res.stdout}\n{res.stderr}"


def test_every_config_file_is_covered() -> None:
    """A new *.yaml in collector/ must be added to this test."""
    covered = {f for files, _ in CASES.values() for f in files}
    covered |= {
        "agent-kafka.yaml",
        "gateway-kafka.yaml",
        "jaeger-test.yaml",
    } | NOT_COLLECTOR_CONFIGS
    present = {p.name for p in COLLECTOR_DIR.glob("*.yaml")}
    assert present <= covered, f"configs without a validation test: {sorted(present - covered)}"
    compose = (COLLECTOR_DIR / "docker-compose.yaml").read_text()
    # docker-compose runs the same files the tests validate, at the release we build.
    assert "/etc/llmgine/otelcol.yaml" in compose and "/etc/llmgine/compose-overlay.yaml" in compose
    assert "otel/opentelemetry-collector-contrib:0.161.0" in compose
    manifest = (COLLECTOR_DIR / "builder-config.yaml").read_text()
    versions = {ln.split()[-1] for ln in manifest.splitlines() if ln.strip().startswith("- gomod:")}
    assert versions == {"v0.161.0", "v1.67.0"}, versions


def test_jaeger_test_config_validates(tmp_path: Path) -> None:
    res = validate_config(COLLECTOR_DIR / "jaeger-test.yaml", {}, binary=jaeger_binary())
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"


@pytest.mark.parametrize("script", [BUILD_SCRIPT, JAEGER_BUILD_SCRIPT], ids=["otelcol", "jaeger"])
def test_build_script_is_cached_and_prints_path_last(script: Path) -> None:
    first = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=3600)
    assert first.returncode == 0, first.stderr[-4000:]
    t0 = time.monotonic()
    again = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - t0
    assert again.returncode == 0, again.stderr
    path = again.stdout.strip().splitlines()[-1]
    assert path == first.stdout.strip().splitlines()[-1]
    assert os.access(path, os.X_OK)
    assert elapsed < 5, f"cached call took {elapsed:.1f}s"
    cache_root = Path(os.environ.get("LLMGINE_OTEL_CACHE", Path.home() / ".cache" / "llmgine-otel"))
    assert Path(path).resolve().is_relative_to(cache_root.resolve())
    assert not Path(path).resolve().is_relative_to(COLLECTOR_DIR.parent.resolve()), (
        "binary inside the repo"
    )


def test_binary_has_expected_components(otelcol: str) -> None:
    out = subprocess.run(
        [otelcol, "components"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for name in [
        "otlp",
        "memory_limiter",
        "batch",
        "tail_sampling",
        "filter",
        "transform",
        "redaction",
        "debug",
        "file",
        "otlp_grpc",
        "otlp_http",
        "load_balancing",
        "prometheus",
        "span_metrics",
        "health_check",
        "file_storage",
        "bearertokenauth",
    ]:
        assert f"name: {name}\n" in out, f"component {name} missing from otelcol-llmgine"
