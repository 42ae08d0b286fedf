"""``sort``, ``search_after``, ``track_total_hits`` and aggregations of ``_search``, through both
front ends. Expected bodies follow OpenSearch (``FieldSortBuilder``, ``SearchPhaseController``,
``RestSearchAction#checkRestTotalHits``)."""

from __future__ import annotations

from typing import Any

import pytest
from opensearchpy.exceptions import TransportError

DOCS = [{"v": [1, 1], "price": 5, "f": 0.1, "tag": ["b", "z"], "t": "x"},
        {"v": [2, 2], "price": 3, "tag": "a"},
        {"v": [3, 3], "f": 2.5},
        {"v": [0, 0], "price": [1, 9], "tag": "c"}]


@pytest.fixture
def idx(client, index_name) -> str:
    client.indices.create(index=index_name, body={"settings": {"index.knn": True}, "mappings": {"properties": {
        "v": {"type": "knn_vector", "dimension": 2}, "price": {"type": "long"}, "f": {"type": "float"},
        "tag": {"type": "keyword"}, "t": {"type": "text"}, "nodv": {"type": "keyword", "doc_values": False}}}})
    for i, d in enumerate(DOCS):
        client.index(index=index_name, id=str(i), body=d)
    client.indices.refresh(index=index_name)
    return index_name


def ids_and_sort(resp: dict[str, Any]) -> list[tuple[str, Any, list[Any]]]:
    return [(h["_id"], h["_score"], h["sort"]) for h in resp["hits"]["hits"]]


def search(client, index: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
    return client.search(index=index, body={"_source": False, **body}, params=params)  # type: ignore[no-any-return]


def fail(call) -> dict[str, Any]:
    with pytest.raises(TransportError) as ei:
        call()
    return {"status": ei.value.status_code, **ei.value.info}


def test_sort_long_desc_missing_last(client, idx):
    resp = search(client, idx, {"sort": [{"price": "desc"}]})
    assert resp["hits"]["max_score"] is None
    # multi-valued [1, 9] sorts by its max when descending; the missing document comes last with Long.MIN_VALUE
    assert ids_and_sort(resp) == [("3", None, [9]), ("0", None, [5]), ("1", None, [3]),
                                  ("2", None, [-9223372036854775808])]


def test_sort_long_asc_default_mode_min_and_explicit_options(client, idx):
    assert ids_and_sort(search(client, idx, {"sort": ["price"]})) == [
        ("3", None, [1]), ("1", None, [3]), ("0", None, [5]), ("2", None, [9223372036854775807])]
    resp = search(client, idx, {"sort": [{"price": {"order": "asc", "mode": "max", "missing": "_first"}}]})
    assert ids_and_sort(resp) == [("2", None, [-9223372036854775808]), ("1", None, [3]), ("0", None, [5]),
                                  ("3", None, [9])]
    resp = search(client, idx, {"sort": [{"price": {"mode": "avg", "missing": 4}}]})
    assert ids_and_sort(resp) == [("1", None, [3]), ("2", None, [4]), ("0", None, [5]), ("3", None, [5])]


def test_sort_keyword_both_orders(client, idx):
    assert ids_and_sort(search(client, idx, {"sort": ["tag"]})) == [
        ("1", None, ["a"]), ("0", None, ["b"]), ("3", None, ["c"]), ("2", None, [None])]
    assert ids_and_sort(search(client, idx, {"sort": [{"tag": "desc"}]})) == [
        ("0", None, ["z"]), ("3", None, ["c"]), ("1", None, ["a"]), ("2", None, [None])]


def test_sort_float_with_score_tracks_scores(client, idx):
    resp = search(client, idx, {"sort": [{"f": "asc"}, "_score"]})
    assert resp["hits"]["max_score"] == 1.0
    assert ids_and_sort(resp) == [("0", 1.0, [0.1, 1.0]), ("2", 1.0, [2.5, 1.0]),
                                  ("1", 1.0, ["Infinity", 1.0]), ("3", 1.0, ["Infinity", 1.0])]
    resp = search(client, idx, {"sort": ["price"], "track_scores": True, "size": 1})
    assert resp["hits"]["max_score"] == 1.0 and ids_and_sort(resp) == [("3", 1.0, [1])]


def test_sort_only_score_desc_is_relevance_order(client, idx):
    resp = search(client, idx, {"sort": ["_score"], "size": 1})
    assert resp["hits"]["hits"] == [{"_index": idx, "_id": "0", "_score": 1.0}]


def test_sort_url_parameter_and_doc(client, idx):
    resp = client.search(index=idx, params={"sort": "price:desc", "_source": "false", "size": 2})
    assert ids_and_sort(resp) == [("3", None, [9]), ("0", None, [5])]
    assert ids_and_sort(search(client, idx, {"sort": [{"_doc": "desc"}], "size": 2})) == [
        ("3", None, [3]), ("2", None, [2])]


def test_sort_knn_hits(client, idx):
    resp = search(client, idx, {"query": {"knn": {"v": {"vector": [0, 0], "k": 3}}}, "sort": [{"price": "desc"}]})
    assert resp["hits"]["total"] == {"value": 3, "relation": "eq"}
    assert ids_and_sort(resp) == [("3", None, [9]), ("0", None, [5]), ("1", None, [3])]


def test_search_after(client, idx):
    resp = search(client, idx, {"sort": ["price"], "search_after": [3]})
    assert ids_and_sort(resp) == [("0", None, [5]), ("2", None, [9223372036854775807])]
    err = fail(lambda: search(client, idx, {"sort": ["price"], "search_after": [3, 4]}))
    assert err["error"]["failed_shards"][0]["reason"] == {
        "type": "illegal_argument_exception", "reason": "search_after has 2 value(s) but sort has 1."}


def test_sort_unmapped_field_fails_the_shard(client, idx):
    uuid = client.indices.get_settings(index=idx)[idx]["settings"]["index"]["uuid"]
    err = fail(lambda: search(client, idx, {"sort": ["nope"]}))
    reason = {"type": "query_shard_exception", "reason": "No mapping found for [nope] in order to sort on",
              "index": idx, "index_uuid": uuid}
    assert err["status"] == 400
    assert err["error"]["root_cause"] == [reason]
    assert err["error"]["type"] == "search_phase_execution_exception"
    assert err["error"]["reason"] == "all shards failed" and err["error"]["phase"] == "query"
    assert err["error"]["failed_shards"][0]["reason"] == reason and "caused_by" not in err["error"]
    # unmapped_type: every document is missing the field
    resp = search(client, idx, {"sort": [{"nope": {"unmapped_type": "long"}}], "size": 1})
    assert ids_and_sort(resp) == [("0", None, [9223372036854775807])]


def test_sort_text_and_no_doc_values_fields(client, idx):
    err = fail(lambda: search(client, idx, {"sort": ["t"]}))
    assert err["error"]["caused_by"] == {"type": "illegal_argument_exception", "reason": (
        "Text fields are not optimised for operations that require per-document field data like aggregations "
        "and sorting, so these operations are disabled by default. Please use a keyword field instead. "
        "Alternatively, set fielddata=true on [t] in order to load field data by uninverting the inverted index. "
        "Note that this can use significant memory.")}
    err = fail(lambda: search(client, idx, {"sort": ["nodv"]}))
    assert err["error"]["root_cause"] == [{"type": "illegal_argument_exception", "reason": (
        "Can't load fielddata on [nodv] because fielddata is unsupported on fields of type [keyword]. "
        "Use doc values instead.")}]
    err = fail(lambda: search(client, idx, {"sort": [{"tag": {"mode": "sum"}}]}))
    assert err["error"]["root_cause"][0]["reason"] == "we only support AVG, MEDIAN and SUM on number based fields"


def test_sort_bad_order(client, idx):
    err = fail(lambda: search(client, idx, {"sort": [{"price": "up"}]}))
    assert err["status"] == 400 and err["error"]["type"] == "illegal_argument_exception"
    assert err["error"]["reason"] == "Unknown SortOrder [up]"


def test_track_total_hits(client, idx):
    assert search(client, idx, {"size": 0})["hits"]["total"] == {"value": 4, "relation": "eq"}
    assert search(client, idx, {"size": 0, "track_total_hits": 2})["hits"]["total"] == {"value": 2, "relation": "gte"}
    assert search(client, idx, {"size": 0, "track_total_hits": 4})["hits"]["total"] == {"value": 4, "relation": "eq"}
    assert search(client, idx, {"size": 0, "track_total_hits": True})["hits"]["total"] == {
        "value": 4, "relation": "eq"}
    assert search(client, idx, {"size": 0, "track_total_hits": False})["hits"] == {"max_score": None, "hits": []}
    assert search(client, idx, {"size": 0}, track_total_hits="3")["hits"]["total"] == {"value": 3, "relation": "gte"}
    assert search(client, idx, {"size": 0}, rest_total_hits_as_int="true")["hits"]["total"] == 4
    assert search(client, idx, {"size": 0, "track_total_hits": False},
                  rest_total_hits_as_int="true")["hits"]["total"] == -1
    err = fail(lambda: search(client, idx, {"track_total_hits": 2}, rest_total_hits_as_int="true"))
    assert err["error"]["root_cause"] == [{"type": "illegal_argument_exception", "reason": (
        "[rest_total_hits_as_int] cannot be used if the tracking of total hits is not accurate, got 2")}]
    err = fail(lambda: search(client, idx, {"track_total_hits": -5}))
    assert err["error"]["reason"] == "[track_total_hits] parameter must be positive or equals to -1, got -5"


def test_aggregations(client, idx):
    """Metric and terms aggregations over every matched document, shaped as OpenSearch renders them: a
    multi-valued field counts each value in metrics and each document once per bucket; float values are
    the float32 the field stores."""
    body = {"size": 0, "aggs": {
        "tags": {"terms": {"field": "tag"}, "aggs": {"top_price": {"max": {"field": "price"}}}},
        "prices": {"stats": {"field": "price"}}, "f_min": {"min": {"field": "f"}}, "f_sum": {"sum": {"field": "f"}},
        "n": {"value_count": {"field": "price"}}, "distinct": {"cardinality": {"field": "tag"}},
        "by_price": {"terms": {"field": "price", "size": 2, "order": {"_key": "desc"}}},
        "nothing": {"avg": {"field": "not_mapped"}}}}
    aggs = search(client, idx, body)["aggregations"]
    assert aggs == {
        "tags": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": [
            {"key": "a", "doc_count": 1, "top_price": {"value": 3.0}},
            {"key": "b", "doc_count": 1, "top_price": {"value": 5.0}},
            {"key": "c", "doc_count": 1, "top_price": {"value": 9.0}},
            {"key": "z", "doc_count": 1, "top_price": {"value": 5.0}}]},
        "prices": {"count": 4, "min": 1.0, "max": 9.0, "avg": 4.5, "sum": 18.0},
        "f_min": {"value": 0.10000000149011612}, "f_sum": {"value": 2.600000001490116},
        "n": {"value": 4}, "distinct": {"value": 4},
        "by_price": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 2, "buckets": [
            {"key": 9, "doc_count": 1}, {"key": 5, "doc_count": 1}]},
        "nothing": {"value": None}}


def test_aggregations_follow_the_query(client, idx):
    """A kNN query matches its hits only (hits.total); the aggregation sees exactly those documents."""
    resp = search(client, idx, {"size": 0, "query": {"knn": {"v": {"vector": [0, 0], "k": 2}}},
                                "aggs": {"tags": {"terms": {"field": "tag", "size": 1}},
                                         "p": {"sum": {"field": "price"}}}})
    assert resp["hits"]["total"] == {"value": 2, "relation": "eq"}  # docs 3 ([0,0]) and 0 ([1,1])
    assert resp["aggregations"] == {
        "tags": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 2, "buckets": [{"key": "b", "doc_count": 1}]},
        "p": {"value": 15.0}}
    resp = search(client, idx, {"query": {"term": {"tag": "a"}}, "aggs": {"p": {"avg": {"field": "price"}}}})
    assert resp["aggregations"] == {"p": {"value": 3.0}}


def test_aggregation_errors(client, idx):
    err = fail(lambda: search(client, idx, {"aggs": {"h": {"histogram": {"field": "price", "interval": 2}}}}))
    assert err["status"] == 400 and err["error"]["root_cause"] == [{"type": "illegal_argument_exception", "reason": (
        "segstore does not support the [histogram] aggregation [h]: supported are terms, min, max, sum, avg, stats, "
        "value_count and cardinality")}]
    err = fail(lambda: search(client, idx, {"aggs": {"m": {"min": {"field": "tag"}}}}))
    assert err["status"] == 400 and err["error"]["root_cause"][0]["reason"] == \
        "Field [tag] of type [keyword] is not supported for aggregation [min]"
    err = fail(lambda: search(client, idx, {"aggs": {"m": {"terms": {"field": "t"}}}}))
    assert err["error"]["root_cause"][0]["reason"].startswith("Text fields are not optimised for operations")
    err = fail(lambda: search(client, idx, {"aggs": {"m": {"terms": {"field": "nodv"}}}}))
    assert err["error"]["root_cause"][0]["reason"] == ("Can't load fielddata on [nodv] because fielddata is "
                                                        "unsupported on fields of type [keyword]. Use doc values "
                                                        "instead.")
    err = fail(lambda: search(client, idx, {"aggs": {"m": {"max": {"field": "price"}, "aggs": {
        "x": {"min": {"field": "price"}}}}}}))
    assert err["error"]["root_cause"][0]["reason"] == \
        "Aggregator [m] of type [max] cannot accept sub-aggregations"
