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
from dataclasses import dataclass

import numpy as np

from segstore.floats import shortest_float32
from segstore.index.directory_reader import DirectoryReader
from segstore.index.segment_reader import SegmentReader
from segstore.search.similarity import scores as exact_scores

__all__ = ["ScoreDoc", "TopDocs", "knn_search", "EXACT_SEARCH_MAX_VECTORS"]

EXACT_SEARCH_MAX_VECTORS = 1000
_OVERFETCH_MAX_DELETED = 256  # above this many deleted vectors, use the accept filter instead


@dataclass(frozen=True)
class ScoreDoc:
    """A hit: ``score`` is the float64 nearest to the shortest decimal of the float32 score."""

    score: float
    leaf: int
    doc: int


@dataclass(frozen=True)
class TopDocs:
    total_hits: int
    score_docs: list[ScoreDoc]


def _leaf_candidates(
    leaf: SegmentReader, field: str, query: np.ndarray, k: int, ef_search: int,
    accept_docs: Callable[[SegmentReader], np.ndarray | None] | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(doc ids, float32 scores) of up to k best live docs of one segment."""
    values = leaf.vector_values(field)
    if values is None or values.size == 0:
        return None
    fi = leaf.field_infos.get(field)
    assert fi is not None
    live_ords = leaf.live_ords(field)  # bool per ordinal, or None when nothing is deleted
    allowed = live_ords
    if accept_docs is not None:
        doc_mask = accept_docs(leaf)
        if doc_mask is not None:
            by_ord = doc_mask[values.ord_to_doc]
            allowed = by_ord if allowed is None else (allowed & by_ord)
    n_allowed = values.size if allowed is None else int(allowed.sum())
    if n_allowed == 0:
        return None
    graph = leaf.graph(field) if n_allowed > EXACT_SEARCH_MAX_VECTORS and accept_docs is None else None
    if graph is None:
        ords = np.arange(values.size) if allowed is None else np.flatnonzero(allowed)
    elif allowed is None:
        ords = graph.search(query[None, :], k, ef_search)[0][0]
    else:
        dead = values.size - n_allowed
        if dead <= _OVERFETCH_MAX_DELETED:
            k2 = min(values.size, k + dead)
            found = graph.search(query[None, :], k2, max(ef_search, k2))[0][0]
            ords = found[allowed[found]]
        else:
            mask = allowed
            ords = graph.search(query[None, :], k, ef_search, accept=lambda label: bool(mask[label]))[0][0]
    s = exact_scores(fi.vector_space_type, values.vectors[ords], query)
    if s.shape[0] > k:
        top = np.argpartition(-s, k - 1)[:k]
        ords, s = ords[top], s[top]
    return values.ord_to_doc[ords].astype(np.int64), s


def knn_search(
    reader: DirectoryReader,
    field: str,
    query: np.ndarray,
    k: int,
    ef_search: int = 100,
    accept_docs: Callable[[SegmentReader], np.ndarray | None] | None = None,
) -> TopDocs:
    """The k nearest live documents to ``query`` (already validated and canonical: float32/int8/uint8)."""
    all_scores: list[np.ndarray] = []
    all_leaves: list[np.ndarray] = []
    all_docs: list[np.ndarray] = []
    total = 0
    for i, leaf in enumerate(reader.leaves):
        found = _leaf_candidates(leaf, field, query, k, ef_search, accept_docs)
        if found is None:
            continue
        docs, s = found
        total += docs.shape[0]
        all_docs.append(docs)
        all_scores.append(s)
        all_leaves.append(np.full(docs.shape[0], i, dtype=np.int64))
    if not all_docs:
        return TopDocs(0, [])
    docs = np.concatenate(all_docs)
    s = np.concatenate(all_scores)
    leaves = np.concatenate(all_leaves)
    global_docs = reader.doc_bases[leaves] + docs
    order = np.lexsort((global_docs, -s))[:k]  # score desc, then doc id asc
    shown = shortest_float32(s[order])
    return TopDocs(total, [ScoreDoc(float(sc), int(lf), int(d))
                           for sc, lf, d in zip(shown, leaves[order], docs[order])])
