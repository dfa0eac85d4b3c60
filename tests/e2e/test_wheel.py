"""The package as a pip user gets it: sdist and wheel built with `python -m build`, checked by
`twine check --strict`, the wheel installed NON-editable into a fresh Python 3.12 venv, and
used from a directory outside the repository: import, configure(), an LLM call exported to
the real Collector started by the wheel's own `llmgine-otel collector run`, `llmgine-otel
view` of what the Collector wrote, `llmgine-otel collector env`.

Cost (warm pip cache): ~15 s to build, ~20 s to install, a few seconds to run.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> import support.*

from support.collector import (
    BUILD_SCRIPT,
    _run_build_script,
    free_port,
    iter_spans,
    read_otlp_json_lines,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable

SMOKE = """
import llmgine_otel, sys
from llmgine_otel.llm import llm_call
assert "site-packages" in llmgine_otel.__file__, llmgine_otel.__file__
tel = llmgine_otel.configure(service_name="wheel-smoke")
assert tel.config.endpoint, "the Collector's endpoint comes from the environment"
with llm_call(model="gpt-4o-mini", provider="openai", session_id="wheel-session") as call:
    call.record_response({"id": "r-1", "model": "gpt-4o-mini",
                          "usage": {"prompt_tokens": 12, "completion_tokens": 5}})
report = tel.shutdown(10)
print(report)
sys.exit(0 if report.completed else 3)
"""


def _run(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # From a copy holding only what git tracks (plus new, not ignored files), as a clean
    # clone would: a stale llmgine_otel.egg-info/SOURCES.txt from the editable install
    # would otherwise add files the package-data rules forget.
    src = tmp_path_factory.mktemp("src")
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                  cwd=ROOT, timeout=60).stdout.split("\0")
    for rel in filter(None, listed):
        if not os.path.lexists(ROOT / rel):
            continue  # deleted in the work tree
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel, follow_symlinks=False)
    # Isolated build (a fresh setuptools from the build-system table, as a publisher's
    # build would); the wheel is built from the sdist, so both are proven.
    _run([PY, "-m", "build", "--outdir", str(out), str(src)], timeout=600)
    return out


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert sys.version_info[:2] == (3, 12)
    where = tmp_path_factory.mktemp("venv") / "v"
    _run([PY, "-m", "venv", str(where)], timeout=120)
    (wheel,) = dist.glob("*.whl")
    _run([str(where / "bin" / "python"), "-m", "pip", "install", "-q",
          "--disable-pip-version-check", str(wheel)], timeout=600)
    return where


def test_sdist_and_wheel_pass_twine_check(dist: Path) -> None:
    files = sorted(str(p) for p in dist.iterdir())
    assert len(files) == 2
    out = _run([PY, "-m", "twine", "check", "--strict", *files], timeout=120).stdout
    assert out.count("PASSED") == 2, out


def test_wheel_carries_license_and_the_collector_byte_for_byte(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        license_name = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
        assert zf.read(license_name) == (ROOT / "LICENSE").read_bytes()
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        # The cache key of build.sh is over these two files: identical bytes mean a build
        # made from the repository serves the wheel's CLI and the other way round.
        for name in ("builder-config.yaml", "build.sh", "otelcol.yaml", "gateway.yaml",
                     "docker-compose.yaml"):
            assert zf.read(f"llmgine_otel/collector/{name}") == \
                (ROOT / "collector" / name).read_bytes(), name
    assert "License-Expression: Apache-2.0" in meta
    assert "License-File: LICENSE" in meta
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tf:
        members = {m.name.split("/", 1)[1]: m for m in tf.getmembers() if "/" in m.name}
    assert members["LICENSE"].isfile()
    assert members["llmgine_otel/collector/otelcol.yaml"].isfile()  # real files, not a link


def test_readme_has_no_links_that_break_on_pypi() -> None:
    """PyPI shows README.md without the repository around it: relative links would 404."""
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)]+)\)", text) + re.findall(r'(?:src|href)="([^"]+)"', text)
    relative = [t for t in targets if not re.match(r"(https?://|mailto:|#)", t)]
    assert not relative, relative


def test_installed_wheel_runs_the_bundled_collector_and_sends_it_telemetry(
        venv: Path, tmp_path: Path) -> None:
    _run_build_script(BUILD_SCRIPT)  # the cached build the wheel's CLI looks up (same key)
    bindir = venv / "bin"
    outside = tmp_path / "elsewhere"  # not the repository: nothing importable from there
    outside.mkdir()
    ports = {
        "LLMGINE_OTELCOL_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMGINE_OTELCOL_HTTP_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMGINE_OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMGINE_OTELCOL_METRICS_HOST": "127.0.0.1",
        "LLMGINE_OTELCOL_METRICS_PORT": str(free_port()),
        "LLMGINE_OTELCOL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMGINE_OTELCOL_FILE_FLUSH_INTERVAL": "200ms",
    }
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LLMGINE_", "OTEL_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    if "LLMGINE_OTEL_CACHE" in os.environ:
        env["LLMGINE_OTEL_CACHE"] = os.environ["LLMGINE_OTEL_CACHE"]
    col = subprocess.Popen([str(bindir / "llmgine-otel"), "collector", "run"], cwd=outside,
                           env={**env, **ports}, text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
    try:
        assert col.stdout is not None
        printed = [col.stdout.readline() for _ in range(5)]
        assert printed[0].startswith("llmgine-otel: Collector ready"), printed
        assert "site-packages/llmgine_otel/collector/otelcol.yaml" in printed[0]
        export = printed[4].strip()
        assert export.startswith("export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:")
        app_env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": export.split("=", 1)[1],
                   "OTEL_BSP_SCHEDULE_DELAY": "100", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        smoke = _run([str(bindir / "python"), "-c", SMOKE], cwd=outside, env=app_env,
                     timeout=120)
        assert "complete" in smoke.stdout, smoke.stdout
        out_file = outside / "llmgine-telemetry" / "collector" / "otel.jsonl"

        def arrived() -> list[object]:
            return [s for s in iter_spans(read_otlp_json_lines(out_file))
                    if s.resource.get("service.name") == "wheel-smoke"
                    and s.name == "chat gpt-4o-mini"]

        (span,) = wait_for(arrived, timeout=30, what="the smoke span in the Collector's file")
        assert span.attributes["gen_ai.usage.input_tokens"] == 12  # type: ignore[attr-defined]
        # As the README says: the folder the Collector writes to, relative to where it runs.
        view = _run([str(bindir / "llmgine-otel"), "view", "llmgine-telemetry/collector"],
                    cwd=outside, env=env, timeout=60).stdout
        assert "chat gpt-4o-mini" in view and "wheel-session" in view, view
        col_env = _run([str(bindir / "llmgine-otel"), "collector", "env"], cwd=outside,
                       env=env, timeout=60).stdout
        assert col_env.strip() == "export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317"
    finally:
        col.terminate()
        try:
            col.wait(timeout=30)
        except subprocess.TimeoutExpired:
            col.kill()
            col.wait()
    assert col.returncode == 0


def test_wheel_s_collector_files_hash_like_build_sh(venv: Path) -> None:
    """The installed CLI computes the cache path build.sh prints (no rebuild for pip users
    who built from the repository, nor for the repository after a pip install)."""
    site = next((venv / "lib").glob("python3*/site-packages/llmgine_otel/collector"))
    digest = hashlib.sha256((site / "builder-config.yaml").read_bytes()
                            + (site / "build.sh").read_bytes()).hexdigest()[:16]
    assert Path(_run_build_script(BUILD_SCRIPT)).parent.name == f"otelcol-{digest}"
