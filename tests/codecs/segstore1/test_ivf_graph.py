"""SegStore1IvfGraph: IVF graphs built from a trained model (flat, SQ fp16, byte SQ8 direct, binary), raw
distances, nprobes, filters, merges by inverted-list concatenation, memory accounting, and corruption that
must never reach faiss."""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack
import numpy as np
import pytest
from segstore_codecs.segstore1 import ivf_graph
from segstore_codecs.segstore1.graph_format import SegStore1HnswGraphFormat
from segstore_codecs.segstore1.ivf_graph import IvfGraph, IvfModel, merge_inverted_lists
from segstore_codecs.segstore1.vector_values_format import SegStore1VectorValuesFormat

from segstore.errors import CorruptIndexError
from segstore.index.field_infos import FieldInfo, FieldInfos
from segstore.index.segment_info import SegmentInfo, new_segment_id
from segstore.index.write_state import SegmentReadState, SegmentWriteState
from segstore.models.training import TrainRequest, train_ivf
from segstore.store import Directory, MemoryDirectory
from segstore.testing import corrupt

GRAPHS = SegStore1HnswGraphFormat()
VECTORS = SegStore1VectorValuesFormat()
POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def _req(dim: int, data_type: str, space: str, nlist: int, encoder: str | None = None) -> TrainRequest:
    from segstore.mapping.method_component import Component

    enc = Component(encoder, {}) if encoder else None
    params: dict[str, Any] = {"nlist": nlist, "nprobes": 1}
    if enc:
        params["encoder"] = enc
    return TrainRequest("m", "i", "f", dim, "", data_type, space, "faiss", "ivf", params, {}, enc, None, None)


def trained(dim: int, data_type: str, space: str, nlist: int, data: np.ndarray, encoder: str | None = None
            ) -> IvfModel:
    model = train_ivf(_req(dim, data_type, space, nlist, encoder), data)
    blob = model.to_blob()
    model = IvfModel.from_blob(blob, binary=data_type == "binary", normalize=space == "cosinesimil")
    assert model.sha256 == hashlib.sha256(blob).hexdigest()
    ivf_graph.register_model(model)
    return model


def field_of(model: IvfModel, data_type: str, space: str, nprobes: int = 1, number: int = 0) -> FieldInfo:
    return FieldInfo("v", number, model.dimension, data_type, space,
                     {"knn": "true", "model_id": "m", "engine": "faiss", "method": "ivf",
                      "ivf.nlist": str(model.nlist), "ivf.nprobes": str(nprobes), "ivf.model_sha256": model.sha256})


def write_segment(directory: Directory, fi: FieldInfo, vecs: np.ndarray, name: str = "_0") -> SegmentReadState:
    info = SegmentInfo(name=name, segment_id=new_segment_id(), max_doc=len(vecs), codec="SegStore1")
    state = SegmentWriteState(directory, info, FieldInfos([fi]))
    vw = VECTORS.fields_writer(state)
    vw.add_field(fi, vecs, np.arange(len(vecs), dtype=np.int32))
    vw.finish()
    reader = VECTORS.fields_reader(SegmentReadState(directory, info, state.field_infos))
    gw = GRAPHS.fields_writer(state)
    gw.add_field(fi, reader.get(fi.name))
    gw.finish()
    info.files = sorted(state.files)
    return SegmentReadState(directory, info, state.field_infos)


def load(state: SegmentReadState, field: str = "v") -> Any:
    return GRAPHS.fields_reader(state).get(field)


def rng_data(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(16, d)).astype(np.float32) * 4
    return (centers[rng.integers(0, 16, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("space", ["l2", "innerproduct", "cosinesimil"])
def test_float_flat_exact_with_all_lists(space: str) -> None:
    data = rng_data(2000, 16)
    if space == "cosinesimil":
        data = data / np.linalg.norm(data, axis=1, keepdims=True)
    model = trained(16, "float", space, 8, data)
    state = write_segment(MemoryDirectory(), field_of(model, "float", space), data)
    graph = load(state)
    assert isinstance(graph, IvfGraph) and graph.count == 2000
    q = data[:5] + 0.01
    ords, dists = graph.with_nprobes(8).search(q, 10, 1)
    if space == "l2":
        exact = ((q[:, None, :] - data[None]) ** 2).sum(-1)
    else:
        exact = 1 - q @ data.T if space == "innerproduct" else 1 - (q / np.linalg.norm(q, axis=1, keepdims=True)) @ data.T
    want = np.argsort(exact, axis=1, kind="stable")[:, :10]
    assert (np.sort(ords, axis=1) == np.sort(want, axis=1)).mean() > 0.99
    np.testing.assert_allclose(dists, np.take_along_axis(exact, ords, 1), rtol=1e-4, atol=1e-3)


def test_nprobes_recall_grows_and_default_comes_from_meta() -> None:
    data = rng_data(4000, 16, seed=1)
    model = trained(16, "float", "l2", 32, data)
    graph = load(write_segment(MemoryDirectory(), field_of(model, "float", "l2", nprobes=2), data))
    assert graph.nprobes == 2
    q = rng_data(50, 16, seed=2)
    truth = np.argsort(((q[:, None, :] - data[None]) ** 2).sum(-1), axis=1)[:, :10]

    def recall(g: Any) -> float:
        ords, _ = g.search(q, 10, 1)
        return float(np.mean([len(set(o) & set(t)) / 10 for o, t in zip(ords, truth)]))

    r1, r2, r32 = recall(graph.with_nprobes(1)), recall(graph), recall(graph.with_nprobes(32))
    assert r1 <= r2 <= r32 and r32 > 0.99 and r1 < r32
    assert graph.with_nprobes(None) is graph
    assert graph.search(q[:1], 10, 1, nprobes=32)[0].shape == (1, 10)


def test_sq_fp16_and_memory() -> None:
    data = rng_data(3000, 32, seed=3)
    model = trained(32, "float", "l2", 16, data, encoder="sq")
    assert model.kind == "sq_fp16" and model.by_residual
    graph = load(write_segment(MemoryDirectory(), field_of(model, "float", "l2"), data))
    ords, d = graph.with_nprobes(16).search(data[:3], 1, 1)
    assert list(ords[:, 0]) == [0, 1, 2] and float(d.max()) < 1e-2
    # codes: 2 bytes/dim; ids: 8 bytes; centroids: 16 x 32 float32
    assert graph.memory_bytes() >= 3000 * (64 + 8) + 16 * 32 * 4
    assert graph.memory_bytes() < 3000 * (64 + 8) + 16 * 32 * 4 + 16 * 64


def test_byte_sq8_direct_is_exact() -> None:
    rng = np.random.default_rng(4)
    data = rng.integers(-128, 128, (1500, 8)).astype(np.int8)
    model = trained(8, "byte", "l2", 4, data.astype(np.float32))
    assert model.kind == "sq8_direct" and not model.by_residual
    graph = load(write_segment(MemoryDirectory(), field_of(model, "byte", "l2"), data))
    q = data[:4].astype(np.float32) + 1
    ords, dists = graph.with_nprobes(4).search(q, 5, 1)
    exact = ((q[:, None, :] - data[None].astype(np.float32)) ** 2).sum(-1)
    np.testing.assert_array_equal(dists, np.take_along_axis(exact, ords, 1))
    np.testing.assert_array_equal(dists[:, 0], np.sort(exact, axis=1)[:, 0])
    assert graph.memory_bytes() >= 1500 * (8 + 8)


def test_binary_seed_walkthrough_graph_level() -> None:
    """The seed's binary IVF example through the graph itself: 40 training codes, nlist 16, nprobes 1."""
    train = np.arange(1, 41, dtype=np.uint8)[:, None]
    model = trained(8, "binary", "hamming", 16, train)
    docs = np.array([[7], [10], [15], [99], [80]], dtype=np.uint8)
    graph = load(write_segment(MemoryDirectory(), field_of(model, "binary", "hamming"), docs))
    # faiss's binary k-means puts [8] in a list of its own (centroid 00001000): with nprobes 1 the graph
    # finds nothing; the REST walkthrough answers from segstore's exact path for small segments.
    ords, dists = graph.search(np.array([[8]], dtype=np.uint8), 2, 1)
    assert ords.shape == (1, 0)
    ords, dists = graph.with_nprobes(16).search(np.array([[8]], dtype=np.uint8), 5, 1)
    assert dists[0].tolist() == [1.0, 3.0, 3.0, 4.0, 5.0]
    assert int(ords[0, 0]) == 1 and sorted(ords[0, 1:3].tolist()) == [2, 4]  # [10]; then [15] and [80]


def test_binary_filtered_search_scans_probed_lists() -> None:
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, (2000, 4), dtype=np.uint8)
    model = trained(32, "binary", "hamming", 8, data)
    graph = load(write_segment(MemoryDirectory(), field_of(model, "binary", "hamming"), data)).with_nprobes(8)
    mask = np.zeros(2000, bool)
    mask[::3] = True
    ords, dists = graph.search(data[:2], 10, 1, accept=mask)
    assert mask[ords].all()
    exact = POPCOUNT[np.bitwise_xor(data[:2, None, :], data[None, mask])].sum(-1)
    np.testing.assert_array_equal(dists, np.sort(exact, axis=1)[:, :10])


def test_float_filter_uses_selector() -> None:
    data = rng_data(3000, 8, seed=6)
    model = trained(8, "float", "l2", 8, data)
    graph = load(write_segment(MemoryDirectory(), field_of(model, "float", "l2"), data)).with_nprobes(8)
    mask = np.zeros(3000, bool)
    mask[1::2] = True
    ords, _ = graph.search(data[:3], 7, 1, accept=mask)
    assert ords.shape == (3, 7) and mask[ords].all()
    ords, _ = graph.search(data[:1], 7, 1, accept=np.zeros(3000, bool))
    assert ords.shape == (1, 0)


def test_nprobes_one_may_return_fewer_than_k() -> None:
    data = rng_data(1200, 8, seed=7)
    model = trained(8, "float", "l2", 64, data)
    graph = load(write_segment(MemoryDirectory(), field_of(model, "float", "l2"), data))
    ords, _ = graph.search(data[:1], 1000, 1)
    assert 0 < ords.shape[1] < 1000 and (ords >= 0).all()


def test_merge_concatenates_lists_like_a_rebuild() -> None:
    a, b = rng_data(1500, 16, seed=8), rng_data(1000, 16, seed=9)
    model = trained(16, "float", "l2", 16, np.concatenate([a, b]))
    fi = field_of(model, "float", "l2")
    ga = load(write_segment(MemoryDirectory(), fi, a))
    gb = load(write_segment(MemoryDirectory(), fi, b))
    keep_a = np.ones(1500, bool)
    keep_a[::5] = False
    keep_b = np.ones(1000, bool)
    keep_b[:10] = False
    merged = merge_inverted_lists([(ga.inverted_lists(), keep_a), (gb.inverted_lists(), keep_b)], 16)
    rebuilt = ivf_graph.build_inverted_lists(model, np.concatenate([a[keep_a], b[keep_b]]))
    np.testing.assert_array_equal(merged.sizes, rebuilt.sizes)
    for lists in (merged, rebuilt):
        order = np.lexsort((lists.ids, lists.list_of_entries()))
        lists.ids, lists.codes = lists.ids[order], lists.codes[order]
    np.testing.assert_array_equal(merged.ids, rebuilt.ids)
    np.testing.assert_array_equal(merged.codes, rebuilt.codes)


def test_graph_writer_merge_field_writes_merged_lists() -> None:
    a, b = rng_data(800, 8, seed=10), rng_data(700, 8, seed=11)
    model = trained(8, "float", "l2", 8, np.concatenate([a, b]))
    fi = field_of(model, "float", "l2")
    ga, gb = load(write_segment(MemoryDirectory(), fi, a)), load(write_segment(MemoryDirectory(), fi, b))
    keep_a, keep_b = np.arange(800) % 2 == 0, np.ones(700, bool)
    merged_rows = np.concatenate([a[keep_a], b])
    d = MemoryDirectory()
    info = SegmentInfo(name="_2", segment_id=new_segment_id(), max_doc=len(merged_rows), codec="SegStore1")
    state = SegmentWriteState(d, info, FieldInfos([fi]))
    vw = VECTORS.fields_writer(state)
    vw.add_field(fi, merged_rows, np.arange(len(merged_rows), dtype=np.int32))
    vw.finish()
    values = VECTORS.fields_reader(SegmentReadState(d, info, state.field_infos)).get("v")
    gw = GRAPHS.fields_writer(state)
    gw.merge_field(fi, values, [(ga, keep_a), (gb, keep_b)])
    gw.finish()
    info.files = sorted(state.files)
    g = load(SegmentReadState(d, info, state.field_infos)).with_nprobes(8)
    ords, dists = g.search(merged_rows[:20], 1, 1)
    assert list(ords[:, 0]) == list(range(20)) and float(dists.max()) < 1e-5


def test_missing_model_is_a_clear_error() -> None:
    fi = FieldInfo("v", 0, 4, "float", "l2", {"knn": "true", "model_id": "nope", "ivf.model_sha256": "00"})
    with pytest.raises(ValueError, match="not loaded in this process"):
        write_segment(MemoryDirectory(), fi, np.zeros((3, 4), np.float32))


def _payload_state(model: IvfModel) -> tuple[MemoryDirectory, SegmentReadState, str]:
    data = rng_data(500, 8, seed=12)
    d = MemoryDirectory()
    state = write_segment(d, field_of(model, "float", "l2"), data)
    name = next(f for f in state.segment_info.files if f.endswith(".ivf"))
    return d, state, name


def test_corruption_is_detected_before_faiss() -> None:
    model = trained(8, "float", "l2", 4, rng_data(500, 8, seed=12))
    d, state, name = _payload_state(model)
    corrupt.flip_byte(d, name, d.file_length(name) // 2)
    with pytest.raises(CorruptIndexError):
        load(state)


def test_truncated_file_is_detected() -> None:
    model = trained(8, "float", "l2", 4, rng_data(500, 8, seed=12))
    d, state, name = _payload_state(model)
    corrupt.truncate(d, name, 5)
    with pytest.raises(CorruptIndexError):
        load(state)


def _rewrite(meta_change: dict[str, Any] | None = None, ids_swap: bool = False, sizes_bump: bool = False
             ) -> None:
    """Write a CRC-valid file whose content is inconsistent; the reader must refuse it."""
    model = trained(8, "float", "l2", 4, rng_data(500, 8, seed=12))
    fi = field_of(model, "float", "l2")
    lists = ivf_graph.build_inverted_lists(model, rng_data(500, 8, seed=12))
    if ids_swap:
        lists.ids = lists.ids.copy()
        lists.ids[0] = lists.ids[1]
    if sizes_bump:
        lists.sizes = lists.sizes.copy()
        lists.sizes[0] += 1  # sizes no longer sum to the count
    d = MemoryDirectory()
    out = d.create_output("_0_f0.ivf")
    from segstore.codec.framing import write_footer, write_header

    meta = {"kind": model.kind, "metric": model.metric, "dimension": 8, "nlist": 4, "code_size": 32,
            "count": 500, "by_residual": False, "normalize": False, "nprobes": 1, "model_id": "m",
            "model_sha256": model.sha256, **(meta_change or {})}
    sid = new_segment_id()
    write_header(out, ivf_graph.CODEC_NAME, 1, sid, "f0")
    for part in (msgpack.packb(meta), model.centroids.astype("<f4").tobytes(), lists.sizes.astype("<u8").tobytes(),
                 lists.ids.astype("<i4").tobytes(), lists.codes.tobytes()):
        out.write(part)
    write_footer(out)
    out.close()
    vecs = rng_data(500, 8, seed=12)
    info = SegmentInfo(name="_0", segment_id=sid, max_doc=500, codec="SegStore1")
    state = SegmentWriteState(d, info, FieldInfos([fi]))
    vw = VECTORS.fields_writer(state)
    vw.add_field(fi, vecs, np.arange(500, dtype=np.int32))
    vw.finish()
    info.files = sorted(state.files | {"_0_f0.ivf"})
    with pytest.raises(CorruptIndexError):
        load(SegmentReadState(d, info, state.field_infos))


@pytest.mark.parametrize("change", [
    {"count": 499}, {"dimension": 16}, {"kind": "binary"}, {"metric": "ip"}, {"nlist": 5}, {"code_size": 31},
    {"nprobes": 0}, {"model_id": "other"}, {"by_residual": True}, {"extra": 1},
])
def test_inconsistent_meta_is_refused(change: dict[str, Any]) -> None:
    _rewrite(change)


def test_ids_must_be_a_permutation() -> None:
    _rewrite(ids_swap=True)


def test_list_sizes_must_match() -> None:
    _rewrite(sizes_bump=True)
