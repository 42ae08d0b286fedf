"""k-NN search over quantized fields: a first pass on the codes, then shard-level rescoring.

Per segment (vector-semantics.md §3.4): the query is quantized with the segment's own state; the graph
over the codes (or an exact scan of the codes, for small or filtered segments) yields up to
``max(first_pass_k, k)`` candidates, each with its *first-pass* score computed from the codes: binary
quantization scores ``1/(1 + Hamming)`` whatever the space; fp16 and 7-bit codes are decoded and scored in
the space's own units. With rescoring, all segments' candidates are cut to the shard-wide top
``first_pass_k`` (ties at the cut kept), re-scored exactly from the full-precision vectors (memory-mapped,
read only here) and the top k kept; without it, the first-pass scores are returned, up to k per segment.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from segstore.index.directory_reader import DirectoryReader
from segstore.index.segment_reader import SegmentReader
from segstore.search.knn_query import EXACT_SEARCH_MAX_VECTORS, MAX_EXACT_FILTERED_ELEMENTS, TopDocs, _top
from segstore.search.rescore import RescoreContext, first_pass_k
from segstore.search.similarity import raw_scores, score_from_raw
from segstore.search.similarity import scores as exact_scores

__all__ = ["quantized_knn_search", "first_pass_scores", "graph_query"]

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def first_pass_scores(qv: object, space: str, ords: np.ndarray, query: np.ndarray,
                      rows: np.ndarray | None = None) -> np.ndarray:
    """First-pass scores (float32) of ordinals ``ords`` from the codes, for the float32 ``query``. ``rows``
    are those ordinals' codes when the caller has them already (from the graph), else they are read from
    the quantized values (mapping their codes)."""
    state = qv.state  # type: ignore[attr-defined]
    if rows is None:
        rows = qv.codes[ords]  # type: ignore[attr-defined]
    if state.kind == "binary":
        qcode = state.encode(query)[0]
        hamming = _POPCOUNT[np.bitwise_xor(rows, qcode)].sum(axis=1, dtype=np.int64)
        return score_from_raw("hamming", hamming.astype(np.float32))
    decoded = state.decode(rows)
    return score_from_raw(space, raw_scores(space, decoded, state.prepare(query)[0] if state.normalize else query))


def graph_query(qv: object, query: np.ndarray) -> np.ndarray:
    """The query as the graph over the codes takes it (packed bits, 7-bit codes or the prepared floats)."""
    state = qv.state  # type: ignore[attr-defined]
    if state.kind == "binary":
        return state.encode(query)
    if state.kind == "sq7":
        return state.encode(query).astype(np.float32)
    return state.prepare(query)


def _segment(leaf: SegmentReader, field: str, query: np.ndarray, per_seg: int, ef: int,
             accept_docs: Callable[[SegmentReader], np.ndarray | None] | None,
             filtered_exact_threshold: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(ords, docs, first-pass scores) of one segment's candidates."""
    values = leaf.vector_values(field)
    if values is None or values.size == 0:
        return None
    fi = leaf.field_infos.get(field)
    assert fi is not None
    qv = leaf.quantized(field)
    allowed = leaf.live_ords(field)
    filtered = False
    if accept_docs is not None and (doc_mask := accept_docs(leaf)) is not None:
        by_ord = doc_mask[values.ord_to_doc]
        allowed = by_ord if allowed is None else allowed & by_ord
        filtered = True
    n_allowed = values.size if allowed is None else int(allowed.sum())
    if n_allowed == 0:
        return None
    if filtered:
        exact = n_allowed <= per_seg or (filtered_exact_threshold is not None and n_allowed <= filtered_exact_threshold) \
            or (filtered_exact_threshold is None and n_allowed * fi.vector_dimension <= MAX_EXACT_FILTERED_ELEMENTS)
    else:
        exact = n_allowed <= EXACT_SEARCH_MAX_VECTORS
    graph = None if exact else leaf.graph(field)
    if graph is None:
        ords = np.arange(values.size) if allowed is None else np.flatnonzero(allowed)
    else:
        ords = graph.search(graph_query(qv, query) if qv is not None else query[None, :], per_seg,
                            max(ef, per_seg), accept=allowed)[0][0]
    if qv is None:  # a segment without quantization (e.g. written before): its scores are exact
        s = exact_scores(fi.vector_space_type, values.vectors[ords], query)
    else:
        # graph candidates are scored from the codes the graph holds (already resident), so the .qst codes
        # are only mapped for segments scanned exactly
        stored = getattr(graph, "stored_codes", None) if graph is not None else None
        s = first_pass_scores(qv, fi.vector_space_type, ords, query, stored(ords) if stored is not None else None)
    if s.shape[0] > per_seg:
        top = np.argpartition(-s, per_seg - 1)[:per_seg]
        ords, s = ords[top], s[top]
    return ords, values.ord_to_doc[ords].astype(np.int64), s


def quantized_knn_search(
    reader: DirectoryReader, field: str, query: np.ndarray, k: int, ef_search: int,
    rescore: RescoreContext | None,
    accept_docs: Callable[[SegmentReader], np.ndarray | None] | None = None,
    filtered_exact_threshold: int | None = None,
) -> TopDocs:
    """``query`` is the float32 query (normalised already for faiss cosine)."""
    fp_k = first_pass_k(k, rescore.oversample_factor) if rescore is not None else k
    per_seg = max(fp_k, k)
    leaves, ords_l, docs_l, scores_l = [], [], [], []
    for i, leaf in enumerate(reader.leaves):
        found = _segment(leaf, field, query, per_seg if rescore is not None else k, ef_search, accept_docs,
                         filtered_exact_threshold)
        if found is not None:
            leaves.append(np.full(found[0].shape[0], i, dtype=np.int64))
            ords_l.append(found[0])
            docs_l.append(found[1])
            scores_l.append(found[2])
    if not ords_l:
        return TopDocs(0, [])
    leaf_ix = np.concatenate(leaves)
    ords = np.concatenate(ords_l)
    s = np.concatenate(scores_l)
    if rescore is None:  # first-pass scores, up to k per segment (faiss semantics without rescoring)
        return _top(reader, np.concatenate(docs_l), s, leaf_ix, int(s.shape[0]), int(s.shape[0]))
    if s.shape[0] > fp_k:  # shard-level cut to first_pass_k, keeping ties at the cut
        cut = np.partition(-s, fp_k - 1)[fp_k - 1]
        keep = -s <= cut
        leaf_ix, ords, s = leaf_ix[keep], ords[keep], s[keep]
    exact = np.empty(s.shape[0], dtype=np.float32)
    docs = np.empty(s.shape[0], dtype=np.int64)
    for li in np.unique(leaf_ix):
        sel = leaf_ix == li
        leaf = reader.leaves[int(li)]
        values = leaf.vector_values(field)
        fi = leaf.field_infos.get(field)
        assert values is not None and fi is not None
        exact[sel] = exact_scores(fi.vector_space_type, values.vectors[ords[sel]], query)
        docs[sel] = values.ord_to_doc[ords[sel]]
    top = _top(reader, docs, exact, leaf_ix, k, 0)
    top.total_hits = len(top)
    return top
