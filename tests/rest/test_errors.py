"""A bad request at each endpoint: status, OpenSearch error type and exact reason, and nothing written.

Every test runs against both front ends (``embedded`` and ``http``, conftest.py). Bad bodies are sent with
``client.transport.perform_request`` so the bytes reach the server unchanged in both variants. After each
rejected request the test checks that the state is unchanged: documents (realtime GET), the refreshed doc
count, and the list of indices.

Reasons that come from a JSON parser are segstore's (Python's ``json`` stands in for Jackson, whose texts
cannot be reproduced); everything else is OpenSearch's literal text. ``xfail(strict=True)`` tests pin known
deviations (``BUG-n`` in the reason).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from opensearchpy.exceptions import ConflictError, NotFoundError, RequestError, TransportError

VEC_PROPS = {"v": {"type": "knn_vector", "dimension": 2}}


@pytest.fixture
def seeded(client, index_name) -> str:
    """A k-NN index (dim 2, no background refresh) holding doc ``1`` = {"v": [1, 1], "x": 0}, refreshed."""
    client.indices.create(index=index_name, body={"settings": {"index.knn": True, "index.refresh_interval": "-1"},
                                                  "mappings": {"properties": VEC_PROPS}})
    client.index(index=index_name, id="1", body={"v": [1, 1], "x": 0}, refresh="true")
    return index_name


def state(client, index: str) -> dict[str, Any]:
    """What a rejected request must not change."""
    out: dict[str, Any] = {"indices": sorted(r["index"] for r in client.cat.indices(format="json")
                                             if r["index"].startswith(index))}
    if client.indices.exists(index=index):
        docs = client.mget(index=index, body={"ids": ["1", "2", "new", "b1", "b2"]})["docs"]
        out["docs"] = [(d["_id"], d.get("_version"), d.get("_source")) for d in docs]
        client.indices.refresh(index=index)
        out["count"] = client.count(index=index)["count"]
        out["mapping"] = client.indices.get_mapping(index=index)
    return out


def fail(call, exc=TransportError) -> tuple[int, dict[str, Any]]:
    """Run ``call``; it must raise ``exc``. Returns (status, error body)."""
    with pytest.raises(exc) as ei:
        call()
    assert isinstance(ei.value.info, dict), ei.value.info
    return ei.value.status_code, ei.value.info


def assert_error(info: dict[str, Any], status: int, etype: str, reason: str | None = None) -> dict[str, Any]:
    assert info["status"] == status
    err = info["error"]
    assert err["type"] == etype, err
    if reason is not None:
        assert err["reason"] == reason, err["reason"]
    assert err["root_cause"] and err["root_cause"][0]["type"], err
    return err


# ------------------------------------------------------------------------------------------------ bad JSON


@pytest.mark.parametrize("method, path", [
    ("PUT", "/{i}/_doc/new"), ("POST", "/{i}/_doc/new"), ("POST", "/{i}/_doc"), ("PUT", "/{i}/_create/new"),
])
def test_malformed_json_document(client, seeded, method, path):
    before = state(client, seeded)
    status, info = fail(lambda: client.transport.perform_request(method, path.format(i=seeded), body="{bad"),
                        RequestError)
    assert status == 400
    err = assert_error(info, 400, "mapper_parsing_exception", "failed to parse")
    assert err["caused_by"]["type"] == "json_parse_exception"
    assert err["root_cause"] == [{"type": "mapper_parsing_exception", "reason": "failed to parse"}]
    assert state(client, seeded) == before


def test_malformed_json_create_index(client, index_name):
    before = state(client, index_name)
    status, info = fail(lambda: client.transport.perform_request("PUT", f"/{index_name}", body="{bad"), RequestError)
    err = assert_error(info, 400, "parse_exception")
    assert err["reason"].startswith("Failed to parse content to map")
    assert client.indices.exists(index=index_name) is False
    assert state(client, index_name) == before


def test_malformed_json_create_index_exact(client, index_name):
    _, info = fail(lambda: client.transport.perform_request("PUT", f"/{index_name}", body="{bad"), RequestError)
    assert info["error"]["reason"] == "Failed to parse content to map"
    assert info["error"]["caused_by"]["type"] == "json_parse_exception"


@pytest.mark.parametrize("method, path", [
    ("POST", "/{i}/_update/1"), ("POST", "/{i}/_search"), ("POST", "/{i}/_count"), ("POST", "/_mget"),
    ("POST", "/{i}/_mget"), ("POST", "/_reindex"),
])
def test_malformed_json_other_endpoints(client, seeded, method, path):
    before = state(client, seeded)
    status, info = fail(lambda: client.transport.perform_request(method, path.format(i=seeded), body="{bad"),
                        RequestError)
    assert status == 400
    assert_error(info, 400, "parse_exception",
                 "Failed to parse content to map: Expecting property name enclosed in double quotes at line 1 "
                 "column 2")
    assert state(client, seeded) == before


def test_malformed_json_bulk_source_line_fails_alone(client, seeded):
    body = (f'{{"index":{{"_index":"{seeded}","_id":"b1"}}}}\n{{bad\n'
            f'{{"index":{{"_index":"{seeded}","_id":"b2"}}}}\n{{"v":[2,2]}}\n')
    resp = client.bulk(body=body)
    assert resp["errors"] is True
    bad, good = resp["items"][0]["index"], resp["items"][1]["index"]
    assert bad["status"] == 400 and bad["_id"] == "b1"
    assert bad["error"]["type"] == "mapper_parsing_exception" and bad["error"]["reason"] == "failed to parse"
    assert bad["error"]["caused_by"]["type"] == "json_parse_exception"
    assert good["status"] == 201
    assert client.exists(index=seeded, id="b1") is False
    assert client.get(index=seeded, id="b2")["_source"] == {"v": [2.0, 2.0]}


def test_document_body_not_an_object(client, seeded):
    before = state(client, seeded)
    _, info = fail(lambda: client.transport.perform_request("PUT", f"/{seeded}/_doc/new", body="[1,2]"),
                   RequestError)
    err = assert_error(info, 400, "mapper_parsing_exception", "failed to parse")
    assert err["caused_by"]["type"] == "not_x_content_exception"
    assert state(client, seeded) == before


# ------------------------------------------------------------------------------------------------ unknown index


def _missing_calls(c, x: str) -> dict[str, Any]:
    return {
        "get_doc": lambda: c.get(index=x, id="1"),
        "delete_doc": lambda: c.delete(index=x, id="1"),
        "search": lambda: c.search(index=x, body={"query": {"match_all": {}}}),
        "search_knn": lambda: c.search(index=x, body={"query": {"knn": {"v": {"vector": [1, 1], "k": 1}}}}),
        "count": lambda: c.count(index=x),
        "refresh": lambda: c.indices.refresh(index=x),
        "flush": lambda: c.indices.flush(index=x),
        "forcemerge": lambda: c.indices.forcemerge(index=x, max_num_segments=1),
        "stats": lambda: c.indices.stats(index=x),
        "get_mapping": lambda: c.indices.get_mapping(index=x),
        "get_settings": lambda: c.indices.get_settings(index=x),
        "get_index": lambda: c.indices.get(index=x),
        "delete_index": lambda: c.indices.delete(index=x),
        "cat_indices": lambda: c.cat.indices(index=x, format="json"),
        "cat_segments": lambda: c.cat.segments(index=x, format="json"),
        "reindex_source": lambda: c.reindex(body={"source": {"index": x}, "dest": {"index": x + "-dest"}}),
    }


@pytest.mark.parametrize("endpoint", list(_missing_calls(None, "x")))
def test_unknown_index(client, index_name, endpoint):
    x = index_name + "-missing"
    call = _missing_calls(client, x)[endpoint]
    status, info = fail(call, NotFoundError)
    assert status == 404
    err = assert_error(info, 404, "index_not_found_exception", f"no such index [{x}]")
    for e in (err, err["root_cause"][0]):
        assert e["index"] == x and e["resource.id"] == x
        assert e["resource.type"] == "index_or_alias" and e["index_uuid"] == "_na_"
    assert client.indices.exists(index=x) is False
    assert client.indices.exists(index=x + "-dest") is False


def test_unknown_index_head_and_mget(client, raw, index_name):
    x = index_name + "-missing"
    assert raw("HEAD", f"/{x}")[::2] == (404, None)
    assert raw("HEAD", f"/{x}/_doc/1")[::2] == (404, None)
    assert client.exists(index=x, id="1") is False
    doc = client.mget(body={"docs": [{"_index": x, "_id": "1"}]})["docs"][0]
    assert doc["error"]["type"] == "index_not_found_exception" and doc["error"]["reason"] == f"no such index [{x}]"
    doc = client.mget(index=x, body={"ids": ["1"]})["docs"][0]
    assert doc["error"]["type"] == "index_not_found_exception"
    assert client.indices.exists(index=x) is False


# ------------------------------------------------------------------------------------------------ conflicts


def test_version_conflicts(client, seeded):
    before = state(client, seeded)
    _, info = fail(lambda: client.index(index=seeded, id="1", body={"v": [5, 5]}, if_seq_no=7, if_primary_term=1),
                   ConflictError)
    assert_error(info, 409, "version_conflict_engine_exception",
                 "[1]: version conflict, required seqNo [7], primary term [1]. current document has seqNo [0] and "
                 "primary term [1]")
    _, info = fail(lambda: client.index(index=seeded, id="1", body={"v": [5, 5]}, if_seq_no=0, if_primary_term=2),
                   ConflictError)
    assert_error(info, 409, "version_conflict_engine_exception",
                 "[1]: version conflict, required seqNo [0], primary term [2]. current document has seqNo [0] and "
                 "primary term [1]")
    _, info = fail(lambda: client.index(index=seeded, id="new", body={"v": [5, 5]}, if_seq_no=0, if_primary_term=1),
                   ConflictError)
    assert_error(info, 409, "version_conflict_engine_exception",
                 "[new]: version conflict, required seqNo [0], primary term [1]. but no document was found")
    _, info = fail(lambda: client.create(index=seeded, id="1", body={"v": [5, 5]}), ConflictError)
    assert_error(info, 409, "version_conflict_engine_exception",
                 "[1]: version conflict, document already exists (current version [1])")
    _, info = fail(lambda: client.delete(index=seeded, id="1", if_seq_no=3, if_primary_term=1), ConflictError)
    assert_error(info, 409, "version_conflict_engine_exception")
    assert state(client, seeded) == before


def test_external_versioning(client, seeded):
    r = client.index(index=seeded, id="ext", body={"v": [1, 1]}, version=5, version_type="external")
    assert (r["_version"], r["result"]) == (5, "created")
    for version in (3, 5):  # external: the given version must be higher than the current one
        _, info = fail(lambda: client.index(index=seeded, id="ext", body={"v": [2, 2]}, version=version,
                                            version_type="external"), ConflictError)
        assert_error(info, 409, "version_conflict_engine_exception",
                     f"[ext]: version conflict, current version [5] is higher or equal to the one provided [{version}]")
    r = client.index(index=seeded, id="ext", body={"v": [3, 3]}, version=5, version_type="external_gte")
    assert (r["_version"], r["result"]) == (5, "updated")  # external_gte: equal is enough
    _, info = fail(lambda: client.index(index=seeded, id="ext", body={"v": [4, 4]}, version=4,
                                        version_type="external_gte"), ConflictError)
    assert_error(info, 409, "version_conflict_engine_exception",
                 "[ext]: version conflict, current version [5] is higher than the one provided [4]")
    assert client.get(index=seeded, id="ext")["_source"] == {"v": [3.0, 3.0]}
    _, info = fail(lambda: client.delete(index=seeded, id="ext", version=5, version_type="external"), ConflictError)
    assert_error(info, 409, "version_conflict_engine_exception",
                 "[ext]: version conflict, current version [5] is higher or equal to the one provided [5]")
    r = client.delete(index=seeded, id="ext", version=9, version_type="external")
    assert (r["_version"], r["result"]) == (9, "deleted")
    # the delete's tombstone keeps version 9: an older external write is still a conflict
    _, info = fail(lambda: client.index(index=seeded, id="ext", body={"v": [5, 5]}, version=8,
                                        version_type="external"), ConflictError)
    assert "current version [9] is higher or equal to the one provided [8]" in info["error"]["reason"]
    bulk = client.bulk(body=[{"index": {"_index": seeded, "_id": "ext", "version": 12, "version_type": "external"}},
                             {"v": [6, 6]},
                             {"index": {"_index": seeded, "_id": "ext", "version": 11, "version_type": "external"}},
                             {"v": [7, 7]}])
    assert bulk["errors"] is True
    first, second = (item["index"] for item in bulk["items"])
    assert (first["status"], first["_version"], first["result"]) == (201, 12, "created")
    assert second["status"] == 409 and second["error"]["reason"] == \
        "[ext]: version conflict, current version [12] is higher or equal to the one provided [11]"
    assert client.get(index=seeded, id="ext")["_version"] == 12


def test_if_seq_no_without_primary_term(client, seeded):
    _, info = fail(lambda: client.index(index=seeded, id="1", body={"v": [1, 1]}, if_seq_no=0), RequestError)
    assert_error(info, 400, "action_request_validation_exception",
                 "Validation Failed: 1: ifSeqNo is set, but primary term is [0];")


# ------------------------------------------------------------------------------------------------ unknown params


UNKNOWN_PARAM_ENDPOINTS = [
    ("PUT", "/{i}/_doc/new", {"v": [2, 2]}),
    ("POST", "/{i}/_doc", {"v": [2, 2]}),
    ("PUT", "/{i}/_create/new", {"v": [2, 2]}),
    ("GET", "/{i}/_doc/1", None),
    ("DELETE", "/{i}/_doc/1", None),
    ("POST", "/{i}/_update/1", {"doc": {"x": 9}}),
    ("POST", "/{i}/_bulk", '{"index":{"_id":"new"}}\n{"v":[2,2]}\n'),
    ("POST", "/_bulk", '{"delete":{"_index":"{i}","_id":"1"}}\n'),
    ("POST", "/{i}/_search", {"query": {"match_all": {}}}),
    ("POST", "/{i}/_count", None),
    ("POST", "/_mget", {"docs": [{"_index": "{i}", "_id": "1"}]}),
    ("POST", "/{i}/_mget", {"ids": ["1"]}),
    ("POST", "/{i}/_refresh", None),
    ("POST", "/{i}/_flush", None),
    ("POST", "/{i}/_forcemerge", None),
    ("GET", "/{i}/_stats", None),
    ("GET", "/{i}/_mapping", None),
    ("GET", "/{i}/_settings", None),
    ("GET", "/_cat/indices", None),
    ("GET", "/_cat/segments/{i}", None),
    ("POST", "/_reindex", {"source": {"index": "{i}"}, "dest": {"index": "{i}-dest"}}),
    ("DELETE", "/{i}", None),
    ("GET", "/", None),
]


@pytest.mark.parametrize("method, path, body", UNKNOWN_PARAM_ENDPOINTS,
                         ids=[f"{m} {p}" for m, p, _ in UNKNOWN_PARAM_ENDPOINTS])
def test_unknown_query_parameter(client, seeded, method, path, body):
    path = path.format(i=seeded)
    if isinstance(body, str):
        body = body.replace("{i}", seeded)
    elif body is not None:
        body = json.loads(json.dumps(body).replace("{i}", seeded))
    before = state(client, seeded)
    status, info = fail(lambda: client.transport.perform_request(method, path, params={"foo": "bar"}, body=body),
                        RequestError)
    assert status == 400
    assert_error(info, 400, "illegal_argument_exception", f"request [{path}] contains unrecognized parameter: [foo]")
    assert state(client, seeded) == before


def test_unknown_query_parameter_create_index(client, index_name):
    _, info = fail(lambda: client.indices.create(index=index_name, params={"foo": "bar"}), RequestError)
    assert_error(info, 400, "illegal_argument_exception",
                 f"request [/{index_name}] contains unrecognized parameter: [foo]")
    assert client.indices.exists(index=index_name) is False


def test_unknown_query_parameters_format(client, seeded):
    path = f"/{seeded}/_doc/1"
    _, info = fail(lambda: client.transport.perform_request("GET", path, params={"foo": "1", "bar": "2"}),
                   RequestError)
    assert info["error"]["reason"] == f"request [{path}] contains unrecognized parameters: [bar], [foo]"
    _, info = fail(lambda: client.transport.perform_request("GET", path, params={"refres": "true"}), RequestError)
    assert info["error"]["reason"] == f"request [{path}] contains unrecognized parameter: [refres] -> did you mean " \
                                      "[refresh]?"


def test_bad_parameter_values(client, seeded):
    before = state(client, seeded)
    _, info = fail(lambda: client.index(index=seeded, id="new", body={"v": [1, 1]}, op_type="upsert"), RequestError)
    assert_error(info, 400, "illegal_argument_exception", "opType must be 'create' or 'index', found: [upsert]")
    _, info = fail(lambda: client.search(index=seeded, body={"size": -1}), RequestError)
    assert_error(info, 400, "illegal_argument_exception", "[size] parameter cannot be negative, found [-1]")
    _, info = fail(lambda: client.search(index=seeded, body={"from": -2}), RequestError)
    assert_error(info, 400, "illegal_argument_exception", "[from] parameter cannot be negative, found [-2]")
    _, info = fail(lambda: client.indices.forcemerge(index=seeded, max_num_segments=1, only_expunge_deletes=True),
                   RequestError)
    assert "cannot set only_expunge_deletes and max_num_segments at the same time, those two parameters are " \
           "mutually exclusive" in info["error"]["reason"]
    assert state(client, seeded) == before


@pytest.mark.parametrize("op", ["index", "delete", "update", "bulk"])
def test_bad_refresh_value_writes_nothing(client, seeded, op):
    before = state(client, seeded)
    calls = {
        "index": lambda: client.index(index=seeded, id="new", body={"v": [1, 1]}, refresh="sometimes"),
        "delete": lambda: client.delete(index=seeded, id="1", refresh="sometimes"),
        "update": lambda: client.update(index=seeded, id="1", body={"doc": {"x": 5}}, refresh="sometimes"),
        "bulk": lambda: client.bulk(index=seeded, body=[{"index": {"_id": "new"}}, {"v": [1, 1]}],
                                    refresh="sometimes"),
    }
    try:
        _, info = fail(calls[op], RequestError)
        assert_error(info, 400, "illegal_argument_exception", "Unknown value for refresh: [sometimes].")
    finally:
        assert state(client, seeded) == before


# ------------------------------------------------------------------------------------------------ index creation


def test_create_existing_index(client, seeded):
    before = state(client, seeded)
    uuid = client.indices.get_settings(index=seeded)[seeded]["settings"]["index"]["uuid"]
    _, info = fail(lambda: client.indices.create(index=seeded, body={"mappings": {"properties": {
        "v": {"type": "knn_vector", "dimension": 7}}}}), RequestError)
    err = assert_error(info, 400, "resource_already_exists_exception", f"index [{seeded}/{uuid}] already exists")
    assert err["index"] == seeded and err["index_uuid"] == uuid
    assert state(client, seeded) == before


@pytest.mark.parametrize("props, reason", [
    ({"v": {"type": "knn_vector"}}, "Dimension value missing for vector: v"),
    ({"v": {"type": "knn_vector", "dimension": 0}}, "Dimension value must be greater than 0 for vector: v"),
    ({"v": {"type": "knn_vector", "dimension": "abc"}}, "Unable to parse [dimension] from provided value [abc] for "
                                                        "vector [v]"),
    ({"v": {"type": "knn_vector", "dimension": 16001}},
     "Dimension value cannot be greater than 16000 for vector with engine: faiss"),
    ({"v": {"type": "knn_vector", "dimension": 2, "data_type": "half"}},
     "Invalid value provided for [data_type] field. Supported values are [binary,byte,float]"),
    ({"v": {"type": "knn_vector", "dimension": 2, "space_type": "l2", "method": {"name": "hnsw",
                                                                                  "space_type": "innerproduct"}}},
     "Cannot specify conflicting space types: "),
    ({"v": {"type": "knn_vector", "dimension": 2, "method": {"name": "hnsw", "engine": "foo"}}}, "Invalid engine: foo"),
    ({"v": {"type": "knn_vector", "dimension": 2, "method": {"engine": "faiss"}}}, "name needs to be set"),
    ({"v": {"type": "knn_vector", "dimension": 2, "method": {"name": "hnsw", "params": {}}}},
     "Invalid parameter: params"),
    ({"v": {"type": "knn_vector", "dimension": 2, "method": {"name": "hnsw", "parameters": {"foo": 1}}}},
     "Unknown parameter 'foo' found"),
    ({"v": {"type": "knn_vector", "dimension": 2, "foo": 1}}, "unknown parameter [foo] on mapper [v] of type "
                                                              "[knn_vector]"),
    ({"v": {"type": "knn_vector", "dimension": 12, "data_type": "binary", "space_type": "hamming"}},
     "Dimension should be multiply of 8 for binary vector data type"),
    ({"v": {"type": "knn_vector", "dimension": 2, "space_type": "hamming"}},
     "Space type [hamming] is not supported with [float] data type"),
    ({"v": {"type": "knn_vector", "dimension": 2, "engine": "nmslib"}},
     "nmslib engine is deprecated in OpenSearch  and cannot be used for new index creation in OpenSearch from  "
     "3.0.0."),
    ({"x": {"type": "foo"}}, "No handler for type [foo] declared on field [x]"),
    ({"x": {"properties": {"y": {"type": "bar"}}}}, "No handler for type [bar] declared on field [y]"),
], ids=lambda x: x if isinstance(x, str) else None)
def test_invalid_mappings(client, index_name, props, reason):
    before = state(client, index_name)
    _, info = fail(lambda: client.indices.create(index=index_name, body={
        "settings": {"index.knn": True}, "mappings": {"properties": props}}), RequestError)
    err = assert_error(info, 400, "mapper_parsing_exception")
    # k-NN renders some of these through ValidationException ("Validation Failed: 1: <msg>;"), and the engine
    # team owns the exact wrapping: the test pins the prefix and the k-NN message itself.
    assert err["reason"].startswith("Failed to parse mapping [_doc]: "), err["reason"]
    assert reason in err["reason"], err["reason"]
    assert client.indices.exists(index=index_name) is False
    assert state(client, index_name) == before


def test_invalid_mapping_caused_by(client, index_name):
    _, info = fail(lambda: client.indices.create(index=index_name, body={
        "settings": {"index.knn": True}, "mappings": {"properties": {"v": {"type": "knn_vector"}}}}), RequestError)
    assert info["error"]["caused_by"] == {"type": "mapper_parsing_exception",
                                          "reason": "Dimension value missing for vector: v"}


def test_invalid_index_settings_and_names(client, index_name):
    _, info = fail(lambda: client.indices.create(index=index_name, body={"settings": {"index.foo": 1}}), RequestError)
    assert_error(info, 400, "illegal_argument_exception",
                 "unknown setting [index.foo] please check that any required plugins are installed, or check the "
                 "breaking changes documentation for removed settings")
    _, info = fail(lambda: client.indices.create(index=index_name, body={"settings": {
        "index.knn.derived_source.enabled": True}}), RequestError)
    assert_error(info, 400, "illegal_argument_exception",
                 'Index setting "index.knn" must be true in order to enabled derived source')
    bad = index_name.upper()
    _, info = fail(lambda: client.indices.create(index=bad), RequestError)
    assert_error(info, 400, "invalid_index_name_exception", f"Invalid index name [{bad}], must be lowercase")
    _, info = fail(lambda: client.index(index=bad, id="1", body={"a": 1}), RequestError)
    assert_error(info, 400, "invalid_index_name_exception", f"Invalid index name [{bad}], must be lowercase")
    _, info = fail(lambda: client.indices.create(index=index_name, body={"mapping": {}}), RequestError)
    assert info["error"]["reason"] == "unknown key [mapping] for create index"
    assert client.indices.exists(index=index_name) is False
    assert [r for r in client.cat.indices(format="json") if r["index"].startswith(index_name)] == []


# ------------------------------------------------------------------------------------------------ bad vectors


@pytest.mark.parametrize("value, cause", [
    ([1], "Vector dimension mismatch. Expected: 2, Given: 1"),
    ([1, 2, 3], "Vector dimension mismatch. Expected: 2, Given: 3"),
    ([], "Vector dimension mismatch. Expected: 2, Given: 0"),
    ([float("nan"), 1], "KNN vector values cannot be NaN"),
    ([float("inf"), 1], "KNN vector values cannot be infinity"),
])
def test_bad_vector_in_document(client, seeded, value, cause):
    before = state(client, seeded)
    for doc_id in ("new", "1"):  # a new doc, and an overwrite of an existing one
        _, info = fail(lambda: client.index(index=seeded, id=doc_id, body={"v": value, "x": 9}), RequestError)
        err = assert_error(info, 400, "mapper_parsing_exception")
        preview = json.dumps(value)
        assert err["reason"] == (f"failed to parse field [v] of type [knn_vector] in document with id '{doc_id}'. "
                                 f"Preview of field's value: '{preview}'")
        assert err["caused_by"] == {"type": "illegal_argument_exception", "reason": cause}
    # the same document in a bulk fails alone, and a partial update with it fails too
    resp = client.bulk(index=seeded, body=[{"index": {"_id": "new"}}, {"v": value}])
    assert resp["errors"] is True
    assert resp["items"][0]["index"]["error"]["caused_by"]["reason"] == cause
    _, info = fail(lambda: client.update(index=seeded, id="1", body={"doc": {"v": value}}), RequestError)
    assert info["error"]["caused_by"]["reason"] == cause
    assert state(client, seeded) == before


def test_bad_vector_query(client, seeded):
    _, info = fail(lambda: client.search(index=seeded, body={"query": {"knn": {"v": {"vector": [1], "k": 1}}}}),
                   RequestError)
    # a shard-level failure: QueryShardContext#toQuery wraps it (see test_bad_vector_query_is_shard_failure)
    uuid = client.indices.get_settings(index=seeded)[seeded]["settings"]["index"]["uuid"]
    assert info["error"]["root_cause"][0] == {
        "type": "query_shard_exception", "index": seeded, "index_uuid": uuid,
        "reason": "failed to create query: Query vector has invalid dimension: 1. Dimension should be: 2"}
    _, info = fail(lambda: client.search(index=seeded, body={"query": {"knn": {"v": {"vector": [1, 1], "k": 0}}}}),
                   RequestError)
    assert info["error"]["root_cause"][0]["reason"] == "[knn] requires k to be in the range (0, 10000]"
    _, info = fail(lambda: client.search(index=seeded, body={"query": {"knn": {"v": {"vector": [], "k": 1}}}}),
                   RequestError)
    assert info["error"]["root_cause"][0]["reason"] == "[knn] field 'vector' requires to be non-null and non-empty"
    _, info = fail(lambda: client.search(index=seeded, body={"query": {"knn": {"x": {"vector": [1, 1], "k": 1}}}}),
                   RequestError)
    assert info["status"] == 400
    _, info = fail(lambda: client.search(index=seeded, body={"query": {"foo": {}}}), RequestError)
    assert_error(info, 400, "parsing_exception", "unknown query [foo]")


def test_bad_vector_query_is_shard_failure(client, seeded):
    _, info = fail(lambda: client.search(index=seeded, body={"query": {"knn": {"v": {"vector": [1], "k": 1}}}}),
                   RequestError)
    err = info["error"]
    assert info["status"] == 400
    assert err["type"] == "search_phase_execution_exception"
    assert err["reason"] == "all shards failed"
    assert err["phase"] == "query" and err["grouped"] is True
    # the failure is its own root cause (an OpenSearchException): no top-level caused_by repeats it
    assert "caused_by" not in err
    (shard,) = err["failed_shards"]
    assert shard["shard"] == 0 and shard["index"] == seeded and isinstance(shard["node"], str) and shard["node"]
    reason = shard["reason"]
    assert reason["type"] == "query_shard_exception" and reason["index"] == seeded
    assert reason["reason"] == "failed to create query: Query vector has invalid dimension: 1. Dimension should be: 2"
    assert reason["caused_by"] == {"type": "illegal_argument_exception",
                                   "reason": "Query vector has invalid dimension: 1. Dimension should be: 2"}
    assert err["root_cause"] == [{k: v for k, v in reason.items() if k != "caused_by"}]


def test_unknown_search_body_key(client, seeded):
    _, info = fail(lambda: client.search(index=seeded, body={"foo": 1}), RequestError)
    assert_error(info, 400, "parsing_exception", "Unknown key for a VALUE_NUMBER in [foo].")


# ------------------------------------------------------------------------------------------------ bulk bodies


def test_bulk_without_final_newline(client, seeded):
    before = state(client, seeded)
    body = f'{{"index":{{"_index":"{seeded}","_id":"b1"}}}}\n{{"v":[2,2]}}\n{{"index":{{"_index":"{seeded}",' \
           f'"_id":"b2"}}}}\n{{"v":[3,3]}}'
    for path in ("/_bulk", f"/{seeded}/_bulk"):
        _, info = fail(lambda: client.transport.perform_request("POST", path, body=body), RequestError)
        assert_error(info, 400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
    assert state(client, seeded) == before  # b1, though complete, was not applied


@pytest.mark.parametrize("line", ['{bad', '{"index":{"_index":"x"}'])
def test_bulk_malformed_json_action_line(client, seeded, line):
    before = state(client, seeded)
    body = f'{{"index":{{"_index":"{seeded}","_id":"b1"}}}}\n{{"v":[2,2]}}\n{line}\n{{"v":[3,3]}}\n'
    status, info = fail(lambda: client.transport.perform_request("POST", "/_bulk", body=body), RequestError)
    assert status == 400 and info["status"] == 400
    assert info["error"]["type"] in ("json_parse_exception", "illegal_argument_exception")  # see BUG-18
    assert state(client, seeded) == before


def test_bulk_unknown_action(client, seeded):
    before = state(client, seeded)
    body = f'{{"index":{{"_index":"{seeded}","_id":"b1"}}}}\n{{"v":[2,2]}}\n{{"upsert":{{"_id":"b2"}}}}\n{{"v":[3,3]}}\n'
    _, info = fail(lambda: client.transport.perform_request("POST", "/_bulk", body=body), RequestError)
    assert_error(info, 400, "illegal_argument_exception", "Malformed action/metadata line [3], expected field "
                 "[create], [delete], [index] or [update] but found [upsert]")
    assert state(client, seeded) == before


@pytest.mark.parametrize("line, reason", [
    ('"abc"', "Malformed action/metadata line [3], expected START_OBJECT but found [VALUE_STRING]"),
    ('[1]', "Malformed action/metadata line [3], expected START_OBJECT but found [START_ARRAY]"),
    ('{}', "Malformed action/metadata line [3], expected FIELD_NAME but found [END_OBJECT]"),
    ('{"index":1}', "Malformed action/metadata line [3], expected START_OBJECT or END_OBJECT but found [VALUE_NUMBER]"),
    ('{"index":{"_id":"b2","foo":1}}', "Action/metadata line [3] contains an unknown parameter [foo]"),
])
def test_bulk_malformed_action_line_messages(client, seeded, line, reason):
    before = state(client, seeded)
    body = f'{{"index":{{"_index":"{seeded}","_id":"b1"}}}}\n{{"v":[2,2]}}\n{line}\n{{"v":[3,3]}}\n'
    try:
        _, info = fail(lambda: client.transport.perform_request("POST", f"/{seeded}/_bulk", body=body), RequestError)
        assert_error(info, 400, "illegal_argument_exception", reason)
    finally:
        assert state(client, seeded) == before


def test_bulk_empty_body(client, seeded):
    _, info = fail(lambda: client.transport.perform_request("POST", "/_bulk", body=""), RequestError)
    assert info["status"] == 400


# ------------------------------------------------------------------------------------------------ update / mget


def test_update_bad_bodies(client, seeded):
    before = state(client, seeded)
    _, info = fail(lambda: client.update(index=seeded, id="1", body={"dock": {"x": 1}}), RequestError)
    assert info["status"] == 400 and "dock" in info["error"]["reason"]
    _, info = fail(lambda: client.update(index=seeded, id="1", body={}), RequestError)
    assert info["status"] == 400
    assert info["error"]["reason"] == "Validation Failed: 1: script or doc is missing;"
    assert state(client, seeded) == before


def test_validation_error_types(client, seeded):
    _, info = fail(lambda: client.update(index=seeded, id="1", body={}), RequestError)
    assert info["error"]["type"] == "action_request_validation_exception"
    _, info = fail(lambda: client.mget(index=seeded, body={"foo": []}), RequestError)
    # MultiGetRequest#add throws ParsingException (OpenSearch 2.x+; parse_exception was Elasticsearch 6)
    assert_error(info, 400, "parsing_exception", "unknown key [foo] for a START_ARRAY, expected [docs] or [ids]")
    _, info = fail(lambda: client.indices.forcemerge(index=seeded, max_num_segments=1, only_expunge_deletes=True),
                   RequestError)
    assert_error(info, 400, "action_request_validation_exception",
                 "Validation Failed: 1: cannot set only_expunge_deletes and max_num_segments at the same time, those "
                 "two parameters are mutually exclusive;")
    _, info = fail(lambda: client.indices.create(index=seeded + "-x", body={"mapping": {}}), RequestError)
    assert_error(info, 400, "parse_exception", "unknown key [mapping] for create index")


def test_invalid_utf8_body_is_rejected(client, raw, seeded):
    before = state(client, seeded)
    try:
        status, _, body = raw("PUT", f"/{seeded}/_doc/new", b'{"v":[1,1],"t":"caf\xe9"}')
        assert status == 400
        assert body["error"]["type"] == "mapper_parsing_exception"
        assert body["error"]["caused_by"]["type"] == "json_parse_exception"
    finally:
        assert state(client, seeded) == before
