"""Derived source: one regression test per upstream bug of derived-source.md §6 that applies to segstore, the
suspected defects (a)-(c), request ``_source`` filtering, the setting rules (§5.1, §1.1) and translog replay.

The oracle is OpenSearch's observable behaviour: the JSON a GET / search returns. Where the answer of a
derived index must equal the answer of the same data without derived source, both are asked. Nothing may
ever return the mask ``1`` at a vector path.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest
from opensearchpy.exceptions import RequestError, TransportError

import segstore
from segstore.derived_source.attributes import derived_paths

KNN = {"index.knn": True}
OFF = {"index.knn": True, "index.knn.derived_source.enabled": False}
FAISS = {"name": "hnsw", "engine": "faiss"}


def vfield(dim: int, data_type: str = "float", space: str = "l2", engine: str = "faiss") -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "knn_vector", "dimension": dim, "space_type": space,
                            "method": {"name": "hnsw", "engine": engine}}
    if data_type != "float":
        spec["data_type"] = data_type
    return spec


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    c = segstore.connect(tmp_path_factory.mktemp("ds-regressions"))
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def name(client: Any) -> Iterator[str]:
    """A unique index name prefix; every ``<name>*`` index is deleted afterwards."""
    n = f"r-{uuid.uuid4().hex[:10]}"
    yield n
    for idx in list(client.transport.node.index_names()):
        if idx.startswith(n):
            client.indices.delete(index=idx)


def create(client: Any, index: str, mappings: dict[str, Any], settings: dict[str, Any] | None = None) -> str:
    client.indices.create(index=index, body={"settings": dict(KNN if settings is None else settings),
                                             "mappings": mappings})
    return index


def index_docs(client: Any, index: str, docs: dict[str, Any], refresh: bool = True) -> None:
    body: list[Any] = []
    for doc_id, src in docs.items():
        body += [{"index": {"_index": index, "_id": doc_id}}, src]
    res = client.bulk(body=body, refresh="true" if refresh else "false")
    assert not res["errors"], res


def writer(client: Any, index: str) -> segstore.IndexWriter:
    return client.transport.node.writer(index)


def stored(client: Any, index: str) -> dict[str, Any]:
    """id -> the stored (masked) ``_source`` of every live root document."""
    out: dict[str, Any] = {}
    with writer(client, index).acquire_reader() as reader:
        for leaf in reader.leaves:
            for doc in range(leaf.max_doc):
                rec = leaf.stored_document(doc)
                if leaf.is_live(doc) and "_id" in rec and "_source" in rec:
                    out[rec["_id"]] = msgpack.unpackb(rec["_source"], raw=False)
    return out


def attrs(client: Any, index: str) -> list[tuple[list[str], list[str]]]:
    return [derived_paths(s.info.attributes) for s in writer(client, index).segments()]


def values_at(node: Any, path: str) -> list[Any]:
    """Every value (null included) at the dotted ``path``, arrays walked."""
    def walk(n: Any, parts: list[str]) -> list[Any]:
        if not parts:
            return [n]
        if isinstance(n, list):
            return [v for x in n for v in walk(x, parts)]
        if isinstance(n, dict) and parts[0] in n:
            return walk(n[parts[0]], parts[1:])
        return []
    return walk(node, path.split("."))


def assert_no_mask(source: Any, paths: list[str]) -> None:
    for p in paths:
        for v in values_at(source, p):
            assert v is None or isinstance(v, list), (p, v, source)


def get_source(client: Any, index: str, doc_id: str, **params: Any) -> Any:
    return client.get(index=index, id=doc_id, **params).get("_source")


def search_sources(client: Any, index: str, body: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    body = {"query": {"match_all": {}}, "size": 1000, **(body or {})}
    return {h["_id"]: h.get("_source") for h in client.search(index=index, body=body, **params)["hits"]["hits"]}


def crash_and_reopen(client: Any) -> Any:
    """Close every writer without a commit (translog only), then open a new client on the data directory."""
    node = client.transport.node
    node.close(commit=False)
    return segstore.connect(node.data_dir)


# --------------------------------------------------------------------------------- upstream bugs (§6)


def test_2474_ten_or_more_adjacent_docs_keep_their_vectors(client: Any, name: str) -> None:
    """#2472/#2474: sequential fetches of >= 10 adjacent docs (and reindex) returned sources without vectors."""
    m = {"properties": {"v": vfield(3), "t": {"type": "keyword"}}}
    create(client, name, m)
    docs = {f"{i:02d}": {"t": f"x{i}", "v": [i + 0.5, -i - 0.25, 1.0]} for i in range(40)}
    index_docs(client, name, docs)
    assert search_sources(client, name) == docs
    res = client.mget(index=name, body={"ids": sorted(docs)[5:30]})
    assert {d["_id"]: d["_source"] for d in res["docs"]} == {i: docs[i] for i in sorted(docs)[5:30]}
    client.indices.forcemerge(index=name, max_num_segments=1)
    assert search_sources(client, name) == docs
    create(client, f"{name}-dest", m, OFF)
    client.reindex(body={"source": {"index": name}, "dest": {"index": f"{name}-dest"}}, refresh=True)
    assert search_sources(client, f"{name}-dest") == docs
    assert stored(client, f"{name}-dest") == docs  # full vectors arrived in the plain index


def test_2533_byte_and_binary_vectors_are_signed_int_arrays(client: Any, name: str) -> None:
    """#2533: byte/binary vectors came back as base64 strings."""
    m = {"properties": {"b": vfield(4, "byte"), "x": vfield(24, "binary", "hamming")}}
    doc = {"b": [-128, -1, 0, 127], "x": [-128, 127, -1]}
    for index, settings in ((name, KNN), (f"{name}-off", OFF)):
        create(client, index, m, settings)
        index_docs(client, index, {"1": doc})
        got = get_source(client, index, "1")
        assert got == doc and all(type(v) is int for v in got["b"] + got["x"])
    assert stored(client, name)["1"] == {"b": 1, "x": 1}
    client.indices.forcemerge(index=name, max_num_segments=1)
    assert search_sources(client, name) == {"1": doc}


def test_2852_meta_fields_survive_next_to_the_derived_source(client: Any, name: str) -> None:
    """#2852/#2925: non-``_source`` stored fields were dropped by the wrapping visitor."""
    create(client, name, {"properties": {"v": vfield(2)}})
    client.index(index=name, id="a", body={"v": [1.5, 2.5]}, refresh=True)
    client.index(index=name, id="a", body={"v": [3.5, 4.5]}, refresh=True)
    got = client.get(index=name, id="a")
    assert (got["_id"], got["_version"], got["_seq_no"], got["_primary_term"]) == ("a", 2, 1, 1)
    hit = client.search(index=name, body={"query": {"knn": {"v": {"vector": [3.5, 4.5], "k": 1}}},
                                          "seq_no_primary_term": True})["hits"]["hits"][0]
    assert (hit["_id"], hit["_score"], hit["_seq_no"], hit["_primary_term"]) == ("a", 1.0, 1, 1)
    assert hit["_source"] == {"v": [3.5, 4.5]}


def test_2852_routing_is_returned(client: Any, name: str) -> None:
    """#2852/#2925 (``testMetaFields*``): ``_routing`` next to ``_id`` and ``_score`` in hits of a derived index."""
    m = {"properties": {"v": vfield(2), "n": {"type": "nested", "properties": {"w": vfield(2)}}}}
    create(client, name, m)
    doc = {"v": [1.5, 2.5], "n": [{"w": [3.5, 4.5]}]}
    client.index(index=name, id="a", body=doc, routing="r1", refresh=True)
    assert client.get(index=name, id="a", routing="r1")["_routing"] == "r1"
    hit = client.search(index=name, body={"query": {"match_all": {}}})["hits"]["hits"][0]
    assert hit == {"_index": name, "_id": "a", "_score": 1.0, "_routing": "r1", "_source": doc}
    hit = client.search(index=name, body={"query": {"knn": {"n.w": {"vector": [3.5, 4.5], "k": 1}}}})
    assert hit["hits"]["hits"] == [{"_index": name, "_id": "a", "_score": 1.0, "_routing": "r1", "_source": doc}]
    assert stored(client, name)["a"] == {"v": 1, "n": [{"w": 1}]}


def test_2852_routing_survives_translog_replay_and_restart(tmp_path: Any) -> None:
    """``_routing`` is in the translog operation (a crash replays it) and in the stored record (a restart
    reads it from the segment); documents written without routing have none after both."""
    c = segstore.connect(tmp_path / "data")
    c.indices.create(index="t", body={"settings": {**KNN, "index.refresh_interval": "-1"},
                                      "mappings": {"properties": {"v": vfield(2)}}})
    c.index(index="t", id="committed", body={"v": [0.5, 0.5]}, routing="c1")
    c.indices.flush(index="t")
    c.index(index="t", id="logged", body={"v": [1.5, 1.5]}, routing="l1")
    c.index(index="t", id="plain", body={"v": [2.5, 2.5]})
    c = crash_and_reopen(c)
    try:
        assert writer(c, "t").replayed_ops == 2
        want = {"committed": "c1", "logged": "l1", "plain": None}
        assert {i: c.get(index="t", id=i).get("_routing") for i in want} == want
        c.indices.refresh(index="t")
        hits = c.search(index="t", body={"query": {"match_all": {}}})["hits"]["hits"]
        assert {h["_id"]: h.get("_routing") for h in hits} == want
    finally:
        c.close()
    c = segstore.connect(tmp_path / "data")  # a clean restart: everything is read back from segments
    try:
        assert writer(c, "t").replayed_ops == 0
        assert {i: c.get(index="t", id=i).get("_routing") for i in want} == want
    finally:
        c.close()


def test_2880_rejected_documents_fail_alike_and_leave_the_index_healthy(client: Any, name: str) -> None:
    """#2880/#2882 (testDerivedSource_HandlesInvalidDocuments): a rejected document (upstream: a no-op
    tombstone with a non-JSON ``_source``) failed the shard. segstore writes nothing for a rejected document;
    both indices reject it with the same error and keep serving."""
    m = {"properties": {"v": vfield(3), "n": {"type": "nested", "properties": {"w": vfield(2)}}}}
    bad = [{"v": [1.0, 2.0]}, {"v": ["a", "b", "c"]}, {"n": [{"w": [1.0, 2.0, 3.0]}]}, {"v": [1.0, None, 3.0]}]
    errors = []
    for index, settings in ((name, KNN), (f"{name}-off", OFF)):
        create(client, index, m, settings)
        body: list[Any] = []
        for i, src in enumerate([{"v": [0.5, 0.5, 0.5]}, *bad, {"n": [{"w": [1.5, 2.5]}]}]):
            body += [{"index": {"_index": index, "_id": str(i)}}, src]
        items = client.bulk(body=body, refresh="true")["items"]
        errors.append([(x["index"]["status"], x["index"].get("error", {}).get("type"),
                        x["index"].get("error", {}).get("reason")) for x in items])
        assert [e[0] for e in errors[-1]] == [201, 400, 400, 400, 400, 201]
        assert search_sources(client, index) == {"0": {"v": [0.5, 0.5, 0.5]}, "5": {"n": [{"w": [1.5, 2.5]}]}}
    assert errors[0] == errors[1]


@pytest.mark.parametrize("templates", [False, True], ids=["no-template", "dynamic-template"])
def test_3012_vectors_in_dynamically_mapped_fields_are_never_masked(client: Any, name: str, templates: bool) -> None:
    """#3012: vectors added by dynamic mapping mid-bulk came back as ``1``. OpenSearch maps an unmapped array of
    decimals as ``float`` (no template): it is stored and returned as given. segstore never creates a
    ``knn_vector`` dynamically (dynamic templates are accepted but not applied), so the same holds with a
    template: the new field is never derived, and the bulk's mapped vectors come back real."""
    m: dict[str, Any] = {"properties": {"v": vfield(3)}}
    if templates:
        m["dynamic_templates"] = [{"vecs": {"path_match": "dyn_*", "mapping": vfield(3)}}]
    create(client, name, m)
    docs = {str(i): {"v": [i + 0.5, 1.0, 2.0], "dyn_vec": [i + 1.5, 2.0, 3.0]} for i in range(3)}
    index_docs(client, name, docs)
    props = client.indices.get_mapping(index=name)[name]["mappings"]["properties"]
    assert props["dyn_vec"] == {"type": "float"}
    assert search_sources(client, name) == docs
    assert all(s == {"v": 1, "dyn_vec": docs[i]["dyn_vec"]} for i, s in stored(client, name).items())
    assert attrs(client, name) == [(["v"], [])]
    create(client, f"{name}-dest", m, OFF)  # reindex must not meet a mask ("Expected: 3, Given: 1")
    res = client.reindex(body={"source": {"index": name}, "dest": {"index": f"{name}-dest"}}, refresh=True)
    assert res["created"] == 3 and not res["failures"]
    assert search_sources(client, f"{name}-dest") == docs


def test_3268_3313_mixed_case_field_names(client: Any, name: str) -> None:
    """#3268/#3313: ``MyEmbedding`` and ``vectorSearch.nameVector`` came back as ``1`` (lower-cased attributes).
    A lower-case twin field with another dimension makes any case folding visible."""
    m = {"properties": {"MyEmbedding": vfield(3), "myembedding": vfield(2),
                        "vectorSearch": {"properties": {"nameVector": vfield(3)}}}}
    create(client, name, m)
    docs = {"1": {"MyEmbedding": [1.5, 2.5, 3.5], "myembedding": [9.5, 8.5],
                  "vectorSearch": {"nameVector": [1.0, 2.0, 3.0]}},
            "2": {"MyEmbedding": [4.5, 5.5, 6.5], "vectorSearch": {"nameVector": [4.0, 5.0, 6.0]}}}
    index_docs(client, name, docs)
    index_docs(client, name, {"3": {"myembedding": [7.5, 6.5]}})
    docs["3"] = {"myembedding": [7.5, 6.5]}
    for seg in attrs(client, name):
        assert seg == (["MyEmbedding", "myembedding", "vectorSearch.nameVector"], [])
    assert stored(client, name)["1"] == {"MyEmbedding": 1, "myembedding": 1, "vectorSearch": {"nameVector": 1}}
    assert {i: get_source(client, name, i) for i in docs} == docs
    client.indices.forcemerge(index=name, max_num_segments=1)
    assert search_sources(client, name) == docs
    hit = client.search(index=name, body={"query": {"knn": {"vectorSearch.nameVector": {"vector": [4, 5, 6],
                                                                                         "k": 1}}}})
    assert hit["hits"]["hits"][0]["_source"] == docs["2"]


def test_3303_request_excludes_never_return_the_mask(client: Any, name: str) -> None:
    """#3303/#3446: excluding a vector in the request left ``1`` where another part of the response needed it:
    inner hits returned the mask. Every hit's ``_source`` is decided by its final filter, inner hits by theirs."""
    m = {"properties": {"v": vfield(2), "n": {"type": "nested", "properties": {"v": vfield(2),
                                                                                "t": {"type": "keyword"}}}}}
    create(client, name, m)
    doc = {"v": [0.5, 0.5], "n": [{"v": [1.5, 1.5], "t": "a"}, {"v": [2.5, 2.5], "t": "b"}]}
    index_docs(client, name, {"1": doc})
    knn = {"query": {"knn": {"n.v": {"vector": [2.5, 2.5], "k": 1}}}}
    cases = {
        "excl-top": ({"excludes": ["v"]}, {"n": doc["n"]}),
        "incl-nested-vec": ({"includes": ["n.v"]}, {"n": [{"v": [1.5, 1.5]}, {"v": [2.5, 2.5]}]}),
        "incl-nested-obj": ({"includes": ["n"]}, {"n": doc["n"]}),
        "excl-wild": ({"excludes": ["*.t", "v"]}, {"n": [{"v": [1.5, 1.5]}, {"v": [2.5, 2.5]}]}),
    }
    for label, (sf, want) in cases.items():
        got = search_sources(client, name, {**knn, "_source": sf})
        assert got == {"1": want}, label
        assert_no_mask(got["1"], ["v", "n.v"])
    nested = {"nested": {"path": "n", "query": {"knn": {"n.v": {"vector": [2.5, 2.5], "k": 1,
                                                                "expand_nested_docs": True}}},
                         "inner_hits": {}, "score_mode": "max"}}
    for sf in ({"excludes": ["n.v"]}, {"excludes": ["n"]}, {"includes": ["v"]}, False):
        hit = client.search(index=name, body={"query": nested, "_source": sf})["hits"]["hits"][0]
        inner = [(h["_nested"]["offset"], h["_score"], h["_source"]) for h in hit["inner_hits"]["n"]["hits"]["hits"]]
        assert inner == [(1, 1.0, doc["n"][1]), (0, 0.33333334, doc["n"][0])], sf  # l2: 1/(1+2)


def test_3316_mapping_source_excludes_and_merges_do_not_bloat(client: Any, name: str) -> None:
    """#3316/#3465: with any mapping ``_source.excludes`` a merge put the vectors back into stored ``_source``."""
    props = {"v": vfield(16), "secret": {"type": "keyword"}, "t": {"type": "keyword"}}
    create(client, name, {"_source": {"excludes": ["secret"]}, "properties": props})
    create(client, f"{name}-plain", {"properties": props})
    rng = np.random.default_rng(3316)
    docs = {f"{i:03d}": {"t": f"d{i}", "secret": "s", "v": [round(float(x), 3) for x in rng.uniform(-1, 1, 16)]}
            for i in range(60)}
    for s in range(0, 60, 10):
        chunk = {k: docs[k] for k in sorted(docs)[s:s + 10]}
        index_docs(client, name, chunk)
        index_docs(client, f"{name}-plain", chunk)
    for index in (name, f"{name}-plain"):
        client.indices.forcemerge(index=index, max_num_segments=1)
    assert attrs(client, name) == [(["v"], [])]
    assert all(s == {"t": docs[i]["t"], "v": 1} for i, s in stored(client, name).items())
    want = {i: {"t": d["t"], "v": d["v"]} for i, d in docs.items()}
    assert search_sources(client, name) == want  # a >= 10 doc fetch after the merge
    fdt = [sum(f.size for f in _segment_files(client, i, ".fdt")) for i in (name, f"{name}-plain")]
    assert fdt[0] <= fdt[1] * 1.05, fdt  # derived + exclude stays near derived without exclude
    q = {"query": {"knn": {"v": {"vector": docs["007"]["v"], "k": 5}}}}
    top = [[h["_id"] for h in client.search(index=i, body=q)["hits"]["hits"]] for i in (name, f"{name}-plain")]
    assert top[0] == top[1] and top[0][0] == "007"


class _File:
    def __init__(self, size: int) -> None:
        self.size = size


def _segment_files(client: Any, index: str, ext: str) -> list[_File]:
    import os

    w = writer(client, index)
    return [_File(os.path.getsize(os.path.join(w.directory.path, f)))
            for s in w.segments() for f in s.files() if f.endswith(ext)]


def test_3083_faiss_cosine_returns_the_normalised_vector(client: Any, name: str) -> None:
    """#3083 (open upstream): Faiss normalises cosine vectors in place; derived source returns the unit
    vector, a plain index the original. Lucene's HNSW keeps the magnitude."""
    raw = [3.0, 4.0, 12.0]
    unit = [float(np.float32(x)) for x in np.asarray(raw, np.float32) / np.float32(13.0)]
    for index, settings, engine, want in ((name, KNN, "faiss", unit), (f"{name}-off", OFF, "faiss", raw),
                                          (f"{name}-lucene", KNN, "lucene", raw)):
        create(client, index, {"properties": {"v": vfield(3, space="cosinesimil", engine=engine)}}, settings)
        index_docs(client, index, {"1": {"v": raw}})
        got = get_source(client, index, "1")["v"]
        assert np.allclose(got, want, rtol=0, atol=1e-7) and (want is raw) == (got == raw), (index, got)
    assert get_source(client, name, "1")["v"] == [0.23076923, 0.30769232, 0.9230769]


@pytest.mark.parametrize("source_mapping", [{"excludes": ["v"]}, {"includes": ["t", "n.*"]},
                                            {"excludes": ["v*"], "includes": ["*"]}])
def test_3536_vector_excluded_by_the_mapping_is_never_returned(client: Any, name: str,
                                                               source_mapping: dict[str, Any]) -> None:
    """#3536 (by design) and #3034/#3049: a vector the mapping's ``_source`` filter drops is absent from every
    response, is not derived (no segment attribute), stays searchable, and a partial update removes it."""
    m = {"_source": source_mapping, "properties": {"v": vfield(2), "t": {"type": "keyword"},
                                                    "n": {"type": "nested", "properties": {"w": vfield(2)}}}}
    create(client, name, m)
    index_docs(client, name, {"1": {"v": [1.5, 2.5], "t": "a", "n": [{"w": [3.5, 4.5]}]}})
    want = {"t": "a", "n": [{"w": [3.5, 4.5]}]}
    assert get_source(client, name, "1") == want and search_sources(client, name) == {"1": want}
    assert attrs(client, name) == [([], ["n.w"])]
    assert stored(client, name)["1"] == {"t": "a", "n": [{"w": 1}]}
    hits = client.search(index=name, body={"query": {"knn": {"v": {"vector": [1.5, 2.5], "k": 1}}}})
    assert [h["_id"] for h in hits["hits"]["hits"]] == ["1"]
    client.update(index=name, id="1", body={"doc": {"t": "b"}}, refresh=True)
    assert get_source(client, name, "1") == {**want, "t": "b"}
    hits = client.search(index=name, body={"query": {"knn": {"v": {"vector": [1.5, 2.5], "k": 1}}}})
    assert hits["hits"]["hits"] == []  # the update re-indexed a source without the vector


# --------------------------------------------------------------------------------- suspected defects


def test_a_parent_with_over_150_nested_docs_that_is_not_the_first_root(client: Any, name: str) -> None:
    """(a) upstream's first-child search gives block start 0 when no root lies in [P-150, P)."""
    create(client, name, {"properties": {"n": {"type": "nested", "properties": {"v": vfield(2)}}}})
    docs = {"A": {"n": [{"v": [i + 0.5, 0.5]} for i in range(3)]},
            "B": {"n": [{"v": [100 + i + 0.5, 1.5]} for i in range(200)]},
            "C": {"n": [{"v": [1000 + i + 0.5, 2.5]} for i in range(2)] + [{}]},
            "D": {"n": [{"v": None}] + [{"v": [2000 + i + 0.5, 3.5]} for i in range(160)]}}
    index_docs(client, name, docs)
    assert {i: get_source(client, name, i) for i in docs} == docs
    index_docs(client, name, {"E": {"n": [{"v": [5.5, 5.5]}]}})
    docs["E"] = {"n": [{"v": [5.5, 5.5]}]}
    client.indices.forcemerge(index=name, max_num_segments=1)
    assert search_sources(client, name) == docs


def test_b_dotted_key_inside_a_nested_object_does_not_shift_vectors(client: Any, name: str) -> None:
    m = {"properties": {"n": {"type": "nested", "properties": {
        "vec": vfield(2), "o": {"properties": {"vec": vfield(2)}}}}}}
    create(client, name, m)
    doc = {"n": [{"o.vec": [1.5, 1.5]}, {"o": {"vec": [2.5, 2.5]}}, {"vec": [3.5, 3.5]}]}
    index_docs(client, name, {"1": doc})
    assert get_source(client, name, "1") == doc


def test_b_dotted_keys_outside_nested_and_arrays_of_arrays_are_returned_as_written(client: Any, name: str) -> None:
    m = {"properties": {"obj": {"properties": {"vec": vfield(2)}},
                        "n": {"type": "nested", "properties": {"vec": vfield(2)}}}}
    create(client, name, m)
    docs = {"1": {"obj.vec": [4.5, 4.5]},  # indexed, stored in full (not matched by the mask path)
            "2": {"n": [[{"vec": [5.5, 5.5]}], {"vec": [6.5, 6.5]}]},  # array of arrays: no shift
            "3": {"n": [{"o": 1}, {"vec": [7.5, 7.5]}, {"vec": None}, {"vec": [8.5, 8.5]}]}}
    index_docs(client, name, docs)
    assert {i: get_source(client, name, i) for i in docs} == docs
    assert stored(client, name)["3"] == {"n": [{"o": 1}, {"vec": 1}, {"vec": None}, {"vec": 1}]}


def test_c_includes_naming_a_parent_object_return_the_vectors(client: Any, name: str) -> None:
    """(c) since 3.5 an include naming a parent object does not simple-match ``parent.vec``: the mask leaked."""
    m = {"properties": {"obj": {"properties": {"vec": vfield(2), "t": {"type": "keyword"}}},
                        "n": {"type": "nested", "properties": {"vec": vfield(2)}}, "top": vfield(2)}}
    create(client, name, m)
    doc = {"obj": {"vec": [1.5, 2.5], "t": "x"}, "n": [{"vec": [3.5, 4.5]}, {"vec": [5.5, 6.5]}], "top": [7.5, 8.5]}
    index_docs(client, name, {"1": doc})
    for inc, want in ((["obj"], {"obj": doc["obj"]}), (["n"], {"n": doc["n"]}), (["o*"], {"obj": doc["obj"]}),
                      (["obj", "n"], {"obj": doc["obj"], "n": doc["n"]})):
        assert search_sources(client, name, {"_source": {"includes": inc}}) == {"1": want}, inc
        assert get_source(client, name, "1", _source_includes=",".join(inc)) == want, inc


# ----------------------------------------------------------------------------- request _source filtering


FILTER_CASES: list[tuple[Any, Any]] = [  # (includes, excludes) as URL parameters; None = absent
    (None, None), ("", ""), ("v", None), (None, "v"), ("t*", None), ("*", None), (None, "*"),
    ("*", "v"), ("obj.*", None), (None, "obj.*"), ("n.v", None), (None, "n.v"), ("*vec*,v", "n.*"),
    ("nothing", None), ("obj", "obj.vec"),
]


def _filter_index_pair(client: Any, name: str) -> dict[str, Any]:
    m = {"properties": {"v": vfield(2), "t": {"type": "keyword"}, "tag": {"type": "keyword"},
                        "obj": {"properties": {"vec": vfield(2), "b": vfield(2, "byte")}},
                        "n": {"type": "nested", "properties": {"v": vfield(2), "x": {"type": "keyword"}}}}}
    docs = {"1": {"v": [1.5, 2.5], "t": "a", "tag": "g", "obj": {"vec": [3.5, 4.5], "b": [1, -1]},
                  "n": [{"v": [5.5, 6.5], "x": "p"}, {"x": "q"}, {"v": None, "x": "r"}]},
            "2": {"t": "b", "obj": {"b": [-5, 5]}, "n": {"v": [7.5, 8.5]}}}
    for index, settings in ((name, KNN), (f"{name}-off", OFF)):
        create(client, index, m, settings)
        index_docs(client, index, docs)
    return docs


def test_request_source_filtering_equals_the_plain_index(client: Any, name: str) -> None:
    """URL ``_source_includes``/``_source_excludes`` on GET and the body ``_source`` on search, wildcards
    included: the derived index answers exactly like the plain one and never shows the mask."""
    docs = _filter_index_pair(client, name)
    paths = ["v", "obj.vec", "obj.b", "n.v"]
    for inc, exc in FILTER_CASES:
        params = {k: v for k, v in (("_source_includes", inc), ("_source_excludes", exc)) if v is not None}
        for doc_id in docs:
            got = [get_source(client, i, doc_id, **params) for i in (name, f"{name}-off")]
            assert got[0] == got[1], (inc, exc, doc_id, got)
            assert_no_mask(got[0], paths)
        body: dict[str, Any] = {}
        if inc or exc:
            body["_source"] = {k: v.split(",") for k, v in (("includes", inc), ("excludes", exc)) if v}
        got = [search_sources(client, i, body) for i in (name, f"{name}-off")]
        assert got[0] == got[1], (inc, exc)
        for src in got[0].values():
            assert_no_mask(src, paths)
    assert get_source(client, name, "1", _source_includes="obj.vec") == {"obj": {"vec": [3.5, 4.5]}}
    assert get_source(client, name, "2", _source_excludes="obj.b,t") == {"obj": {}, "n": {"v": [7.5, 8.5]}}


def test_source_false_returns_no_source(client: Any, name: str) -> None:
    _filter_index_pair(client, name)
    got = client.get(index=name, id="1", _source="false")
    assert got["found"] and "_source" not in got
    hits = client.search(index=name, body={"_source": False, "query": {"match_all": {}}})["hits"]["hits"]
    assert len(hits) == 2 and all("_source" not in h for h in hits)


def test_request_excludes_drop_objects_left_empty_inside_arrays(client: Any, name: str) -> None:
    create(client, name, {"properties": {"n": {"type": "nested", "properties": {"v": vfield(2)}}}})
    index_docs(client, name, {"1": {"n": [{"v": [1.5, 2.5]}, {"v": [3.5, 4.5], "k": "x"}]}})
    assert get_source(client, name, "1", _source_excludes="n.v") == {"n": [{"k": "x"}]}


def test_request_include_and_exclude_of_the_same_entry_is_rejected(client: Any, name: str) -> None:
    _filter_index_pair(client, name)
    with pytest.raises(TransportError, match="cannot be both included and excluded"):
        client.search(index=name, body={"_source": {"includes": ["v"], "excludes": ["v"]}})


# ------------------------------------------------------------------------------- the mask never leaks


def test_the_mask_is_never_returned_on_any_read_path(client: Any, name: str) -> None:
    m = {"properties": {"one": vfield(1), "v": vfield(3), "b": vfield(3, "byte"),
                        "n": {"type": "nested", "properties": {"v": vfield(3), "n2": {
                            "type": "nested", "properties": {"x": vfield(16, "binary", "hamming")}}}}}}
    paths = ["one", "v", "b", "n.v", "n.n2.x"]
    create(client, name, {**m}, {**KNN, "index.refresh_interval": "-1"})
    doc = {"one": [1.0], "v": [1, 2, 3], "b": [1, 1, 1],
           "n": [{"v": [1.0, 1.0, 1.0], "n2": [{"x": [1, 1]}, {"x": None}]}, {"n2": {"x": [-1, 1]}}]}
    canonical = {**doc, "v": [1.0, 2.0, 3.0]}  # ints in a float field come back as floats (§1.2 step 3)
    client.index(index=name, id="1", body=doc)
    assert get_source(client, name, "1") == canonical  # realtime GET from the buffer
    assert client.mget(index=name, body={"ids": ["1"]})["docs"][0]["_source"] == canonical
    upd = client.update(index=name, id="1", body={"doc": {"t": "x"}, "_source": True})
    canonical["t"] = "x"
    assert upd["get"]["_source"] == canonical
    client.indices.refresh(index=name)
    assert stored(client, name)["1"] == {"one": 1, "v": 1, "b": 1, "t": "x", "n": [
        {"v": 1, "n2": [{"x": 1}, {"x": None}]}, {"n2": {"x": 1}}]}
    assert get_source(client, name, "1") == canonical
    assert search_sources(client, name) == {"1": canonical}
    for path, vec in (("one", [1.0]), ("v", [1.0, 2.0, 3.0]), ("n.v", [1.0, 1.0, 1.0]), ("n.n2.x", [1, 1])):
        hits = client.search(index=name, body={"query": {"knn": {path: {"vector": vec, "k": 1}}}})["hits"]["hits"]
        assert hits[0]["_source"] == canonical and hits[0]["_score"] == 1.0, path
    for dest, settings in ((f"{name}-on", KNN), (f"{name}-off", OFF)):
        create(client, dest, m, settings)
        client.reindex(body={"source": {"index": name}, "dest": {"index": dest}}, refresh=True)
        assert get_source(client, dest, "1") == canonical
    client.indices.forcemerge(index=name, max_num_segments=1)
    got = get_source(client, name, "1")
    assert got == canonical
    assert_no_mask(got, paths)


# ---------------------------------------------------------------------------------------- the setting


def test_setting_defaults_and_validation(client: Any, name: str) -> None:
    m = {"properties": {"v": vfield(2)}}
    create(client, name, m)
    s = client.indices.get_settings(index=name)[name]["settings"]["index"]
    assert s["knn.derived_source"]["enabled"] == "true"  # injected for index.knn: true indices
    index_docs(client, name, {"1": {"v": [1.5, 2.5]}})
    assert stored(client, name)["1"] == {"v": 1}
    create(client, f"{name}-off", m, OFF)
    index_docs(client, f"{name}-off", {"1": {"v": [1.5, 2.5]}})
    assert stored(client, f"{name}-off")["1"] == {"v": [1.5, 2.5]}
    assert attrs(client, f"{name}-off") == [([], [])]
    client.indices.create(index=f"{name}-noknn", body={})
    assert "knn.derived_source" not in client.indices.get_settings(index=f"{name}-noknn")[f"{name}-noknn"][
        "settings"]["index"]
    with pytest.raises(RequestError) as e:
        client.indices.create(index=f"{name}-bad", body={"settings": {"index.knn.derived_source.enabled": True}})
    assert e.value.info["error"]["reason"] == \
        'Index setting "index.knn" must be true in order to enabled derived source'
    with pytest.raises(RequestError) as e:
        client.indices.create(index=f"{name}-bad", body={"settings": {"index.knn": True,
                                                                      "index.knn.derived_source.enabled": "yes"}})
    assert e.value.info["error"]["reason"] == "Failed to parse value [yes] as only [true] or [false] are allowed."
    assert not client.indices.exists(index=f"{name}-bad")


def test_no_derived_source_without_stored_source(client: Any, name: str) -> None:
    create(client, name, {"_source": {"enabled": False}, "properties": {"v": vfield(2)}})
    index_docs(client, name, {"1": {"v": [1.5, 2.5]}})
    got = client.get(index=name, id="1")
    assert got["found"] and "_source" not in got
    assert attrs(client, name) == [([], [])]
    hits = client.search(index=name, body={"query": {"knn": {"v": {"vector": [1.5, 2.5], "k": 1}}}})
    assert [h["_id"] for h in hits["hits"]["hits"]] == ["1"] and "_source" not in hits["hits"]["hits"][0]


def test_field_with_copy_to_is_not_derived(client: Any, name: str) -> None:
    m = {"properties": {"v": {**vfield(2), "copy_to": "all"}, "w": vfield(2), "all": {"type": "keyword"}}}
    create(client, name, m)
    index_docs(client, name, {"1": {"v": [1.5, 2.5], "w": [3.5, 4.5]}})
    assert stored(client, name)["1"] == {"v": [1.5, 2.5], "w": 1}
    assert attrs(client, name) == [(["w"], [])]
    assert get_source(client, name, "1") == {"v": [1.5, 2.5], "w": [3.5, 4.5]}


# ------------------------------------------------------------------------------------ translog replay


def test_translog_replay_never_indexes_a_mask(tmp_path: Any) -> None:
    """The translog holds the masked source plus the canonical vectors; a replay indexes the vectors, never
    the mask (a replayed ``1`` would be a dimension error or a wrong vector)."""
    c = segstore.connect(tmp_path / "data")
    m = {"properties": {"v": vfield(3), "one": vfield(1), "n": {"type": "nested", "properties": {"w": vfield(2)}}}}
    c.indices.create(index="t", body={"settings": {**KNN, "index.refresh_interval": "-1"}, "mappings": m})
    docs = {str(i): {"v": [i + 0.5, 2.0, 3.0], "one": [1.0], "n": [{"w": [i + 1.5, 1.0]}, {"w": None}, {}]}
            for i in range(5)}
    index_docs(c, "t", docs, refresh=False)
    c.update(index="t", id="2", body={"doc": {"v": [9.5, 9.5, 9.5]}})
    docs["2"]["v"] = [9.5, 9.5, 9.5]
    c.delete(index="t", id="4")
    del docs["4"]
    c = crash_and_reopen(c)
    try:
        w = writer(c, "t")
        assert w.replayed_ops == 7
        assert {i: get_source(c, "t", i) for i in docs} == docs
        c.indices.refresh(index="t")
        assert search_sources(c, "t") == docs
        with w.acquire_reader() as reader:
            (leaf,) = reader.leaves
            vv = leaf.vector_values("v")
            assert sorted(map(tuple, vv.vectors.tolist())) == sorted(tuple(d["v"]) for d in docs.values())
            assert leaf.vector_values("one").vectors.tolist() == [[1.0]] * len(docs)
        for i, d in docs.items():
            hit = c.search(index="t", body={"query": {"knn": {"n.w": {"vector": d["n"][0]["w"], "k": 1}}}})
            assert hit["hits"]["hits"][0]["_id"] == i and hit["hits"]["hits"][0]["_score"] == 1.0
        assert all(s["v"] == 1 and s["one"] == 1 for s in stored(c, "t").values())
    finally:
        c.close()
