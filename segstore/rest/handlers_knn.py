"""k-NN plugin endpoints: ``GET _plugins/_knn/stats`` and ``GET _plugins/_knn/warmup/{index}``.

Stats (``RestKNNStatsHandler`` / ``KNNStatsTransportAction``)::

    GET /_plugins/_knn/stats                    GET /_plugins/_knn/stats/{stat}
    GET /_plugins/_knn/{nodeId}/stats           GET /_plugins/_knn/{nodeId}/stats/{stat}

(and the same under the legacy ``/_opendistro/_knn`` prefix). ``nodeId`` and ``stat`` are comma-separated
lists. The response is a nodes response: ``_nodes`` (total/successful/failed), ``cluster_name``, the
cluster-level stats (``circuit_breaker_triggered``, ``model_index_status``), then ``nodes: {<node id>:
{<node-level stats>}}``. Unknown stat names fail with ``request [<path>] contains unrecognized stat: [x]``
(did-you-mean suggestions drawn, as upstream, only from the *valid* stats of the same request); ``_all``
mixed with other names fails with ``Request <path> contains _all and individual stats``.

Memory stats are computed from what is really resident (:mod:`segstore.quantization.memory`): loaded
graphs' ``memory_bytes()`` plus open quantized codes, in KB per allocation, per index under
``indices_in_cache``; each index entry also carries ``segstore_fields`` (a segstore extension): per vector
field the graph bytes, the quantized-code bytes, graph counts, vectors, encoding, compression and mode.

Warmup (``RestKNNWarmupHandler``): ``GET /_plugins/_knn/warmup/{index}`` resolves the index expression
(names, wildcards, ``_all``), rejects non-k-NN indices (``Warm up request rejected. One or more indices have
'index.knn' set to false.``, a ``k_n_n_invalid_indices_exception``: a plain ``RuntimeException`` upstream,
hence 500), loads every graph of every segment and answers ``{"_shards": {"total", "successful",
"failed"}}`` (total counts replicas, which a one-node cluster never assigns, as ``_refresh`` does).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
from typing import Any

import numpy as np

from segstore.errors import IllegalArgumentError, IndexNotFoundError, ValidationError
from segstore.node import Node
from segstore.quantization import memory as qmem
from segstore.rest.response import RestRequest, RestResponse
from segstore.rest.router import unrecognized

__all__ = ["register", "node_id", "NODE_NAME", "CLUSTER_NAME", "NODE_STATS", "CLUSTER_STATS", "stats_body"]

NODE_NAME = "segstore"
CLUSTER_NAME = "segstore"
BASES = ("/_plugins/_knn", "/_opendistro/_knn")

#: Cluster-level stats (``KNNStat#isClusterLevel``), in the plugin's declaration order.
CLUSTER_STATS = ("circuit_breaker_triggered", "model_index_status")
#: Node-level stats of k-NN 3.x ``StatNames`` (minus the remote-build families segstore has no notion of).
NODE_STATS = (
    "knn_query_requests", "knn_query_with_filter_requests", "min_score_query_requests",
    "min_score_query_with_filter_requests", "max_distance_query_requests",
    "max_distance_query_with_filter_requests",
    "hit_count", "miss_count", "load_success_count", "load_exception_count", "total_load_time",
    "eviction_count", "graph_memory_usage", "graph_memory_usage_percentage", "indices_in_cache",
    "cache_capacity_reached", "graph_query_errors", "graph_query_requests", "graph_index_errors",
    "graph_index_requests",
    "faiss_initialized", "nmslib_initialized", "lucene_initialized",
    "script_compilations", "script_compilation_errors", "script_query_requests", "script_query_errors",
    "indexing_from_model_degraded", "training_requests", "training_errors", "training_memory_usage",
    "training_memory_usage_percentage", "graph_stats",
)
_ALL_STATS = frozenset(NODE_STATS + CLUSTER_STATS)
_COUNTERS = ("knn_query_requests", "knn_query_with_filter_requests", "min_score_query_requests",
             "min_score_query_with_filter_requests", "max_distance_query_requests",
             "max_distance_query_with_filter_requests", "graph_query_errors", "graph_query_requests",
             "graph_index_errors", "graph_index_requests", "script_compilations", "script_compilation_errors",
             "script_query_requests", "script_query_errors", "training_requests", "training_errors")


def node_id(node: Node) -> str:
    """The node's stable 22-character id (OpenSearch's base64 UUID shape), derived from the data directory:
    the same id the search responses name (``segstore.rest.search_phase.node_id``)."""
    try:
        from segstore.rest.search_phase import node_id as search_node_id  # noqa: PLC0415
    except ImportError:  # pragma: no cover - same formula
        return base64.urlsafe_b64encode(hashlib.sha1(node.data_dir.encode()).digest()).decode("ascii")[:22]
    return str(search_node_id(node))


def _percentage(kb: int, capacity_kb: int) -> float:
    """``100 * size / (float) cbLimit`` in float32, shown as its shortest decimal."""
    if capacity_kb <= 0:
        return 0.0
    return float(np.format_float_positional(np.float32(100.0) * np.float32(kb) / np.float32(capacity_kb),
                                            unique=True, trim="0"))


# ------------------------------------------------------------------------------------------------ stats


def _requested_stats(req: RestRequest) -> set[str]:
    text = req.path_params.get("stat") or ""
    names = {s for s in text.split(",") if s} if text else set()
    if not names or names == {"_all"}:
        return set(_ALL_STATS)
    if "_all" in names:
        raise IllegalArgumentError(f"Request {req.path} contains _all and individual stats")
    valid = {s for s in names if s in _ALL_STATS}
    invalid = names - valid
    if invalid:
        raise IllegalArgumentError(unrecognized(req.path, invalid, valid, "stat"))
    return valid


def _node_matches(node: Node, expr: str | None) -> bool:
    """``DiscoveryNodes#resolveNodes`` for a one-node cluster: ``_all``, ``_local``, ``_cluster_manager``
    / ``_master``, the node id or name, wildcards over both; anything else matches no node."""
    if not expr:
        return True
    nid = node_id(node)
    for part in (p.strip() for p in expr.split(",")):
        if part in ("_all", "_local", "_cluster_manager", "_master", "*", nid, NODE_NAME):
            return True
        if ("*" in part or "?" in part) and (fnmatch.fnmatchcase(nid, part) or fnmatch.fnmatchcase(NODE_NAME, part)):
            return True
        if part in ("cluster_manager:true", "master:true", "data:true", "ingest:true"):
            return True
    return False


def node_stats(node: Node, wanted: set[str] | None = None) -> dict[str, Any]:
    """The node-level stats (all of them, or those in ``wanted``), memory computed now."""
    wanted = set(NODE_STATS) if wanted is None else wanted
    capacity_kb = qmem.default_capacity_bytes() // 1024
    per_index = qmem.node_memory(node)
    total_kb = 0
    indices: dict[str, Any] = {}
    for index, fields in per_index.items():
        kb = sum(f.total_kb for f in fields.values())
        count = sum(f.graph_count for f in fields.values())
        total_kb += kb
        if kb == 0 and count == 0:
            continue  # nothing of this index is in memory: upstream lists only indices in the cache
        indices[index] = {
            "graph_memory_usage": kb,
            "graph_memory_usage_percentage": _percentage(kb, capacity_kb),
            "graph_count": count,
            "segstore_fields": {name: {
                "graph_memory_usage": f.total_kb,
                "graph_memory_usage_in_bytes": f.graph_bytes,
                "quantized_memory_usage_in_bytes": f.quantized_bytes,
                "total_memory_usage_in_bytes": f.total_bytes,
                "graph_count": f.graph_count,
                "graphs_on_disk": f.graphs_total,
                "quantized_segments": f.quantized_segments,
                "segments": f.segments,
                "vectors": f.vectors,
                "bytes_per_vector": round(f.total_bytes / f.vectors, 2) if f.vectors else 0.0,
                "dimension": f.dimension,
                "encoding": f.encoding,
                "compression_level": f.compression_level,
                "mode": f.mode,
            } for name, f in sorted(fields.items())},
        }
    counters = qmem.CACHE_STATS.snapshot()
    values: dict[str, Any] = {name: 0 for name in _COUNTERS}
    values.update(counters)
    values.update({
        "graph_memory_usage": total_kb,
        "graph_memory_usage_percentage": _percentage(total_kb, capacity_kb),
        "indices_in_cache": indices,
        "cache_capacity_reached": total_kb > capacity_kb,
        "faiss_initialized": True, "nmslib_initialized": False, "lucene_initialized": True,
        "indexing_from_model_degraded": False,
        "training_memory_usage": 0, "training_memory_usage_percentage": 0.0,
        "graph_stats": {"refresh": {"total_operations": 0, "total_time_in_millis": 0, "total_docs": 0,
                                    "current_operations": 0, "current_docs": 0, "current_size_in_bytes": 0},
                        "merge": {"total_operations": 0, "total_time_in_millis": 0, "total_docs": 0,
                                  "total_size_in_bytes": 0, "current_operations": 0, "current_docs": 0,
                                  "current_size_in_bytes": 0}},
    })
    return {k: values[k] for k in NODE_STATS if k in wanted}


def stats_body(node: Node, node_expr: str | None, wanted: set[str]) -> dict[str, Any]:
    matched = _node_matches(node, node_expr)
    n = 1 if matched else 0
    body: dict[str, Any] = {"_nodes": {"total": n, "successful": n, "failed": 0}, "cluster_name": CLUSTER_NAME}
    capacity_kb = qmem.default_capacity_bytes() // 1024
    for name in CLUSTER_STATS:
        if name not in wanted:
            continue
        if name == "circuit_breaker_triggered":
            total_kb = sum(f.total_kb for fields in qmem.node_memory(node).values() for f in fields.values())
            body[name] = total_kb > capacity_kb
        else:
            body[name] = None  # ModelDao#getHealthStatus: null while the model system index does not exist
    body["nodes"] = {node_id(node): node_stats(node, wanted)} if matched else {}
    return body


def stats(node: Node, req: RestRequest) -> RestResponse:
    wanted = _requested_stats(req)
    return RestResponse(200, stats_body(node, req.path_params.get("nodeId"), wanted))


# ----------------------------------------------------------------------------------------------- warmup


class KNNInvalidIndicesError(ValidationError):
    """``KNNInvalidIndicesException``: a ``RuntimeException`` upstream, so the REST layer answers 500."""

    error_type = "k_n_n_invalid_indices_exception"
    status = 500

    def __init__(self, invalid: list[str], message: str) -> None:
        super().__init__(message)
        self.invalid_indices = invalid


def _resolve_indices(node: Node, expr: str | None) -> list[str]:
    """``IndexNameExpressionResolver#concreteIndices`` with ``strictExpandOpen``: names must exist,
    wildcards expand over open indices (no match is fine), ``_all`` / ``*`` / empty = every index."""
    names = node.index_names()
    if not expr or expr in ("_all", "*"):
        return names
    out: list[str] = []
    for part in (p.strip() for p in expr.split(",")):
        if not part:
            continue
        if "*" in part:
            out.extend(n for n in names if fnmatch.fnmatchcase(n, part) and n not in out)
        elif part in names:
            if part not in out:
                out.append(part)
        else:
            raise IndexNotFoundError(part)
    return out


def warmup(node: Node, req: RestRequest) -> RestResponse:
    names = _resolve_indices(node, req.path_params.get("target"))
    writers = {n: node.writer(n) for n in names}
    invalid = [n for n, w in writers.items() if not w.settings.knn]
    if invalid:
        raise KNNInvalidIndicesError(invalid, "Warm up request rejected. One or more indices have 'index.knn' "
                                              "set to false.")
    total = successful = 0
    for w in writers.values():
        shards = int(w.settings.get("index.number_of_shards") or 1)
        replicas = int(w.settings.get("index.number_of_replicas") or 0)
        total += shards * (1 + replicas)
        qmem.warmup_writer(w)
        successful += shards
    return RestResponse(200, {"_shards": {"total": total, "successful": successful, "failed": 0}})


# --------------------------------------------------------------------------------------------- routes


def register(r: Any) -> None:
    """Add the routes to the router ``r``. Static segments are registered first so that, among routes of
    equal specificity, ``warmup/{index}`` and ``stats/{stat}`` win over ``{nodeId}/stats`` as OpenSearch's
    path trie (static before wildcard at the same depth) decides."""
    for base in BASES:
        r.add("GET", f"{base}/warmup/{{target}}", warmup)
        r.add("GET", f"{base}/stats", stats, "timeout")
        r.add("GET", f"{base}/stats/{{stat}}", stats, "timeout")
        r.add("GET", f"{base}/{{nodeId}}/stats", stats, "timeout")
        r.add("GET", f"{base}/{{nodeId}}/stats/{{stat}}", stats, "timeout")
