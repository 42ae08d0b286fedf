"""Binary quantization over several segments (k-NN PR #2183): every segment trains its own quantization
state and quantizes the query with it; first-pass scores are Hamming-based (1/(1+h)), so candidates of
different segments are comparable, and rescoring restores recall. Before the fix, inner product on the
codes was used and recall collapsed on multi-segment shards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import segstore
from segstore import IndexOp
from segstore.search.searcher import IndexSearcher

SEGMENTS, PER_SEGMENT, QUERIES, K = 4, 1500, 100, 10  # 1,500 > 1,000 vectors per segment: graphs are searched


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    from segstore_tools.bench import default_data_dir  # $SEGSTORE_DATA, else <repo>/../shared/data

    root = os.path.join(default_data_dir(), "minilm-384")
    if not os.path.isfile(os.path.join(root, "docs.f16.npy")):
        pytest.skip("../shared/data/minilm-384 is not present")
    docs = np.load(os.path.join(root, "docs.f16.npy"), mmap_mode="r")
    queries = np.load(os.path.join(root, "queries.f16.npy"), mmap_mode="r")
    return (np.ascontiguousarray(docs[:SEGMENTS * PER_SEGMENT], dtype=np.float32),
            np.ascontiguousarray(queries[:QUERIES], dtype=np.float32))


@pytest.fixture(scope="module")
def searcher(tmp_path_factory: pytest.TempPathFactory, minilm: tuple[np.ndarray, np.ndarray]) -> Iterator[Any]:
    docs, _ = minilm
    mappings = {"properties": {"v": {"type": "knn_vector", "dimension": 384, "space_type": "l2", "mode": "on_disk"}}}
    w = segstore.create_index(tmp_path_factory.mktemp("bq-multiseg"), "bq", mappings=mappings,
                              settings={"index.knn": True, "index.translog.durability": "async",
                                        "index.refresh_interval": "-1"})
    for s in range(SEGMENTS):  # one refresh per slice: one segment each, with its own quantization state
        rows = docs[s * PER_SEGMENT:(s + 1) * PER_SEGMENT].tolist()
        w.bulk([IndexOp(str(s * PER_SEGMENT + i), {"v": r}) for i, r in enumerate(rows)])
        w.refresh()
    reader = w.acquire_reader()
    try:
        yield IndexSearcher("bq", reader, w.mappings, w.settings)
    finally:
        reader.dec_ref()
        w.close()


def _run(searcher: Any, q: np.ndarray, **knn: Any) -> list[tuple[int, float]]:
    _total, hits = searcher.hits(searcher.parse({"knn": {"v": {"vector": q.tolist(), "k": K, **knn}}}))
    reader = searcher.reader
    return [(int(reader.leaves[leaf].stored_document(doc)["_id"]), score) for score, leaf, doc in hits[:K]]


def test_segments_have_their_own_states(searcher: Any) -> None:
    leaves = searcher.reader.leaves
    assert len(leaves) == SEGMENTS
    states = [leaf.quantized("v").state for leaf in leaves]
    assert all(s.kind == "binary" and s.bits == 1 and s.thresholds.shape == (1, 384) for s in states)
    for a in range(SEGMENTS):
        for b in range(a + 1, SEGMENTS):
            assert not np.array_equal(states[a].thresholds, states[b].thresholds)
    assert all(leaf.graph("v") is not None for leaf in leaves)


def test_multi_segment_recall_with_default_rescoring(searcher: Any, minilm: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = minilm
    d2 = (docs * docs).sum(1)[None, :] - 2.0 * queries @ docs.T
    truth = np.argsort(d2, axis=1, kind="stable")[:, :K]
    found, found_fp = [], []
    for i, q in enumerate(queries):
        hits = _run(searcher, q)
        found.append(len({d for d, _ in hits} & set(truth[i].tolist())))
        # exact scores after rescoring, from the float32 vectors
        diff = docs[[d for d, _ in hits]] - q
        exact = np.float32(1) / (np.float32(1) + (diff * diff).sum(axis=1, dtype=np.float32))
        np.testing.assert_array_equal(np.array([s for _, s in hits], np.float32), exact)
        if i < 20:
            fp = _run(searcher, q, rescore=False)
            found_fp.append(len({d for d, _ in fp} & set(truth[i].tolist())))
            # first-pass scores: 1/(1 + Hamming) with an integer Hamming distance, whatever the segment
            h = 1.0 / np.array([s for _, s in fp]) - 1.0
            np.testing.assert_allclose(h, np.round(h), atol=1e-3)
    recall = sum(found) / (K * len(queries))
    assert recall >= 0.9, recall
    assert sum(found_fp) / (K * len(found_fp)) < recall  # rescoring is what brings recall back
