"""``HitList``: one shard's hits as three arrays, read as ``(score, leaf, doc)`` rows only where needed.

A filter or ``match_all`` query matches every live document of a shard; making a Python tuple per match
would cost a second per million documents before a page of ten is shown. A ``HitList`` keeps the matches
as numpy arrays (scores, leaf indices, doc ids, in hit order) and behaves as a read-only sequence of
``(score, leaf, doc)`` tuples, so callers that read a page slice it and callers that aggregate or sort
take the arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np

__all__ = ["HitList", "ShardHits", "hit_arrays"]

Hit = tuple[Any, int, int]


class HitList(Sequence[Hit]):
    """Hits in order: ``scores`` (float64), ``leaves`` and ``docs`` (int64) of equal length."""

    __slots__ = ("scores", "leaves", "docs")

    def __init__(self, scores: np.ndarray, leaves: np.ndarray, docs: np.ndarray) -> None:
        self.scores, self.leaves, self.docs = scores, leaves, docs

    def __len__(self) -> int:
        return int(self.docs.shape[0])

    @overload
    def __getitem__(self, i: int) -> Hit: ...

    @overload
    def __getitem__(self, i: slice) -> list[Hit]: ...

    def __getitem__(self, i: int | slice) -> Hit | list[Hit]:
        if isinstance(i, slice):
            return list(zip(self.scores[i].tolist(), self.leaves[i].tolist(), self.docs[i].tolist()))
        return (float(self.scores[i]), int(self.leaves[i]), int(self.docs[i]))

    def __iter__(self) -> Iterator[Hit]:
        return zip(self.scores.tolist(), self.leaves.tolist(), self.docs.tolist())


def hit_arrays(hits: Sequence[Hit]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, leaves, docs) of any hit sequence; a ``HitList``'s own arrays without a copy. A ``None``
    score (a field sort computes none) becomes NaN."""
    if isinstance(hits, HitList):
        return hits.scores, hits.leaves, hits.docs
    n = len(hits)
    scores = np.fromiter((np.nan if h[0] is None else h[0] for h in hits), dtype=np.float64, count=n)
    leaves = np.fromiter((h[1] for h in hits), dtype=np.int64, count=n)
    docs = np.fromiter((h[2] for h in hits), dtype=np.int64, count=n)
    return scores, leaves, docs


class ShardHits:
    """Hits of several shards in their final order, as arrays; a slice reads ``(score, shard, leaf, doc)``
    rows (``score`` None when ``scores`` is None: a field sort computes no scores)."""

    __slots__ = ("scores", "shards", "leaves", "docs")

    def __init__(self, scores: np.ndarray | None, shards: np.ndarray, leaves: np.ndarray, docs: np.ndarray) -> None:
        self.scores, self.shards, self.leaves, self.docs = scores, shards, leaves, docs

    def __len__(self) -> int:
        return int(self.docs.shape[0])

    def __getitem__(self, page: slice) -> list[tuple[Any, int, int, int]]:
        n = len(self.docs[page])
        scores = [None] * n if self.scores is None else [None if x != x else x for x in self.scores[page].tolist()]
        return list(zip(scores, self.shards[page].tolist(), self.leaves[page].tolist(), self.docs[page].tolist()))

    @classmethod
    def concat(cls, parts: list[tuple[int, Sequence[Hit]]]) -> ShardHits:
        """Shards' hits ``[(shard, hits)]`` one after the other, in the given order."""
        arrays = [(si, *hit_arrays(hits)) for si, hits in parts]
        if not arrays:
            empty = np.zeros(0, dtype=np.int64)
            return cls(np.zeros(0), empty, empty, empty)
        return cls(np.concatenate([a[1] for a in arrays]),
                   np.concatenate([np.full(a[3].shape[0], a[0], dtype=np.int64) for a in arrays]),
                   np.concatenate([a[2] for a in arrays]), np.concatenate([a[3] for a in arrays]))

    def without_scores(self) -> ShardHits:
        return ShardHits(None, self.shards, self.leaves, self.docs)

    def max_score(self) -> float | None:
        if self.scores is None:
            return None
        real = self.scores[~np.isnan(self.scores)]
        return float(real.max()) if real.size else None
