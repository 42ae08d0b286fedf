"""The byte and binary HNSW examples of ``seeds/memory-optimized-vectors.md`` with exact ``_score`` values,
through the embedded opensearch-py client.

* Binary HNSW (seed "Binary vectors / Example: HNSW"): the page shows ``_score`` 0.5 for ``[10]`` and 0.25 for
  ``[80]``; that response was copied from the IVF example (vector-semantics.md §8 error 2). Correct: query
  ``[9]`` = ``00001001``; Hamming to ``[7]`` 3, ``[10]`` 2, ``[15]`` 2, ``[99]`` 4, ``[80]`` 4, so the top 2 are
  ids 2 and 3 with 1/(1+2) = 0.33333334 each (ties in doc order), then id 1 with 0.25, ids 4 and 5 with 0.2.
* Byte HNSW (seed "Byte vectors / Example: HNSW"): l2 on the integer values, query ``[26, -120, 99]``:
  doc 2 ``[100, -128, 0]`` d = 74² + 8² + 99² = 15341 -> 1/15342, doc 1 ``[-126, 28, 127]``
  d = 152² + 148² + 28² = 45792 -> 1/45793.

Both run on the seed's engine and on the other supported one (binary: faiss and lucene since 2.19; byte:
lucene and faiss), which must give the same answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from opensearchpy import OpenSearch

import segstore


def f32(x: Any) -> float:
    return float(str(np.float32(x)))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSearch]:
    c = segstore.connect(tmp_path_factory.mktemp("seed-examples"))
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def index_name(client: OpenSearch) -> Iterator[str]:
    name = f"seed-{uuid.uuid4().hex[:10]}"
    yield name
    client.indices.delete(index=name, ignore_unavailable=True)


# ================================================================================== binary HNSW

BINARY_DOCS = {"1": ([7], 4.4), "2": ([10], 14.2), "3": ([15], 19.1), "4": ([99], 1.2), "5": ([80], 16.5)}


def hamming(a: int, b: int) -> int:
    return ((a & 0xFF) ^ (b & 0xFF)).bit_count()


def test_binary_hamming_arithmetic() -> None:
    """The corrected expectations, derived (not copied): 9 = 00001001."""
    assert {i: hamming(9, v[0]) for i, (v, _) in BINARY_DOCS.items()} == {"1": 3, "2": 2, "3": 2, "4": 4, "5": 4}
    assert f32(np.float32(1) / np.float32(3)) == 0.33333334


@pytest.mark.parametrize("engine", ["faiss", "lucene"])
def test_seed_binary_hnsw_example(client: OpenSearch, index_name: str, engine: str) -> None:
    body = {"settings": {"index": {"knn": True}}, "mappings": {"properties": {"my_vector": {
        "type": "knn_vector", "dimension": 8, "data_type": "binary", "space_type": "hamming",
        "method": {"name": "hnsw", "engine": engine}}}}}
    assert client.indices.create(index=index_name, body=body)["acknowledged"] is True
    bulk: list[dict[str, Any]] = []
    for i, (v, price) in BINARY_DOCS.items():
        bulk += [{"index": {"_index": index_name, "_id": i}}, {"my_vector": v, "price": price}]
    assert client.bulk(body=bulk)["errors"] is False
    client.indices.refresh(index=index_name)

    resp = client.search(index=index_name, body={"size": 2, "query": {"knn": {"my_vector": {
        "vector": [9], "k": 2}}}})
    assert resp["timed_out"] is False
    assert resp["_shards"] == {"total": 1, "successful": 1, "skipped": 0, "failed": 0}
    assert resp["hits"]["total"] == {"value": 2, "relation": "eq"}
    assert resp["hits"]["max_score"] == 0.33333334
    assert resp["hits"]["hits"] == [
        {"_index": index_name, "_id": "2", "_score": 0.33333334, "_source": {"my_vector": [10], "price": 14.2}},
        {"_index": index_name, "_id": "3", "_score": 0.33333334, "_source": {"my_vector": [15], "price": 19.1}},
    ]

    # every document: 1/(1 + Hamming)
    resp = client.search(index=index_name, body={"size": 5, "query": {"knn": {"my_vector": {
        "vector": [9], "k": 5}}}})
    assert [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]] == [
        ("2", 0.33333334), ("3", 0.33333334), ("1", 0.25), ("4", 0.2), ("5", 0.2)]
    for h in resp["hits"]["hits"]:
        assert h["_score"] == f32(np.float32(1) / np.float32(1 + hamming(9, BINARY_DOCS[h["_id"]][0][0])))

    # the page's wrong numbers are not what comes back
    assert 0.5 not in [h["_score"] for h in resp["hits"]["hits"]]

    # signed-byte round trip: -1 = 11111111 is at Hamming 8 - popcount(9) = 6 from [9]
    client.index(index=index_name, id="6", body={"my_vector": [-1], "price": 0.0}, refresh=True)
    resp = client.search(index=index_name, body={"size": 6, "query": {"knn": {"my_vector": {
        "vector": [9], "k": 6}}}})
    last = resp["hits"]["hits"][-1]
    assert (last["_id"], last["_score"], last["_source"]["my_vector"]) == ("6", f32(1 / 7), [-1])


# ==================================================================================== byte HNSW


@pytest.mark.parametrize("engine", ["lucene", "faiss"])
def test_seed_byte_hnsw_example(client: OpenSearch, index_name: str, engine: str) -> None:
    body = {"settings": {"index": {"knn": True, "knn.algo_param.ef_search": 100}},
            "mappings": {"properties": {"my_vector": {
                "type": "knn_vector", "dimension": 3, "data_type": "byte", "space_type": "l2",
                "method": {"name": "hnsw", "engine": engine, "parameters": {"ef_construction": 100, "m": 16}}}}}}
    assert client.indices.create(index=index_name, body=body)["acknowledged"] is True
    assert client.index(index=index_name, id="1", body={"my_vector": [-126, 28, 127]})["result"] == "created"
    assert client.index(index=index_name, id="2", body={"my_vector": [100, -128, 0]})["result"] == "created"
    client.indices.refresh(index=index_name)

    resp = client.search(index=index_name, body={"size": 2, "query": {"knn": {"my_vector": {
        "vector": [26, -120, 99], "k": 2}}}})
    d2 = (100 - 26) ** 2 + (-128 + 120) ** 2 + (0 - 99) ** 2
    d1 = (-126 - 26) ** 2 + (28 + 120) ** 2 + (127 - 99) ** 2
    assert (d2, d1) == (15341, 45792)
    s2, s1 = f32(np.float32(1) / np.float32(15342)), f32(np.float32(1) / np.float32(45793))
    assert (s2, s1) == (6.518055e-05, 2.1837399e-05)
    assert resp["hits"]["total"] == {"value": 2, "relation": "eq"}
    assert resp["hits"]["max_score"] == s2
    assert resp["hits"]["hits"] == [
        {"_index": index_name, "_id": "2", "_score": s2, "_source": {"my_vector": [100, -128, 0]}},
        {"_index": index_name, "_id": "1", "_score": s1, "_source": {"my_vector": [-126, 28, 127]}},
    ]
    # k = 1 keeps the nearest only
    resp = client.search(index=index_name, body={"size": 2, "query": {"knn": {"my_vector": {
        "vector": [26, -120, 99], "k": 1}}}})
    assert [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]] == [("2", s2)]
    # the range ends are exact on both sides (int8 storage, integer arithmetic)
    resp = client.search(index=index_name, body={"size": 2, "query": {"knn": {"my_vector": {
        "vector": [127, -128, -128], "k": 2}}}})
    dd2 = 27 ** 2 + 0 + 128 ** 2
    dd1 = 253 ** 2 + 156 ** 2 + 255 ** 2
    assert [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]] == [
        ("2", f32(np.float32(1) / np.float32(1 + dd2))), ("1", f32(np.float32(1) / np.float32(1 + dd1)))]
