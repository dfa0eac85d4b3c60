"""Event timestamps as OTLP times: llmgine's naive local ISO strings (or epoch seconds or
nanoseconds) to epoch nanoseconds, cheaply (the local offset is looked up once per hour)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["event_time_ns"]

_EPOCH = datetime(1970, 1, 1)
_MAX_NS = 2**63
_ONE_US = datetime(1970, 1, 1, 0, 0, 0, 1) - _EPOCH
_offsets: dict[str, int] = {}


def event_time_ns(value: Any) -> int | None:
    """An event ``timestamp`` (ISO string, naive = local time; or epoch s/ns) -> epoch ns."""
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
            if dt.tzinfo is not None:
                out = int(dt.timestamp() * 1_000_000) * 1000
            else:
                local_us = (dt - _EPOCH) // _ONE_US
                key = value[:13]  # local offset only changes on the hour (DST)
                off = _offsets.get(key)
                if off is None:
                    if len(_offsets) > 4096:
                        _offsets.clear()
                    off = _offsets[key] = round(dt.timestamp() * 1_000_000) - local_us
                out = (local_us + off) * 1000
        except (ValueError, OverflowError, OSError):  # e.g. year 1: "year 0 is out of range"
            return None
        # OTLP times are unsigned 64-bit: anything before 1970 or past 2262 is unusable.
        return out if 0 < out < _MAX_NS else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value > 1e17:  # already ns
        return int(value) if value < _MAX_NS else None
    if value > 0:
        return int(value * 1e9) if value * 1e9 < _MAX_NS else None
    return None



