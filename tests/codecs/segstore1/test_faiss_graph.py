"""SegStore1HnswGraph faiss graphs (byte and binary fields): faiss's integer arithmetic, recall, raw
distances, the seed Hamming example, filters, exact round trip, memory accounting, threads, and corruption
that must never reach faiss."""

from __future__ import annotations

import struct
import threading
from typing import Any

import faiss as _faiss
import msgpack
import numpy as np
import pytest

from segstore.codec.framing import FramedInput, write_footer, write_header
from segstore.errors import ChecksumMismatchError, CorruptIndexError, TruncatedFileError
from segstore.index.field_infos import FieldInfo
from segstore.store import Directory, MemoryDirectory
from segstore.testing import corrupt
from segstore_codecs.segstore1 import faiss_graph
from segstore_codecs.segstore1.faiss_graph import FaissGraph, faiss_layout
from segstore_codecs.segstore1.graph_format import (
    VERSION_CURRENT,
    VERSION_START,
    SegStore1HnswGraphFormat,
    build_graph,
)
from segstore_codecs.segstore1.vector_values_format import SegStore1VectorValuesFormat
from test_graph_format import open_graphs, write_segment  # one way to write a segment's vectors and graphs

faiss: Any = _faiss  # faiss's bundled stubs miss much of its SWIG API
GRAPHS = SegStore1HnswGraphFormat()
VECTORS = SegStore1VectorValuesFormat()
CODEC = "SegStore1HnswGraph"
HNSW = "_0_f0.hnsw"
N = 5000
BYTE_DIM, BITS = 32, 64
POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def byte_field(space: str = "l2", dim: int = BYTE_DIM, **attrs: str) -> FieldInfo:
    return FieldInfo("v", 0, vector_dimension=dim, vector_data_type="byte", vector_space_type=space,
                     attributes=dict(attrs))


def binary_field(bits: int = BITS, **attrs: str) -> FieldInfo:
    return FieldInfo("v", 0, vector_dimension=bits, vector_data_type="binary", vector_space_type="hamming",
                     attributes=dict(attrs))


def exact(space: str, data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """This format's raw distances (smaller is nearer), computed exactly in float64 / integers."""
    if space == "hamming":
        return POPCOUNT[np.bitwise_xor(queries[:, None, :], data[None, :, :])].sum(-1).astype(np.float64)
    x, q = data.astype(np.float64), queries.astype(np.float64)
    if space == "l2":
        return ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    if space == "innerproduct":
        return 1 - q @ x.T
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    return 1 - qn @ xn.T


def recall_at(k: int, ords: np.ndarray, truth: np.ndarray) -> float:
    """Tie-aware recall@k: a hit counts when its true distance is within the true k-th distance (integer
    distances, Hamming above all, tie a lot; which of the tied ordinals is returned is arbitrary)."""
    kth = np.sort(truth, axis=1)[:, k - 1 : k]
    return float(np.mean((np.take_along_axis(truth, ords, axis=1) <= kth + 1e-9).sum(axis=1) / k))


@pytest.fixture(scope="module")
def int8_data() -> np.ndarray:
    return np.random.default_rng(11).integers(-128, 128, (N, BYTE_DIM), dtype=np.int8)


@pytest.fixture(scope="module")
def bit_data() -> np.ndarray:
    return np.random.default_rng(12).integers(0, 256, (N, BITS // 8), dtype=np.uint8)


@pytest.fixture
def no_faiss_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_a: Any, **_k: Any) -> None:
        pytest.fail("unverified bytes reached faiss.deserialize_index(_binary)")

    monkeypatch.setattr(faiss, "deserialize_index", fail)
    monkeypatch.setattr(faiss, "deserialize_index_binary", fail)


# ------------------------------------------------------------------------------------ faiss itself


@pytest.mark.parametrize("metric", [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT])
def test_sq8_direct_signed_is_exact_integer_arithmetic(metric: int) -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (2000, 64), dtype=np.int8)
    x[0], x[1] = -128, 127  # the extremes of the code range survive
    q = rng.integers(-128, 128, (20, 64), dtype=np.int8)
    index = faiss.IndexHNSWSQ(64, faiss.ScalarQuantizer.QT_8bit_direct_signed, 16, metric)
    index.add(x.astype(np.float32))
    assert np.array_equal(index.reconstruct_n(0, 2000), x.astype(np.float32))  # one exact byte per dimension
    assert faiss.downcast_index(index.storage).code_size == 64
    dist, labels = index.search(q.astype(np.float32), 50, params=faiss.SearchParametersHNSW(efSearch=100))
    xi, qi = x.astype(np.int64), q.astype(np.int64)
    full = ((qi[:, None] - xi[None]) ** 2).sum(-1) if metric == faiss.METRIC_L2 else qi @ xi.T
    assert np.array_equal(dist, np.take_along_axis(full, labels, axis=1).astype(np.float32))


def test_binary_hnsw_is_popcount_of_xor_whatever_the_bit_order(bit_data: np.ndarray) -> None:
    index = faiss.IndexBinaryHNSW(BITS, 16)
    assert index.code_size == BITS // 8
    index.add(bit_data[:2000])
    q = bit_data[2000:2020]
    dist, labels = index.search(q, 20, params=faiss.SearchParametersHNSW(efSearch=100))
    expected = POPCOUNT[np.bitwise_xor(q[:, None, :], bit_data[None, :2000])].sum(-1)
    assert np.array_equal(dist, np.take_along_axis(expected, labels, axis=1))
    # the same vectors packed LSB-first (another bit order) have the same Hamming distances
    relsb = np.packbits(np.unpackbits(bit_data[:2000], axis=1), axis=1, bitorder="little")
    qlsb = np.packbits(np.unpackbits(q, axis=1), axis=1, bitorder="little")
    assert np.array_equal(POPCOUNT[np.bitwise_xor(qlsb[:, None, :], relsb[None])].sum(-1), expected)


# ------------------------------------------------------------------------------ through the format


@pytest.mark.parametrize("space", ["l2", "innerproduct", "cosinesimil"])
def test_byte_recall_and_raw_distances(int8_data: np.ndarray, space: str) -> None:
    state = write_segment(MemoryDirectory(), {byte_field(space): int8_data}, max_doc=N)
    assert state.files == {"_0.vec", "_0.vem", HNSW}
    graph = open_graphs(state).get("v")
    assert isinstance(graph, FaissGraph) and graph.layout.library == "faiss"
    queries = np.random.default_rng(1).integers(-128, 128, (100, BYTE_DIM), dtype=np.int8)
    ords, dists = graph.search(queries, k=10, ef=100)
    assert ords.shape == dists.shape == (100, 10) and ords.dtype == np.int64 and dists.dtype == np.float32
    truth = exact(space, int8_data, queries)
    recall = recall_at(10, ords, truth)
    assert recall >= 0.95, f"recall@10 {recall:.3f} for byte {space}"
    got = np.take_along_axis(truth, ords, axis=1)
    if space == "cosinesimil":
        np.testing.assert_allclose(dists, got, rtol=0, atol=1e-5)
    else:  # integer arithmetic: exact
        assert np.array_equal(dists, got.astype(np.float32))
    assert np.all(np.diff(dists, axis=1) >= -1e-6)  # nearest first


def test_binary_recall_and_raw_distances(tmp_path: Any, bit_data: np.ndarray) -> None:
    from segstore.store import FSDirectory

    state = write_segment(FSDirectory(tmp_path / "dir"), {binary_field(): bit_data}, max_doc=N)
    graph = open_graphs(state).get("v")
    assert isinstance(graph, FaissGraph) and graph.layout.library == "faiss_binary"
    queries = np.random.default_rng(2).integers(0, 256, (100, BITS // 8), dtype=np.uint8)
    ords, dists = graph.search(queries, k=10, ef=100)
    assert ords.shape == dists.shape == (100, 10) and ords.dtype == np.int64 and dists.dtype == np.float32
    truth = exact("hamming", bit_data, queries)
    recall = recall_at(10, ords, truth)
    assert recall >= 0.95, f"recall@10 {recall:.3f} for binary hamming"
    assert np.array_equal(dists, np.take_along_axis(truth, ords, axis=1).astype(np.float32))
    assert np.all(np.diff(dists, axis=1) >= 0)


def test_seed_binary_example(directory: Directory) -> None:
    """codes 7, 10, 15, 99, 80 (8 bits), query 9: Hamming 3, 2, 2, 4, 4 -> nearest are 10 and 15."""
    codes = np.array([[7], [10], [15], [99], [80]], dtype=np.uint8)
    graph = open_graphs(write_segment(directory, {binary_field(8): codes}, max_doc=5)).get("v")
    assert graph is not None
    query = np.array([9], dtype=np.uint8)
    ords, dists = graph.search(query, k=2, ef=10)
    assert sorted(codes[ords[0], 0].tolist()) == [10, 15] and dists.tolist() == [[2.0, 2.0]]
    ords, dists = graph.search(query, k=10, ef=10)  # k > count: k' = count
    assert dists.tolist() == [[2.0, 2.0, 3.0, 4.0, 4.0]] and sorted(ords[0].tolist()) == [0, 1, 2, 3, 4]
    assert ords[0, 2] == 0  # code 7


def test_exact_round_trip(int8_data: np.ndarray, bit_data: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """Search results of the index the writer built equal those of the graph read back from the file."""
    built: list[Any] = []
    original = faiss_graph.build_faiss

    def capture(*a: Any, **k: Any) -> Any:
        built.append(original(*a, **k))
        return built[-1]

    monkeypatch.setattr(faiss_graph, "build_faiss", capture)
    cases = [(byte_field("l2"), int8_data[:1500], int8_data[3000:3050]),
             (byte_field("cosinesimil"), int8_data[:1500], int8_data[3000:3050]),
             (binary_field(), bit_data[:1500], bit_data[3000:3050])]
    for fi, data, queries in cases:
        built.clear()
        loaded = open_graphs(write_segment(MemoryDirectory(), {fi: data}, max_doc=len(data))).get("v")
        assert isinstance(loaded, FaissGraph) and len(built) == 1
        before = FaissGraph(built[0], faiss_layout(fi), "v", fi.vector_dimension, len(data))
        for k, ef in ((10, 64), (1, 16), (50, 50)):
            a, b = before.search(queries, k, ef), loaded.search(queries, k, ef)
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        assert before.memory_bytes() == loaded.memory_bytes()
        assert bytes(faiss_graph.serialize(built[0])) == bytes(faiss_graph.serialize(loaded.index))


def test_filters(directory: Directory, int8_data: np.ndarray) -> None:
    fi = byte_field("l2")
    graph = open_graphs(write_segment(directory, {fi: int8_data[:2000]}, max_doc=2000)).get("v")
    assert graph is not None
    queries = int8_data[:20]
    odd = np.arange(2000) % 2 == 1
    by_mask, _ = graph.search(queries, k=10, ef=64, accept=odd)
    by_callable, _ = graph.search(queries, k=10, ef=64, accept=lambda o: o % 2 == 1)
    assert by_mask.shape == (20, 10) and np.all(by_mask % 2 == 1) and np.array_equal(by_mask, by_callable)
    assert np.array_equal(by_mask[1::2, 0], np.arange(1, 20, 2))  # odd rows find themselves first
    # a tiny filter: answered exactly, k' = number of accepted ordinals, nearest first
    ords, dists = graph.search(queries[:3], k=10, ef=64, accept=lambda o: o in (5, 7, 11))
    assert ords.shape == dists.shape == (3, 3) and ords.dtype == np.int64 and dists.dtype == np.float32
    truth = exact("l2", int8_data[:2000], queries[:3])
    for row in range(3):
        assert ords[row].tolist() == sorted((5, 7, 11), key=lambda o: (truth[row, o], o))
        assert dists[row].tolist() == [truth[row, o] for o in ords[row]]
    ords, dists = graph.search(queries[:2], k=5, ef=64, accept=np.zeros(2000, bool))
    assert ords.shape == (2, 0) and dists.shape == (2, 0)

    def broken(_o: int) -> bool:
        raise RuntimeError("filter bug")

    with pytest.raises(RuntimeError, match="filter bug"):
        graph.search(queries[:2], k=5, ef=64, accept=broken)
    with pytest.raises(ValueError, match="bool array of shape"):
        graph.search(queries[:2], k=5, ef=64, accept=odd[:100])


def test_short_filtered_rows_are_completed_exactly(directory: Directory, int8_data: np.ndarray,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A restrictive filter above max(ef, k) accepted ordinals: faiss may come back with -1 padding; those
    rows are answered exactly, so every row has k real, accepted ordinals."""
    n = 2000
    graph = open_graphs(write_segment(directory, {byte_field("l2"): int8_data[:n]}, max_doc=n)).get("v")
    assert isinstance(graph, FaissGraph)
    allowed = np.zeros(n, bool)
    allowed[np.random.default_rng(5).choice(n, 40, replace=False)] = True
    calls: list[int] = []
    original = FaissGraph._exact

    def counting(self: FaissGraph, q: np.ndarray, k: int, ords: np.ndarray) -> Any:
        calls.append(len(q))
        return original(self, q, k, ords)

    monkeypatch.setattr(FaissGraph, "_exact", counting)
    queries = np.random.default_rng(6).integers(-128, 128, (30, BYTE_DIM), dtype=np.int8)
    ords, dists = graph.search(queries, k=10, ef=10, accept=allowed)
    assert ords.shape == (30, 10) and np.all(allowed[ords]) and np.all(ords >= 0)
    assert calls and sum(calls) <= 30  # some rows came back short and were completed
    truth = exact("l2", int8_data[:n], queries)
    assert np.array_equal(dists, np.take_along_axis(truth, ords, axis=1).astype(np.float32))


def test_small_graph_params_and_query_dtypes(directory: Directory) -> None:
    fi = byte_field("innerproduct", dim=4, **{"hnsw.m": "8", "hnsw.ef_construction": "40"})
    vecs = np.array([[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 3, 0], [0, 0, 0, 4]], dtype=np.int8)
    graph = open_graphs(write_segment(directory, {fi: vecs}, max_doc=4)).get("v")
    assert isinstance(graph, FaissGraph)
    assert (graph.index.hnsw.efConstruction, graph.index.hnsw.nb_neighbors(1)) == (40, 8)
    ords, dists = graph.search(np.array([0, 0, 1, 0], np.int8), k=10, ef=5)
    assert ords.shape == (1, 4) and ords[0, 0] == 2 and dists[0, 0] == 1 - 3
    same = graph.search(np.array([[0.0, 0.0, 1.0, 0.0]], np.float32), k=10, ef=5)  # float-typed query
    assert np.array_equal(same[0], ords)
    with pytest.raises(ValueError, match="queries must have shape"):
        graph.search(np.zeros((1, 5), np.int8), k=1, ef=5)
    bits = binary_field(16)
    bgraph = open_graphs(write_segment(MemoryDirectory(), {bits: np.array([[1, 2], [255, 255]], np.uint8)},
                                       max_doc=2)).get("v")
    assert bgraph is not None
    assert bgraph.search(np.array([1, 2], np.int8), k=1, ef=4)[0].tolist() == [[0]]  # int8 view of the bytes
    with pytest.raises(ValueError, match="packed bytes"):
        bgraph.search(np.array([[1.5, 2]]), k=1, ef=4)


def test_zero_vectors_under_cosine(directory: Directory) -> None:
    vecs = np.array([[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 5, 5], [-3, 0, 0, 0]], dtype=np.int8)
    graph = open_graphs(write_segment(directory, {byte_field("cosinesimil", 4): vecs}, max_doc=4)).get("v")
    assert graph is not None
    ords, dists = graph.search(np.array([0, 0, 2, 2], np.int8), k=4, ef=8)
    assert ords[0, 0] == 2 and abs(dists[0, 0]) < 1e-6
    assert dict(zip(ords[0].tolist(), dists[0].tolist()))[0] == 1.0  # zero vector: cosine 0
    assert np.all(np.isfinite(graph.search(np.zeros(4, np.int8), k=4, ef=8)[1]))


@pytest.mark.parametrize("kind", ["byte", "binary", "byte_cosine"])
def test_memory_bytes_matches_formula_at_20k(kind: str) -> None:
    """vector-semantics.md §7: byte 1.1·(d + 8m), binary 1.1·(d/8 + 8m) bytes per vector (and float-like
    1.1·(4d + 8m) for byte cosine, which keeps float32 unit vectors)."""
    n, m = 20_000, 16
    rng = np.random.default_rng(9)
    fast = {"hnsw.ef_construction": "16"}  # memory depends on m and the (seeded) levels, not on efC
    if kind == "binary":
        fi, d = binary_field(256, **fast), 256
        data = rng.integers(0, 256, (n, 32), dtype=np.uint8)
        formula = 1.1 * (d / 8 + 8 * m)
    else:
        d = 64
        fi = byte_field("cosinesimil" if kind == "byte_cosine" else "l2", d, **fast)
        data = rng.integers(-128, 128, (n, d), dtype=np.int8)
        formula = 1.1 * ((4 * d if kind == "byte_cosine" else d) + 8 * m)
    index = build_graph(fi, data)
    graph = FaissGraph(index, faiss_layout(fi), "v", d, n)
    hnsw = index.hnsw
    width = {"binary": d // 8, "byte": d, "byte_cosine": 4 * d}[kind]
    expected = (n * width + 4 * hnsw.neighbors.size() + 4 * n + 8 * (n + 1)
                + 8 * hnsw.assign_probas.size() + 4 * hnsw.cum_nneighbor_per_level.size())
    assert graph.memory_bytes() == expected
    per_vector = graph.memory_bytes() / n
    assert formula / 1.3 <= per_vector <= formula * 1.3, f"{per_vector:.1f} B/vector vs formula {formula:.1f}"


def test_concurrent_searches_and_thread_settings(directory: Directory, bit_data: np.ndarray) -> None:
    graph = open_graphs(write_segment(directory, {binary_field(): bit_data[:2000]}, max_doc=2000)).get("v")
    assert graph is not None
    queries = bit_data[2000:2100]
    expected = [graph.search(queries[i : i + 10], 10, 32 + i) for i in range(0, 100, 10)]
    before = faiss.omp_get_max_threads()
    results: dict[int, Any] = {}

    def run(i: int) -> None:
        for _ in range(5):
            results[i] = graph.search(queries[i : i + 10], 10, 32 + i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(0, 100, 10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for j, i in enumerate(range(0, 100, 10)):
        assert np.array_equal(results[i][0], expected[j][0]) and np.array_equal(results[i][1], expected[j][1])
    assert faiss.omp_get_max_threads() == before  # searches restore this thread's OpenMP setting


def test_lazy_single_load_and_empty_field(directory: Directory, int8_data: np.ndarray,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    empty = FieldInfo("e", 0, vector_dimension=BYTE_DIM, vector_data_type="byte")
    full = FieldInfo("v", 1, vector_dimension=BYTE_DIM, vector_data_type="byte")
    state = write_segment(directory, {empty: int8_data[:0], full: int8_data[:300]}, max_doc=300)
    assert state.files == {"_0.vec", "_0.vem", "_0_f1.hnsw"}
    original = faiss.deserialize_index
    calls: list[int] = []

    def counting(*a: Any, **k: Any) -> Any:
        calls.append(1)
        return original(*a, **k)

    monkeypatch.setattr(faiss, "deserialize_index", counting)
    reader = open_graphs(state)
    assert reader.fields() == ["v"] and reader.get("e") is None and calls == []
    graphs: list[Any] = []
    threads = [threading.Thread(target=lambda: graphs.append(reader.get("v"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(graphs) == 6 and all(g is graphs[0] for g in graphs)
    reader.check_integrity()
    reader.close()


# ------------------------------------------------------------------------------------------ corruption


def _small_segment(kind: str, directory: Directory, int8_data: np.ndarray, bit_data: np.ndarray) -> Any:
    if kind == "byte":
        return write_segment(directory, {byte_field("l2"): int8_data[:300]}, max_doc=300)
    return write_segment(directory, {binary_field(): bit_data[:300]}, max_doc=300)


@pytest.fixture(params=["byte", "binary"])
def segment(request: pytest.FixtureRequest, directory: Directory, int8_data: np.ndarray,
            bit_data: np.ndarray) -> Any:
    """A small byte or binary graph, in each Directory implementation."""
    return _small_segment(request.param, directory, int8_data, bit_data)


@pytest.fixture(params=["byte", "binary"])
def mem_segment(request: pytest.FixtureRequest, int8_data: np.ndarray, bit_data: np.ndarray) -> Any:
    """The same in a MemoryDirectory, for the many content edits (the Directory does not matter there)."""
    return _small_segment(request.param, MemoryDirectory(), int8_data, bit_data)


def _read(segment: Any) -> tuple[dict[str, Any], bytearray]:
    with FramedInput(segment.directory, HNSW, CODEC, VERSION_START, VERSION_CURRENT, None, "f0") as inp:
        unpacker = msgpack.Unpacker()
        unpacker.feed(inp.payload[:4096])
        meta = unpacker.unpack()
        return meta, bytearray(inp.payload[unpacker.tell():])


def _reframe(segment: Any, edit_meta: Any = None, edit_blob: Any = None) -> None:
    """Rewrite the graph with edited meta/blob and a *valid* CRC: what a bug (not the disk) would write."""
    meta, blob = _read(segment)
    if edit_meta:
        edit_meta(meta)
    if edit_blob:
        edit_blob(blob, _sections(blob))
    other = MemoryDirectory()
    out = other.create_output(HNSW)
    write_header(out, CODEC, VERSION_CURRENT, segment.segment_info.segment_id, "f0")
    out.write(msgpack.packb(meta))
    out.write(bytes(blob))
    write_footer(out)
    out.close()
    corrupt.swap_in(segment.directory, HNSW, other)


def _sections(blob: bytearray) -> dict[str, int]:
    """Byte offsets of the faiss blob's parts (faiss write_index layout), for targeted edits."""
    binary = bytes(blob[:4]) == b"IBHf"
    pos = 4 + (21 if binary else 33)  # fourcc + index header
    out = {"ntotal": 4 + (8 if binary else 4)}
    for name, item in (("probas", 8), ("cum", 4), ("levels", 4), ("offsets", 8), ("neighbors", 4)):
        (size,) = struct.unpack_from("<Q", blob, pos)
        out[name], out[name + "_size"] = pos + 8, size
        pos += 8 + size * item
    out["entry_point"], out["storage"] = pos, pos + 20
    return out


def _upper_level_to_level0_node(blob: bytearray, s: dict[str, int]) -> None:
    """Point an upper-level neighbour slot at a node that only lives on level 0."""
    n = s["levels_size"]
    levels = np.frombuffer(bytes(blob[s["levels"] : s["levels"] + 4 * n]), "<i4")
    offsets = np.frombuffer(bytes(blob[s["offsets"] : s["offsets"] + 8 * (n + 1)]), "<u8")
    cum1 = struct.unpack_from("<i", blob, s["cum"] + 4)[0]
    node = int(np.flatnonzero(levels >= 2)[0])
    struct.pack_into("<i", blob, s["neighbors"] + 4 * (int(offsets[node]) + cum1), int(np.argmin(levels)))


@pytest.mark.parametrize("n", [1, 50])
def test_truncated_graph(segment: Any, n: int, no_faiss_load: None) -> None:
    corrupt.truncate(segment.directory, HNSW, n)
    reader = open_graphs(segment)
    for call in (lambda: reader.get("v"), reader.check_integrity):
        with pytest.raises(TruncatedFileError) as ei:
            call()
        assert type(ei.value) is TruncatedFileError and ei.value.file == HNSW


@pytest.mark.parametrize("where", ["meta", "blob", "last"])
def test_flipped_graph_byte_never_reaches_faiss(segment: Any, where: str, no_faiss_load: None) -> None:
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


@pytest.mark.parametrize("edit_meta,edit_blob", [
    (lambda m: m.update(count=299), None),
    (lambda m: m.update(library="hnswlib"), None),
    (lambda m: m.update(space="ip"), None),
    (lambda m: m.update(dimension=m["dimension"] + 8), None),
    (lambda m: m.update(m=12), None),
    (lambda m: m.update(ef_construction=101), None),
    (lambda m: m.update(random_seed=100), None),
    (lambda m: m.update(blob_length=m["blob_length"] + 1), None),
    (lambda m: m.pop("library"), None),
    (None, lambda b, s: b.__setitem__(slice(0, 4), b"IHNf")),  # another index type
    (None, lambda b, s: struct.pack_into("<q", b, s["ntotal"], 301)),
    (None, lambda b, s: struct.pack_into("<Q", b, s["neighbors"] - 8, 1 << 39)),  # absurd vector length
    (None, lambda b, s: struct.pack_into("<i", b, s["neighbors"], 300)),  # neighbour id out of range
    (None, lambda b, s: struct.pack_into("<i", b, s["neighbors"], -7)),
    (None, lambda b, s: struct.pack_into("<Q", b, s["offsets"] + 8, 31)),  # offsets vs levels
    (None, lambda b, s: struct.pack_into("<i", b, s["levels"], 40)),  # level beyond the table
    (None, lambda b, s: struct.pack_into("<i", b, s["entry_point"], 300)),
    (None, lambda b, s: struct.pack_into("<i", b, s["entry_point"] + 4, 9)),  # max_level
    (None, _upper_level_to_level0_node),
    (None, lambda b, s: struct.pack_into("<i", b, s["cum"] + 4, 30)),  # per-level table vs m
    (None, lambda b, s: b.__setitem__(slice(s["storage"], s["storage"] + 4), b"IxF2")),
    (None, lambda b, s: b.extend(b"\0")),  # trailing bytes
    (None, lambda b, s: b.__delitem__(slice(len(b) - 8, None))),  # blob shorter than meta says
])
def test_crc_valid_but_inconsistent_graph_is_refused(mem_segment: Any, edit_meta: Any, edit_blob: Any,
                                                     no_faiss_load: None) -> None:
    segment = mem_segment
    def fix_length(m: dict[str, Any]) -> None:  # keep blob_length honest when only the blob is edited
        if edit_meta:
            edit_meta(m)

    if edit_blob is not None:
        meta, blob = _read(segment)
        sections = _sections(blob)
        edit_blob(blob, sections)
        delta = len(blob) - meta["blob_length"]
        _reframe(segment, lambda m: m.update(blob_length=m["blob_length"] + delta), edit_blob)
    else:
        _reframe(segment, fix_length)
    reader = open_graphs(segment)
    reader.check_integrity()  # the CRC is fine ...
    with pytest.raises(CorruptIndexError) as ei:  # ... the content is not
        reader.get("v")
    assert type(ei.value) is CorruptIndexError and ei.value.file == HNSW


def test_sq_qtype_edit_is_refused(directory: Directory, int8_data: np.ndarray, no_faiss_load: None) -> None:
    segment = write_segment(directory, {byte_field("innerproduct"): int8_data[:200]}, max_doc=200)

    def edit(b: bytearray, s: dict[str, int]) -> None:
        struct.pack_into("<i", b, s["storage"] + 4 + 33, int(faiss.ScalarQuantizer.QT_8bit))  # qtype

    _reframe(segment, None, edit)
    with pytest.raises(CorruptIndexError, match="qtype"):
        open_graphs(segment).get("v")


def test_unmodified_reframe_still_loads(segment: Any) -> None:
    _reframe(segment)
    graph = open_graphs(segment).get("v")
    assert graph is not None
    width = graph.dimension // 8 if graph.layout.library == "faiss_binary" else graph.dimension
    assert graph.search(np.zeros((1, width), np.uint8 if width != graph.dimension else np.int8),
                        k=3, ef=10)[0].shape == (1, 3)


def test_faiss_refusal_becomes_corrupt_index_error(segment: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("Error in faiss::read_index: simulated")

    monkeypatch.setattr(faiss, "deserialize_index", refuse)
    monkeypatch.setattr(faiss, "deserialize_index_binary", refuse)
    with pytest.raises(CorruptIndexError, match="faiss refused graph") as ei:
        open_graphs(segment).get("v")
    assert ei.value.file == HNSW


# ------------------------------------------------------------------------------------------ end to end


def test_byte_and_binary_knn_index_searches_through_faiss_graphs(tmp_path: Any) -> None:
    import segstore
    from segstore.search.similarity import scores

    rng = np.random.default_rng(21)
    n = 1500  # above EXACT_SEARCH_MAX_VECTORS: the graph is used
    ints, bits = rng.integers(-128, 128, (n, 16)), rng.integers(-128, 128, (n, 8))
    mappings = {"properties": {"v": {"type": "knn_vector", "dimension": 16, "data_type": "byte"},
                               "b": {"type": "knn_vector", "dimension": 64, "data_type": "binary"}}}
    with segstore.create_index(str(tmp_path / "data"), "docs", mappings=mappings,
                               settings={"index.knn": True, "index.translog.durability": "async"}) as w:
        for i in range(n):
            w.index(str(i), {"v": ints[i].tolist(), "b": bits[i].tolist()})
        w.refresh()
        with w.acquire_reader() as reader:
            leaf = reader.leaves[0]
            assert isinstance(leaf.graph("v"), FaissGraph) and isinstance(leaf.graph("b"), FaissGraph)
            leaf.check_integrity()
            for field, data, space, q in (("v", ints.astype(np.int8), "l2", ints[7].astype(np.int8)),
                                          ("b", bits.astype(np.int8).view(np.uint8), "hamming",
                                           bits[7].astype(np.int8).view(np.uint8))):
                top = segstore.knn_search(reader, field, q, k=10)
                expected = np.sort(scores(space, data, q))[::-1][:10]
                got = np.array([sd.score for sd in top.score_docs], np.float32)
                assert top.score_docs[0].doc == 7 and np.allclose(got, expected, rtol=1e-6)
