"""A segment's IVF inverted lists as flat numpy arrays: built by assigning and encoding vectors with a
model (:func:`build_inverted_lists`), and merged without re-encoding (:func:`merge_inverted_lists`).

Merges never retrain and never re-encode: the inputs' lists are concatenated (codes copied, ids remapped to
the merged ordinals, deleted entries dropped), which is exactly what adding the merged vectors to the
model's quantizer would produce, minus the assignment and encoding work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss as _faiss
import numpy as np

# per-thread OpenMP count, shared with the faiss HNSW graphs
from segstore_codecs.segstore1.faiss_graph import _omp_threads
from segstore_codecs.segstore1.ivf_model import IvfModel

__all__ = ["InvertedLists", "ListSource", "build_inverted_lists", "merge_inverted_lists"]

faiss: Any = _faiss


@dataclass
class InvertedLists:
    """A segment's inverted lists as flat arrays: ``sizes`` (uint64[nlist]), ``ids`` (int64[count],
    ordinals, list by list) and ``codes`` (uint8[count, code_size], same order)."""

    sizes: np.ndarray
    ids: np.ndarray
    codes: np.ndarray

    @property
    def count(self) -> int:
        return int(self.ids.shape[0])

    def list_of_entries(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.sizes), dtype=np.int64), self.sizes.astype(np.int64))


def _extract(index: Any, nlist: int, code_size: int) -> InvertedLists:
    """Copy the inverted lists out of a faiss IVF index (one small SWIG call per list)."""
    invlists = index.invlists
    sizes = np.array([invlists.list_size(i) for i in range(nlist)], dtype=np.uint64)
    total = int(sizes.sum())
    ids = np.empty(total, dtype=np.int64)
    codes = np.empty((total, code_size), dtype=np.uint8)
    pos = 0
    for i in range(nlist):
        n = int(sizes[i])
        if n == 0:
            continue
        ids[pos : pos + n] = faiss.rev_swig_ptr(invlists.get_ids(i), n)
        codes[pos : pos + n] = faiss.rev_swig_ptr(invlists.get_codes(i), n * code_size).reshape(n, code_size)
        pos += n
    return InvertedLists(sizes, ids, codes)


def build_inverted_lists(model: IvfModel, vectors: np.ndarray, threads: int = 0) -> InvertedLists:
    """Assign and encode ``vectors`` (the field's canonical rows; ordinals 0..n-1) with ``model``."""
    index = model.empty_index()
    data = model.prepare(vectors)
    with _omp_threads(threads or (faiss.omp_get_max_threads() or 1)):
        for start in range(0, data.shape[0], 1 << 16):
            index.add(data[start : start + (1 << 16)])
    return _extract(index, model.nlist, model.code_size)


@dataclass
class ListSource:
    """Read access to one input's inverted lists for a merge: ``sizes`` and ``ids`` (int64, list by list)
    as arrays, the codes of list ``l`` as a view (``codes_of(l)``), so a merge copies each code once."""

    sizes: np.ndarray
    ids: np.ndarray
    codes_of: Callable[[int], np.ndarray]


def _array_source(lists: InvertedLists) -> ListSource:
    starts = np.concatenate([[0], np.cumsum(lists.sizes.astype(np.int64))])
    return ListSource(lists.sizes.astype(np.int64), lists.ids, lambda i: lists.codes[starts[i] : starts[i + 1]])


def merge_inverted_lists(sources: list[tuple[InvertedLists | ListSource, np.ndarray]], nlist: int
                         ) -> InvertedLists:
    """Concatenate inverted lists without re-encoding. ``sources`` are ``(lists, keep)`` per input, in the
    order the merged segment concatenates their vectors; ``keep`` is a bool mask over that input's ordinals
    (False: deleted). The merged ordinal of a kept vector is its rank among the kept vectors of all inputs;
    inside a merged list, entries keep their input order. Each code is copied exactly once."""
    srcs = [(_array_source(src) if isinstance(src, InvertedLists) else src, np.asarray(keep, dtype=bool))
            for src, keep in sources]
    if not srcs:
        return InvertedLists(np.zeros(nlist, np.uint64), np.zeros(0, np.int64), np.zeros((0, 0), np.uint8))
    kept_per_list = []  # [input] -> kept entries per list
    sels = []
    for src, keep in srcs:
        sel = keep[src.ids]
        sels.append(sel)
        starts = np.concatenate([[0], np.cumsum(src.sizes)])
        csum = np.concatenate([[0], np.cumsum(sel, dtype=np.int64)])
        kept_per_list.append(csum[starts[1:]] - csum[starts[:-1]])
    counts = np.stack(kept_per_list)  # (inputs, nlist)
    sizes = counts.sum(axis=0)
    list_start = np.concatenate([[0], np.cumsum(sizes)])[:-1]
    # where input i's block of list l starts in the output
    block_start = list_start[None, :] + np.cumsum(counts, axis=0) - counts
    total = int(sizes.sum())
    code_size = next((src.codes_of(i).shape[1] for src, _ in srcs for i in range(nlist) if src.sizes[i]), 0)
    out_ids = np.empty(total, np.int64)
    out_codes = np.empty((total, code_size), np.uint8)
    base = 0
    for i, ((src, keep), sel) in enumerate(zip(srcs, sels)):
        remap = np.cumsum(keep, dtype=np.int64) - 1 + base
        starts = np.concatenate([[0], np.cumsum(src.sizes)])
        for lst in np.flatnonzero(counts[i]):
            a, b = int(starts[lst]), int(starts[lst + 1])
            m = sel[a:b]
            dst = int(block_start[i, lst])
            n = int(counts[i, lst])
            codes = src.codes_of(int(lst))
            if n == b - a:
                out_ids[dst : dst + n] = remap[src.ids[a:b]]
                out_codes[dst : dst + n] = codes
            else:
                out_ids[dst : dst + n] = remap[src.ids[a:b][m]]
                out_codes[dst : dst + n] = codes[m]
        base += int(keep.sum())
    return InvertedLists(sizes.astype(np.uint64), out_ids, out_codes)
