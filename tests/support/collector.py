"""Test support: build, start and inspect the otelcol-llmgine Collector and Jaeger v2.

Used by end-to-end tests; no dependency on the llmgine_otel package (standard library only).

    from support.collector import start_collector, start_jaeger, read_otlp_json_lines

    with start_jaeger(tmp_path / "jaeger") as jaeger, start_collector(
        COLLECTOR_DIR / "otelcol.yaml",
        {"LLMGINE_OTELCOL_BACKEND_ENDPOINT": jaeger.otlp_grpc_hostport},
        workdir=tmp_path / "collector",
    ) as col:
        ...send OTLP to col.grpc_endpoint...
    spans = list(iter_spans(read_otlp_json_lines(col.file_path)))

Binaries come from ``collector/build.sh`` / ``collector/build-jaeger.sh`` (cached outside the
repository, so only the first call ever compiles). ``LLMGINE_OTELCOL_BIN`` / ``LLMGINE_JAEGER_BIN``
point the helpers at prebuilt binaries instead (e.g. an upstream ``otelcol-contrib`` 0.161.0).

Every process is started in its own session, logged to ``<workdir>/<name>.log`` and stopped by
the context manager (SIGTERM, then SIGKILL after a bound); an ``atexit`` hook kills anything a
crashed test left behind.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTOR_DIR = REPO_ROOT / "collector"
BUILD_SCRIPT = COLLECTOR_DIR / "build.sh"
JAEGER_BUILD_SCRIPT = COLLECTOR_DIR / "build-jaeger.sh"
JAEGER_TEST_CONFIG = COLLECTOR_DIR / "jaeger-test.yaml"
PROMETHEUS_BUILD_SCRIPT = COLLECTOR_DIR / "build-prometheus.sh"

#: Environment variables the collector configs in collector/ understand (see collector/README.md).
ENV_GRPC = "LLMGINE_OTELCOL_GRPC_ENDPOINT"
ENV_HTTP = "LLMGINE_OTELCOL_HTTP_ENDPOINT"
ENV_HEALTH = "LLMGINE_OTELCOL_HEALTH_ENDPOINT"
ENV_METRICS_HOST = "LLMGINE_OTELCOL_METRICS_HOST"
ENV_METRICS_PORT = "LLMGINE_OTELCOL_METRICS_PORT"
ENV_PROMETHEUS = "LLMGINE_OTELCOL_PROMETHEUS_ENDPOINT"
ENV_FILE = "LLMGINE_OTELCOL_FILE"
ENV_FILE_FLUSH = "LLMGINE_OTELCOL_FILE_FLUSH_INTERVAL"
ENV_QUEUE_DIR = "LLMGINE_OTELCOL_QUEUE_DIR"
ENV_BACKEND = "LLMGINE_OTELCOL_BACKEND_ENDPOINT"

# Variables inherited from the caller's environment that would make a test non-hermetic.
_SCRUBBED_PREFIXES = (
    "LLMGINE_OTELCOL_",
    "LLMGINE_TAIL_",
    "LLMGINE_SLOW_LLM",
    "LLMGINE_GATEWAY",
    "LLMGINE_KAFKA_",
    "LLMGINE_JAEGER_",
)

_BUILD_TIMEOUT_S = float(os.environ.get("LLMGINE_OTEL_BUILD_TIMEOUT", "3600"))


# --------------------------------------------------------------------------------------------
# Binaries
# --------------------------------------------------------------------------------------------

_binary_lock = threading.Lock()
_binary_cache: dict[str, str] = {}


class BuildError(RuntimeError):
    """A build script failed; the message carries the tail of its log."""


def _run_build_script(script: Path) -> str:
    try:
        proc = subprocess.run(
            ["bash", str(script)],
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{script.name} did not finish within {_BUILD_TIMEOUT_S:.0f}s") from exc
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise BuildError(
            f"{script} failed (exit {proc.returncode}).\n"
            f"--- stderr (tail) ---\n{proc.stderr[-6000:]}\n--- stdout ---\n{proc.stdout[-2000:]}"
        )
    path = lines[-1].strip()
    if not os.access(path, os.X_OK):
        raise BuildError(f"{script} printed {path!r}, which is not an executable file")
    return path


def _binary(key: str, env_override: str, script: Path) -> str:
    override = os.environ.get(env_override)
    if override:
        if not os.access(override, os.X_OK):
            raise BuildError(f"${env_override}={override!r} is not an executable file")
        return override
    with _binary_lock:
        if key not in _binary_cache:
            _binary_cache[key] = _run_build_script(script)
        return _binary_cache[key]


def collector_binary() -> str:
    """Path of the otelcol-llmgine binary (built by collector/build.sh on first use).

    Raises BuildError (never skips) if the build fails.
    """
    return _binary("otelcol", "LLMGINE_OTELCOL_BIN", BUILD_SCRIPT)


def jaeger_binary() -> str:
    """Path of the Jaeger v2 binary (built by collector/build-jaeger.sh on first use)."""
    return _binary("jaeger", "LLMGINE_JAEGER_BIN", JAEGER_BUILD_SCRIPT)


def prometheus_binary() -> str:
    """Path of Prometheus (built by collector/build-prometheus.sh on first use)."""
    return _binary("prometheus", "LLMGINE_PROMETHEUS_BIN", PROMETHEUS_BUILD_SCRIPT)


def validate_config(
    config_paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    env: Mapping[str, str] | None = None,
    *,
    binary: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``<binary> validate --config=...`` and return the completed process (no raise)."""
    args = [binary or collector_binary(), "validate", *_config_args(config_paths)]
    return subprocess.run(
        args,
        env=_child_env(env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=tempfile.gettempdir(),
    )


# --------------------------------------------------------------------------------------------
# Ports and environment
# --------------------------------------------------------------------------------------------

_ports_lock = threading.Lock()
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, never handed out twice by this process."""
    with _ports_lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("could not find a free port")


def _child_env(overrides: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def _config_args(config_paths: Any) -> list[str]:
    if isinstance(config_paths, (str, os.PathLike)):
        config_paths = [config_paths]
    args = []
    for p in config_paths:
        s = os.fspath(p)
        # Non-file providers (yaml:, env:, ...) pass through untouched.
        if ":" in s.split("/")[0] and not Path(s).exists():
            args.append(f"--config={s}")
        else:
            args.append(f"--config={Path(s).resolve()}")
    return args


def _client_hostport(hostport: str) -> str:
    """'0.0.0.0:4317' / 'localhost:4317' -> '127.0.0.1:4317' (what a local client dials)."""
    host, _, port = hostport.rpartition(":")
    if host in ("", "0.0.0.0", "localhost", "[::]", "::"):
        host = "127.0.0.1"
    return f"{host}:{port}"


def _http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --------------------------------------------------------------------------------------------
# Managed processes
# --------------------------------------------------------------------------------------------

_live: weakref.WeakSet[_ManagedProcess] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for mp in list(_live):
        with contextlib.suppress(Exception):
            mp.kill()


class ProcessStartError(RuntimeError):
    pass


def _die_with_parent_fn() -> Any:
    """On Linux, make the child get SIGKILL when this process dies (even by SIGKILL, when the
    atexit hook cannot run). PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is
    only used from the main thread."""
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None

    def _preexec() -> None:
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1

    return _preexec


class _ManagedProcess:
    """A child process with a log file, a readiness probe and bounded stop/kill/restart."""

    name = "process"

    def __init__(
        self, args: list[str], env: dict[str, str], workdir: Path, *, stop_timeout: float
    ) -> None:
        self.args = args
        self.env = env
        self.workdir = workdir
        self.stop_timeout = stop_timeout
        self.log_path = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_fh: Any = None

    # -- lifecycle -----------------------------------------------------------------------
    def _spawn(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log_fh = open(self.log_path, "ab")  # noqa: SIM115 (closed in _reap)
        self._log_fh.write(
            f"\n=== start {time.strftime('%H:%M:%S')}: {' '.join(self.args)}\n".encode()
        )
        self._log_fh.flush()
        self.proc = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent_fn(),
        )
        _live.add(self)

    def _ready(self) -> bool:  # pragma: no cover - overridden
        return True

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ProcessStartError(
                    f"{self.name} exited with {self.proc.returncode} during start-up\n"
                    + self.log_tail()
                )
            with contextlib.suppress(OSError, ValueError):
                if self._ready():
                    return
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.kill()
                raise ProcessStartError(f"{self.name} not ready after {timeout}s\n{tail}")
            time.sleep(0.1)

    def start(self, *, wait: bool = True, timeout: float = 60) -> _ManagedProcess:
        self._spawn()
        if wait:
            self.wait_ready(timeout)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, wait up to ``timeout`` (default: stop_timeout), then SIGKILL; exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(timeout=10)
        self._reap()
        return self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL now (simulates a crash / outage)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait(timeout=10)
        self._reap()
        return self.proc.returncode

    def restart(self, *, wait: bool = True, timeout: float = 60) -> _ManagedProcess:
        """Stop (if running) and start again with the same arguments, ports and paths."""
        self.stop()
        return self.start(wait=wait, timeout=timeout)

    def _reap(self) -> None:
        _live.discard(self)
        if self._log_fh is not None:
            with contextlib.suppress(Exception):
                self._log_fh.close()
            self._log_fh = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        lines = self.log_text().splitlines()[-n:]
        return f"--- {self.log_path} (last {len(lines)} lines) ---\n" + "\n".join(lines)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:  # last resort; the context manager is the real guarantee
        with contextlib.suppress(Exception):
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()


class RunningCollector(_ManagedProcess):
    """An otelcol-llmgine process started by :func:`start_collector`.

    Attributes: ``grpc_endpoint`` / ``http_endpoint`` (``http://127.0.0.1:PORT``, for OTLP
    exporters), ``grpc_hostport``, ``health_url``, ``metrics_url`` (the collector's own
    Prometheus metrics), ``prometheus_url`` (spanmetrics exporter, configs that have one),
    ``file_path`` (file exporter output), ``queue_dir``, ``env`` (all variables passed), ``proc``.
    """

    name = "collector"

    def __init__(
        self,
        binary: str,
        config_paths: Any,
        env: dict[str, str],
        workdir: Path,
        *,
        name: str,
        stop_timeout: float,
    ) -> None:
        self.name = name
        super().__init__(
            [binary, *_config_args(config_paths)], env, workdir, stop_timeout=stop_timeout
        )
        self.config_paths = config_paths
        self.grpc_hostport = _client_hostport(env[ENV_GRPC])
        self.http_hostport = _client_hostport(env[ENV_HTTP])
        self.grpc_endpoint = f"http://{self.grpc_hostport}"
        self.http_endpoint = f"http://{self.http_hostport}"
        self.health_url = f"http://{_client_hostport(env[ENV_HEALTH])}/"
        metrics_hostport = _client_hostport(f"{env[ENV_METRICS_HOST]}:{env[ENV_METRICS_PORT]}")
        self.metrics_url = f"http://{metrics_hostport}/metrics"
        self.prometheus_url = f"http://{_client_hostport(env[ENV_PROMETHEUS])}/metrics"
        self.file_path = Path(env[ENV_FILE])
        self.queue_dir = Path(env[ENV_QUEUE_DIR])

    def _ready(self) -> bool:
        status, _ = _http_get(self.health_url, timeout=1.0)
        return status == 200

    def metrics_text(self) -> str:
        """The collector's own metrics (Prometheus text format)."""
        return _http_get(self.metrics_url)[1].decode()

    def read_output(self) -> list[dict[str, Any]]:
        """Everything the file exporter wrote so far (current + rotated files)."""
        return list(read_otlp_json_lines(self.file_path))


def start_collector(
    config_path: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    env: Mapping[str, str] | None = None,
    *,
    wait_health: bool = True,
    timeout: float = 60,
    workdir: str | os.PathLike[str] | None = None,
    name: str = "collector",
    binary: str | None = None,
    stop_timeout: float = 15,
) -> RunningCollector:
    """Start the collector with ``--config=config_path`` (or several configs, merged in order).

    All ports are free ports on 127.0.0.1 and all paths live in ``workdir`` (a new temp dir if
    not given), passed through the ``LLMGINE_OTELCOL_*`` variables the configs read; ``env``
    overrides any of them and adds others (e.g. ``LLMGINE_TAIL_SAMPLE_PERCENT``). Returns the
    started collector (health check answered unless ``wait_health=False``); use it as a context
    manager so it is always stopped.
    """
    wd = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix=f"{name}-"))
    wd.mkdir(parents=True, exist_ok=True)
    defaults = {
        ENV_GRPC: f"127.0.0.1:{free_port()}",
        ENV_HTTP: f"127.0.0.1:{free_port()}",
        ENV_HEALTH: f"127.0.0.1:{free_port()}",
        ENV_METRICS_HOST: "127.0.0.1",
        ENV_METRICS_PORT: str(free_port()),
        ENV_PROMETHEUS: f"127.0.0.1:{free_port()}",
        ENV_FILE: str(wd / "otel.jsonl"),
        ENV_FILE_FLUSH: "200ms",
        ENV_QUEUE_DIR: str(wd / "queue"),
        # Nothing listens there unless the test says otherwise: the exporter just queues.
        ENV_BACKEND: f"127.0.0.1:{free_port()}",
    }
    defaults.update({k: str(v) for k, v in (env or {}).items()})
    child_env = _child_env(defaults)
    col = RunningCollector(
        binary or collector_binary(),
        config_path,
        child_env,
        wd,
        name=name,
        stop_timeout=stop_timeout,
    )
    col.start(wait=wait_health, timeout=timeout)
    return col


class RunningJaeger(_ManagedProcess):
    """A Jaeger v2 all-in-one (in-memory) process started by :func:`start_jaeger`.

    ``otlp_grpc_endpoint`` (``http://127.0.0.1:PORT``), ``otlp_grpc_hostport`` (for the
    collector's ``LLMGINE_OTELCOL_BACKEND_ENDPOINT``), ``otlp_http_endpoint``, ``query_url``.
    """

    name = "jaeger"

    def __init__(
        self, binary: str, env: dict[str, str], workdir: Path, *, config: Path, stop_timeout: float
    ) -> None:
        super().__init__([binary, f"--config={config}"], env, workdir, stop_timeout=stop_timeout)
        self.otlp_grpc_hostport = _client_hostport(env["LLMGINE_JAEGER_OTLP_GRPC_ENDPOINT"])
        self.otlp_grpc_endpoint = f"http://{self.otlp_grpc_hostport}"
        self.otlp_http_endpoint = (
            f"http://{_client_hostport(env['LLMGINE_JAEGER_OTLP_HTTP_ENDPOINT'])}"
        )
        self.query_url = f"http://{_client_hostport(env['LLMGINE_JAEGER_QUERY_HTTP_ENDPOINT'])}"

    def _ready(self) -> bool:
        status, _ = _http_get(f"{self.query_url}/api/services", timeout=1.0)
        if status != 200:
            return False
        # The OTLP receiver starts with the pipelines; make sure it accepts connections too.
        host, _, port = self.otlp_grpc_hostport.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True

    def get_trace(
        self, trace_id_hex: str, *, min_spans: int = 1, timeout: float = 30
    ) -> dict[str, Any]:
        """``GET /api/traces/{id}``, retried until the trace has >= ``min_spans`` spans.

        Returns the trace object (``traceID``, ``spans``, ``processes``); raises TimeoutError.
        """
        url = f"{self.query_url}/api/traces/{trace_id_hex}"
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            with contextlib.suppress(OSError, ValueError):
                status, body = _http_get(url)
                last = (status, body[:500])
                if status == 200:
                    data = json.loads(body).get("data") or []
                    if data and len(data[0].get("spans", [])) >= min_spans:
                        return data[0]
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"trace {trace_id_hex} not (fully) in Jaeger after {timeout}s; "
                    f"last answer {last}"
                )
            time.sleep(0.25)

    def services(self) -> list[str]:
        status, body = _http_get(f"{self.query_url}/api/services")
        return (json.loads(body).get("data") or []) if status == 200 else []


def start_jaeger(
    workdir: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 60,
    binary: str | None = None,
    config: str | os.PathLike[str] = JAEGER_TEST_CONFIG,
    stop_timeout: float = 15,
) -> RunningJaeger:
    """Start Jaeger v2 all-in-one (memory storage) with every port a free 127.0.0.1 port."""
    wd = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="jaeger-"))
    wd.mkdir(parents=True, exist_ok=True)
    defaults = {
        "LLMGINE_JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMGINE_JAEGER_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMGINE_JAEGER_QUERY_HTTP_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMGINE_JAEGER_QUERY_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMGINE_JAEGER_HEALTH_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMGINE_JAEGER_METRICS_PORT": str(free_port()),
    }
    defaults.update({k: str(v) for k, v in (env or {}).items()})
    jaeger = RunningJaeger(
        binary or jaeger_binary(),
        _child_env(defaults),
        wd,
        config=Path(config).resolve(),
        stop_timeout=stop_timeout,
    )
    jaeger.start(wait=True, timeout=timeout)
    return jaeger


class RunningPrometheus(_ManagedProcess):
    """A Prometheus server started by :func:`start_prometheus` (``url``, ``query()``)."""

    name = "prometheus"

    def __init__(self, binary: str, config: Path, env: dict[str, str], workdir: Path, *,
                 port: int, stop_timeout: float) -> None:
        super().__init__(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            env, workdir, stop_timeout=stop_timeout)
        self.url = f"http://127.0.0.1:{port}"

    def _ready(self) -> bool:
        return _http_get(f"{self.url}/-/ready", timeout=1.0)[0] == 200

    def query(self, expr: str) -> dict[str, Any]:
        """``GET /api/v1/query`` (instant, now): the decoded answer, errors included."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        status, body = _http_get(url, timeout=10.0)
        answer: dict[str, Any] = json.loads(body)
        answer["http_status"] = status
        return answer

    def metric_names(self) -> set[str]:
        status, body = _http_get(f"{self.url}/api/v1/label/__name__/values", timeout=10.0)
        return set(json.loads(body)["data"]) if status == 200 else set()


def start_prometheus(
    config_text: str,
    workdir: str | os.PathLike[str] | None = None,
    *,
    timeout: float = 60,
    binary: str | None = None,
    stop_timeout: float = 15,
) -> RunningPrometheus:
    """Start Prometheus with ``config_text`` as its config, listening on a free port."""
    wd = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="prometheus-"))
    wd.mkdir(parents=True, exist_ok=True)
    config = wd / "prometheus.yml"
    config.write_text(config_text)
    prom = RunningPrometheus(binary or prometheus_binary(), config, _child_env({}), wd,
                             port=free_port(), stop_timeout=stop_timeout)
    prom.start(wait=True, timeout=timeout)
    return prom


# --------------------------------------------------------------------------------------------
# Reading the file exporter's OTLP-JSON output
# --------------------------------------------------------------------------------------------


def otlp_json_files(path_or_dir: str | os.PathLike[str]) -> list[Path]:
    """The files holding the file exporter's output, oldest first.

    For a file path ``dir/otel.jsonl`` that is the rotated backups ``dir/otel-<timestamp>.jsonl``
    (lumberjack naming, sortable) followed by ``dir/otel.jsonl`` itself. For a directory: every
    ``*.json`` / ``*.jsonl`` file in it (sorted by name, which orders rotated backups by time).
    """
    p = Path(path_or_dir)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.is_file() and f.suffix in (".json", ".jsonl"))
    rotated = sorted(p.parent.glob(f"{p.stem}-*{p.suffix}")) if p.parent.is_dir() else []
    return [*rotated, *([p] if p.exists() else [])]


def read_otlp_json_lines(path_or_dir: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield each decoded OTLP-JSON object (``{"resourceSpans": ...}`` / ``resourceLogs`` /
    ``resourceMetrics``) the file exporter wrote, rotated files included.

    A trailing partial line (the exporter is still writing) is ignored; any other undecodable
    line raises ValueError.
    """
    for f in otlp_json_files(path_or_dir):
        with open(f, encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1:  # no newline yet: being written
                    continue
                raise ValueError(f"{f}:{i + 1}: not JSON: {line[:200]!r}") from None


def any_value(v: Mapping[str, Any] | None) -> Any:
    """Decode an OTLP-JSON AnyValue into a Python value."""
    if not v:
        return None
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "intValue" in v:
        return int(v["intValue"])  # int64 is a JSON string in OTLP-JSON
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "arrayValue" in v:
        return [any_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return attributes(v["kvlistValue"].get("values", []))
    if "bytesValue" in v:
        return base64.b64decode(v["bytesValue"])
    return None


def attributes(kvs: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    """OTLP-JSON ``[{"key": ..., "value": AnyValue}]`` -> dict."""
    return {kv["key"]: any_value(kv.get("value")) for kv in (kvs or [])}


@dataclass
class OtlpSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_name: str
    events: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass
class OtlpLog:
    trace_id: str
    span_id: str
    time_ns: int
    severity_number: int
    severity_text: str
    body: Any
    event_name: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_name: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


_SPAN_KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _enum(v: Any, names: Mapping[str, int]) -> int:
    if v is None:
        return 0
    return names.get(v, 0) if isinstance(v, str) else int(v)


def iter_spans(objs: Iterable[Mapping[str, Any]]) -> Iterator[OtlpSpan]:
    """Flatten OTLP-JSON objects into spans (objects without spans are skipped)."""
    for obj in objs:
        for rs in obj.get("resourceSpans", []):
            res = attributes(rs.get("resource", {}).get("attributes"))
            for ss in rs.get("scopeSpans", []):
                scope = ss.get("scope", {}).get("name", "")
                for sp in ss.get("spans", []):
                    st = sp.get("status", {})
                    yield OtlpSpan(
                        trace_id=sp.get("traceId", "").lower(),
                        span_id=sp.get("spanId", "").lower(),
                        parent_span_id=sp.get("parentSpanId", "").lower(),
                        name=sp.get("name", ""),
                        kind=_enum(sp.get("kind"), _SPAN_KINDS),
                        start_ns=int(sp.get("startTimeUnixNano", 0)),
                        end_ns=int(sp.get("endTimeUnixNano", 0)),
                        status_code=_enum(st.get("code"), _STATUS_CODES),
                        status_message=st.get("message", ""),
                        attributes=attributes(sp.get("attributes")),
                        resource=res,
                        scope_name=scope,
                        events=[
                            {
                                "name": e.get("name", ""),
                                "attributes": attributes(e.get("attributes")),
                            }
                            for e in sp.get("events", [])
                        ],
                        raw=sp,
                    )


def iter_logs(objs: Iterable[Mapping[str, Any]]) -> Iterator[OtlpLog]:
    """Flatten OTLP-JSON objects into log records."""
    for obj in objs:
        for rl in obj.get("resourceLogs", []):
            res = attributes(rl.get("resource", {}).get("attributes"))
            for sl in rl.get("scopeLogs", []):
                scope = sl.get("scope", {}).get("name", "")
                for lr in sl.get("logRecords", []):
                    sev = lr.get("severityNumber", 0)
                    yield OtlpLog(
                        trace_id=lr.get("traceId", "").lower(),
                        span_id=lr.get("spanId", "").lower(),
                        time_ns=int(lr.get("timeUnixNano", 0) or 0),
                        severity_number=sev if isinstance(sev, int) else 0,
                        severity_text=lr.get("severityText", ""),
                        body=any_value(lr.get("body")),
                        event_name=lr.get("eventName", ""),
                        attributes=attributes(lr.get("attributes")),
                        resource=res,
                        scope_name=scope,
                        raw=lr,
                    )


def wait_for(
    predicate: Any, *, timeout: float = 30, interval: float = 0.2, what: str = "condition"
) -> Any:
    """Poll ``predicate()`` until it returns a truthy value; return it, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout}s")
        time.sleep(interval)
