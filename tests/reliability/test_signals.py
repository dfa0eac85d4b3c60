"""Stop signals flush: a process stopped by SIGTERM (or SIGINT) delivers everything it
published, within the shutdown bound, and still ends the way the signal says; an
application's own SIGTERM handler still runs.

Real processes (tests/reliability/_signal_app.py) with the SDK's default batch delays (5 s
for spans), so most spans are still queued when the signal arrives: without the flush, 264
of 1,800 spans never leave (test_switched_off_loses_the_queue shows it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.hermetic import left_out

from reliability._workload import (
    LOGS_PER_SESSION,
    SPANS_PER_SESSION,
    read_collected,
    wait_collected,
)
from reliability.conftest import SDK_ENV, collector, record_figures

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

APP = Path(__file__).resolve().parent / "_signal_app.py"
N = 300
BOUND = 5.0  # the default LLMGINE_OTEL_SHUTDOWN_TIMEOUT


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not left_out(k)}
    # The SDK's default batch delays (not SDK_ENV's), so spans are still queued at the
    # signal; the trace shape of the rest of the suite (6 spans per session).
    env.update({"LLMGINE_OTEL_CONSOLE": "false", "PYTHONUNBUFFERED": "1",
                "LLMGINE_OTEL_TRACE_PER": SDK_ENV["LLMGINE_OTEL_TRACE_PER"]}, **extra)
    return env


def _run(mode: str, env: dict[str, str], signum: int = signal.SIGTERM) -> dict[str, Any]:
    """Start the app, wait for ``ready``, send ``signum``; exit code, seconds to exit, output."""
    proc = subprocess.Popen([sys.executable, str(APP), mode, str(N)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready "), (line, proc.stderr.read() if proc.stderr else "")
        ready = json.loads(line[len("ready "):])
        t0 = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return {"rc": proc.returncode, "seconds": took, "stdout": out, "stderr": err,
            "ready": ready}


def _check_all(got: Any, run: dict[str, Any]) -> None:
    assert run["ready"]["produced"] == {"spans": N * SPANS_PER_SESSION,
                                        "logs": N * LOGS_PER_SESSION}, run["ready"]
    assert len(got.spans) == N * SPANS_PER_SESSION, (len(got.spans), run["stderr"][-2000:])
    assert got.span_rows == N * SPANS_PER_SESSION  # none twice
    assert got.log_rows == N * LOGS_PER_SESSION == len(got.logs), run["stderr"][-2000:]
    assert run["seconds"] < BOUND + 1.5, run["seconds"]


def _figures(name: str, run: dict[str, Any], got: Any) -> None:
    record_figures(name, sessions=N, exit_code=run["rc"],
                   seconds_to_exit=round(run["seconds"], 3),
                   spans_in_file=len(got.spans), spans_expected=N * SPANS_PER_SESSION,
                   logs_in_file=got.log_rows, logs_expected=N * LOGS_PER_SESSION,
                   handler_installed=run["ready"]["handler"])


def test_sigterm_flushes_the_file_default(tmp_path: Path) -> None:
    run = _run("default", _env(LLMGINE_OTEL_DIR=str(tmp_path / "out")))
    got = read_collected(tmp_path / "out" / "telemetry.jsonl")
    _figures("sigterm_file_default", run, got)
    assert run["rc"] == -signal.SIGTERM, run["stderr"][-2000:]  # 143 in a shell
    assert run["ready"]["handler"] == "_on_signal"
    _check_all(got, run)


def test_sigterm_flushes_to_the_collector(tmp_path: Path) -> None:
    with collector(tmp_path / "col") as col:
        run = _run("default", _env(OTEL_EXPORTER_OTLP_ENDPOINT=col.grpc_endpoint,
                                   LLMGINE_OTEL_DIR=str(tmp_path / "out")))
        got = wait_collected(col.file_path, N * SPANS_PER_SESSION, N * LOGS_PER_SESSION,
                             timeout=15)
    _figures("sigterm_otlp", run, got)
    assert run["rc"] == -signal.SIGTERM, run["stderr"][-2000:]
    _check_all(got, run)


def test_app_handler_installed_before_still_runs(tmp_path: Path) -> None:
    run = _run("app_before", _env(LLMGINE_OTEL_DIR=str(tmp_path / "out")))
    got = read_collected(tmp_path / "out" / "telemetry.jsonl")
    _figures("sigterm_app_handler_before", run, got)
    assert "app-handler" in run["stdout"]
    assert run["rc"] == 3, run["stderr"][-2000:]  # the app's own sys.exit(3)
    assert run["ready"]["handler"] == "main.<locals>.app_handler"  # left in place
    _check_all(got, run)  # its graceful exit ran the at-exit shutdown


def test_app_handler_installed_after_chains_to_ours(tmp_path: Path) -> None:
    run = _run("app_after_chain", _env(LLMGINE_OTEL_DIR=str(tmp_path / "out")))
    got = read_collected(tmp_path / "out" / "telemetry.jsonl")
    _figures("sigterm_app_handler_after", run, got)
    assert "app-handler" in run["stdout"]
    assert run["rc"] == -signal.SIGTERM, run["stderr"][-2000:]
    _check_all(got, run)


def test_sigint_with_pythons_default_handler(tmp_path: Path) -> None:
    run = _run("default", _env(LLMGINE_OTEL_DIR=str(tmp_path / "out")), signal.SIGINT)
    got = read_collected(tmp_path / "out" / "telemetry.jsonl")
    _figures("sigint_default", run, got)
    assert "KeyboardInterrupt" in run["stderr"]
    assert run["rc"] == -signal.SIGINT, run["stderr"][-2000:]  # 130 in a shell
    _check_all(got, run)


def test_switched_off_loses_the_queue(tmp_path: Path) -> None:
    run = _run("default", _env(LLMGINE_OTEL_DIR=str(tmp_path / "out"),
                               LLMGINE_OTEL_FLUSH_ON_SIGNAL="false"))
    got = read_collected(tmp_path / "out" / "telemetry.jsonl")
    _figures("sigterm_switched_off", run, got)
    assert run["rc"] == -signal.SIGTERM
    assert "SIG_DFL" in run["ready"]["handler"]  # nothing installed
    assert len(got.spans) < N * SPANS_PER_SESSION  # what this package's handler prevents
