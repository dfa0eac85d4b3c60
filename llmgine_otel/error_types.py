"""``error.type`` from what an event says failed: an exception, an explicit type, or a
message that starts with an exception class name (``"ValueError: ..."``)."""

from __future__ import annotations

import re
from typing import Any

from llmgine_otel.content import valid_utf8

__all__ = ["error_type"]

_ERROR_TYPE_RE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Timeout|Interrupt)\w*):")


def error_type(error: Any, explicit: Any) -> str:
    if isinstance(explicit, str) and explicit:
        return valid_utf8(explicit[:128])
    if isinstance(error, BaseException):
        return type(error).__qualname__
    if isinstance(error, str):
        m = _ERROR_TYPE_RE.match(error)
        if m:
            return m.group(1)
    return "_OTHER"
