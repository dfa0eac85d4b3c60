"""Making event values safe to export: bounded, valid UTF-8, acyclic, and scrubbed of secrets.

Everything here is pure and never raises on odd input: a value that cannot be represented is
replaced by a short placeholder, and ``Sanitizer.repairs`` counts it (the translator reports
it as the ``repaired`` outcome).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Sanitizer", "safe_str", "scrub_secrets", "to_semconv_messages"]

MAX_DEPTH = 8
MAX_ITEMS = 128

# Secret-looking substrings, replaced even when content capture is on.
_SECRET_RE = re.compile(
    r"(?P<key>\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{8,})"
    r"|(?P<bearer>\b[Bb]earer\s+[A-Za-z0-9._~+/=\-]{6,})"
    r"|(?P<pair>\b(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|token)"
    r"\s*[=:]\s*[\"']?[^\s\"'&,;]{3,})"
    r"|(?P<aws>\bAKIA[0-9A-Z]{16}\b)"
    r"|(?P<gh>\bgh[pousr]_[A-Za-z0-9]{20,})",
    re.IGNORECASE,
)
REDACTED = "[REDACTED]"


# Every alternative of _SECRET_RE contains one of these (lower-cased): a cheap pre-check.
_TRIGGERS = ("sk-", "bearer", "pass", "pwd", "secret", "key", "token", "akia", "gh")


def scrub_secrets(text: str) -> str:
    """Replace API keys, bearer tokens and ``password=...`` pairs with ``[REDACTED]``."""
    if len(text) < 8:
        return text
    lower = text.lower()
    for trigger in _TRIGGERS:
        if trigger in lower:
            return _SECRET_RE.sub(_redact_match, text)
    return text


def _redact_match(m: re.Match[str]) -> str:
    if m.lastgroup == "pair":
        head = re.match(r"[^=:]*[=:]\s*", m.group(0))
        return (head.group(0) if head else "") + REDACTED
    if m.lastgroup == "bearer":
        return "Bearer " + REDACTED
    return REDACTED


def safe_str(value: Any) -> str:
    """``str(value)``, or a placeholder when ``__str__`` raises or returns a non-string."""
    try:
        text = str(value)
        if not isinstance(text, str):
            raise TypeError("__str__ returned a non-string")
        return text
    except Exception:  # noqa: BLE001 - the whole point is to survive any __str__
        try:
            return f"<unprintable {type(value).__name__}>"
        except Exception:  # noqa: BLE001
            return "<unprintable>"


def valid_utf8(text: str) -> str:
    """Drop lone surrogates, which protobuf refuses (and which would fail a whole batch)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


class Sanitizer:
    """Turns arbitrary values into bounded, JSON-safe data (the ``AnyValue`` subset).

    ``limit`` caps every string; ``scrub`` replaces secrets; ``redact`` is the user's hook,
    applied to captured content by key. ``on_repair(n)`` is told of every value that had to
    be changed (the translator counts it, atomically, as the ``repaired`` outcome); without
    one, ``repairs`` counts them.
    """

    __slots__ = ("_on_repair", "limit", "redact", "repairs", "scrub")

    def __init__(self, limit: int, *, scrub: bool = True,
                 redact: Callable[[str, Any], Any] | None = None,
                 on_repair: Callable[[int], None] | None = None) -> None:
        self.limit = limit
        self.scrub = scrub
        self.redact = redact
        self.repairs = 0
        self._on_repair = on_repair or self._count

    def _count(self, n: int) -> None:
        self.repairs += n

    # -- strings ---------------------------------------------------------------------------
    def text(self, value: str, *, scrub: bool | None = None) -> str:
        """A string cut to the limit, valid UTF-8, and scrubbed when asked."""
        if len(value) > self.limit:
            cut = len(value) - self.limit
            value = f"{value[: self.limit]}…[truncated {cut} chars]"
            self._on_repair(1)
        fixed = valid_utf8(value)
        if fixed is not value:
            self._on_repair(1)
        if self.scrub if scrub is None else scrub:
            fixed = scrub_secrets(fixed)
        return fixed

    # -- attribute values ------------------------------------------------------------------
    def attribute(self, value: Any, kind: str) -> Any:
        """Coerce ``value`` to an OTel attribute of ``kind`` (str|int|float|bool|str[]);
        ``None`` when it cannot be (counted as a repair)."""
        try:
            if kind == "str":
                if isinstance(value, str):
                    return self.text(value, scrub=False)
                if isinstance(value, bytes):
                    self._on_repair(1)
                    return self.text(value.decode("utf-8", "replace"), scrub=False)
                if isinstance(value, bool | int | float):
                    return str(value)
                self._on_repair(1)
                return self.text(safe_str(value), scrub=False)
            if kind == "int":
                if isinstance(value, bool):
                    raise TypeError
                if isinstance(value, int):
                    return value if -(2**63) <= value < 2**63 else None
                if isinstance(value, float) and value.is_integer():
                    return int(value)
                self._on_repair(1)
                return int(str(value).strip())
            if kind == "float":
                if isinstance(value, bool):
                    raise TypeError
                if isinstance(value, int | float):
                    f = float(value)
                    return f if math.isfinite(f) else None
                self._on_repair(1)
                f = float(str(value).strip())
                return f if math.isfinite(f) else None
            if kind == "bool":
                if isinstance(value, bool):
                    return value
                raise TypeError
            if kind == "str[]":
                if isinstance(value, str | bytes):
                    value = [value]
                if not isinstance(value, list | tuple | set | frozenset):
                    raise TypeError
                return tuple([self.attribute(v, "str") for v in list(value)[:MAX_ITEMS]])
        except Exception:  # noqa: BLE001 - bad input is counted, never raised
            pass
        self._on_repair(1)
        return None

    # -- structured values (log bodies, captured content) ------------------------------------
    def data(self, value: Any, *, scrub: bool = False, key: str = "") -> Any:
        """A JSON-safe copy of ``value``: depth, item count and string length bounded,
        cycles cut, unknown objects described by their type and fields."""
        return self._data(value, scrub, 0, set(), key)

    def _data(self, value: Any, scrub: bool, depth: int, seen: set[int], key: str) -> Any:
        cls = value.__class__
        # Fast paths by exact class (the common case), then the general checks.
        if cls is str:
            if len(value) <= 256 and value.isascii():
                return scrub_secrets(value) if scrub else value
            return self.text(value, scrub=scrub)
        if cls is int:
            if -(2**63) <= value < 2**63:
                return value
            self._on_repair(1)
            return str(value)
        if value is None or cls is bool:
            return value
        if cls is float:
            if math.isfinite(value):
                return value
            self._on_repair(1)
            return str(value)
        if isinstance(value, bool | int):
            return self._data(int(value) if not isinstance(value, bool) else bool(value),
                              scrub, depth, seen, key)
        if isinstance(value, float):
            return self._data(float(value), scrub, depth, seen, key)
        if isinstance(value, str):
            return self.text(value, scrub=scrub)
        if isinstance(value, bytes | bytearray | memoryview):
            self._on_repair(1)
            return self.text(bytes(value).decode("utf-8", "replace"), scrub=scrub)
        if depth >= MAX_DEPTH:
            self._on_repair(1)
            return f"<{type(value).__name__}: too deep>"
        ident = id(value)
        if ident in seen:
            self._on_repair(1)
            return "<cycle>"
        seen.add(ident)
        try:
            if cls is dict:
                return self._mapping(value, scrub, depth, seen)
            if isinstance(value, BaseException):
                return {"type": type(value).__name__,
                        "message": self.text(safe_str(value), scrub=True)}
            if isinstance(value, Mapping):
                return self._mapping(value, scrub, depth, seen)
            if isinstance(value, list | tuple | set | frozenset):
                items = list(value)
                res = [self._data(v, scrub, depth + 1, seen, key) for v in items[:MAX_ITEMS]]
                if len(items) > MAX_ITEMS:
                    self._on_repair(1)
                    res.append(f"… {len(items) - MAX_ITEMS} more items")
                return res
            names = _dataclass_fields(cls)
            if names is not None:
                out = {"type": cls.__name__}
                for name in names:
                    out[name] = self._data(getattr(value, name, None), scrub, depth + 1,
                                           seen, name)
                return out
            self._on_repair(1)
            return self.text(f"<{type(value).__name__}> {safe_str(value)}", scrub=True)
        except Exception:  # noqa: BLE001 - e.g. a mapping whose items() raises
            self._on_repair(1)
            return f"<unreadable {type(value).__name__}>"
        finally:
            seen.discard(ident)

    def _mapping(self, value: Any, scrub: bool, depth: int, seen: set[int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(list(value.items())):
            if i >= MAX_ITEMS:
                self._on_repair(1)
                out["…"] = f"{len(value) - MAX_ITEMS} more items"
                break
            ks = k if k.__class__ is str and len(k) <= 64 and k.isascii() else \
                self.text(k if isinstance(k, str) else safe_str(k), scrub=False)
            out[ks] = self._data(v, scrub, depth + 1, seen, ks)
        return out

    def content(self, key: str, value: Any) -> Any:
        """Captured content: the user's redaction hook first, then bounded and scrubbed.
        Returns ``None`` when the hook drops it."""
        if self.redact is not None:
            try:
                value = self.redact(key, value)
            except Exception:  # noqa: BLE001 - a broken hook drops the value, never raises
                self._on_repair(1)
                return None
            if value is None:
                return None
        return self._data(value, True, 0, set(), key)

    def json(self, value: Any) -> str:
        """Compact JSON of already-sanitized data; each string was bounded before encoding,
        so the result is always valid JSON (never cut in the middle)."""
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_DATACLASS_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _dataclass_fields(cls: type) -> tuple[str, ...] | None:
    """Field names of a dataclass type (cached), or None for other types."""
    try:
        return _DATACLASS_FIELDS[cls]
    except KeyError:
        names = (tuple(f.name for f in dataclasses.fields(cls))
                 if dataclasses.is_dataclass(cls) else None)
        if len(_DATACLASS_FIELDS) < 4096:
            _DATACLASS_FIELDS[cls] = names
        return names


def to_semconv_messages(messages: Any) -> Any:
    """OpenAI/litellm-style chat messages -> the GenAI semconv shape ``{role, parts[...]}``.

    Already-converted messages (with ``parts``) pass through; unknown shapes are kept as is.
    """
    if not isinstance(messages, list | tuple):
        return messages
    out: list[Any] = []
    for msg in messages:
        if not isinstance(msg, Mapping) or "parts" in msg:
            out.append(msg)
            continue
        role = msg.get("role", "user")
        parts: list[dict[str, Any]] = []
        content = msg.get("content")
        if isinstance(content, str):
            parts.append({"type": "text", "content": content})
        elif isinstance(content, list):
            for item in content:
                if isinstance(item, Mapping) and item.get("type") == "text":
                    parts.append({"type": "text", "content": item.get("text", "")})
                else:
                    parts.append({"type": "unknown", "content": item})
        for call in msg.get("tool_calls") or ():
            if isinstance(call, Mapping):
                fn = call.get("function") or {}
                parts.append({"type": "tool_call", "id": call.get("id"),
                              "name": fn.get("name") if isinstance(fn, Mapping) else None,
                              "arguments": fn.get("arguments") if isinstance(fn, Mapping)
                              else None})
        if role == "tool":
            parts = [{"type": "tool_call_response", "id": msg.get("tool_call_id"),
                      "response": content}]
        entry: dict[str, Any] = {"role": role, "parts": parts}
        if msg.get("finish_reason"):
            entry["finish_reason"] = msg["finish_reason"]
        out.append(entry)
    return out
