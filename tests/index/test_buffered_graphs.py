"""Graphs grown while documents are buffered (``BufferedGraphs`` + the codec's ``HnswGraphBuilder``).

A flush must write the incrementally grown graph only when its ordinals are exactly the segment's, and
build the graph itself otherwise (a replaced or deleted buffered document, translog replay, a failed
builder). Either way the segment searches correctly: the results are checked against brute force.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from segstore_codecs.segstore1 import graph_format
from segstore_codecs.segstore1.hnsw_build import HnswGraphBuilder

import segstore
from segstore.index.buffered_graphs import MIN_INCREMENTAL_VECTORS
from segstore.index.field_infos import FieldInfo
from segstore.index.operations import DeleteOp, IndexOp
from segstore.search.similarity import scores as exact_scores

DIM = 16
N = MIN_INCREMENTAL_VECTORS + 500


def _field(space: str = "l2") -> FieldInfo:
    return FieldInfo("v", 0, DIM, "float", space, {"knn": "true", "hnsw.m": "16", "hnsw.ef_construction": "100"})


def _vectors(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


@pytest.fixture
def flush_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts graphs built at flush (build_graph calls); an incrementally grown graph makes none."""
    calls: list[int] = []
    orig = graph_format.build_graph

    def counting(field: Any, vectors: np.ndarray) -> Any:
        calls.append(int(vectors.shape[0]))
        return orig(field, vectors)

    monkeypatch.setattr(graph_format, "build_graph", counting)
    return calls


def _writer(tmp_path: Any, space: str = "l2", **settings: Any) -> segstore.IndexWriter:
    return segstore.create_index(str(tmp_path / "i"), "i", settings={"index.knn": True, **settings}, mappings={
        "properties": {"v": {"type": "knn_vector", "dimension": DIM, "space_type": space}, "t": {"type": "keyword"}}})


def _bulk(w: segstore.IndexWriter, vecs: np.ndarray, start: int = 0, size: int = 250) -> None:
    rows = vecs.tolist()
    for s in range(0, len(rows), size):
        res = w.bulk([IndexOp(str(start + i), {"v": rows[i], "t": f"k{(start + i) % 3}"})
                      for i in range(s, min(len(rows), s + size))])
        assert not [r for r in res if isinstance(r, Exception)]


def _check_search(w: segstore.IndexWriter, model: dict[str, np.ndarray], space: str = "l2") -> None:
    """Top 10 of 20 queries against brute force over ``model``: same ids (recall 1.0 on this easy data set,
    allowing one miss in all) and every score exactly the brute-force score of the stored (canonical, for
    cosine unit-length) vector of its document."""
    ids = list(model)
    mat = np.stack([model[i] for i in ids])
    misses = 0
    with w.acquire_reader() as reader:
        leaf = reader.leaves[-1]
        assert sum(lf.num_docs for lf in reader.leaves) == leaf.num_docs == len(model)
        values = leaf.vector_values("v")
        assert values is not None
        ord_of = {int(d): o for o, d in enumerate(values.ord_to_doc)}
        for q in _vectors(20, seed=99):
            top = segstore.knn_search(reader, "v", q, 10)
            got = [(reader.leaves[sd.leaf].stored_document(sd.doc)["_id"], sd.doc, sd.score) for sd in top.score_docs]
            s = exact_scores(space, mat, q)
            want = [ids[j] for j in np.lexsort((np.arange(len(ids)), -s))[:10]]
            misses += len(set(want) - {g for g, _, _ in got})
            for doc_id, doc, score in got:
                stored = values.vectors[ord_of[doc]]
                if space != "cosinesimil":
                    assert np.array_equal(stored, model[doc_id])
                exact = exact_scores(space, stored[None, :], q)[0]
                assert score == float(str(np.float32(exact)))
    assert misses <= 1


# ------------------------------------------------------------------------------------------- the builder


def test_builder_grows_a_graph_equal_in_content_to_its_rows() -> None:
    vecs = _vectors(3000)
    b = HnswGraphBuilder(_field())
    for s in range(0, 3000, 700):
        b.add(vecs[s:s + 700])
    assert b.count == 3000
    index = b.finish(3000)
    assert index is not None
    assert (index.element_count, index.max_elements) == (3000, 3000)  # trimmed: the blob records the count
    assert np.array_equal(np.sort(np.asarray(index.get_ids_list())), np.arange(3000))
    assert np.array_equal(np.asarray(index.get_items([0, 1234, 2999]), np.float32), vecs[[0, 1234, 2999]])
    labels, _ = index.knn_query(vecs[:50], k=1)
    assert np.array_equal(labels[:, 0], np.arange(50))  # each row finds itself


def test_builder_count_mismatch_or_abort_gives_nothing() -> None:
    b = HnswGraphBuilder(_field())
    b.add(_vectors(10))
    assert b.finish(11) is None
    b2 = HnswGraphBuilder(_field())
    b2.add(_vectors(10))
    b2.abort()
    b2.abort()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        b2.add(_vectors(1))


def test_builder_failure_falls_back_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    b = HnswGraphBuilder(_field())

    def boom(batch: np.ndarray) -> None:
        raise MemoryError("no room")

    monkeypatch.setattr(b, "_insert", boom)
    b.add(_vectors(5))
    assert b.finish(5) is None


def test_builder_rejects_wrong_width() -> None:
    b = HnswGraphBuilder(_field())
    with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
        b.add(np.zeros((2, 3), np.float32))
    b.abort()


def test_builder_threads_end() -> None:
    b = HnswGraphBuilder(_field())
    b.add(_vectors(3))
    b.finish(3)
    assert not [t for t in threading.enumerate() if t.name.startswith("segstore-hnsw-builder")]


# ----------------------------------------------------------------------------------------- the writer


@pytest.mark.parametrize("space", ["l2", "cosinesimil", "innerproduct"])
def test_flush_writes_the_grown_graph(tmp_path: Any, flush_builds: list[int], space: str) -> None:
    vecs = _vectors(N)
    with _writer(tmp_path, space) as w:
        _bulk(w, vecs)
        assert w._graphs.growing == ["v"]
        w.refresh()
        assert flush_builds == []  # nothing built at flush
        with w.acquire_reader() as reader:
            graph = reader.leaves[0].graph("v")
            assert graph is not None and graph.index.element_count == N
            reader.leaves[0].check_integrity()  # the published file is framed and CRC-checked
        _check_search(w, {str(i): vecs[i] for i in range(N)}, space)
        w.commit()
    # reopened: the graph is read back from disk
    with segstore.open_index(str(tmp_path / "i"), "i") as w2:
        _check_search(w2, {str(i): vecs[i] for i in range(N)}, space)


def test_below_the_minimum_no_builder_starts(tmp_path: Any, flush_builds: list[int]) -> None:
    with _writer(tmp_path) as w:
        _bulk(w, _vectors(MIN_INCREMENTAL_VECTORS - 1))
        assert w._graphs.growing == []
        w.refresh()
    assert flush_builds == [MIN_INCREMENTAL_VECTORS - 1]


@pytest.mark.parametrize("change", ["update", "delete"])
def test_changing_a_buffered_document_falls_back_to_a_flush_build(tmp_path: Any, flush_builds: list[int],
                                                                  change: str) -> None:
    vecs = _vectors(N)
    model = {str(i): vecs[i] for i in range(N)}
    with _writer(tmp_path) as w:
        _bulk(w, vecs)
        assert w._graphs.growing == ["v"]
        if change == "update":
            new = _vectors(1, seed=7)[0]
            w.index("5", {"v": new.tolist(), "t": "x"})
            model["5"] = new
        else:
            w.delete("5")
            del model["5"]
        assert w._graphs.growing == []  # the ordinals no longer follow arrival order
        _bulk(w, _vectors(10, seed=8), start=N)
        model.update({str(N + i): v for i, v in enumerate(_vectors(10, seed=8))})
        w.refresh()
        assert flush_builds == [len(model)]
        _check_search(w, model)


def test_next_generation_grows_again(tmp_path: Any, flush_builds: list[int]) -> None:
    """A refresh starts a new generation: a replaced doc that is already flushed is a delete in the old
    segment, which does not disturb the new segment's ordinals."""
    vecs = _vectors(N)
    with _writer(tmp_path) as w:
        _bulk(w, vecs)
        w.refresh()
        more = _vectors(N, seed=5)
        _bulk(w, more, start=0)  # every id replaced: deletes in segment 0, fresh buffer order
        assert w._graphs.growing == ["v"]
        w.refresh()
        assert flush_builds == []
        with w.acquire_reader() as reader:
            assert [leaf.num_docs for leaf in reader.leaves] == [0, N]
        w.force_merge(1)
        _check_search(w, {str(i): more[i] for i in range(N)})


def test_replayed_translog_builds_at_flush(tmp_path: Any, flush_builds: list[int]) -> None:
    vecs = _vectors(N)
    w = _writer(tmp_path)
    _bulk(w, vecs)
    w.close(commit=False)  # acked in the translog only
    with segstore.open_index(str(tmp_path / "i"), "i") as w2:
        assert w2.replayed_ops == N
        w2.refresh()
        _check_search(w2, {str(i): vecs[i] for i in range(N)})
    assert flush_builds[0] == N


def test_close_without_refresh_stops_the_builders(tmp_path: Any) -> None:
    w = _writer(tmp_path)
    _bulk(w, _vectors(N))
    assert w._graphs.growing == ["v"]
    w.close(commit=False)
    assert not [t for t in threading.enumerate() if t.name.startswith("segstore-hnsw-builder")]


def test_flat_and_quantized_fields_are_built_at_flush(tmp_path: Any, flush_builds: list[int]) -> None:
    w = segstore.create_index(str(tmp_path / "q"), "q", settings={"index.knn": True}, mappings={"properties": {
        "v": {"type": "knn_vector", "dimension": DIM, "mode": "on_disk"},  # 32x binary quantization
    }})
    _bulk(w, _vectors(N))
    assert w._graphs.growing == []
    w.refresh()
    w.close()


def test_bulk_with_rejected_documents_keeps_ordinals(tmp_path: Any, flush_builds: list[int]) -> None:
    """Rejected documents never enter the buffer, so they take no ordinal in the grown graph."""
    vecs = _vectors(N)
    rows = vecs.tolist()
    with _writer(tmp_path) as w:
        ops: list[Any] = []
        for i in range(N):
            ops.append(IndexOp(str(i), {"v": rows[i]}))
            if i % 100 == 0:
                ops.append(IndexOp(f"bad{i}", {"v": [1.0] * (DIM - 1)}))  # wrong dimension
                ops.append(DeleteOp(f"missing{i}"))
        for s in range(0, len(ops), 300):
            w.bulk(ops[s:s + 300])
        assert w._graphs.growing == ["v"]
        w.refresh()
        assert flush_builds == []
        _check_search(w, {str(i): vecs[i] for i in range(N)})
