"""``_routing``: stored with the document, returned by GET / mget / search hits, kept by updates, merges and
reindex; ``_routing.required`` in the mapping rejects requests that name none (upstream bug #2852/#2925:
derived source dropped ``_routing`` from hits; segstore had not stored it at all).

segstore has one shard, so routing never changes where a document lives: any routing value (or none) finds it.
Every test runs against both front ends (``embedded`` and ``http``, conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from opensearchpy.exceptions import RequestError

VEC = {"type": "knn_vector", "dimension": 2, "space_type": "l2", "method": {"name": "hnsw", "engine": "faiss"}}


def _create(client: Any, name: str, mappings: dict[str, Any] | None = None) -> None:
    client.indices.create(index=name, body={"settings": {"index.knn": True, "index.refresh_interval": "-1"},
                                            "mappings": mappings or {"properties": {"v": VEC}}})


def _missing(index: str, doc_id: str) -> dict[str, Any]:
    cause = {"type": "routing_missing_exception", "reason": f"routing is required for [{index}]/[{doc_id}]",
             "index_uuid": "_na_", "index": index}
    return {"error": {"root_cause": [cause], **cause}, "status": 400}


def test_routing_is_returned_by_get_mget_and_search(client: Any, index_name: str) -> None:
    _create(client, index_name)
    client.index(index=index_name, id="a", body={"v": [1.5, 2.5]}, routing="r1")
    res = client.bulk(index=index_name, routing="url", body=[
        {"index": {"_id": "b", "routing": "meta"}}, {"v": [3.5, 4.5]},
        {"index": {"_id": "c"}}, {"v": [5.5, 6.5]},  # takes the request's routing parameter
        {"create": {"_id": "d", "routing": 7}}, {"v": [7.5, 8.5]}])  # a number is read as text
    assert not res["errors"]
    client.index(index=index_name, id="e", body={"v": [9.5, 9.5]})  # no routing: no _routing anywhere
    assert client.get(index=index_name, id="a") == {  # realtime GET from the writer's buffer
        "_index": index_name, "_id": "a", "_version": 1, "_seq_no": 0, "_primary_term": 1, "_routing": "r1",
        "found": True, "_source": {"v": [1.5, 2.5]}}
    client.indices.refresh(index=index_name)
    want = {"a": "r1", "b": "meta", "c": "url", "d": "7"}
    docs = client.mget(index=index_name, body={"ids": ["a", "b", "c", "d", "e"]})["docs"]
    assert [(d["_id"], d.get("_routing")) for d in docs] == [*want.items(), ("e", None)]
    assert "_routing" not in docs[4]
    hits = client.search(index=index_name, body={"query": {"knn": {"v": {"vector": [1.5, 2.5], "k": 1}}}})
    assert hits["hits"]["hits"] == [{"_index": index_name, "_id": "a", "_score": 1.0, "_routing": "r1",
                                     "_source": {"v": [1.5, 2.5]}}]
    hits = client.search(index=index_name, body={"query": {"match_all": {}}, "_source": False})["hits"]["hits"]
    assert {h["_id"]: h.get("_routing") for h in hits} == {**want, "e": None}
    # one shard: a GET with another routing value (or none) still finds the document
    assert client.get(index=index_name, id="b", routing="other")["_routing"] == "meta"


def test_routing_survives_update_merge_and_reindex(client: Any, index_name: str) -> None:
    _create(client, index_name, {"properties": {"v": VEC, "t": {"type": "keyword"}}})
    for i in range(3):  # three segments
        client.index(index=index_name, id=str(i), body={"v": [i + 0.5, 1.5], "t": "x"}, routing=f"r{i}",
                     refresh="true")
    client.update(index=index_name, id="0", body={"doc": {"t": "y"}}, refresh="true")  # keeps r0
    client.update(index=index_name, id="1", body={"doc": {"t": "z"}}, routing="new", refresh="true")
    client.index(index=index_name, id="2", body={"v": [2.5, 1.5]}, refresh="true")  # re-indexed without routing
    want = {"0": "r0", "1": "new", "2": None}
    assert {i: client.get(index=index_name, id=i).get("_routing") for i in want} == want
    client.indices.forcemerge(index=index_name, max_num_segments=1)
    hits = client.search(index=index_name, body={"query": {"match_all": {}}})["hits"]["hits"]
    assert {h["_id"]: h.get("_routing") for h in hits} == want
    assert client.get(index=index_name, id="0")["_source"] == {"v": [0.5, 1.5], "t": "y"}
    for spec, expected in (("keep", want), ("discard", {"0": None, "1": None, "2": None}),
                           ("=fixed", {"0": "fixed", "1": "fixed", "2": "fixed"})):
        dest = f"{index_name}-{spec.strip('=')}"
        res = client.reindex(body={"source": {"index": index_name}, "dest": {"index": dest, "routing": spec}},
                             refresh=True)
        assert res["created"] == 3 and res["failures"] == []
        assert {i: client.get(index=dest, id=i).get("_routing") for i in want} == expected, spec
    with pytest.raises(RequestError) as e:
        client.reindex(body={"source": {"index": index_name}, "dest": {"index": f"{index_name}-bad",
                                                                        "routing": "nope"}})
    assert e.value.info["error"]["reason"] == "Unsupported routing command"


def test_required_routing_rejects_requests_without_routing(client: Any, index_name: str) -> None:
    _create(client, index_name, {"_routing": {"required": True}, "properties": {"v": VEC}})
    mapping = client.indices.get_mapping(index=index_name)[index_name]["mappings"]
    assert mapping["_routing"] == {"required": True}
    calls = {
        "index": lambda: client.index(index=index_name, id="1", body={"v": [1.5, 2.5]}),
        "get": lambda: client.get(index=index_name, id="1"),
        "delete": lambda: client.delete(index=index_name, id="1"),
        "update": lambda: client.update(index=index_name, id="1", body={"doc": {"t": "x"}}),
    }
    for label, call in calls.items():
        with pytest.raises(RequestError) as e:
            call()
        assert e.value.status_code == 400 and e.value.info == _missing(index_name, "1"), label
    res = client.bulk(index=index_name, refresh="true", body=[
        {"index": {"_id": "1"}}, {"v": [1.5, 2.5]},
        {"index": {"_id": "2", "routing": "r"}}, {"v": [3.5, 4.5]},
        {"delete": {"_id": "2"}}])
    assert res["errors"] is True
    assert [next(iter(i.values())).get("status") for i in res["items"]] == [400, 201, 400]
    assert res["items"][0] == {"index": {"_index": index_name, "_id": "1", "status": 400,
                                         "error": _missing(index_name, "1")["error"]["root_cause"][0]}}
    docs = client.mget(index=index_name, body={"docs": [{"_id": "2"}, {"_id": "2", "routing": "r"}]})["docs"]
    assert docs[0] == {"_index": index_name, "_id": "2", "error": _missing(index_name, "2")["error"]}
    assert (docs[1]["found"], docs[1]["_routing"]) == (True, "r")
    assert client.get(index=index_name, id="2", routing="r")["_source"] == {"v": [3.5, 4.5]}
    client.update(index=index_name, id="2", body={"doc": {"t": "x"}}, routing="r", refresh="true")
    assert client.get(index=index_name, id="2", routing="r")["_source"] == {"v": [3.5, 4.5], "t": "x"}
    assert client.delete(index=index_name, id="2", routing="r", refresh="true")["result"] == "deleted"
    assert client.count(index=index_name)["count"] == 0  # nothing was written by the rejected requests


def test_bulk_routing_metadata_names(client: Any, index_name: str) -> None:
    """``BulkRequestParser`` knows ``routing`` only; the pre-7.0 ``_routing`` key is an unknown parameter."""
    _create(client, index_name)
    with pytest.raises(RequestError) as e:
        client.bulk(index=index_name, body=[{"index": {"_id": "1", "_routing": "x"}}, {"v": [1.5, 2.5]}])
    assert e.value.info["error"]["reason"] == "Action/metadata line [1] contains an unknown parameter [_routing]"
    with pytest.raises(RequestError) as e:
        client.indices.create(index=f"{index_name}-bad", body={"mappings": {"_routing": {"required": "yes"}}})
    assert e.value.info["error"]["reason"] == \
        "Failed to parse mapping [_doc]: Failed to parse value [yes] as only [true] or [false] are allowed."
