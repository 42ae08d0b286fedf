"""``IvfGraph``: a loaded IVF graph of one field, searched through the :class:`KnnGraph` API.

The faiss index is rebuilt from the model (:mod:`.ivf_model`) and the inverted lists read from the graph
file (:mod:`.ivf_graph`), never parsed by faiss. Distances follow ``SegStore1HnswGraph`` (smaller is
nearer); ``nprobes`` lists are visited, so a search may return fewer than ``k`` ordinals. Filtered binary
searches scan the probed lists in numpy (faiss's binary IVF has no ID selector).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faiss as _faiss
import numpy as np

# per-thread OpenMP count, shared with the faiss HNSW graphs
from segstore_codecs.segstore1.faiss_graph import _omp_threads
from segstore_codecs.segstore1.ivf_lists import InvertedLists, ListSource, _extract
from segstore_codecs.segstore1.ivf_model import IvfModel

from segstore.codec.base import KnnGraph

__all__ = ["IvfGraph"]

faiss: Any = _faiss


class IvfGraph(KnnGraph):
    """A loaded IVF index over one field; labels are ordinals. ``nprobes`` is the default number of
    lists visited (the model's); :meth:`with_nprobes` gives a view searching with another value."""

    def __init__(self, model: IvfModel, field: str, lists: InvertedLists, nprobes: int) -> None:
        self.model = model
        self.field = field
        self.count = lists.count
        self.nprobes = nprobes
        self.index = model.empty_index()
        invlists = self.index.invlists
        ids = np.ascontiguousarray(lists.ids, dtype=np.int64)
        codes = np.ascontiguousarray(lists.codes, dtype=np.uint8)
        pos = 0
        for i, n in enumerate(lists.sizes.astype(np.int64)):
            if n:
                invlists.add_entries(i, int(n), faiss.swig_ptr(ids[pos : pos + n]),
                                     faiss.swig_ptr(codes[pos : pos + n]))
                pos += int(n)
        self.index.ntotal = self.count
        self._binary_lists = lists if model.binary else None  # numpy copy for filtered binary searches
        self._memory = (codes.nbytes + 8 * self.count + model.centroids.nbytes + 48 * model.nlist
                        + (codes.nbytes + ids.nbytes if model.binary else 0))

    @property
    def dimension(self) -> int:
        return self.model.dimension

    def with_nprobes(self, nprobes: int | None) -> IvfGraph:
        """A view of this graph whose searches visit ``nprobes`` lists (None: the model's default)."""
        if nprobes is None or nprobes == self.nprobes:
            return self
        view = object.__new__(_IvfView)
        view.__dict__.update(self.__dict__)
        view.nprobes = int(nprobes)
        return view

    def inverted_lists(self) -> InvertedLists:
        """The graph's inverted lists (copied out of faiss)."""
        if self._binary_lists is not None:
            return self._binary_lists
        return _extract(self.index, self.model.nlist, self.model.code_size)

    def list_source(self) -> ListSource:
        """Merge access: ids copied out (8 bytes each), codes as zero-copy views on faiss's lists (valid while
        this graph is alive)."""
        invlists, nlist, cs = self.index.invlists, self.model.nlist, self.model.code_size
        sizes = np.array([invlists.list_size(i) for i in range(nlist)], dtype=np.int64)
        ids = np.empty(int(sizes.sum()), np.int64)
        pos = 0
        for i in np.flatnonzero(sizes):
            n = int(sizes[i])
            ids[pos : pos + n] = faiss.rev_swig_ptr(invlists.get_ids(int(i)), n)
            pos += n

        def codes_of(i: int) -> np.ndarray:
            n = int(sizes[i])
            return faiss.rev_swig_ptr(invlists.get_codes(i), n * cs).reshape(n, cs) if n else np.empty((0, cs), np.uint8)

        return ListSource(sizes, ids, codes_of)

    def _queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(queries)
        if q.ndim == 1:
            q = q[None, :]
        width = self.dimension // 8 if self.model.binary else self.dimension
        if q.ndim != 2 or q.shape[1] != width:
            raise ValueError(f"field [{self.field}]: queries must have shape (n, {width}), got {q.shape}")
        if self.model.binary and q.dtype not in (np.uint8, np.int8):
            if q.size and (not np.all(q == np.round(q)) or q.min() < -128 or q.max() > 255):
                raise ValueError(f"field [{self.field}]: binary queries must be packed bytes")
            q = q.astype(np.int16).astype(np.uint8)
        return self.model.prepare(q)

    def search(
        self, queries: np.ndarray, k: int, ef: int, accept: Callable[[int], bool] | np.ndarray | None = None,
        nprobes: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` nearest ordinals among the ``nprobes`` nearest lists (``ef`` is unused: IVF has no
        beam). k' is the smallest number of hits any query row found, so every returned ordinal is real."""
        from segstore_codecs.segstore1.faiss_graph import resolve_accept

        q = self._queries(queries)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        nprobe = int(nprobes or self.nprobes)
        mask = resolve_accept(accept, self.count)
        kk = min(k, self.count if mask is None else int(np.count_nonzero(mask)))
        if q.shape[0] == 0 or kk == 0:
            return np.empty((q.shape[0], 0), np.int64), np.empty((q.shape[0], 0), np.float32)
        if self.model.binary and mask is not None:
            labels, dists = self._binary_filtered(q, kk, nprobe, mask)
        else:
            selector = bitmap = None
            if mask is None:
                params = faiss.SearchParametersIVF(nprobe=nprobe)
            else:
                bitmap = np.packbits(mask, bitorder="little")
                selector = faiss.IDSelectorBitmap(self.count, faiss.swig_ptr(bitmap))
                params = faiss.SearchParametersIVF(nprobe=nprobe, sel=selector)
            with _omp_threads(1):
                raw, labels = self.index.search(q, kk, params=params)
            del params, selector, bitmap
            labels = labels.astype(np.int64, copy=False)
            raw = raw.astype(np.float32)
            dists = (np.float32(1.0) - raw) if self.model.metric == "ip" else raw
        width = int((labels >= 0).sum(axis=1).min()) if labels.size else 0
        return labels[:, :width].copy(), dists[:, :width].astype(np.float32)

    def _binary_filtered(self, q: np.ndarray, k: int, nprobe: int, mask: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
        lists = self._binary_lists
        assert lists is not None
        starts = np.concatenate([[0], np.cumsum(lists.sizes.astype(np.int64))])
        with _omp_threads(1):
            _, probe = self.index.quantizer.search(q, min(nprobe, self.model.nlist))
        out_l = np.full((q.shape[0], k), -1, np.int64)
        out_d = np.full((q.shape[0], k), np.inf, np.float32)
        for row, lists_row in enumerate(probe):
            pos = np.concatenate([np.arange(starts[li], starts[li + 1]) for li in lists_row if li >= 0]
                                 or [np.zeros(0, np.int64)])
            pos = pos[mask[lists.ids[pos]]]
            dist = np.unpackbits(np.bitwise_xor(lists.codes[pos], q[row]), axis=1).sum(axis=1)
            order = np.lexsort((lists.ids[pos], dist))[:k]
            out_l[row, : len(order)] = lists.ids[pos][order]
            out_d[row, : len(order)] = dist[order]
        return out_l, out_d

    def memory_bytes(self) -> int:
        """Resident bytes: codes (``code_size`` per vector), faiss's 8-byte ids, the coarse centroids
        (``4·d`` or ``d/8`` per list) and per-list vector headers; a binary graph also keeps a numpy copy
        of its lists for filtered searches."""
        return int(self._memory)


class _IvfView(IvfGraph):
    """:meth:`IvfGraph.with_nprobes`: shares the index, searches with another ``nprobes``."""

    def __init__(self) -> None:  # pragma: no cover - built by with_nprobes only
        raise TypeError("use IvfGraph.with_nprobes")
