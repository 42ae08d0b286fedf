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

This module holds the file format (constants, writing, reading and validating); the model and its cache are
:mod:`.ivf_model`, the inverted lists (build, merge) :mod:`.ivf_lists`, the loaded searchable graph
:mod:`.ivf_search`. Their public names are importable from here too.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
from segstore_codecs.segstore1.ivf_lists import (
    InvertedLists,
    build_inverted_lists,
    merge_inverted_lists,
)
from segstore_codecs.segstore1.ivf_model import (
    KINDS,
    MERGE_SOURCES_ATTR,
    IvfModel,
    model_for_field,
    register_model,
)
from segstore_codecs.segstore1.ivf_search import IvfGraph

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

CODEC_NAME = "SegStore1IvfGraph"
EXTENSION = "ivf"
VERSION_START = 1
VERSION_CURRENT = VERSION_START
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
