"""SegStore1HnswGraph (hnswlib float graphs): recall per space, filters, lazy thread-safe loading, lifecycle,
versions, which fields have a graph, and corruption that must never reach hnswlib. The faiss byte/binary
graphs are tested in ``test_faiss_graph.py``."""

from __future__ import annotations

import struct
import threading
from typing import Any

import hnswlib
import msgpack
import numpy as np
import pytest

from segstore.codec.framing import FramedInput, write_footer, write_header
from segstore.errors import (
    ChecksumMismatchError,
    CorruptIndexError,
    IndexFormatTooNewError,
    IndexFormatTooOldError,
    SegmentIdMismatchError,
    TruncatedFileError,
)
from segstore.index.field_infos import FieldInfo, FieldInfos
from segstore.index.segment_info import SegmentInfo, new_segment_id
from segstore.index.write_state import SegmentReadState, SegmentWriteState
from segstore.store import Directory, FSDirectory, MemoryDirectory
from segstore.testing import corrupt
from segstore_codecs.segstore1.graph_format import (
    VERSION_CURRENT,
    VERSION_START,
    SegStore1HnswGraphFormat,
    build_graph,
    build_hnsw,
)
from segstore_codecs.segstore1.vector_values_format import SegStore1VectorValuesFormat

GRAPHS = SegStore1HnswGraphFormat()
VECTORS = SegStore1VectorValuesFormat()
CODEC = "SegStore1HnswGraph"
N, DIM = 2000, 32


def write_segment(
    directory: Directory, fields: dict[FieldInfo, np.ndarray], max_doc: int, name: str = "_0"
) -> SegmentWriteState:
    """Write vector values and graphs like a flush does (docs = 0..n-1) and return the write state; the
    segment info lists the files, as the ``.si`` the segment writer then writes does."""
    info = SegmentInfo(name=name, segment_id=new_segment_id(), max_doc=max_doc, codec="SegStore1")
    state = SegmentWriteState(directory, info, FieldInfos(list(fields)))
    vw = VECTORS.fields_writer(state)
    for fi, vecs in fields.items():
        vw.add_field(fi, vecs, np.arange(len(vecs), dtype=np.int32))
    vw.finish()
    reader = VECTORS.fields_reader(SegmentReadState(directory, info, state.field_infos))
    gw = GRAPHS.fields_writer(state)
    for fi in fields:
        values = reader.get(fi.name)
        assert values is not None
        gw.add_field(fi, values)
    gw.finish()
    info.files = sorted(state.files)
    return state


def open_graphs(state: SegmentWriteState):  # type: ignore[no-untyped-def]
    return GRAPHS.fields_reader(SegmentReadState(state.directory, state.segment_info, state.field_infos))


def brute_force(space: str, data: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if space == "l2":
        d = ((queries[:, None, :] - data[None, :, :]) ** 2).sum(-1)
    elif space == "innerproduct":
        d = 1 - queries @ data.T
    else:
        qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        dn = data / np.linalg.norm(data, axis=1, keepdims=True)
        d = 1 - qn @ dn.T
    return np.argsort(d, axis=1, kind="stable")[:, :k], d


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((N, DIM)).astype(np.float32)


@pytest.fixture
def no_hnswlib_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_a: Any, **_k: Any) -> None:
        pytest.fail("unverified bytes reached hnswlib.Index.load_index")

    monkeypatch.setattr(hnswlib.Index, "load_index", fail)


@pytest.mark.parametrize("space", ["l2", "innerproduct", "cosinesimil"])
def test_recall_and_raw_distances(directory: Directory, data: np.ndarray, space: str) -> None:
    fi = FieldInfo("v", 0, vector_dimension=DIM, vector_space_type=space)
    state = write_segment(directory, {fi: data}, max_doc=N)
    assert state.files == {"_0.vec", "_0.vem", "_0_f0.hnsw"}
    graph = open_graphs(state).get("v")
    assert graph is not None
    queries = np.random.default_rng(1).standard_normal((100, DIM)).astype(np.float32)
    ords, dists = graph.search(queries, k=10, ef=100)
    assert ords.shape == dists.shape == (100, 10) and ords.dtype == np.int64 and dists.dtype == np.float32
    truth, full = brute_force(space, data, queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ords.tolist(), truth.tolist())])
    assert recall >= 0.95, f"recall@10 {recall:.3f} for {space}"
    # raw distances are what the module docstring says they are
    np.testing.assert_allclose(dists, np.take_along_axis(full, ords, axis=1), rtol=1e-3, atol=1e-3)
    assert np.all(np.diff(dists, axis=1) >= -1e-6)  # nearest first
    assert graph.memory_bytes() > N * DIM * 4


def test_accept_filter_excludes_ords(directory: Directory, data: np.ndarray) -> None:
    fi = FieldInfo("v", 0, vector_dimension=DIM)
    graph = open_graphs(write_segment(directory, {fi: data[:500]}, max_doc=500)).get("v")
    assert graph is not None
    queries = data[:20] + 0.01
    ords, _ = graph.search(queries, k=10, ef=50, accept=lambda o: o % 2 == 1)
    assert ords.shape == (20, 10) and np.all(ords % 2 == 1)
    rows = np.arange(20)
    assert not np.any(ords[0::2] == rows[0::2, None])  # even rows' nearest (themselves) are filtered out
    assert np.array_equal(ords[1::2, 0], rows[1::2])  # odd rows still find themselves first
    # fewer accepted ordinals than k: k' shrinks to what every row found (all real ordinals, no padding)
    ords, dists = graph.search(queries[:3], k=10, ef=50, accept=lambda o: o in (5, 7, 11))
    assert ords.shape == dists.shape == (3, 3) and ords.dtype == np.int64 and dists.dtype == np.float32
    assert all(set(r) == {5, 7, 11} for r in ords.tolist()) and np.all(np.diff(dists, axis=1) >= 0)
    ords, dists = graph.search(queries[:2], k=5, ef=50, accept=lambda o: False)
    assert ords.shape == (2, 0) and dists.shape == (2, 0)

    def broken(_o: int) -> bool:
        raise RuntimeError("filter bug")

    with pytest.raises(RuntimeError, match="filter bug"):  # not mistaken for "fewer than k results"
        graph.search(queries[:2], k=5, ef=50, accept=broken)


def test_small_graph_k_larger_than_count_and_ef(directory: Directory) -> None:
    fi = FieldInfo("v", 3, vector_dimension=4, attributes={"hnsw.m": "8", "hnsw.ef_construction": "40"})
    vecs = np.eye(4, dtype=np.float32)
    graph = open_graphs(write_segment(directory, {fi: vecs}, max_doc=4)).get("v")
    assert graph is not None
    ords, dists = graph.search(vecs[0], k=10, ef=5)
    assert ords.shape == (1, 4) and ords[0, 0] == 0 and dists[0, 0] == 0
    index = graph.index  # type: ignore[attr-defined]
    assert (index.M, index.ef_construction, index.ef) == (8, 40, 10)
    graph.search(vecs, k=2, ef=30)
    assert index.ef == 30


def test_lazy_single_load_across_threads(directory: Directory, data: np.ndarray,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fi = FieldInfo("v", 0, vector_dimension=DIM)
    state = write_segment(directory, {fi: data[:300]}, max_doc=300)
    original = hnswlib.Index.load_index
    calls: list[int] = []

    def counting(self: hnswlib.Index, *a: Any, **k: Any) -> None:
        calls.append(1)
        original(self, *a, **k)

    monkeypatch.setattr(hnswlib.Index, "load_index", counting)
    reader = open_graphs(state)
    assert calls == [] and reader.fields() == ["v"]
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(reader.get("v"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 8 and all(g is results[0] for g in results)
    reader.close()


def test_empty_field_and_unsupported_spaces(directory: Directory, data: np.ndarray) -> None:
    empty = FieldInfo("e", 0, vector_dimension=DIM)
    full = FieldInfo("v", 1, vector_dimension=DIM)
    state = write_segment(directory, {empty: data[:0], full: data[:50]}, max_doc=50)
    assert state.files == {"_0.vec", "_0.vem", "_0_f1.hnsw"}
    reader = open_graphs(state)
    assert reader.fields() == ["v"] and reader.get("e") is None and reader.get("missing") is None
    reader.check_integrity()
    byte_hamming = FieldInfo("b", 2, vector_dimension=8, vector_data_type="byte", vector_space_type="hamming")
    with pytest.raises(ValueError, match=r"does not support space type \[hamming\] for \[byte\] vectors"):
        write_segment(MemoryDirectory(), {byte_hamming: np.zeros((2, 8), np.int8)}, max_doc=2)
    l1 = FieldInfo("f", 3, vector_dimension=4, vector_space_type="l1")
    with pytest.raises(ValueError, match=r"does not support space type \[l1\]"):
        write_segment(MemoryDirectory(), {l1: np.zeros((2, 4), np.float32)}, max_doc=2)
    byte = FieldInfo("b", 2, vector_dimension=4, vector_data_type="byte")
    with pytest.raises(ValueError, match="hnswlib graphs support float vectors only; "):
        build_hnsw(byte, np.zeros((2, 4), np.float32))
    assert build_graph(byte, np.zeros((2, 4), np.int8)).ntotal == 2  # faiss, see test_faiss_graph.py


def test_fields_without_graph_file_have_no_graph(directory: Directory, data: np.ndarray) -> None:
    """Flat fields (index.knn false) and segments below the approximate threshold get no graph; the segment's
    file list, not the data type, says which fields have one."""
    fi = FieldInfo("v", 0, vector_dimension=DIM)
    info = SegmentInfo(name="_0", segment_id=new_segment_id(), max_doc=100, codec="SegStore1")
    state = SegmentWriteState(directory, info, FieldInfos([fi]))
    vw = VECTORS.fields_writer(state)
    vw.add_field(fi, data[:100], np.arange(100, dtype=np.int32))
    vw.finish()
    GRAPHS.fields_writer(state).finish()  # like segment_writer when build_graph() says no
    info.files = sorted(state.files)
    reader = open_graphs(state)
    assert reader.fields() == [] and reader.get("v") is None
    reader.check_integrity()
    # listed in the segment but absent -> corruption, not "no graph"
    info.files = sorted(state.files | {"_0_f0.hnsw"})
    with pytest.raises(CorruptIndexError, match="missing"):
        open_graphs(state).get("v")


def test_flat_index_above_exact_threshold_is_searchable(tmp_path: Any) -> None:
    """Regression: a float field of an ``index.knn: false`` index has no graph; the reader used to expect one
    for every float field and failed searches over > 1000 vectors and ``check_integrity`` alike."""
    import segstore

    rng = np.random.default_rng(4)
    mappings = {"properties": {"v": {"type": "knn_vector", "dimension": 4}}}
    with segstore.create_index(str(tmp_path / "data"), "docs", mappings=mappings,
                               settings={"index.knn": False, "index.translog.durability": "async"}) as w:
        for i in range(1100):
            w.index(str(i), {"v": rng.standard_normal(4).tolist()})
        w.refresh()
        with w.acquire_reader() as reader:
            reader.leaves[0].check_integrity()
            assert reader.leaves[0].graph("v") is None
            assert len(segstore.knn_search(reader, "v", np.ones(4, np.float32), k=3).score_docs) == 3


def test_listed_graph_for_field_without_vectors_is_corrupt(directory: Directory, data: np.ndarray) -> None:
    empty = FieldInfo("e", 0, vector_dimension=DIM)
    state = write_segment(directory, {empty: data[:0]}, max_doc=1)
    state.segment_info.files = sorted(state.files | {"_0_f0.hnsw"})
    with pytest.raises(CorruptIndexError, match="no vector") as ei:
        open_graphs(state)
    assert ei.value.file == "_0_f0.hnsw"


def test_accept_as_bool_mask(directory: Directory, data: np.ndarray) -> None:
    fi = FieldInfo("v", 0, vector_dimension=DIM)
    graph = open_graphs(write_segment(directory, {fi: data[:500]}, max_doc=500)).get("v")
    assert graph is not None
    mask = np.arange(500) % 2 == 1
    by_mask, _ = graph.search(data[:20] + 0.01, k=10, ef=50, accept=mask)
    by_callable, _ = graph.search(data[:20] + 0.01, k=10, ef=50, accept=lambda o: o % 2 == 1)
    assert np.array_equal(by_mask, by_callable) and np.all(by_mask % 2 == 1)
    with pytest.raises(ValueError, match="bool array of shape"):
        graph.search(data[:1], k=1, ef=10, accept=mask[:10])


def test_build_hnsw_for_repair(data: np.ndarray) -> None:
    fi = FieldInfo("v", 0, vector_dimension=DIM, vector_space_type="cosinesimil", attributes={"hnsw.m": "12"})
    index = build_hnsw(fi, data[:200])
    assert (index.space, index.dim, index.M, index.element_count) == ("cosine", DIM, 12, 200)
    labels, _ = index.knn_query(data[:5], k=1)
    assert labels.ravel().tolist() == [0, 1, 2, 3, 4]


def test_writer_abort_and_finish(directory: Directory, data: np.ndarray) -> None:
    fi = FieldInfo("v", 0, vector_dimension=DIM)
    info = SegmentInfo(name="_0", segment_id=new_segment_id(), max_doc=100, codec="SegStore1")
    state = SegmentWriteState(directory, info, FieldInfos([fi]))
    vw = VECTORS.fields_writer(state)
    vw.add_field(fi, data[:100], np.arange(100))
    vw.finish()
    values = VECTORS.fields_reader(SegmentReadState(directory, info, state.field_infos)).get("v")
    assert values is not None
    gw = GRAPHS.fields_writer(state)
    gw.add_field(fi, values)
    gw.abort()
    gw.abort()
    assert sorted(directory.list_all()) == ["_0.vec", "_0.vem"] and "_0_f0.hnsw" not in state.files
    if isinstance(directory, FSDirectory):
        assert directory.list_temp_files() == []
    gw = GRAPHS.fields_writer(state)
    gw.add_field(fi, values)
    assert "_0_f0.hnsw" not in directory.list_all()  # published only by finish()
    gw.finish()
    gw.finish()
    assert state.files == {"_0.vec", "_0.vem", "_0_f0.hnsw"}
    assert "_0_f0.hnsw" in directory.list_all()


# ------------------------------------------------------------------------------------------ corruption

HNSW = "_0_f0.hnsw"


@pytest.fixture
def segment(directory: Directory, data: np.ndarray) -> SegmentWriteState:
    return write_segment(directory, {FieldInfo("v", 0, vector_dimension=DIM): data[:300]}, max_doc=300)


@pytest.mark.parametrize("n", [1, 50])
def test_truncated_graph(segment: SegmentWriteState, n: int, no_hnswlib_load: None) -> None:
    corrupt.truncate(segment.directory, HNSW, n)
    reader = open_graphs(segment)  # graphs are opened lazily
    for call in (lambda: reader.get("v"), reader.check_integrity):
        with pytest.raises(TruncatedFileError) as ei:
            call()
        assert type(ei.value) is TruncatedFileError and ei.value.file == HNSW


@pytest.mark.parametrize("where", ["meta", "blob", "last"])
def test_flipped_graph_byte_never_reaches_hnswlib(segment: SegmentWriteState, where: str,
                                                  no_hnswlib_load: None) -> None:
    size = segment.directory.file_length(HNSW)
    offset = {"meta": 60, "blob": size // 2, "last": size - 17}[where]
    corrupt.flip_byte(segment.directory, HNSW, offset=offset)
    reader = open_graphs(segment)
    with pytest.raises(ChecksumMismatchError) as ei:
        reader.check_integrity()
    assert type(ei.value) is ChecksumMismatchError and ei.value.file == HNSW
    with pytest.raises(ChecksumMismatchError) as ei:
        reader.get("v")
    assert type(ei.value) is ChecksumMismatchError and ei.value.file == HNSW


def _reframe(segment: SegmentWriteState, edit_meta: Any = None, edit_blob: Any = None,
             version: int | None = None) -> None:
    """Rewrite the graph with edited meta/blob and a *valid* CRC: what a bug (not the disk) would write."""
    d = segment.directory
    with FramedInput(d, HNSW, CODEC, VERSION_START, VERSION_CURRENT, None, "f0") as inp:
        unpacker = msgpack.Unpacker()
        unpacker.feed(inp.payload[:4096])
        meta = unpacker.unpack()
        blob = bytearray(inp.payload[unpacker.tell():])
    if edit_meta:
        edit_meta(meta)
    if edit_blob:
        edit_blob(blob)
    other = MemoryDirectory()
    out = other.create_output(HNSW)
    write_header(out, CODEC, VERSION_CURRENT if version is None else version, segment.segment_info.segment_id,
                 "f0")
    out.write(msgpack.packb(meta))
    out.write(bytes(blob))
    write_footer(out)
    out.close()
    corrupt.swap_in(d, HNSW, other)


@pytest.mark.parametrize("edit_meta,edit_blob", [
    (lambda m: m.update(count=299), None),
    (lambda m: m.update(space="ip"), None),
    (lambda m: m.update(dimension=31), None),
    (lambda m: m.update(blob_length=m["blob_length"] + 1), None),
    (lambda m: m.pop("m"), None),
    (lambda m: m.pop("library"), None),  # version 2 requires it
    (lambda m: m.update(library="faiss"), None),  # float fields are hnswlib graphs
    (lambda m: m.update(library="faiss_binary", space="hamming"), None),
    (lambda m: m.update(random_seed=12345), None),
    (None, lambda b: struct.pack_into("<Q", b, 16, 301)),  # hnswlib's cur_element_count
    (None, lambda b: struct.pack_into("<Q", b, 24, 1 << 40)),  # size_data_per_element
    (None, lambda b: b.__delitem__(slice(len(b) - 8, None))),  # blob shorter than meta says
])
def test_crc_valid_but_inconsistent_graph_is_refused(segment: SegmentWriteState, edit_meta: Any, edit_blob: Any,
                                                     no_hnswlib_load: None) -> None:
    _reframe(segment, edit_meta, edit_blob)
    reader = open_graphs(segment)
    reader.check_integrity()  # the CRC is fine ...
    with pytest.raises(CorruptIndexError) as ei:  # ... the content is not
        reader.get("v")
    assert type(ei.value) is CorruptIndexError and ei.value.file == HNSW


def test_unmodified_reframe_still_loads(segment: SegmentWriteState) -> None:
    _reframe(segment)
    graph = open_graphs(segment).get("v")
    assert graph is not None and graph.search(np.zeros(DIM, np.float32), k=3, ef=10)[0].shape == (1, 3)


def test_version_1_graph_without_library_key_still_loads(segment: SegmentWriteState, data: np.ndarray) -> None:
    assert (VERSION_START, VERSION_CURRENT) == (1, 2)
    before = open_graphs(segment).get("v").search(data[:5], k=5, ef=50)  # type: ignore[union-attr]
    _reframe(segment, edit_meta=lambda m: m.pop("library"), version=VERSION_START)
    graph = open_graphs(segment).get("v")
    assert graph is not None
    after = graph.search(data[:5], k=5, ef=50)
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])


def test_version_1_graph_with_library_key_is_refused(segment: SegmentWriteState, no_hnswlib_load: None) -> None:
    _reframe(segment, version=VERSION_START)  # version 1 had no "library": a v1 header with one is not a v1 file
    with pytest.raises(CorruptIndexError, match="not the expected map"):
        open_graphs(segment).get("v")


def test_graph_from_another_segment(segment: SegmentWriteState, data: np.ndarray, no_hnswlib_load: None) -> None:
    other = MemoryDirectory()
    write_segment(other, {FieldInfo("v", 0, vector_dimension=DIM): data[:300]}, max_doc=300)
    corrupt.swap_in(segment.directory, HNSW, other)
    with pytest.raises(SegmentIdMismatchError) as ei:
        open_graphs(segment).get("v")
    assert type(ei.value) is SegmentIdMismatchError and ei.value.file == HNSW


def test_missing_graph_file(segment: SegmentWriteState, no_hnswlib_load: None) -> None:
    corrupt.delete(segment.directory, HNSW)
    with pytest.raises(CorruptIndexError) as ei:
        open_graphs(segment).get("v")
    assert ei.value.file == HNSW


@pytest.mark.parametrize("version,error", [(VERSION_CURRENT + 1, IndexFormatTooNewError),
                                           (VERSION_START - 1, IndexFormatTooOldError)])
def test_graph_header_version(segment: SegmentWriteState, version: int, error: type, no_hnswlib_load: None) -> None:
    raw = bytearray(segment.directory.read_bytes(HNSW))
    pos = 5 + len(CODEC)
    assert struct.unpack_from(">I", raw, pos)[0] == VERSION_CURRENT
    struct.pack_into(">I", raw, pos, version)
    corrupt.overwrite(segment.directory, HNSW, bytes(raw))
    with pytest.raises(error) as ei:
        open_graphs(segment).get("v")
    assert type(ei.value) is error and ei.value.file == HNSW
