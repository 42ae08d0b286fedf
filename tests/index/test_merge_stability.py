"""Merge stability (Lucene's ``testMergeStability``, reliability.md §7.2) and merger correctness.

Merging the same inputs twice gives byte-identical files for every format, except

* the graph files: hnswlib and faiss build graphs with several threads, so the bytes differ run to run;
  the graphs are checked by recall against exact search instead;
* the segment id in every header (and therefore the footer CRC), and the ``timestamp`` diagnostic of
  the ``.si``: payloads are compared between header and footer, headers with the id zeroed.

Also: inputs whose quantization states differ merge into one state retrained on the merged vectors, and a
field missing from some inputs merges with the right doc ids.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import numpy as np
import pytest

import segstore
from segstore.codec.framing import FOOTER_LENGTH, ID_LENGTH
from segstore.index.operations import DeleteOp, IndexOp
from segstore.index.segment_merger import SegmentMerger
from segstore.quantization.state import train
from segstore.store import MemoryDirectory

DIM = 16
MAPPINGS = {"properties": {
    "v": {"type": "knn_vector", "dimension": DIM},
    "q": {"type": "knn_vector", "dimension": DIM, "mode": "on_disk"},  # binary quantization (.qst)
    "b": {"type": "knn_vector", "dimension": DIM, "data_type": "byte"},  # faiss graph
    "tag": {"type": "keyword"}, "n": {"type": "integer"}, "t": {"type": "text"},
}}


def build(tmp_path: Any, per_segment: int = 300, segments: int = 3, seed: int = 0) -> segstore.IndexWriter:
    rng = np.random.default_rng(seed)
    w = segstore.create_index(str(tmp_path / "data"), "s", settings={
        "index.knn": True, "index.translog.durability": "async"}, mappings=MAPPINGS, directory=MemoryDirectory())
    n = 0
    for s in range(segments):
        ops = []
        for _ in range(per_segment):
            v = rng.normal(s, 1.0, DIM).astype(np.float32)
            doc: dict[str, Any] = {"v": v.tolist(), "q": (v * 2 - s).tolist(),
                                   "b": rng.integers(-128, 128, DIM).tolist(), "tag": f"t{n % 7}", "n": n,
                                   "t": f"document {n}"}
            if n % 11 == 0:
                del doc["b"]  # sparse field
            ops.append(IndexOp(str(n), doc))
            n += 1
        w.bulk(ops)
        w.refresh()
    w.bulk([DeleteOp(str(i)) for i in range(0, n, 9)])
    w.refresh()
    return w


def merge_into(w: segstore.IndexWriter, leaves: list[Any]) -> tuple[MemoryDirectory, Any]:
    out = MemoryDirectory()
    result = SegmentMerger(w.codec, out, leaves, "_m", lambda fi, n: fi.attributes.get("knn") == "true").merge()
    return out, result


def split(data: bytes) -> tuple[bytes, bytes, str]:
    """(header with the segment id zeroed, payload between header and footer, extension-free format name)."""
    name_len = data[4]
    name = data[5:5 + name_len].decode()
    id_at = 5 + name_len + 4
    suffix_len = data[id_at + ID_LENGTH]
    end = id_at + ID_LENGTH + 1 + suffix_len
    header = data[:id_at] + b"\0" * ID_LENGTH + data[id_at + ID_LENGTH:end]
    assert struct.unpack(">I", data[:4])[0] == 0x3FD76C17
    return header, data[end:len(data) - FOOTER_LENGTH], name


def test_merging_the_same_inputs_twice_gives_the_same_bytes(tmp_path: Any) -> None:
    w = build(tmp_path)
    with w.acquire_reader() as r:
        a, ra = merge_into(w, r.leaves)
        b, rb = merge_into(w, r.leaves)
    assert a.list_all() == b.list_all()
    assert ra.commit_info.info.files == rb.commit_info.info.files
    assert ra.ids == rb.ids and ra.versions == rb.versions and ra.seq_nos == rb.seq_nos
    assert all((x == y).all() for x, y in zip(ra.doc_maps, rb.doc_maps))
    exts = set()
    for f in a.list_all():
        ext = f.rsplit(".", 1)[1]
        exts.add(ext)
        ha, pa, _ = split(a.read_bytes(f))
        hb, pb, _ = split(b.read_bytes(f))
        assert ha == hb, f
        if ext == "hnsw":
            continue  # multi-threaded graph builds: checked by recall below
        if ext == "si":
            ia, ib = msgpack.unpackb(pa), msgpack.unpackb(pb)
            assert ia["diagnostics"].pop("timestamp") and ib["diagnostics"].pop("timestamp")
            assert ia == ib
            assert ia["diagnostics"]["source"] == "merge"
            continue
        assert pa == pb, f"{f}: merge output differs between two merges of the same inputs"
    assert {"fdt", "fdx", "vec", "vem", "qst", "hnsw", "fnm", "si", "dvd", "dvm"} <= exts
    w.close()


def test_merged_graph_recall(tmp_path: Any) -> None:
    w = build(tmp_path, per_segment=700)  # 2,100 docs > 1,000: the merged segment is searched by graph
    rng = np.random.default_rng(5)
    queries = rng.normal(1.0, 1.0, (50, DIM)).astype(np.float32)
    w.force_merge(1)
    with w.acquire_reader() as r:
        (leaf,) = r.leaves
        vals = leaf.vector_values("v")
        live = np.array([leaf.is_live(int(d)) for d in vals.ord_to_doc])
        hits = 0
        for q in queries:
            d2 = ((vals.vectors - q) ** 2).sum(axis=1)
            d2[~live] = np.inf
            exact = set(vals.ord_to_doc[np.argsort(d2)[:10]].tolist())
            graph = leaf.graph("v")
            assert graph is not None
            got = segstore.knn_search(r, "v", q, 10)
            hits += len(exact & {sd.doc for sd in got.score_docs})
        assert hits / (10 * len(queries)) >= 0.95
    w.close()


def test_quantization_states_that_differ_are_retrained_from_merged_vectors(tmp_path: Any) -> None:
    w = build(tmp_path)
    with w.acquire_reader() as r:
        states = [leaf.quantized("q").state.thresholds for leaf in r.leaves]
        assert not np.allclose(states[0], states[1])  # each segment trained on its own distribution
    w.force_merge(1)
    with w.acquire_reader() as r:
        (leaf,) = r.leaves
        vals = leaf.vector_values("q")
        qv = leaf.quantized("q")
        expected = train(qv.state.kind, qv.state.bits, vals.vectors)
        np.testing.assert_array_equal(qv.state.thresholds, expected.thresholds)
        np.testing.assert_array_equal(np.asarray(qv.codes), expected.encode(vals.vectors))
        q = np.asarray(leaf.vector_values("q").vectors[5], np.float32)
        from segstore.search.searcher import IndexSearcher

        searcher = IndexSearcher("s", r, w.mappings, w.settings)
        _total, hits = searcher.hits(searcher.parse({"knn": {"q": {"vector": q.tolist(), "k": 3}}}))
        top_doc = int(vals.ord_to_doc[5])
        assert hits[0][2] == top_doc  # the doc itself comes first (after rescoring)
    w.close()


@pytest.mark.parametrize("through", ["writer", "merger"])
def test_field_missing_from_some_segments(tmp_path: Any, through: str) -> None:
    mappings = {"properties": {"v": {"type": "knn_vector", "dimension": 4},
                               "w": {"type": "knn_vector", "dimension": 3, "space_type": "innerproduct"}}}
    w = segstore.create_index(str(tmp_path / "data"), "m", settings={"index.knn": True}, mappings=mappings)
    docs = {
        "a0": {"v": [1.0, 0.0, 0.0, 0.0], "x": 1}, "a1": {"v": [0.0, 1.0, 0.0, 0.0], "x": 2},  # segment 1: v
        "b0": {"x": 3}, "b1": {"x": 4, "t": "no vectors"},  # segment 2: no vector field at all
        "c0": {"w": [1.0, 2.0, 3.0]}, "c1": {"w": [3.0, 2.0, 1.0], "v": [0.0, 0.0, 1.0, 0.0]},  # segment 3
    }
    for prefix in "abc":
        w.bulk([IndexOp(k, v) for k, v in docs.items() if k[0] == prefix])
        w.refresh()
    if through == "writer":
        w.force_merge(1)
        (seg,) = w.segments()
        assert seg.info.max_doc == 6
    else:
        with w.acquire_reader() as r:
            _out, result = merge_into(w, r.leaves)
            assert result.ids == list(docs)
    with w.acquire_reader() as r:
        if through == "writer":
            (leaf,) = r.leaves
            v, wv = leaf.vector_values("v"), leaf.vector_values("w")
            ids = [leaf.stored_document(int(d))["_id"] for d in v.ord_to_doc]
            assert ids == ["a0", "a1", "c1"]
            assert [leaf.stored_document(int(d))["_id"] for d in wv.ord_to_doc] == ["c0", "c1"]
            np.testing.assert_array_equal(v.vectors[2], np.array([0, 0, 1, 0], np.float32))
            assert [f.name for f in leaf.field_infos.vector_fields()] == ["v", "w"]
        for k, src in docs.items():
            g = w.get(k)
            assert g is not None and g.source == {kk: vv for kk, vv in src.items()}, k
        top = segstore.knn_search(r, "w", np.array([1.0, 2.0, 3.0], np.float32), 1)
        assert r.leaves[top.score_docs[0].leaf].stored_document(top.score_docs[0].doc)["_id"] == "c0"
    w.close()
