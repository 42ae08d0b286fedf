"""Path traversal over ``_source`` maps, shared by masking, injection and the document parser.

The rules are core OpenSearch's ``XContentMapValues.transform`` (derived-source.md §1.4):

* a dotted path is split on ``.`` and matched one map key at a time, exactly (case-sensitive); a source key
  that itself contains dots matches the path parts it spells (``{"a.b": {"vec": ..}}`` holds ``a.b.vec``),
  as the mapper parses it. Upstream's transform skips such keys, which shifts nested vectors handed out by
  position (derived-source.md §2.4); segstore masks and injects exactly what it indexed;
* when the value at an intermediate segment is a list, each *map* element is visited in array order; lists
  of lists and scalars are skipped;
* at the full path the function is applied to the value, whatever it is; ``null`` values are left alone by
  every caller here, and absent keys stay absent.

Traversal is depth-first in document order, which is what lets nested vectors be handed back by ordinal.
Transforms are copy-on-write: maps and lists on the way to a changed value are copied, the caller's object
is never mutated, and key order is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["split_path", "collect", "collect_expanded", "transform"]


def split_path(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def collect(source: Any, parts: tuple[str, ...]) -> list[Any]:
    """Every non-null value at ``parts``, in document order."""
    out: list[Any] = []
    _collect(source, parts, 0, out)
    return out


def _collect(node: Any, parts: tuple[str, ...], i: int, out: list[Any]) -> None:
    if isinstance(node, dict):
        if parts[i] not in node:
            return
        value = node[parts[i]]
        if i == len(parts) - 1:
            if value is not None:
                out.append(value)
        else:
            _collect(value, parts, i + 1, out)
    elif isinstance(node, list) and i > 0:
        for element in node:
            if isinstance(element, dict):
                _collect(element, parts, i, out)


def transform(source: dict[str, Any], parts: tuple[str, ...], fn: Callable[[Any], Any]) -> dict[str, Any]:
    """A copy of ``source`` with ``fn(value)`` at every non-null occurrence of ``parts``."""
    return _transform(source, parts, 0, fn)  # type: ignore[no-any-return]


def _key_end(key: str, parts: tuple[str, ...], i: int) -> int:
    """Where a map key that matches ``parts`` from ``i`` ends (a dotted key spells several parts), or -1."""
    if "." not in key:  # the common case, without building a tuple per key
        return i + 1 if key == parts[i] else -1
    kp = tuple(key.split("."))
    return i + len(kp) if kp == parts[i:i + len(kp)] else -1


def _transform(node: Any, parts: tuple[str, ...], i: int, fn: Callable[[Any], Any]) -> Any:
    if isinstance(node, dict):
        copy = None
        # Keys are matched the way the document parser matches them (collect_expanded): a key may spell
        # several path parts with dots. Masking and injection must visit exactly the occurrences the parser
        # indexed, or nested vectors handed out by position would shift (derived-source.md §2.4).
        for key, value in node.items():
            j = _key_end(key, parts, i)
            if j < 0:
                continue
            if j == len(parts):
                if value is None:
                    continue
                new = fn(value)
            else:
                new = _transform(value, parts, j, fn)
                if new is value:
                    continue
            if copy is None:
                copy = dict(node)  # dict() keeps insertion order
            copy[key] = new
        return node if copy is None else copy
    if isinstance(node, list) and i > 0:
        changed = False
        items = []
        for element in node:
            new_el = _transform(element, parts, i, fn) if isinstance(element, dict) else element
            changed |= new_el is not element
            items.append(new_el)
        return items if changed else node
    return node


def collect_expanded(source: Any, parts: tuple[str, ...]) -> list[Any]:
    """Like :func:`collect`, but a key containing dots also matches the path parts it spells
    (``{"a.b": {"vec": ...}}`` holds ``a.b.vec``), the way the mapper parses documents. Values found only
    through a dotted key are indexed but, as upstream, never masked or injected (stored in full)."""
    out: list[Any] = []
    _collect_expanded(source, parts, 0, out)
    return out


def _collect_expanded(node: Any, parts: tuple[str, ...], i: int, out: list[Any]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            j = _key_end(key, parts, i)
            if j < 0:
                continue
            if j == len(parts):
                if value is not None:
                    out.append(value)
            else:
                _collect_expanded(value, parts, j, out)
    elif isinstance(node, list) and i > 0:
        for element in node:
            if isinstance(element, dict):
                _collect_expanded(element, parts, i, out)
