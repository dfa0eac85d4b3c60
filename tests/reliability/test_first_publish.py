"""No publish call stalls, including the very first ones of a fresh process."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.collector import free_port

from reliability.conftest import record_figures

SCRIPT = Path(__file__).resolve().parent / "_first_publish.py"
_HAS_PRICES = importlib.util.find_spec("genai_prices") is not None


@pytest.mark.xfail(
    _HAS_PRICES, strict=True,
    reason="core bug: the first LLMCallFinishedEvent imports genai_prices (pydantic) on the "
           "publish path, a ~1 s stall; fix: import it in configure() (telemetry._cost_fn "
           "calls cost._genai_prices()), see RELIABILITY.md")
def test_first_publish_does_not_stall(otel_env: dict[str, str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), f"http://127.0.0.1:{free_port()}", str(tmp_path)],
        capture_output=True, text=True, timeout=120, env=dict(os.environ), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    record_figures("first_publish", max_ms=round(result["max_ms"], 2),
                   slowest_event=result["slowest_event"], calls_ms=result["all_ms"])
    assert result["max_ms"] < 10.0, result
