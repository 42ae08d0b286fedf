"""Exact distances and OpenSearch ``_score`` translation per space type (vector-semantics.md §2.1).

Every score segstore returns, whichever path found the document (graph, exact scan, filtered scan), is
computed here from the canonical stored vectors, so the same document always gets the same score. The
arithmetic is float32, like faiss and Lucene, and each row is reduced independently (an elementwise product
then a per-row sum), so a row's result does not depend on which other rows are scored with it.

===============  =======================================  =========================================
space            raw value                                ``_score``
===============  =======================================  =========================================
``l2``           d = sum((x - y)^2)  (squared)            1 / (1 + d)
``cosinesimil``  c = x.y / (|x| |y|)                      max((1 + c) / 2, 0)
``innerproduct`` p = x.y                                  p >= 0: p + 1;  p < 0: 1 / (1 - p)
``l1``           d = sum(|x - y|)                         1 / (1 + d)
``linf``         d = max(|x - y|)                         1 / (1 + d)
``hamming``      d = popcount(x XOR y) on packed bytes    1 / (1 + d)
===============  =======================================  =========================================
"""

from __future__ import annotations

import numpy as np

__all__ = ["SPACE_TYPES", "raw_scores", "scores", "score_from_raw"]

SPACE_TYPES = ("l2", "cosinesimil", "innerproduct", "l1", "linf", "hamming")
_ONE = np.float32(1.0)
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def raw_scores(space: str, vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The raw distance/similarity (float32) of each row of ``vectors`` to ``query`` (see the table)."""
    if space == "hamming":
        x = np.bitwise_xor(vectors.view(np.uint8), query.view(np.uint8))
        return _POPCOUNT[x].sum(axis=1, dtype=np.int64).astype(np.float32)
    # float32 inputs (every float field) skip the conversion calls: this runs once per query on the hot path
    v = vectors if vectors.dtype == np.float32 else vectors.astype(np.float32)
    q = query if query.dtype == np.float32 else query.astype(np.float32)
    if space == "l2":
        diff = v - q
        np.multiply(diff, diff, out=diff)  # in place: the same products as diff * diff, one allocation less
        return diff.sum(axis=1, dtype=np.float32)
    if space == "innerproduct":
        return (v * q).sum(axis=1, dtype=np.float32)
    if space == "cosinesimil":
        dot = (v * q).sum(axis=1, dtype=np.float32)
        vn = np.sqrt((v * v).sum(axis=1, dtype=np.float32))
        qn = np.float32(np.sqrt((q * q).sum(dtype=np.float32)))
        with np.errstate(divide="ignore", invalid="ignore"):
            return (dot / (vn * qn)).astype(np.float32)
    if space == "l1":
        return np.abs(v - q).sum(axis=1, dtype=np.float32)
    if space == "linf":
        return np.abs(v - q).max(axis=1).astype(np.float32)
    raise ValueError(f"unknown space type [{space}]")


def score_from_raw(space: str, raw: np.ndarray) -> np.ndarray:
    """Translate raw values (float32) into OpenSearch ``_score`` values (float32)."""
    raw = raw if raw.dtype == np.float32 else raw.astype(np.float32)
    one = _ONE
    if space in ("l2", "l1", "linf", "hamming"):
        out = raw + one
        return np.divide(one, out, out=out)
    if space == "cosinesimil":
        return np.maximum((one + raw) / np.float32(2.0), np.float32(0.0))
    if space == "innerproduct":
        with np.errstate(divide="ignore"):
            return np.where(raw >= 0, raw + one, one / (one - raw)).astype(np.float32)
    raise ValueError(f"unknown space type [{space}]")


def scores(space: str, vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Exact ``_score`` (float32) of each row of ``vectors`` against ``query``."""
    if space == "l2" and vectors.dtype == np.float32 and query.dtype == np.float32:
        # The per-query hot path, inlined: the same operations as raw_scores + score_from_raw, in place.
        diff = vectors - query
        np.multiply(diff, diff, out=diff)
        d = diff.sum(axis=1, dtype=np.float32)
        d += _ONE
        return np.divide(_ONE, d, out=d)
    return score_from_raw(space, raw_scores(space, vectors, query))
