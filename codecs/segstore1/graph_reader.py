"""``SegStore1HnswGraphReader``: the read side of the graph format (:mod:`.graph_format`, which holds the
file grammar).

The reader knows from the segment's file list which fields have a graph and from ``.vem`` how many vectors
each holds; it opens, verifies and loads each graph on its first ``get()``, once. Native libraries parse
their blobs with few or no bounds checks, so before a single byte reaches hnswlib or faiss the file's full
CRC is verified (``FramedInput(verify_checksum=True)``), the meta is checked against the field
(:func:`_validate_meta`) and the blob's whole structure is validated (:mod:`.hnswlib_blob` /
:func:`faiss_graph.validate_blob`). Fields mapped with ``model_id`` have IVF graphs instead
(:mod:`.ivf_graph`); the reader dispatches to it (the ``IVF dispatch`` lines).
"""

from __future__ import annotations

import threading
from typing import Any

import hnswlib
import msgpack
from segstore_codecs.segstore1 import faiss_graph, ivf_graph
from segstore_codecs.segstore1.faiss_graph import FaissGraph
from segstore_codecs.segstore1.graph_format import (
    CODEC_NAME,
    LIBRARY_HNSWLIB,
    VERSION_CURRENT,
    VERSION_FAISS,
    VERSION_START,
    _private_temp_file,
    graph_file_name,
    graph_library,
)
from segstore_codecs.segstore1.hnsw_build import EF_RANGE, M_RANGE, RANDOM_SEED
from segstore_codecs.segstore1.hnsw_graph import HnswGraph
from segstore_codecs.segstore1.hnswlib_blob import validate_hnswlib_blob
from segstore_codecs.segstore1.vector_values_format import read_vector_meta

from segstore.codec.base import GraphReader, KnnGraph
from segstore.codec.framing import FramedInput
from segstore.errors import AlreadyClosedError, CorruptIndexError, StorageIOError
from segstore.index.field_infos import FieldInfo
from segstore.index.write_state import SegmentReadState
from segstore.quantization.state import graph_field

__all__ = ["SegStore1HnswGraphReader"]

_META_KEYS_V1 = frozenset(("space", "dimension", "m", "ef_construction", "count", "random_seed", "blob_length"))
_META_KEYS = _META_KEYS_V1 | {"library"}
_META_MAX = 4096  # the meta map is ~100 bytes; only this prefix is copied to parse it


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
