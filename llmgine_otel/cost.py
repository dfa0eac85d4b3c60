"""Offline USD cost of one LLM call from token counts, priced by the bundled `genai-prices` data.

The optional ``cost`` extra provides ``genai-prices``; it is imported lazily on first use and only
its bundled snapshot is read (never ``UpdatePrices``, so nothing is fetched over the network).
The package's own calculation costs ~0.3 ms, so for flat-priced models the price is reduced once per
(provider, model) to exact integer coefficients over a power of ten, derived from that same
calculation; int / int division rounds correctly, so the float equals the package's figure.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

__all__ = ["CostNotReady", "estimate_cost_if_ready", "estimate_cost_usd", "warm_up"]

# OpenTelemetry `gen_ai.provider.name` values genai-prices does not recognise under that name.
_PROVIDER_ALIASES: dict[str, str] = {
    "x_ai": "x-ai",
    "mistral_ai": "mistral",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "azure.ai.inference": "azure",
}
_MTOK = 1_000_000
# Probe usages (input, output, cache_read, cache_write, reasoning) used to derive coefficients.
_PROBES: tuple[dict[str, int], ...] = (
    {},
    {"input_tokens": _MTOK},
    {"output_tokens": _MTOK},
    {"input_tokens": _MTOK, "cache_read_tokens": _MTOK},
    {"input_tokens": _MTOK, "cache_write_tokens": _MTOK},
    {"output_tokens": _MTOK, "output_reasoning_tokens": _MTOK},
)


@dataclass(frozen=True, slots=True)
class _Linear:
    """Cost = (base + sum(coefficient * tokens)) / scale, exact for a price without tiers."""

    base: int
    input: int
    output: int
    cache_read: int
    cache_write: int
    reasoning: int
    scale: int
    price: Any  # the genai-prices ModelPrice these were derived from


@dataclass(slots=True)
class _Priced:
    """A model whose price depends on the request time or is tiered: priced per call."""

    model: Any
    linear: dict[int, _Linear | None]  # id(ModelPrice) -> coefficients, None when not linear


_UNKNOWN = object()
# (provider, model) -> _Linear (the hot path), _Priced, or _UNKNOWN
_lookup: dict[tuple[str | None, str], Any] = {}
_lock = threading.Lock()
_gp: Any = None  # the genai_prices module once imported, False when it is not installed


class CostNotReady(LookupError):
    """The price table is still being loaded in the background (see :func:`warm_up`)."""


_warm = threading.Event()
_warm_started = False


def warm_up() -> None:
    """Load the price table on a daemon thread, so no application thread ever waits for
    the ~1 s import of genai-prices (pydantic models) on its first LLM call."""
    global _warm_started
    with _lock:
        if _warm_started:
            return
        _warm_started = True

    def load() -> None:
        try:
            _genai_prices()
        finally:
            _warm.set()

    threading.Thread(target=load, name="llmgine-otel-prices", daemon=True).start()


def estimate_cost_if_ready(*args: Any) -> float | None:
    """:func:`estimate_cost_usd`, but never waits for the table: raises
    :class:`CostNotReady` while :func:`warm_up` is still loading it."""
    if _gp is None and not _warm.is_set():
        raise CostNotReady("genai-prices is still loading")
    return estimate_cost_usd(*args)


def _genai_prices() -> Any:
    """The lazily imported `genai_prices` module, or None when the extra is not installed."""
    global _gp
    if _gp is None:
        try:
            import genai_prices
            import genai_prices.data_snapshot
        except ImportError:
            _gp = False
        else:
            _gp = genai_prices
    return _gp or None


def _resolve(provider: str | None, model: str) -> Any:
    """Find the genai-prices model once and reduce a fixed price to coefficients."""
    with _lock:
        gp = _genai_prices()
        if gp is None:
            return _UNKNOWN
        provider_id = _PROVIDER_ALIASES.get(provider, provider) if provider else None
        try:
            snapshot = gp.data_snapshot.get_snapshot()  # the bundled data unless the app updated it
            _, info = snapshot.find_provider_model(model, None, provider_id, None)
        except (LookupError, ValueError):
            found: Any = _UNKNOWN
        else:
            found = _Priced(info, {})
            if isinstance(info.prices, gp.types.ModelPrice):
                found = _linear(found, info.prices) or found
        _lookup[(provider, model)] = found
        return found


def _linear(priced: _Priced, price: Any) -> _Linear | None:
    """Per-token coefficients of ``price`` derived from the package's own calculation (cached)."""
    key = id(price)
    if key in priced.linear:
        return priced.linear[key]
    gp = _genai_prices()
    coefficients: _Linear | None = None
    if not any(isinstance(v, gp.types.TieredPrices) for v in vars(price).values()):
        try:
            totals = [price.calc_price(gp.Usage(**probe))["total_price"] for probe in _PROBES]
        except (ValueError, KeyError):
            pass
        else:
            base, inp, out, cache_read, cache_write, reasoning = totals
            coefficients = _integral(
                price,
                base,
                (inp - base) / _MTOK,
                (out - base) / _MTOK,
                (cache_read - inp) / _MTOK,
                (cache_write - inp) / _MTOK,
                (reasoning - out) / _MTOK,
            )
    priced.linear[key] = coefficients
    return coefficients


def _integral(price: Any, *values: Decimal) -> _Linear:
    """The Decimal coefficients as integers over one power of ten."""
    digits = max(0, *(-int(v.normalize().as_tuple().exponent) for v in values))
    base, inp, out, cache_read, cache_write, reasoning = (int(v.scaleb(digits)) for v in values)
    return _Linear(base, inp, out, cache_read, cache_write, reasoning, 10**digits, price)


def estimate_cost_usd(
    provider: str | None,
    model: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    reasoning_tokens: int | None = None,
) -> float | None:
    """USD cost of one call, or None when the model, its price or the counts are not known.

    ``input_tokens`` includes cached tokens and ``output_tokens`` includes reasoning tokens, as the
    OpenTelemetry GenAI conventions say; counts that contradict that give None, never a guess.
    """
    if not model or (input_tokens is None and output_tokens is None):
        return None
    found = _lookup.get((provider, model)) or _resolve(provider, model)
    if found is _UNKNOWN:
        return None
    inp, out = input_tokens or 0, output_tokens or 0
    cr, cw, rs = cache_read_tokens or 0, cache_write_tokens or 0, reasoning_tokens or 0
    if inp < 0 or out < 0 or cr < 0 or cw < 0 or rs < 0:
        return None
    if type(found) is _Priced:  # price chosen by request time, or tiered
        price = found.model.get_prices(datetime.now(tz=UTC))
        linear = _linear(found, price)
        if linear is None:
            return _slow(price, inp, out, cr, cw, rs)
    else:
        linear = found
    if cr + cw > inp or rs > out:  # let the package judge (it refuses most of these)
        return _slow(linear.price, inp, out, cr, cw, rs)
    total = (
        linear.base
        + linear.input * inp
        + linear.output * out
        + linear.cache_read * cr
        + linear.cache_write * cw
        + linear.reasoning * rs
    )
    return total / linear.scale


def _slow(price: Any, inp: int, out: int, cr: int, cw: int, rs: int) -> float | None:
    """The package's full calculation, for tiered prices and unusual counts (None when refused)."""
    usage = _genai_prices().Usage(
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=cr or None,
        cache_write_tokens=cw or None,
        output_reasoning_tokens=rs or None,
    )
    try:
        return float(price.calc_price(usage)["total_price"])
    except (ValueError, KeyError):
        return None
