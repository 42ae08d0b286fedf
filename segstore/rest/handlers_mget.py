"""``GET|POST [/{index}]/_mget``, parsed as ``MultiGetRequest#add`` and validated as ``MultiGetRequest#validate``.

Each document is fetched like a single GET (``realtime``, ``refresh``, source filtering); a document whose
index is missing, or whose version does not match, gets an ``error`` entry instead of failing the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from segstore.errors import IllegalArgumentError, ParseError, SegstoreError
from segstore.node import Node
from segstore.rest.handlers_docs import fetch_source_requested, get_json, get_result, require_routing
from segstore.rest.response import RestRequest, RestResponse, error_response
from segstore.rest.router import Router, json_body
from segstore.rest.validation import read_conflict, token_name, validation_error, with_shard
from segstore.search.query_dsl import ParsingError
from segstore.search.source_filter import SourceFilter, parse_source_param

__all__ = ["register", "mget"]

_PARAMS = "_source _source_includes _source_excludes realtime refresh routing preference stored_fields"


@dataclass
class _Item:
    index: str | None
    doc_id: str | None
    source: SourceFilter | None = None  # None: the URL's source parameters
    version: int | None = None
    routing: str | None = None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _doc_source(value: Any) -> SourceFilter:
    if isinstance(value, bool):
        return SourceFilter(fetch=value)
    if isinstance(value, str):
        return parse_source_param([value]) if value not in ("true", "false") else SourceFilter(fetch=value == "true")
    if isinstance(value, list):
        return parse_source_param([_text(v) for v in value])
    if isinstance(value, dict):
        for k in value:
            if k not in ("includes", "include", "excludes", "exclude"):
                raise ParseError(f"source definition may not contain [{k}]")
        return parse_source_param(value)
    raise ParseError(f"illegal type for _source: [{token_name(value)}]")


def _parse_doc(spec: Any, default_index: str | None) -> _Item:
    if not isinstance(spec, dict):
        raise IllegalArgumentError("docs array element should include an object")
    item = _Item(default_index, None)
    for key, value in spec.items():
        if value is None:
            continue
        if key == "fields":
            raise ParsingError("Unsupported field [fields] used, expected [stored_fields] instead")
        if isinstance(value, (list, dict)):
            if key == "_source":
                item.source = _doc_source(value)
            continue  # MultiGetRequest ignores other arrays and objects
        if key == "_index":
            item.index = _text(value)
        elif key == "_id":
            item.doc_id = _text(value)
        elif key == "_source":
            item.source = _doc_source(value)
        elif key == "version":
            if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).lstrip("-").isdigit():
                raise ParseError(f"failed to parse multi get request. illegal value for [version]: [{value}]")
            item.version = None if int(value) == -3 else int(value)
        elif key == "version_type":
            if value not in ("internal", "external", "external_gte"):
                raise IllegalArgumentError(f"No version type match [{value}]")
        elif key == "routing":
            item.routing = _text(value)
        elif key != "stored_fields":
            raise ParseError(f"failed to parse multi get request. unknown field [{key}]")
    return item


def parse_mget(body: Any, default_index: str | None) -> list[_Item]:
    if not isinstance(body, dict):
        raise ParsingError(f"unexpected token [{token_name(body)}], expected [START_OBJECT]")
    items: list[_Item] = []
    for key, value in body.items():
        if not isinstance(value, list):
            raise ParsingError(f"unexpected token [{token_name(value)}], expected [FIELD_NAME] or [START_ARRAY]")
        if key == "docs":
            items.extend(_parse_doc(spec, default_index) for spec in value)
        elif key == "ids":
            for v in value:
                if v is None or isinstance(v, (list, dict)):
                    raise IllegalArgumentError("ids array element should only contain ids")
                items.append(_Item(default_index, _text(v)))
        else:
            raise ParsingError(f"unknown key [{key}] for a START_ARRAY, expected [docs] or [ids]")
    msgs = [] if items else ["no documents to get"]
    for i, item in enumerate(items):
        if item.index is None:
            msgs.append(f"index is missing for doc {i}")
        if item.doc_id is None:
            msgs.append(f"id is missing for doc {i}")
    if msgs:
        raise validation_error(msgs)
    return items


def mget(node: Node, req: RestRequest) -> RestResponse:
    items = parse_mget(json_body(req, required=True), req.path_params.get("index"))
    url_source = parse_source_param(req.param("_source"), req.param("_source_includes"),
                                    req.param("_source_excludes"))
    if req.param("stored_fields") and not fetch_source_requested(req):
        url_source = SourceFilter(fetch=False)
    realtime, refresh = req.bool_param("realtime", True), req.bool_param("refresh")
    refreshed: set[str] = set()
    docs = []
    for item in items:
        name, doc_id = str(item.index), str(item.doc_id)
        try:
            require_routing(node.writer(name), name, doc_id,
                            item.routing if item.routing is not None else req.param("routing"))
            got = get_result(node, name, doc_id, realtime=realtime, refresh=refresh and name not in refreshed)
            refreshed.add(name)
            if got is not None and item.version is not None and got.version != item.version:
                raise with_shard(read_conflict(doc_id, got.version, item.version), name, node.writer(name).uuid)
            docs.append(get_json(name, doc_id, got, item.source or url_source))
        except SegstoreError as e:
            docs.append({"_index": name, "_id": doc_id, "error": error_response(e).body["error"]})
    return RestResponse(200, {"docs": docs})


def register(r: Router) -> None:
    for m in ("GET", "POST"):
        for path in ("/_mget", "/{index}/_mget"):
            r.add(m, path, mget, _PARAMS)
