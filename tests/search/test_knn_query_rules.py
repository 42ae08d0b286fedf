"""Every rule of the ``knn`` query (vector-semantics.md §2.4 radial search, §6 query DSL) through the embedded
opensearch-py client, with the exact HTTP status, error type and message.

Errors: OpenSearch reports an error raised while a shard builds the Lucene query as
``search_phase_execution_exception`` ("all shards failed") whose root cause is a ``query_shard_exception``
with the reason ``failed to create query: <message>`` and the original ``illegal_argument_exception`` as its
``caused_by``; errors raised while the coordinator parses the body come back unwrapped. segstore's REST
wrapping is being changed, so :func:`assert_error` accepts both shapes but is exact in each: the root cause is
either ``(<type>, <message>)`` or ``("query_shard_exception", "failed to create query: <message>")`` and then
the shard failure's ``caused_by`` must be ``(<type>, <message>)``.

Radial cases are transcribed from upstream's ``RadialSearchIT`` (opensearch-project/k-NN, the
``addFaissParams``/``addLuceneParams`` tables: vectors, query ``[1, 0]``, threshold, expected count), on the
ANN path and on the filtered exact path.

Scores are float32 values shown as their shortest decimal (``1/9`` -> ``0.11111111``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # conftest modules share one name at run time: import only for the checker
    from conftest import GraphSpy

import numpy as np
import pytest
from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

import segstore

QSE = "query_shard_exception"
IAE = "illegal_argument_exception"
BUG_LUCENE_IP_MAX_DISTANCE = (
    "BUG: segstore/search/searcher.py passes ip_distance_sign=+1 for the lucene engine and "
    "knn_query.radial_search keeps x.y <= max_distance; upstream Lucene converts max_distance to the score "
    "threshold (d <= 0 ? 1/(1-d) : d+1) and keeps score >= it, i.e. x.y >= max_distance (RadialSearchIT "
    "Lucene_IP: max_distance 0.9 -> 1 hit, 0.2 -> 3 hits)")
BUG_EXPAND_NESTED_FALSE = (
    "BUG: segstore/search/searcher.py rejects any expand_nested_docs value outside a nested field "
    "(`knn.expand_nested_docs is not None`); upstream rejects only `true`")
BUG_BOOST_FLOAT64 = (
    "BUG: segstore/search/searcher.py multiplies the float64 score by boost in float64 "
    "(1/9 * 2.5 -> 0.277777775); OpenSearch multiplies float32 by float32 (0.2777778)")


def f32(x: float) -> float:
    """The float64 of the shortest decimal of float32 ``x`` (what ``_score`` shows)."""
    return float(str(np.float32(x)))


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSearch]:
    c = segstore.connect(tmp_path_factory.mktemp("knn-rules"))
    try:
        yield c
    finally:
        c.close()


def _name(prefix: str = "q") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create(client: OpenSearch, props: dict[str, Any], settings: dict[str, Any] | None = None,
           knn: bool = True) -> str:
    name = _name()
    s: dict[str, Any] = {"index.knn": knn}
    s.update(settings or {})
    client.indices.create(index=name, body={"settings": s, "mappings": {"properties": props}})
    return name


def vec_field(dim: int, space: str | None = None, engine: str = "faiss", data_type: str = "float",
              **extra: Any) -> dict[str, Any]:
    f: dict[str, Any] = {"type": "knn_vector", "dimension": dim, "data_type": data_type,
                         "method": {"name": "hnsw", "engine": engine}}
    if space is not None:
        f["space_type"] = space
    f.update(extra)
    return f


def index_docs(client: OpenSearch, name: str, docs: dict[str, dict[str, Any]], refresh: bool = True) -> None:
    body: list[dict[str, Any]] = []
    for i, d in docs.items():
        body += [{"index": {"_id": i}}, d]
    resp = client.bulk(index=name, body=body)
    assert resp["errors"] is False, resp
    if refresh:
        client.indices.refresh(index=name)


def knn(client: OpenSearch, name: str, clause: dict[str, Any], field: str = "v", size: int = 10,
        **body: Any) -> dict[str, Any]:
    return client.search(index=name, body={"size": size, "query": {"knn": {field: clause}}, **body})


def search_error(client: OpenSearch, name: str, body: dict[str, Any]) -> TransportError:
    with pytest.raises(TransportError) as ei:
        client.search(index=name, body=body)
    return ei.value


def assert_error(e: TransportError, type_: str, reason: str, status: int = 400) -> None:
    """Exact status and root cause, accepting OpenSearch's shard-failure wrapping (see the module doc)."""
    assert e.status_code == status, e.info
    err = e.info["error"]
    root = err["root_cause"][0]
    if root["type"] == QSE and type_ != QSE:
        assert root["reason"] == f"failed to create query: {reason}", e.info
        assert err["type"] == "search_phase_execution_exception" and err["reason"] == "all shards failed", e.info
        cause = err["failed_shards"][0]["reason"]
        assert (cause["type"], cause["reason"]) == (QSE, f"failed to create query: {reason}"), e.info
        assert (cause["caused_by"]["type"], cause["caused_by"]["reason"]) == (type_, reason), e.info
    else:
        assert (root["type"], root["reason"]) == (type_, reason), e.info


def knn_error(client: OpenSearch, name: str, clause: dict[str, Any], type_: str, reason: str,
              field: str = "v") -> None:
    assert_error(search_error(client, name, {"query": {"knn": {field: clause}}}), type_, reason)


V4 = [1.0, 2.0, 3.0, 4.0]


@pytest.fixture(scope="module")
def l2_index(client: OpenSearch) -> str:
    """faiss l2, dimension 4, plus keyword/integer/boolean fields; 3 docs."""
    name = create(client, {"v": vec_field(4, "l2"), "tag": {"type": "keyword"}, "n": {"type": "integer"},
                           "ok": {"type": "boolean"}})
    index_docs(client, name, {"1": {"v": V4, "tag": "a", "n": 1, "ok": True},
                              "2": {"v": [2.0, 2.0, 3.0, 4.0], "tag": "b", "n": 2, "ok": False},
                              "3": {"v": [9.0, 9.0, 9.0, 9.0], "tag": "a", "n": 3, "ok": True}})
    return name


@pytest.fixture(scope="module")
def indices(client: OpenSearch) -> dict[str, str]:
    """One small index per field kind the rules need (created once for the module)."""
    out = {
        "faiss_ip": create(client, {"v": vec_field(4, "innerproduct")}),
        "lucene_ip": create(client, {"v": vec_field(4, "innerproduct", "lucene")}),
        "lucene_l2": create(client, {"v": vec_field(4, "l2", "lucene")}),
        "faiss_cos": create(client, {"v": vec_field(4, "cosinesimil")}),
        "lucene_cos": create(client, {"v": vec_field(4, "cosinesimil", "lucene")}),
        "faiss_byte": create(client, {"v": vec_field(4, "l2", data_type="byte")}),
        "lucene_byte_cos": create(client, {"v": vec_field(4, "cosinesimil", "lucene", data_type="byte")}),
        "faiss_binary": create(client, {"v": vec_field(16, "hamming", data_type="binary")}),
        "lucene_binary": create(client, {"v": vec_field(16, "hamming", "lucene", data_type="binary")}),
    }
    for key, name in out.items():
        doc = [1, 2] if "binary" in key else [1, 2, 3, 4]
        index_docs(client, name, {"1": {"v": doc}})
    return out


# =============================================================================== parsing rules (§6)


@pytest.mark.parametrize("k", [0, -1, 10001, 100000])
def test_k_out_of_range(client: OpenSearch, l2_index: str, k: int) -> None:
    knn_error(client, l2_index, {"vector": V4, "k": k}, IAE, "[knn] requires k to be in the range (0, 10000]")


@pytest.mark.parametrize("k", [1, 10000])
def test_k_bounds_accepted(client: OpenSearch, l2_index: str, k: int) -> None:
    resp = knn(client, l2_index, {"vector": V4, "k": k})
    assert resp["hits"]["total"] == {"value": min(k, 3), "relation": "eq"}
    assert resp["hits"]["hits"][0]["_id"] == "1" and resp["hits"]["hits"][0]["_score"] == 1.0


@pytest.mark.parametrize("clause", [{"vector": [], "k": 1}, {"k": 1}, {"vector": None, "k": 1}],
                         ids=["empty", "missing", "null"])
def test_vector_required(client: OpenSearch, l2_index: str, clause: dict[str, Any]) -> None:
    knn_error(client, l2_index, clause, IAE, "[knn] field 'vector' requires to be non-null and non-empty")


def test_one_field_only(client: OpenSearch, l2_index: str) -> None:
    e = search_error(client, l2_index, {"query": {"knn": {"v": {"vector": V4, "k": 1},
                                                          "w": {"vector": V4, "k": 1}}}})
    assert_error(e, "parsing_exception", "[knn] query doesn't support multiple fields, found [v] and [w]")


@pytest.mark.parametrize("params, reason", [
    ({}, "method_parameters cannot be empty"),
    ({"foo": 1}, "[knn] unknown method parameter found [foo]"),
    ({"ef_search": 0}, "ef_search should be greater than 0"),
    ({"ef_search": -3}, "ef_search should be greater than 0"),
    ({"nprobes": 0}, "nprobes should be greater than 0"),
])
def test_method_parameters_validation(client: OpenSearch, l2_index: str, params: dict[str, Any],
                                      reason: str) -> None:
    knn_error(client, l2_index, {"vector": V4, "k": 1, "method_parameters": params}, IAE, reason)


def _not_valid(engine: str, qtype: str, param: str) -> str:
    return (f"Parameters not valid for [{engine}]:[hnsw]:[{qtype}] combination: [Validation Failed: 1: Unknown "
            f"parameter '{param}' found;]")


@pytest.mark.parametrize("key, clause, reason", [
    ("faiss_l2", {"k": 1, "method_parameters": {"nprobes": 2}}, _not_valid("FAISS", "k", "nprobes")),
    ("faiss_l2", {"k": 1, "method_parameters": {"ef_search": 5, "nprobes": 2}}, _not_valid("FAISS", "k", "nprobes")),
    ("lucene_l2", {"k": 1, "method_parameters": {"nprobes": 2}}, _not_valid("LUCENE", "k", "nprobes")),
    # Lucene radial queries accept no method parameters (§2.4)
    ("lucene_l2", {"max_distance": 1.0, "method_parameters": {"ef_search": 5}},
     _not_valid("LUCENE", "max_distance", "ef_search")),
    ("lucene_l2", {"min_score": 0.5, "method_parameters": {"ef_search": 5}},
     _not_valid("LUCENE", "min_score", "ef_search")),
])
def test_method_parameters_not_valid_for_method(client: OpenSearch, l2_index: str, indices: dict[str, str],
                                                key: str, clause: dict[str, Any], reason: str) -> None:
    name = l2_index if key == "faiss_l2" else indices[key]
    knn_error(client, name, {"vector": V4, **clause}, IAE, reason)


@pytest.mark.parametrize("key, clause", [
    ("faiss_l2", {"k": 1, "method_parameters": {"ef_search": 7}}),
    ("faiss_l2", {"max_distance": 100.0, "method_parameters": {"ef_search": 7}}),  # faiss radial: allowed
    ("faiss_l2", {"min_score": 0.01, "method_parameters": {"ef_search": 7}}),
    ("lucene_l2", {"k": 1, "method_parameters": {"ef_search": 7}}),
])
def test_method_parameters_accepted(client: OpenSearch, l2_index: str, indices: dict[str, str], key: str,
                                    clause: dict[str, Any]) -> None:
    name = l2_index if key == "faiss_l2" else indices[key]
    resp = knn(client, name, {"vector": V4, **clause})
    assert resp["hits"]["hits"][0]["_id"] == "1"


# ================================================================================= radial rules (§2.4)


@pytest.mark.parametrize("clause", [
    {"k": 1, "max_distance": 1.0}, {"k": 1, "min_score": 0.5}, {"max_distance": 1.0, "min_score": 0.5},
    {"k": 1, "max_distance": 1.0, "min_score": 0.5}, {},
])
def test_exactly_one_of_k_distance_score(client: OpenSearch, l2_index: str, clause: dict[str, Any]) -> None:
    knn_error(client, l2_index, {"vector": V4, **clause}, IAE,
              "[knn] requires exactly one of k, distance or score to be set")


def test_shorthand_vector_fails_the_k_rule(client: OpenSearch, l2_index: str) -> None:
    """``{"knn": {"v": [..]}}`` parses a vector without k (§6)."""
    e = search_error(client, l2_index, {"query": {"knn": {"v": V4}}})
    assert_error(e, IAE, "[knn] requires exactly one of k, distance or score to be set")


@pytest.mark.parametrize("min_score", [0, 0.0, -0.5])
def test_min_score_must_be_positive(client: OpenSearch, l2_index: str, indices: dict[str, str],
                                    min_score: float) -> None:
    for name in (l2_index, indices["faiss_ip"]):
        knn_error(client, name, {"vector": V4, "min_score": min_score}, IAE,
                  "[knn] requires minScore to be greater than 0")


@pytest.mark.parametrize("key, space", [("faiss_l2", "l2"), ("lucene_l2", "l2"), ("faiss_cos", "cosinesimil"),
                                        ("lucene_cos", "cosinesimil")])
def test_min_score_above_one_only_for_innerproduct(client: OpenSearch, l2_index: str, indices: dict[str, str],
                                                   key: str, space: str) -> None:
    name = l2_index if key == "faiss_l2" else indices[key]
    knn_error(client, name, {"vector": V4, "min_score": 1.5}, IAE,
              f"[knn] requires score to be in the range [0, 1] for space type: {space}")
    assert knn(client, name, {"vector": V4, "min_score": 1.0})["hits"]["hits"][0]["_id"] == "1"  # 1 is allowed


@pytest.mark.parametrize("key, space", [("faiss_l2", "l2"), ("lucene_l2", "l2"), ("faiss_cos", "cosinesimil"),
                                        ("lucene_cos", "cosinesimil")])
def test_max_distance_negative_only_for_innerproduct(client: OpenSearch, l2_index: str, indices: dict[str, str],
                                                     key: str, space: str) -> None:
    name = l2_index if key == "faiss_l2" else indices[key]
    knn_error(client, name, {"vector": V4, "max_distance": -0.1}, IAE,
              f"[knn] requires distance to be non-negative for space type: {space}")
    # 0 is allowed (cosine gets a little room: cos(x, x) in float32 may be 1 - 2^-24)
    md = 0.0 if space == "l2" else 1e-5
    assert knn(client, name, {"vector": V4, "max_distance": md})["hits"]["hits"][0]["_id"] == "1"


@pytest.mark.parametrize("key", ["faiss_ip", "lucene_ip"])
def test_innerproduct_allows_min_score_above_one_and_negative_distance(client: OpenSearch,
                                                                       indices: dict[str, str], key: str) -> None:
    name = indices[key]
    # doc [1, 2, 3, 4] . query [1, 2, 3, 4] = 30 -> score 31
    hits = knn(client, name, {"vector": V4, "min_score": 1.5})["hits"]["hits"]
    assert [(h["_id"], h["_score"]) for h in hits] == [("1", 31.0)]
    assert knn(client, name, {"vector": V4, "min_score": 31.5})["hits"]["hits"] == []
    # a negative max_distance is accepted (no error); faiss: -x.y = -30 <= -1 -> the doc
    resp = knn(client, name, {"vector": V4, "max_distance": -1.0})
    if key == "faiss_ip":
        assert [h["_id"] for h in resp["hits"]["hits"]] == ["1"]


@pytest.mark.parametrize("key", ["faiss_binary", "lucene_binary"])
@pytest.mark.parametrize("clause", [{"max_distance": 1.0}, {"min_score": 0.5}])
def test_radial_rejected_on_binary(client: OpenSearch, indices: dict[str, str], key: str,
                                   clause: dict[str, Any]) -> None:
    knn_error(client, indices[key], {"vector": [1, 2], **clause}, IAE,
              "Binary data type does not support radial search")


@pytest.mark.parametrize("spec", [
    {"compression_level": "32x"}, {"compression_level": "16x"}, {"compression_level": "8x"},
    {"mode": "on_disk"}, {"mode": "on_disk", "compression_level": "32x"},
    {"method": {"name": "hnsw", "engine": "faiss", "parameters": {"encoder": {"name": "binary"}}}},
], ids=["32x", "16x", "8x", "on_disk", "on_disk-32x", "encoder-binary"])
@pytest.mark.parametrize("clause", [{"max_distance": 1.0}, {"min_score": 0.5}])
def test_radial_rejected_with_binary_quantization(client: OpenSearch, spec: dict[str, Any],
                                                  clause: dict[str, Any]) -> None:
    """Index created on 3.3: the 3.0-3.7 message (the 3.8 ``Current compression level=`` form is later)."""
    name = create(client, {"v": {"type": "knn_vector", "dimension": 4, **spec}})
    try:
        index_docs(client, name, {"1": {"v": V4}})
        knn_error(client, name, {"vector": V4, **clause}, IAE,
                  "Radial search is not supported for indices which have quantization enabled")
        assert knn(client, name, {"vector": V4, "k": 1})["hits"]["hits"][0]["_id"] == "1"
    finally:
        client.indices.delete(index=name)


@pytest.mark.parametrize("spec", [{"compression_level": "2x"}, {"compression_level": "4x"}],
                         ids=["faiss-fp16-2x", "lucene-sq-4x"])
def test_radial_allowed_on_non_binary_quantization_before_3_8(client: OpenSearch, spec: dict[str, Any]) -> None:
    name = create(client, {"v": {"type": "knn_vector", "dimension": 4, **spec}})
    try:
        index_docs(client, name, {"1": {"v": V4}, "2": {"v": [10.0, 10.0, 10.0, 10.0]}})
        hits = knn(client, name, {"vector": V4, "max_distance": 1.0})["hits"]["hits"]
        assert [h["_id"] for h in hits] == ["1"]
    finally:
        client.indices.delete(index=name)


def test_radial_nmslib_not_applicable_on_3x(client: OpenSearch) -> None:
    """``Engine [NMSLIB] does not support radial search`` (and ``... does not support filters``) cannot be
    reached: nmslib fields cannot be created on 3.x indices."""
    with pytest.raises(TransportError) as ei:
        create(client, {"v": vec_field(4, "l2", "nmslib")})
    assert_error(ei.value, "mapper_parsing_exception",
                 "Failed to parse mapping [_doc]: nmslib engine is deprecated in OpenSearch  and cannot be used for "
                 "new index creation in OpenSearch from  3.0.0.")


def test_rescore_not_combinable_with_radial(client: OpenSearch, l2_index: str) -> None:
    """§2.4: ``rescore`` and ``max_distance``/``min_score`` are mutually exclusive field sets."""
    e = search_error(client, l2_index, {"query": {"knn": {"v": {"vector": V4, "max_distance": 1.0,
                                                                "rescore": {"oversample_factor": 2.0}}}}})
    assert e.status_code == 400


# ---------------------------------------------------------------------------- radial semantics (upstream)

L2_VECTORS = [[1.0, 0.0], [1.0, 0.5], [0.0, 0.0], [0.0, 3.0]]          # d = 0, 0.25, 1, 10
COS_VECTORS = [[1.0, 0.0], [3.0, 1.0], [1.0, 1.0], [0.0, 1.0]]         # cos = 1, 0.949, 0.707, 0
IP_VECTORS = [[1.0, 0.0], [0.8, 0.1], [0.3, 0.3], [0.0, 1.0]]          # dot = 1, 0.8, 0.3, 0
IP_NEG_VECTORS = [[1.0, 0.0], [0.5, 0.5], [-0.3, 0.5], [-0.8, 0.2], [-1.0, 0.0]]  # dot = 1, .5, -.3, -.8, -1

RADIAL_CASES = [
    # (engine, space, vectors, kind, threshold, expected count) - RadialSearchIT's tables
    ("faiss", "l2", L2_VECTORS, "max_distance", 0.5, 2), ("faiss", "l2", L2_VECTORS, "max_distance", 2.0, 3),
    ("faiss", "l2", L2_VECTORS, "min_score", 0.9, 1), ("faiss", "l2", L2_VECTORS, "min_score", 0.75, 2),
    ("faiss", "cosinesimil", COS_VECTORS, "max_distance", 0.1, 2),
    ("faiss", "cosinesimil", COS_VECTORS, "max_distance", 0.5, 3),
    ("faiss", "cosinesimil", COS_VECTORS, "min_score", 0.99, 1),
    ("faiss", "cosinesimil", COS_VECTORS, "min_score", 0.8, 3),
    ("faiss", "innerproduct", IP_VECTORS, "max_distance", -0.5, 2),
    ("faiss", "innerproduct", IP_VECTORS, "max_distance", -0.1, 3),
    ("faiss", "innerproduct", IP_VECTORS, "max_distance", 0.1, 4),
    ("faiss", "innerproduct", IP_VECTORS, "min_score", 1.9, 1),
    ("faiss", "innerproduct", IP_VECTORS, "min_score", 1.4, 2),  # PR #2992: orthogonal (score 1.0) not admitted
    ("faiss", "innerproduct", IP_VECTORS, "min_score", 1.01, 3),
    ("faiss", "innerproduct", IP_NEG_VECTORS, "max_distance", -0.4, 2),
    ("faiss", "innerproduct", IP_NEG_VECTORS, "max_distance", 0.4, 3),
    ("faiss", "innerproduct", IP_NEG_VECTORS, "max_distance", 0.9, 4),
    ("faiss", "innerproduct", IP_NEG_VECTORS, "max_distance", 1.1, 5),
    ("faiss", "innerproduct", IP_NEG_VECTORS, "min_score", 1.4, 2),
    ("faiss", "innerproduct", IP_NEG_VECTORS, "min_score", 0.6, 3),
    ("faiss", "innerproduct", IP_NEG_VECTORS, "min_score", 0.55, 4),
    ("faiss", "innerproduct", IP_NEG_VECTORS, "min_score", 0.45, 5),
    ("lucene", "l2", L2_VECTORS, "max_distance", 0.5, 2), ("lucene", "l2", L2_VECTORS, "max_distance", 2.0, 3),
    ("lucene", "l2", L2_VECTORS, "min_score", 0.9, 1), ("lucene", "l2", L2_VECTORS, "min_score", 0.75, 2),
    ("lucene", "cosinesimil", COS_VECTORS, "max_distance", 0.1, 2),
    ("lucene", "cosinesimil", COS_VECTORS, "max_distance", 0.5, 3),
    ("lucene", "cosinesimil", COS_VECTORS, "min_score", 0.99, 1),
    ("lucene", "cosinesimil", COS_VECTORS, "min_score", 0.8, 3),
    # Lucene turns max_distance d into the score threshold (d <= 0 ? 1/(1-d) : d+1): keeps x.y >= d
    ("lucene", "innerproduct", IP_VECTORS, "max_distance", 0.9, 1),
    ("lucene", "innerproduct", IP_VECTORS, "max_distance", 0.5, 2),
    ("lucene", "innerproduct", IP_VECTORS, "max_distance", 0.2, 3),
    ("lucene", "innerproduct", IP_VECTORS, "min_score", 1.9, 1),
    ("lucene", "innerproduct", IP_VECTORS, "min_score", 1.4, 2),
    ("lucene", "innerproduct", IP_VECTORS, "min_score", 1.01, 3),
]


def _exact_score(space: str, doc: list[float], q: list[float]) -> float:
    x, y = np.asarray(doc, np.float32), np.asarray(q, np.float32)
    if space == "l2":
        return f32(np.float32(1) / (np.float32(1) + ((x - y) ** 2).sum(dtype=np.float32)))
    if space == "cosinesimil":
        c = (x * y).sum(dtype=np.float32) / (np.sqrt((x * x).sum()) * np.sqrt((y * y).sum()))
        return f32(max((1 + c) / 2, 0))
    p = (x * y).sum(dtype=np.float32)
    return f32(p + 1 if p >= 0 else 1 / (1 - p))


@pytest.fixture(scope="module")
def radial_indices(client: OpenSearch) -> dict[tuple[str, str, int], str]:
    out = {}
    for engine, space, vectors in {(c[0], c[1], id(c[2])): (c[0], c[1], c[2]) for c in RADIAL_CASES}.values():
        name = create(client, {"v": vec_field(2, space, engine), "color": {"type": "keyword"}})
        index_docs(client, name, {str(i + 1): {"v": v, "color": "red"} for i, v in enumerate(vectors)})
        out[(engine, space, id(vectors))] = name
    return out


def _radial_params() -> list[Any]:
    params = []
    for engine, space, vectors, kind, thr, expected in RADIAL_CASES:
        marks: list[Any] = []
        label = f"{engine}-{space}{'-neg' if vectors is IP_NEG_VECTORS else ''}-{kind}-{thr}"
        for filtered in (False, True):
            params.append(pytest.param(engine, space, vectors, kind, thr, expected, filtered, marks=marks,
                                       id=f"{label}-{'filtered' if filtered else 'ann'}"))
    return params


@pytest.mark.parametrize("engine, space, vectors, kind, threshold, expected, filtered", _radial_params())
def test_radial_semantics_upstream_cases(client: OpenSearch, radial_indices: dict[tuple[str, str, int], str],
                                         engine: str, space: str, vectors: list[list[float]], kind: str,
                                         threshold: float, expected: int, filtered: bool) -> None:
    """Distance: squared L2, 1-cos, faiss -x.y; score conversions; the filtered (exact) path agrees."""
    name = radial_indices[(engine, space, id(vectors))]
    q = [1.0, 0.0]
    clause: dict[str, Any] = {"vector": q, kind: threshold}
    if filtered:
        clause["filter"] = {"term": {"color": "red"}}
    resp = knn(client, name, clause)
    hits = resp["hits"]["hits"]
    # the expected hits are the `expected` best documents (each case's documents are sorted by score)
    want = [(str(i + 1), _exact_score(space, v, q)) for i, v in enumerate(vectors)][:expected]
    assert [h["_id"] for h in hits] == [i for i, _ in want]
    assert [h["_score"] for h in hits] == pytest.approx([s for _, s in want], rel=1e-6)
    assert resp["hits"]["total"] == {"value": expected, "relation": "eq"}


def test_radial_l2_max_distance_is_squared(client: OpenSearch, l2_index: str) -> None:
    """Doc 2 is at Euclidean distance 1 from doc 1's vector, doc 3 at sqrt(8² + 7² + 6² + 5²) = sqrt(174)."""
    for md, ids in [(0.99, ["1"]), (1.0, ["1", "2"]), (173.9, ["1", "2"]), (174.0, ["1", "2", "3"])]:
        hits = knn(client, l2_index, {"vector": V4, "max_distance": md})["hits"]["hits"]
        assert [h["_id"] for h in hits] == ids, md
    hits = knn(client, l2_index, {"vector": V4, "max_distance": 174.0})["hits"]["hits"]
    assert [h["_score"] for h in hits] == [1.0, 0.5, f32(1 / 175)]
    # min_score is the score threshold: 1/(1+d) >= s
    hits = knn(client, l2_index, {"vector": V4, "min_score": 0.5})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["1", "2"]


def test_radial_on_byte_field(client: OpenSearch, indices: dict[str, str]) -> None:
    """#2864: radial search on a faiss byte field works (was ``Query Vector cannot be null``)."""
    name = create(client, {"v": vec_field(3, "l2", data_type="byte"), "c": {"type": "keyword"}})
    try:
        index_docs(client, name, {"1": {"v": [1, 2, 3], "c": "x"}, "2": {"v": [2, 2, 3], "c": "x"},
                                  "3": {"v": [-100, 100, 3], "c": "y"}})
        hits = knn(client, name, {"vector": [1, 2, 3], "max_distance": 1.0})["hits"]["hits"]
        assert [(h["_id"], h["_score"]) for h in hits] == [("1", 1.0), ("2", 0.5)]
        hits = knn(client, name, {"vector": [1, 2, 3], "min_score": 0.6})["hits"]["hits"]
        assert [h["_id"] for h in hits] == ["1"]
        hits = knn(client, name, {"vector": [1, 2, 3], "max_distance": 1e9, "filter": {"term": {"c": "y"}}})
        assert [h["_id"] for h in hits["hits"]["hits"]] == ["3"]
    finally:
        client.indices.delete(index=name)


# ====================================================================================== vector checks


@pytest.mark.parametrize("vector", [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
def test_query_dimension_mismatch(client: OpenSearch, l2_index: str, vector: list[float]) -> None:
    knn_error(client, l2_index, {"vector": vector, "k": 1}, IAE,
              f"Query vector has invalid dimension: {len(vector)}. Dimension should be: 4")


@pytest.mark.parametrize("key", ["faiss_binary", "lucene_binary"])
@pytest.mark.parametrize("vector, bits", [([1], 8), ([1, 2, 3], 24)])
def test_query_dimension_mismatch_binary_counts_bits(client: OpenSearch, indices: dict[str, str], key: str,
                                                     vector: list[int], bits: int) -> None:
    knn_error(client, indices[key], {"vector": vector, "k": 1}, IAE,
              f"Query vector has invalid dimension: {bits}. Dimension should be: 16")


@pytest.mark.parametrize("key, data_type, width", [("faiss_byte", "byte", 4), ("lucene_byte_cos", "byte", 4),
                                                   ("faiss_binary", "binary", 2), ("lucene_binary", "binary", 2)])
def test_byte_and_binary_query_values(client: OpenSearch, indices: dict[str, str], key: str, data_type: str,
                                      width: int) -> None:
    name = indices[key]
    base = [1, 2, 3, 4][:width]
    knn_error(client, name, {"vector": [1.5] + base[1:], "k": 1}, IAE,
              f"[data_type] field was set as [{data_type}] in index mapping. But, KNN vector values are floats "
              "instead of byte integers")
    for bad in (128, -129, 200):
        knn_error(client, name, {"vector": [bad] + base[1:], "k": 1}, IAE,
                  f"[data_type] field was set as [{data_type}] in index mapping. But, KNN vector values are not "
                  "within in the byte range [-128, 127]")
    # integral floats and the range ends are accepted
    for ok in ([float(x) for x in base], [127] + base[1:], [-128] + base[1:]):
        assert knn(client, name, {"vector": ok, "k": 1})["hits"]["total"]["value"] == 1


@pytest.mark.parametrize("key", ["faiss_cos", "lucene_cos", "lucene_byte_cos"])
def test_cosine_zero_query_vector(client: OpenSearch, indices: dict[str, str], key: str) -> None:
    knn_error(client, indices[key], {"vector": [0, 0, 0, 0], "k": 1}, IAE,
              "zero vector is not supported when space type is [cosinesimil]")


# ======================================================================================= field checks


@pytest.mark.parametrize("field", ["tag", "n", "ok"])
def test_field_not_knn_vector(client: OpenSearch, l2_index: str, field: str) -> None:
    knn_error(client, l2_index, {"vector": V4, "k": 1}, IAE, f"Field '{field}' is not knn_vector type.", field=field)


def test_unmapped_field(client: OpenSearch, l2_index: str) -> None:
    knn_error(client, l2_index, {"vector": V4, "k": 1}, IAE, "Field 'nope' is not knn_vector type.", field="nope")
    knn_error(client, l2_index, {"vector": V4, "k": 1, "ignore_unmapped": False}, IAE,
              "Field 'nope' is not knn_vector type.", field="nope")
    resp = knn(client, l2_index, {"vector": V4, "k": 1, "ignore_unmapped": True}, field="nope")
    assert resp["hits"] == {"total": {"value": 0, "relation": "eq"}, "max_score": None, "hits": []}


def test_flat_field_rejects_ann_and_supports_script_score(client: OpenSearch) -> None:
    """``index.knn: false`` -> a flat field: exact search through ``knn_score`` only (§1.2, §2.1)."""
    name = create(client, {"v": {"type": "knn_vector", "dimension": 2}, "t": {"type": "keyword"}}, knn=False)
    try:
        index_docs(client, name, {"1": {"v": [1.0, 2.0], "t": "a"}, "2": {"v": [3.0, -1.0], "t": "b"},
                                  "3": {"v": [-2.0, 0.5], "t": "a"}})
        knn_error(client, name, {"vector": [1.0, 1.0], "k": 1}, IAE, "Field 'v' is not built for ANN search.")
        knn_error(client, name, {"vector": [1.0, 1.0], "max_distance": 1.0}, IAE,
                  "Field 'v' is not built for ANN search.")
        q = [2.0, 1.0]
        docs = {"1": [1.0, 2.0], "2": [3.0, -1.0], "3": [-2.0, 0.5]}
        for space in ("l2", "innerproduct", "cosinesimil"):
            body = {"query": {"script_score": {"query": {"match_all": {}}, "script": {
                "source": "knn_score", "lang": "knn",
                "params": {"field": "v", "query_value": q, "space_type": space}}}}}
            hits = client.search(index=name, body=body)["hits"]["hits"]
            want = sorted(((i, _exact_score(space, d, q)) for i, d in docs.items()), key=lambda t: -t[1])
            assert [(h["_id"], h["_score"]) for h in hits] == want, space
        # the inner query restricts the scored documents
        body = {"query": {"script_score": {"query": {"term": {"t": "a"}}, "script": {
            "source": "knn_score", "lang": "knn", "params": {"field": "v", "query_value": q, "space_type": "l2"}}}}}
        hits = client.search(index=name, body=body)["hits"]["hits"]
        assert [(h["_id"], h["_score"]) for h in hits] == [("1", f32(1 / 3)), ("3", f32(1 / 17.25))]
    finally:
        client.indices.delete(index=name)


def test_expand_nested_docs_outside_nested(client: OpenSearch, l2_index: str) -> None:
    knn_error(client, l2_index, {"vector": V4, "k": 1, "expand_nested_docs": True}, IAE,
              "Invalid value provided for the [expand_nested_docs] field. [expand_nested_docs] is only "
              "supported with a nested field.")


def test_expand_nested_docs_false_outside_nested_is_accepted(client: OpenSearch, l2_index: str) -> None:
    """Upstream (``KNNQueryFactory``/``QueryBuilderHelper.validateExpandNested``) only rejects
    ``parentFilter == null && expandNested``: ``false`` on a non-nested field is a no-op."""
    hits = knn(client, l2_index, {"vector": V4, "k": 1, "expand_nested_docs": False})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["1"]


# ============================================================================ boost, _name, response shape


@pytest.mark.parametrize("boost", [
    2.0, 0.5, 4.0,
    2.5, 3.0,
])
@pytest.mark.parametrize("kind", ["k", "max_distance"])
def test_boost_multiplies_scores(client: OpenSearch, l2_index: str, boost: float, kind: str) -> None:
    """Final ``_score`` = score x boost in float32 (§2.1). Doc 2: d = 1 -> 0.5; query [3, 4, 5, 6] vs doc 1:
    d = 16 -> 1/17."""
    clause: dict[str, Any] = {"vector": [2.0, 2.0, 3.0, 4.0], "boost": boost}
    clause.update({"k": 2} if kind == "k" else {"max_distance": 1.0})
    resp = knn(client, l2_index, clause)
    scores = {h["_id"]: h["_score"] for h in resp["hits"]["hits"]}
    assert scores == {"2": f32(np.float32(1.0) * np.float32(boost)), "1": f32(np.float32(0.5) * np.float32(boost))}
    assert resp["hits"]["max_score"] == scores["2"]
    clause["vector"] = [3.0, 4.0, 5.0, 6.0]
    hits = knn(client, l2_index, {**clause, "max_distance": 16.0} if kind != "k" else clause)["hits"]["hits"]
    one = next(h for h in hits if h["_id"] == "1")
    assert one["_score"] == f32(np.float32(1) / np.float32(17) * np.float32(boost))


def test_name_gives_matched_queries(client: OpenSearch, l2_index: str) -> None:
    hits = knn(client, l2_index, {"vector": V4, "k": 2, "_name": "my_knn"})["hits"]["hits"]
    assert [h["matched_queries"] for h in hits] == [["my_knn"], ["my_knn"]]
    hits = knn(client, l2_index, {"vector": V4, "k": 2})["hits"]["hits"]
    assert all("matched_queries" not in h for h in hits)


# ============================================================================================ filters


FILTERS = [
    ({"term": {"tag": "a"}}, lambda d: d["tag"] == "a"),
    ({"term": {"tag": {"value": "b"}}}, lambda d: d["tag"] == "b"),
    ({"terms": {"tag": ["b", "c"]}}, lambda d: d["tag"] in ("b", "c")),
    ({"term": {"n": 7}}, lambda d: d["n"] == 7),
    ({"range": {"n": {"gte": 10, "lt": 40}}}, lambda d: 10 <= d["n"] < 40),
    ({"range": {"price": {"gt": 0.25, "lte": 0.75}}}, lambda d: 0.25 < d["price"] <= 0.75),
    ({"term": {"ok": True}}, lambda d: d["ok"] is True),
    ({"term": {"ok": False}}, lambda d: d["ok"] is False),
    ({"bool": {"must": [{"term": {"tag": "a"}}], "filter": [{"range": {"n": {"lt": 50}}}]}},
     lambda d: d["tag"] == "a" and d["n"] < 50),
    ({"bool": {"must_not": [{"term": {"ok": True}}]}}, lambda d: not d["ok"]),
    ({"bool": {"should": [{"term": {"tag": "c"}}, {"range": {"n": {"gte": 90}}}]}},
     lambda d: d["tag"] == "c" or d["n"] >= 90),
    ({"bool": {"filter": [{"term": {"ok": True}}, {"terms": {"tag": ["a", "b"]}}],
               "must_not": [{"range": {"n": {"lt": 20}}}]}},
     lambda d: d["ok"] and d["tag"] in ("a", "b") and d["n"] >= 20),
]


def _filter_docs(n: int, dim: int, seed: int) -> tuple[dict[str, dict[str, Any]], np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    rows = [[float(str(v)) for v in row] for row in x]
    docs = {str(i): {"v": rows[i], "tag": "abc"[i % 3], "n": i, "ok": i % 2 == 0, "price": (i % 100) / 100}
            for i in range(n)}
    return docs, np.asarray(rows, np.float32)


@pytest.fixture(scope="module")
def filter_indices(client: OpenSearch) -> dict[str, tuple[str, dict[str, dict[str, Any]], np.ndarray]]:
    out = {}
    props = {"tag": {"type": "keyword"}, "n": {"type": "integer"}, "ok": {"type": "boolean"},
             "price": {"type": "float"}}
    docs, x = _filter_docs(100, 8, 1)
    for engine, space in (("faiss", "l2"), ("lucene", "l2"), ("faiss", "innerproduct"), ("lucene", "cosinesimil")):
        name = create(client, {"v": vec_field(8, space, engine), **props})
        index_docs(client, name, docs)
        out[f"{engine}-{space}"] = (name, docs, x)
    return out


def _brute_force(space: str, x: np.ndarray, q: np.ndarray, allowed: list[int], k: int) -> list[tuple[str, float]]:
    out = [(str(i), _exact_score(space, x[i].tolist(), q.tolist())) for i in allowed]
    return sorted(out, key=lambda t: (-t[1], int(t[0])))[:k]


@pytest.mark.parametrize("combo", ["faiss-l2", "lucene-l2", "faiss-innerproduct", "lucene-cosinesimil"])
@pytest.mark.parametrize("filt, pred", FILTERS, ids=[str(i) for i in range(len(FILTERS))])
def test_filter_results_equal_brute_force(client: OpenSearch, filter_indices: Any, combo: str,
                                          filt: dict[str, Any], pred: Callable[[dict[str, Any]], bool]) -> None:
    """term/terms/range/bool on keyword, integer, float and boolean fields: the result is the exact top k of
    the filtered set (small filtered sets take the exact path)."""
    name, docs, x = filter_indices[combo]
    space = combo.split("-")[1]
    allowed = [int(i) for i, d in docs.items() if pred(d)]
    assert allowed, "the filter must match something"
    q = np.random.default_rng(99).standard_normal(8).astype(np.float32)
    q = np.asarray([float(str(v)) for v in q], np.float32)
    for k in (1, 5, 10):
        resp = knn(client, name, {"vector": q.tolist(), "k": k, "filter": filt}, size=50)
        want = _brute_force(space, x, q, allowed, k)
        assert [h["_id"] for h in resp["hits"]["hits"]] == [i for i, _ in want], (k, filt)
        assert [h["_score"] for h in resp["hits"]["hits"]] == pytest.approx([s for _, s in want], rel=1e-6)
        assert resp["hits"]["total"]["value"] == min(k, len(allowed))


def _rule_index(client: OpenSearch, n: int, dim: int, settings: dict[str, Any] | None = None) -> tuple[str, np.ndarray]:
    name = create(client, {"v": vec_field(dim, "l2"), "n": {"type": "integer"}},
                  {"index.refresh_interval": "-1", **(settings or {})})
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    rows = [[float(str(v)) for v in row] for row in x]
    for start in range(0, n, 500):
        index_docs(client, name, {str(i): {"v": rows[i], "n": i} for i in range(start, min(n, start + 500))},
                   refresh=False)
    client.indices.refresh(index=name)
    assert len(client.cat.segments(index=name, format="json")) == 1  # the rule is per segment
    return name, np.asarray(rows, np.float32)


@pytest.mark.parametrize("threshold, count, path", [
    (1, 10, "exact"),    # filtered count <= k -> exact, whatever the threshold
    (1, 11, "graph"),
    (50, 50, "exact"),   # filtered count <= index.knn.advanced.filtered_exact_search_threshold -> exact
    (50, 51, "graph"),
])
def test_filtered_exact_search_rule_with_threshold_setting(client: OpenSearch, graph_spy: GraphSpy,
                                                           threshold: int, count: int, path: str) -> None:
    name, x = _rule_index(client, 300, 4, {"index.knn.advanced.filtered_exact_search_threshold": threshold})
    try:
        q = np.zeros(4, np.float32)
        graph_spy.count = 0
        resp = knn(client, name, {"vector": q.tolist(), "k": 10, "filter": {"range": {"n": {"lt": count}}}})
        assert (graph_spy.count > 0) == (path == "graph")
        got = [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]]
        assert got == _brute_force("l2", x, q, list(range(count)), 10)
    finally:
        client.indices.delete(index=name)


def test_filtered_exact_search_rule_count_times_dimension(client: OpenSearch, graph_spy: GraphSpy) -> None:
    """Without the setting: exact when filtered count x dimension <= 2,048,000 (1000 x 2048), else the graph
    with the filter; both equal brute force over the filtered set."""
    name, x = _rule_index(client, 1100, 2048)
    try:
        q = x[0] + np.float32(0.01)
        for count, path in ((1000, "exact"), (1001, "graph"), (1100, "graph")):
            graph_spy.count = 0
            resp = knn(client, name, {"vector": q.tolist(), "k": 10, "filter": {"range": {"n": {"lt": count}}}})
            assert (graph_spy.count > 0) == (path == "graph"), count
            got = [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]]
            want = _brute_force("l2", x, q, list(range(count)), 10)
            assert [i for i, _ in got] == [i for i, _ in want], count
            assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-5)
    finally:
        client.indices.delete(index=name)


def test_small_filter_on_faiss_byte_field(client: OpenSearch) -> None:
    """#2168 / #2310: faiss byte vectors with an efficient filter (exact path) and on the graph path."""
    name = create(client, {"v": vec_field(4, "l2", data_type="byte"), "n": {"type": "integer"}},
                  {"index.knn.advanced.filtered_exact_search_threshold": 5})
    try:
        rng = np.random.default_rng(3)
        x = rng.integers(-128, 128, (200, 4)).astype(np.int8)
        index_docs(client, name, {str(i): {"v": x[i].tolist(), "n": i} for i in range(200)})
        q = [0, 0, 0, 0]
        for count in (3, 5, 6, 120):
            hits = knn(client, name, {"vector": q, "k": 5, "filter": {"range": {"n": {"lt": count}}}})["hits"]["hits"]
            d = ((x[:count].astype(np.int64)) ** 2).sum(axis=1)
            want = sorted(range(count), key=lambda i: (d[i], i))[:5]
            assert [h["_id"] for h in hits] == [str(i) for i in want]
            assert [h["_score"] for h in hits] == [f32(np.float32(1) / np.float32(1 + d[i])) for i in want]
    finally:
        client.indices.delete(index=name)


def test_bool_clauses_around_knn_post_filter(client: OpenSearch, l2_index: str) -> None:
    """A filter next to ``knn`` in a ``bool`` restricts the k results afterwards (§6 ``filter`` is the
    pre-filter)."""
    post = {"query": {"bool": {"must": [{"knn": {"v": {"vector": V4, "k": 2}}}],
                               "filter": [{"term": {"tag": "a"}}]}}}
    hits = client.search(index=l2_index, body=post)["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["1"]  # top 2 = {1, 2}; doc 2 has tag b
    pre = knn(client, l2_index, {"vector": V4, "k": 2, "filter": {"term": {"tag": "a"}}})["hits"]["hits"]
    assert [h["_id"] for h in pre] == ["1", "3"]


# ===================================================================================== hits.total (§6)


@pytest.mark.parametrize("engine", ["faiss", "lucene"])
def test_hits_total_per_segment_versus_per_shard(client: OpenSearch, engine: str) -> None:
    """faiss (no rescoring) returns up to k per segment, so hits.total and the hits can exceed k; lucene
    returns k per shard."""
    name = create(client, {"v": vec_field(2, "l2", engine)}, {"index.refresh_interval": "-1"})
    try:
        for seg in range(3):
            index_docs(client, name, {f"{seg}-{i}": {"v": [float(seg), float(i)]} for i in range(4)})
        segs = client.cat.segments(index=name, format="json")
        assert len(segs) == 3
        resp = knn(client, name, {"vector": [0.0, 0.0], "k": 2})
        per = 2 * 3 if engine == "faiss" else 2
        assert resp["hits"]["total"] == {"value": per, "relation": "eq"}
        assert len(resp["hits"]["hits"]) == per
        scores = [h["_score"] for h in resp["hits"]["hits"]]
        assert scores == sorted(scores, reverse=True) and resp["hits"]["max_score"] == 1.0
        # size still caps the returned hits; hits.total does not change
        resp = knn(client, name, {"vector": [0.0, 0.0], "k": 2}, size=1)
        assert resp["hits"]["total"]["value"] == per and len(resp["hits"]["hits"]) == 1
        # k larger than a segment: each segment returns what it has
        resp = knn(client, name, {"vector": [0.0, 0.0], "k": 5}, size=20)
        assert resp["hits"]["total"]["value"] == (12 if engine == "faiss" else 5)
    finally:
        client.indices.delete(index=name)


# ==================================================================== same doc, same score (#1396)


@pytest.mark.parametrize("engine, space", [("faiss", "innerproduct"), ("lucene", "innerproduct"),
                                           ("faiss", "cosinesimil"), ("faiss", "l2")])
def test_same_doc_same_score_ann_and_exact_filtered(client: OpenSearch, graph_spy: GraphSpy, engine: str,
                                                    space: str) -> None:
    """#1396: a document's score does not depend on the path (graph search, or the exact search a small
    filter triggers). 1,500 vectors so the unfiltered query takes the graph path."""
    name = create(client, {"v": vec_field(16, space, engine), "n": {"type": "integer"}},
                  {"index.refresh_interval": "-1"})
    try:
        rng = np.random.default_rng(11)
        x = rng.standard_normal((1500, 16)).astype(np.float32) * np.float32(3)
        rows = [[float(str(v)) for v in row] for row in x]
        for start in range(0, 1500, 500):
            index_docs(client, name, {str(i): {"v": rows[i], "n": i} for i in range(start, start + 500)},
                       refresh=False)
        client.indices.refresh(index=name)
        q = [float(str(v)) for v in rng.standard_normal(16).astype(np.float32)]
        graph_spy.count = 0
        ann = knn(client, name, {"vector": q, "k": 10})["hits"]["hits"]
        assert graph_spy.count > 0
        ids = [h["_id"] for h in ann]
        graph_spy.count = 0
        exact = knn(client, name, {"vector": q, "k": 10, "filter": {"terms": {"n": [int(i) for i in ids]}}})
        assert graph_spy.count == 0
        assert [(h["_id"], h["_score"]) for h in exact["hits"]["hits"]] == [(h["_id"], h["_score"]) for h in ann]
        for h in ann:
            assert h["_score"] == pytest.approx(_exact_score(space, rows[int(h["_id"])], q), rel=1e-6)
        # a one-document filter and a radial query give the same number again
        one = ann[3]
        solo = knn(client, name, {"vector": q, "k": 1, "filter": {"term": {"n": int(one["_id"])}}})["hits"]["hits"]
        assert [(h["_id"], h["_score"]) for h in solo] == [(one["_id"], one["_score"])]
        radial = knn(client, name, {"vector": q, "min_score": one["_score"]}, size=100)["hits"]["hits"]
        assert (one["_id"], one["_score"]) in [(h["_id"], h["_score"]) for h in radial]
    finally:
        client.indices.delete(index=name)


# ============================================================================= faiss cosine _source (#3083)


def test_faiss_cosine_source_is_normalised(client: OpenSearch) -> None:
    """Faiss cosine indexes the unit vector, and with derived source (on by default on 3.x) GET and search
    return it; the lucene engine keeps the original vector."""
    faiss_name = create(client, {"v": vec_field(3, "cosinesimil", "faiss")})
    lucene_name = create(client, {"v": vec_field(3, "cosinesimil", "lucene")})
    try:
        doc = [3.0, 0.0, 4.0]
        unit = [float(str(v)) for v in np.asarray(doc, np.float32) / np.float32(5.0)]
        assert unit == [0.6, 0.0, 0.8]
        for name in (faiss_name, lucene_name):
            client.index(index=name, id="1", body={"v": doc, "t": "x"}, refresh=True)
        assert client.get(index=faiss_name, id="1")["_source"] == {"v": unit, "t": "x"}
        assert client.get(index=lucene_name, id="1")["_source"] == {"v": doc, "t": "x"}
        hit = knn(client, faiss_name, {"vector": [1.0, 0.0, 0.0], "k": 1})["hits"]["hits"][0]
        assert hit["_source"] == {"v": unit, "t": "x"} and hit["_score"] == f32((1 + 0.6) / 2)
        hit = knn(client, lucene_name, {"vector": [1.0, 0.0, 0.0], "k": 1})["hits"]["hits"][0]
        assert hit["_source"] == {"v": doc, "t": "x"} and hit["_score"] == f32((1 + 0.6) / 2)
        # a non-trivial norm: every component is the float32 of x / |x|
        v = [1.0, 2.0, 2.5]
        client.index(index=faiss_name, id="2", body={"v": v}, refresh=True)
        x = np.asarray(v, np.float32)
        want = [float(str(c)) for c in x / np.sqrt((x * x).sum(dtype=np.float32))]
        got = client.get(index=faiss_name, id="2")["_source"]["v"]
        assert got == pytest.approx(want, abs=1e-7)
        assert float(np.linalg.norm(np.asarray(got, np.float64))) == pytest.approx(1.0, abs=1e-6)
    finally:
        client.indices.delete(index=faiss_name)
        client.indices.delete(index=lucene_name)
