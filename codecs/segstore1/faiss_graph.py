"""faiss HNSW graphs for ``byte`` and ``binary`` vector fields (the graph half of ``SegStore1HnswGraph``).

What is built per field (``m`` = ``hnsw.m``; descriptions in OpenSearch / faiss ``index_factory`` terms):

======================  ===========================  =========================  ==========================
field                   faiss index                  resident per vector        raw search distance
======================  ===========================  =========================  ==========================
byte, ``l2``            ``HNSWm,SQ8_direct_signed``  d bytes + graph            ``sum((q - v) ** 2)``
byte, ``innerproduct``  ``HNSWm,SQ8_direct_signed``  d bytes + graph            ``1 - dot(q, v)``
byte, ``cosinesimil``   ``HNSWm,Flat`` (IP, unit)    4·d bytes + graph          ``1 - cos(q, v)``
binary, ``hamming``     ``BHNSWm`` (IndexBinaryHNSW) d/8 bytes + graph          ``popcount(q XOR v)``
======================  ===========================  =========================  ==========================

Distances always mean "smaller is nearer" and, per space type, are the same numbers the hnswlib float graphs
return, so ``KnnGraph.search`` has one meaning whatever library answers (faiss's own inner-product
similarity ``p`` is returned as ``1 - p``).

* **byte l2 / innerproduct**: ``QT_8bit_direct_signed`` stores ``code = value + 128`` and decodes ``code -
  128``, so the int8 rows (fed to faiss as float32) are kept exactly, one byte per dimension, and every
  distance is integer arithmetic carried out in float32: exact as long as the partial sums stay below 2^24
  (always for inner product up to d = 1024; for l2 whenever the distance itself is below 2^24, e.g. any
  d <= 256 or typical data). Beyond that faiss rounds like any float32 engine; the graph only has to rank
  well, since :mod:`segstore.search.knn_query` re-scores every candidate exactly.
* **byte cosinesimil** (allowed for the lucene engine only; the mapping layer enforces that): cosine is not
  a function of the integer l2 or inner product, so the graph holds L2-normalised float32 copies and uses
  inner product, which on unit vectors *is* the cosine (OpenSearch's own faiss cosine path, §1.5). A
  quantised unit vector (e.g. SQ8 of 127·x/|x|) would save 3 bytes per dimension but would only
  approximate the ranking; 4 bytes/dim is the documented price of an exact ranking here. A zero vector
  stays zero (cosine 0 to everything), the queries are normalised the same way.
* **binary hamming**: ``IndexBinaryHNSW(d_bits, m)`` over the packed codes, code width d/8 bytes. faiss's
  Hamming is popcount of the bytewise XOR, so the MSB-first bit order of segstore's packing is irrelevant
  to the distance (Hamming does not depend on the order of bits, only on both sides using the same one).

Serialisation is ``faiss.serialize_index(_binary)`` to a uint8 array (no temp files). Before
``faiss.deserialize_index(_binary)`` sees a blob, the caller has verified the file's full CRC and
:func:`validate_blob` has walked the blob's layout (faiss 1.x ``write_index``: fourcc, header, HNSW
vectors, storage) with numpy views: every length fits the blob, every neighbour id, offset, level and the
entry point are consistent, so even a CRC-valid blob written by a bug can neither make faiss allocate more
than the blob's size nor read out of bounds during a search. The writer runs the same validation on what it
is about to write, so a faiss upgrade that changed the layout fails at write time, never at read time.

Threads: ``faiss.omp_set_num_threads`` sets the OpenMP ``nthreads-var`` of the *calling* thread (libgomp
keeps one per non-OpenMP thread; faiss-cpu wheels ship libgomp), so builds raise it to all cores and
searches lower it to 1 around the faiss call and restore the previous value: concurrent searches and builds
in other threads are not affected. Search parameters (``efSearch``, the ``IDSelector``) travel in a fresh
``SearchParametersHNSW`` per call; the loaded index is never mutated, so concurrent searches are safe.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import faiss as _faiss
import numpy as np

from segstore.codec.base import KnnGraph
from segstore.errors import CorruptIndexError
from segstore.index.field_infos import FieldInfo

__all__ = [
    "FaissLayout",
    "FaissGraph",
    "faiss_layout",
    "build_faiss",
    "serialize",
    "validate_blob",
    "deserialize",
    "resolve_accept",
    "LIBRARY_FAISS",
    "LIBRARY_FAISS_BINARY",
    "FAISS_LEVEL_SEED",
]

faiss: Any = _faiss  # faiss's bundled stubs miss much of its SWIG API (SearchParametersHNSW, storage fields)
LIBRARY_FAISS = "faiss"
LIBRARY_FAISS_BINARY = "faiss_binary"
# faiss's HNSW draws node levels from its own RandomGenerator seeded with 12345 in the HNSW constructor (not
# settable from Python); recorded in the meta like hnswlib's random_seed.
FAISS_LEVEL_SEED = 12345
_ADD_CHUNK = 1 << 16  # rows converted to float32 and added per faiss call (bounds the float copy)
_METRIC_IP = faiss.METRIC_INNER_PRODUCT  # 0
_METRIC_L2 = faiss.METRIC_L2  # 1
_QT_8BIT_DIRECT_SIGNED = int(faiss.ScalarQuantizer.QT_8bit_direct_signed)
_QT_FP16 = int(faiss.ScalarQuantizer.QT_fp16)


@dataclass(frozen=True)
class FaissLayout:
    """What a field's graph is: ``library`` and ``space`` as written to the meta, and the faiss pieces."""

    library: str  # "faiss" | "faiss_binary"
    space: str  # "l2" | "ip" | "cosine" | "hamming"
    fourcc: bytes  # outer faiss index
    storage_fourcc: bytes  # inner storage index
    metric: int  # faiss metric of both headers


_LAYOUTS: dict[tuple[str, str], FaissLayout] = {
    ("byte", "l2"): FaissLayout(LIBRARY_FAISS, "l2", b"IHNs", b"IxSQ", _METRIC_L2),
    ("byte", "innerproduct"): FaissLayout(LIBRARY_FAISS, "ip", b"IHNs", b"IxSQ", _METRIC_IP),
    ("byte", "cosinesimil"): FaissLayout(LIBRARY_FAISS, "cosine", b"IHNf", b"IxFI", _METRIC_IP),
    ("binary", "hamming"): FaissLayout(LIBRARY_FAISS_BINARY, "hamming", b"IBHf", b"IBxF", _METRIC_L2),
    # "float16" is not a mapping data type: it is the graph of a float field quantized to fp16 (2x,
    # faiss ``HNSWm,SQfp16``); cosine vectors arrive unit-length, so inner product ranks them.
    ("float16", "l2"): FaissLayout(LIBRARY_FAISS, "l2", b"IHNs", b"IxSQ", _METRIC_L2),
    ("float16", "innerproduct"): FaissLayout(LIBRARY_FAISS, "ip", b"IHNs", b"IxSQ", _METRIC_IP),
}


def _qtype(layout_key: str) -> int:
    return _QT_FP16 if layout_key == "float16" else _QT_8BIT_DIRECT_SIGNED


def faiss_layout(field: FieldInfo) -> FaissLayout:
    """The faiss graph of a byte/binary field; ValueError for anything faiss graphs do not cover."""
    layout = _LAYOUTS.get((field.vector_data_type, field.vector_space_type))
    if layout is None:
        supported = sorted(s for t, s in _LAYOUTS if t == field.vector_data_type)
        raise ValueError(f"SegStore1HnswGraph does not support space type [{field.vector_space_type}] for "
                         f"[{field.vector_data_type}] vectors of field [{field.name}]; supported: {supported}")
    return layout


# ------------------------------------------------------------------------------------------- threads


@contextmanager
def _omp_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` OpenMP threads in *this* thread (libgomp's per-thread nthreads-var)."""
    previous = faiss.omp_get_max_threads()
    if previous != n:
        faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        if previous != n:
            faiss.omp_set_num_threads(previous)


# --------------------------------------------------------------------------------------------- build


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """float32 L2-normalised copy of ``x`` (zero rows stay zero)."""
    f = np.asarray(x, dtype=np.float64)
    norms = np.sqrt((f * f).sum(axis=1, keepdims=True))
    return np.divide(f, norms, out=np.zeros_like(f), where=norms > 0).astype(np.float32)


def _check_rows(field: FieldInfo, vectors: np.ndarray) -> np.ndarray:
    if field.vector_data_type == "float16":
        data = np.asarray(vectors, dtype=np.float32)
        if data.ndim != 2 or data.shape[1] != field.vector_dimension or data.shape[0] < 1:
            raise ValueError(f"field [{field.name}]: need float vectors of shape (n >= 1, {field.vector_dimension})")
        return data
    binary = field.vector_data_type == "binary"
    width = field.vector_dimension // 8 if binary else field.vector_dimension
    dtype = np.uint8 if binary else np.int8
    data = np.asarray(vectors)
    if data.dtype != dtype or data.ndim != 2 or data.shape[1] != width or data.shape[0] < 1:
        raise ValueError(f"field [{field.name}]: need {np.dtype(dtype).name} vectors of shape (n >= 1, {width}), "
                         f"got {data.dtype} {data.shape}")
    return data


def build_faiss(field: FieldInfo, vectors: np.ndarray, m: int, ef_construction: int) -> Any:
    """Build the faiss HNSW graph of a byte (int8 [n, d]) or binary (uint8 [n, d/8]) field; labels are the
    ordinals 0..n-1. Uses every core of the machine for this thread's build."""
    layout = faiss_layout(field)
    data = _check_rows(field, vectors)
    d = field.vector_dimension
    if layout.library == LIBRARY_FAISS_BINARY:
        index = faiss.IndexBinaryHNSW(d, m)
    elif layout.space == "cosine":
        index = faiss.IndexHNSWFlat(d, m, _METRIC_IP)
    else:
        index = faiss.IndexHNSWSQ(d, _qtype(field.vector_data_type), m, layout.metric)
    index.hnsw.efConstruction = ef_construction
    assert index.is_trained  # direct SQ, flat and binary storages need no training
    with _omp_threads(os.cpu_count() or 1):
        for start in range(0, data.shape[0], _ADD_CHUNK):
            rows = data[start : start + _ADD_CHUNK]
            if layout.library == LIBRARY_FAISS_BINARY:
                index.add(np.ascontiguousarray(rows))
            elif layout.space == "cosine":
                index.add(_unit_rows(rows))
            else:
                index.add(rows.astype(np.float32))
    return index


def serialize(index: Any) -> np.ndarray:
    """The faiss blob of ``index`` (uint8 array), without touching the file system."""
    if isinstance(index, faiss.IndexBinary):
        return faiss.serialize_index_binary(index)  # type: ignore[no-any-return]
    return faiss.serialize_index(index)  # type: ignore[no-any-return]


# -------------------------------------------------------------------------------- blob validation

_INDEX_HEADER = struct.Struct("<iqqqBi")  # d, ntotal, dummy, dummy, is_trained, metric_type
_BINARY_HEADER = struct.Struct("<iiqBi")  # d, code_size, ntotal, is_trained, metric_type
_HNSW_TAIL = struct.Struct("<iiiii")  # entry_point, max_level, efConstruction, efSearch, upper_beam
_SQ_HEADER = struct.Struct("<iifQQ")  # qtype, rangestat, rangestat_arg, d, code_size
_MAX_LEVELS = 64


class _Cursor:
    """Bounds-checked reads of a faiss blob; every failure is a CorruptIndexError naming the file."""

    def __init__(self, blob: memoryview, name: str) -> None:
        self.blob, self.name, self.pos = blob, name, 0

    def fail(self, what: str) -> CorruptIndexError:
        return CorruptIndexError(f"faiss blob inconsistent with the graph meta: {what}", self.name)

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.blob):
            raise self.fail(f"needs {n} bytes at offset {self.pos}, blob has {len(self.blob)}")
        out = self.blob[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, s: struct.Struct) -> tuple[Any, ...]:
        return s.unpack(self.take(s.size))

    def fourcc(self, expected: bytes, what: str) -> None:
        got = bytes(self.take(4))
        if got != expected:
            raise self.fail(f"{what} fourcc {got!r}, expected {expected!r}")

    def vector(self, dtype: Any, expected: int | None = None, what: str = "vector") -> np.ndarray:
        (size,) = self.unpack(struct.Struct("<Q"))
        item = np.dtype(dtype).itemsize
        if size > (len(self.blob) - self.pos) // item:
            raise self.fail(f"{what} claims {size} items, more than the blob holds")
        if expected is not None and size != expected:
            raise self.fail(f"{what} has {size} items, expected {expected}")
        return np.frombuffer(self.take(size * item), dtype=np.dtype(dtype).newbyteorder("<"))


def _check_index_header(c: _Cursor, layout: FaissLayout, dimension: int, count: int, what: str) -> None:
    if layout.library == LIBRARY_FAISS_BINARY:
        d, code_size, ntotal, trained, metric = c.unpack(_BINARY_HEADER)
        ok = d == dimension and code_size == dimension // 8
    else:
        d, ntotal, _, _, trained, metric = c.unpack(_INDEX_HEADER)
        ok = d == dimension
    if not (ok and ntotal == count and trained == 1 and metric == layout.metric):
        raise c.fail(f"{what} header (d={d}, ntotal={ntotal}, trained={trained}, metric={metric}) "
                     f"!= (d={dimension}, ntotal={count}, metric={layout.metric})")


def _check_hnsw(c: _Cursor, count: int, m: int, ef_construction: int) -> None:
    probas = c.vector(np.float64, what="assign_probas")
    cum = c.vector(np.int32, what="cum_nneighbor_per_level").astype(np.int64)
    levels = c.vector(np.int32, count, "levels").astype(np.int64)
    offsets = c.vector(np.uint64, count + 1, "offsets")
    neighbors = c.vector(np.int32, what="neighbors")
    entry, max_level, efc, ef_search, _upper_beam = c.unpack(_HNSW_TAIL)
    # per-level neighbour counts: 2m at level 0, m above (faiss HNSW::set_default_probas)
    nlev = len(cum) - 1
    if not (1 <= nlev <= _MAX_LEVELS and len(probas) == nlev and cum[0] == 0
            and np.array_equal(np.diff(cum), [2 * m] + [m] * (nlev - 1))):
        raise c.fail(f"per-level neighbour table does not match m={m}")
    if efc != ef_construction or ef_search < 1:
        raise c.fail(f"efConstruction={efc} (expected {ef_construction}), efSearch={ef_search}")
    if levels.min() < 1 or levels.max() > nlev:
        raise c.fail("node levels out of range")
    if not (0 <= entry < count and max_level == levels.max() - 1 and levels[entry] - 1 == max_level):
        raise c.fail(f"entry point {entry} / max level {max_level} inconsistent with the node levels")
    if offsets[0] != 0 or offsets[-1] != len(neighbors) or not np.array_equal(
            np.diff(offsets.astype(np.int64)), cum[levels]):
        raise c.fail("neighbour offsets inconsistent with the node levels")
    if len(neighbors) and (neighbors.min() < -1 or neighbors.max() >= count):
        raise c.fail("neighbour id out of range")
    # A neighbour listed at level l >= 1 must itself live on level l, or a search would read past its slots.
    upper = np.flatnonzero(levels >= 2)
    if len(upper):
        per_node = cum[levels[upper]] - cum[1]  # upper-level slots of each such node
        within = np.arange(per_node.sum()) - np.repeat(np.cumsum(per_node) - per_node, per_node)
        slot = np.repeat(offsets[upper].astype(np.int64), per_node) + cum[1] + within
        slot_level = np.searchsorted(cum, cum[1] + within, side="right") - 1
        nb = neighbors[slot]
        real = nb >= 0
        if np.any(levels[nb[real]] - 1 < slot_level[real]):
            raise c.fail("upper-level neighbour lives on a lower level")


def validate_blob(blob: memoryview, layout: FaissLayout, dimension: int, count: int, m: int,
                  ef_construction: int, name: str, data_type: str = "byte") -> None:
    """Walk the faiss blob of a graph (faiss ``write_index`` layout) and raise :class:`CorruptIndexError`
    unless it is exactly the index the meta describes, with a memory-safe HNSW structure."""
    c = _Cursor(blob, name)
    c.fourcc(layout.fourcc, "index")
    _check_index_header(c, layout, dimension, count, "index")
    _check_hnsw(c, count, m, ef_construction)
    c.fourcc(layout.storage_fourcc, "storage")
    _check_index_header(c, layout, dimension, count, "storage")
    if layout.storage_fourcc == b"IxSQ":
        qtype, _rangestat, _arg, sq_d, code_size = c.unpack(_SQ_HEADER)
        width = dimension * (2 if data_type == "float16" else 1)
        if (qtype, sq_d, code_size) != (_qtype(data_type), dimension, width):
            raise c.fail(f"scalar quantizer qtype={qtype} d={sq_d} code_size={code_size}")
        c.vector(np.float32, 0, "scalar quantizer training")
        c.vector(np.uint8, count * width, "codes")
    elif layout.storage_fourcc == b"IxFI":
        c.vector(np.float32, count * dimension, "vectors")
    else:
        c.vector(np.uint8, count * (dimension // 8), "codes")
    if c.pos != len(blob):
        raise c.fail(f"{len(blob) - c.pos} trailing bytes")


def deserialize(blob: memoryview, layout: FaissLayout) -> Any:
    """Load a blob that passed the file CRC and :func:`validate_blob`."""
    array = np.frombuffer(blob, dtype=np.uint8)
    if layout.library == LIBRARY_FAISS_BINARY:
        return faiss.deserialize_index_binary(array)
    return faiss.deserialize_index(array)


# -------------------------------------------------------------------------------------------- search


def resolve_accept(accept: Callable[[int], bool] | np.ndarray | None, count: int) -> np.ndarray | None:
    """The accept filter as a bool mask over ordinals (None = accept all). A callable is evaluated once
    per ordinal (O(count) Python calls: pass a mask when you have one)."""
    if accept is None:
        return None
    if isinstance(accept, np.ndarray):
        if accept.dtype != np.bool_ or accept.shape != (count,):
            raise ValueError(f"accept mask must be a bool array of shape ({count},), "
                             f"got {accept.dtype} {accept.shape}")
        return accept
    return np.fromiter((bool(accept(i)) for i in range(count)), dtype=np.bool_, count=count)


def _popcount_rows(x: np.ndarray) -> np.ndarray:
    return np.unpackbits(x, axis=-1).sum(axis=-1, dtype=np.int64)


class FaissGraph(KnnGraph):
    """A loaded faiss HNSW index over one byte/binary field; labels are ordinals."""

    def __init__(self, index: Any, layout: FaissLayout, field: str, dimension: int, count: int,
                 fp16: bool = False) -> None:
        self.fp16 = fp16
        self.index = index
        self.layout = layout
        self.field = field
        self.dimension = dimension
        self.count = count
        hnsw = index.hnsw
        self._hnsw_bytes = (hnsw.neighbors.size() * 4 + hnsw.levels.size() * 4 + hnsw.offsets.size() * 8
                            + hnsw.assign_probas.size() * 8 + hnsw.cum_nneighbor_per_level.size() * 4)
        # Zero-copy views on faiss's storage, for the exact path (tiny filters) and the checks below.
        if layout.library == LIBRARY_FAISS_BINARY:
            storage = faiss.downcast_IndexBinary(index.storage)
            codes, width = storage.xb, dimension // 8
            self._extra_bytes = 0
        else:
            storage = faiss.downcast_index(index.storage)
            codes = storage.codes
            width = dimension * (4 if layout.space == "cosine" else 2 if fp16 else 1)
            self._extra_bytes = storage.sq.trained.size() * 4 if layout.space != "cosine" else 0
        if (index.ntotal, index.d, storage.ntotal, codes.size()) != (count, dimension, count, count * width):
            raise ValueError(f"faiss index of field [{field}] does not hold {count} x {dimension} vectors")
        raw = faiss.rev_swig_ptr(codes.data(), codes.size()).reshape(count, width)
        if layout.library == LIBRARY_FAISS_BINARY:
            self._rows = raw
        elif layout.space == "cosine":
            self._rows = raw.view(np.float32)
        elif fp16:
            self._rows = raw.view(np.float16)
        else:  # direct_signed code = value + 128: flipping the top bit gives the int8 value
            self._rows = raw
        self._code_bytes = codes.size()

    def stored_codes(self, ords: np.ndarray) -> np.ndarray:
        """The codes this index stores for ordinals ``ords`` (a copy of those rows), in the layout of the
        field's quantization state: packed bits (binary), float16 (fp16), or for ``direct_signed`` the
        stored byte minus 128 (faiss keeps value + 128), i.e. the int8 value as uint8. For quantized fields
        these are the state's codes, so first-pass scores need not map the ``.qst`` codes a second time."""
        rows = self._rows[np.asarray(ords, dtype=np.int64)]
        if self.layout.library == LIBRARY_FAISS_BINARY or self.fp16 or self.layout.space == "cosine":
            return rows
        return rows ^ np.uint8(0x80)

    # -- queries

    def _queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(queries)
        if q.ndim == 1:
            q = q[None, :]
        binary = self.layout.library == LIBRARY_FAISS_BINARY
        width = self.dimension // 8 if binary else self.dimension
        if q.ndim != 2 or q.shape[1] != width:
            raise ValueError(f"field [{self.field}]: queries must have shape (n, {width}), got {q.shape}")
        if binary:
            if q.dtype == np.int8:
                q = q.view(np.uint8)
            elif q.dtype != np.uint8:
                if q.size and (not np.all(q == np.round(q)) or q.min() < 0 or q.max() > 255):
                    raise ValueError(f"field [{self.field}]: binary queries must be packed bytes (0..255)")
                q = q.astype(np.uint8)
            return np.ascontiguousarray(q)
        if self.layout.space == "cosine":
            return _unit_rows(q)
        return np.ascontiguousarray(q, dtype=np.float32)

    def _to_distance(self, raw: np.ndarray) -> np.ndarray:
        """faiss's raw values -> this format's distances (smaller is nearer)."""
        if self.layout.metric == _METRIC_IP:
            return (np.float32(1.0) - raw.astype(np.float32)).astype(np.float32)
        return raw.astype(np.float32)

    def _exact(self, q: np.ndarray, k: int, ords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` of each query among ``ords`` (ascending), from faiss's own stored codes."""
        rows = self._rows[ords]
        if self.layout.library == LIBRARY_FAISS_BINARY:
            dist = np.stack([_popcount_rows(np.bitwise_xor(rows, qi)) for qi in q]).astype(np.float32)
        elif self.layout.space == "cosine":
            dist = (np.float32(1.0) - q @ rows.T).astype(np.float32)
        else:
            values = rows.astype(np.float64) if self.fp16 else (rows ^ np.uint8(0x80)).view(np.int8).astype(np.float64)
            qq = q.astype(np.float64)
            if self.layout.space == "l2":
                dist = ((qq * qq).sum(1)[:, None] - 2 * qq @ values.T + (values * values).sum(1)[None, :])
            else:
                dist = 1.0 - qq @ values.T
            dist = dist.astype(np.float32)
        order = np.lexsort((np.broadcast_to(ords, dist.shape), dist), axis=1)[:, :k]
        return ords[order].astype(np.int64), np.take_along_axis(dist, order, axis=1)

    def search(
        self, queries: np.ndarray, k: int, ef: int, accept: Callable[[int], bool] | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Distances per the module docstring, nearest first. ``accept`` is a callable on ordinals or a bool
        mask over ordinals. k' = min(k, count, accepted ordinals) for every row: when the filtered graph
        search comes back short for a row (a restrictive filter), that row is answered exactly; filters
        accepting at most ``max(ef, k)`` ordinals skip the graph altogether (an exact scan of so few codes
        is cheaper than a filtered graph walk that would have to visit most of the graph)."""
        q = self._queries(queries)
        if k < 1 or ef < 1:
            raise ValueError(f"k and ef must be >= 1, got k={k} ef={ef}")
        mask = resolve_accept(accept, self.count)
        n_allowed = self.count if mask is None else int(np.count_nonzero(mask))
        kk = min(k, self.count, n_allowed)
        if q.shape[0] == 0 or kk == 0:
            return np.empty((q.shape[0], kk), np.int64), np.empty((q.shape[0], kk), np.float32)
        allowed = None if mask is None else np.flatnonzero(mask)
        if allowed is not None and n_allowed <= max(ef, k):
            return self._exact(q, kk, allowed)
        if mask is None:
            bitmap = selector = None
            params = faiss.SearchParametersHNSW(efSearch=max(ef, k))
        else:
            # IDSelectorBitmap tests bit (i & 7) of byte i >> 3. params only holds C++ pointers: bitmap and
            # selector stay referenced here until the search returns.
            bitmap = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(self.count, faiss.swig_ptr(bitmap))
            params = faiss.SearchParametersHNSW(efSearch=max(ef, k), sel=selector)
        with _omp_threads(1):
            raw, labels = self.index.search(q, kk, params=params)
        del params, selector, bitmap
        ords = labels.astype(np.int64, copy=False)
        dists = self._to_distance(raw)
        short = np.flatnonzero((ords < 0).any(axis=1))
        if len(short):  # a disconnected region or a restrictive filter: answer these rows exactly
            everyone = np.arange(self.count) if allowed is None else allowed
            ords[short], dists[short] = self._exact(q[short], kk, everyone)
        return ords, dists

    def memory_bytes(self) -> int:
        """Resident bytes of the loaded index: the stored codes (d, 4·d or d/8 bytes per vector) plus the
        HNSW arrays (neighbours: 4 B per slot, 2m slots at level 0 and m per upper level; levels: 4 B and
        offsets: 8 B per vector; the per-level tables) plus the scalar quantizer's trained vector (empty for
        ``direct_signed``). Exact sizes, not capacities: a freshly deserialised faiss index has no spare
        capacity. Not counted: the C++ object headers (a few hundred bytes) and the transient per-search
        visited table (count bytes while a search runs)."""
        return int(self._code_bytes + self._hnsw_bytes + self._extra_bytes)
