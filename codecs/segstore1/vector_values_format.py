"""``SegStore1VectorValues``: canonical flat vector storage, ``<segment>.vec`` + ``<segment>.vem``.

Grammar (framing per :mod:`segstore.codec.framing`; arrays little-endian, row-major)::

    .vec  := Header("SegStore1VectorValuesData", Version, SegmentId, Suffix=""), FieldData*, Footer
    FieldData := Pad(64), Vectors, Pad(64), OrdToDoc
    Vectors   := float32[count, dimension]      for data_type "float"
               | int8[count, dimension]         for data_type "byte"
               | uint8[count, dimension / 8]    for data_type "binary" (packed bits, MSB first)
    OrdToDoc  := int32[count], strictly increasing doc ids in [0, max_doc)

    .vem  := Header("SegStore1VectorValuesMeta", Version, SegmentId, Suffix=""), Payload, Footer
    Payload   := msgpack map { "vec_length": int (exact byte length of .vec), "fields": array of Field }
    Field     := msgpack map { "name", "number", "dimension", "data_type", "count", "width",
                               "vectors_offset", "vectors_length", "ords_offset", "ords_length" }

Offsets are absolute offsets into ``.vec`` and multiples of 64, so every array is an aligned, zero-copy
numpy view on the memory map (no vector is ever copied into RAM by the reader). ``.vem`` is small and fully
CRC-checked and validated on open; ``.vec`` gets the exact-length and footer check on open (truncation is
caught at once) plus a vectorised sanity check of each ord->doc map, and its full CRC in
``check_integrity()``. A field listed with ``count`` 0 is valid (the field exists, no doc has a vector).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from segstore.codec.base import VectorValues, VectorValuesFormat, VectorValuesReader, VectorValuesWriter
from segstore.codec.framing import FOOTER_LENGTH, FramedInput, header_length, pad_to, write_footer, write_header
from segstore.errors import AlreadyClosedError, CorruptIndexError
from segstore.index.field_infos import FieldInfo
from segstore.index.file_names import segment_file_name
from segstore.index.write_state import SegmentReadState, SegmentWriteState
from segstore.store.directory import IndexOutput

__all__ = [
    "SegStore1VectorValuesFormat",
    "FieldVectorMeta",
    "read_vector_meta",
    "vector_dtype",
    "vector_width",
    "DATA_CODEC",
    "META_CODEC",
    "DATA_EXTENSION",
    "META_EXTENSION",
]

DATA_CODEC = "SegStore1VectorValuesData"
META_CODEC = "SegStore1VectorValuesMeta"
DATA_EXTENSION = "vec"
META_EXTENSION = "vem"
VERSION_START = 1  # never 0, so a "version - 1" header is still a representable (too old) u32
VERSION_CURRENT = 1
ALIGNMENT = 64  # cache line; also a multiple of every itemsize, so views are aligned on an mmap
MAX_DIMENSION = 16000  # OpenSearch k-NN's maximum dimension for every engine

_DTYPES: dict[str, np.dtype[Any]] = {
    "float": np.dtype("<f4"),
    "byte": np.dtype("i1"),
    "binary": np.dtype("u1"),
}
_ORD_DTYPE = np.dtype("<i4")
_META_KEYS = frozenset(
    ("name", "number", "dimension", "data_type", "count", "width",
     "vectors_offset", "vectors_length", "ords_offset", "ords_length")
)


def vector_dtype(data_type: str) -> np.dtype[Any]:
    """On-disk (and in-memory) dtype of one vector component of ``data_type``."""
    try:
        return _DTYPES[data_type]
    except KeyError:
        raise ValueError(f"unknown vector data type [{data_type}], expected one of {sorted(_DTYPES)}") from None


def vector_width(data_type: str, dimension: int) -> int:
    """Row width in elements: the dimension, or dimension / 8 packed bytes for ``binary``."""
    return dimension // 8 if data_type == "binary" else dimension


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class FieldVectorMeta:
    """One validated ``.vem`` entry."""

    name: str
    number: int
    dimension: int
    data_type: str
    count: int
    width: int
    vectors_offset: int
    vectors_length: int
    ords_offset: int
    ords_length: int


def _meta_problem(f: Any, state: SegmentReadState, vec_length: int) -> str | None:
    """First reason the decoded entry ``f`` cannot be trusted, or None."""
    if not isinstance(f, dict) or set(f) != _META_KEYS:
        keys = sorted(map(str, f)) if isinstance(f, dict) else type(f).__name__
        return f"field entry keys mismatch: expected={sorted(_META_KEYS)} actual={keys}"
    name = f["name"]
    if not isinstance(name, str) or not all(_is_int(f[k]) for k in _META_KEYS - {"name", "data_type"}):
        return f"field entry has values of the wrong type: {f!r}"
    fi = state.field_infos.get(name)
    if fi is None or not fi.has_vectors:
        return f"field [{name}] is not a vector field of the segment's field infos"
    dim, dtype, count = f["dimension"], f["data_type"], f["count"]
    if f["number"] != fi.number or dim != fi.vector_dimension or dtype != fi.vector_data_type:
        return (f"field [{name}] disagrees with field infos: number/dimension/data_type="
                f"{f['number']}/{dim}/{dtype!r} vs {fi.number}/{fi.vector_dimension}/{fi.vector_data_type!r}")
    if dtype not in _DTYPES:
        return f"field [{name}]: unknown data_type {dtype!r}"
    if not 1 <= dim <= MAX_DIMENSION or (dtype == "binary" and dim % 8):
        return f"field [{name}]: invalid dimension {dim} for data_type {dtype!r}"
    if f["width"] != vector_width(dtype, dim):
        return f"field [{name}]: width={f['width']} but expected {vector_width(dtype, dim)}"
    if not 0 <= count <= state.segment_info.max_doc:
        return f"field [{name}]: count={count} outside [0, max_doc={state.segment_info.max_doc}]"
    if f["vectors_length"] != count * f["width"] * _DTYPES[dtype].itemsize:
        return f"field [{name}]: vectors_length={f['vectors_length']} != count*width*itemsize"
    if f["ords_length"] != count * _ORD_DTYPE.itemsize:
        return f"field [{name}]: ords_length={f['ords_length']} != count*4"
    lo, hi = header_length(DATA_CODEC), vec_length - FOOTER_LENGTH
    for what in ("vectors", "ords"):
        off, length = f[f"{what}_offset"], f[f"{what}_length"]
        if off % ALIGNMENT or off < lo or off + length > hi:
            return (f"field [{name}]: {what} [{off}, {off + length}) is not a {ALIGNMENT}-aligned range "
                    f"inside the .vec payload [{lo}, {hi})")
    return None


def read_vector_meta(state: SegmentReadState) -> tuple[dict[str, FieldVectorMeta], int]:
    """Open, fully verify and validate ``<segment>.vem``; return its fields (in file order) and the exact
    ``.vec`` length. Also used by the graph format to learn each field's vector count."""
    info = state.segment_info
    name = segment_file_name(info.name, "", META_EXTENSION)
    with FramedInput(state.directory, name, META_CODEC, VERSION_START, VERSION_CURRENT, info.segment_id,
                     verify_checksum=True) as inp:

        def parse(payload: memoryview) -> tuple[dict[str, FieldVectorMeta], int]:
            doc = msgpack.unpackb(payload, raw=False, strict_map_key=True)
            if not isinstance(doc, dict) or set(doc) != {"vec_length", "fields"}:
                raise CorruptIndexError(f"payload is not a vector metadata map: {type(doc).__name__}", name)
            vec_length, entries = doc["vec_length"], doc["fields"]
            if not _is_int(vec_length) or vec_length < header_length(DATA_CODEC) + FOOTER_LENGTH:
                raise CorruptIndexError(f"invalid vec_length={vec_length!r}", name)
            out: dict[str, FieldVectorMeta] = {}
            for f in entries:
                problem = _meta_problem(f, state, vec_length)
                if problem is None and f["name"] in out:
                    problem = f"duplicate field [{f['name']}]"
                if problem is not None:
                    raise CorruptIndexError(problem, name)
                out[f["name"]] = FieldVectorMeta(**f)
            return out, vec_length

        return inp.parse(parse)


class SegStore1VectorValuesWriter(VectorValuesWriter):
    """Streams each field into ``.vec`` as it is added (nothing is retained, so the caller may reuse its
    arrays at once), then writes ``.vem`` on ``finish()``."""

    def __init__(self, state: SegmentWriteState) -> None:
        self._state = state
        seg = state.segment_info.name
        self._data_name = segment_file_name(seg, "", DATA_EXTENSION)
        self._meta_name = segment_file_name(seg, "", META_EXTENSION)
        self._out: IndexOutput | None = None  # .vec, created on first use
        self._entries: list[dict[str, Any]] = []
        self._published: list[str] = []
        self._finished = False
        self._aborted = False

    def _data_out(self) -> IndexOutput:
        if self._out is None:
            self._out = self._state.directory.create_output(self._data_name)
            write_header(self._out, DATA_CODEC, VERSION_CURRENT, self._state.segment_info.segment_id)
        return self._out

    def _check_open(self) -> None:
        if self._finished or self._aborted:
            raise AlreadyClosedError(f"vector values writer of [{self._data_name}] is already "
                                     f"{'finished' if self._finished else 'aborted'}")

    def add_field(self, field: FieldInfo, vectors: np.ndarray, docs: np.ndarray) -> None:
        self._check_open()
        vecs, ords = self._validate(field, vectors, docs)
        out = self._data_out()
        try:
            pad_to(out, ALIGNMENT)
            vectors_offset = out.file_pointer
            # 1-D uint8 views: IndexOutput counts len(data) as bytes, and no copy of the vectors is made.
            out.write(memoryview(vecs.reshape(-1).view(np.uint8)))
            pad_to(out, ALIGNMENT)
            ords_offset = out.file_pointer
            out.write(memoryview(ords.view(np.uint8)))
        except BaseException:
            self.abort()  # a half-written field cannot be described by .vem: discard the whole output
            raise
        self._entries.append({
            "name": field.name, "number": field.number, "dimension": field.vector_dimension,
            "data_type": field.vector_data_type, "count": int(ords.shape[0]), "width": int(vecs.shape[1]),
            "vectors_offset": vectors_offset, "vectors_length": int(vecs.nbytes),
            "ords_offset": ords_offset, "ords_length": int(ords.nbytes),
        })

    def _validate(self, field: FieldInfo, vectors: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        known = self._state.field_infos.get(field.name)
        if known is None or known != field or not field.has_vectors:
            raise ValueError(f"[{field.name}] is not a vector field of this segment's field infos")
        if any(e["name"] == field.name for e in self._entries):
            raise ValueError(f"field [{field.name}] was already added")
        dtype = vector_dtype(field.vector_data_type)
        width = vector_width(field.vector_data_type, field.vector_dimension)
        vectors = np.asarray(vectors)
        if vectors.ndim == 1 and vectors.size == 0:  # an empty list has no second axis to check
            vectors = np.empty((0, width), dtype)
        if vectors.dtype.kind != dtype.kind or vectors.dtype.itemsize != dtype.itemsize:
            raise ValueError(f"field [{field.name}] ({field.vector_data_type}) needs {dtype.name} vectors, "
                             f"got {vectors.dtype}")
        if vectors.ndim != 2 or vectors.shape[1] != width:
            raise ValueError(f"field [{field.name}] needs vectors of shape (n, {width}) for dimension "
                             f"{field.vector_dimension} ({field.vector_data_type}), got {vectors.shape}")
        docs = np.asarray(docs)
        if docs.ndim != 1 or docs.shape[0] != vectors.shape[0]:
            raise ValueError(f"field [{field.name}]: docs must be 1-D with one doc per vector "
                             f"({vectors.shape[0]}), got shape {docs.shape}")
        if docs.size and docs.dtype.kind not in "iu":
            raise ValueError(f"field [{field.name}]: docs must be integers, got {docs.dtype}")
        max_doc = self._state.segment_info.max_doc
        if docs.size and (int(docs.min()) < 0 or int(docs.max()) >= max_doc):
            raise ValueError(f"field [{field.name}]: doc ids must be in [0, {max_doc}), "
                             f"got [{int(docs.min())}, {int(docs.max())}]")
        if docs.size > 1 and not bool(np.all(docs[1:] > docs[:-1])):
            raise ValueError(f"field [{field.name}]: doc ids must be strictly increasing")
        # Fixed little-endian dtypes make the file portable; on little-endian hosts these are no-op views.
        return np.ascontiguousarray(vectors, dtype=dtype), np.ascontiguousarray(docs, dtype=_ORD_DTYPE)

    def finish(self) -> None:
        if self._finished:
            return
        self._check_open()
        try:
            out = self._data_out()
            write_footer(out)
            vec_length = out.file_pointer
            out.close()
            self._published.append(self._data_name)
            payload = msgpack.packb({"vec_length": vec_length, "fields": self._entries}, use_bin_type=True)
            meta = self._state.directory.create_output(self._meta_name)
            try:
                write_header(meta, META_CODEC, VERSION_CURRENT, self._state.segment_info.segment_id)
                meta.write(payload)
                write_footer(meta)
            except BaseException:
                meta.abort()
                raise
            meta.close()
            self._published.append(self._meta_name)
        except BaseException:
            self.abort()
            raise
        self._finished = True
        self._state.files.update(self._published)

    def abort(self) -> None:
        # After a successful finish the files belong to the segment (listed in state.files): nothing to undo.
        if self._finished or self._aborted:
            return
        self._aborted = True
        if self._out is not None:
            self._out.abort()
        for name in self._published:  # finish() failed half-way: unpublish what it already published
            try:
                self._state.directory.delete_file(name)
            except FileNotFoundError:
                pass
        self._published.clear()


class SegStore1VectorValuesReader(VectorValuesReader):
    """Zero-copy read-only views on ``.vec``; everything is validated on open (see the module docstring)."""

    def __init__(self, state: SegmentReadState) -> None:
        info = state.segment_info
        self._meta_name = segment_file_name(info.name, "", META_EXTENSION)
        metas, vec_length = read_vector_meta(state)
        self._data = FramedInput(state.directory, segment_file_name(info.name, "", DATA_EXTENSION), DATA_CODEC,
                                 VERSION_START, VERSION_CURRENT, info.segment_id, expected_length=vec_length)
        self._closed = False
        try:
            self._values = {name: self._view(m, info.max_doc) for name, m in metas.items()}
        except BaseException:
            self._data.close()
            raise

    def _view(self, m: FieldVectorMeta, max_doc: int) -> VectorValues:
        buf = self._data.buffer
        vectors = np.frombuffer(buf, dtype=_DTYPES[m.data_type], count=m.count * m.width,
                                offset=m.vectors_offset).reshape(m.count, m.width)
        ords = np.frombuffer(buf, dtype=_ORD_DTYPE, count=m.count, offset=m.ords_offset)
        vectors.flags.writeable = False  # already read-only on an mmap / bytes; explicit for other buffers
        ords.flags.writeable = False
        if m.count and not (ords[0] >= 0 and ords[-1] < max_doc and bool(np.all(ords[1:] > ords[:-1]))):
            # The metadata passed its CRC, so damaged data bytes are the likely cause: let the full CRC of
            # .vec speak first (ChecksumMismatchError), else report the impossible map itself.
            self._data.check_integrity()
            raise CorruptIndexError(
                f"field [{m.name}]: ord->doc map is not strictly increasing within [0, {max_doc}) "
                "although the checksum passed", self._data.name)
        return VectorValues(field=m.name, dimension=m.dimension, data_type=m.data_type, vectors=vectors,
                            ord_to_doc=ords)

    def _ensure_open(self) -> None:
        if self._closed:
            raise AlreadyClosedError(f"vector values reader of [{self._data.name}] is closed")

    def get(self, field: str) -> VectorValues | None:
        self._ensure_open()
        return self._values.get(field)

    def fields(self) -> list[str]:
        self._ensure_open()
        return list(self._values)

    def check_integrity(self) -> None:
        self._ensure_open()
        self._data.check_integrity()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._values = {}
            self._data.close()  # views already handed out keep the buffer alive


class SegStore1VectorValuesFormat(VectorValuesFormat):
    """Flat canonical vectors, one ``.vec``/``.vem`` pair per segment."""

    name = "SegStore1VectorValues"

    def fields_writer(self, state: SegmentWriteState) -> VectorValuesWriter:
        return SegStore1VectorValuesWriter(state)

    def fields_reader(self, state: SegmentReadState) -> VectorValuesReader:
        return SegStore1VectorValuesReader(state)
