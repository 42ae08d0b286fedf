"""Rescoring of quantized fields (vector-semantics.md §2.2, §3): the ``rescore`` parameter, the field
defaults per mode/level/dimension, the first-pass size, first-pass Hamming scores and exact scores after
rescoring, through opensearch-py on the embedded node."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from opensearchpy.exceptions import RequestError

import segstore
from segstore import IndexOp
from segstore.mapping.mappings import Mappings
from segstore.search.rescore import RescoreContext, first_pass_k, resolve_rescore

_POP = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
N, D = 300, 16


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2183)
    return rng.standard_normal((N, D)).astype(np.float32), rng.standard_normal((8, D)).astype(np.float32)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, data: tuple[np.ndarray, np.ndarray]) -> Iterator[Any]:
    """Indices created and searched through opensearch-py; documents written through the node's writer (one
    segment each, ``_id`` = row number)."""
    docs, _ = data
    c = segstore.connect(tmp_path_factory.mktemp("rescore"))
    indices = {
        "bq-on-disk": {"mode": "on_disk"},  # 32x, default rescore 5.0 at d <= 1000
        "bq-in-memory": {"mode": "in_memory", "compression_level": "32x"},  # no default rescoring
        "bq-cosine": {"mode": "on_disk", "space_type": "cosinesimil"},
    }
    for name, extra in indices.items():
        spec = {"type": "knn_vector", "dimension": D, "space_type": "l2", **extra}
        c.indices.create(index=name, body={"settings": {"index.knn": True},
                                           "mappings": {"properties": {"v": spec}}})
        w = c.transport.node.writer(name)
        assert not any(isinstance(r, Exception)
                       for r in w.bulk([IndexOp(str(i), {"v": docs[i].tolist()}) for i in range(N)]))
        w.refresh()
    try:
        yield c
    finally:
        c.close()


def _search(client: Any, index: str, q: np.ndarray, k: int = 10, **knn: Any) -> list[tuple[int, float]]:
    body = {"size": k, "query": {"knn": {"v": {"vector": q.tolist(), "k": k, **knn}}}}
    hits = client.search(index=index, body=body)["hits"]["hits"]
    return [(int(h["_id"]), float(h["_score"])) for h in hits]


def _errors(err: Any) -> Iterator[tuple[str, str]]:
    """(type, reason) of an error body and everything under it (root causes, caused_by, shard failures)."""
    if isinstance(err, dict):
        if "type" in err and "reason" in err:
            yield err["type"], err["reason"]
        for v in err.values():
            yield from _errors(v)
    elif isinstance(err, list):
        for v in err:
            yield from _errors(v)


def _state(client: Any, index: str) -> Any:
    w = client.transport.node.writer(index)
    reader = w.acquire_reader()
    try:
        assert len(reader.leaves) == 1
        qv = reader.leaves[0].quantized("v")
        return qv.state, np.array(qv.codes), reader.leaves[0].vector_values("v").ord_to_doc.copy()
    finally:
        reader.dec_ref()


def _hamming_scores(client: Any, index: str, q: np.ndarray) -> dict[int, np.float32]:
    """First-pass score of every doc: 1/(1 + Hamming(query code, doc code)), with the segment's state."""
    state, codes, ord_to_doc = _state(client, index)
    qcode = state.encode(q)[0]
    h = _POP[np.bitwise_xor(codes, qcode)].sum(axis=1)
    s = (np.float32(1) / (np.float32(1) + h.astype(np.float32))).astype(np.float32)
    return {int(ord_to_doc[i]): s[i] for i in range(len(s))}  # doc id == _id here (one bulk, in order)


def _exact_l2(docs: np.ndarray, q: np.ndarray) -> np.ndarray:
    diff = docs - q
    return (np.float32(1) / (np.float32(1) + (diff * diff).sum(axis=1, dtype=np.float32))).astype(np.float32)


# ------------------------------------------------------------------------------------ the parameter


@pytest.mark.parametrize(("factor", "message"), [
    (0.5, "[knn] errors in rescore parameter [Validation Failed: 1: Oversample factor [0.500000] cannot be "
          "less than [1.000000];]"),
    (101, "[knn] errors in rescore parameter [Validation Failed: 1: Oversample factor [101.000000] cannot be "
          "more than [100.000000];]"),
])
def test_oversample_factor_out_of_range_messages(client: Any, data: Any, factor: float, message: str) -> None:
    with pytest.raises(RequestError) as e:
        _search(client, "bq-on-disk", data[1][0], rescore={"oversample_factor": factor})
    assert e.value.status_code == 400
    causes = list(_errors(e.value.info["error"]))
    assert ("illegal_argument_exception", message) in causes, causes


def test_oversample_factor_bounds_are_inclusive(client: Any, data: Any) -> None:
    for f in (1.0, 100.0):
        assert len(_search(client, "bq-on-disk", data[1][0], rescore={"oversample_factor": f})) == 10


def test_rescore_true_and_empty_object() -> None:
    common = {"mode_typed": "on_disk", "compression": "32x", "dimension": 384}
    assert resolve_rescore(True, **common) == RescoreContext(1.0, False)  # factor 1.0, not user-provided
    assert resolve_rescore({}, **common) == RescoreContext(1.0, True)  # {} -> 1.0, user-provided
    assert resolve_rescore({"oversample_factor": 2.5}, **common) == RescoreContext(2.5, True)
    assert resolve_rescore(False, **common) is None
    # only a factor that is not user-provided yields to the dimension rule (shard-level rescoring disabled)
    assert resolve_rescore(True, **common, shard_level_rescoring_disabled=True) == RescoreContext(3.0, False)
    assert resolve_rescore({}, **common, shard_level_rescoring_disabled=True) == RescoreContext(1.0, True)
    assert resolve_rescore(None, **common, shard_level_rescoring_disabled=True) == RescoreContext(3.0, False)


def _default(spec: dict[str, Any]) -> float | None:
    """The field default as the searcher resolves it for a query without ``rescore``."""
    fm = Mappings.parse({"properties": {"v": {"type": "knn_vector", **spec}}}, index_knn=True).vector_fields["v"]
    ctx = resolve_rescore(None, mode_typed=fm.mode if fm.user_mode else None, compression=fm.compression_level,
                          dimension=int(fm.dimension or 0))
    return None if ctx is None else ctx.oversample_factor


@pytest.mark.parametrize(("spec", "factor"), [
    ({"dimension": 384, "mode": "on_disk"}, 5.0),  # 32x, d <= 1000
    ({"dimension": 1000, "mode": "on_disk"}, 5.0),
    ({"dimension": 1024, "mode": "on_disk"}, 3.0),  # 32x level default
    ({"dimension": 1024, "mode": "on_disk", "compression_level": "8x"}, 2.0),
    ({"dimension": 1024, "mode": "on_disk", "compression_level": "16x"}, 3.0),
    ({"dimension": 384, "mode": "on_disk", "compression_level": "16x"}, 5.0),
    ({"dimension": 384, "mode": "on_disk", "compression_level": "8x"}, 5.0),
    ({"dimension": 384, "mode": "on_disk", "compression_level": "4x", "method": {"name": "hnsw", "engine": "lucene"}},
     1.0),
    ({"dimension": 384, "mode": "in_memory", "compression_level": "32x"}, None),
    ({"dimension": 384, "compression_level": "32x"}, None),  # a level without mode: on_disk
    ({"dimension": 384, "mode": "on_disk", "compression_level": "2x"}, None),
    ({"dimension": 384, "compression_level": "2x"}, None),
    ({"dimension": 384}, None),
])
def test_field_default_oversample_factor(spec: dict[str, Any], factor: float | None) -> None:
    assert _default(spec) == factor


def test_first_pass_size_formula() -> None:
    assert first_pass_k(10, 5.0) == 100  # 50 -> at least 100
    assert first_pass_k(10, 1.0) == 100
    assert first_pass_k(101, 1.5) == 152  # ceil(151.5)
    assert first_pass_k(40, 3.0) == 120
    assert first_pass_k(1000, 3.0) == 3000
    assert first_pass_k(5000, 3.0) == 10000  # at most 10,000
    assert first_pass_k(10000, 100.0) == 10000


# ------------------------------------------------------------------------------------------- scores


def test_rescore_false_returns_first_pass_hamming_scores(client: Any, data: Any) -> None:
    docs, queries = data
    for q in queries[:4]:
        expected = _hamming_scores(client, "bq-on-disk", q)
        got = _search(client, "bq-on-disk", q, rescore=False)
        assert len(got) == 10
        for doc, score in got:
            assert np.float32(score) == expected[doc]
            h = 1.0 / score - 1.0
            assert abs(h - round(h)) < 1e-4  # 1/(1+h) with an integer Hamming distance
        best = sorted(expected.values(), reverse=True)[:10]
        assert [np.float32(s) for _, s in got] == best  # the top 10 by Hamming score
        # with default rescoring the same query gets exact l2 scores
        exact = _exact_l2(docs, q)
        assert all(np.float32(s) == exact[d] for d, s in _search(client, "bq-on-disk", q))


def test_in_memory_32x_has_no_default_rescoring(client: Any, data: Any) -> None:
    q = data[1][1]
    expected = _hamming_scores(client, "bq-in-memory", q)
    got = _search(client, "bq-in-memory", q)
    assert [np.float32(s) for _, s in got] == [expected[d] for d, _ in got]
    # an explicit rescore turns it on
    exact = _exact_l2(data[0], q)
    assert all(np.float32(s) == exact[d] for d, s in _search(client, "bq-in-memory", q, rescore=True))


def test_scores_after_rescoring_equal_exact_scores(client: Any, data: Any) -> None:
    docs, queries = data
    for q in queries:
        exact = _exact_l2(docs, q)
        got = _search(client, "bq-on-disk", q, k=10)
        assert [np.float32(s) for _, s in got] == [exact[d] for d, _ in got]
        # cosine: (1 + cos) / 2 on the full-precision vectors
        got_c = _search(client, "bq-cosine", q, k=10)
        cos = docs @ q / (np.linalg.norm(docs, axis=1) * np.linalg.norm(q))
        np.testing.assert_allclose([s for _, s in got_c], [(1 + cos[d]) / 2 for d, _ in got_c], rtol=1e-6)


def test_first_pass_cut_then_exact_top_k(client: Any, data: Any) -> None:
    """Factor 1.0: the first pass keeps the 100 best codes (which of the docs tied at the cut is the search's
    choice), rescoring returns the exact top 10 of those; a factor covering every doc gives the exact top
    10 of the whole index."""
    docs, queries = data
    for q in queries[:4]:
        ham = _hamming_scores(client, "bq-on-disk", q)
        exact = _exact_l2(docs, q)
        cut = sorted(ham.values(), reverse=True)[first_pass_k(10, 1.0) - 1]
        got = _search(client, "bq-on-disk", q, rescore={"oversample_factor": 1.0})
        assert len(got) == 10 and all(ham[d] >= cut for d, _ in got)  # only first-pass survivors
        assert [np.float32(s) for _, s in got] == [exact[d] for d, _ in got]  # exact scores, best first
        worst = min(exact[d] for d, _ in got)
        sure = [d for d in ham if ham[d] > cut and exact[d] > worst]  # above the cut and better: must be kept
        assert set(sure) <= {d for d, _ in got}
        got_all = _search(client, "bq-on-disk", q, rescore={"oversample_factor": 30.0})  # 300 >= N
        assert [d for d, _ in got_all] == sorted(range(N), key=lambda d: (-exact[d], d))[:10]
