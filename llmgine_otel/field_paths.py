"""Field paths and span-name templates of the mapping, compiled once per rule.

What runs per event is a few attribute look-ups. Nothing here raises on odd input: a missing
or malformed value reads as ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from llmgine_otel.content import safe_str, valid_utf8

__all__ = ["compile_name", "compile_path"]

_mapping_types: dict[type, bool] = {}


def _step(obj: Any, name: str) -> Any:
    """One path step: a dict key or an attribute (Mapping-ness cached per class)."""
    cls = obj.__class__
    if cls is dict:
        return obj.get(name)
    is_map = _mapping_types.get(cls)
    if is_map is None:
        is_map = isinstance(obj, Mapping)
        if len(_mapping_types) < 4096:
            _mapping_types[cls] = is_map
    return obj.get(name) if is_map else getattr(obj, name, None)


def compile_path(path: str) -> Callable[[Any], Any]:
    """``a.b|c:type|=const`` -> a function of the event returning the first non-empty value."""
    alternatives: list[Callable[[Any], Any]] = []
    for alt in path.split("|"):
        if alt.startswith("="):
            alternatives.append(_constant(alt[1:]))
            continue
        as_type = alt.endswith(":type")
        parts = tuple((alt[:-5] if as_type else alt).split("."))
        if len(parts) == 1 and not as_type:  # a field of the event itself: the common case
            alternatives.append(_field(parts[0]))
            continue

        def get(e: Any, parts: tuple[str, ...] = parts, as_type: bool = as_type) -> Any:
            for p in parts:
                e = _step(e, p)
                if e is None:
                    return None
            return type(e).__name__ if as_type else e

        alternatives.append(get)
    if len(alternatives) == 1:
        return alternatives[0]

    def first(e: Any) -> Any:
        for alt_get in alternatives:
            v = alt_get(e)
            if v is not None and v != "":
                return v
        return None

    return first


def _field(name: str) -> Callable[[Any], Any]:
    def field(e: Any) -> Any:
        return e.get(name) if e.__class__ is dict else getattr(e, name, None)

    return field


def _constant(value: str) -> Callable[[Any], Any]:
    def const(_event: Any) -> str:
        return value

    return const


_TEMPLATE_RE = re.compile(r"\{([^}]+)\}")


def compile_name(template: str) -> Callable[[Any], str]:
    """A span-name template such as ``{operation} {model}`` -> a function of the event."""
    pieces: list[str | Callable[[Any], Any]] = []
    pos = 0
    for m in _TEMPLATE_RE.finditer(template):
        pieces.append(template[pos:m.start()])
        pieces.append(compile_path(m.group(1)))
        pos = m.end()
    pieces.append(template[pos:])

    def render(e: Any) -> str:
        out = []
        for p in pieces:
            if isinstance(p, str):
                out.append(p)
            else:
                v = p(e)
                out.append(v if isinstance(v, str) else ("" if v is None else safe_str(v)))
        # valid UTF-8: a lone surrogate in a name fails the whole export batch
        return valid_utf8("".join(out).strip()[:256]) or template.split(" ")[0]

    return render
