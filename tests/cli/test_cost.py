"""Offline cost from genai-prices: the package's own figure, None when unknown, no network."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import genai_prices  # the `cost` extra: pip install -e ".[cost]"
import pytest

from llmgine_otel import cost
from llmgine_otel.cost import estimate_cost_usd

ROOT = Path(__file__).resolve().parents[2]


def _package(model: str, provider: str | None, **usage: int) -> float:
    result = genai_prices.calc_price(genai_prices.Usage(**usage), model, provider_id=provider)
    return float(result.total_price)


@pytest.mark.parametrize(
    ("provider", "model", "counts"),
    [
        ("openai", "gpt-4o-mini", (1000, 500, None, None, None)),
        ("openai", "gpt-4o-mini", (1000, 500, 200, None, 100)),
        ("anthropic", "claude-3-5-sonnet-latest", (5000, 300, 1000, 2000, None)),
        (None, "gpt-4o", (10, 10, None, None, None)),
        ("gcp.gemini", "gemini-2.5-pro", (300_000, 1000, None, None, 50)),  # tiered price
    ],
)
def test_known_model_matches_the_package(
    provider: str | None, model: str, counts: tuple[int | None, ...]
) -> None:
    inp, out, cache_read, cache_write, reasoning = counts
    usage = {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "output_reasoning_tokens": reasoning,
    }
    expected = _package(model, provider, **{k: v for k, v in usage.items() if v is not None})
    for _ in range(2):  # the first call resolves and caches, the second is a cache hit
        got = estimate_cost_usd(provider, model, inp, out, cache_read, cache_write, reasoning)
        assert got is not None and got > 0
        assert got == expected


def test_unknown_or_impossible_gives_none() -> None:
    assert estimate_cost_usd("openai", "no-such-model-xyz", 100, 100) is None
    assert estimate_cost_usd("no-such-provider", "gpt-4o-mini", 100, 100) is None
    assert estimate_cost_usd("openai", None, 100, 100) is None
    assert estimate_cost_usd("openai", "gpt-4o-mini", None, None) is None
    assert estimate_cost_usd("openai", "gpt-4o-mini", -1, 100) is None
    # More cached tokens than input tokens contradicts the conventions: no guess.
    assert estimate_cost_usd("openai", "gpt-4o-mini", 100, 100, cache_read_tokens=500) is None


def test_without_the_package_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cost, "_gp", False)
    monkeypatch.setattr(cost, "_lookup", {})
    assert estimate_cost_usd("openai", "gpt-4o-mini", 100, 100) is None


def test_cache_hit_is_cheap() -> None:
    estimate_cost_usd("openai", "gpt-4o-mini", 1, 1)
    n = 100_000
    start = time.perf_counter()
    for i in range(n):
        estimate_cost_usd("openai", "gpt-4o-mini", 1000 + i % 7, 200, 100)
    per_call = (time.perf_counter() - start) / n * 1e9
    print(f"\nestimate_cost_usd cache hit: {per_call:.0f} ns per call")
    assert per_call < 50_000  # the package's own calculation takes ~300,000 ns


_NO_NETWORK = """
import socket, threading
def refuse(*args, **kwargs):
    raise AssertionError(f"network access attempted: {args!r}")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from llmgine_otel.cost import estimate_cost_usd
assert "genai_prices" not in __import__("sys").modules, "genai-prices imported eagerly"
value = estimate_cost_usd("openai", "gpt-4o-mini", 1000, 500)
assert value and value > 0, value
assert estimate_cost_usd("openai", "nope-model", 1, 1) is None
import genai_prices.data_snapshot as snap
assert snap._custom_snapshot is None, "prices were updated from somewhere"
assert threading.active_count() == 1, threading.enumerate()
print(value)
"""


def test_no_network_and_lazy_import() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _NO_NETWORK],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) > 0
