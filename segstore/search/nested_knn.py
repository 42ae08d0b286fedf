"""Nested k-NN: vector fields inside ``nested`` objects find their root documents through their children.

A nested object is a child document indexed in its root's block (children first, the root last), so one
root can own many vectors of a field. OpenSearch's k-NN query on such a field, inside a ``nested`` query
(``K/index/query/nativelib/NativeEngineKnnVectorQuery.java``, ``lucenelib/ExpandNestedDocsQuery.java``):

1. **Candidates.** Each segment is searched for the best child per root ("diversified" search: faiss groups
   graph results by parent, Lucene's ``DiversifyingChildren*KnnVectorQuery``); a segment keeps its k best
   roots. Without ``expand_nested_docs`` the faiss engine returns those k roots per segment, Lucene the k best
   of the shard.
2. **``expand_nested_docs: true``** keeps the k best roots of the shard, then scores *every* child of those
   roots that has a vector (its siblings), exactly, so that each matching child carries its own score.
3. **Roots** are scored from their matching children by the ``nested`` query's ``score_mode`` (Lucene's
   ``ToParentBlockJoinQuery``): ``avg`` (OpenSearch's default), ``max``, ``min``, ``sum`` (accumulated in
   double, then cast to float) or ``none`` (0). Without expansion a root has exactly one matching child (its
   best), so every mode but ``none`` gives the best child's score.

The children matched per root are kept (:class:`NestedTopDocs`) for ``inner_hits``. Child scores carry the
``knn`` clause's boost (a float multiply, as ``BoostQuery``); the root score carries the ``nested`` boost.
Filters select roots: a child is a candidate when its root is accepted. Everything per vector is numpy;
Python loops run over segments and over the (at most k per segment) roots found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from segstore.codec.base import VectorValues
from segstore.floats import shortest_float32
from segstore.index.directory_reader import DirectoryReader
from segstore.index.segment_reader import SegmentReader
from segstore.search.knn_query import EXACT_SEARCH_MAX_VECTORS, ScoreDoc
from segstore.search.similarity import scores as exact_scores

__all__ = ["NestedTopDocs", "SCORE_MODES", "LeafChildren", "nested_knn_search", "best_children",
           "best_per_parent", "allowed_children", "sibling_ords", "shard_top_parents", "assemble"]

SCORE_MODES = ("avg", "max", "min", "sum", "none")
LeafChildren = tuple[int, np.ndarray, np.ndarray]  # (leaf index, child doc ids, float32 child scores)


@dataclass(frozen=True)
class NestedTopDocs:
    """Roots by score (best first) and, per ``(leaf, root doc)``, the children that matched: doc ids and
    float32 scores, best first (ties by doc id)."""

    total_hits: int
    score_docs: list[ScoreDoc]
    children: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]


# ------------------------------------------------------------------------------------- per segment

def allowed_children(leaf: SegmentReader, values: VectorValues,
                     accept_docs: Callable[[SegmentReader], np.ndarray | None] | None) -> tuple[np.ndarray | None, int]:
    """Per-ordinal mask of the children that may match (live, and their root accepted by the filter; None =
    all), and how many."""
    allowed = leaf.live_ords(values.field)
    if accept_docs is not None:
        doc_mask = accept_docs(leaf)
        if doc_mask is not None:
            by_ord = doc_mask[leaf.parents(values.ord_to_doc)]  # filters select roots
            allowed = by_ord if allowed is None else (allowed & by_ord)
    return allowed, values.size if allowed is None else int(allowed.sum())


def best_per_parent(leaf: SegmentReader, docs: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The best of child ``docs`` per root (ties: the lower doc id), roots ordered best first (ties: lower root)."""
    parents = leaf.parents(docs)
    order = np.lexsort((docs, -s))
    _, first = np.unique(parents[order], return_index=True)
    best = order[first]
    best = best[np.lexsort((parents[best], -s[best]))]
    return docs[best], s[best]


def best_children(leaf: SegmentReader, values: VectorValues, space: str, query: np.ndarray, k: int,
                  ef_search: int, allowed: np.ndarray | None, n_allowed: int,
                  nprobes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The best child (doc id, float32 exact score) of each of the k best roots of one segment, best first.

    Small segments are scanned exactly. Otherwise the graph is asked for more children than k (siblings
    crowd each other out) and the answer is used only if it holds k distinct roots, or every allowed child;
    if not, the exact scan decides."""
    graph = None if n_allowed <= EXACT_SEARCH_MAX_VECTORS else leaf.graph(values.field)
    if graph is not None and nprobes is not None and hasattr(graph, "with_nprobes"):
        graph = graph.with_nprobes(nprobes)
    ords: np.ndarray | None = None
    if graph is not None:
        k2 = min(n_allowed, max(4 * k, 100))
        found = graph.search(query[None, :], k2, max(ef_search, k2), accept=allowed)[0][0]
        if np.unique(leaf.parents(values.ord_to_doc[found])).shape[0] >= k or k2 == n_allowed:
            ords = found
    if ords is None:
        ords = np.arange(values.size) if allowed is None else np.flatnonzero(allowed)
    s = exact_scores(space, values.vectors[ords], query)
    docs, best = best_per_parent(leaf, values.ord_to_doc[ords].astype(np.int64), s)
    return docs[:k], best[:k]


def sibling_ords(leaf: SegmentReader, values: VectorValues, parents: np.ndarray) -> np.ndarray:
    """Ordinals of every child of ``parents`` (sorted root doc ids) that has a vector of the field, in doc order.

    A root's block is [previous root + 1, root); ``ord_to_doc`` is increasing, so each block's vectors are
    one ordinal range, and the ranges are concatenated without a per-vector loop."""
    parents = np.asarray(parents, dtype=np.int64)
    roots = leaf.roots
    if roots is None or parents.size == 0:
        return np.zeros(0, dtype=np.int64)
    i = np.searchsorted(roots, parents)
    starts = np.where(i > 0, roots[np.maximum(i - 1, 0)].astype(np.int64) + 1, 0)
    lo = np.searchsorted(values.ord_to_doc, starts)
    hi = np.searchsorted(values.ord_to_doc, parents)
    counts = hi - lo
    total = int(counts.sum())
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return (np.arange(total, dtype=np.int64) - offsets + np.repeat(lo, counts)).astype(np.int64)


# ------------------------------------------------------------------------------------------ shard

def shard_top_parents(reader: DirectoryReader, found: list[LeafChildren], k: int) -> list[LeafChildren]:
    """The k best roots of the shard (one best child each), by score, ties by global doc id; per leaf."""
    if not found:
        return []
    leaf_ix = np.concatenate([np.full(d.shape[0], i, dtype=np.int64) for i, d, _ in found])
    docs = np.concatenate([d for _, d, _ in found])
    s = np.concatenate([x for _, _, x in found])
    global_parents = np.concatenate([reader.doc_bases[i] + reader.leaves[i].parents(d) for i, d, _ in found])
    keep = np.lexsort((global_parents, -s))[:k]
    out = []
    for i in np.unique(leaf_ix[keep]).tolist():
        sel = keep[leaf_ix[keep] == i]
        out.append((int(i), docs[sel], s[sel]))
    return out


def _aggregate(parents: np.ndarray, s: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Roots (sorted) and their float32 score from their children's float32 scores (ToParentBlockJoinQuery)."""
    order = np.argsort(parents, kind="stable")  # children in doc order, as the block join visits them
    p, v = parents[order], s[order].astype(np.float64)
    roots, start = np.unique(p, return_index=True)
    if mode == "max":
        agg = np.maximum.reduceat(v, start)
    elif mode == "min":
        agg = np.minimum.reduceat(v, start)
    elif mode in ("sum", "avg"):
        agg = np.add.reduceat(v, start)
        if mode == "avg":
            agg = agg / np.diff(np.append(start, p.shape[0]))
    else:  # none
        agg = np.zeros(roots.shape[0])
    return roots, agg.astype(np.float32)


def assemble(reader: DirectoryReader, leaves: list[LeafChildren], total: int, score_mode: str = "max",
             child_boost: float = 1.0, parent_boost: float = 1.0) -> NestedTopDocs:
    """Score the roots of the matched children and order them; keep each root's children for inner hits."""
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (leaf, root, score) per leaf
    children: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for i, docs, s in leaves:
        if docs.size == 0:
            continue
        s = s.astype(np.float32)
        if child_boost != 1.0:
            s = s * np.float32(child_boost)
        parents = reader.leaves[i].parents(docs)
        roots, agg = _aggregate(parents, s, score_mode)
        if parent_boost != 1.0:
            agg = agg * np.float32(parent_boost)
        parts.append((np.full(roots.shape[0], i, dtype=np.int64), roots, agg))
        # children per root, best first: one sort, then one slice per root (at most k roots per segment)
        order = np.lexsort((docs, -s, parents))
        bounds = np.searchsorted(parents[order], roots)
        for root, lo, hi in zip(roots.tolist(), bounds.tolist(), np.append(bounds[1:], order.shape[0]).tolist()):
            sel = order[lo:hi]
            children[(i, root)] = (docs[sel], s[sel])
    if not parts:
        return NestedTopDocs(total, [], {})
    leaf_ix = np.concatenate([p[0] for p in parts])
    roots = np.concatenate([p[1] for p in parts])
    agg = np.concatenate([p[2] for p in parts])
    order = np.lexsort((reader.doc_bases[leaf_ix] + roots, -agg))
    shown = shortest_float32(agg[order]).tolist()
    return NestedTopDocs(total, list(map(ScoreDoc, shown, leaf_ix[order].tolist(), roots[order].tolist())), children)


def nested_knn_search(
    reader: DirectoryReader,
    field: str,
    query: np.ndarray,
    k: int,
    ef_search: int = 100,
    accept_docs: Callable[[SegmentReader], np.ndarray | None] | None = None,
    *,
    per_segment: bool = True,
    expand: bool = False,
    score_mode: str = "max",
    child_boost: float = 1.0,
    parent_boost: float = 1.0,
    nprobes: int | None = None,
) -> NestedTopDocs:
    """k-NN over a nested field with full-precision vectors (quantized fields: :mod:`.nested_quantized`).

    ``per_segment`` is faiss's "k roots per segment" (False: Lucene's k per shard); ``expand`` is
    ``expand_nested_docs`` (k roots per shard, all their children scored)."""
    found: list[LeafChildren] = []
    for i, leaf in enumerate(reader.leaves):
        values = leaf.vector_values(field)
        if values is None or values.size == 0:
            continue
        fi = leaf.field_infos.get(field)
        assert fi is not None
        allowed, n_allowed = allowed_children(leaf, values, accept_docs)
        if n_allowed == 0:
            continue
        docs, s = best_children(leaf, values, fi.vector_space_type, query, k, ef_search, allowed, n_allowed, nprobes)
        found.append((i, docs, s))
    total = sum(d.shape[0] for _, d, _ in found)
    if expand or not per_segment:
        found = shard_top_parents(reader, found, k)
        total = min(total, k)
    if expand:
        found = [_expand(reader, i, field, query, docs) for i, docs, _ in found]
    return assemble(reader, found, total, score_mode, child_boost, parent_boost)


def _expand(reader: DirectoryReader, i: int, field: str, query: np.ndarray, docs: np.ndarray) -> LeafChildren:
    """Every child with a vector of the roots of ``docs``, scored exactly."""
    leaf = reader.leaves[i]
    values = leaf.vector_values(field)
    fi = leaf.field_infos.get(field)
    assert values is not None and fi is not None
    ords = sibling_ords(leaf, values, np.unique(leaf.parents(docs)))
    return i, values.ord_to_doc[ords].astype(np.int64), exact_scores(fi.vector_space_type, values.vectors[ords], query)
