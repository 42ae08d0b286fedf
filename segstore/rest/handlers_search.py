"""``_search``, ``_count`` and ``_reindex``."""

from __future__ import annotations

import time
from typing import Any

from segstore.errors import IllegalArgumentError
from segstore.index.operations import IndexOp
from segstore.node import Node
from segstore.rest.handlers_docs import writer_for_write
from segstore.rest.handlers_indices import targets
from segstore.rest.response import RestRequest, RestResponse
from segstore.rest.router import Router, json_body
from segstore.search.searcher import IndexSearcher
from segstore.search.source_filter import parse_source_param

__all__ = ["register"]

_SEARCH_PARAMS = ("size from _source _source_includes _source_excludes track_total_hits rest_total_hits_as_int "
                  "search_type typed_keys allow_partial_search_results request_cache preference routing "
                  "ignore_unavailable allow_no_indices expand_wildcards batched_reduce_size ccs_minimize_roundtrips "
                  "max_concurrent_shard_requests pre_filter_shard_size seq_no_primary_term version explain")


def _searchers(node: Node, expr: str | None) -> list[IndexSearcher]:
    out = []
    for name in targets(node, expr):
        w = node.writer(name)
        out.append(IndexSearcher(name, w.acquire_reader(), w.mappings, w.settings))
    return out


def search(node: Node, req: RestRequest) -> RestResponse:
    t0 = time.perf_counter()
    body = json_body(req) or {}
    if not isinstance(body, dict):
        raise IllegalArgumentError("request body must be a JSON object")
    size = int(req.param("size") or body.get("size", 10))
    start = int(req.param("from") or body.get("from", 0))
    if size < 0:
        raise IllegalArgumentError(f"[size] parameter cannot be negative, found [{size}]")
    if start < 0:
        raise IllegalArgumentError(f"[from] parameter cannot be negative, found [{start}]")
    sf = parse_source_param(body.get("_source", req.param("_source")), req.param("_source_includes"),
                            req.param("_source_excludes"))
    searchers = _searchers(node, req.path_params.get("index"))
    try:
        total = 0
        found: list[tuple[float, int, int, int]] = []
        knn_query = False
        for si, s in enumerate(searchers):
            pq = s.parse(body.get("query"))
            knn_query = pq.knn is not None
            n, hits = s.hits(pq)
            total += n
            found.extend((score, si, leaf, doc) for score, leaf, doc in hits)
        if knn_query:
            found.sort(key=lambda h: -h[0])  # stable: per-index order breaks ties
        page = found[start:start + size]
        hits_json = [searchers[si].hit_json(score, leaf, doc, sf) for score, si, leaf, doc in page]
        name = _query_name(body.get("query"))
        if name:
            for h in hits_json:
                h["matched_queries"] = [name]
        if req.bool_param("seq_no_primary_term") or body.get("seq_no_primary_term"):
            for h, (_, si, leaf, doc) in zip(hits_json, page):
                rec = searchers[si].reader.leaves[leaf].stored_document(doc)
                h["_seq_no"], h["_primary_term"] = rec["_seq_no"], 1
    finally:
        for s in searchers:
            s.reader.close()
    max_score = max((h["_score"] for h in hits_json), default=None)
    hits_total: Any = {"value": total, "relation": "eq"}
    if req.bool_param("rest_total_hits_as_int"):
        hits_total = total
    n = len(searchers)
    return RestResponse(200, {"took": int((time.perf_counter() - t0) * 1000), "timed_out": False,
                              "_shards": {"total": n, "successful": n, "skipped": 0, "failed": 0},
                              "hits": {"total": hits_total, "max_score": max_score, "hits": hits_json}})


def _query_name(query: Any) -> str | None:
    """The ``_name`` of a top-level knn query (reported per hit in ``matched_queries``)."""
    if isinstance(query, dict) and isinstance(query.get("knn"), dict) and len(query["knn"]) == 1:
        body = next(iter(query["knn"].values()))
        if isinstance(body, dict) and body.get("_name"):
            return str(body["_name"])
    return None


def count(node: Node, req: RestRequest) -> RestResponse:
    body = json_body(req) or {}
    searchers = _searchers(node, req.path_params.get("index"))
    try:
        total = sum(s.hits(s.parse(body.get("query")))[0] for s in searchers)
    finally:
        for s in searchers:
            s.reader.close()
    n = len(searchers)
    return RestResponse(200, {"count": total, "_shards": {"total": n, "successful": n, "skipped": 0, "failed": 0}})


def reindex(node: Node, req: RestRequest) -> RestResponse:
    """Local reindex: documents are read with their vectors injected and indexed into ``dest``."""
    t0 = time.perf_counter()
    body = json_body(req, required=True)
    src, dest = body.get("source") or {}, body.get("dest") or {}
    if not src.get("index") or not dest.get("index"):
        raise IllegalArgumentError("Validation Failed: 1: use _reindex API with source and dest index;")
    if "remote" in src:
        raise IllegalArgumentError("segstore reindexes local indices only: [source.remote] is not supported")
    max_docs = body.get("max_docs", body.get("size"))
    op_type = dest.get("op_type", "index")
    sf = parse_source_param(src.get("_source"))
    searchers = _searchers(node, src["index"] if isinstance(src["index"], str) else ",".join(src["index"]))
    w = writer_for_write(node, dest["index"])
    created = updated = conflicts = batches = 0
    failures: list[dict[str, Any]] = []
    try:
        ops: list[IndexOp] = []

        def flush_ops() -> None:
            nonlocal created, updated, conflicts, batches
            if not ops:
                return
            batches += 1
            for op, res in zip(ops, w.bulk(ops)):
                if getattr(res, "result", None) == "created":
                    created += 1
                elif getattr(res, "result", None) == "updated":
                    updated += 1
                elif getattr(res, "error_type", "") == "version_conflict_engine_exception":
                    conflicts += 1
                else:
                    failures.append({"index": dest["index"], "id": op.doc_id, "cause": {
                        "type": res.error_type, "reason": res.message}, "status": res.status})  # type: ignore[union-attr]
            ops.clear()

        done = 0
        for s in searchers:
            for _, leaf_i, doc in s.hits(s.parse(src.get("query")))[1]:
                if max_docs is not None and done >= int(max_docs):
                    break
                leaf = s.reader.leaves[leaf_i]
                rec = leaf.stored_document(doc)
                source = leaf.source(doc, rec)
                ops.append(IndexOp(rec["_id"], sf.apply(source or {}), op_type))
                done += 1
                if len(ops) >= 500:
                    flush_ops()
        flush_ops()
    finally:
        for s in searchers:
            s.reader.close()
    if req.param("refresh") in ("true", ""):
        w.refresh()
    return RestResponse(200, {"took": int((time.perf_counter() - t0) * 1000), "timed_out": False,
                              "total": created + updated + conflicts + len(failures), "updated": updated,
                              "created": created, "deleted": 0, "batches": batches, "version_conflicts": conflicts,
                              "noops": 0, "retries": {"bulk": 0, "search": 0}, "throttled_millis": 0,
                              "requests_per_second": -1.0, "throttled_until_millis": 0, "failures": failures})


def register(r: Router) -> None:
    for m in ("GET", "POST"):
        for path in ("/_search", "/{index}/_search"):
            r.add(m, path, search, _SEARCH_PARAMS)
        for path in ("/_count", "/{index}/_count"):
            r.add(m, path, count, "ignore_unavailable allow_no_indices expand_wildcards preference routing q "
                  "min_score terminate_after")
    r.add("POST", "/_reindex", reindex, "refresh timeout wait_for_completion requests_per_second slices max_docs "
          "scroll require_alias")
