"""Document endpoints: index / create / get / delete (update: ``handlers_update``, mget: ``handlers_mget``,
bulk: ``bulk``).

Every request parameter is parsed and every ``ActionRequest#validate`` rule is checked before the writer
is touched, so a rejected request writes nothing (an invalid ``refresh`` value included).
"""

from __future__ import annotations

import base64
import os
from typing import Any

from segstore.errors import (
    IllegalArgumentError,
    IndexNotFoundError,
    MapperParsingError,
    ParseError,
    RoutingMissingError,
    SegstoreError,
    ValidationError,
)
from segstore.index.index_writer import IndexWriter
from segstore.index.operations import GetResult, OpResult
from segstore.node import Node
from segstore.rest.response import RestRequest, RestResponse
from segstore.rest.router import JsonSyntaxError, Router, parse_json
from segstore.rest.validation import (
    cas_messages,
    cas_params,
    external_version,
    id_messages,
    long_param,
    read_conflict,
    read_version,
    refresh_policy,
    validation_error,
    version_messages,
    with_shard,
)
from segstore.search.searcher import IndexSearcher
from segstore.search.source_filter import SourceFilter, parse_source_param

__all__ = ["register", "auto_id", "writer_for_write", "op_json", "apply_refresh", "get_result", "get_json",
           "fetch_source_requested", "require_routing"]

_SHARDS = {"total": 2, "successful": 1, "failed": 0}
_INDEX_PARAMS = "refresh routing timeout version version_type if_seq_no if_primary_term pipeline op_type " \
                "require_alias wait_for_active_shards"
_DELETE_PARAMS = "refresh routing timeout version version_type if_seq_no if_primary_term wait_for_active_shards"
_GET_PARAMS = "_source _source_includes _source_excludes realtime refresh routing preference stored_fields version " \
              "version_type"


def auto_id() -> str:
    """A 20-character URL-safe random id, the shape of OpenSearch's auto-generated ids."""
    return base64.urlsafe_b64encode(os.urandom(15)).decode("ascii")


def writer_for_write(node: Node, name: str) -> IndexWriter:
    """The index's writer; a missing index is created with default settings (``action.auto_create_index``)."""
    try:
        return node.writer(name)
    except IndexNotFoundError:
        from segstore.node import validate_index_name  # noqa: PLC0415

        validate_index_name(name)
        try:
            return node.create_index(name, None, None)
        except SegstoreError:
            return node.writer(name)


def require_routing(w: IndexWriter, index: str, doc_id: str, routing: str | None) -> None:
    """A mapping with ``_routing.required`` rejects a write or a GET that names no routing (OpenSearch checks it
    on the coordinating node, before the shard: ``RoutingMissingException``, 400)."""
    if routing is None and w.mappings.routing_required:
        raise RoutingMissingError(index, doc_id)


def op_json(index: str, res: OpResult, forced_refresh: bool = False) -> dict[str, Any]:
    """``DocWriteResponse``: ``forced_refresh`` (only when true) sits between ``result`` and ``_shards``."""
    out: dict[str, Any] = {"_index": index, "_id": res.doc_id, "_version": res.version, "result": res.result}
    if forced_refresh:
        out["forced_refresh"] = True
    out.update({"_shards": dict(_SHARDS), "_seq_no": res.seq_no, "_primary_term": res.primary_term})
    return out


def apply_refresh(w: IndexWriter, policy: str) -> bool:
    """Refresh per the validated policy; returns ``forced_refresh`` (``true`` only, not ``wait_for``)."""
    if policy == "false":
        return False
    w.refresh()
    return policy == "true"


# ------------------------------------------------------------------------------------------------ index


def _require_body(req: RestRequest) -> None:
    """``RestRequest#requiredContent``: only presence is checked here; the document is parsed later."""
    body = req.body
    if body is None or (isinstance(body, (str, bytes, bytearray)) and not body.strip()):
        raise ParseError("request body is required")


def _source_body(req: RestRequest) -> Any:
    """The document; unparsable JSON fails the document parse (``mapper_parsing_exception``)."""
    try:
        return parse_json(req.body)
    except JsonSyntaxError as e:
        raise MapperParsingError("failed to parse", caused_by=e.as_cause()) from None


def _index(node: Node, req: RestRequest, op_type: str) -> RestResponse:
    """``RestIndexAction#prepareRequest`` order: body, refresh, versioning, CAS, op_type; then validate."""
    name = req.path_params["index"]
    doc_id = req.path_params.get("id")
    _require_body(req)
    policy = refresh_policy(req)
    if_seq_no, if_primary_term = cas_params(req)
    param_op = req.param("op_type")
    if param_op is not None and op_type == "create" and param_op != "create":  # CreateHandler#validateOpType
        raise IllegalArgumentError(f"opType must be 'create', found: [{param_op}]")
    if param_op is not None and param_op not in ("index", "create"):
        raise IllegalArgumentError(f"opType must be 'create' or 'index', found: [{param_op}]")
    if param_op is not None:
        op_type = param_op
    elif doc_id is None:
        op_type = "create"  # AutoIdHandler defaults op_type to create
    msgs = []
    if op_type == "create" and (if_seq_no is not None or if_primary_term is not None):
        msgs.append("create operations do not support compare and set. use index instead")
    version, version_type = long_param(req, "version"), req.param("version_type")
    msgs += version_messages(version, version_type, if_seq_no=if_seq_no, create=op_type == "create")
    msgs += cas_messages(if_seq_no, if_primary_term) + id_messages(doc_id)
    if msgs:
        raise validation_error(msgs)
    version, version_type = external_version(version, version_type)
    source = _source_body(req)
    w = writer_for_write(node, name)
    doc_id = doc_id or auto_id()
    routing = req.param("routing")
    require_routing(w, name, doc_id, routing)
    try:
        res = w.index(doc_id, source, op_type=op_type, if_seq_no=if_seq_no, if_primary_term=if_primary_term,
                      routing=routing, version=version, version_type=version_type)
    except SegstoreError as e:
        raise with_shard(e, name, w.uuid) from None
    forced = apply_refresh(w, policy)
    return RestResponse(res.status, op_json(name, res, forced))


def index_doc(node: Node, req: RestRequest) -> RestResponse:
    return _index(node, req, "index")


def create_doc(node: Node, req: RestRequest) -> RestResponse:
    return _index(node, req, "create")


# ------------------------------------------------------------------------------------------------ get


def get_result(node: Node, name: str, doc_id: str, *, realtime: bool = True, refresh: bool = False
               ) -> GetResult | None:
    """A realtime GET (the writer's buffer included), or with ``realtime=false`` the document as the last
    refreshed reader sees it (OpenSearch reads from the searcher then)."""
    w = node.writer(name)
    if refresh:
        w.refresh()
    if realtime:
        return w.get(doc_id)
    reader = w.acquire_reader()
    try:
        s = IndexSearcher(name, reader, w.mappings, w.settings)
        _, hits = s.hits(s.parse({"ids": {"values": [doc_id]}}))
        if not hits:
            return None
        _, leaf_i, doc = hits[0]
        leaf = reader.leaves[leaf_i]
        rec = leaf.stored_document(doc)
        return GetResult.from_record(doc_id, rec, leaf.source(doc, rec))
    finally:
        reader.close()


def get_json(name: str, doc_id: str, got: GetResult | None, sf: SourceFilter) -> dict[str, Any]:
    if got is None:
        return {"_index": name, "_id": doc_id, "found": False}
    body: dict[str, Any] = {"_index": name, "_id": doc_id, "_version": got.version, "_seq_no": got.seq_no,
                            "_primary_term": got.primary_term}
    if got.routing is not None:  # a meta field: between the term and ``found`` (GetResult#toXContentEmbedded)
        body["_routing"] = got.routing
    body["found"] = True
    if sf.fetch and got.source is not None:
        body["_source"] = sf.apply(got.source)
    return body


def fetch_source_requested(req: RestRequest) -> bool:
    """``FetchSourceContext#parseFromRestRequest`` returns a context (any ``_source*`` parameter given)."""
    return any(req.param(p) is not None for p in ("_source", "_source_includes", "_source_excludes"))


def _url_source_filter(req: RestRequest) -> SourceFilter:
    if req.param("stored_fields") and not fetch_source_requested(req):
        return SourceFilter(fetch=False)  # stored_fields without _source: no _source (ShardGetService)
    return parse_source_param(req.param("_source"), req.param("_source_includes"), req.param("_source_excludes"))


def get_doc(node: Node, req: RestRequest) -> RestResponse:
    name, doc_id = req.path_params["index"], req.path_params["id"]
    sf = _url_source_filter(req)
    expected = read_version(req)
    require_routing(node.writer(name), name, doc_id, req.param("routing"))
    got = get_result(node, name, doc_id, realtime=req.bool_param("realtime", True), refresh=req.bool_param("refresh"))
    if got is not None and expected is not None and got.version != expected:
        raise with_shard(read_conflict(doc_id, got.version, expected), name, node.writer(name).uuid)
    body = get_json(name, doc_id, got, sf)
    return RestResponse(200 if got is not None else 404, body)


# ------------------------------------------------------------------------------------------------ delete


def delete_doc(node: Node, req: RestRequest) -> RestResponse:
    name, doc_id = req.path_params["index"], req.path_params["id"]
    policy = refresh_policy(req)
    if_seq_no, if_primary_term = cas_params(req)
    version, version_type = long_param(req, "version"), req.param("version_type")
    msgs = version_messages(version, version_type, if_seq_no=if_seq_no)
    msgs += cas_messages(if_seq_no, if_primary_term) + id_messages(doc_id)
    if msgs:
        raise validation_error(msgs)
    version, version_type = external_version(version, version_type)
    w = node.writer(name)
    require_routing(w, name, doc_id, req.param("routing"))
    try:
        res = w.delete(doc_id, if_seq_no=if_seq_no, if_primary_term=if_primary_term, version=version,
                       version_type=version_type)
    except SegstoreError as e:
        raise with_shard(e, name, w.uuid) from None
    forced = apply_refresh(w, policy)
    return RestResponse(res.status, op_json(name, res, forced))


def _head_doc(node: Node, req: RestRequest) -> RestResponse:
    try:
        return RestResponse(get_doc(node, req).status, None)
    except ValidationError as e:
        return RestResponse(e.status, None)


def register(r: Router) -> None:
    for m in ("PUT", "POST"):
        r.add(m, "/{index}/_doc/{id}", index_doc, _INDEX_PARAMS)
        r.add(m, "/{index}/_create/{id}", create_doc, _INDEX_PARAMS)
    r.add("POST", "/{index}/_doc", index_doc, _INDEX_PARAMS)
    r.add("GET", "/{index}/_doc/{id}", get_doc, _GET_PARAMS)
    r.add("HEAD", "/{index}/_doc/{id}", _head_doc, _GET_PARAMS)
    r.add("DELETE", "/{index}/_doc/{id}", delete_doc, _DELETE_PARAMS)
    from segstore.rest import bulk, handlers_mget, handlers_update  # noqa: PLC0415

    handlers_update.register(r)
    handlers_mget.register(r)
    bulk.register(r)
