"""k-NN search over a point-in-time reader: per segment, then a global top k.

Per segment: segments holding more than :data:`EXACT_SEARCH_MAX_VECTORS` live vectors and a graph are
searched through the graph; smaller ones (and those without a graph, e.g. flat fields) are scanned exactly.
Deleted documents are filtered out of graph results by over-fetching ``k + deleted`` candidates when few
documents are deleted, and through the graph library's accept filter otherwise. Every candidate is then
scored exactly from the canonical vectors (:mod:`segstore.search.similarity`), so a document's score never
depends on the path that found it. Results are merged across segments by score, ties broken by doc id.

``total_hits`` follows OpenSearch's faiss semantics without rescoring: the sum of what each segment
returned (up to k per segment).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from segstore.codec.base import VectorValues
from segstore.floats import shortest_float32
from segstore.index.directory_reader import DirectoryReader
from segstore.index.segment_reader import SegmentReader
from segstore.search.similarity import raw_scores, score_from_raw
from segstore.search.similarity import scores as exact_scores

__all__ = ["ScoreDoc", "TopDocs", "knn_search", "radial_search", "EXACT_SEARCH_MAX_VECTORS"]

EXACT_SEARCH_MAX_VECTORS = 1000
_OVERFETCH_MAX_DELETED = 256  # above this many deleted vectors, use the accept filter instead


class ScoreDoc(NamedTuple):
    """A hit: ``score`` is the float64 nearest to the shortest decimal of the float32 score. A named tuple:
    a page of hits is built per query, and tuples are several times cheaper to make than dataclasses."""

    score: float
    leaf: int
    doc: int


class TopDocs:
    """The hits of a search, best first (Lucene's ``TopDocs``).

    Built either from a list of :class:`ScoreDoc` or, on the search hot path, from parallel arrays (float32
    scores, leaf indices, segment doc ids) with :meth:`of_arrays`. The arrays are the result; ``score_docs``
    renders them as Python objects with each float32 score turned into the float64 of its shortest decimal
    (what JSON shows), once, on first use: an embedded caller that reads only the arrays never pays for the
    rendering, which costs as much as the rest of a query's bookkeeping.
    """

    __slots__ = ("total_hits", "scores", "leaves", "docs", "_score_docs")

    def __init__(self, total_hits: int, score_docs: list[ScoreDoc]) -> None:
        self.total_hits = total_hits
        self._score_docs: list[ScoreDoc] | None = score_docs
        self.scores = np.asarray([sd.score for sd in score_docs], dtype=np.float32)
        self.leaves = np.asarray([sd.leaf for sd in score_docs], dtype=np.int64)
        self.docs = np.asarray([sd.doc for sd in score_docs], dtype=np.int64)

    @classmethod
    def of_arrays(cls, total_hits: int, scores: np.ndarray, leaves: np.ndarray, docs: np.ndarray) -> TopDocs:
        """Hits from float32 ``scores`` and int ``leaves``/``docs``, already in rank order."""
        top = cls.__new__(cls)
        top.total_hits, top.scores, top.leaves, top.docs, top._score_docs = total_hits, scores, leaves, docs, None
        return top

    @property
    def score_docs(self) -> list[ScoreDoc]:
        if self._score_docs is None:
            shown = shortest_float32(self.scores).tolist()
            self._score_docs = list(map(ScoreDoc, shown, self.leaves.tolist(), self.docs.tolist()))
        return self._score_docs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TopDocs):
            return NotImplemented
        return self.total_hits == other.total_hits and self.score_docs == other.score_docs

    __hash__ = None  # type: ignore[assignment] - mutable arrays inside: equal by value, not hashable

    def __len__(self) -> int:
        return int(self.docs.shape[0])

    def __repr__(self) -> str:
        return f"TopDocs(total_hits={self.total_hits}, score_docs={self.score_docs!r})"


MAX_EXACT_FILTERED_ELEMENTS = 2_048_000  # filtered count x dimension at or below this: exact search


def _leaf_candidates(
    leaf: SegmentReader, field: str, query: np.ndarray, k: int, ef_search: int,
    accept_docs: Callable[[SegmentReader], np.ndarray | None] | None,
    filtered_exact_threshold: int | None = None,
    nested: bool = False,
    nprobes: int | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(doc ids, float32 scores) of up to k best live docs of one segment.

    With a filter, OpenSearch's per-segment rule picks exact search when the filtered count is <= k, or
    <= ``index.knn.advanced.filtered_exact_search_threshold`` when set, or when count x dimension <=
    2,048,000; otherwise the graph is searched with the filter, and exact search is used after all if the
    graph returned fewer than k while at least k documents pass the filter.
    """
    values = leaf.vector_values(field)
    if values is None or values.size == 0:
        return None
    fi = leaf.field_infos.get(field)
    assert fi is not None
    allowed = leaf.live_ords(field)  # bool per ordinal, or None when nothing is deleted
    if allowed is None and accept_docs is None and not nested and nprobes is None \
            and values.size > EXACT_SEARCH_MAX_VECTORS:
        graph = leaf.graph(field)
        if graph is not None:  # the hot path: an unfiltered graph search of a segment without deletes
            ords = graph.search_one(query, k, ef_search)
            return values.ord_to_doc[ords], exact_scores(fi.vector_space_type, values.vectors[ords], query)
    filtered = False
    if accept_docs is not None:
        doc_mask = accept_docs(leaf)
        if doc_mask is not None:
            # filters select parents; a nested child is allowed when its parent is
            by_ord = doc_mask[leaf.parents(values.ord_to_doc) if nested else values.ord_to_doc]
            allowed = by_ord if allowed is None else (allowed & by_ord)
            filtered = True
    n_allowed = values.size if allowed is None else int(allowed.sum())
    if n_allowed == 0:
        return None
    if nested:
        return _nested_candidates(leaf, values, fi.vector_space_type, query, k, ef_search, allowed, n_allowed)
    if filtered:
        exact = n_allowed <= k or (filtered_exact_threshold is not None and n_allowed <= filtered_exact_threshold) \
            or (filtered_exact_threshold is None and n_allowed * fi.vector_dimension <= MAX_EXACT_FILTERED_ELEMENTS)
    else:
        exact = n_allowed <= EXACT_SEARCH_MAX_VECTORS
    graph = None if exact else leaf.graph(field)
    if graph is not None and nprobes is not None and hasattr(graph, "with_nprobes"):
        graph = graph.with_nprobes(nprobes)  # IVF: lists visited (query method_parameters, else the model's)
    if graph is None:
        ords = np.arange(values.size) if allowed is None else np.flatnonzero(allowed)
    elif allowed is None:
        ords = graph.search_one(query, k, ef_search)
    else:
        dead = values.size - n_allowed
        if dead <= _OVERFETCH_MAX_DELETED:
            k2 = min(values.size, k + dead)
            found = graph.search(query[None, :], k2, max(ef_search, k2))[0][0]
            ords = found[allowed[found]][:k]
        else:
            # a bool mask over ordinals: faiss turns it into an IDSelectorBitmap, hnswlib wraps it; a
            # callable would cost one Python call per ordinal for faiss graphs
            ords = graph.search(query[None, :], k, ef_search, accept=allowed)[0][0]
        if ords.shape[0] < k <= n_allowed:  # the graph missed filtered docs: fall back to exact search
            ords = np.flatnonzero(allowed)
    s = exact_scores(fi.vector_space_type, values.vectors[ords], query)
    if s.shape[0] > k:
        top = np.argpartition(-s, k - 1)[:k]
        ords, s = ords[top], s[top]
    return values.ord_to_doc[ords].astype(np.int64), s


def _nested_candidates(leaf: SegmentReader, values: VectorValues, space: str, query: np.ndarray, k: int,
                       ef_search: int, allowed: np.ndarray | None, n_allowed: int
                       ) -> tuple[np.ndarray, np.ndarray] | None:
    """Top k parents of a nested field, each scored by its best child (OpenSearch's nested k-NN; the search
    itself lives in :mod:`segstore.search.nested_knn`, which also serves ``nested`` queries and inner hits)."""
    from segstore.search.nested_knn import best_children  # noqa: PLC0415 - nested_knn builds on this module

    docs, s = best_children(leaf, values, space, query, k, ef_search, allowed, n_allowed)
    return leaf.parents(docs), s


def knn_search(
    reader: DirectoryReader,
    field: str,
    query: np.ndarray,
    k: int,
    ef_search: int = 100,
    accept_docs: Callable[[SegmentReader], np.ndarray | None] | None = None,
    filtered_exact_threshold: int | None = None,
    per_segment: bool = False,
    nested: bool = False,
    nprobes: int | None = None,
) -> TopDocs:
    """The k nearest live documents to ``query`` (already validated and canonical: float32/int8/uint8)."""
    parts: list[tuple[int, np.ndarray, np.ndarray]] = []
    for i, leaf in enumerate(reader.leaves):
        found = _leaf_candidates(leaf, field, query, k, ef_search, accept_docs, filtered_exact_threshold, nested, nprobes=nprobes)
        if found is not None:
            parts.append((i, found[0], found[1]))
    if not parts:
        return TopDocs(0, [])
    if len(parts) == 1:  # the common case: no concatenation, and doc ids alone break ties within a leaf
        i, docs, s = parts[0]
        total = int(s.shape[0])
        order = np.lexsort((docs, -s))
        if not per_segment:
            order = order[:k]
        return TopDocs.of_arrays(total if per_segment else min(total, k), s[order], _leaf_column(i, order.shape[0]),
                                 docs[order])
    docs = np.concatenate([p[1] for p in parts])
    s = np.concatenate([p[2] for p in parts])
    leaves = np.concatenate([_leaf_column(p[0], p[1].shape[0]) for p in parts])
    global_docs = reader.doc_bases[leaves] + docs
    total = int(s.shape[0])
    # faiss (no rescoring) returns up to k per segment and the coordinator keeps the top ``size`` of all
    # of them; Lucene returns k per shard.
    return _top(reader, docs, s, leaves, total if per_segment else k, total if per_segment else min(total, k),
                global_docs)


_LEAF_COLUMNS: dict[tuple[int, int], np.ndarray] = {}


def _leaf_column(leaf: int, n: int) -> np.ndarray:
    """``n`` copies of a leaf index, read-only and cached: every single-segment query needs one."""
    column = _LEAF_COLUMNS.get((leaf, n))
    if column is None:
        column = np.full(n, leaf, dtype=np.int64)
        column.flags.writeable = False
        if len(_LEAF_COLUMNS) < 4096:  # (leaf, k) pairs: a handful in practice; bounded all the same
            _LEAF_COLUMNS[(leaf, n)] = column
    return column


def _top(reader: DirectoryReader, docs: np.ndarray, s: np.ndarray, leaves: np.ndarray, k: int, total: int,
         global_docs: np.ndarray | None = None) -> TopDocs:
    """The best ``k`` of the candidates: score desc, then global doc id asc (``global_docs`` when known)."""
    if global_docs is None:
        global_docs = reader.doc_bases[leaves] + docs
    order = np.lexsort((global_docs, -s))[:k]
    return TopDocs.of_arrays(total, s[order], leaves[order], docs[order])


def radial_search(
    reader: DirectoryReader,
    field: str,
    query: np.ndarray,
    *,
    max_distance: float | None = None,
    min_score: float | None = None,
    ip_distance_sign: float = -1.0,
    accept_docs: Callable[[SegmentReader], np.ndarray | None] | None = None,
    max_results: int = 10000,
) -> TopDocs:
    """Every live document within ``max_distance`` (or scoring at least ``min_score``), best first, capped
    at ``max_results`` (``index.max_result_window``). Distances per vector-semantics.md §2.4: squared L2,
    1 - cos, and for inner product -x.y on faiss; on the Lucene engine max_distance is a minimum x.y."""
    parts_docs, parts_scores, parts_leaves = [], [], []
    for i, leaf in enumerate(reader.leaves):
        values = leaf.vector_values(field)
        if values is None or values.size == 0:
            continue
        fi = leaf.field_infos.get(field)
        assert fi is not None
        allowed = leaf.live_ords(field)
        if accept_docs is not None and (doc_mask := accept_docs(leaf)) is not None:
            by_ord = doc_mask[values.ord_to_doc]
            allowed = by_ord if allowed is None else (allowed & by_ord)
        ords = np.arange(values.size) if allowed is None else np.flatnonzero(allowed)
        raw = raw_scores(fi.vector_space_type, values.vectors[ords], query)
        s = score_from_raw(fi.vector_space_type, raw)
        if min_score is not None:
            keep = s >= np.float32(min_score)
        elif fi.vector_space_type == "innerproduct" and ip_distance_sign > 0:
            # Lucene turns max_distance d into a similarity threshold: keep x.y >= d.
            keep = raw >= np.float32(max_distance)
        else:
            space = fi.vector_space_type
            dist = {"l2": raw, "cosinesimil": np.float32(1.0) - raw, "innerproduct": -raw}.get(space, raw)
            keep = dist <= np.float32(max_distance)
        parts_docs.append(values.ord_to_doc[ords[keep]].astype(np.int64))
        parts_scores.append(s[keep])
        parts_leaves.append(np.full(int(keep.sum()), i, dtype=np.int64))
    if not parts_docs:
        return TopDocs(0, [])
    top = _top(reader, np.concatenate(parts_docs), np.concatenate(parts_scores), np.concatenate(parts_leaves),
               max_results, 0)
    top.total_hits = len(top)
    return top
