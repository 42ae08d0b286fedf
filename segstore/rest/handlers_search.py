"""``_search``, ``_count`` and ``_reindex``."""

from __future__ import annotations

import time
from typing import Any


from segstore.errors import IllegalArgumentError, RoutingMissingError, ValidationError
from segstore.index.operations import IndexOp
from segstore.node import Node
from segstore.rest.handlers_docs import writer_for_write
from segstore.rest.handlers_indices import targets
from segstore.rest.response import RestRequest, RestResponse, render_error
from segstore.rest.router import Router, json_body
from segstore.rest.search_options import SortContext, render_total, track_total_hits
from segstore.rest.search_phase import Shard, run_query_phase, shards_json
from segstore.rest.validation import int_param, token_name
from segstore.search.aggregations import check_aggs, doc_sets, parse_aggs, run_aggs
from segstore.search.fetch_fields import parse_fields
from segstore.search.hit_list import ShardHits
from segstore.search.query_dsl import ParsedQuery, ParsingError, parse_query
from segstore.search.searcher import IndexSearcher
from segstore.search.sort import parse_sort
from segstore.search.source_filter import parse_source_param

__all__ = ["register"]

_SEARCH_PARAMS = ("size from sort track_scores _source _source_includes _source_excludes track_total_hits rest_total_hits_as_int "
                  "search_type typed_keys allow_partial_search_results request_cache preference routing "
                  "ignore_unavailable allow_no_indices expand_wildcards batched_reduce_size ccs_minimize_roundtrips "
                  "max_concurrent_shard_requests pre_filter_shard_size seq_no_primary_term version explain")


# SearchSourceBuilder#parseXContent: the keys it accepts, by the token their value starts with
_VALUE_KEYS = frozenset("from size timeout terminate_after min_score version seq_no_primary_term explain track_scores "
                        "track_total_hits _source stored_fields profile search_pipeline verbose_pipeline "
                        "include_named_queries_score".split())
_OBJECT_KEYS = frozenset("query post_filter _source script_fields indices_boost aggregations aggs highlight suggest "
                         "sort rescore ext slice collapse pit derived search_pipeline".split())
_ARRAY_KEYS = frozenset("docvalue_fields fields indices_boost sort rescore stats _source search_after "
                        "stored_fields".split())


def _searchers(node: Node, expr: str | None) -> list[Shard]:
    out = []
    for name in targets(node, expr):
        w = node.writer(name)
        out.append(Shard(IndexSearcher(name, w.acquire_reader(), w.mappings, w.settings), w.uuid.hex()))
    return out


def _check_search_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ParsingError(f"Expected [START_OBJECT] but found [{token_name(body)}]")
    for key, value in body.items():
        token = token_name(value)
        allowed = (_OBJECT_KEYS if token == "START_OBJECT" else _ARRAY_KEYS if token == "START_ARRAY"
                   else frozenset() if token == "VALUE_NULL" else _VALUE_KEYS)
        if key not in allowed:
            raise ParsingError(f"Unknown key for a {token} in [{key}].")
    return body


def _body_int(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.lstrip("+-").isdigit():
        return int(value)
    raise ValidationError(f'For input string: "{value}"', "number_format_exception")


def _parse_all(shards: list[Shard], query: Any) -> list[ParsedQuery]:
    """Parse errors fail the request (coordinator side); with no index the body is still validated."""
    if not shards:
        parse_query(query, set())
        return []
    return [s.searcher.parse(query) for s in shards]


def search(node: Node, req: RestRequest) -> RestResponse:
    t0 = time.perf_counter()
    body = _check_search_body(json_body(req) or {})
    size = int_param(req, "size")
    size = _body_int(body, "size", 10) if size is None else size
    start = int_param(req, "from")
    start = _body_int(body, "from", 0) if start is None else start
    if size < 0:
        raise IllegalArgumentError(f"[size] parameter cannot be negative, found [{size}]")
    if start < 0:
        raise IllegalArgumentError(f"[from] parameter cannot be negative, found [{start}]")
    sf = parse_source_param(body.get("_source", req.param("_source")), req.param("_source_includes"),
                            req.param("_source_excludes"))
    allow_partial = req.bool_param("allow_partial_search_results", True)
    if "aggs" in body and "aggregations" in body:
        raise ValidationError("Found two aggregation type definitions in [aggregations]: [aggs] and "
                              "[aggregations]", "parsing_exception")
    aggs = parse_aggs(body.get("aggs", body.get("aggregations")))
    track = track_total_hits(body, req)
    keys = parse_sort(body.get("sort"), req.param("sort"))
    search_after = body.get("search_after")
    if search_after is not None and not isinstance(search_after, list):
        search_after = [search_after]
    sorting = SortContext(keys or [], search_after, {})
    track_scores = req.bool_param("track_scores", bool(body.get("track_scores", False)))
    shards = _searchers(node, req.path_params.get("index"))

    def check(si: int, shard: Shard) -> None:
        check_aggs(aggs, shard.searcher.mappings)
        if keys is None and search_after is not None:
            raise IllegalArgumentError("Sort must contain at least one field.")
        if keys is not None:
            sorting.check(si, shard.searcher.mappings, start)

    sort_json: list[list[Any]] = []
    try:
        parsed = _parse_all(shards, body.get("query"))
        results, failures = run_query_phase(node, shards, parsed, start + size, allow_partial, check)
        total = sum(n for _, n, _ in results)
        aggregations = run_aggs(aggs, doc_sets([(shards[si].searcher.reader, hits) for si, _, hits in results])) \
            if aggs else None
        if keys is not None:
            found, columns = sorting.order({si: shards[si].searcher.reader for si, _, _ in results}, results)
            sort_json = sorting.values(columns, start, start + size)
            if not (track_scores or sorting.tracks_scores):  # a field sort computes no scores
                found = found.without_scores()
        elif any(parsed[si].knn is not None for si, _, _ in results):
            found = [(score, si, leaf, doc) for si, _, hits in results for score, leaf, doc in hits]
            found.sort(key=lambda h: -h[0])  # stable: per-index order breaks ties
        else:  # shard by shard in index order: only the page becomes Python objects
            found = ShardHits.concat([(si, hits) for si, _, hits in results])
        page = found[start:start + size]
        fields = parse_fields(body["fields"]) if body.get("fields") is not None else None
        hits_json = [shards[si].searcher.hit_json(score, leaf, doc, sf, fields) for score, si, leaf, doc in page]
        for h, values in zip(hits_json, sort_json):
            _insert_sort(h, values)
        name = _query_name(body.get("query"))
        if name:
            for h in hits_json:
                h["matched_queries"] = [name]
        if req.bool_param("seq_no_primary_term") or body.get("seq_no_primary_term"):
            for h, (_, si, leaf, doc) in zip(hits_json, page):
                rec = shards[si].searcher.reader.leaves[leaf].stored_document(doc)
                h["_seq_no"], h["_primary_term"] = rec["_seq_no"], 1
    finally:
        for s in shards:
            s.searcher.reader.close()
    # the top-docs collector's max score: over every collected hit, not the page; none when size is 0
    max_score = found.max_score() if isinstance(found, ShardHits) else \
        max((h[0] for h in found if h[0] is not None), default=None)
    max_score = max_score if size > 0 else None
    as_int = req.bool_param("rest_total_hits_as_int")
    hits_total = render_total(total, track, as_int)
    if as_int:
        for h in hits_json:  # the parameter renders every SearchHits, inner hits included
            for inner in h.get("inner_hits", {}).values():
                inner["hits"]["total"] = inner["hits"]["total"]["value"]
    hits: dict[str, Any] = {"max_score": max_score, "hits": hits_json}
    if hits_total is not None:
        hits = {"total": hits_total, **hits}
    out = {"took": int((time.perf_counter() - t0) * 1000), "timed_out": False,
           "_shards": shards_json(len(shards), failures), "hits": hits}
    if aggregations is not None:
        out["aggregations"] = aggregations
    return RestResponse(200, out)


def _insert_sort(hit: dict[str, Any], values: list[Any]) -> None:
    """``sort`` goes after ``_source`` / ``fields`` and before ``inner_hits`` (``SearchHit#toInnerXContent``)."""
    inner = hit.pop("inner_hits", None)
    hit["sort"] = values
    if inner is not None:
        hit["inner_hits"] = inner


def _query_name(query: Any) -> str | None:
    """The ``_name`` of a top-level knn query (reported per hit in ``matched_queries``)."""
    if isinstance(query, dict) and isinstance(query.get("knn"), dict) and len(query["knn"]) == 1:
        body = next(iter(query["knn"].values()))
        if isinstance(body, dict) and body.get("_name"):
            return str(body["_name"])
    return None


def count(node: Node, req: RestRequest) -> RestResponse:
    body = json_body(req) or {}
    if not isinstance(body, dict):
        raise ParsingError(f"Expected [START_OBJECT] but found [{token_name(body)}]")
    for key in body:  # RestActions#getQueryContent
        if key != "query":
            raise ParsingError(f"request does not support [{key}]")
    shards = _searchers(node, req.path_params.get("index"))
    try:
        parsed = _parse_all(shards, body.get("query"))
        results, failures = run_query_phase(node, shards, parsed, None)
    finally:
        for s in shards:
            s.searcher.reader.close()
    total = sum(n for _, n, _ in results)
    return RestResponse(200, {"count": total, "_shards": shards_json(len(shards), failures)})


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
    routing_spec = dest.get("routing", "keep")
    if not (routing_spec in ("keep", "discard") or str(routing_spec).startswith("=")):
        raise IllegalArgumentError("Unsupported routing command")
    refresh = req.bool_param("refresh")
    searchers = [s.searcher for s in _searchers(node, src["index"] if isinstance(src["index"], str)
                                                 else ",".join(src["index"]))]
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
                # dest.routing: "keep" the source document's routing (the default), "discard" it, or "=<value>"
                routing = (rec.get("_routing") if routing_spec == "keep" else None if routing_spec == "discard"
                           else str(routing_spec)[1:])
                if routing is None and w.mappings.routing_required:
                    e = RoutingMissingError(dest["index"], rec["_id"])
                    failures.append({"index": dest["index"], "id": rec["_id"], "cause": render_error(e),
                                     "status": e.status})
                else:
                    ops.append(IndexOp(rec["_id"], sf.apply(source or {}), op_type, routing=routing))
                done += 1
                if len(ops) >= 500:
                    flush_ops()
        flush_ops()
    finally:
        for s in searchers:
            s.reader.close()
    if refresh:
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
            r.add(m, path, count, "ignore_unavailable allow_no_indices expand_wildcards preference routing")
    r.add("POST", "/_reindex", reindex, "refresh timeout wait_for_completion requests_per_second slices max_docs "
          "scroll require_alias")
