"""Nested k-NN over quantized fields: a first pass on the codes, then sibling-aware rescoring.

The first pass (per segment) finds the best child per root from the codes, exactly as
:mod:`segstore.search.quantized` does for flat fields: graph candidates scored from the codes the graph holds,
small segments scanned over the codes. A root's best child *by its code* need not be its best child at full
precision, so rescoring does not re-score that child alone: like faiss rescoring in OpenSearch
(``NativeEngineKnnVectorQuery#doRescore`` with a parents filter, vector-semantics.md §3.4), it exact-scores
**every sibling** (every child with a vector) of each candidate root with the full-precision vectors and keeps
the best per root. Steps:

1. per segment, up to ``max(first_pass_k, k)`` roots (their best child by first-pass score);
2. with rescoring: the shard-wide top ``first_pass_k`` roots (ties at the cut kept); all their children
   exact-scored; each root scored by its best child; the top k of the shard kept;
   without rescoring: the first-pass scores stand, k roots per segment (faiss semantics);
3. ``expand_nested_docs``: the k best roots of the shard with all their children, scored at full precision
   when rescoring is on and from the codes when it is off (``useQuantizedVectorsForSearch`` upstream).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from segstore.index.directory_reader import DirectoryReader
from segstore.index.segment_reader import SegmentReader
from segstore.search.knn_query import EXACT_SEARCH_MAX_VECTORS
from segstore.search.nested_knn import (
    LeafChildren,
    NestedTopDocs,
    allowed_children,
    assemble,
    best_per_parent,
    shard_top_parents,
    sibling_ords,
)
from segstore.search.quantized import first_pass_scores, graph_query
from segstore.search.rescore import RescoreContext, first_pass_k
from segstore.search.similarity import scores as exact_scores

__all__ = ["nested_quantized_knn_search"]


def _scores(leaf: SegmentReader, field: str, ords: np.ndarray, query: np.ndarray, exact: bool,
            rows: np.ndarray | None = None) -> np.ndarray:
    """float32 scores of ordinals ``ords``: full precision when ``exact`` (or for a segment without codes,
    written before the field was quantized), else first-pass scores from the codes (``rows`` if known)."""
    values = leaf.vector_values(field)
    fi = leaf.field_infos.get(field)
    assert values is not None and fi is not None
    qv = None if exact else leaf.quantized(field)
    if qv is None:
        return exact_scores(fi.vector_space_type, values.vectors[ords], query)
    return first_pass_scores(qv, fi.vector_space_type, ords, query, rows)


def _first_pass(leaf: SegmentReader, field: str, query: np.ndarray, per_seg: int, ef_search: int,
                accept_docs: Callable[[SegmentReader], np.ndarray | None] | None
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """(best child doc ids, first-pass scores) of the ``per_seg`` best roots of one segment."""
    values = leaf.vector_values(field)
    if values is None or values.size == 0:
        return None
    allowed, n_allowed = allowed_children(leaf, values, accept_docs)
    if n_allowed == 0:
        return None
    qv = leaf.quantized(field)
    graph = None if n_allowed <= EXACT_SEARCH_MAX_VECTORS else leaf.graph(field)
    ords, rows = None, None
    if graph is not None:
        # over-fetch children so that per_seg distinct roots survive the grouping; else scan the codes
        k2 = min(n_allowed, max(4 * per_seg, 100))
        found = graph.search(graph_query(qv, query) if qv is not None else query[None, :], k2,
                             max(ef_search, k2), accept=allowed)[0][0]
        if np.unique(leaf.parents(values.ord_to_doc[found])).shape[0] >= per_seg or k2 == n_allowed:
            ords = found
            stored = getattr(graph, "stored_codes", None) if qv is not None else None
            rows = stored(ords) if stored is not None else None  # codes the graph holds: already resident
    if ords is None:
        ords = np.arange(values.size) if allowed is None else np.flatnonzero(allowed)
    s = _scores(leaf, field, ords, query, exact=False, rows=rows)
    docs, best = best_per_parent(leaf, values.ord_to_doc[ords].astype(np.int64), s)
    return docs[:per_seg], best[:per_seg]


def _siblings(reader: DirectoryReader, i: int, field: str, query: np.ndarray, docs: np.ndarray,
              exact: bool) -> LeafChildren:
    """Every child with a vector of the roots of child ``docs`` in leaf ``i``, with its score."""
    leaf = reader.leaves[i]
    values = leaf.vector_values(field)
    assert values is not None
    ords = sibling_ords(leaf, values, np.unique(leaf.parents(docs)))
    return i, values.ord_to_doc[ords].astype(np.int64), _scores(leaf, field, ords, query, exact)


def _cut_with_ties(found: list[LeafChildren], n: int) -> list[LeafChildren]:
    """The shard-wide top ``n`` roots by first-pass score, keeping every root tied with the n-th."""
    s = np.concatenate([x for _, _, x in found]) if found else np.zeros(0, np.float32)
    if s.shape[0] <= n:
        return found
    cut = np.partition(-s, n - 1)[n - 1]
    return [(i, d[-x <= cut], x[-x <= cut]) for i, d, x in found]


def nested_quantized_knn_search(
    reader: DirectoryReader, field: str, query: np.ndarray, k: int, ef_search: int,
    rescore: RescoreContext | None,
    accept_docs: Callable[[SegmentReader], np.ndarray | None] | None = None,
    *,
    expand: bool = False,
    score_mode: str = "max",
    child_boost: float = 1.0,
    parent_boost: float = 1.0,
) -> NestedTopDocs:
    """``query`` is the float32 query (normalised already for faiss cosine)."""
    fp_k = first_pass_k(k, rescore.oversample_factor) if rescore is not None else k
    found: list[LeafChildren] = []
    for i, leaf in enumerate(reader.leaves):
        got = _first_pass(leaf, field, query, max(fp_k, k), ef_search, accept_docs)
        if got is not None and got[0].size:
            found.append((i, got[0], got[1]))
    total = sum(d.shape[0] for _, d, _ in found)
    if rescore is None:
        if not expand:  # first-pass scores, k roots per segment
            return assemble(reader, found, total, score_mode, child_boost, parent_boost)
        top = shard_top_parents(reader, found, k)
        expanded = [_siblings(reader, i, field, query, d, exact=False) for i, d, _ in top]
        return assemble(reader, expanded, min(total, k), score_mode, child_boost, parent_boost)
    siblings = [_siblings(reader, i, field, query, d, exact=True) for i, d, _ in _cut_with_ties(found, fp_k)]
    best = [(i, *best_per_parent(reader.leaves[i], d, s)) for i, d, s in siblings if d.size]
    top = shard_top_parents(reader, best, k)
    if expand:
        kept = {i: reader.leaves[i].parents(d) for i, d, _ in top}
        children: list[LeafChildren] = []
        for i, d, s in siblings:
            if i in kept:
                sel = np.isin(reader.leaves[i].parents(d), kept[i])
                children.append((i, d[sel], s[sel]))
    else:
        children = top
    return assemble(reader, children, sum(d.shape[0] for _, d, _ in top), score_mode, child_boost, parent_boost)
