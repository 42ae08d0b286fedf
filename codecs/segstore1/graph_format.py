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

This module holds the format, its constants and the writer; the reader is :mod:`.graph_reader`, the loaded
hnswlib graph :mod:`.hnsw_graph`, the hnswlib build helpers :mod:`.hnsw_build`.

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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import hnswlib
import msgpack
import numpy as np
from segstore_codecs.segstore1 import faiss_graph, ivf_graph
from segstore_codecs.segstore1.faiss_graph import FaissGraph, FaissLayout
from segstore_codecs.segstore1.hnsw_build import (
    HNSW_SPACES,
    RANDOM_SEED,
    HnswGraphBuilder,
    build_hnsw,
)
from segstore_codecs.segstore1.hnsw_build import hnsw_params as _hnsw_params
from segstore_codecs.segstore1.hnsw_build import hnsw_space as _hnsw_space
from segstore_codecs.segstore1.hnsw_graph import HnswGraph

from segstore.codec.base import (
    GraphFormat,
    GraphReader,
    GraphWriter,
    IncrementalGraphBuilder,
    VectorValues,
)
from segstore.codec.framing import write_footer, write_header
from segstore.errors import AlreadyClosedError, StorageIOError
from segstore.index.field_infos import FieldInfo
from segstore.index.file_names import segment_file_name
from segstore.index.write_state import SegmentReadState, SegmentWriteState
from segstore.quantization.state import graph_field
from segstore.store.directory import IndexOutput

__all__ = ["SegStore1HnswGraphFormat", "HnswGraph", "FaissGraph", "build_hnsw", "build_graph", "graph_file_name",
           "graph_library", "HNSW_SPACES", "LIBRARIES"]

CODEC_NAME = "SegStore1HnswGraph"
EXTENSION = "hnsw"
VERSION_START = 1  # never 0, so a "version - 1" header is still a representable (too old) u32
VERSION_FAISS = 2  # meta gains "library"; byte/binary fields get faiss graphs
VERSION_CURRENT = VERSION_FAISS
LIBRARY_HNSWLIB = "hnswlib"
LIBRARIES = (LIBRARY_HNSWLIB, faiss_graph.LIBRARY_FAISS, faiss_graph.LIBRARY_FAISS_BINARY)
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
        # Imported here: the reader module imports this module's constants and helpers.
        from segstore_codecs.segstore1.graph_reader import SegStore1HnswGraphReader  # noqa: PLC0415

        return SegStore1HnswGraphReader(state)
