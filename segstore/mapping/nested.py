"""Nested objects become child documents, indexed in one block before their parent (Lucene's layout).

For a document, :func:`nested_children` lists one child per object of every ``nested`` field, in
post-order: the children of a nested object precede it, and siblings keep source order. Example (from
derived-source.md §2.1): ``root{n2:[a{n3:[x,y]}, b{n3:[z]}]}`` gives ``x, y, a, z, b`` and then the root.
A nested field given as a single object counts as a one-element array; ``null`` and non-object elements
make no child. Objects between nested levels (plain ``object`` fields) are walked through, arrays of them
included, as the mapper does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from segstore.mapping.mappings import Mappings

__all__ = ["NestedChild", "nested_children", "direct_nested_paths"]


@dataclass(frozen=True)
class NestedChild:
    """One child document: the nested path it belongs to and its object in the source."""

    path: str
    obj: dict[str, Any]


def direct_nested_paths(mappings: Mappings, scope: str | None) -> list[str]:
    """Nested paths whose innermost enclosing nested scope is ``scope`` (None = the root)."""
    out = []
    for n in mappings.nested_paths:
        enclosing = mappings.nested_scope(n)
        if enclosing == scope:
            out.append(n)
    return out


def _objects_at(node: Any, parts: list[str]) -> list[dict[str, Any]]:
    """The dict values at ``parts`` below ``node`` (arrays walked, dotted keys matched), in source order."""
    if not parts:
        items = node if isinstance(node, list) else [node]
        return [x for x in items if isinstance(x, dict)]
    out: list[dict[str, Any]] = []
    for el in (node if isinstance(node, list) else [node]):
        if not isinstance(el, dict):
            continue
        for key, value in el.items():
            kp = key.split(".")
            if kp == parts[: len(kp)]:
                out.extend(_objects_at(value, parts[len(kp):]))
    return out


def nested_children(source: dict[str, Any], mappings: Mappings) -> list[NestedChild]:
    """Child documents of ``source`` in block order (post-order)."""
    if not mappings.nested_paths:
        return []
    out: list[NestedChild] = []
    _walk(source, None, mappings, out)
    return out


def _walk(obj: dict[str, Any], scope: str | None, mappings: Mappings, out: list[NestedChild]) -> None:
    prefix = "" if scope is None else scope + "."
    for n in direct_nested_paths(mappings, scope):
        for child in _objects_at(obj, n[len(prefix):].split(".")):
            _walk(child, n, mappings, out)
            out.append(NestedChild(n, child))
