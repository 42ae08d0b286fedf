"""IVF fields from trained models, end to end through opensearch-py: the seed's byte and binary IVF
walkthroughs step by step (seeds/memory-optimized-vectors.md "Example: IVF"), float IVF with the flat and
sq encoders, nprobes from the model and from ``method_parameters``, merges, and the IVF graph files."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from opensearchpy.exceptions import RequestError
from segstore_codecs.segstore1.ivf_graph import IvfGraph

from tests.models.conftest import wait_for_state


def ndjson(lines: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(x) + "\n" for x in lines)


def strip_took(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if k != "took"}


# ------------------------------------------------------------------------------------------- the seed


def test_seed_byte_ivf_walkthrough(client: Any) -> None:
    client.indices.create(index="train-index", body={"mappings": {"properties": {
        "train-field": {"type": "knn_vector", "dimension": 4, "data_type": "byte"}}}})
    train_rows = [[127, 100, 0, -120], [2, -128, -10, 50], [13, -100, 5, 126], [5, 100, -6, -125]]
    client.bulk(body=ndjson([x for i, r in enumerate(train_rows, 1) for x in (
        {"index": {"_index": "train-index", "_id": str(i)}}, {"train-field": r})]))
    assert client.plugins.knn.train_model(model_id="byte-vector-model", body={
        "training_index": "train-index", "training_field": "train-field", "dimension": 4,
        "description": "model with byte data", "data_type": "byte",
        "method": {"name": "ivf", "engine": "faiss", "space_type": "l2", "parameters": {"nlist": 1, "nprobes": 1}},
    }) == {"model_id": "byte-vector-model"}
    wait_for_state(client, "byte-vector-model")
    assert client.plugins.knn.get_model(model_id="byte-vector-model", params={"filter_path": "state"}) == {
        "state": "created"}
    assert client.indices.create(index="test-byte-ivf", body={
        "settings": {"index": {"knn": True}},
        "mappings": {"properties": {"my_vector": {"type": "knn_vector", "model_id": "byte-vector-model"}}},
    })["acknowledged"] is True
    docs = [[7, 10, 15, -120], [10, -100, 120, -108], [1, -2, 5, -50], [9, -7, 45, -78], [80, -70, 127, -128]]
    res = client.bulk(body=ndjson([x for i, r in enumerate(docs, 1) for x in (
        {"index": {"_index": "test-byte-ivf", "_id": str(i)}}, {"my_vector": r})]), params={"refresh": "true"})
    assert res["errors"] is False
    res = client.search(index="test-byte-ivf", body={"size": 2, "query": {"knn": {"my_vector": {
        "vector": [100, -120, 50, -45], "k": 2}}}})
    # squared L2: doc 5 -> 15718, doc 2 -> 17369; score 1 / (1 + d) printed as Java floats
    assert strip_took(res) == {
        "timed_out": False, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": 2, "relation": "eq"}, "max_score": 6.361728e-05, "hits": [
            {"_index": "test-byte-ivf", "_id": "5", "_score": 6.361728e-05,
             "_source": {"my_vector": [80, -70, 127, -128]}},
            {"_index": "test-byte-ivf", "_id": "2", "_score": 5.7570523e-05,
             "_source": {"my_vector": [10, -100, 120, -108]}}]}}


def test_seed_binary_ivf_walkthrough(client: Any) -> None:
    client.indices.create(index="train-index", body={"mappings": {"properties": {
        "train-field": {"type": "knn_vector", "dimension": 8, "data_type": "binary"}}}})
    client.bulk(body=ndjson([x for i in range(1, 41) for x in (
        {"index": {"_index": "train-index", "_id": str(i)}}, {"train-field": [i]})]))
    client.plugins.knn.train_model(model_id="test-binary-model", body={
        "training_index": "train-index", "training_field": "train-field", "dimension": 8,
        "description": "model with binary data", "data_type": "binary", "space_type": "hamming",
        "method": {"name": "ivf", "engine": "faiss", "parameters": {"nlist": 16, "nprobes": 1}}})
    model = wait_for_state(client, "test-binary-model")
    assert (model["state"], model["space_type"], model["data_type"]) == ("created", "hamming", "binary")
    assert client.plugins.knn.get_model(model_id="test-binary-model", params={"filter_path": "state"}) == {
        "state": "created"}
    client.indices.create(index="test-binary-ivf", body={
        "settings": {"index": {"knn": True}},
        "mappings": {"properties": {"my_vector": {"type": "knn_vector", "model_id": "test-binary-model"}}}})
    docs = [([7], 4.4), ([10], 14.2), ([15], 19.1), ([99], 1.2), ([80], 16.5)]
    client.bulk(body=ndjson([x for i, (v, p) in enumerate(docs, 1) for x in (
        {"index": {"_index": "test-binary-ivf", "_id": str(i)}}, {"my_vector": v, "price": p})]),
        params={"refresh": "true"})
    res = client.search(index="test-binary-ivf", body={"size": 2, "query": {"knn": {"my_vector": {
        "vector": [8], "k": 2}}}})
    assert strip_took(res) == {
        "timed_out": False, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": 2, "relation": "eq"}, "max_score": 0.5, "hits": [
            {"_index": "test-binary-ivf", "_id": "2", "_score": 0.5, "_source": {"my_vector": [10], "price": 14.2}},
            {"_index": "test-binary-ivf", "_id": "3", "_score": 0.25, "_source": {"my_vector": [15], "price": 19.1}},
        ]}}
    assert_ivf_graphs(client, "test-binary-ivf", "my_vector", 5)


def assert_ivf_graphs(client: Any, index: str, field: str, count: int) -> list[IvfGraph]:
    """The index's segments hold IVF graphs over ``count`` vectors in total."""
    writer = client.transport.node.writer(index)
    reader = writer.acquire_reader()
    try:
        graphs = [leaf.graph(field) for leaf in reader.leaves]
        assert all(isinstance(g, IvfGraph) for g in graphs)
        assert sum(g.count for g in graphs) == count
        assert all(g.memory_bytes() > 0 for g in graphs)
        return graphs
    finally:
        reader.dec_ref()


# ---------------------------------------------------------------------------------------- float IVF

D, NLIST = 16, 16


def clustered(n: int, seed: int, spread: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).normal(size=(24, D)) * spread
    return (centers[rng.integers(0, 24, n)] + rng.normal(size=(n, D))).astype(np.float32)


def setup_float(client: Any, space: str, encoder: str | None, nprobes: int, n_docs: int = 3000,
                segments: int = 1, spread: float = 3.0) -> np.ndarray:
    client.indices.create(index="train", body={"mappings": {"properties": {
        "f": {"type": "knn_vector", "dimension": D}}}})
    train_rows = clustered(1500, seed=1, spread=spread)
    client.bulk(body=ndjson([x for i, r in enumerate(train_rows) for x in (
        {"index": {"_index": "train", "_id": str(i)}}, {"f": r.tolist()})]), params={"refresh": "true"})
    params: dict[str, Any] = {"nlist": NLIST, "nprobes": nprobes}
    if encoder:
        params["encoder"] = {"name": encoder}
    client.plugins.knn.train_model(model_id="fm", body={
        "training_index": "train", "training_field": "f", "dimension": D,
        "method": {"name": "ivf", "space_type": space, "parameters": params}})
    assert wait_for_state(client, "fm")["state"] == "created"
    client.indices.create(index="ivf", body={"settings": {"index.knn": True, "index.refresh_interval": "-1"},
                                             "mappings": {"properties": {
                                                 "v": {"type": "knn_vector", "model_id": "fm"},
                                                 "tag": {"type": "keyword"}}}})
    docs = clustered(n_docs, seed=2, spread=spread)
    per = n_docs // segments
    for s in range(segments):
        part = range(s * per, n_docs if s == segments - 1 else (s + 1) * per)
        res = client.bulk(body=ndjson([x for i in part for x in (
            {"index": {"_index": "ivf", "_id": str(i)}}, {"v": docs[i].tolist(), "tag": "even" if i % 2 == 0 else "odd"})]),
            params={"refresh": "true"})
        assert res["errors"] is False
    return docs


def exact_top(space: str, docs: np.ndarray, q: np.ndarray, k: int) -> list[str]:
    if space == "l2":
        d = ((docs - q) ** 2).sum(1)
    elif space == "cosinesimil":
        d = -(docs / np.linalg.norm(docs, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    else:
        d = -(docs @ q)
    return [str(i) for i in np.argsort(d, kind="stable")[:k]]


def recall(client: Any, space: str, docs: np.ndarray, queries: np.ndarray, k: int = 10,
           method_parameters: dict[str, Any] | None = None, filt: dict[str, Any] | None = None) -> float:
    total = 0.0
    for q in queries:
        knn: dict[str, Any] = {"vector": q.tolist(), "k": k}
        if method_parameters:
            knn["method_parameters"] = method_parameters
        res = client.search(index="ivf", body={"size": k, "query": {"knn": {"v": knn}}, "_source": False})
        got = [h["_id"] for h in res["hits"]["hits"]]
        total += len(set(got) & set(exact_top(space, docs, q, k))) / k
    return total / len(queries)


@pytest.mark.parametrize("space, encoder", [("l2", None), ("l2", "flat"), ("l2", "sq"), ("innerproduct", None),
                                            ("cosinesimil", "sq")])
def test_float_ivf(client: Any, space: str, encoder: str | None) -> None:
    docs = setup_float(client, space, encoder, nprobes=NLIST)
    graphs = assert_ivf_graphs(client, "ivf", "v", 3000)
    assert graphs[0].model.kind == ("sq_fp16" if encoder == "sq" else "flat")
    queries = clustered(15, seed=3)
    assert recall(client, space, docs, queries) >= 0.97
    res = client.search(index="ivf", body={"size": 3, "query": {"knn": {"v": {"vector": docs[7].tolist(), "k": 3}}}})
    top = res["hits"]["hits"][0]
    if space != "innerproduct":  # a longer vector can beat the query's own under inner product
        assert top["_id"] == "7"
    if space == "l2":
        assert top["_score"] == 1.0
    memory = sum(g.memory_bytes() for g in graphs)
    code = 2 * D if encoder == "sq" else 4 * D
    assert 3000 * (code + 8) + NLIST * D * 4 <= memory <= 3000 * (code + 8) + NLIST * D * 4 + 64 * NLIST


def test_nprobes_default_and_override(client: Any) -> None:
    docs = setup_float(client, "l2", None, nprobes=1, spread=0.0)  # one blob: neighbours span lists
    queries = clustered(30, seed=4, spread=0.0)
    r_default = recall(client, "l2", docs, queries)
    r_one = recall(client, "l2", docs, queries, method_parameters={"nprobes": 1})
    r_all = recall(client, "l2", docs, queries, method_parameters={"nprobes": NLIST})
    assert r_default == r_one < r_all and r_all >= 0.99
    with pytest.raises(RequestError) as e:
        recall(client, "l2", docs, queries[:1], method_parameters={"ef_search": 10})
    assert "Parameters not valid for [FAISS]:[ivf]:[k] combination: [Validation Failed: 1: Unknown parameter " \
           "'ef_search' found;]" in json.dumps(e.value.info)


def test_filtered_ivf_search(client: Any) -> None:
    docs = setup_float(client, "l2", None, nprobes=NLIST, n_docs=3000)
    q = clustered(1, seed=5)[0]
    res = client.search(index="ivf", body={"size": 10, "query": {"knn": {"v": {
        "vector": q.tolist(), "k": 10, "filter": {"term": {"tag": "even"}}}}}})
    got = [h["_id"] for h in res["hits"]["hits"]]
    even = np.arange(0, 3000, 2)
    want = [str(even[i]) for i in np.argsort(((docs[even] - q) ** 2).sum(1), kind="stable")[:10]]
    assert got == want


def test_merge_keeps_ivf_results(client: Any) -> None:
    setup_float(client, "l2", None, nprobes=NLIST, n_docs=3000, segments=2)
    for i in range(0, 3000, 7):
        client.delete(index="ivf", id=str(i))
    client.indices.refresh(index="ivf")
    queries = clustered(10, seed=6)

    def top_ids() -> list[list[str]]:
        return [[h["_id"] for h in client.search(index="ivf", body={"size": 10, "query": {"knn": {"v": {
            "vector": q.tolist(), "k": 10}}}})["hits"]["hits"]] for q in queries]

    before = top_ids()
    assert len(assert_ivf_graphs(client, "ivf", "v", 3000)) == 2
    client.indices.forcemerge(index="ivf", params={"max_num_segments": 1})
    graphs = assert_ivf_graphs(client, "ivf", "v", 3000 - len(range(0, 3000, 7)))
    assert len(graphs) == 1
    assert top_ids() == before
    assert all(int(i) % 7 for row in before for i in row)
