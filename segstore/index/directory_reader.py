"""``DirectoryReader``: a point-in-time view over a list of segments (the leaves).

A reader never changes: refreshes, merges and commits produce new readers. Reference counting keeps the
leaves (and through them every file they use) alive until the last user closes it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from segstore.index.ref_counted import RefCounted
from segstore.index.segment_reader import SegmentReader

__all__ = ["DirectoryReader"]


class DirectoryReader(RefCounted):
    """An immutable snapshot. ``close()`` (idempotent) releases the caller's reference."""

    def __init__(self, leaves: list[SegmentReader], version: int = 0) -> None:
        self.leaves = list(leaves)
        self.version = version
        self.doc_bases = np.cumsum([0] + [leaf.max_doc for leaf in self.leaves], dtype=np.int64)
        self._by_name = {leaf.name: i for i, leaf in enumerate(self.leaves)}
        super().__init__("this DirectoryReader")
        self._closed = False

    def __iter__(self) -> Iterator[SegmentReader]:
        return iter(self.leaves)

    @property
    def max_doc(self) -> int:
        return int(self.doc_bases[-1])

    @property
    def num_docs(self) -> int:
        return sum(leaf.num_docs for leaf in self.leaves)

    def leaf(self, name: str) -> SegmentReader | None:
        i = self._by_name.get(name)
        return None if i is None else self.leaves[i]

    def leaf_index(self, name: str) -> int | None:
        return self._by_name.get(name)

    def inc_ref(self) -> "DirectoryReader":  # type: ignore[override]
        super().inc_ref()
        return self

    def _release(self) -> None:
        for leaf in self.leaves:
            leaf.dec_ref()

    def close(self) -> None:
        """Release this handle's reference (once; later calls do nothing)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.dec_ref()

    def __enter__(self) -> "DirectoryReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
