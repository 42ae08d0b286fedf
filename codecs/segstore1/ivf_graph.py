"""IVF graphs built from a trained model: ``SegStore1IvfGraph``, one file per field, ``<segment>_f<number>.ivf``.

A field mapped with ``model_id`` (vector-semantics.md §5) indexes its vectors into a copy of the model's
trained, empty faiss ``IndexIVF``: each vector is assigned to its nearest coarse centroid and encoded by the
model's encoder. A segment's graph file holds the model's *decomposed* trained state (coarse centroids and
encoder parameters) plus the segment's inverted lists. Nothing in the file is ever parsed by faiss: the
reader validates every array (shapes, list sizes, the ids form a permutation of the ordinals, finite
centroids) and then builds the faiss index from numpy arrays, so a corrupt or hostile file can neither make
faiss allocate nor read out of bounds.

Model kinds (what the training API produces, ``segstore.models.training``):

==================  ===================================  ============  ==================================
kind                faiss index                          code bytes    training data
==================  ===================================  ============  ==================================
``flat``            ``IndexIVFFlat`` (float)             4·d           float32 (cosine: unit rows, IP)
``sq_fp16``         ``IndexIVFScalarQuantizer`` fp16     2·d           float32, residuals (faiss default)
``sq8_direct``      ``IndexIVFScalarQuantizer``          d             int8 rows as floats; no residual,
                    ``QT_8bit_direct_signed`` (byte)                   so codes are the exact values
``binary``          ``IndexBinaryIVF`` (Hamming)         d/8           packed bits
==================  ===================================  ============  ==================================

Grammar (framing per :mod:`segstore.codec.framing`)::

    File      := Header("SegStore1IvfGraph", Version, SegmentId, Suffix="f<number>"), Meta, Centroids,
                 ListSizes, Ids, Codes, Footer
    Meta      := msgpack map {"kind": str, "metric": "l2"|"ip"|"hamming", "dimension": int, "nlist": int,
                              "code_size": int, "count": int, "by_residual": bool, "normalize": bool,
                              "nprobes": int, "model_id": str, "model_sha256": str}
    Centroids := float32[nlist * dimension] LE  |  uint8[nlist * dimension / 8] (binary)
    ListSizes := uint64[nlist] LE                (entries of each inverted list, in list order)
    Ids       := int32[count] LE                 (the field's vector ordinals, list by list)
    Codes     := uint8[count * code_size]        (the encoded vectors, same order as Ids)

Search distances follow ``SegStore1HnswGraph`` (smaller is nearer): squared L2; ``1 - dot`` for inner
product and cosine (cosine rows and queries are unit length); Hamming for binary. ``nprobes`` lists are
visited (faiss clamps it to ``nlist``), so a search may return fewer than ``k`` ordinals, as OpenSearch's IVF
does. ``accept`` filters through an ``IDSelectorBitmap`` (float/byte); faiss's binary IVF has no selector,
so filtered binary searches scan the probed lists in numpy.

Merges never retrain and never re-encode: :func:`merge_inverted_lists` concatenates the inputs' inverted
lists (codes copied, ids remapped to the merged ordinals, deleted entries dropped), which is exactly what
adding the merged vectors to the model's quantizer would produce, minus the assignment and encoding work.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss as _faiss
import msgpack
import numpy as np

from segstore_codecs.segstore1.faiss_graph import _omp_threads  # per-thread OpenMP count, shared

from segstore.codec.base import KnnGraph
from segstore.codec.framing import write_footer, write_header
from segstore.errors import CorruptIndexError
from segstore.index.field_infos import FieldInfo
from segstore.index.file_names import segment_file_name
from segstore.store.directory import IndexOutput

__all__ = [
    "CODEC_NAME",
    "EXTENSION",
    "KINDS",
    "MERGE_SOURCES_ATTR",
    "IvfGraph",
    "IvfModel",
    "build_inverted_lists",
    "is_ivf_field",
    "ivf_file_name",
    "merge_inverted_lists",
    "model_for_field",
    "read_ivf",
    "register_model",
    "write_ivf",
]

faiss: Any = _faiss
CODEC_NAME = "SegStore1IvfGraph"
EXTENSION = "ivf"
VERSION_START = 1
VERSION_CURRENT = VERSION_START
KINDS = ("flat", "sq_fp16", "sq8_direct", "binary")
MERGE_SOURCES_ATTR = "ivf.model_sha256"
_META_KEYS = frozenset(("kind", "metric", "dimension", "nlist", "code_size", "count", "by_residual",
                        "normalize", "nprobes", "model_id", "model_sha256"))
_META_MAX = 4096
_MAX_NLIST = 20000  # the mapping accepts 0 < nlist < 20000
_U64 = np.dtype("<u8")
_I32 = np.dtype("<i4")
_F32 = np.dtype("<f4")


def ivf_file_name(segment: str, field: FieldInfo) -> str:
    return segment_file_name(segment, f"f{field.number}", EXTENSION)


def is_ivf_field(field: FieldInfo) -> bool:
    """True for fields whose graphs are IVF graphs from a model (attribute ``model_id``)."""
    return field.attributes.get("model_id") is not None


def _unit_rows(x: np.ndarray) -> np.ndarray:
    f = np.asarray(x, dtype=np.float32)
    norms = np.sqrt((f * f).sum(axis=1, keepdims=True, dtype=np.float32))
    return np.divide(f, norms, out=np.zeros_like(f), where=norms > 0)


# ------------------------------------------------------------------------------------------------ model


@dataclass(frozen=True)
class IvfModel:
    """A trained IVF, decomposed: what rebuilds the model's empty trained faiss index.

    ``dimension`` is in bits for ``binary``. ``centroids`` are float32 ``(nlist, d)`` or uint8
    ``(nlist, d/8)``. ``normalize`` (cosine) makes rows and queries unit length before faiss sees them.
    ``sha256`` is the digest of the model blob this came from (it keys the process-wide model cache)."""

    kind: str
    metric: str
    dimension: int
    nlist: int
    centroids: np.ndarray
    by_residual: bool = False
    normalize: bool = False
    sha256: str = ""

    @property
    def code_size(self) -> int:
        return {"flat": 4 * self.dimension, "sq_fp16": 2 * self.dimension, "sq8_direct": self.dimension,
                "binary": self.dimension // 8}[self.kind]

    @property
    def binary(self) -> bool:
        return self.kind == "binary"

    def empty_index(self) -> Any:
        """A fresh, trained, empty faiss index (the coarse quantizer is referenced by the index object)."""
        d, nlist = self.dimension, self.nlist
        if self.binary:
            quantizer = faiss.IndexBinaryFlat(d)
            quantizer.add(np.ascontiguousarray(self.centroids, dtype=np.uint8))
            index = faiss.IndexBinaryIVF(quantizer, d, nlist)
        else:
            metric = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
            quantizer = faiss.IndexFlatL2(d) if self.metric == "l2" else faiss.IndexFlatIP(d)
            quantizer.add(np.ascontiguousarray(self.centroids, dtype=np.float32))
            if self.kind == "flat":
                index = faiss.IndexIVFFlat(quantizer, d, nlist, metric)
            else:
                qtype = (faiss.ScalarQuantizer.QT_fp16 if self.kind == "sq_fp16"
                         else faiss.ScalarQuantizer.QT_8bit_direct_signed)
                index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, qtype, metric, self.by_residual)
        index.is_trained = True  # fp16 / direct SQ need no training data; the quantizer holds nlist centroids
        if index.code_size != self.code_size:
            raise ValueError(f"faiss code size {index.code_size} != {self.code_size} for kind {self.kind}")
        return index

    def prepare(self, rows: np.ndarray) -> np.ndarray:
        """Rows (or queries) as faiss wants them: float32 (unit for cosine) or packed uint8."""
        if self.binary:
            q = np.asarray(rows)
            if q.dtype == np.int8:
                q = q.view(np.uint8)
            return np.ascontiguousarray(q, dtype=np.uint8)
        if self.normalize:
            return _unit_rows(rows)
        return np.ascontiguousarray(rows, dtype=np.float32)

    # -- the model blob (what the registry stores and GET returns, base64)

    def to_blob(self) -> bytes:
        """``faiss.serialize_index(_binary)`` of the empty trained index (OpenSearch's ``model_blob``)."""
        index = self.empty_index()
        if self.binary:
            return bytes(faiss.serialize_index_binary(index))
        return bytes(faiss.serialize_index(index))

    @classmethod
    def from_faiss(cls, index: Any, *, normalize: bool = False, sha256: str = "") -> IvfModel:
        """Decompose a trained faiss IVF index (flat / SQ fp16 / SQ8 direct signed / binary)."""
        if isinstance(index, faiss.IndexBinary):
            index = faiss.downcast_IndexBinary(index)
            if not isinstance(index, faiss.IndexBinaryIVF):
                raise ValueError(f"not a binary IVF index: {type(index).__name__}")
            quantizer = faiss.downcast_IndexBinary(index.quantizer)
            centroids = quantizer.reconstruct_n(0, index.nlist).astype(np.uint8)
            return cls("binary", "hamming", int(index.d), int(index.nlist), centroids, False, False, sha256)
        index = faiss.downcast_index(index)
        if not isinstance(index, faiss.IndexIVF):
            raise ValueError(f"not an IVF index: {type(index).__name__}")
        metric = {faiss.METRIC_L2: "l2", faiss.METRIC_INNER_PRODUCT: "ip"}.get(index.metric_type)
        if metric is None:
            raise ValueError(f"unsupported faiss metric {index.metric_type}")
        if isinstance(index, faiss.IndexIVFFlat):
            kind, by_residual = "flat", False
        elif isinstance(index, faiss.IndexIVFScalarQuantizer):
            qtype = int(index.sq.qtype)
            kind = {int(faiss.ScalarQuantizer.QT_fp16): "sq_fp16",
                    int(faiss.ScalarQuantizer.QT_8bit_direct_signed): "sq8_direct"}.get(qtype)
            if kind is None:
                raise ValueError(f"unsupported scalar quantizer type {qtype}")
            by_residual = bool(index.by_residual)
        else:
            raise ValueError(f"unsupported IVF index {type(index).__name__}")
        quantizer = faiss.downcast_index(index.quantizer)
        centroids = quantizer.reconstruct_n(0, index.nlist).astype(np.float32)
        return cls(kind, metric, int(index.d), int(index.nlist), centroids, by_residual, normalize, sha256)

    @classmethod
    def from_blob(cls, blob: bytes, *, binary: bool, normalize: bool = False) -> IvfModel:
        """Load a model blob (already CRC-checked by the registry) and decompose it."""
        array = np.frombuffer(blob, dtype=np.uint8)
        index = faiss.deserialize_index_binary(array) if binary else faiss.deserialize_index(array)
        model = cls.from_faiss(index, normalize=normalize, sha256=hashlib.sha256(blob).hexdigest())
        if index.ntotal != 0:
            raise ValueError(f"model blob holds {index.ntotal} vectors, expected an empty trained index")
        return model


# The process-wide model cache: models by the sha256 of their blob. The registry registers every created
# model it resolves for a mapping (and every model it trains), so a graph writer can find the trained
# quantizer from the field attributes alone (``model_id`` + ``ivf.model_sha256``); content addressing
# makes one cache safe for any number of nodes in the process.
_MODELS: dict[str, IvfModel] = {}
_MODELS_LOCK = threading.Lock()


def register_model(model: IvfModel) -> None:
    if not model.sha256:
        raise ValueError("a cached model needs its blob's sha256")
    with _MODELS_LOCK:
        _MODELS[model.sha256] = model


def model_for_field(field: FieldInfo) -> IvfModel:
    """The trained model of a ``model_id`` field (from the process cache the registry fills)."""
    sha = field.attributes.get(MERGE_SOURCES_ATTR)
    model = _MODELS.get(sha or "")
    if model is None:
        raise ValueError(f"field [{field.name}]: model [{field.attributes.get('model_id')}] "
                         f"(sha256 {sha}) is not loaded in this process; resolve the index mappings through "
                         f"segstore.models.registry first")
    return model


# ----------------------------------------------------------------------------------- inverted lists


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


# ---------------------------------------------------------------------------------------------- write


def write_ivf(out: IndexOutput, segment_id: bytes, field: FieldInfo, model: IvfModel, lists: InvertedLists,
              count: int, nprobes: int) -> None:
    """Write one field's IVF graph file (validated first: never publish what the reader would refuse)."""
    if lists.count != count or int(lists.sizes.sum()) != count or len(lists.sizes) != model.nlist:
        raise ValueError(f"inverted lists of field [{field.name}] hold {lists.count} entries, expected {count}")
    meta = {"kind": model.kind, "metric": model.metric, "dimension": model.dimension, "nlist": model.nlist,
            "code_size": model.code_size, "count": count, "by_residual": model.by_residual,
            "normalize": model.normalize, "nprobes": int(nprobes),
            "model_id": field.attributes.get("model_id", ""), "model_sha256": model.sha256}
    centroids = np.ascontiguousarray(model.centroids, dtype=np.uint8 if model.binary else _F32)
    head = msgpack.packb(meta, use_bin_type=True)
    arrays = [centroids, np.ascontiguousarray(lists.sizes, dtype=_U64), np.ascontiguousarray(lists.ids, dtype=_I32),
              np.ascontiguousarray(lists.codes, dtype=np.uint8)]
    _check_arrays(meta, field, count, out.name, *arrays)  # the reader's checks, before anything is written
    write_header(out, CODEC_NAME, VERSION_CURRENT, segment_id, f"f{field.number}")
    out.write(head)
    for arr in arrays:
        out.write(memoryview(arr).cast("B"))
    write_footer(out)


# ----------------------------------------------------------------------------------------------- read


def _expected_kind_metric(field: FieldInfo) -> tuple[set[str], str, bool]:
    dt, space = field.vector_data_type, field.vector_space_type
    if dt == "binary":
        return {"binary"}, "hamming", False
    metric = "l2" if space == "l2" else "ip"
    if dt == "byte":
        return {"sq8_direct"}, metric, False
    return {"flat", "sq_fp16"}, metric, space == "cosinesimil"


def _parse_payload(payload: memoryview, field: FieldInfo, count: int, name: str
                   ) -> tuple[dict[str, Any], IvfModel, InvertedLists]:
    """Validate the whole payload against the field and the segment's vector count; raise
    :class:`CorruptIndexError` on any inconsistency. Returns numpy arrays only (nothing faiss parsed)."""
    def fail(what: str) -> CorruptIndexError:
        return CorruptIndexError(f"IVF graph of field [{field.name}] is inconsistent: {what}", name)

    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True)
    unpacker.feed(payload[:_META_MAX])
    try:
        meta = unpacker.unpack()
    except Exception as e:  # noqa: BLE001 - any msgpack failure is corruption
        raise fail(f"meta does not parse ({e})") from None
    pos = unpacker.tell()
    if not isinstance(meta, dict) or set(meta) != _META_KEYS:
        raise fail(f"meta is not the expected map: {meta!r}")
    ints = ("dimension", "nlist", "code_size", "count", "nprobes")
    if not all(isinstance(meta[k], int) and not isinstance(meta[k], bool) for k in ints) or not all(
            isinstance(meta[k], bool) for k in ("by_residual", "normalize")) or not all(
            isinstance(meta[k], str) for k in ("kind", "metric", "model_id", "model_sha256")):
        raise fail(f"meta value types: {meta!r}")
    kinds, metric, normalize = _expected_kind_metric(field)
    d, nlist = meta["dimension"], meta["nlist"]
    if (meta["kind"] not in kinds or meta["metric"] != metric or meta["normalize"] != normalize
            or d != field.vector_dimension or meta["count"] != count or not 0 < nlist < _MAX_NLIST
            or not 0 < meta["nprobes"] < _MAX_NLIST or meta["model_id"] != field.attributes.get("model_id", "")
            or (meta["by_residual"] and meta["kind"] != "sq_fp16")):
        raise fail(f"meta does not match the field (kind in {sorted(kinds)}, metric {metric}, dimension "
                   f"{field.vector_dimension}, count {count}): {meta!r}")
    model = IvfModel(meta["kind"], metric, d, nlist, np.zeros((0,)), meta["by_residual"], normalize,
                     meta["model_sha256"])
    if meta["code_size"] != model.code_size:
        raise fail(f"code_size {meta['code_size']} != {model.code_size}")
    cwidth = d // 8 if model.binary else d * 4
    need = nlist * cwidth + nlist * 8 + count * 4 + count * model.code_size
    if len(payload) - pos != need:
        raise fail(f"payload holds {len(payload) - pos} bytes after the meta, expected {need}")
    buf = payload[pos:]
    c_end = nlist * cwidth
    if model.binary:
        centroids = np.frombuffer(buf[:c_end], dtype=np.uint8).reshape(nlist, d // 8).copy()
    else:
        centroids = np.frombuffer(buf[:c_end], dtype=_F32).reshape(nlist, d).astype(np.float32)
        if not np.isfinite(centroids).all():
            raise fail("non-finite centroid")
    sizes = np.frombuffer(buf[c_end : c_end + nlist * 8], dtype=_U64).astype(np.uint64)
    i_start = c_end + nlist * 8
    ids = np.frombuffer(buf[i_start : i_start + count * 4], dtype=_I32).astype(np.int64)
    codes = np.frombuffer(buf[i_start + count * 4 :], dtype=np.uint8).reshape(count, model.code_size)
    _check_arrays(meta, field, count, name, centroids, sizes, ids, codes)
    model = IvfModel(model.kind, metric, d, nlist, centroids, model.by_residual, normalize, model.sha256)
    return meta, model, InvertedLists(sizes, ids, codes)


def _check_arrays(meta: dict[str, Any], field: FieldInfo, count: int, name: str, centroids: np.ndarray,
                  sizes: np.ndarray, ids: np.ndarray, codes: np.ndarray) -> None:
    """Shapes, list sizes, ids a permutation of the ordinals, finite centroids (writer and reader)."""
    def fail(what: str) -> CorruptIndexError:
        return CorruptIndexError(f"IVF graph of field [{field.name}] is inconsistent: {what}", name)

    nlist, d, code_size = meta["nlist"], meta["dimension"], meta["code_size"]
    binary = meta["kind"] == "binary"
    if centroids.shape != ((nlist, d // 8) if binary else (nlist, d)):
        raise fail(f"centroids have shape {centroids.shape}")
    if not binary and not np.isfinite(centroids).all():
        raise fail("non-finite centroid")
    if sizes.shape != (nlist,) or ids.shape != (count,) or codes.shape != (count, code_size):
        raise fail(f"array shapes {sizes.shape} {ids.shape} {codes.shape}")
    if sizes.size and (sizes.max() > count or int(sizes.sum()) != count):
        raise fail(f"list sizes sum to {int(sizes.sum())}, expected {count}")
    if count and (ids.min() < 0 or ids.max() >= count or not np.all(np.bincount(ids, minlength=count) == 1)):
        raise fail("ids are not a permutation of the ordinals")


def read_ivf(payload: memoryview, field: FieldInfo, count: int, name: str) -> IvfGraph:
    """The graph of a payload whose file CRC was verified: validated, then built into faiss."""
    meta, model, lists = _parse_payload(payload, field, count, name)
    try:
        return IvfGraph(model, field.name, lists, meta["nprobes"])
    except (RuntimeError, ValueError) as e:
        raise CorruptIndexError(f"faiss refused the IVF graph: {e}", name) from e


# --------------------------------------------------------------------------------------------- search


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
