"""The examples of ``/work/shared/seeds/*.md`` run through opensearch-py (embedded and HTTP).

* ``derived-source-for-vectors.md``: the usage example (float vectors, faiss hnsw, derived source) and the
  behaviour the page promises (transparent reads, update, reindex, restart, smaller store). Must pass.
* ``memory-optimized-vectors.md``: every request of the page must pass, IVF training walkthroughs
  included, as must ``mode``/``compression_level``, ``rescore`` (over real quantized first-pass scores), byte
  and binary vectors and nested vectors. Expected responses follow the page, or
  ``/work/shared/reference/vector-semantics.md`` §8 where the page is wrong (binary HNSW scores, error 2).
"""

from __future__ import annotations

import numpy as np
import pytest
from opensearchpy.exceptions import TransportError



def canonical(rows: np.ndarray) -> list[list[float]]:
    """float32 values written as their shortest decimal: they round-trip through derived source unchanged
    (derived-source.md §5.2)."""
    return [[float(str(np.float32(x))) for x in row] for row in rows]


# ================================================================== derived-source-for-vectors.md


DS_INDEX_BODY = {
    "settings": {"index.knn": True, "index.knn.derived_source.enabled": True},
    "mappings": {"properties": {
        "my_vector": {"type": "knn_vector", "dimension": 128, "method": {"name": "hnsw", "engine": "faiss"}},
        "title": {"type": "text"}}},
}


def _ds_docs(n: int = 30, seed: int = 7) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    vecs = canonical(rng.standard_normal((n, 128)).astype(np.float32))
    return {str(i): {"my_vector": vecs[i], "title": f"title {i}"} for i in range(n)}


def test_derived_source_usage_example(client, index_name):
    """``PUT /my_vector_index`` from the seed, then the reads the page calls transparent."""
    resp = client.indices.create(index=index_name, body=DS_INDEX_BODY)
    assert resp == {"acknowledged": True, "shards_acknowledged": True, "index": index_name}
    assert client.indices.get_mapping(index=index_name)[index_name]["mappings"] == DS_INDEX_BODY["mappings"]

    docs = _ds_docs()
    bulk = client.bulk(index=index_name, body=[x for i, d in docs.items() for x in ({"index": {"_id": i}}, d)])
    assert bulk["errors"] is False
    # realtime GET (translog) before any refresh returns the vector
    assert client.get(index=index_name, id="3")["_source"] == docs["3"]
    client.indices.refresh(index=index_name)
    for i in ("0", "17", "29"):
        assert client.get(index=index_name, id=i)["_source"] == docs[i]
    got = client.mget(index=index_name, body={"ids": list(docs)})["docs"]
    assert {d["_id"]: d["_source"] for d in got} == docs

    q = docs["5"]["my_vector"]
    resp = client.search(index=index_name, body={"size": 3, "query": {"knn": {"my_vector": {"vector": q, "k": 3}}}})
    top = resp["hits"]["hits"][0]
    assert top["_id"] == "5" and top["_score"] == 1.0 and top["_source"] == docs["5"]
    for h in resp["hits"]["hits"]:
        assert h["_source"] == docs[h["_id"]]
    # "_source" filtering still applies to the re-created vector
    resp = client.search(index=index_name, body={"size": 1, "_source": {"excludes": ["my_vector"]},
                                                 "query": {"knn": {"my_vector": {"vector": q, "k": 1}}}})
    assert resp["hits"]["hits"][0]["_source"] == {"title": "title 5"}
    assert client.get(index=index_name, id="5", _source_includes="my_vector")["_source"] == {
        "my_vector": docs["5"]["my_vector"]}


def test_derived_source_update_and_reindex(client, index_name):
    """"Update, reindex, and recovery operations work normally" (the seed's key benefits)."""
    client.indices.create(index=index_name, body=DS_INDEX_BODY)
    docs = _ds_docs(12)
    client.bulk(index=index_name, body=[x for i, d in docs.items() for x in ({"index": {"_id": i}}, d)],
                refresh="true")
    # partial update of another field keeps the vector (read back through injection)
    client.update(index=index_name, id="4", body={"doc": {"title": "renamed"}}, refresh="true")
    assert client.get(index=index_name, id="4")["_source"] == {**docs["4"], "title": "renamed"}
    docs["4"]["title"] = "renamed"
    # replacing the vector through an update
    new_vec = canonical(np.full((1, 128), 0.5, dtype=np.float32))[0]
    client.update(index=index_name, id="5", body={"doc": {"my_vector": new_vec}}, refresh="true")
    docs["5"]["my_vector"] = new_vec
    assert client.get(index=index_name, id="5")["_source"] == docs["5"]
    # reindex into an index without derived source: the full vectors flow to the target
    dest = index_name + "-plain"
    body = {"settings": {"index.knn": True, "index.knn.derived_source.enabled": False},
            "mappings": DS_INDEX_BODY["mappings"]}
    client.indices.create(index=dest, body=body)
    r = client.reindex(body={"source": {"index": index_name}, "dest": {"index": dest}}, refresh=True)
    assert r["created"] == 12 and r["failures"] == []
    got = client.mget(index=dest, body={"ids": list(docs)})["docs"]
    assert {d["_id"]: d["_source"] for d in got} == docs
    # and back into a derived index
    back = index_name + "-back"
    client.indices.create(index=back, body=DS_INDEX_BODY)
    client.reindex(body={"source": {"index": dest}, "dest": {"index": back}}, refresh=True)
    got = client.mget(index=back, body={"ids": list(docs)})["docs"]
    assert {d["_id"]: d["_source"] for d in got} == docs


def test_derived_source_responses_equal_plain_index(client, index_name):
    """derived-source.md §5.2: responses of a derived and a non-derived index are value-equal, and the
    derived index stores less (the seed's storage claim)."""
    plain = index_name + "-plain"
    client.indices.create(index=index_name, body=DS_INDEX_BODY)
    client.indices.create(index=plain, body={"settings": {"index.knn": True,
                                                          "index.knn.derived_source.enabled": False},
                                             "mappings": DS_INDEX_BODY["mappings"]})
    docs = _ds_docs(60, seed=11)
    for name in (index_name, plain):
        client.bulk(index=name, body=[x for i, d in docs.items() for x in ({"index": {"_id": i}}, d)],
                    refresh="true")
        client.indices.forcemerge(index=name, max_num_segments=1)
    q = {"size": 5, "query": {"knn": {"my_vector": {"vector": docs["9"]["my_vector"], "k": 5}}}}
    a = client.search(index=index_name, body=q)["hits"]["hits"]
    b = client.search(index=plain, body=q)["hits"]["hits"]
    assert [(h["_id"], h["_score"], h["_source"]) for h in a] == [(h["_id"], h["_score"], h["_source"]) for h in b]
    for i in docs:
        assert client.get(index=index_name, id=i)["_source"] == client.get(index=plain, id=i)["_source"] == docs[i]
    size = {n: client.indices.stats(index=n)["indices"][n]["primaries"]["store"]["size_in_bytes"]
            for n in (index_name, plain)}
    assert size[index_name] < size[plain], size


def test_derived_source_survives_restart_across_front_ends(tmp_path, start_server):
    """Written embedded, read back over HTTP from ``segstore serve`` on the same data directory."""
    import segstore

    data = tmp_path / "data"
    docs = _ds_docs(8, seed=3)
    c = segstore.connect(data)
    try:
        c.indices.create(index="my_vector_index", body=DS_INDEX_BODY)
        c.bulk(index="my_vector_index", body=[x for i, d in docs.items() for x in ({"index": {"_id": i}}, d)])
        c.update(index="my_vector_index", id="2", body={"doc": {"title": "after"}})
    finally:
        c.close()
    docs["2"]["title"] = "after"
    server, h = start_server(str(data))
    try:
        got = h.mget(index="my_vector_index", body={"ids": list(docs)})["docs"]
        assert {d["_id"]: d["_source"] for d in got} == docs
        h.indices.refresh(index="my_vector_index")
        resp = h.search(index="my_vector_index", body={"query": {"knn": {"my_vector": {
            "vector": docs["6"]["my_vector"], "k": 1}}}})
        assert resp["hits"]["hits"][0]["_id"] == "6" and resp["hits"]["hits"][0]["_source"] == docs["6"]
        h.close()
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("data_type, dim, vec", [("byte", 3, [-126, 28, 127]), ("binary", 16, [-7, 99])])
def test_derived_source_byte_and_binary(client, index_name, data_type, dim, vec):
    field = {"type": "knn_vector", "dimension": dim, "data_type": data_type,
             "method": {"name": "hnsw", "engine": "faiss"}}
    if data_type == "binary":
        field["space_type"] = "hamming"
    client.indices.create(index=index_name, body={"settings": {"index.knn": True}, "mappings": {"properties": {
        "my_vector": field}}})
    client.index(index=index_name, id="1", body={"my_vector": vec}, refresh="true")
    assert client.get(index=index_name, id="1")["_source"] == {"my_vector": vec}
    hit = client.search(index=index_name, body={"query": {"knn": {"my_vector": {"vector": vec, "k": 1}}}})
    assert hit["hits"]["hits"][0]["_source"] == {"my_vector": vec}


def test_derived_source_nested_vectors(client, index_name):
    client.indices.create(index=index_name, body={"settings": {"index.knn": True}, "mappings": {"properties": {
        "nested_field": {"type": "nested", "properties": {"my_vector": {"type": "knn_vector", "dimension": 2}}}}}})
    doc = {"nested_field": [{"my_vector": [1.0, 2.0]}, {"my_vector": [3.0, 4.0]}]}
    client.index(index=index_name, id="1", body=doc, refresh="true")
    assert client.get(index=index_name, id="1")["_source"] == doc


# ================================================================== memory-optimized-vectors.md


@pytest.mark.parametrize("extra", [{"mode": "on_disk"}, {"mode": "on_disk", "compression_level": "16x"}])
def test_memory_optimized_on_disk_mode(client, index_name, extra):
    body = {"settings": {"index": {"knn": True}}, "mappings": {"properties": {"my_vector": {
        "type": "knn_vector", "dimension": 3, "space_type": "l2", **extra}}}}
    assert client.indices.create(index=index_name, body=body)["acknowledged"] is True
    mapping = client.indices.get_mapping(index=index_name)[index_name]["mappings"]["properties"]["my_vector"]
    assert mapping["mode"] == "on_disk"
    docs = {"1": [1.5, 2.5, 3.5], "2": [-1.0, 0.5, 2.0], "3": [10.0, 10.0, 10.0]}
    client.bulk(index=index_name, body=[x for i, v in docs.items() for x in ({"index": {"_id": i}},
                                                                            {"my_vector": v})], refresh="true")
    resp = client.search(index=index_name, body={"size": 2, "query": {"knn": {"my_vector": {
        "vector": [1.5, 2.5, 3.5], "k": 2}}}})
    # on_disk rescores by default: exact l2 scores of the full-precision vectors
    assert [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]] == [
        ("1", 1.0), ("2", float(str(np.float32(1) / np.float32(1 + 6.25 + 4 + 2.25))))]


@pytest.mark.parametrize("rescore", [{"oversample_factor": 1.2}, True])
def test_memory_optimized_rescore_query(client, index_name, rescore):
    client.indices.create(index=index_name, body={"settings": {"index": {"knn": True}}, "mappings": {"properties": {
        "target-field": {"type": "knn_vector", "dimension": 4, "mode": "on_disk"}}}})
    docs = {"1": [2, 3, 5, 6], "2": [2, 3, 5, 7], "3": [9, 9, 9, 9]}
    client.bulk(index=index_name, body=[x for i, v in docs.items() for x in ({"index": {"_id": i}},
                                                                            {"target-field": v})], refresh="true")
    resp = client.search(index=index_name, body={"size": 2, "query": {"knn": {"target-field": {
        "vector": [2, 3, 5, 6], "k": 2, "rescore": rescore}}}})
    assert [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]] == [("1", 1.0), ("2", 0.5)]


def test_memory_optimized_rescore_oversample_bounds(client, index_name):
    client.indices.create(index=index_name, body={"settings": {"index": {"knn": True}}, "mappings": {"properties": {
        "target-field": {"type": "knn_vector", "dimension": 4, "mode": "on_disk"}}}})
    with pytest.raises(TransportError) as ei:
        client.search(index=index_name, body={"query": {"knn": {"target-field": {
            "vector": [2, 3, 5, 6], "k": 2, "rescore": {"oversample_factor": 100.5}}}}})
    assert ei.value.status_code == 400


def test_memory_optimized_byte_hnsw_example(client, index_name):
    body = {"settings": {"index": {"knn": True, "knn.algo_param.ef_search": 100}},
            "mappings": {"properties": {"my_vector": {
                "type": "knn_vector", "dimension": 3, "data_type": "byte", "space_type": "l2",
                "method": {"name": "hnsw", "engine": "lucene", "parameters": {"ef_construction": 100, "m": 16}}}}}}
    assert client.indices.create(index=index_name, body=body)["acknowledged"] is True
    assert client.index(index=index_name, id="1", body={"my_vector": [-126, 28, 127]})["result"] == "created"
    assert client.index(index=index_name, id="2", body={"my_vector": [100, -128, 0]})["result"] == "created"
    client.indices.refresh(index=index_name)
    resp = client.search(index=index_name, body={"size": 2, "query": {"knn": {"my_vector": {
        "vector": [26, -120, 99], "k": 2}}}})
    # l2 on byte values: doc 2 d = 74² + 8² + 99² = 15341, doc 1 d = 152² + 148² + 28² = 45792
    hits = resp["hits"]
    assert hits["total"] == {"value": 2, "relation": "eq"}
    assert [(h["_id"], h["_score"]) for h in hits["hits"]] == [
        ("2", float(str(np.float32(1) / np.float32(15342)))), ("1", float(str(np.float32(1) / np.float32(45793))))]
    assert hits["hits"][0]["_source"] == {"my_vector": [100, -128, 0]}
    # out-of-range and fractional values are rejected
    with pytest.raises(TransportError) as ei:
        client.index(index=index_name, id="3", body={"my_vector": [200, 0, 0]})
    assert ei.value.info["error"]["caused_by"]["reason"] == (
        "[data_type] field was set as [byte] in index mapping. But, KNN vector values are not within in the byte "
        "range [-128, 127]")


BINARY_DOCS = {"1": ([7], 4.4), "2": ([10], 14.2), "3": ([15], 19.1), "4": ([99], 1.2), "5": ([80], 16.5)}


def test_memory_optimized_binary_hnsw_example(client, raw, index_name):
    body = {"settings": {"index": {"knn": True}}, "mappings": {"properties": {"my_vector": {
        "type": "knn_vector", "dimension": 8, "data_type": "binary", "space_type": "hamming",
        "method": {"name": "hnsw", "engine": "faiss"}}}}}
    assert client.indices.create(index=index_name, body=body)["acknowledged"] is True
    ndjson = "".join(f'{{"index": {{"_index": "{index_name}", "_id": "{i}"}}}}\n'
                     f'{{"my_vector": {v}, "price": {p}}}\n' for i, (v, p) in BINARY_DOCS.items())
    status, _, resp = raw("PUT", "/_bulk", ndjson, {"content-type": "application/x-ndjson"})  # the seed's PUT _bulk
    assert status == 200 and resp["errors"] is False
    client.indices.refresh(index=index_name)
    resp = client.search(index=index_name, body={"size": 2, "query": {"knn": {"my_vector": {"vector": [9], "k": 2}}}})
    # vector-semantics.md §8 error 2: Hamming(9, 10) = Hamming(9, 15) = 2 -> 1/3; the page's 0.5/0.25 is wrong
    assert resp["hits"]["total"] == {"value": 2, "relation": "eq"}
    assert resp["hits"]["max_score"] == 0.33333334
    assert resp["hits"]["hits"] == [
        {"_index": index_name, "_id": "2", "_score": 0.33333334, "_source": {"my_vector": [10], "price": 14.2}},
        {"_index": index_name, "_id": "3", "_score": 0.33333334, "_source": {"my_vector": [15], "price": 19.1}},
    ]
    # [80] and [99] are at Hamming distance 4 -> 0.2
    resp = client.search(index=index_name, body={"size": 5, "query": {"knn": {"my_vector": {"vector": [9], "k": 5}}}})
    assert {h["_id"]: h["_score"] for h in resp["hits"]["hits"]} == {"2": 0.33333334, "3": 0.33333334, "1": 0.25,
                                                                     "4": 0.2, "5": 0.2}


def _train_model(client, model_id: str, body: dict) -> None:
    client.transport.perform_request("POST", f"/_plugins/_knn/models/{model_id}/_train", body=body)
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = client.transport.perform_request("GET", f"/_plugins/_knn/models/{model_id}",
                                                 params={"filter_path": "state"})
        if state.get("state") in ("created", "failed"):
            assert state["state"] == "created", state
            return
        time.sleep(0.2)
    raise AssertionError("model training did not finish")


def test_memory_optimized_byte_ivf_example(client, index_name):
    train = index_name + "-train"
    client.indices.create(index=train, body={"mappings": {"properties": {"train-field": {
        "type": "knn_vector", "dimension": 4, "data_type": "byte"}}}})
    rows = {"1": [127, 100, 0, -120], "2": [2, -128, -10, 50], "3": [13, -100, 5, 126], "4": [5, 100, -6, -125]}
    client.bulk(body=[x for i, v in rows.items() for x in ({"index": {"_index": train, "_id": i}},
                                                           {"train-field": v})], refresh="true")
    model = f"{index_name}-byte-vector-model"
    _train_model(client, model, {"training_index": train, "training_field": "train-field", "dimension": 4,
                                 "description": "model with byte data", "data_type": "byte",
                                 "method": {"name": "ivf", "engine": "faiss", "space_type": "l2",
                                            "parameters": {"nlist": 1, "nprobes": 1}}})
    client.indices.create(index=index_name, body={"settings": {"index": {"knn": True}}, "mappings": {"properties": {
        "my_vector": {"type": "knn_vector", "model_id": model}}}})
    docs = {"1": [7, 10, 15, -120], "2": [10, -100, 120, -108], "3": [1, -2, 5, -50], "4": [9, -7, 45, -78],
            "5": [80, -70, 127, -128]}
    client.bulk(body=[x for i, v in docs.items() for x in ({"index": {"_index": index_name, "_id": i}},
                                                           {"my_vector": v})], refresh="true")
    resp = client.search(index=index_name, body={"size": 2, "query": {"knn": {"my_vector": {
        "vector": [100, -120, 50, -45], "k": 2}}}})
    q = np.array([100, -120, 50, -45], dtype=np.float32)
    dist = {i: float(((np.array(v, dtype=np.float32) - q) ** 2).sum()) for i, v in docs.items()}
    best = sorted(dist, key=lambda i: dist[i])[:2]
    assert [h["_id"] for h in resp["hits"]["hits"]] == best


def test_memory_optimized_binary_ivf_example(client, index_name):
    train = index_name + "-train"
    client.indices.create(index=train, body={"mappings": {"properties": {"train-field": {
        "type": "knn_vector", "dimension": 8, "data_type": "binary"}}}})
    client.bulk(body=[x for i in range(1, 41) for x in ({"index": {"_index": train, "_id": str(i)}},
                                                        {"train-field": [i]})], refresh="true")
    model = f"{index_name}-test-binary-model"
    _train_model(client, model, {"training_index": train, "training_field": "train-field", "dimension": 8,
                                 "description": "model with binary data", "data_type": "binary",
                                 "space_type": "hamming",
                                 "method": {"name": "ivf", "engine": "faiss", "parameters": {"nlist": 16,
                                                                                             "nprobes": 1}}})
    client.indices.create(index=index_name, body={"settings": {"index": {"knn": True}}, "mappings": {"properties": {
        "my_vector": {"type": "knn_vector", "model_id": model}}}})
    client.bulk(body=[x for i, (v, p) in BINARY_DOCS.items()
                      for x in ({"index": {"_index": index_name, "_id": i}}, {"my_vector": v, "price": p})],
                refresh="true")
    resp = client.search(index=index_name, body={"size": 2, "query": {"knn": {"my_vector": {"vector": [8], "k": 2}}}})
    # query [8]: Hamming to 10 is 1 -> 0.5, to 15 is 3 -> 0.25 (the page is right for IVF); nprobes 1 may
    # miss a list, so only the best hit is certain
    assert resp["hits"]["hits"][0] == {"_index": index_name, "_id": "2", "_score": 0.5,
                                       "_source": {"my_vector": [10], "price": 14.2}}
