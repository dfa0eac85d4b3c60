"""`llmgine-otel collector run|validate` with the real built Collector: which binary is
chosen (explicit, cached build, PATH, Go), what is said when none fits, and `run` waiting
for the health check before printing the endpoints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> import support.*

from support.collector import BUILD_SCRIPT, _run_build_script, free_port

from llmgine_otel.cli import collector_binary as cb
from llmgine_otel.cli.collector import config_path

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CLI = [sys.executable, "-m", "llmgine_otel", "collector"]


@pytest.fixture(scope="module")
def built() -> Path:
    """The binary collector/build.sh built (and cached) for this suite."""
    return Path(_run_build_script(BUILD_SCRIPT))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in (cb.BIN_ENV, cb.DIR_ENV):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_the_cli_finds_the_build_script_s_cache_entry(built: Path, clean_env) -> None:
    """Same key as build.sh: a build made from the repository serves the installed CLI."""
    assert cb.cached_build_path() == built
    found = cb.resolve(config_path("otelcol"), build=False)
    assert (found.path, found.source) == (built, "cached build")


def test_an_explicit_binary_wins(built: Path, clean_env, tmp_path: Path) -> None:
    link = tmp_path / "my-otelcol"
    link.symlink_to(built)
    clean_env.setenv(cb.BIN_ENV, str(link))
    assert cb.resolve(config_path("otelcol")).path == link
    assert cb.resolve(config_path("otelcol"), explicit=str(built)).path == built


def test_an_explicit_binary_lacking_components_is_an_error(built: Path, clean_env) -> None:
    with pytest.raises(SystemExit, match="it lacks receiver kafka"):
        cb.resolve(config_path("gateway-kafka"), explicit=str(built))


def test_otelcol_contrib_on_path_when_nothing_is_cached(built: Path, clean_env,
                                                        tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "otelcol-contrib").symlink_to(built)
    clean_env.setenv("LLMGINE_OTEL_CACHE", str(tmp_path / "empty-cache"))
    clean_env.setenv("PATH", str(bindir))
    found = cb.resolve(config_path("otelcol"))
    assert (found.path, found.source) == (bindir / "otelcol-contrib", "PATH (otelcol-contrib)")


def test_a_binary_whose_components_do_not_suffice_is_passed_over_and_named(
        built: Path, clean_env, tmp_path: Path) -> None:
    """The Kafka configs need components otelcol-llmgine lacks: the cached build and the
    same binary on PATH are both rejected, each with what it lacks, and no Go build is
    offered (it would make the same binary)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "otelcol").symlink_to(built)
    clean_env.setenv("PATH", str(bindir))
    with pytest.raises(cb.BinaryNotFound) as exc:
        cb.resolve(config_path("agent-kafka"))
    msg = str(exc.value)
    assert f"cached build {built}: lacks exporter kafka" in msg
    assert f"PATH (otelcol) {bindir / 'otelcol'}: lacks exporter kafka" in msg
    assert "collector build" not in msg and "otelcol-contrib 0.161.0 on PATH" in msg


def test_no_binary_and_no_go_lists_every_option(clean_env, tmp_path: Path) -> None:
    clean_env.setenv("LLMGINE_OTEL_CACHE", str(tmp_path / "empty-cache"))
    clean_env.setenv("PATH", str(tmp_path))
    proc = subprocess.run([*CLI, "run"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env={**os.environ, "PATH": str(tmp_path)}, check=False)
    assert proc.returncode == 1
    for option in ("no `go` on PATH", "collector build", "otelcol-contrib 0.161.0 on PATH",
                   cb.BIN_ENV, "otel/opentelemetry-collector-contrib:0.161.0"):
        assert option in proc.stderr, proc.stderr


def test_a_go_build_reports_progress(clean_env, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The progress loop around build.sh (a real Go build takes ~10 min of CPU and runs in
    scripts/test.sh instead): a slow build prints its elapsed time and the log's last line."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "otelcol.yaml").write_text(config_path("otelcol").read_text())
    (bundle / "builder-config.yaml").write_text("dist: {}\n")
    cache = tmp_path / "cache"
    clean_env.setenv("LLMGINE_OTEL_CACHE", str(cache))
    clean_env.setenv(cb.DIR_ENV, str(bundle))
    # Same cache key and contract as the real build.sh; slow, with a build log.
    (bundle / "build.sh").write_text(
        'HERE="$(cd "$(dirname "$0")" && pwd)"\n'
        'HASH="$(cat "$HERE/builder-config.yaml" "$HERE/build.sh" | sha256sum | cut -c1-16)"\n'
        'DIR="$LLMGINE_OTEL_CACHE/otelcol-$HASH"; mkdir -p "$DIR"\n'
        'echo "compiling module 7 of 9" > "$DIR/build.log"; sleep 0.6\n'
        'echo "$DIR/otelcol-llmgine"\n')
    clean_env.setattr(cb, "_PROGRESS_EVERY_S", 0.1)
    assert cb.build_with_go() == cb.cached_build_path()
    err = capsys.readouterr().err
    assert "building the Collector with Go" in err
    assert "still building" in err and "compiling module 7 of 9" in err


def _ports() -> dict[str, str]:
    return {
        "LLMGINE_OTELCOL_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMGINE_OTELCOL_HTTP_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMGINE_OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMGINE_OTELCOL_METRICS_HOST": "127.0.0.1",
        "LLMGINE_OTELCOL_METRICS_PORT": str(free_port()),
        "LLMGINE_OTELCOL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{free_port()}",
    }


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMGINE_OTELCOL_")}
    return {**env, **extra}


def test_run_waits_for_health_then_prints_both_endpoints(built: Path, tmp_path: Path) -> None:
    ports = _ports()
    proc = subprocess.Popen([*CLI, "run"], cwd=tmp_path, env=_env(ports), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
        assert lines[0].startswith("llmgine-otel: Collector ready")
        grpc, http = ports["LLMGINE_OTELCOL_GRPC_ENDPOINT"], ports["LLMGINE_OTELCOL_HTTP_ENDPOINT"]
        assert lines[1].split() == ["OTLP", "gRPC", f"http://{grpc}"]
        assert lines[2].split() == ["OTLP", "HTTP", f"http://{http}"]
        assert lines[4].strip() == f"export OTEL_EXPORTER_OTLP_ENDPOINT=http://{grpc}"
        # Ready means ready: the health check answers when the line is printed.
        import urllib.request
        health = ports["LLMGINE_OTELCOL_HEALTH_ENDPOINT"]
        with urllib.request.urlopen(f"http://{health}/", timeout=2) as resp:
            assert resp.status == 200
        # Relative paths of the config land in the working directory, wherever that is.
        deadline = time.monotonic() + 10
        while not (tmp_path / "llmgine-telemetry" / "collector").is_dir():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)  # passed on to the Collector, which stops cleanly
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_says_so_when_the_collector_cannot_start(built: Path, tmp_path: Path) -> None:
    import socket

    ports = _ports()
    with socket.socket() as busy:  # the gRPC port is taken: the Collector exits at start-up
        host, port = ports["LLMGINE_OTELCOL_GRPC_ENDPOINT"].split(":")
        busy.bind((host, int(port)))
        busy.listen()
        proc = subprocess.run([*CLI, "run"], cwd=tmp_path, env=_env(ports), text=True,
                              capture_output=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "Collector ready" not in proc.stdout
    assert "exited with status" in proc.stderr and "during start-up" in proc.stderr
