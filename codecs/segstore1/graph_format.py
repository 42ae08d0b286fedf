"""``SegStore1HnswGraph``: one HNSW graph per vector field, ``<segment>_f<number>.hnsw``.

Float fields get an hnswlib graph; byte and binary fields a faiss graph (:mod:`.faiss_graph`:
``HNSWm,SQ8_direct_signed`` for byte l2/innerproduct, ``HNSWm,Flat`` over unit vectors for byte cosine,
``IndexBinaryHNSW`` for binary hamming).

Grammar (framing per :mod:`segstore.codec.framing`)::

    File    := Header("SegStore1HnswGraph", Version, SegmentId, Suffix="f<number>"), Meta, Blob, Footer
    Meta    := msgpack map { "library": "hnswlib"|"faiss"|"faiss_binary"   (absent in version 1: hnswlib),
                             "space": str, "dimension": int, "m": int, "ef_construction": int,
                             "count": int, "random_seed": int, "blob_length": int }
    Blob    := byte[blob_length]:
               library "hnswlib":      exactly what ``hnswlib.Index.save_index`` writes (hnswlib 0.8 layout),
                                       space "l2" | "ip" | "cosine";
               library "faiss":        ``faiss.serialize_index`` of an IndexHNSWSQ (space "l2" | "ip") or an
                                       inner-product IndexHNSWFlat over L2-normalised rows (space "cosine");
               library "faiss_binary": ``faiss.serialize_index_binary`` of an IndexBinaryHNSW (space "hamming").
               Labels are the field's vector ordinals 0..count-1. ``random_seed`` is hnswlib's seed (100) or
               faiss's fixed HNSW level seed (12345).

Versions: 1 (``VERSION_START``) = float-only hnswlib graphs, meta without "library";
2 (``VERSION_FAISS``) = the "library" key and faiss graphs for byte/binary fields. Both are read.

Which fields have a graph is recorded by the segment itself: a field has one iff its graph file is listed in
the segment info's file list (the writer skips flat fields and segments below the approximate threshold),
and a listed graph must exist. The graph format holds no vectors the reader trusts: the field's vector count
comes from the segment's ``.vem`` (see ``vector_values_format``), and a graph can always be rebuilt from the
canonical vectors with :func:`build_graph`.

Native libraries parse their blobs with few or no bounds checks, so the file's full CRC is verified and the
meta and the blob's structure are validated before a single byte reaches hnswlib or faiss. Graphs are
loaded lazily, once, on the first ``get()``.

Raw distances returned by :meth:`KnnGraph.search` (smaller is nearer, whatever the library), per field space:

* ``l2``: squared Euclidean distance ``sum((q - v) ** 2)``;
* ``innerproduct``: ``1 - dot(q, v)`` (can be negative);
* ``cosinesimil``: ``1 - cos(q, v)``, in [0, 2]; stored vectors and queries are normalised by the graph;
* ``hamming`` (binary): ``popcount(q XOR v)`` over the packed bytes.

``accept`` may be a callable on ordinals or a bool mask over ordinals (cheaper: no Python call per ordinal).
"""

from __future__ import annotations


import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import hnswlib

from segstore.quantization.state import graph_field

from segstore_codecs.segstore1.hnswlib_blob import validate_hnswlib_blob
import msgpack
import numpy as np

from segstore.codec.base import GraphFormat, GraphReader, GraphWriter, IncrementalGraphBuilder, KnnGraph, VectorValues
from segstore.codec.framing import FramedInput, write_footer, write_header
from segstore.errors import AlreadyClosedError, CorruptIndexError, StorageIOError
from segstore.index.field_infos import FieldInfo
from segstore.index.file_names import segment_file_name
from segstore.index.write_state import SegmentReadState, SegmentWriteState
from segstore.store.directory import IndexOutput
from segstore_codecs.segstore1 import faiss_graph, ivf_graph
from segstore_codecs.segstore1.faiss_graph import FaissGraph, FaissLayout, resolve_accept
from segstore_codecs.segstore1.hnsw_build import (
    EF_RANGE, HNSW_SPACES, M_RANGE, RANDOM_SEED, HnswGraphBuilder, build_hnsw)
from segstore_codecs.segstore1.hnsw_build import hnsw_params as _hnsw_params
from segstore_codecs.segstore1.hnsw_build import hnsw_space as _hnsw_space
from segstore_codecs.segstore1.vector_values_format import read_vector_meta

__all__ = ["SegStore1HnswGraphFormat", "HnswGraph", "FaissGraph", "build_hnsw", "build_graph", "graph_file_name",
           "graph_library", "HNSW_SPACES", "LIBRARIES"]

CODEC_NAME = "SegStore1HnswGraph"
EXTENSION = "hnsw"
VERSION_START = 1  # never 0, so a "version - 1" header is still a representable (too old) u32
VERSION_FAISS = 2  # meta gains "library"; byte/binary fields get faiss graphs
VERSION_CURRENT = VERSION_FAISS
LIBRARY_HNSWLIB = "hnswlib"
LIBRARIES = (LIBRARY_HNSWLIB, faiss_graph.LIBRARY_FAISS, faiss_graph.LIBRARY_FAISS_BINARY)
_META_KEYS_V1 = frozenset(("space", "dimension", "m", "ef_construction", "count", "random_seed", "blob_length"))
_META_KEYS = _META_KEYS_V1 | {"library"}
_META_MAX = 4096  # the meta map is ~100 bytes; only this prefix is copied to parse it
_COPY_CHUNK = 8 << 20


def graph_file_name(segment: str, field: FieldInfo) -> str:
    return segment_file_name(segment, f"f{field.number}", EXTENSION)


def graph_library(field: FieldInfo) -> tuple[str, str, FaissLayout | None]:
    """``(library, space as written to the meta, faiss layout or None)`` of ``field``'s graph; ValueError
    when no graph of this format can serve the field's data type and space type."""
    if field.vector_data_type == "float":
        return LIBRARY_HNSWLIB, _hnsw_space(field), None
    if field.vector_data_type in ("byte", "binary", "float16"):
        layout = faiss_graph.faiss_layout(field)
        return layout.library, layout.space, layout
    raise ValueError(f"SegStore1HnswGraph does not support data_type [{field.vector_data_type}] of field "
                     f"[{field.name}]")


def build_graph(field: FieldInfo, vectors: np.ndarray) -> hnswlib.Index | Any:
    """Build ``field``'s graph over its canonical vectors (float32 / int8 / packed uint8, n >= 1): an
    ``hnswlib.Index`` for float fields, a faiss index for byte/binary fields. For writers and repair tools."""
    library, _space, _layout = graph_library(field)
    if library == LIBRARY_HNSWLIB:
        return build_hnsw(field, vectors)
    m, ef_construction = _hnsw_params(field)
    return faiss_graph.build_faiss(field, vectors, m, ef_construction)


@contextmanager
def _private_temp_file(size_hint: int) -> Iterator[str]:
    """A fresh 0600 temp file, removed on exit. hnswlib only saves to / loads from paths, so the blob passes
    through one; /dev/shm (RAM) avoids disk I/O when it has room (containers often cap it at 64 MiB)."""
    directory = tempfile.gettempdir()
    try:
        st = os.statvfs("/dev/shm")
        if os.access("/dev/shm", os.W_OK | os.X_OK) and st.f_bavail * st.f_frsize > 2 * size_hint + (16 << 20):
            directory = "/dev/shm"
    except OSError:
        pass
    fd, path = tempfile.mkstemp(prefix="segstore-hnsw-", suffix=".bin", dir=directory)
    os.close(fd)
    try:
        yield path
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _write_graph(out: IndexOutput, segment_id: bytes, field: FieldInfo, index: hnswlib.Index, count: int) -> None:
    write_header(out, CODEC_NAME, VERSION_CURRENT, segment_id, f"f{field.number}")
    expected = index.index_file_size()
    with _private_temp_file(expected) as path:
        index.save_index(path)
        blob_length = os.path.getsize(path)
        # hnswlib's ofstream does not report write errors (e.g. a full tmpfs): never publish a short blob.
        if blob_length != expected:
            raise StorageIOError(f"hnswlib saved {blob_length} bytes of graph [{out.name}], expected {expected} "
                                 f"(temp file system full?)")
        meta = {"library": LIBRARY_HNSWLIB, "space": index.space, "dimension": index.dim, "m": index.M,
                "ef_construction": index.ef_construction, "count": count, "random_seed": RANDOM_SEED,
                "blob_length": blob_length}
        out.write(msgpack.packb(meta, use_bin_type=True))
        with open(path, "rb") as fh:  # stream: a large graph is never held twice in RAM
            while chunk := fh.read(_COPY_CHUNK):
                out.write(chunk)
    write_footer(out)


def _write_faiss_graph(out: IndexOutput, segment_id: bytes, field: FieldInfo, index: Any, count: int) -> None:
    library, space, layout = graph_library(field)
    assert layout is not None
    m, ef_construction = _hnsw_params(field)
    blob = faiss_graph.serialize(index)
    # Never publish a graph this reader would refuse (e.g. a faiss upgrade that changed its layout).
    faiss_graph.validate_blob(memoryview(blob), layout, field.vector_dimension, count, m, ef_construction,
                              out.name, field.vector_data_type)
    meta = {"library": library, "space": space, "dimension": field.vector_dimension, "m": m,
            "ef_construction": ef_construction, "count": count, "random_seed": faiss_graph.FAISS_LEVEL_SEED,
            "blob_length": int(blob.nbytes)}
    write_header(out, CODEC_NAME, VERSION_CURRENT, segment_id, f"f{field.number}")
    out.write(msgpack.packb(meta, use_bin_type=True))
    out.write(memoryview(blob))
    write_footer(out)


def _is_ragged(e: RuntimeError) -> bool:
    # hnswlib's message when a query found fewer than k results (an error raised by ``accept`` must propagate).
    return "contiguous 2D array" in str(e)


class HnswGraph(KnnGraph):
    """A loaded hnswlib index over one field; labels are ordinals."""

    def __init__(self, index: hnswlib.Index, field: str, dimension: int, count: int) -> None:
        self.index = index
        self.field = field
        self.dimension = dimension
        self.count = count

    def search(
        self, queries: np.ndarray, k: int, ef: int, accept: Callable[[int], bool] | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw distances per the module docstring. ``accept``: a callable on ordinals or a bool mask over
        ordinals. If it leaves some query fewer than ``k`` reachable ordinals, k' is the smallest count any
        query found: every returned ordinal is real (callers index vectors with them, so no -1 padding), at
        the price of dropping extra hits of other rows."""
        if isinstance(accept, np.ndarray):
            mask = resolve_accept(accept, self.count)
            accept = lambda label: bool(mask[label])  # noqa: E731 - hnswlib wants a callable
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dimension:
            raise ValueError(f"field [{self.field}]: queries must have shape (n, {self.dimension}), got {q.shape}")
        if k < 1 or ef < 1:
            raise ValueError(f"k and ef must be >= 1, got k={k} ef={ef}")
        kk = min(k, self.count)
        target = max(ef, k)
        # ef is index-wide state in hnswlib. Setting it only when it differs keeps the common case (same ef
        # for every search) write-free; two concurrent searches with different ef may see each other's value,
        # which only changes their recall/latency trade-off, never correctness.
        if self.index.ef != target:
            self.index.set_ef(target)
        if q.shape[0] == 0:
            return np.empty((0, kk), np.int64), np.empty((0, kk), np.float32)
        try:
            labels, dists = self.index.knn_query(q, k=kk, num_threads=1, filter=accept)
        except RuntimeError as e:
            # hnswlib refuses to return a ragged result: some query found fewer than kk accepted ordinals.
            if not _is_ragged(e):
                raise
            return self._search_ragged(q, kk, accept)
        return labels.astype(np.int64), dists.astype(np.float32, copy=False)

    def search_one(self, query: np.ndarray, k: int, ef: int) -> np.ndarray:
        # No accept filter, so hnswlib always returns min(k, count) labels: none of search()'s shape and
        # ragged-result handling is needed. Labels stay uint64 (numpy indexes with them directly).
        target = max(ef, k)
        if self.index.ef != target:
            self.index.set_ef(target)
        return self.index.knn_query(query, k=min(k, self.count), num_threads=1)[0][0]  # type: ignore[no-any-return]

    def _search_ragged(self, q: np.ndarray, kk: int, accept: Callable[[int], bool] | None) -> tuple[Any, Any]:
        rows: list[tuple[np.ndarray, np.ndarray]] = []
        for row in range(q.shape[0]):  # rare path: per query, binary-search the largest k that succeeds
            lo, hi, best = 1, kk, None
            while lo <= hi:
                mid = (lo + hi) // 2
                try:
                    best = self.index.knn_query(q[row : row + 1], k=mid, num_threads=1, filter=accept)
                    lo = mid + 1
                except RuntimeError as e:
                    if not _is_ragged(e):
                        raise
                    hi = mid - 1
            rows.append((best[0][0], best[1][0]) if best is not None else (np.empty(0), np.empty(0)))
        width = min(len(r[0]) for r in rows)
        return (np.array([r[0][:width] for r in rows], np.int64).reshape(len(rows), width),
                np.array([r[1][:width] for r in rows], np.float32).reshape(len(rows), width))

    def memory_bytes(self) -> int:
        # index_file_size() is the size of the saved blob, which mirrors hnswlib's main allocations: the
        # level-0 block (vector + level-0 links + label per element, allocated for max_elements == count)
        # and the upper-level link lists. Add what it does not count: per element the level int, the link
        # list mutex (40 B), the upper-level list pointer, a visited-list slot (u16) and a label-lookup hash
        # node (~40 B); plus hnswlib 0.8's fixed 65536 label-operation mutexes.
        return int(self.index.index_file_size()) + self.count * (4 + 40 + 8 + 2 + 40) + 65536 * 40


def _validate_meta(meta: Any, field: FieldInfo, count: int, blob_room: int, name: str,
                   version: int) -> dict[str, Any]:
    keys = _META_KEYS_V1 if version < VERSION_FAISS else _META_KEYS
    if not isinstance(meta, dict) or set(meta) != keys:
        raise CorruptIndexError(f"graph meta is not the expected map: {meta!r}", name)
    meta = dict(meta)
    meta.setdefault("library", LIBRARY_HNSWLIB)  # version 1: hnswlib graphs only
    ints = all(isinstance(meta[k], int) and not isinstance(meta[k], bool) for k in _META_KEYS_V1 - {"space"})
    try:
        library, space, _layout = graph_library(field)
    except ValueError as e:  # the writer never writes a graph for such a field
        raise CorruptIndexError(f"segment has a graph for a field no graph supports: {e}", name) from None
    seed = RANDOM_SEED if library == LIBRARY_HNSWLIB else faiss_graph.FAISS_LEVEL_SEED
    expect = {"library": library, "space": space, "dimension": field.vector_dimension, "count": count,
              "random_seed": seed, "blob_length": blob_room}
    wrong = [f"{k}={meta[k]!r} (expected {v!r})" for k, v in expect.items() if meta[k] != v]
    if not ints or wrong or not M_RANGE[0] <= meta["m"] <= M_RANGE[1] or not (
            EF_RANGE[0] <= meta["ef_construction"] <= EF_RANGE[1]):
        raise CorruptIndexError(f"graph meta does not match field [{field.name}]: "
                                f"{', '.join(wrong) or meta}", name)
    return meta


def _validate_blob(blob: memoryview, meta: dict[str, Any], name: str) -> None:
    """The whole hnswlib blob is checked structurally (:mod:`.hnswlib_blob`) before hnswlib sees it."""
    validate_hnswlib_blob(blob, meta, name)


def _check_prebuilt(index: Any, field: FieldInfo, library: str, count: int) -> None:
    """A prebuilt graph must be what :func:`build_graph` would have built for the field (bar the randomness
    of a parallel build): never write a graph whose parameters or size disagree with the segment."""
    m, ef_construction = _hnsw_params(field)
    if not (library == LIBRARY_HNSWLIB and isinstance(index, hnswlib.Index)
            and (index.space, index.dim, index.M, index.ef_construction) == (
                _hnsw_space(field), field.vector_dimension, m, ef_construction)
            and index.element_count == count and index.max_elements == count):
        raise ValueError(f"prebuilt graph of field [{field.name}] does not match the segment's {count} vectors")


class SegStore1HnswGraphWriter(GraphWriter):
    """Builds each graph in ``add_field`` into an unpublished output; ``finish()`` publishes them all."""

    def __init__(self, state: SegmentWriteState) -> None:
        self._state = state
        self._pending: list[IndexOutput] = []
        self._published: list[str] = []
        self._fields: set[str] = set()
        self._done: str | None = None  # "finished" / "aborted"

    def add_field(self, field: FieldInfo, values: VectorValues, prebuilt: Any = None) -> None:
        """``values`` are the field's vectors, or for a quantized field its codes (see :func:`graph_field`);
        ``prebuilt``: an hnswlib index from :class:`HnswGraphBuilder` over exactly these vectors."""
        field = graph_field(field)
        if self._done:
            raise AlreadyClosedError(f"graph writer of segment [{self._state.segment_info.name}] is {self._done}")
        if field.name in self._fields:
            raise ValueError(f"field [{field.name}] was already added")
        if (values.field, values.dimension, values.data_type) != (
                field.name, field.vector_dimension, field.vector_data_type):
            raise ValueError(f"vector values of [{values.field}] ({values.dimension}, {values.data_type}) do not "
                             f"match field [{field.name}] ({field.vector_dimension}, {field.vector_data_type})")
        # --- IVF dispatch (fields mapped with model_id: segstore_codecs.segstore1.ivf_graph) ---
        if ivf_graph.is_ivf_field(field):
            self._fields.add(field.name)
            if values.size >= 1:
                model = ivf_graph.model_for_field(field)
                self._write_ivf(field, model, ivf_graph.build_inverted_lists(model, values.vectors), values.size)
            return
        # --- end IVF dispatch ---
        library, _space, _layout = graph_library(field)  # an unsupported space: refuse even when empty
        _hnsw_params(field)
        self._fields.add(field.name)
        if values.size < 1:
            return  # nothing to search: no file
        if prebuilt is not None:
            _check_prebuilt(prebuilt, field, library, values.size)
            index = prebuilt
        else:
            index = build_graph(field, values.vectors)
        out = self._state.directory.create_output(graph_file_name(self._state.segment_info.name, field))
        self._pending.append(out)
        try:
            write = _write_graph if library == LIBRARY_HNSWLIB else _write_faiss_graph
            write(out, self._state.segment_info.segment_id, field, index, values.size)
        except BaseException:
            self._pending.remove(out)
            out.abort()
            raise

    # --- IVF dispatch ------------------------------------------------------------------------------
    def merge_field(self, field: FieldInfo, values: VectorValues, sources: list[tuple[Any, np.ndarray]]) -> None:
        """A merged segment's graph of ``field`` from its inputs: ``sources`` are ``(input graph or None,
        keep mask over that input's ordinals)`` in the order the merged vectors were concatenated. IVF
        graphs from the same model are merged by concatenating their inverted lists (no re-encoding);
        anything else is rebuilt from ``values`` by :meth:`add_field`."""
        gf = graph_field(field)
        graphs = [g for g, _keep in sources]
        if (ivf_graph.is_ivf_field(gf) and values.size >= 1 and not self._done and gf.name not in self._fields
                and all(isinstance(g, ivf_graph.IvfGraph) for g in graphs)):
            model = ivf_graph.model_for_field(gf)
            if all(g.model.sha256 == model.sha256 for g in graphs):
                lists = ivf_graph.merge_inverted_lists([(g.list_source(), keep) for g, keep in sources],
                                                       model.nlist)
                if lists.count == values.size:
                    self._fields.add(gf.name)
                    self._write_ivf(gf, model, lists, values.size)
                    return
        self.add_field(field, values)

    def _write_ivf(self, field: FieldInfo, model: Any, lists: Any, count: int) -> None:
        out = self._state.directory.create_output(ivf_graph.ivf_file_name(self._state.segment_info.name, field))
        self._pending.append(out)
        try:
            nprobes = int(field.attributes.get("ivf.nprobes", "1"))
            ivf_graph.write_ivf(out, self._state.segment_info.segment_id, field, model, lists, count, nprobes)
        except BaseException:
            self._pending.remove(out)
            out.abort()
            raise
    # --- end IVF dispatch ----------------------------------------------------------------------------

    def finish(self) -> None:
        if self._done == "finished":
            return
        if self._done:
            raise AlreadyClosedError("graph writer was aborted")
        try:
            while self._pending:
                self._pending[0].close()
                self._published.append(self._pending.pop(0).name)
        except BaseException:
            self.abort()
            raise
        self._done = "finished"
        self._state.files.update(self._published)

    def abort(self) -> None:
        # After a successful finish the files belong to the segment (listed in state.files): nothing to undo.
        if self._done:
            return
        self._done = "aborted"
        for out in self._pending:
            out.abort()
        for name in self._published:  # finish() failed half-way: unpublish what it already published
            try:
                self._state.directory.delete_file(name)
            except FileNotFoundError:
                pass
        self._pending.clear()
        self._published.clear()


class SegStore1HnswGraphReader(GraphReader):
    """Knows from the segment's file list which fields have a graph (and from ``.vem`` how many vectors
    each holds); opens, verifies and loads each graph on first use."""

    def __init__(self, state: SegmentReadState) -> None:
        self._state = state
        seg = state.segment_info
        listed = set(seg.files)
        with_graph = [fi for fi in state.field_infos.vector_fields() if graph_file_name(seg.name, fi) in listed
                      or ivf_graph.ivf_file_name(seg.name, fi) in listed]  # IVF dispatch
        counts: dict[str, int] = {}
        if with_graph:
            counts = {name: m.count for name, m in read_vector_meta(state)[0].items()}
        self._expected: dict[str, tuple[FieldInfo, int]] = {}
        for fi in with_graph:
            count = counts.get(fi.name, 0)
            if count < 1:  # the writer never writes a graph without vectors
                raise CorruptIndexError(f"segment lists a graph for field [{fi.name}], which has no vector",
                                        graph_file_name(seg.name, fi))
            self._expected[fi.name] = (graph_field(fi), count)
        self._locks = {name: threading.Lock() for name in self._expected}
        self._graphs: dict[str, KnnGraph] = {}
        self._closed = False

    def _ensure_open(self) -> None:
        if self._closed:
            raise AlreadyClosedError(f"graph reader of segment [{self._state.segment_info.name}] is closed")

    def _open(self, field: FieldInfo) -> FramedInput:
        name = graph_file_name(self._state.segment_info.name, field)
        try:
            if ivf_graph.is_ivf_field(field):  # IVF dispatch
                name = ivf_graph.ivf_file_name(self._state.segment_info.name, field)
                return FramedInput(self._state.directory, name, ivf_graph.CODEC_NAME, ivf_graph.VERSION_START,
                                   ivf_graph.VERSION_CURRENT, self._state.segment_info.segment_id,
                                   f"f{field.number}", verify_checksum=True)
            return FramedInput(self._state.directory, name, CODEC_NAME, VERSION_START, VERSION_CURRENT,
                               self._state.segment_info.segment_id, f"f{field.number}", verify_checksum=True)
        except FileNotFoundError:
            raise CorruptIndexError(f"graph file of field [{field.name}] is missing", name) from None

    def get(self, field: str) -> KnnGraph | None:
        self._ensure_open()
        graph = self._graphs.get(field)
        if graph is not None or field not in self._expected:
            return graph
        with self._locks[field]:  # one load per field; other fields load concurrently
            graph = self._graphs.get(field)
            if graph is None:
                graph = self._load(*self._expected[field])
                self._ensure_open()
                self._graphs[field] = graph
        return graph

    def _load(self, field: FieldInfo, count: int) -> KnnGraph:
        if ivf_graph.is_ivf_field(field):  # IVF dispatch: CRC verified by _open, then every array validated
            with self._open(field) as inp:
                return inp.parse(lambda payload: ivf_graph.read_ivf(payload, field, count, inp.name))
        with self._open(field) as inp:  # full CRC verified here, before anything is parsed

            def parse(payload: memoryview) -> tuple[dict[str, Any], int]:
                unpacker = msgpack.Unpacker(raw=False, strict_map_key=True)
                unpacker.feed(payload[:_META_MAX])
                meta = unpacker.unpack()
                return meta, unpacker.tell()

            raw_meta, blob_start = inp.parse(parse)
            blob = inp.payload[blob_start:]
            meta = _validate_meta(raw_meta, field, count, len(blob), inp.name, inp.version)
            if meta["library"] != LIBRARY_HNSWLIB:
                return self._load_faiss(field, count, meta, blob, inp.name)
            _validate_blob(blob, meta, inp.name)
            index = hnswlib.Index(space=meta["space"], dim=field.vector_dimension)
            with _private_temp_file(len(blob)) as path:
                try:
                    with open(path, "wb") as fh:
                        fh.write(blob)
                except OSError as e:
                    raise StorageIOError(f"cannot stage graph [{inp.name}] for hnswlib: {e}", e) from e
                index.load_index(path, max_elements=count)
        if index.element_count != count:
            raise CorruptIndexError(f"hnswlib loaded {index.element_count} elements, expected {count}", inp.name)
        return HnswGraph(index, field.name, field.vector_dimension, count)

    @staticmethod
    def _load_faiss(field: FieldInfo, count: int, meta: dict[str, Any], blob: memoryview, name: str) -> FaissGraph:
        _library, _space, layout = graph_library(field)
        assert layout is not None
        # The file's CRC passed; now the blob's whole structure, before faiss parses a byte of it.
        faiss_graph.validate_blob(blob, layout, field.vector_dimension, count, meta["m"], meta["ef_construction"],
                                  name, field.vector_data_type)
        try:
            index = faiss_graph.deserialize(blob, layout)
            return FaissGraph(index, layout, field.name, field.vector_dimension, count,
                              fp16=field.vector_data_type == "float16")
        except (RuntimeError, ValueError) as e:  # faiss's own checks (FaissException) or ours on the result
            raise CorruptIndexError(f"faiss refused graph: {e}", name) from e

    def fields(self) -> list[str]:
        self._ensure_open()
        return list(self._expected)

    def check_integrity(self) -> None:
        self._ensure_open()
        for fi, _count in self._expected.values():
            self._open(fi).close()

    def close(self) -> None:
        self._closed = True
        self._graphs = {}  # hnswlib frees an index when its last reference (a caller's graph) goes away


class SegStore1HnswGraphFormat(GraphFormat):
    """HNSW graphs, one file per vector field: hnswlib for float, faiss for byte and binary."""

    name = "SegStore1HnswGraph"

    def fields_writer(self, state: SegmentWriteState) -> GraphWriter:
        return SegStore1HnswGraphWriter(state)

    def incremental_builder(self, field: FieldInfo) -> IncrementalGraphBuilder | None:
        """Float fields on hnswlib (no quantization, no trained model) grow their graph while buffered."""
        if ivf_graph.is_ivf_field(field) or graph_field(field) is not field or field.vector_data_type != "float":
            return None
        try:
            _hnsw_space(field)
            _hnsw_params(field)
        except ValueError:
            return None
        return HnswGraphBuilder(field)

    def fields_reader(self, state: SegmentReadState) -> GraphReader:
        return SegStore1HnswGraphReader(state)
