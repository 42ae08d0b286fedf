"""``HnswGraph``: a loaded hnswlib graph of one float field, searched through the :class:`KnnGraph` API.

Labels are the field's vector ordinals. Raw distances follow the graph format (:mod:`.graph_format`): squared
Euclidean for ``l2``, ``1 - dot`` for ``innerproduct``, ``1 - cos`` for ``cosinesimil`` (hnswlib normalises
stored vectors and queries). hnswlib refuses to return fewer than ``k`` results for a query; a filtered
search that reaches fewer accepted ordinals falls back to a per-query search for the largest ``k`` that
succeeds (``_search_ragged``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hnswlib
import numpy as np
from segstore_codecs.segstore1.faiss_graph import resolve_accept

from segstore.codec.base import KnnGraph

__all__ = ["HnswGraph"]


def _is_ragged(e: RuntimeError) -> bool:
    # hnswlib's message when a query found fewer than k results (an error raised by ``accept`` must propagate).
    return "contiguous 2D array" in str(e)


class HnswGraph(KnnGraph):
    """A loaded hnswlib index over one field; labels are ordinals."""

    def __init__(self, index: hnswlib.Index, field: str, dimension: int, count: int) -> None:
        self.index = index
        self.field = field
        self.dimension = dimension
        self.count = count

    def search(
        self, queries: np.ndarray, k: int, ef: int, accept: Callable[[int], bool] | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw distances per the module docstring. ``accept``: a callable on ordinals or a bool mask over
        ordinals. If it leaves some query fewer than ``k`` reachable ordinals, k' is the smallest count any
        query found: every returned ordinal is real (callers index vectors with them, so no -1 padding), at
        the price of dropping extra hits of other rows."""
        if isinstance(accept, np.ndarray):
            mask = resolve_accept(accept, self.count)
            accept = lambda label: bool(mask[label])  # noqa: E731 - hnswlib wants a callable
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dimension:
            raise ValueError(f"field [{self.field}]: queries must have shape (n, {self.dimension}), got {q.shape}")
        if k < 1 or ef < 1:
            raise ValueError(f"k and ef must be >= 1, got k={k} ef={ef}")
        kk = min(k, self.count)
        target = max(ef, k)
        # ef is index-wide state in hnswlib. Setting it only when it differs keeps the common case (same ef
        # for every search) write-free; two concurrent searches with different ef may see each other's value,
        # which only changes their recall/latency trade-off, never correctness.
        if self.index.ef != target:
            self.index.set_ef(target)
        if q.shape[0] == 0:
            return np.empty((0, kk), np.int64), np.empty((0, kk), np.float32)
        try:
            labels, dists = self.index.knn_query(q, k=kk, num_threads=1, filter=accept)
        except RuntimeError as e:
            # hnswlib refuses to return a ragged result: some query found fewer than kk accepted ordinals.
            if not _is_ragged(e):
                raise
            return self._search_ragged(q, kk, accept)
        return labels.astype(np.int64), dists.astype(np.float32, copy=False)

    def search_one(self, query: np.ndarray, k: int, ef: int) -> np.ndarray:
        # No accept filter, so hnswlib always returns min(k, count) labels: none of search()'s shape and
        # ragged-result handling is needed. Labels stay uint64 (numpy indexes with them directly).
        target = max(ef, k)
        if self.index.ef != target:
            self.index.set_ef(target)
        return self.index.knn_query(query, k=min(k, self.count), num_threads=1)[0][0]  # type: ignore[no-any-return]

    def _search_ragged(self, q: np.ndarray, kk: int, accept: Callable[[int], bool] | None) -> tuple[Any, Any]:
        rows: list[tuple[np.ndarray, np.ndarray]] = []
        for row in range(q.shape[0]):  # rare path: per query, binary-search the largest k that succeeds
            lo, hi, best = 1, kk, None
            while lo <= hi:
                mid = (lo + hi) // 2
                try:
                    best = self.index.knn_query(q[row : row + 1], k=mid, num_threads=1, filter=accept)
                    lo = mid + 1
                except RuntimeError as e:
                    if not _is_ragged(e):
                        raise
                    hi = mid - 1
            rows.append((best[0][0], best[1][0]) if best is not None else (np.empty(0), np.empty(0)))
        width = min(len(r[0]) for r in rows)
        return (np.array([r[0][:width] for r in rows], np.int64).reshape(len(rows), width),
                np.array([r[1][:width] for r in rows], np.float32).reshape(len(rows), width))

    def memory_bytes(self) -> int:
        # index_file_size() is the size of the saved blob, which mirrors hnswlib's main allocations: the
        # level-0 block (vector + level-0 links + label per element, allocated for max_elements == count)
        # and the upper-level link lists. Add what it does not count: per element the level int, the link
        # list mutex (40 B), the upper-level list pointer, a visited-list slot (u16) and a label-lookup hash
        # node (~40 B); plus hnswlib 0.8's fixed 65536 label-operation mutexes.
        return int(self.index.index_file_size()) + self.count * (4 + 40 + 8 + 2 + 40) + 65536 * 40
