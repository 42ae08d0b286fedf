"""``GET _plugins/_knn/stats`` and ``GET _plugins/_knn/warmup/{index}`` through opensearch-py
(``client.plugins.knn.stats()`` / ``.warmup(index=...)``), embedded and over HTTP.

Memory stats are checked against what is really resident: loaded graphs' ``memory_bytes()`` plus the open
quantized codes, in KB per allocation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from opensearchpy import helpers
from opensearchpy.exceptions import NotFoundError, RequestError, TransportError

D = 16
N = 1200  # > 1,000 vectors in the segment: searches go through the graph


@pytest.fixture(autouse=True)
def knn_routes(client: Any) -> None:
    """The routes come from ``segstore.rest.handlers_knn.register``; until the router registers that module
    the embedded router gets them here, and the HTTP variant (a ``segstore serve`` subprocess) is skipped."""
    if client.variant == "embedded":
        router = client.transport.router
        if not any(r.pattern[:3] == ("_plugins", "_knn", "stats") for r in router._routes):  # noqa: SLF001
            from segstore.rest import handlers_knn

            handlers_knn.register(router)
        return
    try:
        client.plugins.knn.stats(stat="hit_count")
    except RequestError as e:
        if "no handler found" in str(e.info):
            pytest.skip("segstore.rest.router does not register handlers_knn yet")
        raise


def _create(client: Any, name: str, segments: int = 1, knn: bool = True) -> np.ndarray:
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    x = rng.standard_normal((N, D)).astype(np.float32)
    props = {"bq": {"type": "knn_vector", "dimension": D, "mode": "on_disk"},
             "flt": {"type": "knn_vector", "dimension": D}} if knn else {"t": {"type": "keyword"}}
    client.indices.create(index=name, body={"settings": {"index.knn": knn, "index.refresh_interval": "-1"},
                                            "mappings": {"properties": props}})
    per = N // segments
    for s in range(segments):
        rows = range(s * per, (s + 1) * per)
        src = (lambda i: {"bq": x[i].tolist(), "flt": x[i].tolist()}) if knn else (lambda i: {"t": str(i)})
        helpers.bulk(client, ({"_index": name, "_id": str(i), "_source": src(i)} for i in rows),
                     chunk_size=N, refresh=True)
    return x


def _node(resp: dict[str, Any]) -> dict[str, Any]:
    assert len(resp["nodes"]) == 1
    return next(iter(resp["nodes"].values()))


def _expected_kb(client: Any, index: str) -> dict[str, int]:
    """Per field: KB of loaded graphs + open codes, computed from the engine objects (embedded only)."""
    w = client.transport.node.writer(index)
    reader = w.acquire_reader()
    try:
        out: dict[str, int] = {}
        for leaf in reader.leaves:
            for field in ("bq", "flt"):
                g = leaf.core.graphs._graphs.get(field)  # noqa: SLF001 - loaded graphs only
                q = leaf.core._quantized.get(field)  # noqa: SLF001
                kb = (math.ceil(g.memory_bytes() / 1024) if g is not None else 0) + \
                     (math.ceil(q.memory_bytes() / 1024) if q is not None else 0)
                out[field] = out.get(field, 0) + kb
        return out
    finally:
        reader.dec_ref()


def _quantized_bytes(client: Any, index: str, field: str) -> int:
    w = client.transport.node.writer(index)
    reader = w.acquire_reader()
    try:
        return sum(leaf.quantized(field).memory_bytes() for leaf in reader.leaves)
    finally:
        reader.dec_ref()


def test_stats_shape_and_memory_after_warmup(client: Any, index_name: str) -> None:
    _create(client, index_name, segments=2)
    before = client.plugins.knn.stats()
    assert set(before) == {"_nodes", "cluster_name", "circuit_breaker_triggered", "model_index_status", "nodes"}
    assert before["_nodes"] == {"total": 1, "successful": 1, "failed": 0}
    assert before["circuit_breaker_triggered"] is False and before["model_index_status"] is None
    node = _node(before)
    for key in ("graph_memory_usage", "graph_memory_usage_percentage", "indices_in_cache", "cache_capacity_reached",
                "load_success_count", "hit_count", "miss_count", "eviction_count", "load_exception_count",
                "total_load_time", "training_memory_usage", "training_memory_usage_percentage",
                "knn_query_requests", "graph_query_requests", "faiss_initialized", "lucene_initialized"):
        assert key in node, key
    assert index_name not in node["indices_in_cache"]  # nothing of it is loaded yet
    assert client.plugins.knn.warmup(index=index_name) == {"_shards": {"total": 2, "successful": 1, "failed": 0}}
    node = _node(client.plugins.knn.stats())
    entry = node["indices_in_cache"][index_name]
    fields = entry["segstore_fields"]
    assert entry["graph_count"] == 4  # 2 segments x 2 fields
    assert entry["graph_memory_usage"] == sum(f["graph_memory_usage"] for f in fields.values())
    assert node["graph_memory_usage"] >= entry["graph_memory_usage"] > 0
    assert node["cache_capacity_reached"] is False
    assert 0 < entry["graph_memory_usage_percentage"] <= node["graph_memory_usage_percentage"]
    bq, flt = fields["bq"], fields["flt"]
    assert (bq["encoding"], bq["compression_level"], bq["mode"]) == ("binary 1-bit", "32x", "on_disk")
    assert (flt["encoding"], flt["compression_level"]) == ("float32", "1x")
    assert bq["segments"] == bq["graph_count"] == bq["quantized_segments"] == 2 and bq["vectors"] == N
    # one (1, d) float32 threshold row per segment, plus the 1-bit codes (d/8 bytes per vector) when they are
    # mapped (they need not be: graph-searched segments can score from the graph's own copy of the codes)
    assert bq["quantized_memory_usage_in_bytes"] in (2 * D * 4, N * D // 8 + 2 * D * 4)
    assert flt["quantized_memory_usage_in_bytes"] == 0 and flt["quantized_segments"] == 0
    for f in (bq, flt):
        assert f["total_memory_usage_in_bytes"] == f["graph_memory_usage_in_bytes"] + f["quantized_memory_usage_in_bytes"]
    # a float graph holds the float vectors (4d bytes each); the 1-bit graph holds d/8-byte codes
    assert flt["graph_memory_usage_in_bytes"] > N * 4 * D
    assert bq["graph_memory_usage_in_bytes"] < flt["graph_memory_usage_in_bytes"]
    if client.variant == "embedded":
        kb = _expected_kb(client, index_name)
        assert bq["graph_memory_usage"] == kb["bq"] and flt["graph_memory_usage"] == kb["flt"]
        assert bq["quantized_memory_usage_in_bytes"] == _quantized_bytes(client, index_name, "bq")


def test_search_loads_and_counts_graphs(client: Any, index_name: str) -> None:
    x = _create(client, index_name)
    start = _node(client.plugins.knn.stats())
    client.search(index=index_name, body={"query": {"knn": {"flt": {"vector": x[0].tolist(), "k": 5}}}})
    after = _node(client.plugins.knn.stats())
    entry = after["indices_in_cache"][index_name]
    assert entry["graph_count"] == 1 and entry["segstore_fields"]["flt"]["graph_count"] == 1
    assert entry["segstore_fields"].get("bq", {"graph_count": 0})["graph_count"] == 0
    assert after["load_success_count"] == start["load_success_count"] + 1
    assert after["miss_count"] == start["miss_count"] + 1
    client.plugins.knn.warmup(index=index_name)  # loads the bq graph, finds flt loaded
    warm = _node(client.plugins.knn.stats())
    assert warm["indices_in_cache"][index_name]["graph_count"] == 2
    assert warm["load_success_count"] == after["load_success_count"] + 1
    assert warm["hit_count"] == after["hit_count"] + 1
    assert warm["total_load_time"] >= after["total_load_time"]
    assert warm["graph_memory_usage"] > after["graph_memory_usage"]


def test_stat_and_node_filters(client: Any, index_name: str) -> None:
    resp = client.plugins.knn.stats(stat="graph_memory_usage,hit_count")
    assert set(resp) == {"_nodes", "cluster_name", "nodes"}  # no cluster-level stat was asked for
    assert set(_node(resp)) == {"graph_memory_usage", "hit_count"}
    resp = client.plugins.knn.stats(stat="circuit_breaker_triggered")
    assert resp["circuit_breaker_triggered"] is False and _node(resp) == {}
    assert set(_node(client.plugins.knn.stats(stat="_all"))) == set(_node(client.plugins.knn.stats()))
    node_id = next(iter(client.plugins.knn.stats(stat="hit_count")["nodes"]))
    assert len(node_id) == 22
    for expr in ("_local", "_all", node_id, "segstore", "seg*", f"nobody,{node_id}"):
        resp = client.plugins.knn.stats(node_id=expr, stat="hit_count")
        assert list(resp["nodes"]) == [node_id] and resp["_nodes"]["total"] == 1, expr
    resp = client.plugins.knn.stats(node_id="nobody")
    assert resp["nodes"] == {} and resp["_nodes"] == {"total": 0, "successful": 0, "failed": 0}


@pytest.mark.parametrize(("stat", "message"), [
    ("hit_cont", "request [/_plugins/_knn/stats/hit_cont] contains unrecognized stat: [hit_cont]"),
    ("graph_memory_usage,graph_memory_usag",
     "request [/_plugins/_knn/stats/graph_memory_usage,graph_memory_usag] contains unrecognized stat: "
     "[graph_memory_usag] -> did you mean [graph_memory_usage]?"),
    ("foo,bar", "request [/_plugins/_knn/stats/foo,bar] contains unrecognized stats: [bar], [foo]"),
    ("_all,hit_count", "Request /_plugins/_knn/stats/_all,hit_count contains _all and individual stats"),
])
def test_stat_errors(client: Any, stat: str, message: str) -> None:
    with pytest.raises(RequestError) as e:
        client.plugins.knn.stats(stat=stat)
    err = e.value.info["error"]
    assert (err["type"], err["reason"]) == ("illegal_argument_exception", message)


def test_warmup_expressions_and_errors(client: Any, index_name: str) -> None:
    _create(client, f"{index_name}-a")
    _create(client, f"{index_name}-b")
    resp = client.plugins.knn.warmup(index=f"{index_name}-*")
    assert resp == {"_shards": {"total": 4, "successful": 2, "failed": 0}}
    resp = client.plugins.knn.warmup(index=f"{index_name}-a,{index_name}-b")
    assert resp["_shards"]["successful"] == 2
    with pytest.raises(NotFoundError) as nf:
        client.plugins.knn.warmup(index=f"{index_name}-missing")
    assert nf.value.info["error"]["type"] == "index_not_found_exception"
    _create(client, f"{index_name}-plain", knn=False)
    with pytest.raises(TransportError) as e:
        client.plugins.knn.warmup(index=f"{index_name}-*")
    assert e.value.status_code == 500
    assert e.value.info["error"]["type"] == "k_n_n_invalid_indices_exception"
    assert e.value.info["error"]["reason"] == ("Warm up request rejected. One or more indices have 'index.knn' set "
                                               "to false.")
    with pytest.raises(ValueError):  # opensearch-py refuses an empty index before sending anything
        client.plugins.knn.warmup(index="")
