"""Graph analysis for level 3: HNSW levels and connectivity, and exact distances for a recall sample.

A graph is reduced to ``(levels, per_level, entry)``: ``levels[i]`` is the top level of node (ordinal)
``i``, ``per_level[l]`` the ``(n, width)`` neighbour matrix of level ``l`` in ordinals (-1 = no neighbour),
``entry`` the entry point's ordinal. :func:`hnswlib_levels` reads it from a validated hnswlib blob,
:func:`faiss_levels` from a loaded faiss index; :func:`graph_connectivity` reports how many nodes of each
level are reachable from the entry point.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

__all__ = [
    "exact_distances",
    "faiss_levels",
    "graph_connectivity",
    "graph_rows",
    "hnswlib_levels",
]


def _bfs(neighbours: np.ndarray, start: int, members: np.ndarray) -> int:
    """Nodes of ``members`` reachable from ``start`` over the (n, width) neighbour matrix (-1 = none)."""
    if start < 0 or not members[start]:
        return 0
    seen = np.zeros(neighbours.shape[0], dtype=bool)
    seen[start] = True
    frontier = np.array([start], dtype=np.int64)
    while frontier.size:
        nb = neighbours[frontier].ravel()
        nb = nb[nb >= 0]
        nb = np.unique(nb[members[nb]])
        nb = nb[~seen[nb]]
        seen[nb] = True
        frontier = nb
    return int(seen.sum())


def _levels_report(levels: np.ndarray, per_level: list[np.ndarray], entry: int) -> tuple[list[int], list[str],
                                                                                         list[str]]:
    """``(nodes at level, "reachable/total" per level, structural errors)``: ``levels[i]`` is the top level
    of node i, ``per_level[l]`` the (n, width) neighbour matrix of level l."""
    nodes, conn, errors = [], [], []
    for lvl, nbrs in enumerate(per_level):
        members = levels >= lvl
        total = int(members.sum())
        if total == 0:
            break
        used = nbrs[members].ravel()
        used = used[used >= 0]
        if used.size and not members[used].all():
            errors.append(f"level {lvl}: a neighbour lives below level {lvl}")
        nodes.append(total)
        conn.append(f"{_bfs(nbrs, entry, members)}/{total}")
    return nodes, conn, errors


def hnswlib_levels(blob: memoryview, count: int) -> tuple[np.ndarray, list[np.ndarray], int]:
    """``(top level per ordinal, neighbour matrices per level in ordinals, entry ordinal)`` of an hnswlib
    blob that already passed :func:`validate_hnswlib_blob` (internal ids are mapped back to labels)."""
    from segstore_codecs.segstore1.hnswlib_blob import BLOB_HEADER

    (_off0, _max_el, _cur, size_per, label_off, _data_off, max_level, entry, max_m, max_m0, _m, _mult,
     _efc) = BLOB_HEADER.unpack_from(blob, 0)
    base = BLOB_HEADER.size
    links0 = max_m0 * 4 + 4
    level0 = np.frombuffer(blob, np.uint8, count * size_per, base).reshape(count, size_per)
    counts0 = (level0[:, 0:4].copy().view("<u4")[:, 0] & 0xFFFF).astype(np.int64)
    neigh0 = level0[:, 4:links0].copy().view("<u4").astype(np.int64)
    labels = level0[:, label_off:label_off + 8].copy().view("<u8")[:, 0].astype(np.int64)
    neigh0[np.arange(neigh0.shape[1])[None, :] >= counts0[:, None]] = -1
    size_links = max_m * 4 + 4
    pos = base + count * size_per
    top = np.zeros(count, dtype=np.int64)
    upper: list[np.ndarray] = [np.full((count, max_m), -1, dtype=np.int64) for _ in range(max_level)]
    for i in range(count):
        (size,) = struct.unpack_from("<I", blob, pos)
        pos += 4
        if size:
            lv = size // size_links
            block = np.frombuffer(blob, np.uint8, size, pos).reshape(lv, size_links).copy()
            cnt = (block[:, 0:4].view("<u4")[:, 0] & 0xFFFF).astype(np.int64)
            nb = block[:, 4:].view("<u4").astype(np.int64)
            nb[np.arange(nb.shape[1])[None, :] >= cnt[:, None]] = -1
            for j in range(lv):
                upper[j][i] = nb[j]
            top[i] = lv
            pos += size
    # internal id -> label (ordinal)
    def relabel(m: np.ndarray) -> np.ndarray:
        out = np.full_like(m, -1)
        out[labels] = np.where(m >= 0, labels[np.maximum(m, 0)], -1)
        return out

    levels_by_label = np.zeros(count, dtype=np.int64)
    levels_by_label[labels] = top
    return levels_by_label, [relabel(neigh0), *(relabel(u) for u in upper)], int(labels[entry]) if count else -1


def faiss_levels(index: Any) -> tuple[np.ndarray, list[np.ndarray], int]:
    """The same from a loaded faiss ``IndexHNSW*``/``IndexBinaryHNSW`` (its ``hnsw`` arrays)."""
    import faiss

    hnsw = index.hnsw
    levels = faiss.vector_to_array(hnsw.levels).astype(np.int64)  # 1 + top level
    offsets = faiss.vector_to_array(hnsw.offsets).astype(np.int64)
    neighbors = faiss.vector_to_array(hnsw.neighbors).astype(np.int64)
    cum = faiss.vector_to_array(hnsw.cum_nneighbor_per_level).astype(np.int64)
    n = levels.shape[0]
    per_level = []
    for lvl in range(int(levels.max()) if n else 0):
        width = int(cum[lvl + 1] - cum[lvl])
        m = np.full((n, width), -1, dtype=np.int64)
        members = np.flatnonzero(levels > lvl)
        if members.size:
            idx = offsets[members][:, None] + cum[lvl] + np.arange(width)[None, :]
            m[members] = neighbors[idx]
        per_level.append(m)
    return levels - 1, per_level, int(hnsw.entry_point)


def graph_connectivity(levels: np.ndarray, per_level: list[np.ndarray], entry: int) -> tuple[list[int], list[str],
                                                                                              list[str]]:
    return _levels_report(levels, per_level, entry)


def graph_rows(leaf: Any, fi: Any) -> tuple[np.ndarray, Any]:
    """The rows a field's graph was built over and the field describing them (the field itself, or for a
    quantized float field the codes as :func:`graph_field` describes them)."""
    from segstore.quantization.state import graph_field, quantizer_for

    values = leaf.vector_values(fi.name)
    rows = values.vectors
    if fi.vector_data_type == "float" and quantizer_for(fi.attributes, fi.vector_space_type) is not None:
        qv = leaf.quantized(fi.name)
        if qv is not None:
            kind = qv.state.kind
            rows = qv.codes.view(np.int8) if kind == "sq7" else (
                qv.codes.astype(np.float32) if kind == "fp16" else qv.codes)
    return rows, graph_field(fi)


def exact_distances(queries: np.ndarray, rows: np.ndarray, gf: Any) -> np.ndarray:
    """Exact distances of the graph format (smaller is nearer) for the graph field ``gf``."""
    space, dt = gf.vector_space_type, gf.vector_data_type
    if dt == "binary" or space == "hamming":
        q = np.asarray(queries, dtype=np.uint8)
        r = np.asarray(rows, dtype=np.uint8)
        return np.stack([np.unpackbits(np.bitwise_xor(r, qi), axis=-1).sum(axis=-1) for qi in q]).astype(
            np.float64)
    q = np.asarray(queries, dtype=np.float64)
    r = np.asarray(rows, dtype=np.float64)
    if space == "cosinesimil":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
        rn = r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-30)
        return 1.0 - qn @ rn.T
    if space == "innerproduct":
        return 1.0 - q @ r.T
    return (q * q).sum(1)[:, None] - 2 * q @ r.T + (r * r).sum(1)[None, :]
