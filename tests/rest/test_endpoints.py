"""Every endpoint of the REST router, driven through opensearch-py, with OpenSearch's response fields.

Each test runs twice (``client`` is parametrised ``embedded`` / ``http``, see conftest.py). Expected values
are OpenSearch 3.x behaviour (reliability.md §9, vector-semantics.md §2.1 and §6). Tests marked
``xfail(strict=True)`` pin a known deviation of segstore from OpenSearch (see the reason: ``BUG-n``); they
start failing (XPASS strict) once the engine is fixed, and the marker must then be removed.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from opensearchpy import helpers
from opensearchpy.exceptions import ConflictError, NotFoundError

SHARDS = {"total": 2, "successful": 1, "failed": 0}  # 1 primary + 1 unassigned replica, as OpenSearch
SEARCH_SHARDS = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}

# Four documents and the query [1, 1]; l2 score = 1 / (1 + squared distance), float32, shortest repr.
DOCS = {
    "1": {"v": [1.0, 2.0], "t": "red apple", "tag": "a", "n": 1},   # d = 1 -> 0.5
    "2": {"v": [0.0, 0.0], "t": "green apple", "tag": "b", "n": 2},  # d = 2 -> 0.33333334
    "3": {"v": [3.0, 3.0], "t": "red cherry", "tag": "a", "n": 3},   # d = 8 -> 0.11111111
    "4": {"v": [1.0, 1.0], "t": "blue berry", "tag": "c", "n": 4},   # d = 0 -> 1.0
}
Q = [1.0, 1.0]
L2_RANKED = [("4", 1.0), ("1", 0.5), ("2", 0.33333334), ("3", 0.11111111)]
TEXT_PROPS = {"t": {"type": "text"}, "tag": {"type": "keyword"}, "n": {"type": "integer"}}


def op_result(index: str, doc_id: str, version: int, result: str, seq_no: int) -> dict[str, Any]:
    return {"_index": index, "_id": doc_id, "_version": version, "result": result, "_shards": SHARDS,
            "_seq_no": seq_no, "_primary_term": 1}


def hit_ids(resp: dict[str, Any]) -> list[str]:
    return [h["_id"] for h in resp["hits"]["hits"]]


@pytest.fixture
def populated(client, index_name, knn_index) -> str:
    """``index_name`` with DOCS, refreshed (one segment)."""
    knn_index(index_name, extra_props=TEXT_PROPS)
    body = "".join(f'{{"index":{{"_id":"{i}"}}}}\n{_json(d)}\n' for i, d in DOCS.items())
    resp = client.bulk(index=index_name, body=body, refresh="true")
    assert resp["errors"] is False
    return index_name


def _json(x: Any) -> str:
    import json

    return json.dumps(x)


# ------------------------------------------------------------------------------------------------ cluster


def test_ping_head_root(client, raw):
    assert client.ping() is True
    status, _, body = raw("HEAD", "/")
    assert status == 200
    assert body is None


def test_info_get_root(client):
    info = client.info()
    assert set(info) == {"name", "cluster_name", "cluster_uuid", "version", "tagline"}
    v = info["version"]
    assert v["distribution"] == "opensearch"
    assert re.fullmatch(r"\d+\.\d+\.\d+", v["number"]), v["number"]
    assert int(v["number"].split(".")[0]) >= 2  # helpers/test.py reads a 2.x/3.x style number
    assert set(v) == {"distribution", "number", "build_type", "build_hash", "build_date", "build_snapshot",
                      "lucene_version", "minimum_wire_compatibility_version",
                      "minimum_index_compatibility_version"}
    assert v["build_snapshot"] is False
    assert info["tagline"] == "The OpenSearch Project: https://opensearch.org/"


# ------------------------------------------------------------------------------------------------ indices


def test_index_create_exists_get_delete(client, raw, index_name):
    mappings = {"properties": {"v": {"type": "knn_vector", "dimension": 3}, "title": {"type": "text"}}}
    resp = client.indices.create(index=index_name, body={"settings": {"index.knn": True}, "mappings": mappings})
    assert resp == {"acknowledged": True, "shards_acknowledged": True, "index": index_name}

    assert client.indices.exists(index=index_name) is True
    assert raw("HEAD", f"/{index_name}")[::2] == (200, None)
    assert client.indices.exists(index=index_name + "-missing") is False
    assert raw("HEAD", f"/{index_name}-missing")[::2] == (404, None)

    assert client.indices.get_mapping(index=index_name) == {index_name: {"mappings": mappings}}
    got = client.indices.get(index=index_name)
    assert set(got) == {index_name}
    assert got[index_name]["aliases"] == {}
    assert got[index_name]["mappings"] == mappings
    assert got[index_name]["settings"]["index"]["knn"] == "true"
    assert index_name in client.indices.get_mapping()  # GET /_mapping

    assert client.indices.delete(index=index_name) == {"acknowledged": True}
    assert client.indices.exists(index=index_name) is False
    with pytest.raises(NotFoundError):
        client.indices.get_mapping(index=index_name)
    # the name is free again
    assert client.indices.create(index=index_name)["acknowledged"] is True


def test_get_settings_values_are_strings(client, index_name):
    client.indices.create(index=index_name, body={"settings": {"index": {"knn": True, "number_of_replicas": 0,
                                                                          "refresh_interval": "5s"}}})
    resp = client.indices.get_settings(index=index_name)
    s = resp[index_name]["settings"]["index"]
    assert s["knn"] == "true"
    assert s["number_of_shards"] == "1"
    assert s["number_of_replicas"] == "0"
    assert s["refresh_interval"] == "5s"
    assert s["provided_name"] == index_name
    assert isinstance(s["uuid"], str) and s["uuid"]
    assert s["creation_date"].isdigit()
    assert isinstance(s["version"]["created"], str)
    for key, value in s.items():
        if not isinstance(value, dict):
            assert isinstance(value, str), (key, value)
    assert index_name in client.indices.get_settings()  # GET /_settings


def test_get_settings_knn_subsettings(client, index_name):
    client.indices.create(index=index_name, body={"settings": {"index.knn": True,
                                                               "index.knn.algo_param.ef_search": 100}})
    s = client.indices.get_settings(index=index_name)[index_name]["settings"]["index"]
    # OpenSearch's Settings#getAsStructuredMap falls back to dotted keys when a key is both a leaf and a prefix
    assert s["knn"] == "true"
    assert s["knn.algo_param"] == {"ef_search": "100"}
    assert client.cat.indices(index=index_name, format="json")[0]["index"] == index_name


# ------------------------------------------------------------------------------------------------ documents


def test_index_doc_put_post_versions_seq_no(client, raw, index_name, knn_index):
    knn_index(index_name)
    status, _, body = raw("PUT", f"/{index_name}/_doc/1", {"v": [1, 2]})
    assert (status, body) == (201, op_result(index_name, "1", 1, "created", 0))
    status, _, body = raw("POST", f"/{index_name}/_doc/1", {"v": [1, 3]})
    assert (status, body) == (200, op_result(index_name, "1", 2, "updated", 1))
    r = client.index(index=index_name, id="1", body={"v": [1, 4]})
    assert r == op_result(index_name, "1", 3, "updated", 2)
    r = client.index(index=index_name, id="2", body={"v": [0, 0]})
    assert r == op_result(index_name, "2", 1, "created", 3)
    got = client.get(index=index_name, id="1")
    assert got == {"_index": index_name, "_id": "1", "_version": 3, "_seq_no": 2, "_primary_term": 1,
                   "found": True, "_source": {"v": [1.0, 4.0]}}


def test_op_type_create_and_create_endpoint(client, raw, index_name, knn_index):
    knn_index(index_name)
    r = client.index(index=index_name, id="1", body={"v": [1, 1]}, op_type="create")
    assert r["result"] == "created"
    with pytest.raises(ConflictError) as ei:
        client.index(index=index_name, id="1", body={"v": [2, 2]}, op_type="create")
    assert ei.value.status_code == 409
    assert ei.value.error == "version_conflict_engine_exception"
    assert ei.value.info["error"]["reason"] == "[1]: version conflict, document already exists (current version [1])"

    status, _, body = raw("PUT", f"/{index_name}/_create/2", {"v": [2, 2]})
    assert (status, body["result"], body["_version"]) == (201, "created", 1)
    status, _, body = raw("POST", f"/{index_name}/_create/3", {"v": [3, 3]})
    assert (status, body["result"]) == (201, "created")
    with pytest.raises(ConflictError) as ei:
        client.create(index=index_name, id="2", body={"v": [9, 9]})
    assert ei.value.info["error"]["type"] == "version_conflict_engine_exception"
    assert ei.value.info["error"]["reason"] == "[2]: version conflict, document already exists (current version [1])"
    # the failed creates wrote nothing
    assert client.get(index=index_name, id="1")["_source"] == {"v": [1.0, 1.0]}
    assert client.get(index=index_name, id="2")["_source"] == {"v": [2.0, 2.0]}


def test_post_doc_auto_id(client, raw, index_name, knn_index):
    knn_index(index_name)
    status, _, body = raw("POST", f"/{index_name}/_doc", {"v": [1, 1], "t": "x"})
    assert status == 201
    assert body["result"] == "created"
    assert body["_version"] == 1
    assert re.fullmatch(r"[A-Za-z0-9_-]{20}", body["_id"]), body["_id"]
    r = client.index(index=index_name, body={"v": [2, 2]})
    assert r["result"] == "created" and r["_id"] != body["_id"]
    assert client.get(index=index_name, id=body["_id"])["_source"] == {"v": [1.0, 1.0], "t": "x"}


def test_get_source_filtering(client, index_name, knn_index):
    knn_index(index_name, dim=2)
    src = {"v": [0.5, 0.25], "t": "hello", "n": {"x": 1, "y": {"z": 2, "w": 3}}, "tags": ["a", "b"]}
    client.index(index=index_name, id="1", body=src)
    assert client.get(index=index_name, id="1")["_source"] == src
    no_src = client.get(index=index_name, id="1", _source=False)
    assert "_source" not in no_src and no_src["found"] is True
    assert client.get(index=index_name, id="1", _source="t,v")["_source"] == {"v": [0.5, 0.25], "t": "hello"}
    assert client.get(index=index_name, id="1", _source_includes="n.*")["_source"] == {
        "n": {"x": 1, "y": {"z": 2, "w": 3}}}
    assert client.get(index=index_name, id="1", _source_includes="n.y.*")["_source"] == {"n": {"y": {"z": 2, "w": 3}}}
    assert client.get(index=index_name, id="1", _source_excludes="v,n.y.*")["_source"] == {
        "t": "hello", "n": {"x": 1, "y": {}}, "tags": ["a", "b"]}
    assert client.get(index=index_name, id="1", _source_includes="n.*,t",
                      _source_excludes="n.y.w")["_source"] == {"t": "hello", "n": {"x": 1, "y": {"z": 2}}}
    assert client.get(index=index_name, id="1", _source_includes="t*")["_source"] == {"t": "hello",
                                                                                       "tags": ["a", "b"]}


def test_get_and_head_missing_doc(client, raw, index_name, knn_index):
    knn_index(index_name)
    with pytest.raises(NotFoundError) as ei:
        client.get(index=index_name, id="nope")
    assert ei.value.status_code == 404
    assert ei.value.info == {"_index": index_name, "_id": "nope", "found": False}
    assert client.exists(index=index_name, id="nope") is False
    client.index(index=index_name, id="yes", body={"v": [1, 1]})
    assert client.exists(index=index_name, id="yes") is True
    assert raw("HEAD", f"/{index_name}/_doc/yes")[::2] == (200, None)
    assert raw("HEAD", f"/{index_name}/_doc/nope")[::2] == (404, None)


def test_delete_doc(client, raw, index_name, knn_index):
    knn_index(index_name)
    client.index(index=index_name, id="1", body={"v": [1, 1]})
    r = client.delete(index=index_name, id="1")
    assert r == op_result(index_name, "1", 2, "deleted", 1)
    with pytest.raises(NotFoundError):
        client.get(index=index_name, id="1")
    status, _, body = raw("DELETE", f"/{index_name}/_doc/1")
    assert status == 404
    assert body["result"] == "not_found"
    assert body["_index"] == index_name and body["_id"] == "1"
    assert body["_seq_no"] > r["_seq_no"]
    with pytest.raises(NotFoundError) as ei:
        client.delete(index=index_name, id="never")
    assert ei.value.info["result"] == "not_found"


def test_if_seq_no_if_primary_term(client, index_name, knn_index):
    knn_index(index_name)
    r1 = client.index(index=index_name, id="1", body={"v": [1, 1], "k": 1})
    r2 = client.index(index=index_name, id="1", body={"v": [1, 1], "k": 2}, if_seq_no=r1["_seq_no"],
                      if_primary_term=r1["_primary_term"])
    assert r2["result"] == "updated" and r2["_version"] == 2 and r2["_seq_no"] > r1["_seq_no"]
    with pytest.raises(ConflictError) as ei:
        client.index(index=index_name, id="1", body={"v": [1, 1], "k": 3}, if_seq_no=r1["_seq_no"],
                     if_primary_term=1)
    assert ei.value.status_code == 409
    err = ei.value.info["error"]
    assert err["type"] == "version_conflict_engine_exception"
    assert err["reason"] == (f"[1]: version conflict, required seqNo [{r1['_seq_no']}], primary term [1]. current "
                             f"document has seqNo [{r2['_seq_no']}] and primary term [1]")
    assert err["root_cause"][0]["type"] == "version_conflict_engine_exception"
    with pytest.raises(ConflictError) as ei:
        client.delete(index=index_name, id="1", if_seq_no=99, if_primary_term=1)
    assert ei.value.info["error"]["reason"] == (f"[1]: version conflict, required seqNo [99], primary term [1]. "
                                                f"current document has seqNo [{r2['_seq_no']}] and primary term [1]")
    got = client.get(index=index_name, id="1")
    assert got["_source"]["k"] == 2 and got["_version"] == 2 and got["_seq_no"] == r2["_seq_no"]


# ------------------------------------------------------------------------------------------------ update


def test_update_partial_doc_merges_nested_maps(client, index_name, knn_index):
    knn_index(index_name)
    client.index(index=index_name, id="1", body={"v": [1, 2], "n": {"x": 1, "y": {"z": 2}}, "l": [1, 2]})
    r = client.update(index=index_name, id="1", body={"doc": {"n": {"y": {"w": 3}}, "l": [3], "t": "new"}})
    assert r == op_result(index_name, "1", 2, "updated", 1)
    assert client.get(index=index_name, id="1")["_source"] == {
        "v": [1.0, 2.0], "n": {"x": 1, "y": {"z": 2, "w": 3}}, "l": [3], "t": "new"}
    # changing the vector through a partial doc
    client.update(index=index_name, id="1", body={"doc": {"v": [5, 6]}})
    assert client.get(index=index_name, id="1")["_source"]["v"] == [5.0, 6.0]


def test_update_noop_detection(client, index_name, knn_index):
    knn_index(index_name)
    client.index(index=index_name, id="1", body={"v": [1, 2], "n": {"x": 1}})
    r = client.update(index=index_name, id="1", body={"doc": {"n": {"x": 1}}})
    assert r == {"_index": index_name, "_id": "1", "_version": 1, "result": "noop",
                 "_shards": {"total": 0, "successful": 0, "failed": 0}, "_seq_no": 0, "_primary_term": 1}
    r = client.update(index=index_name, id="1", body={"doc": {"n": {"x": 1}}, "detect_noop": False})
    assert r["result"] == "updated" and r["_version"] == 2


def test_update_doc_as_upsert_and_upsert(client, raw, index_name, knn_index):
    knn_index(index_name)
    status, _, body = raw("POST", f"/{index_name}/_update/1", {"doc": {"v": [1, 1], "a": 1}, "doc_as_upsert": True})
    assert status == 201
    assert body == op_result(index_name, "1", 1, "created", 0)
    r = client.update(index=index_name, id="1", body={"doc": {"b": 2}, "doc_as_upsert": True})
    assert r["result"] == "updated"
    assert client.get(index=index_name, id="1")["_source"] == {"v": [1.0, 1.0], "a": 1, "b": 2}

    r = client.update(index=index_name, id="2", body={"doc": {"x": 1}, "upsert": {"v": [2, 2], "x": 0}})
    assert r["result"] == "created"
    assert client.get(index=index_name, id="2")["_source"] == {"v": [2.0, 2.0], "x": 0}
    r = client.update(index=index_name, id="2", body={"doc": {"x": 1}, "upsert": {"v": [2, 2], "x": 0}})
    assert r["result"] == "updated"
    assert client.get(index=index_name, id="2")["_source"] == {"v": [2.0, 2.0], "x": 1}


def test_update_missing_doc(client, index_name, knn_index):
    knn_index(index_name)
    with pytest.raises(NotFoundError) as ei:
        client.update(index=index_name, id="9", body={"doc": {"x": 1}})
    err = ei.value.info["error"]
    assert err["type"] == "document_missing_exception"
    assert err["reason"] == "[9]: document missing"
    assert ei.value.info["status"] == 404
    assert client.exists(index=index_name, id="9") is False


def test_update_if_seq_no_conflict(client, index_name, knn_index):
    knn_index(index_name)
    client.index(index=index_name, id="1", body={"v": [1, 1], "x": 0})
    try:
        with pytest.raises(ConflictError):
            client.update(index=index_name, id="1", body={"doc": {"x": 1}}, if_seq_no=99, if_primary_term=1)
    finally:
        assert client.get(index=index_name, id="1")["_source"]["x"] == 0


def test_update_source_param_returns_get(client, index_name, knn_index):
    knn_index(index_name)
    client.index(index=index_name, id="1", body={"v": [1, 1], "x": 0})
    r = client.update(index=index_name, id="1", body={"doc": {"x": 1}}, _source=True)
    assert r["get"]["found"] is True
    assert r["get"]["_source"] == {"v": [1.0, 1.0], "x": 1}


# ------------------------------------------------------------------------------------------------ refresh


def _search_total(client, index: str) -> int:
    return client.search(index=index, body={"query": {"match_all": {}}})["hits"]["total"]["value"]


def test_refresh_false_realtime_get_then_searchable_after_refresh(client, index_name, knn_index):
    knn_index(index_name, refresh_interval="-1")  # no background refresh: visibility is ours to control
    r = client.index(index=index_name, id="1", body={"v": [1, 1]}, refresh="false")
    assert "forced_refresh" not in r
    client.index(index=index_name, id="2", body={"v": [2, 2]})  # default is refresh=false
    assert client.get(index=index_name, id="1")["found"] is True  # realtime get
    assert client.get(index=index_name, id="2")["_source"] == {"v": [2.0, 2.0]}
    assert _search_total(client, index_name) == 0
    assert client.count(index=index_name)["count"] == 0
    knn = client.search(index=index_name, body={"query": {"knn": {"v": {"vector": [1, 1], "k": 5}}}})
    assert knn["hits"]["total"]["value"] == 0 and knn["hits"]["max_score"] is None
    assert client.indices.refresh(index=index_name) == {"_shards": SHARDS}
    assert _search_total(client, index_name) == 2
    assert client.count(index=index_name)["count"] == 2


def test_refresh_true_and_wait_for(client, index_name, knn_index):
    knn_index(index_name, refresh_interval="-1")
    r = client.index(index=index_name, id="1", body={"v": [1, 1]}, refresh="true")
    assert r["forced_refresh"] is True
    assert _search_total(client, index_name) == 1
    # wait_for returns once the change is visible and does not report a forced refresh
    index_name2 = index_name + "-wf"
    knn_index(index_name2)  # default 1s refresh interval: wait_for has a refresh to wait for
    r = client.index(index=index_name2, id="1", body={"v": [1, 1]}, refresh="wait_for")
    assert "forced_refresh" not in r
    assert _search_total(client, index_name2) == 1
    r = client.delete(index=index_name, id="1", refresh="true")
    assert r["forced_refresh"] is True and r["result"] == "deleted"
    assert _search_total(client, index_name) == 0
    r = client.update(index=index_name2, id="1", body={"doc": {"x": 1}}, refresh="true")
    assert r["forced_refresh"] is True
    hits = client.search(index=index_name2, body={"query": {"term": {"x": 1}}})["hits"]
    assert hits["total"]["value"] == 1


def test_get_realtime_false_reads_searcher(client, index_name, knn_index):
    knn_index(index_name, refresh_interval="-1")
    client.index(index=index_name, id="1", body={"v": [1, 1]})
    with pytest.raises(NotFoundError):
        client.get(index=index_name, id="1", realtime=False)


# ------------------------------------------------------------------------------------------------ bulk


def test_bulk_ndjson_items_fail_alone(client, index_name, knn_index):
    knn_index(index_name, refresh_interval="-1")
    client.index(index=index_name, id="dup", body={"v": [0, 0]})
    client.index(index=index_name, id="upd", body={"v": [0, 0], "x": 0})
    body = (
        f'{{"index":{{"_index":"{index_name}","_id":"ok1"}}}}\n{{"v":[1,1]}}\n'
        f'{{"create":{{"_index":"{index_name}","_id":"dup"}}}}\n{{"v":[2,2]}}\n'
        f'{{"index":{{"_index":"{index_name}","_id":"baddim"}}}}\n{{"v":[1]}}\n'
        f'{{"delete":{{"_index":"{index_name}","_id":"absent"}}}}\n'
        f'{{"update":{{"_index":"{index_name}","_id":"upd"}}}}\n{{"doc":{{"x":1}}}}\n'
        f'{{"create":{{"_index":"{index_name}","_id":"ok2"}}}}\n{{"v":[3,3]}}\n'
        f'{{"delete":{{"_index":"{index_name}","_id":"dup"}}}}\n'
    )
    resp = client.bulk(body=body)
    assert isinstance(resp["took"], int)
    assert resp["errors"] is True
    items = resp["items"]
    assert [next(iter(i)) for i in items] == ["index", "create", "index", "delete", "update", "create", "delete"]
    ok1 = items[0]["index"]
    assert ok1 == {**op_result(index_name, "ok1", 1, "created", ok1["_seq_no"]), "status": 201}
    dup = items[1]["create"]
    assert dup["status"] == 409 and dup["_id"] == "dup" and dup["_index"] == index_name
    assert dup["error"]["type"] == "version_conflict_engine_exception"
    assert dup["error"]["reason"] == "[dup]: version conflict, document already exists (current version [1])"
    assert "root_cause" not in dup["error"]  # bulk item failures carry no root_cause
    bad = items[2]["index"]
    assert bad["status"] == 400 and bad["_id"] == "baddim"
    assert bad["error"]["type"] == "mapper_parsing_exception"
    assert bad["error"]["reason"] == ("failed to parse field [v] of type [knn_vector] in document with id 'baddim'. "
                                      "Preview of field's value: '[1]'")
    assert bad["error"]["caused_by"] == {"type": "illegal_argument_exception",
                                         "reason": "Vector dimension mismatch. Expected: 2, Given: 1"}
    absent = items[3]["delete"]
    assert absent["status"] == 404 and absent["result"] == "not_found" and "error" not in absent
    upd = items[4]["update"]
    assert upd["status"] == 200 and upd["result"] == "updated" and upd["_version"] == 2
    assert items[5]["create"]["status"] == 201 and items[5]["create"]["result"] == "created"
    assert items[6]["delete"]["status"] == 200 and items[6]["delete"]["result"] == "deleted"
    seqs = [i[next(iter(i))]["_seq_no"] for i in items if "error" not in i[next(iter(i))]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    assert client.get(index=index_name, id="ok1")["_source"] == {"v": [1.0, 1.0]}
    assert client.get(index=index_name, id="ok2")["_source"] == {"v": [3.0, 3.0]}
    assert client.get(index=index_name, id="upd")["_source"] == {"v": [0.0, 0.0], "x": 1}
    assert client.exists(index=index_name, id="baddim") is False
    assert client.exists(index=index_name, id="dup") is False
    client.indices.refresh(index=index_name)
    assert client.count(index=index_name)["count"] == 3


def test_bulk_index_path_and_list_body(client, index_name, knn_index):
    knn_index(index_name)
    resp = client.bulk(index=index_name, body=[{"index": {"_id": "a"}}, {"v": [1, 1]},
                                               {"index": {}}, {"v": [2, 2]}], refresh="true")
    assert resp["errors"] is False
    assert [i["index"]["status"] for i in resp["items"]] == [201, 201]
    assert all(i["index"]["_index"] == index_name for i in resp["items"])
    auto = resp["items"][1]["index"]["_id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{20}", auto)
    assert client.count(index=index_name)["count"] == 2


def test_helpers_bulk(client, index_name, knn_index):
    knn_index(index_name)
    actions = [{"_index": index_name, "_id": f"h{i}", "v": [i, i], "i": i} for i in range(20)]
    ok, errors = helpers.bulk(client, actions, refresh="true")
    assert (ok, errors) == (20, [])
    ok, errors = helpers.bulk(client, [{"_index": index_name, "_id": "good", "v": [1, 1]},
                                       {"_index": index_name, "_id": "bad", "v": [1]}], raise_on_error=False)
    assert ok == 1
    assert len(errors) == 1 and errors[0]["index"]["_id"] == "bad" and errors[0]["index"]["status"] == 400
    with pytest.raises(helpers.BulkIndexError) as ei:
        helpers.bulk(client, [{"_index": index_name, "_id": "bad2", "v": [1, 2, 3]},
                              {"_index": index_name, "_id": "good2", "v": [2, 2]}])
    assert ei.value.errors[0]["index"]["error"]["caused_by"]["reason"] == \
        "Vector dimension mismatch. Expected: 2, Given: 3"
    assert client.exists(index=index_name, id="good2") is True
    assert client.exists(index=index_name, id="bad2") is False
    client.indices.refresh(index=index_name)
    assert client.count(index=index_name)["count"] == 22


def test_bulk_raw_x_ndjson(client, raw, index_name, knn_index):
    knn_index(index_name)
    body = b'{"index":{"_id":"n1"}}\n{"v":[1,2]}\n{"create":{"_id":"n2"}}\n{"v":[3,4]}\n'
    status, ctype, resp = raw("POST", f"/{index_name}/_bulk", body, {"content-type": "application/x-ndjson"},
                              params={"refresh": "true"})
    assert status == 200
    assert ctype.startswith("application/json")
    assert resp["errors"] is False
    assert [i[k]["status"] for i in resp["items"] for k in i] == [201, 201]
    status, _, resp = raw("POST", "/_bulk", f'{{"delete":{{"_index":"{index_name}","_id":"n1"}}}}\n',
                          {"content-type": "application/x-ndjson"}, params={"refresh": "true"})
    assert status == 200 and resp["items"][0]["delete"]["result"] == "deleted"
    assert client.count(index=index_name)["count"] == 1


def test_bulk_delete_on_missing_index_does_not_create_it(client, index_name):
    resp = client.bulk(body=f'{{"delete":{{"_index":"{index_name}","_id":"1"}}}}\n')
    item = resp["items"][0]["delete"]
    try:
        assert resp["errors"] is True
        assert item["status"] == 404
        assert item["error"]["type"] == "index_not_found_exception"
        assert item["error"]["reason"] == f"no such index [{index_name}]"
    finally:
        assert client.indices.exists(index=index_name) is False


def test_bulk_refresh_true_items_report_forced_refresh(client, index_name, knn_index):
    knn_index(index_name)
    resp = client.bulk(index=index_name, body=[{"index": {"_id": "1"}}, {"v": [1, 1]}], refresh="true")
    assert resp["items"][0]["index"]["forced_refresh"] is True


# ------------------------------------------------------------------------------------------------ search


def test_search_match_all(client, populated):
    resp = client.search(index=populated, body={"query": {"match_all": {}}})
    assert set(resp) == {"took", "timed_out", "_shards", "hits"}
    assert resp["timed_out"] is False and resp["_shards"] == SEARCH_SHARDS
    hits = resp["hits"]
    assert hits["total"] == {"value": 4, "relation": "eq"}
    assert hits["max_score"] == 1.0
    assert sorted(hit_ids(resp)) == ["1", "2", "3", "4"]
    for h in hits["hits"]:
        assert h == {"_index": populated, "_id": h["_id"], "_score": 1.0, "_source": DOCS[h["_id"]]}
    # GET /{index}/_search without a body is match_all
    assert client.search(index=populated)["hits"]["total"]["value"] == 4
    # several indices, and the index-less GET /_search
    assert client.search(index=f"{populated},{populated}")["hits"]["total"]["value"] >= 4
    assert populated in {h["_index"] for h in client.search(body={"size": 100})["hits"]["hits"]}


def test_search_ids_term_match_bool(client, populated):
    def ids(query: dict[str, Any]) -> list[str]:
        resp = client.search(index=populated, body={"query": query})
        assert resp["hits"]["total"]["value"] == len(resp["hits"]["hits"])
        return sorted(hit_ids(resp))

    assert ids({"ids": {"values": ["1", "3", "nope"]}}) == ["1", "3"]
    assert ids({"term": {"tag": "a"}}) == ["1", "3"]
    assert ids({"term": {"tag": {"value": "c"}}}) == ["4"]
    assert ids({"terms": {"tag": ["b", "c"]}}) == ["2", "4"]
    assert ids({"match": {"t": "apple"}}) == ["1", "2"]
    assert ids({"range": {"n": {"gte": 2, "lt": 4}}}) == ["2", "3"]
    assert ids({"bool": {"must": [{"term": {"tag": "a"}}], "must_not": [{"ids": {"values": ["3"]}}]}}) == ["1"]
    assert ids({"bool": {"should": [{"term": {"tag": "b"}}, {"term": {"tag": "c"}}]}}) == ["2", "4"]
    assert ids({"bool": {"filter": [{"match": {"t": "red"}}]}}) == ["1", "3"]
    assert ids({"match_none": {}}) == []


def test_knn_exact_scores_l2(client, raw, populated):
    body = {"size": 10, "query": {"knn": {"v": {"vector": Q, "k": 4}}}}
    resp = client.search(index=populated, body=body)
    hits = resp["hits"]
    assert hits["total"] == {"value": 4, "relation": "eq"}
    assert hits["max_score"] == 1.0
    assert [(h["_id"], h["_score"]) for h in hits["hits"]] == L2_RANKED
    assert hits["hits"][2]["_source"] == DOCS["2"]
    # on the wire the score is the float32 shortest representation
    status, _, text = raw("POST", f"/{populated}/_search", body)
    assert status == 200
    if isinstance(text, dict):
        assert [h["_score"] for h in text["hits"]["hits"]] == [s for _, s in L2_RANKED]


def test_knn_wire_format_http(client, populated, variant):
    if variant != "http":
        pytest.skip("wire bytes exist only over HTTP")
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=30)
    conn.request("POST", f"/{populated}/_search", body=b'{"query":{"knn":{"v":{"vector":[1,1],"k":4}}}}',
                 headers={"content-type": "application/json"})
    text = conn.getresponse().read().decode()
    conn.close()
    assert '"_score":0.33333334' in text and '"_score":0.11111111' in text and '"max_score":1.0' in text


def test_knn_k_size_from(client, populated):
    resp = client.search(index=populated, body={"size": 2, "query": {"knn": {"v": {"vector": Q, "k": 3}}}})
    assert resp["hits"]["total"] == {"value": 3, "relation": "eq"}
    assert [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]] == L2_RANKED[:2]
    resp = client.search(index=populated, body={"from": 1, "size": 2, "query": {"knn": {"v": {"vector": Q, "k": 4}}}})
    assert hit_ids(resp) == ["1", "2"]
    assert resp["hits"]["total"]["value"] == 4
    resp = client.search(index=populated, body={"query": {"knn": {"v": {"vector": Q, "k": 1}}}})
    assert [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]] == L2_RANKED[:1]
    # URL size/from override the body
    resp = client.search(index=populated, body={"query": {"knn": {"v": {"vector": Q, "k": 4}}}}, size=1, from_=2)
    assert hit_ids(resp) == ["2"]
    resp = client.search(index=populated, body={"size": 0, "query": {"knn": {"v": {"vector": Q, "k": 4}}}})
    assert resp["hits"]["hits"] == [] and resp["hits"]["total"]["value"] == 4 and resp["hits"]["max_score"] is None


def test_knn_source_filtering(client, populated):
    def first(body_extra: dict[str, Any], **params: Any) -> dict[str, Any]:
        body = {"size": 1, "query": {"knn": {"v": {"vector": Q, "k": 1}}}, **body_extra}
        return client.search(index=populated, body=body, **params)["hits"]["hits"][0]

    assert "_source" not in first({"_source": False})
    assert first({"_source": ["t", "ta*"]})["_source"] == {"t": "blue berry", "tag": "c"}
    assert first({"_source": {"excludes": ["v"]}})["_source"] == {"t": "blue berry", "tag": "c", "n": 4}
    assert first({"_source": {"includes": ["v", "n"]}})["_source"] == {"v": [1.0, 1.0], "n": 4}
    assert first({}, _source_excludes="t*,v")["_source"] == {"n": 4}
    assert first({}, _source_includes="v")["_source"] == {"v": [1.0, 1.0]}


def test_knn_efficient_filter(client, populated):
    resp = client.search(index=populated, body={"query": {"knn": {"v": {
        "vector": Q, "k": 4, "filter": {"term": {"tag": "a"}}}}}})
    assert [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]] == [("1", 0.5), ("3", 0.11111111)]
    assert resp["hits"]["total"]["value"] == 2


@pytest.mark.parametrize("space, docs, query, expected", [
    # innerproduct: p >= 0 -> p + 1, p < 0 -> 1 / (1 - p)
    ("innerproduct", {"a": [1, 2], "b": [0, 0], "c": [-1, -2], "d": [0.5, 0.25]}, [1, 1],
     [("a", 4.0), ("d", 1.75), ("b", 1.0), ("c", 0.25)]),
    # cosinesimil: (1 + cos) / 2
    ("cosinesimil", {"a": [1, 0], "b": [0, 1], "c": [-1, 0], "d": [1, 1]}, [1, 0],
     [("a", 1.0), ("d", 0.8535534), ("b", 0.5), ("c", 0.0)]),
    # l2: 1 / (1 + squared distance)
    ("l2", {"a": [0, 0], "b": [1, 0], "c": [0, 2], "d": [0.5, 0]}, [0, 0],
     [("a", 1.0), ("d", 0.8), ("b", 0.5), ("c", 0.2)]),
])
@pytest.mark.parametrize("engine", ["faiss", "lucene"])
def test_knn_score_per_space(client, index_name, knn_index, space, docs, query, expected, engine):
    knn_index(index_name, space=space, engine=engine)
    client.bulk(index=index_name, body=[x for i, v in docs.items() for x in ({"index": {"_id": i}}, {"v": v})],
                refresh="true")
    resp = client.search(index=index_name, body={"query": {"knn": {"v": {"vector": query, "k": 4}}}})
    assert [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]] == expected
    assert resp["hits"]["max_score"] == expected[0][1]


def test_knn_total_is_k_per_segment_for_faiss(client, index_name, knn_index):
    knn_index(index_name, refresh_interval="-1")
    for seg in range(2):
        client.bulk(index=index_name, body=[x for i in range(3) for x in ({"index": {"_id": f"{seg}-{i}"}},
                                                                         {"v": [i, seg]})])
        client.indices.refresh(index=index_name)
    assert len(client.cat.segments(index=index_name, format="json")) == 2
    resp = client.search(index=index_name, body={"size": 10, "query": {"knn": {"v": {"vector": [0, 0], "k": 2}}}})
    # faiss without rescoring: up to k per segment (vector-semantics.md §6); the coordinator returns the top k
    assert resp["hits"]["total"] == {"value": 4, "relation": "eq"}
    assert [h["_id"] for h in resp["hits"]["hits"]][:2] == ["0-0", "0-1"]


def test_knn_faiss_hits_up_to_size_across_segments(client, index_name, knn_index):
    knn_index(index_name, refresh_interval="-1")
    for seg in range(2):
        client.bulk(index=index_name, body=[x for i in range(3) for x in ({"index": {"_id": f"{seg}-{i}"}},
                                                                         {"v": [i, seg]})])
        client.indices.refresh(index=index_name)
    resp = client.search(index=index_name, body={"size": 10, "query": {"knn": {"v": {"vector": [0, 0], "k": 2}}}})
    assert [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]] == [
        ("0-0", 1.0), ("0-1", 0.5), ("1-0", 0.5), ("1-1", 0.33333334)]


def test_knn_total_is_k_per_shard_for_lucene(client, index_name, knn_index):
    knn_index(index_name, engine="lucene", refresh_interval="-1")
    for seg in range(2):
        client.bulk(index=index_name, body=[x for i in range(3) for x in ({"index": {"_id": f"{seg}-{i}"}},
                                                                         {"v": [i, seg]})])
        client.indices.refresh(index=index_name)
    resp = client.search(index=index_name, body={"size": 10, "query": {"knn": {"v": {"vector": [0, 0], "k": 2}}}})
    assert resp["hits"]["total"] == {"value": 2, "relation": "eq"}
    assert len(resp["hits"]["hits"]) == 2


def test_max_score_ignores_from(client, populated):
    resp = client.search(index=populated, body={"from": 1, "size": 1, "query": {"knn": {"v": {"vector": Q, "k": 4}}}})
    assert hit_ids(resp) == ["1"]
    assert resp["hits"]["max_score"] == 1.0


def test_bool_filter_around_knn_is_post_filter(client, populated):
    # top-2 by l2 from [1,1] are 4 and 1; the bool filter keeps tag a -> only 1 survives.
    resp = client.search(index=populated, body={"query": {"bool": {
        "must": [{"knn": {"v": {"vector": Q, "k": 2}}}], "filter": [{"term": {"tag": "a"}}]}}})
    assert [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]] == [("1", 0.5)]
    assert resp["hits"]["total"]["value"] == 1


def test_result_window_too_large(client, populated):
    from opensearchpy.exceptions import RequestError

    with pytest.raises(RequestError) as ei:
        client.search(index=populated, body={"from": 9999, "size": 2})
    assert "Result window is too large, from + size must be less than or equal to: [10000] but was [10001]" \
        in str(ei.value.info)


def test_count(client, populated):
    assert client.count(index=populated) == {"count": 4, "_shards": SEARCH_SHARDS}
    assert client.count(index=populated, body={"query": {"term": {"tag": "a"}}})["count"] == 2
    assert client.count(index=populated, body={"query": {"ids": {"values": ["1", "2", "x"]}}})["count"] == 2
    client.delete(index=populated, id="1", refresh="true")
    assert client.count(index=populated)["count"] == 3


def test_filter_path(client, populated):
    resp = client.search(index=populated, body={"query": {"ids": {"values": ["2"]}}},
                         filter_path="hits.hits._id,hits.total")
    assert resp == {"hits": {"total": {"value": 1, "relation": "eq"}, "hits": [{"_id": "2"}]}}


# ------------------------------------------------------------------------------------------------ mget


def test_mget(client, populated):
    resp = client.mget(body={"docs": [{"_index": populated, "_id": "1"}, {"_index": populated, "_id": "nope"},
                                      {"_index": populated, "_id": "2", "_source": ["t"]},
                                      {"_index": populated, "_id": "3", "_source": False}]})
    d = resp["docs"]
    assert d[0] == {"_index": populated, "_id": "1", "_version": 1, "_seq_no": d[0]["_seq_no"], "_primary_term": 1,
                    "found": True, "_source": DOCS["1"]}
    assert d[1] == {"_index": populated, "_id": "nope", "found": False}
    assert d[2]["_source"] == {"t": "green apple"}
    assert d[3]["found"] is True and "_source" not in d[3]

    resp = client.mget(index=populated, body={"ids": ["4", "2"]}, _source_includes="v")
    assert [(x["_id"], x["_source"]) for x in resp["docs"]] == [("4", {"v": [1.0, 1.0]}), ("2", {"v": [0.0, 0.0]})]
    resp = client.mget(index=populated, body={"docs": [{"_id": "3"}]}, _source_excludes="v,t")
    assert resp["docs"][0]["_source"] == {"tag": "a", "n": 3}

    missing = populated + "-missing"
    resp = client.mget(body={"docs": [{"_index": missing, "_id": "1"}, {"_index": populated, "_id": "4"}]})
    err = resp["docs"][0]
    assert err["_index"] == missing and err["_id"] == "1"
    assert err["error"]["type"] == "index_not_found_exception"
    assert err["error"]["reason"] == f"no such index [{missing}]"
    assert resp["docs"][1]["found"] is True


# ------------------------------------------------------------------------------------------------ maintenance


def test_flush_forcemerge_cat_segments(client, index_name, knn_index):
    knn_index(index_name, refresh_interval="-1")
    for seg in range(3):
        client.bulk(index=index_name, body=[x for i in range(4) for x in ({"index": {"_id": f"{seg}-{i}"}},
                                                                         {"v": [i, seg]})])
        client.indices.refresh(index=index_name)
    segs = client.cat.segments(index=index_name, format="json")
    assert len(segs) == 3
    assert {s["index"] for s in segs} == {index_name}
    assert all(isinstance(s[k], str) for s in segs for k in s)  # _cat JSON values are strings
    assert sum(int(s["docs.count"]) for s in segs) == 12
    assert set(segs[0]) >= {"index", "shard", "prirep", "ip", "segment", "generation", "docs.count",
                            "docs.deleted", "size", "size.memory", "committed", "searchable", "version", "compound"}
    assert {s["searchable"] for s in segs} == {"true"}

    assert client.indices.flush(index=index_name) == {"_shards": SHARDS}
    assert {s["committed"] for s in client.cat.segments(index=index_name, format="json")} == {"true"}

    client.delete(index=index_name, id="0-0", refresh="true")
    assert client.indices.forcemerge(index=index_name, max_num_segments=1) == {"_shards": SHARDS}
    segs = client.cat.segments(index=index_name, format="json")
    assert len(segs) == 1
    assert segs[0]["docs.count"] == "11" and segs[0]["docs.deleted"] == "0"
    text = client.cat.segments(index=index_name)
    assert isinstance(text, str)
    lines = text.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].split()[0] == index_name and lines[0].split()[6] == "11"
    header = client.cat.segments(index=index_name, v=True).split("\n")[0].split()
    assert header[:7] == ["index", "shard", "prirep", "ip", "segment", "generation", "docs.count"]
    # search still sees everything after the merge
    resp = client.search(index=index_name, body={"query": {"knn": {"v": {"vector": [0, 0], "k": 3}}}})
    top = [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]]
    assert sorted(top[:2]) == [("0-1", 0.5), ("1-0", 0.5)]  # 0-0 was deleted; [1,0] and [0,1] tie


def test_cat_indices(client, raw, index_name, knn_index):
    knn_index(index_name)
    client.bulk(index=index_name, body=[x for i in range(5) for x in ({"index": {"_id": str(i)}}, {"v": [i, i]})],
                refresh="true")
    client.delete(index=index_name, id="0", refresh="true")
    rows = [r for r in client.cat.indices(format="json") if r["index"] == index_name]
    assert len(rows) == 1
    row = rows[0]
    assert row["health"] == "yellow" and row["status"] == "open" and row["pri"] == "1" and row["rep"] == "1"
    assert row["docs.count"] == "4"
    assert all(isinstance(v, str) for v in row.values())
    assert set(row) == {"health", "status", "index", "uuid", "pri", "rep", "docs.count", "docs.deleted",
                        "store.size", "pri.store.size"}
    text = client.cat.indices()
    assert isinstance(text, str)
    mine = [ln.split() for ln in text.splitlines() if ln.split()[2:3] == [index_name]]
    assert len(mine) == 1 and mine[0][:2] == ["yellow", "open"] and mine[0][6] == "4"
    assert mine[0][3] == row["uuid"]
    status, ctype, body = raw("GET", "/_cat/indices")
    assert status == 200 and ctype.startswith("text/plain")
    with_header = client.cat.indices(index=index_name, v=True).splitlines()
    assert with_header[0].split() == ["health", "status", "index", "uuid", "pri", "rep", "docs.count",
                                      "docs.deleted", "store.size", "pri.store.size"]
    assert with_header[1].split()[2] == index_name


def test_index_stats(client, index_name, knn_index):
    knn_index(index_name)
    client.bulk(index=index_name, body=[x for i in range(6) for x in ({"index": {"_id": str(i)}}, {"v": [i, i]})],
                refresh="true")
    client.delete(index=index_name, id="0", refresh="true")
    st = client.indices.stats(index=index_name)
    assert st["_shards"] == SHARDS
    assert set(st["indices"]) == {index_name}
    prim = st["indices"][index_name]["primaries"]
    assert prim["docs"]["count"] == 5
    assert st["_all"]["primaries"]["docs"]["count"] == 5
    assert prim["store"]["size_in_bytes"] > 0


def test_reindex_keeps_vectors(client, index_name, knn_index):
    mappings = knn_index(index_name, dim=3, extra_props={"t": {"type": "text"}})
    dest = index_name + "-dest"
    client.indices.create(index=dest, body={"settings": {"index.knn": True}, "mappings": mappings})
    docs = {str(i): {"v": [i + 0.5, -i * 0.25, 1.0], "t": f"doc {i}", "meta": {"i": i}} for i in range(25)}
    client.bulk(index=index_name, body=[x for i, d in docs.items() for x in ({"index": {"_id": i}}, d)],
                refresh="true")
    resp = client.reindex(body={"source": {"index": index_name}, "dest": {"index": dest}}, refresh=True)
    assert resp["created"] == 25 and resp["updated"] == 0 and resp["total"] == 25
    assert resp["failures"] == [] and resp["timed_out"] is False and resp["version_conflicts"] == 0
    assert client.count(index=dest)["count"] == 25
    src_docs = {d["_id"]: d["_source"] for d in client.mget(index=index_name, body={"ids": list(docs)})["docs"]}
    dst_docs = {d["_id"]: d["_source"] for d in client.mget(index=dest, body={"ids": list(docs)})["docs"]}
    assert dst_docs == src_docs == docs
    q = {"query": {"knn": {"v": {"vector": [3.5, -0.75, 1.0], "k": 3}}}}
    a = [(h["_id"], h["_score"]) for h in client.search(index=index_name, body=q)["hits"]["hits"]]
    b = [(h["_id"], h["_score"]) for h in client.search(index=dest, body=q)["hits"]["hits"]]
    assert a == b and a[0] == ("3", 1.0)
    # a second run updates every document
    resp = client.reindex(body={"source": {"index": index_name}, "dest": {"index": dest}}, refresh=True)
    assert resp["updated"] == 25 and resp["created"] == 0


# ------------------------------------------------------------------------------------------------ ids on the wire

# the server takes the path from the raw request URI and the router decodes each segment once (BUG-21)
ODD_IDS = ["plain", "a b", "+plus", "é-ü", "a%20b", "x/y", "q?x=1#f", "100%", "%2F", "a/b/c", "日本"]


@pytest.mark.parametrize("doc_id", ODD_IDS)
def test_doc_id_round_trip(client, index_name, knn_index, doc_id):
    knn_index(index_name)
    r = client.index(index=index_name, id=doc_id, body={"v": [1, 1], "id": doc_id}, refresh="true")
    assert r["_id"] == doc_id and r["result"] == "created"
    got = client.get(index=index_name, id=doc_id)
    assert got["_id"] == doc_id and got["_source"]["id"] == doc_id
    hit = client.search(index=index_name, body={"query": {"match_all": {}}})["hits"]["hits"][0]
    assert hit["_id"] == doc_id
    assert client.update(index=index_name, id=doc_id, body={"doc": {"u": 1}})["_id"] == doc_id
    assert client.create(index=index_name, id=doc_id + "/c", body={"v": [2, 2]})["_id"] == doc_id + "/c"
    got = client.mget(index=index_name, body={"ids": [doc_id, doc_id + "/c"]})["docs"]
    assert [(d["_id"], d["found"]) for d in got] == [(doc_id, True), (doc_id + "/c", True)]
    assert client.get(index=index_name, id=doc_id)["_source"] == {"v": [1.0, 1.0], "id": doc_id, "u": 1}
    assert client.delete(index=index_name, id=doc_id)["result"] == "deleted"
