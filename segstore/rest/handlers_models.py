"""k-NN model endpoints (vector-semantics.md §5.1): train, get, delete and search models.

``register(r)`` adds the routes to a :class:`~segstore.rest.router.Router`; ``filter_path`` (e.g. the seed's
``GET _plugins/_knn/models/<id>?filter_path=state``) is applied by the router for every route.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from segstore.errors import IllegalArgumentError, ParseError
from segstore.models.registry import (
    MODELS_INDEX,
    ModelNotFoundError,
    model_response,
    registry_for,
)
from segstore.models.train_request import parse_train_request
from segstore.models.training import start_training
from segstore.rest.response import RestRequest, RestResponse

__all__ = ["register", "search_models"]

_BASE = "/_plugins/_knn/models"
_SEARCH_PARAMS = ("size from q _source _source_includes _source_excludes sort track_total_hits version "
                  "seq_no_primary_term typed_keys allow_no_indices ignore_unavailable search_type")


def _body(req: RestRequest) -> Any:
    from segstore.rest.router import json_body

    return json_body(req)


def train_model(node: Any, req: RestRequest) -> RestResponse:
    registry = registry_for(node)
    train = parse_train_request(_body(req), req.path_params.get("model_id"), req.param("preference"))
    model_id = start_training(node, registry, train)
    return RestResponse(200, {"model_id": model_id})


def get_model(node: Any, req: RestRequest) -> RestResponse:
    model_id = req.path_params["model_id"]
    record = registry_for(node).get(model_id)
    if record is None:
        raise ModelNotFoundError(f'Model " {model_id} " does not exist')
    return RestResponse(200, model_response(record))


def delete_model(node: Any, req: RestRequest) -> RestResponse:
    model_id = req.path_params["model_id"]
    registry_for(node).delete(model_id)
    return RestResponse(200, {"model_id": model_id, "result": "deleted"})


# ---------------------------------------------------------------------------------------------- search


def _value(source: Mapping[str, Any], path: str) -> Any:
    node: Any = source
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _term_value(spec: Any) -> Any:
    return spec.get("value") if isinstance(spec, Mapping) else spec


def _matches(query: Any, source: Mapping[str, Any]) -> bool:
    """The query subset model search supports: match_all, match_none, term, terms, ids, match (exact), bool."""
    if not isinstance(query, Mapping) or len(query) != 1:
        raise ParseError("[_na] query malformed, must start with start_object")
    kind, spec = next(iter(query.items()))
    if kind == "match_all":
        return True
    if kind == "match_none":
        return False
    if kind in ("term", "match"):
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise ParseError(f"[{kind}] query doesn't support multiple fields")
        path, want = next(iter(spec.items()))
        want = spec[path].get("query", want) if kind == "match" and isinstance(spec[path], Mapping) else want
        have = source.get("model_id") if path == "_id" else _value(source, path)
        want = _term_value(want)
        return have == want or (isinstance(have, str) and isinstance(want, str) and have.lower() == want.lower()
                                and path in ("state", "engine", "space_type", "data_type"))
    if kind == "terms":
        (path, wants), = ((k, v) for k, v in spec.items() if k != "boost")
        have = source.get("model_id") if path == "_id" else _value(source, path)
        return have in list(wants)
    if kind == "ids":
        return source.get("model_id") in list(spec.get("values") or [])
    if kind == "bool":
        must = list(_as_list(spec.get("must"))) + list(_as_list(spec.get("filter")))
        should = list(_as_list(spec.get("should")))
        must_not = list(_as_list(spec.get("must_not")))
        if not all(_matches(q, source) for q in must) or any(_matches(q, source) for q in must_not):
            return False
        return not should or any(_matches(q, source) for q in should) or bool(must)
    raise IllegalArgumentError(f"segstore does not support the [{kind}] query in a model search")


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return list(v) if isinstance(v, list) else [v]


def search_models(records: list[dict[str, Any]], body: Any) -> dict[str, Any]:
    """A ``_search`` response over the model documents of ``.opensearch-knn-models``."""
    start = time.perf_counter()
    body = body or {}
    if not isinstance(body, Mapping):
        raise ParseError("request body must be an object")
    query = body.get("query", {"match_all": {}})
    size = int(body.get("size", 10))
    offset = int(body.get("from", 0))
    docs = [model_response(r) for r in sorted(records, key=lambda r: r["model_id"])]
    hits = [d for d in docs if _matches(query, d)]
    page = hits[offset : offset + size]
    source_spec = body.get("_source", True)
    out_hits = []
    for d in page:
        hit: dict[str, Any] = {"_index": MODELS_INDEX, "_id": d["model_id"], "_score": 1.0}
        if source_spec is not False:
            src = {k: v for k, v in d.items()}
            if isinstance(source_spec, Mapping):
                excludes = set(_as_list(source_spec.get("excludes")))
                includes = set(_as_list(source_spec.get("includes")))
                src = {k: v for k, v in src.items() if (not includes or k in includes) and k not in excludes}
            elif isinstance(source_spec, (list, str)):
                keep = set(_as_list(source_spec))
                src = {k: v for k, v in src.items() if k in keep}
            hit["_source"] = src
        out_hits.append(hit)
    return {
        "took": int((time.perf_counter() - start) * 1000), "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": len(hits), "relation": "eq"}, "max_score": 1.0 if page else None,
                 "hits": out_hits},
    }


def search_model_handler(node: Any, req: RestRequest) -> RestResponse:
    body = dict(_body(req) or {})
    for key in ("size", "from"):
        if req.param(key) is not None:
            body[key] = int(req.param(key) or 0)
    return RestResponse(200, search_models(registry_for(node).list(), body))


def register(r: Any) -> None:
    r.add("POST", f"{_BASE}/{{model_id}}/_train", train_model, "preference")
    r.add("POST", f"{_BASE}/_train", train_model, "preference")
    r.add("GET", f"{_BASE}/_search", search_model_handler, _SEARCH_PARAMS)
    r.add("POST", f"{_BASE}/_search", search_model_handler, _SEARCH_PARAMS)
    r.add("GET", f"{_BASE}/{{model_id}}", get_model)
    r.add("DELETE", f"{_BASE}/{{model_id}}", delete_model)
