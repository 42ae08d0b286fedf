"""End-to-end kNN search: exact scores per space type, equality with brute force, graph path versus exact
path, deletes, k beyond the live documents, and recall on real embeddings (``minilm-384``).

Scores are OpenSearch ``_score`` values (vector-semantics.md §2.1) computed in float32 and shown as the
shortest decimal of the float32 (``1/(1+8)`` -> ``0.11111111``).
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import pytest

import segstore
import segstore.search.knn_query as knn_query
from segstore.errors import MapperParsingError
from segstore.index.operations import DeleteOp, IndexOp

DTYPES = {"float": np.float32, "byte": np.int8, "binary": np.uint8}


def create(tmp_path: Any, spec: dict[str, Any], knn: bool = True, name: str = "s",
           extra_settings: dict[str, Any] | None = None) -> segstore.IndexWriter:
    settings: dict[str, Any] = {"index.knn": knn} if knn else {}
    settings.update(extra_settings or {})
    return segstore.create_index(str(tmp_path / name), name, settings=settings,
                                 mappings={"properties": {"v": {"type": "knn_vector", **spec}}})


def hits(reader: segstore.DirectoryReader, top: segstore.TopDocs) -> list[tuple[str, float]]:
    return [(reader.leaves[sd.leaf].stored_document(sd.doc)["_id"], sd.score) for sd in top.score_docs]


def search(w: segstore.IndexWriter, query: list[float] | np.ndarray, k: int = 10,
           dtype: Any = np.float32, **kw: Any) -> list[tuple[str, float]]:
    with w.acquire_reader() as reader:
        return hits(reader, segstore.knn_search(reader, "v", np.asarray(query, dtype), k, **kw))


def shortest(x: np.float32) -> float:
    """The float64 of the shortest decimal that round-trips the float32 ``x`` (numpy's str is exactly that)."""
    return float(str(np.float32(x)))


# ----------------------------------------------------------------------------------- exact score values


@pytest.mark.parametrize("space, doc, query, expected", [
    ("l2", [1, 2], [3, 4], 0.11111111),                 # d = 8 -> 1/9
    ("l2", [1, 2], [1, 2], 1.0),
    ("l2", [0.5, -0.5], [0, 0], 0.6666667),             # d = 0.5 -> 1/1.5
    ("cosinesimil", [3, 4], [1, 0], 0.8),               # cos = 0.6 -> (1 + 0.6) / 2
    ("cosinesimil", [1, 0], [1, 1], 0.8535534),         # cos = 0.70710677
    ("cosinesimil", [1, 0], [-1, 0], 0.0),              # cos = -1 -> 0
    ("cosinesimil", [2, 0], [0, 5], 0.5),               # orthogonal
    ("innerproduct", [1, 2], [3, 4], 12.0),             # p = 11 -> p + 1
    ("innerproduct", [1, 2], [-3, -1], 0.16666667),     # p = -5 -> 1 / (1 - p)
    ("innerproduct", [1, 2], [2, -1], 1.0),             # p = 0
    ("innerproduct", [0.5, 0.25], [-0.5, 0.5], 0.8888889),  # p = -0.125 -> 1/1.125
])
def test_exact_scores_knn_index(tmp_path: Any, space: str, doc: list[float], query: list[float],
                                expected: float) -> None:
    w = create(tmp_path, {"dimension": 2, "space_type": space})
    w.index("d", {"v": doc})
    w.refresh()
    assert search(w, query) == [("d", expected)]
    w.close()


@pytest.mark.parametrize("spec, doc, query, expected", [
    ({"space_type": "l1"}, [1, 2], [3, 5], 0.16666667),        # d = 5
    ({"space_type": "linf"}, [1, 2], [3, 5], 0.25),            # d = 3
    ({"space_type": "l2"}, [1, 2], [3, 4], 0.11111111),
    ({"data_type": "byte"}, [1, 2], [3, 4], 0.11111111),
    ({"data_type": "byte", "space_type": "innerproduct"}, [-1, 2], [3, -4], 0.083333336),  # p = -11 -> 1/12
])
def test_exact_scores_flat_index(tmp_path: Any, spec: dict[str, Any], doc: list[float], query: list[float],
                                 expected: float) -> None:
    w = create(tmp_path, {"dimension": 2, **spec}, knn=False)
    w.index("d", {"v": doc})
    w.refresh()
    dtype = np.int8 if spec.get("data_type") == "byte" else np.float32
    assert search(w, query, dtype=dtype) == [("d", expected)]
    w.close()


def test_hamming_scores_flat_binary(tmp_path: Any) -> None:
    w = create(tmp_path, {"dimension": 16, "data_type": "binary"}, knn=False)
    w.index("a", {"v": [15, 0]})    # 0b00001111 0b00000000
    w.index("b", {"v": [-1, -1]})   # all 16 bits set
    w.refresh()
    assert search(w, [0, 0], dtype=np.uint8) == [("a", 0.2), ("b", 0.05882353)]  # 1/(1+4), 1/(1+16)
    w.close()


# Regression: byte/binary fields in an index.knn index used to make the first refresh fail (the hnswlib graph
# writer only takes float vectors), closing the writer as tragic and poisoning the translog.
@pytest.mark.parametrize("spec, query, dtype", [
    ({"dimension": 2, "data_type": "byte"}, [3, 4], np.int8),
    ({"dimension": 16, "data_type": "binary"}, [0, 0], np.uint8),
])
def test_byte_and_binary_vectors_in_a_knn_index(tmp_path: Any, spec: dict[str, Any], query: list[int],
                                                dtype: Any) -> None:
    w = create(tmp_path, spec)
    w.index("d", {"v": [1, 2]} if spec["data_type"] == "byte" else {"v": [15, 0]})
    w.refresh()
    assert search(w, query, dtype=dtype) == [("d", 0.11111111 if spec["data_type"] == "byte" else 0.2)]
    w.close()


@pytest.mark.parametrize("space", ["l1", "linf"])
def test_unsupported_space_is_rejected_at_mapping_time(tmp_path: Any, space: str) -> None:
    """Regression: l1/linf with the faiss engine used to be accepted, and the first refresh then failed in the
    graph writer (tragic close; the translog replayed the docs into the same failure on every reopen)."""
    with pytest.raises(MapperParsingError) as ei:
        create(tmp_path, {"dimension": 2, "space_type": space})
    assert ei.value.message == ('Failed to parse mapping [_doc]: Validation Failed: 1: "hnsw" with "faiss" '
                                f'configuration does not support space type: "{space}".;')
    assert not os.path.exists(tmp_path / "s" / "indices")


def test_vector_inside_an_array_of_objects_is_searchable(tmp_path: Any) -> None:
    w = segstore.create_index(str(tmp_path / "o"), "o", settings={"index.knn": True}, mappings={"properties": {
        "a": {"properties": {"b": {"properties": {"vec": {"type": "knn_vector", "dimension": 2}}}}}}})
    w.index("1", {"a": [{"c": 1}, {"b": {"vec": [1, 2]}}]})
    w.refresh()
    with w.acquire_reader() as reader:
        top = segstore.knn_search(reader, "a.b.vec", np.array([1, 2], np.float32), 3)
        assert hits(reader, top) == [("1", 1.0)]
    assert w.get("1").source == {"a": [{"c": 1}, {"b": {"vec": [1.0, 2.0]}}]}
    w.close()


@pytest.mark.parametrize("source", [{"a.b.vec": [1, 2]}, {"a": {"b.vec": [1, 2]}}])
def test_vector_under_a_dotted_key_is_indexed(tmp_path: Any, source: dict[str, Any]) -> None:
    w = segstore.create_index(str(tmp_path / "o"), "o", settings={"index.knn": True}, mappings={"properties": {
        "a": {"properties": {"b": {"properties": {"vec": {"type": "knn_vector", "dimension": 2}}}}}}})
    w.index("1", source)
    w.refresh()
    with w.acquire_reader() as reader:
        top = segstore.knn_search(reader, "a.b.vec", np.array([1, 2], np.float32), 3)
        assert hits(reader, top) == [("1", 1.0)]
    w.close()


# ------------------------------------------------------------------------------------ brute force equality


def brute_force(space: str, vectors: dict[str, np.ndarray], query: np.ndarray, k: int) -> list[tuple[str, float]]:
    """Independent exact search: float32 arithmetic, one row at a time, score desc then insertion order."""
    out = []
    q = query.astype(np.float32)
    for doc_id, v in vectors.items():
        v = v.astype(np.float32)
        if space == "l2":
            d = np.float32(((v - q) * (v - q)).sum(dtype=np.float32))
            s = np.float32(1) / (np.float32(1) + d)
        elif space == "innerproduct":
            p = np.float32((v * q).sum(dtype=np.float32))
            s = p + np.float32(1) if p >= 0 else np.float32(1) / (np.float32(1) - p)
        elif space == "cosinesimil":
            # faiss (and so OpenSearch and segstore) indexes the L2-normalised vector for cosinesimil
            v = v / np.float32(np.sqrt((v * v).sum(dtype=np.float32)))
            c = np.float32((v * q).sum(dtype=np.float32)) / (np.float32(np.sqrt((v * v).sum(dtype=np.float32)))
                                                             * np.float32(np.sqrt((q * q).sum(dtype=np.float32))))
            s = max((np.float32(1) + c) / np.float32(2), np.float32(0))
        else:
            raise ValueError(space)
        out.append((doc_id, np.float32(s)))
    out.sort(key=lambda t: -t[1])  # stable: ties keep insertion order (not expected with random data)
    return [(doc_id, shortest(s)) for doc_id, s in out[:k]]


def _close(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> None:
    """Same ids in the same order and scores equal (exactly, or within 1 ulp of float32 for cosine where
    the engine normalises stored vectors)."""
    assert [i for i, _ in a] == [i for i, _ in b]
    for (_, x), (_, y) in zip(a, b):
        assert np.float32(x) == np.float32(y) or abs(np.float32(x) - np.float32(y)) <= np.spacing(np.float32(y))


@pytest.mark.parametrize("space", ["l2", "innerproduct", "cosinesimil"])
def test_equals_brute_force_across_segments_with_deletes_and_updates(tmp_path: Any, space: str) -> None:
    seed = int(os.environ.get("SEGSTORE_TEST_SEED", "7"))
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    dim = 8
    w = create(tmp_path, {"dimension": dim, "space_type": space})
    model: dict[str, np.ndarray] = {}
    for seg in range(5):
        ops: list[Any] = []
        for _ in range(40):
            doc_id = f"d{prng.randrange(150)}"
            if prng.random() < 0.8:
                vec = rng.standard_normal(dim).astype(np.float32)
                ops.append(IndexOp(doc_id, {"v": vec.tolist(), "seg": seg}))
                model.pop(doc_id, None)  # an update moves the doc to the end (new doc id)
                model[doc_id] = vec
            else:
                ops.append(DeleteOp(doc_id))
                model.pop(doc_id, None)
        w.bulk(ops)
        w.refresh()
        if seg == 2:
            w.commit()
    assert len(w.segments()) == 5
    assert sum(s.del_count for s in w.segments()) > 0
    for _ in range(15):
        q = rng.standard_normal(dim).astype(np.float32)
        for k in (1, 10, 40):
            got = search(w, q, k)
            _close(got, brute_force(space, model, q, k))
    # k beyond the live documents returns every live document with a vector, once
    everything = search(w, rng.standard_normal(dim).astype(np.float32), k=10_000)
    assert sorted(i for i, _ in everything) == sorted(model)
    w.close()


def test_deleted_docs_never_returned_small_segments(tmp_path: Any) -> None:
    w = create(tmp_path, {"dimension": 2})
    w.bulk([IndexOp(str(i), {"v": [float(i), 0.0]}) for i in range(20)])
    w.refresh()
    w.bulk([DeleteOp(str(i)) for i in range(0, 20, 2)])
    assert [i for i, _ in search(w, [0, 0], 5)] == ["0", "1", "2", "3", "4"]  # not refreshed yet
    w.refresh()
    assert search(w, [0, 0], 5) == [("1", 0.5), ("3", 0.1), ("5", 0.03846154), ("7", 0.02), ("9", 0.0121951215)]
    w.close()


def test_k_larger_than_live_docs(tmp_path: Any) -> None:
    w = create(tmp_path, {"dimension": 2})
    w.bulk([IndexOp(str(i), {"v": [float(i), 1.0]}) for i in range(5)])
    w.index("novec", {"title": "no vector"})
    w.refresh()
    w.delete("1")
    w.delete("3")
    w.refresh()
    with w.acquire_reader() as reader:
        top = segstore.knn_search(reader, "v", np.array([0, 1], np.float32), 10)
        assert hits(reader, top) == [("0", 1.0), ("2", 0.2), ("4", 0.05882353)]
        assert top.total_hits == 3
    w.close()


def test_empty_index_and_unknown_field(tmp_path: Any) -> None:
    w = create(tmp_path, {"dimension": 2})
    assert search(w, [1, 1]) == []
    w.index("1", {"other": 1})
    w.refresh()
    assert search(w, [1, 1]) == []
    with w.acquire_reader() as reader:
        assert segstore.knn_search(reader, "nope", np.array([1, 1], np.float32), 3).score_docs == []
    w.close()


# ------------------------------------------------------------------------------ graph path vs exact path


@pytest.fixture
def graph_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts HnswGraph searches, batch or single-query (proves the graph path ran)."""
    from segstore_codecs.segstore1.graph_format import HnswGraph

    calls: list[int] = []

    def counting(orig: Any) -> Any:
        def wrapper(self: Any, *a: Any, **kw: Any) -> Any:
            calls.append(1)
            return orig(self, *a, **kw)
        return wrapper

    monkeypatch.setattr(HnswGraph, "search", counting(HnswGraph.search))
    monkeypatch.setattr(HnswGraph, "search_one", counting(HnswGraph.search_one))
    return calls


def _big_index(tmp_path: Any, n: int, dim: int = 16, seed: int = 3,
               space: str = "l2") -> tuple[segstore.IndexWriter, np.ndarray]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    w = create(tmp_path, {"dimension": dim, "space_type": space})
    rows = vecs.tolist()
    w.bulk([IndexOp(str(i), {"v": rows[i]}) for i in range(n)])
    w.refresh()
    return w, vecs


def _exact_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(knn_query, "EXACT_SEARCH_MAX_VECTORS", 10**9)


@pytest.mark.parametrize("space", ["l2", "innerproduct", "cosinesimil"])
def test_same_score_via_graph_and_exact_path(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                             graph_calls: list[int], space: str) -> None:
    n = knn_query.EXACT_SEARCH_MAX_VECTORS + 300
    w, vecs = _big_index(tmp_path, n, space=space)
    rng = np.random.default_rng(11)
    queries = rng.standard_normal((10, 16)).astype(np.float32)
    via_graph = [search(w, q, 10) for q in queries]
    assert len(graph_calls) == 10
    _exact_path(monkeypatch)
    via_exact = [search(w, q, 10) for q in queries]
    assert len(graph_calls) == 10  # no more graph searches
    model = {str(i): vecs[i] for i in range(n)}
    found = 0
    for g, e, q in zip(via_graph, via_exact, queries):
        _close(e, brute_force(space, model, q, 10))
        exact_scores = dict(e)
        for doc_id, score in g:  # every doc the graph found has exactly its exact-path score
            if doc_id in exact_scores:
                assert score == exact_scores[doc_id]
                found += 1
            else:
                assert score <= e[-1][1]
        assert [s for _, s in g] == sorted((s for _, s in g), reverse=True)
    assert found >= 90  # graph recall@10 on 1300 random 16-d vectors
    w.close()


@pytest.mark.parametrize("n_deleted", [100, 500])  # over-fetch path (<= 256 dead), accept-filter path (> 256)
def test_deleted_docs_never_returned_big_segment(tmp_path: Any, graph_calls: list[int], n_deleted: int) -> None:
    n = knn_query.EXACT_SEARCH_MAX_VECTORS + 600
    w, vecs = _big_index(tmp_path, n)
    rng = np.random.default_rng(5)
    deleted = set(rng.choice(n, n_deleted, replace=False).tolist())
    queries = rng.standard_normal((10, 16)).astype(np.float32)
    # Make the deleted docs the most attractive ones: each query's nearest neighbours get deleted.
    for q in queries[:5]:
        d = ((vecs - q) ** 2).sum(axis=1)
        deleted.update(np.argsort(d)[:5].tolist())
    w.bulk([DeleteOp(str(i)) for i in sorted(deleted)])
    w.refresh()
    assert w.segments()[0].del_count == len(deleted)
    live = {str(i): vecs[i] for i in range(n) if i not in deleted}
    total_found = 0
    for q in queries:
        got = search(w, q, 10)
        assert len(got) == 10
        assert not {i for i, _ in got} & {str(i) for i in deleted}
        exact = dict(brute_force("l2", live, q, len(live)))
        for doc_id, score in got:
            assert score == exact[doc_id]
        total_found += len({i for i, _ in got} & {i for i, _ in brute_force("l2", live, q, 10)})
    assert graph_calls, "the graph path was not exercised"
    assert total_found >= 90
    w.close()


def test_many_segments_mixed_paths(tmp_path: Any, graph_calls: list[int]) -> None:
    """One big (graph) segment and small (exact) ones, with deletes: global top-k equals brute force."""
    n = knn_query.EXACT_SEARCH_MAX_VECTORS + 200
    w, vecs = _big_index(tmp_path, n, dim=8)
    rng = np.random.default_rng(8)
    model = {str(i): vecs[i] for i in range(n)}
    for s in range(3):
        extra = rng.standard_normal((30, 8)).astype(np.float32)
        w.bulk([IndexOp(f"s{s}-{j}", {"v": extra[j].tolist()}) for j in range(30)])
        model.update({f"s{s}-{j}": extra[j] for j in range(30)})
        w.refresh()
    for doc_id in ["5", "77", "s0-3", "s2-29"]:
        w.delete(doc_id)
        del model[doc_id]
    w.refresh()
    agree = 0
    for q in rng.standard_normal((10, 8)).astype(np.float32):
        got = search(w, q, 10)
        expected = brute_force("l2", model, q, 10)
        exact = dict(brute_force("l2", model, q, len(model)))
        assert all(score == exact[i] for i, score in got)
        agree += len({i for i, _ in got} & {i for i, _ in expected})
    assert graph_calls
    assert agree >= 95
    w.close()


# ------------------------------------------------------------------------------------- recall, real data


def test_recall_at_10_minilm(tmp_path: Any, shared_data: str) -> None:
    docs = np.load(os.path.join(shared_data, "minilm-384", "docs.f16.npy"))[:20_000].astype(np.float32)
    queries = np.load(os.path.join(shared_data, "minilm-384", "queries.f16.npy"))[:200].astype(np.float32)
    w = segstore.create_index(str(tmp_path / "r"), "minilm", settings={"index.knn": True},
                              mappings={"properties": {"emb": {"type": "knn_vector", "dimension": 384}}})
    rows = docs.tolist()
    for start in range(0, len(rows), 2_500):
        w.bulk([IndexOp(str(i), {"emb": rows[i]}) for i in range(start, start + 2_500)])
        if start + 2_500 in (10_000, 20_000):
            w.refresh()  # two segments of 10,000 (graph path in both)
    # numpy brute-force ground truth (squared L2; ties by row number)
    d2 = (queries**2).sum(1)[:, None] - 2 * queries @ docs.T + (docs**2).sum(1)[None, :]
    truth = np.argsort(d2, axis=1, kind="stable")[:, :10]
    found = 0
    with w.acquire_reader() as reader:
        assert [leaf.num_docs for leaf in reader.leaves] == [10_000, 10_000]
        for qi in range(len(queries)):
            top = segstore.knn_search(reader, "emb", queries[qi], 10)
            ids = {int(reader.leaves[sd.leaf].stored_document(sd.doc)["_id"]) for sd in top.score_docs}
            assert len(ids) == 10
            found += len(ids & set(truth[qi].tolist()))
    recall = found / (10 * len(queries))
    assert recall >= 0.95, recall
    w.close(commit=False)
