"""The derived-source mask: stored ``_source`` holds the integer ``1`` where a vector was.

The mask replaces the *whole* value at a derived path (an array, or a scalar for a one-dimensional vector);
``null`` stays ``null`` and an absent key stays absent, so array lengths and positions never change. That is
what lets the reader hand nested vectors back by position (derived-source.md §1.3, §2.2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from segstore.derived_source.paths import split_path, transform

__all__ = ["MASK", "mask_source", "inject_source"]

MASK = 1


def mask_source(source: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """A copy of ``source`` with every non-null value at each of ``paths`` replaced by :data:`MASK`.

    Masking is idempotent: an already-masked value becomes the mask again.
    """
    for path in paths:
        source = transform(source, split_path(path), lambda _v: MASK)
    return source


def inject_source(
    source: dict[str, Any], vectors_by_path: dict[str, Callable[[], Iterator[Any]]]
) -> dict[str, Any]:
    """A copy of ``source`` with the non-null values at each path replaced, in document order, by the
    values of that path's iterator (root fields yield one value, nested fields one per child with a vector).

    Raises ``LookupError`` if a path has more non-null occurrences than vectors: the caller turns that into
    a corruption error, because a mask must never be returned to a user.
    """
    for path, make_iter in vectors_by_path.items():
        it = make_iter()

        def next_vector(_masked: Any, it: Iterator[Any] = it, path: str = path) -> Any:
            try:
                return next(it)
            except StopIteration:
                raise LookupError(f"no stored vector for a masked value at [{path}]") from None

        source = transform(source, split_path(path), next_vector)
    return source
