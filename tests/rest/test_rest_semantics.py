"""OpenSearch semantics of the REST layer beyond the basic endpoint tests: settings rendering, parameter
validation, optimistic concurrency on updates, non-realtime GET, bulk validation and auto-creation, shard
failures in ``_search``, ``_mget`` parsing. Expected texts are OpenSearch's (sources named per test).

The pure helpers (settings structure, did-you-mean, raw URI handling) are tested directly; everything else
runs against both front ends (``client`` is parametrised ``embedded`` / ``http``, see conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from opensearchpy.exceptions import ConflictError, NotFoundError, RequestError, TransportError

from segstore.rest.handlers_indices import structured_settings
from segstore.rest.router import _similarity, unrecognized
from segstore.rest.server import request_target

VEC = {"v": {"type": "knn_vector", "dimension": 2}}


def fail(call, exc=TransportError) -> dict[str, Any]:
    with pytest.raises(exc) as ei:
        call()
    assert isinstance(ei.value.info, dict), ei.value.info
    return ei.value.info  # type: ignore[no-any-return]


@pytest.fixture
def idx(client, index_name) -> str:
    client.indices.create(index=index_name, body={"settings": {"index.knn": True, "index.refresh_interval": "-1"},
                                                  "mappings": {"properties": VEC}})
    client.index(index=index_name, id="1", body={"v": [1, 1], "x": 0}, refresh="true")
    return index_name


def uuid_of(client, index: str) -> str:
    return client.indices.get_settings(index=index)[index]["settings"]["index"]["uuid"]  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------------ pure helpers


def test_structured_settings_port_of_get_as_structured_map():
    flat = {"index.knn": "true", "index.knn.algo_param.ef_search": "100", "index.knn.derived_source.enabled": "true",
            "index.number_of_shards": "1", "index.routing.x": "a"}
    assert structured_settings(flat) == {"index": {
        "knn": "true", "knn.algo_param": {"ef_search": "100"}, "knn.derived_source": {"enabled": "true"},
        "number_of_shards": "1", "routing": {"x": "a"}}}
    # a deeper value-and-prefix key falls back to dotted notation at its own level
    assert structured_settings({"a.b": "1", "a.b.c.d": "2", "a.b.e": "3"}) == {
        "a": {"b": "1", "b.c": {"d": "2"}, "b.e": "3"}}
    # maps keyed 0..n-1 become arrays (convertMapsToArrays)
    assert structured_settings({"x.list.0": "a", "x.list.1": "b", "x.gap.0": "a", "x.gap.2": "c"}) == {
        "x": {"list": ["a", "b"], "gap": {"0": "a", "2": "c"}}}


def test_did_you_mean_follows_base_rest_handler():
    assert _similarity("refres", "refresh") == pytest.approx(1 - 1 / 7)
    assert _similarity("", "") == 1.0 and _similarity("a", "") == 0.0
    cands = {"refresh", "realtime", "routing", "_source", "_source_includes", "_source_excludes"}
    assert unrecognized("/i/_doc/1", {"refres"}, cands) == \
        "request [/i/_doc/1] contains unrecognized parameter: [refres] -> did you mean [refresh]?"
    # several candidates above 0.5: best first, then by name
    assert unrecognized("/p", {"_source_include"}, cands) == (
        "request [/p] contains unrecognized parameter: [_source_include] -> did you mean any of "
        "[_source_includes, _source_excludes]?")
    assert unrecognized("/p", {"zzz", "aaa"}, cands) == "request [/p] contains unrecognized parameters: [aaa], [zzz]"


@pytest.mark.parametrize("environ, expected", [
    ({"REQUEST_URI": "/i/_doc/x%2Fy?refresh=true", "PATH_INFO": "/i/_doc/x/y"}, ("/i/_doc/x%2Fy", "refresh=true")),
    ({"REQUEST_URI": "/i/_doc/100%25", "PATH_INFO": "/i/_doc/100%"}, ("/i/_doc/100%25", "")),
    ({"REQUEST_URI": "/i/_doc/q%3Fx=1%23f#frag"}, ("/i/_doc/q%3Fx=1%23f", "")),
    ({"REQUEST_URI": "http://localhost:9200/i/_search?size=1"}, ("/i/_search", "size=1")),
    # raw UTF-8 bytes arrive latin-1 decoded in WSGI
    ({"REQUEST_URI": "/i/_doc/é".encode().decode("latin-1")}, ("/i/_doc/é", "")),
    ({"PATH_INFO": "/i/_doc/a b", "QUERY_STRING": "x=1"}, ("/i/_doc/a%20b", "x=1")),
])
def test_request_target_uses_the_raw_uri(environ, expected):
    assert request_target(environ) == expected


# ------------------------------------------------------------------------------------------------ settings


def test_get_settings_reports_injected_derived_source(client, index_name):
    client.indices.create(index=index_name, body={"settings": {"index.knn": True}})
    s = client.indices.get_settings(index=index_name)[index_name]["settings"]["index"]
    assert s["knn"] == "true" and s["knn.derived_source"] == {"enabled": "true"}
    flat = client.indices.get_settings(index=index_name, flat_settings=True)[index_name]["settings"]
    assert flat["index.knn"] == "true" and flat["index.knn.derived_source.enabled"] == "true"
    assert list(flat) == sorted(flat)
    assert client.indices.get(index=index_name, flat_settings=True)[index_name]["settings"]["index.knn"] == "true"
    # explicit false is kept; no k-NN: nothing injected
    client.indices.create(index=index_name + "-off", body={"settings": {"index.knn": True,
                                                                        "index.knn.derived_source.enabled": False}})
    s = client.indices.get_settings(index=index_name + "-off")[index_name + "-off"]["settings"]["index"]
    assert s["knn.derived_source"] == {"enabled": "false"}
    client.indices.create(index=index_name + "-plain")
    s = client.indices.get_settings(index=index_name + "-plain")[index_name + "-plain"]["settings"]["index"]
    assert "knn" not in s and "knn.derived_source" not in s


def test_create_index_body_errors(client, index_name):
    info = fail(lambda: client.transport.perform_request("PUT", f"/{index_name}", body="[1]"), RequestError)
    assert info["error"]["type"] == "parse_exception" and info["error"]["reason"] == "Failed to parse content to map"
    info = fail(lambda: client.indices.create(index=index_name, body={"settings": 5}), RequestError)
    assert (info["error"]["type"], info["error"]["reason"]) == ("parse_exception", "key [settings] must be an object")
    info = fail(lambda: client.indices.create(index=index_name, body={"aliases": {"a": {}}}), RequestError)
    assert info["error"]["type"] == "illegal_argument_exception"
    assert client.indices.exists(index=index_name) is False


# ------------------------------------------------------------------------------------------------ write parameters


def test_versioning_params_are_rejected(client, idx):
    """Internal versioning gets OpenSearch's validation error; external versioning needs a version >= 0, and
    neither ``create`` nor ``if_seq_no`` combine with it (IndexRequest#validate)."""
    info = fail(lambda: client.index(index=idx, id="1", body={"v": [2, 2]}, version=2), RequestError)
    assert info["error"]["type"] == "action_request_validation_exception"
    assert info["error"]["reason"] == ("Validation Failed: 1: internal versioning can not be used for optimistic "
                                       "concurrency control. Please use `if_seq_no` and `if_primary_term` instead;")
    info = fail(lambda: client.index(index=idx, id="ext", body={"v": [2, 2]}, version_type="external"),
                RequestError)
    assert info["error"]["reason"] == "Validation Failed: 1: illegal version value [-3] for version type [EXTERNAL];"
    info = fail(lambda: client.index(index=idx, id="ext", body={"v": [2, 2]}, version=-2, version_type="external_gte"),
                RequestError)
    assert info["error"]["reason"] == "Validation Failed: 1: illegal version value [-2] for version type [EXTERNAL_GTE];"
    info = fail(lambda: client.create(index=idx, id="ext", body={"v": [2, 2]}, version=3, version_type="external"),
                RequestError)
    assert info["error"]["reason"] == \
        "Validation Failed: 1: create operations only support internal versioning. use index instead;"
    info = fail(lambda: client.index(index=idx, id="1", body={"v": [2, 2]}, version=3, version_type="external",
                                     if_seq_no=0, if_primary_term=1), RequestError)
    assert info["error"]["reason"] == "Validation Failed: 1: compare and write operations can not use versioning;"
    info = fail(lambda: client.delete(index=idx, id="1", version=1, version_type="foo"), RequestError)
    assert info["error"]["reason"] == "No version type match [foo]"
    info = fail(lambda: client.update(index=idx, id="1", body={"doc": {"x": 1}}, params={"version": 1}), RequestError)
    assert info["error"]["type"] == "action_request_validation_exception"
    assert client.exists(index=idx, id="ext") is False
    assert client.get(index=idx, id="1")["_version"] == 1


def test_cas_parameter_checks(client, idx):
    info = fail(lambda: client.index(index=idx, id="1", body={"v": [2, 2]}, if_primary_term=1), RequestError)
    assert info["error"]["reason"] == "Validation Failed: 1: ifSeqNo is unassigned, but primary term is [1];"
    info = fail(lambda: client.index(index=idx, id="1", body={"v": [2, 2]}, if_seq_no=-5, if_primary_term=1),
                RequestError)
    assert info["error"]["reason"] == "sequence numbers must be non negative. got [-5]."
    info = fail(lambda: client.index(index=idx, id="1", body={"v": [2, 2]}, if_seq_no="abc", if_primary_term=1),
                RequestError)
    assert info["error"]["reason"] == "Failed to parse long parameter [if_seq_no] with value [abc]"
    assert info["error"]["caused_by"]["type"] == "number_format_exception"
    info = fail(lambda: client.create(index=idx, id="9", body={"v": [2, 2]}, params={"if_seq_no": 0,
                                                                                      "if_primary_term": 1}),
                RequestError)
    assert info["error"]["reason"] == ("Validation Failed: 1: create operations do not support compare and set. use "
                                       "index instead;")
    info = fail(lambda: client.transport.perform_request("PUT", f"/{idx}/_create/9", body={"v": [2, 2]},
                                                         params={"op_type": "index"}), RequestError)
    assert info["error"]["reason"] == "opType must be 'create', found: [index]"
    info = fail(lambda: client.delete(index=idx, id="1", if_seq_no=0), RequestError)
    assert info["error"]["reason"] == "Validation Failed: 1: ifSeqNo is set, but primary term is [0];"
    info = fail(lambda: client.index(index=idx, id="x" * 513, body={"v": [2, 2]}), RequestError)
    assert info["error"]["reason"].endswith("is too long, must be no longer than 512 bytes but was: 513;")
    assert client.get(index=idx, id="1")["_version"] == 1 and client.exists(index=idx, id="9") is False


def test_version_conflicts_carry_the_shard(client, idx):
    uuid = uuid_of(client, idx)
    for call in (lambda: client.create(index=idx, id="1", body={"v": [1, 1]}),
                 lambda: client.index(index=idx, id="1", body={"v": [1, 1]}, if_seq_no=5, if_primary_term=1),
                 lambda: client.delete(index=idx, id="1", if_seq_no=5, if_primary_term=1),
                 lambda: client.update(index=idx, id="1", body={"doc": {"x": 1}}, if_seq_no=5, if_primary_term=1)):
        err = fail(call, ConflictError)["error"]
        assert (err["index"], err["shard"], err["index_uuid"]) == (idx, "0", uuid)
        assert err["root_cause"][0]["index_uuid"] == uuid


# ------------------------------------------------------------------------------------------------ update


def test_update_cas_succeeds_on_the_current_seq_no(client, idx):
    cur = client.get(index=idx, id="1")
    r = client.update(index=idx, id="1", body={"doc": {"x": 1}}, if_seq_no=cur["_seq_no"],
                      if_primary_term=cur["_primary_term"])
    assert r["result"] == "updated" and r["_version"] == 2
    err = fail(lambda: client.update(index=idx, id="1", body={"doc": {"x": 2}}, if_seq_no=cur["_seq_no"],
                                     if_primary_term=1), ConflictError)["error"]
    assert err["reason"] == (f"[1]: version conflict, required seqNo [{cur['_seq_no']}], primary term [1]. current "
                             f"document has seqNo [{r['_seq_no']}] and primary term [1]")
    # CAS is checked before noop detection
    fail(lambda: client.update(index=idx, id="1", body={"doc": {"x": 1}}, if_seq_no=0, if_primary_term=1),
         ConflictError)


def test_update_validation(client, idx):
    def reason(body: dict[str, Any], **params: Any) -> str:
        info = fail(lambda: client.update(index=idx, id="1", body=body, **params), RequestError)
        assert info["error"]["type"] == "action_request_validation_exception", info
        return info["error"]["reason"]  # type: ignore[no-any-return]

    assert reason({"doc": {"x": 1}, "doc_as_upsert": True}, if_seq_no=0, if_primary_term=1) == \
        "Validation Failed: 1: compare and write operations can not be used with upsert;"
    assert reason({"doc": {"x": 1}, "upsert": {"x": 0}}, if_seq_no=0, if_primary_term=1) == \
        "Validation Failed: 1: upsert requests don't support `if_seq_no` and `if_primary_term`;"
    assert reason({"doc": {"x": 1}}, if_seq_no=0, if_primary_term=1, retry_on_conflict=2) == \
        "Validation Failed: 1: compare and write operations can not be retried;"
    assert reason({"doc_as_upsert": True}) == \
        "Validation Failed: 1: script or doc is missing;2: doc must be specified if doc_as_upsert is enabled;"
    info = fail(lambda: client.update(index=idx, id="1", body={"script": {"source": "ctx._source.x++"}}), RequestError)
    assert "script" in info["error"]["reason"]
    info = fail(lambda: client.update(index=idx, id="1", body={"dock": {}}), RequestError)
    assert info["error"]["type"] == "x_content_parse_exception"
    assert client.get(index=idx, id="1")["_source"] == {"v": [1.0, 1.0], "x": 0}


def test_update_get_section(client, idx):
    r = client.update(index=idx, id="1", body={"doc": {"x": 1}}, _source_includes="x")
    assert r["get"] == {"_seq_no": r["_seq_no"], "_primary_term": 1, "found": True, "_source": {"x": 1}}
    r = client.update(index=idx, id="1", body={"doc": {"x": 1}, "_source": True})  # noop still has it
    assert r["result"] == "noop" and r["get"]["_source"] == {"v": [1.0, 1.0], "x": 1}
    r = client.update(index=idx, id="new", body={"doc": {"v": [2, 2]}, "doc_as_upsert": True}, _source="v")
    assert r["result"] == "created" and r["get"]["_source"] == {"v": [2, 2]}
    r = client.update(index=idx, id="1", body={"doc": {"x": 2}}, _source="false")
    assert "get" not in r
    r = client.update(index=idx, id="1", body={"doc": {"x": 3}}, refresh="true", _source="x")
    assert list(r)[:5] == ["_index", "_id", "_version", "result", "forced_refresh"] and list(r)[-1] == "get"


def test_update_on_missing_index_auto_creates_it(client, index_name):
    """TransportUpdateAction auto-creates the index before looking the document up."""
    err = fail(lambda: client.update(index=index_name, id="1", body={"doc": {"a": 1}}), NotFoundError)["error"]
    assert err["type"] == "document_missing_exception" and err["reason"] == "[1]: document missing"
    assert client.indices.exists(index=index_name) is True
    assert (err["index"], err["shard"], err["index_uuid"]) == (index_name, "0", uuid_of(client, index_name))


# ------------------------------------------------------------------------------------------------ get


def test_get_realtime_false_reads_the_refreshed_reader(client, idx):
    client.update(index=idx, id="1", body={"doc": {"x": 1}})
    assert client.get(index=idx, id="1")["_source"]["x"] == 1
    stale = client.get(index=idx, id="1", realtime=False)
    assert (stale["_version"], stale["_source"]["x"]) == (1, 0)
    client.delete(index=idx, id="1")
    assert client.get(index=idx, id="1", realtime=False)["found"] is True  # not refreshed yet
    fail(lambda: client.get(index=idx, id="1"), NotFoundError)
    fail(lambda: client.get(index=idx, id="1", realtime=False, refresh=True), NotFoundError)
    docs = client.mget(index=idx, body={"ids": ["1"]}, realtime=False)["docs"]
    assert docs == [{"_index": idx, "_id": "1", "found": False}]


def test_get_version_and_stored_fields(client, idx):
    assert client.get(index=idx, id="1", version=1)["found"] is True
    err = fail(lambda: client.get(index=idx, id="1", version=3), ConflictError)["error"]
    assert err["reason"] == "[1]: version conflict, current version [1] is different than the one provided [3]"
    got = client.get(index=idx, id="1", stored_fields="x")
    assert got["found"] is True and "_source" not in got
    assert client.get(index=idx, id="1", stored_fields="x", _source="true")["_source"]["x"] == 0


# ------------------------------------------------------------------------------------------------ mget


def test_mget_parsing_and_validation(client, idx):
    def err(body: Any) -> tuple[str, str]:
        e = fail(lambda: client.mget(index=idx, body=body), RequestError)["error"]
        return e["type"], e["reason"]

    assert err({"ids": []}) == ("action_request_validation_exception", "Validation Failed: 1: no documents to get;")
    assert err({"docs": 5}) == ("parsing_exception", "unexpected token [VALUE_NUMBER], expected [FIELD_NAME] or "
                                                     "[START_ARRAY]")
    assert err({"docs": [{"_id": "1", "x": 1}]}) == ("parse_exception",
                                                     "failed to parse multi get request. unknown field [x]")
    assert err({"docs": [1]}) == ("illegal_argument_exception", "docs array element should include an object")
    assert err({"ids": [{}]}) == ("illegal_argument_exception", "ids array element should only contain ids")
    e = fail(lambda: client.mget(body={"docs": [{"_id": "1"}, {"_index": idx}]}), RequestError)["error"]
    assert e["reason"] == "Validation Failed: 1: index is missing for doc 0;2: id is missing for doc 1;"
    # a document's own _source replaces the URL's source parameters; a version mismatch is a per-doc error
    docs = client.mget(index=idx, body={"docs": [{"_id": "1", "_source": ["x"]}, {"_id": "1"},
                                                 {"_id": "1", "version": 7}]}, _source_excludes="x")["docs"]
    assert docs[0]["_source"] == {"x": 0} and docs[1]["_source"] == {"v": [1.0, 1.0]}
    assert docs[2]["error"]["type"] == "version_conflict_engine_exception"


# ------------------------------------------------------------------------------------------------ bulk


def test_bulk_auto_creates_for_writes_only(client, index_name):
    other = index_name + "-upd"
    body = (f'{{"index":{{"_index":"{index_name}","_id":"1"}}}}\n{{"a":1}}\n'
            f'{{"delete":{{"_index":"{index_name}","_id":"2"}}}}\n'
            f'{{"update":{{"_index":"{other}","_id":"1"}}}}\n{{"doc":{{"a":1}}}}\n')
    items = client.bulk(body=body)["items"]
    assert items[0]["index"]["status"] == 201
    # the index exists by the time the delete runs (auto-creation happens first)
    assert items[1]["delete"]["status"] == 404 and items[1]["delete"]["result"] == "not_found"
    assert items[2]["update"]["status"] == 404
    assert items[2]["update"]["error"]["type"] == "document_missing_exception"
    assert client.indices.exists(index=other) is True


def test_bulk_is_validated_before_anything_is_written(client, idx):
    body = ('{"index":{"_id":"b1"}}\n{"v":[2,2]}\n'
            '{"delete":{}}\n'
            '{"index":{"_id":"b2","if_seq_no":0}}\n{"v":[2,2]}\n'
            '{"update":{"_id":"1"}}\n{"doc_as_upsert":true}\n')
    e = fail(lambda: client.bulk(index=idx, body=body), RequestError)["error"]
    assert e["type"] == "action_request_validation_exception"
    assert e["reason"] == ("Validation Failed: 1: id is missing;2: ifSeqNo is set, but primary term is [0];3: script "
                           "or doc is missing;4: doc must be specified if doc_as_upsert is enabled;")
    e = fail(lambda: client.bulk(index=idx, body='{"index":{"_id":["a"]}}\n{}\n'), RequestError)["error"]
    assert e["reason"] == ("Malformed action/metadata line [1], expected a simple value for field [_id] but found "
                           "[START_ARRAY]")
    e = fail(lambda: client.bulk(index=idx, body='{"update":{"_id":"1","version":2}}\n{"doc":{}}\n'),
             RequestError)["error"]
    assert e["reason"] == ("Update requests do not support versioning. Please use `if_seq_no` and `if_primary_term` "
                           "instead")
    e = fail(lambda: client.bulk(index=idx, body='{"update":{"_id":"1"}}\n{bad\n'), RequestError)["error"]
    assert e["type"] == "json_parse_exception"
    assert client.exists(index=idx, id="b1") is False
    assert client.get(index=idx, id="1")["_version"] == 1


def test_bulk_items_cas_get_and_forced_refresh(client, idx):
    uuid = uuid_of(client, idx)
    body = ('{"update":{"_id":"1","if_seq_no":7,"if_primary_term":1}}\n{"doc":{"x":1}}\n'
            '{"update":{"_id":"1","_source":{"includes":["x"]}}}\n{"doc":{"x":2}}\n'
            '{"create":{"_id":"1"}}\n{"v":[1,1]}\n'
            '{"index":{"_id":"2"}}\n{"v":[2,2]}\n')
    items = client.bulk(index=idx, body=body, refresh="true")["items"]
    bad = items[0]["update"]
    assert bad["status"] == 409 and (bad["error"]["index"], bad["error"]["shard"]) == (idx, "0")
    assert bad["error"]["index_uuid"] == uuid and "forced_refresh" not in bad
    ok = items[1]["update"]
    assert ok["result"] == "updated" and ok["forced_refresh"] is True and ok["get"]["_source"] == {"x": 2}
    assert items[2]["create"]["error"]["index_uuid"] == uuid
    assert list(items[3]["index"])[:5] == ["_index", "_id", "_version", "result", "forced_refresh"]


def test_bulk_invalid_utf8(client, raw, idx):
    status, _, resp = raw("POST", f"/{idx}/_bulk", b'{"index":{"_id":"u1"}}\n{"t":"caf\xe9"}\n'
                                                   b'{"index":{"_id":"u2"}}\n{"v":[2,2]}\n')
    assert status == 200 and resp["errors"] is True
    assert resp["items"][0]["index"]["error"]["caused_by"]["type"] == "json_parse_exception"
    assert resp["items"][1]["index"]["status"] == 201
    status, _, resp = raw("POST", f"/{idx}/_bulk", b'{"index":{"_id":"caf\xe9"}}\n{}\n')
    assert status == 400 and resp["error"]["type"] == "json_parse_exception"


# ------------------------------------------------------------------------------------------------ search


def test_search_body_keys_and_count_body(client, idx):
    def reason(body: Any, call=client.search) -> str:
        e = fail(lambda: call(index=idx, body=body), RequestError)["error"]
        assert e["type"] == "parsing_exception", e
        return e["reason"]  # type: ignore[no-any-return]

    assert reason({"size": {}}) == "Unknown key for a START_OBJECT in [size]."
    assert reason({"foo": None}) == "Unknown key for a VALUE_NULL in [foo]."
    assert reason({"query": "x"}) == "Unknown key for a VALUE_STRING in [query]."
    assert reason({"query": {"match_all": {}}, "size": 1}, client.count) == "request does not support [size]"
    # known keys segstore does not act on are still parsed (sort, aggs... see the report) and _source arrays work
    assert client.search(index=idx, body={"_source": ["x"], "track_total_hits": True})["hits"]["hits"][0][
        "_source"] == {"x": 0}
    e = fail(lambda: client.count(index=idx, params={"q": "x:1"}), RequestError)["error"]
    assert e["reason"].startswith(f"request [/{idx}/_count] contains unrecognized parameter: [q]")


def test_result_window_is_a_shard_failure(client, idx):
    e = fail(lambda: client.search(index=idx, body={"from": 9999, "size": 2}), RequestError)["error"]
    msg = ("Result window is too large, from + size must be less than or equal to: [10000] but was [10001]. See the "
           "scroll api for a more efficient way to request large data sets. This limit can be set by changing the "
           "[index.max_result_window] index level setting.")
    assert (e["type"], e["reason"], e["phase"]) == ("search_phase_execution_exception", "all shards failed", "query")
    assert e["root_cause"] == [{"type": "illegal_argument_exception", "reason": msg}]
    assert e["failed_shards"][0]["reason"] == {"type": "illegal_argument_exception", "reason": msg}
    assert e["caused_by"] == {"type": "illegal_argument_exception", "reason": msg}


def test_partial_shard_failures(client, idx):
    """One index's shard fails, the other answers: 200 with ``_shards.failures``; with
    ``allow_partial_search_results=false`` the request fails."""
    small = idx + "-small"
    client.indices.create(index=small, body={"settings": {"index.knn": True, "index.max_result_window": 1},
                                             "mappings": {"properties": VEC}})
    resp = client.search(index=f"{idx},{small}", body={"size": 2, "query": {"match_all": {}}})
    sh = resp["_shards"]
    assert (sh["total"], sh["successful"], sh["failed"]) == (2, 1, 1)
    assert sh["failures"][0]["index"] == small and "[1] but was [2]" in sh["failures"][0]["reason"]["reason"]
    assert [h["_id"] for h in resp["hits"]["hits"]] == ["1"]
    e = fail(lambda: client.search(index=f"{idx},{small}", body={"size": 2},
                                   allow_partial_search_results="false"), RequestError)["error"]
    assert e["reason"] == "Partial shards failure"
    # a knn dimension that only fits one index
    three = idx + "-three"
    client.indices.create(index=three, body={"settings": {"index.knn": True}, "mappings": {"properties": {
        "v": {"type": "knn_vector", "dimension": 3}}}})
    resp = client.search(index=f"{idx},{three}", body={"query": {"knn": {"v": {"vector": [1, 1], "k": 1}}}})
    assert resp["_shards"]["failed"] == 1 and resp["_shards"]["failures"][0]["reason"]["type"] == "query_shard_exception"
    assert resp["hits"]["hits"][0]["_id"] == "1"


def test_max_score(client, idx):
    client.index(index=idx, id="2", body={"v": [5, 5]}, refresh="true")
    q = {"query": {"knn": {"v": {"vector": [1, 1], "k": 2}}}}
    assert client.search(index=idx, body={**q, "from": 5})["hits"]["max_score"] == 1.0  # page empty, hits collected
    assert client.search(index=idx, body={**q, "size": 0})["hits"]["max_score"] is None
    assert client.search(index=idx, body={"query": {"ids": {"values": ["nope"]}}})["hits"]["max_score"] is None


def test_invalid_utf8_search_body(client, raw, idx):
    status, _, body = raw("POST", f"/{idx}/_search", b'{"query":{"term":{"t":"caf\xe9"}}}')
    assert status == 400 and body["error"]["type"] == "parse_exception"
    assert body["error"]["caused_by"]["type"] == "json_parse_exception"


def test_filter_query_pages_cross_index_boundaries(client, idx):
    """Filter hits stay arrays per index; a page is cut across indices in index order, doc order within."""
    other = idx + "-b"
    client.indices.create(index=other, body={"settings": {"index.knn": True}, "mappings": {"properties": VEC}})
    for i in range(2, 5):
        client.index(index=idx, id=str(i), body={"v": [i, i]})
    for i in range(3):
        client.index(index=other, id=f"b{i}", body={"v": [i, i]})
    client.indices.refresh(index=f"{idx},{other}")
    pages = [[(h["_index"], h["_id"], h["_score"]) for h in client.search(
        index=f"{idx},{other}", body={"from": start, "size": 3, "query": {"match_all": {}}, "_source": False}
    )["hits"]["hits"]] for start in (0, 3, 6)]
    assert pages == [[(idx, "1", 1.0), (idx, "2", 1.0), (idx, "3", 1.0)],
                     [(idx, "4", 1.0), (other, "b0", 1.0), (other, "b1", 1.0)],
                     [(other, "b2", 1.0)]]
    resp = client.search(index=f"{idx},{other}", body={"size": 0, "query": {"match_all": {}}})
    assert resp["hits"]["total"] == {"value": 7, "relation": "eq"} and resp["hits"]["max_score"] is None
