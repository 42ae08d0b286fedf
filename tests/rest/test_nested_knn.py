"""``nested`` queries around ``knn``: ``expand_nested_docs``, ``score_mode``, ``inner_hits`` (OpenSearch's
"Nested field search" page and ``NativeEngineKnnVectorQuery`` / ``NestedQueryBuilder`` / ``FetchPhase``).

Data: l2, so a child's score is 1/(1 + squared distance) in float32, shown as its shortest decimal. Query
[0, 0] against the children of root "1" at squared distances 1, 4, (no vector), 0 -> 0.5, 0.2, -, 1.0; root "2"
at 25, 9 -> 0.03846154, 0.1; root "3" at 100 -> 0.00990099. Derived source is on (``index.knn: true``): the
inner hits' ``_source`` vectors come from the vector values, never the stored mask. Every test runs against
both front ends (``embedded`` and ``http``, conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from opensearchpy.exceptions import RequestError

DOCS = {
    "1": {"t": "a", "n": [{"v": [1.0, 0.0], "c": "a1"}, {"v": [2.0, 0.0], "c": "a2"}, {"c": "a3"},
                          {"v": [0.0, 0.0], "c": "a4"}]},
    "2": {"t": "b", "n": [{"v": [5.0, 0.0], "c": "b1"}, {"v": [3.0, 0.0], "c": "b2"}]},
    "3": {"t": "x", "n": {"v": [10.0, 0.0], "c": "c1"}},  # a single object: one child
    "4": {"t": "x"},
}


def vec(engine: str = "faiss", **extra: Any) -> dict[str, Any]:
    return {"type": "knn_vector", "dimension": 2, "space_type": "l2", "method": {"name": "hnsw", "engine": engine},
            **extra}


def setup(client: Any, name: str, engine: str = "faiss", derived: bool = True, segments: bool = False) -> None:
    settings: dict[str, Any] = {"index.knn": True, "index.refresh_interval": "-1"}
    if not derived:
        settings["index.knn.derived_source.enabled"] = False
    client.indices.create(index=name, body={"settings": settings, "mappings": {"properties": {
        "t": {"type": "keyword"}, "obj": {"properties": {"k": {"type": "keyword"}}},
        "n": {"type": "nested", "properties": {"v": vec(engine), "c": {"type": "keyword"}}}}}})
    for doc_id, src in DOCS.items():
        client.index(index=name, id=doc_id, body=src, refresh="true" if segments else "false")
    client.indices.refresh(index=name)


def nested(knn: dict[str, Any], **opts: Any) -> dict[str, Any]:
    return {"nested": {"path": "n", "query": {"knn": {"n.v": {"vector": [0, 0], **knn}}}, **opts}}


def search(client: Any, name: str, query: dict[str, Any], **body: Any) -> dict[str, Any]:
    return client.search(index=name, body={"query": query, **body})["hits"]


def inner(name: str, root: str, hits: list[tuple[int, float, dict[str, Any] | None]], total: int | None = None,
          max_score: float | None = None, key: str = "n") -> dict[str, Any]:
    """The expected ``inner_hits`` of one root: ``(offset, score, _source or None)`` per hit."""
    rows = []
    for offset, score, source in hits:
        row: dict[str, Any] = {"_index": name, "_id": root, "_nested": {"field": "n", "offset": offset},
                               "_score": score}
        if source is not None:
            row["_source"] = source
        rows.append(row)
    top = max_score if max_score is not None else (hits[0][1] if hits else None)
    return {key: {"hits": {"total": {"value": len(hits) if total is None else total, "relation": "eq"},
                           "max_score": top, "hits": rows}}}


@pytest.mark.parametrize("engine", ["faiss", "lucene"])
def test_inner_hits_show_the_best_child_without_expansion(client: Any, index_name: str, engine: str) -> None:
    setup(client, index_name, engine)
    hits = search(client, index_name, nested({"k": 2}, inner_hits={}), _source=False)
    assert hits == {"total": {"value": 2, "relation": "eq"}, "max_score": 1.0, "hits": [
        {"_index": index_name, "_id": "1", "_score": 1.0,
         "inner_hits": inner(index_name, "1", [(3, 1.0, {"v": [0.0, 0.0], "c": "a4"})])},
        {"_index": index_name, "_id": "2", "_score": 0.1,
         "inner_hits": inner(index_name, "2", [(1, 0.1, {"v": [3.0, 0.0], "c": "b2"})])}]}


@pytest.mark.parametrize("engine", ["faiss", "lucene"])
def test_expand_nested_docs_scores_every_child(client: Any, index_name: str, engine: str) -> None:
    setup(client, index_name, engine)
    q = nested({"k": 2, "expand_nested_docs": True}, inner_hits={"size": 10}, score_mode="max")
    hits = search(client, index_name, q)
    assert [(h["_id"], h["_score"], h["_source"]) for h in hits["hits"]] == [("1", 1.0, DOCS["1"]),
                                                                             ("2", 0.1, DOCS["2"])]
    n1, n2 = DOCS["1"]["n"], DOCS["2"]["n"]
    assert hits["hits"][0]["inner_hits"] == inner(index_name, "1", [(3, 1.0, n1[3]), (0, 0.5, n1[0]),
                                                                    (1, 0.2, n1[1])])
    assert hits["hits"][1]["inner_hits"] == inner(index_name, "2", [(1, 0.1, n2[1]), (0, 0.03846154, n2[0])])
    assert hits["total"] == {"value": 2, "relation": "eq"}


def test_score_modes_and_boosts(client: Any, index_name: str) -> None:
    """ToParentBlockJoinQuery: avg (OpenSearch's default) and sum accumulate the float scores in double, then
    cast to float; the knn boost multiplies each child's score, the nested boost the root's."""
    setup(client, index_name)
    want = {"avg": [("1", 0.56666666), ("2", 0.06923077)], "max": [("1", 1.0), ("2", 0.1)],
            "min": [("1", 0.2), ("2", 0.03846154)], "sum": [("1", 1.7), ("2", 0.13846155)],
            "none": [("1", 0.0), ("2", 0.0)]}
    for mode, expected in want.items():
        opts = {} if mode == "avg" else {"score_mode": mode}
        hits = search(client, index_name, nested({"k": 2, "expand_nested_docs": True}, **opts))["hits"]
        assert [(h["_id"], h["_score"]) for h in hits] == expected, mode
    # without expansion a root has one matching child: every mode but none gives the best child's score
    for mode in ("avg", "min", "sum"):
        hits = search(client, index_name, nested({"k": 3}, score_mode=mode))["hits"]
        assert [(h["_id"], h["_score"]) for h in hits] == [("1", 1.0), ("2", 0.1), ("3", 0.00990099)], mode
    q = nested({"k": 1, "expand_nested_docs": True, "boost": 2.5}, score_mode="sum", boost=2.0,
               inner_hits={"_source": False})
    hit = search(client, index_name, q)["hits"][0]
    assert hit["_score"] == 8.5  # (2.5 + 1.25 + 0.5) * 2
    assert [(h["_nested"]["offset"], h["_score"]) for h in hit["inner_hits"]["n"]["hits"]["hits"]] == \
        [(3, 2.5), (0, 1.25), (1, 0.5)]


def test_inner_hits_options(client: Any, index_name: str) -> None:
    setup(client, index_name)
    q = nested({"k": 1, "expand_nested_docs": True},
               inner_hits={"name": "parts", "from": 1, "size": 1, "_source": {"includes": ["n.c"]}})
    hit = search(client, index_name, q, _source=["t"])["hits"][0]
    assert hit["_source"] == {"t": "a"}
    assert hit["inner_hits"] == inner(index_name, "1", [(0, 0.5, {"c": "a1"})], total=3, max_score=1.0,
                                      key="parts")
    q = nested({"k": 1, "expand_nested_docs": True}, inner_hits={"size": 0})
    assert search(client, index_name, q)["hits"][0]["inner_hits"] == inner(index_name, "1", [], total=3)
    q = nested({"k": 1}, inner_hits={"_source": {"excludes": ["n.v"]}})  # the vector filtered out
    assert search(client, index_name, q)["hits"][0]["inner_hits"] == inner(index_name, "1", [(3, 1.0, {"c": "a4"})])
    q = nested({"k": 1}, inner_hits={"_source": ["t"]})  # nothing of the child kept
    assert search(client, index_name, q)["hits"][0]["inner_hits"] == inner(index_name, "1", [(3, 1.0, {})])
    res = client.search(index=index_name, rest_total_hits_as_int=True, body={"query": nested({"k": 1},
                                                                                           inner_hits={})})
    assert res["hits"]["total"] == 1 and res["hits"]["hits"][0]["inner_hits"]["n"]["hits"]["total"] == 1


def test_inner_hits_vectors_survive_top_level_excludes(client: Any, index_name: str) -> None:
    """#3303/#3446: the request excludes the vector at the top level; the inner hit still needs it."""
    setup(client, index_name)
    setup(client, f"{index_name}-off", derived=False)
    q = nested({"k": 2, "expand_nested_docs": True}, inner_hits={"size": 5})
    got = [search(client, i, q, _source={"excludes": ["n.v"]}) for i in (index_name, f"{index_name}-off")]
    for g in got:
        for h in g["hits"]:
            h["_index"] = "x"
            for ih in h["inner_hits"]["n"]["hits"]["hits"]:
                ih["_index"] = "x"
    assert got[0] == got[1]
    first = got[0]["hits"][0]
    assert first["_source"] == {"t": "a", "n": [{"c": "a1"}, {"c": "a2"}, {"c": "a3"}, {"c": "a4"}]}
    assert [ih["_source"]["v"] for ih in first["inner_hits"]["n"]["hits"]["hits"]] == \
        [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]


def test_k_per_segment_or_per_shard(client: Any, index_name: str) -> None:
    """faiss returns k roots per segment; expand_nested_docs (and Lucene) keep the k best of the shard."""
    setup(client, index_name, segments=True)  # one segment per document
    assert search(client, index_name, nested({"k": 1}))["total"]["value"] == 3
    hits = search(client, index_name, nested({"k": 1, "expand_nested_docs": True}))
    assert hits["total"]["value"] == 1 and [h["_id"] for h in hits["hits"]] == ["1"]
    setup(client, f"{index_name}-lucene", "lucene", segments=True)
    assert search(client, f"{index_name}-lucene", nested({"k": 1}))["total"]["value"] == 1


def test_filters_and_deletes(client: Any, index_name: str) -> None:
    setup(client, index_name)
    hits = search(client, index_name, nested({"k": 5, "filter": {"term": {"t": "x"}}}, inner_hits={}))
    assert [(h["_id"], h["_score"]) for h in hits["hits"]] == [("3", 0.00990099)]
    assert hits["hits"][0]["inner_hits"] == inner(index_name, "3", [(0, 0.00990099, DOCS["3"]["n"])])
    q = {"bool": {"must": [nested({"k": 3}, inner_hits={})], "filter": [{"term": {"t": "b"}}]}}
    hits = search(client, index_name, q)
    assert [(h["_id"], h["_score"]) for h in hits["hits"]] == [("2", 0.1)]
    client.delete(index=index_name, id="1", refresh="true")
    hits = search(client, index_name, nested({"k": 1, "expand_nested_docs": True}, inner_hits={}))
    assert [(h["_id"], h["_score"]) for h in hits["hits"]] == [("2", 0.06923077)]  # avg of 0.1 and 0.03846154


def test_deeper_nesting_and_nested_under_an_object(client: Any, index_name: str) -> None:
    """``_nested`` names each nested level relative to the enclosing nested object, with the offset among
    that object's children; a nested field under a plain object keeps its full path."""
    client.indices.create(index=index_name, body={"settings": {"index.knn": True}, "mappings": {"properties": {
        "n1": {"type": "nested", "properties": {"tag": {"type": "keyword"}, "n2": {
            "type": "nested", "properties": {"w": vec()}}}},
        "obj": {"properties": {"n": {"type": "nested", "properties": {"v": vec()}}}}}}})
    doc = {"n1": [{"tag": "p", "n2": [{"w": [1.0, 0.0]}, {"w": [0.0, 0.0]}]}, {"tag": "q", "n2": [{"w": [3.0, 0.0]}]},
                  {"tag": "r", "n2": {"w": [0.5, 0.0]}}],
           "obj": {"n": [{"v": [2.0, 0.0]}, {"v": [0.0, 1.0]}]}}
    client.index(index=index_name, id="d", body=doc, refresh="true")
    q = {"nested": {"path": "n1.n2", "query": {"knn": {"n1.n2.w": {"vector": [0, 0], "k": 1,
                                                                   "expand_nested_docs": True}}},
                    "inner_hits": {"size": 10}, "score_mode": "max"}}
    hit = search(client, index_name, q)["hits"][0]
    assert (hit["_id"], hit["_score"]) == ("d", 1.0)
    got = [(h["_nested"], h["_score"], h["_source"]) for h in hit["inner_hits"]["n1.n2"]["hits"]["hits"]]
    assert got == [({"field": "n1", "offset": 0, "_nested": {"field": "n2", "offset": 1}}, 1.0, {"w": [0.0, 0.0]}),
                   ({"field": "n1", "offset": 2, "_nested": {"field": "n2", "offset": 0}}, 0.8, {"w": [0.5, 0.0]}),
                   ({"field": "n1", "offset": 0, "_nested": {"field": "n2", "offset": 0}}, 0.5, {"w": [1.0, 0.0]}),
                   ({"field": "n1", "offset": 1, "_nested": {"field": "n2", "offset": 0}}, 0.1, {"w": [3.0, 0.0]})]
    q = {"nested": {"path": "obj.n", "query": {"knn": {"obj.n.v": {"vector": [0, 0], "k": 1}}},
                    "inner_hits": {"_source": {"includes": ["obj.n.v"]}}}}
    ih = search(client, index_name, q)["hits"][0]["inner_hits"]["obj.n"]["hits"]["hits"]
    assert [(h["_nested"], h["_score"], h["_source"]) for h in ih] == [
        ({"field": "obj.n", "offset": 1}, 0.5, {"v": [0.0, 1.0]})]


def test_knn_on_a_nested_field_without_the_nested_wrapper(client: Any, index_name: str) -> None:
    """segstore extension: OpenSearch matches no root for this form; segstore scores roots by their best child
    (score_mode max), with or without expand_nested_docs."""
    setup(client, index_name)
    for extra in ({}, {"expand_nested_docs": True}):
        hits = search(client, index_name, {"knn": {"n.v": {"vector": [0, 0], "k": 2, **extra}}})["hits"]
        assert [(h["_id"], h["_score"]) for h in hits] == [("1", 1.0), ("2", 0.1)], extra
        assert all("inner_hits" not in h for h in hits)


def _search_error(client: Any, name: str, query: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(RequestError) as e:
        client.search(index=name, body={"query": query})
    assert e.value.status_code == 400
    return e.value.info["error"]  # type: ignore[no-any-return]


def test_nested_query_errors(client: Any, index_name: str) -> None:
    setup(client, index_name)
    knn = {"knn": {"n.v": {"vector": [0, 0], "k": 1}}}
    coordinator = [  # parse errors: the request fails directly
        ({"nested": {"query": knn}}, "illegal_argument_exception", "[nested] requires 'path' field"),
        ({"nested": {"path": "n"}}, "illegal_argument_exception", "[nested] requires 'query' field"),
        ({"nested": {"path": "n", "query": knn, "score_mode": "median"}}, "illegal_argument_exception",
         "No score mode for child query [median] found"),
        ({"nested": {"path": "n", "query": knn, "mode": "x"}}, "parsing_exception",
         "[nested] query does not support [mode]"),
        ({"nested": {"path": "n", "query": knn, "inner_hits": {"size": -1}}}, "illegal_argument_exception",
         "illegal size [-1], must be >= 0"),
    ]
    for query, etype, reason in coordinator:
        err = _search_error(client, index_name, query)
        assert (err["type"], err["reason"]) == (etype, reason), query
    shard = [  # raised while the shard builds the query: query_shard_exception caused by the original
        ("nope", "[nested] failed to find nested object under path [nope]"),
        ("obj", "[nested] nested object under path [obj] is not of nested type"),
    ]
    for path, reason in shard:
        err = _search_error(client, index_name, {"nested": {"path": path, "query": knn}})
        assert (err["type"], err["reason"]) == ("search_phase_execution_exception", "all shards failed")
        cause = err["failed_shards"][0]["reason"]
        assert (cause["type"], cause["reason"]) == ("query_shard_exception", f"failed to create query: {reason}")
        assert (cause["caused_by"]["type"], cause["caused_by"]["reason"]) == ("illegal_state_exception", reason)
    assert search(client, index_name, {"nested": {"path": "nope", "query": knn, "ignore_unmapped": True}}) == \
        {"total": {"value": 0, "relation": "eq"}, "max_score": None, "hits": []}
    for spec, label in (({"size": 101}, "null"), ({"name": "x", "from": 100, "size": 1}, "x")):
        err = _search_error(client, index_name, {"nested": {"path": "n", "query": knn, "inner_hits": spec}})
        assert err["root_cause"][0] == {"type": "illegal_argument_exception", "reason": (
            f"Inner result window is too large, the inner hit definition's [{label}]'s from + size must be less "
            "than or equal to: [100] but was [101]. This limit can be set by changing the "
            "[index.max_inner_result_window] index level setting.")}
    err = _search_error(client, index_name, {"knn": {"n.v": {"vector": [0, 0], "max_distance": 1.0}}})
    assert err["root_cause"][0]["reason"] == \
        "failed to create query: segstore does not support radial search on fields inside nested objects"


def test_knn_field_outside_the_nested_path_matches_nothing(client: Any, index_name: str) -> None:
    """The inner query is restricted to the path's children, so a root-level vector matches none of them, and
    ``expand_nested_docs`` is allowed there (the nested query sets a parent filter)."""
    client.indices.create(index=index_name, body={"settings": {"index.knn": True}, "mappings": {"properties": {
        "top": vec(), "n": {"type": "nested", "properties": {"v": vec()}}}}})
    client.index(index=index_name, id="1", body={"top": [0.0, 0.0], "n": [{"v": [0.0, 0.0]}]}, refresh="true")
    q = {"nested": {"path": "n", "query": {"knn": {"top": {"vector": [0, 0], "k": 1, "expand_nested_docs": True}}}}}
    assert search(client, index_name, q)["total"]["value"] == 0
    assert search(client, index_name, {"knn": {"top": {"vector": [0, 0], "k": 1}}})["total"]["value"] == 1


# ------------------------------------------------------------------- quantized fields: sibling rescoring


def _on_disk(client: Any, name: str, dim: int) -> None:
    client.indices.create(index=name, body={"settings": {"index.knn": True}, "mappings": {"properties": {
        "n": {"type": "nested", "properties": {"v": {"type": "knn_vector", "dimension": dim, "space_type": "l2",
                                                     "mode": "on_disk"}}}}}})


def test_quantized_nested_rescoring_scores_every_sibling(client: Any, index_name: str) -> None:
    """``on_disk`` (32x binary): one bit per dimension, set when the value exceeds the segment's mean (0 here).
    Query [1, 1, 1, 1] -> bits 1111. Root P: child A = [10]*4 (bits 1111, Hamming 0, exact 1/325) and child
    B = [1, 1, 1, -1] (bits 1110, Hamming 1, exact 1/(1+4) = 0.2). The first pass picks A as P's best child;
    rescoring exact-scores all of P's children, so P scores B's 0.2 (scoring A alone would give 0.003076923).
    Root R: [-11, -11, -11, -9], bits 0000, exact 1/533 = 0.0018761726. #2720: on_disk nested scores are exact."""
    _on_disk(client, index_name, 4)
    client.bulk(index=index_name, refresh="true", body=[
        {"index": {"_id": "P"}}, {"n": [{"v": [10.0, 10.0, 10.0, 10.0]}, {"v": [1.0, 1.0, 1.0, -1.0]}]},
        {"index": {"_id": "R"}}, {"n": [{"v": [-11.0, -11.0, -11.0, -9.0]}]}])

    def run(**knn: Any) -> list[tuple[str, float, list[tuple[int, float]]]]:
        q = {"nested": {"path": "n", "query": {"knn": {"n.v": {"vector": [1, 1, 1, 1], "k": 2, **knn}}},
                        "inner_hits": {"_source": False}}}
        hits = search(client, index_name, q, _source=False)["hits"]
        return [(h["_id"], h["_score"], [(x["_nested"]["offset"], x["_score"])
                                         for x in h["inner_hits"]["n"]["hits"]["hits"]]) for h in hits]

    assert run(rescore=False) == [("P", 1.0, [(0, 1.0)]), ("R", 0.2, [(0, 0.2)])]  # Hamming: 1/(1+h)
    assert run() == [("P", 0.2, [(1, 0.2)]), ("R", 0.0018761726, [(0, 0.0018761726)])]
    assert run(expand_nested_docs=True) == [("P", 0.101538464, [(1, 0.2), (0, 0.003076923)]),  # avg
                                            ("R", 0.0018761726, [(0, 0.0018761726)])]
    hits = search(client, index_name, {"knn": {"n.v": {"vector": [1, 1, 1, 1], "k": 2}}})["hits"]
    assert [(h["_id"], h["_score"]) for h in hits] == [("P", 0.2), ("R", 0.0018761726)]


def test_quantized_nested_graph_path_roots_score_their_best_sibling(client: Any, index_name: str) -> None:
    """1,250 children (over the exact-scan limit: the graph over the codes finds the candidates). Every root
    returned scores exactly its best child at full precision: the maximum of its expanded children's scores,
    which match numpy's l2 scores; and for some roots that child is not the first pass's choice."""
    import numpy as np

    rng = np.random.default_rng(2720)
    _on_disk(client, index_name, 8)
    vectors = rng.normal(size=(250, 5, 8)).astype(np.float32).round(3)
    body: list[Any] = []
    for i in range(250):
        body += [{"index": {"_id": str(i)}}, {"n": [{"v": v.tolist()} for v in vectors[i]]}]
    assert not client.bulk(index=index_name, body=body, refresh="true")["errors"]
    query = rng.normal(size=8).astype(np.float32).round(3)

    def run(**knn: Any) -> list[dict[str, Any]]:
        q = {"nested": {"path": "n", "query": {"knn": {"n.v": {"vector": query.tolist(), "k": 10, **knn}}},
                        "inner_hits": {"_source": False, "size": 5}, "score_mode": "max"}}
        return search(client, index_name, q, _source=False, size=10)["hits"]  # type: ignore[no-any-return]

    best = run()
    expanded = {h["_id"]: h for h in run(expand_nested_docs=True)}

    def first_pass_choice(root: str) -> int:  # the root's best child by its code (Hamming, ties: lower doc)
        hit = run(rescore=False, filter={"ids": {"values": [root]}})[0]
        return int(hit["inner_hits"]["n"]["hits"]["hits"][0]["_nested"]["offset"])

    assert len(best) == 10 and set(expanded) == {h["_id"] for h in best}
    moved = 0
    for h in best:
        children = expanded[h["_id"]]["inner_hits"]["n"]["hits"]
        assert children["total"]["value"] == 5
        exact = {c["_nested"]["offset"]: c["_score"] for c in children["hits"]}
        d2 = ((vectors[int(h["_id"])].astype(np.float64) - query) ** 2).sum(axis=1)
        assert exact == pytest.approx({o: 1 / (1 + d2[o]) for o in range(5)}, rel=1e-6)
        top_offset = h["inner_hits"]["n"]["hits"]["hits"][0]["_nested"]["offset"]
        assert h["_score"] == max(exact.values()) == exact[top_offset] == expanded[h["_id"]]["_score"]
        moved += first_pass_choice(h["_id"]) != top_offset
    assert moved > 0  # the sibling rescoring changed the chosen child of at least one root


def test_inner_hits_fields_as_in_the_docs_example(client: Any, index_name: str) -> None:
    """The k-NN docs' nested example: ``_source: false`` and ``fields`` in the inner hits return each
    matched child's mapped values (full paths, arrays), read from the child object with vectors injected."""
    setup(client, index_name)
    q = nested({"k": 2, "expand_nested_docs": True}, inner_hits={"_source": False, "fields": ["n.c"]},
               score_mode="max")
    hits = search(client, index_name, q, _source=False)
    assert [(h["_id"], h["_score"]) for h in hits["hits"]] == [("1", 1.0), ("2", 0.1)]
    rows = [[(ih["_nested"]["offset"], ih["_score"], ih.get("_source"), ih["fields"])
             for ih in h["inner_hits"]["n"]["hits"]["hits"]] for h in hits["hits"]]
    assert rows == [[(3, 1.0, None, {"n.c": ["a4"]}), (0, 0.5, None, {"n.c": ["a1"]}),
                     (1, 0.2, None, {"n.c": ["a2"]})],
                    [(1, 0.1, None, {"n.c": ["b2"]}), (0, 0.03846154, None, {"n.c": ["b1"]})]]
    q = nested({"k": 1}, inner_hits={"_source": False, "fields": [{"field": "n.*"}, "t", "nope"]})
    ih = search(client, index_name, q)["hits"][0]["inner_hits"]["n"]["hits"]["hits"][0]
    assert ih["fields"] == {"n.v": [[0.0, 0.0]], "n.c": ["a4"]}  # the vector is one value; t is outside n


def test_top_level_fields(client: Any, index_name: str) -> None:
    """``fields`` on ``_search``: root fields flat, nested fields grouped per nested object, vectors from the
    vector values (derived source), missing values left out."""
    setup(client, index_name)
    body = {"query": {"match_all": {}}, "_source": False, "fields": ["t", "n.*", "obj.k"], "size": 4}
    hits = client.search(index=index_name, body=body)["hits"]["hits"]
    got = {h["_id"]: h.get("fields") for h in hits}
    assert got == {
        "1": {"t": ["a"], "n": [{"v": [[1.0, 0.0]], "c": ["a1"]}, {"v": [[2.0, 0.0]], "c": ["a2"]}, {"c": ["a3"]},
                                {"v": [[0.0, 0.0]], "c": ["a4"]}]},
        "2": {"t": ["b"], "n": [{"v": [[5.0, 0.0]], "c": ["b1"]}, {"v": [[3.0, 0.0]], "c": ["b2"]}]},
        "3": {"t": ["x"], "n": [{"v": [[10.0, 0.0]], "c": ["c1"]}]},
        "4": {"t": ["x"]}}
    assert all("_source" not in h for h in hits)
    with pytest.raises(RequestError) as ei:
        client.search(index=index_name, body={"fields": [{"field": "t", "format": "x"}]})
    assert ei.value.error == "illegal_argument_exception"
