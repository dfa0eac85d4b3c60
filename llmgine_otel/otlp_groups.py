"""Telemetry items grouped the way OTLP nests them: by resource, then by scope.

Both encoders (``otlp_proto`` for the wire, ``otlp_json`` for files) group with this, so a
batch is nested the same way in both: first-seen order, equal resources (and equal scopes
within one) merged as the SDK's encoder does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = ["group"]

T = TypeVar("T")


def group(items: Iterable[Any], encode: Callable[[Any], T]
          ) -> list[tuple[Any, list[tuple[Any, list[T]]]]]:
    """``[(resource, [(scope, [encode(item), ...]), ...]), ...]``."""
    # Keyed by id() first: Resource.__hash__ serialises every attribute, too slow per item;
    # the (few) distinct objects are then compared for equality.
    by_id: dict[int, tuple[Any, dict[int, tuple[Any, list[T]]]]] = {}
    for item in items:
        resource = item.resource
        scope = item.instrumentation_scope or None
        entry = by_id.get(id(resource))
        if entry is None:
            entry = by_id[id(resource)] = (resource, {})
        bucket = entry[1].get(id(scope))
        if bucket is None:
            bucket = entry[1][id(scope)] = (scope, [])
        bucket[1].append(encode(item))
    merged: list[tuple[Any, list[tuple[Any, list[T]]]]] = []
    for resource, scopes in by_id.values():
        into = next((s for r, s in merged if r is resource or r == resource), None)
        if into is None:
            into = []
            merged.append((resource, into))
        for scope, encoded in scopes.values():
            same = next((e for s, e in into if s is scope or s == scope), None)
            if same is None:
                into.append((scope, list(encoded)))
            else:
                same.extend(encoded)
    return merged
