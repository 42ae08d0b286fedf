"""Document endpoints: index / create / get / delete / update / mget / bulk."""

from __future__ import annotations

import base64
import copy
import json
import os
from typing import Any

from segstore.errors import (DocumentMissingError, IllegalArgumentError, IndexNotFoundError, MapperParsingError,
                             SegstoreError, ValidationError)
from segstore.index.index_writer import IndexWriter
from segstore.index.operations import OpResult
from segstore.node import Node
from segstore.rest.response import RestRequest, RestResponse, error_response
from segstore.rest.router import Router, json_body
from segstore.search.source_filter import parse_source_param

__all__ = ["register", "auto_id", "writer_for_write", "op_json", "merge_update"]

_WRITE_PARAMS = "refresh routing timeout version version_type if_seq_no if_primary_term pipeline op_type " \
                "require_alias wait_for_active_shards"
_SHARDS = {"total": 2, "successful": 1, "failed": 0}


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


def op_json(index: str, res: OpResult) -> dict[str, Any]:
    return {"_index": index, "_id": res.doc_id, "_version": res.version, "result": res.result,
            "_shards": dict(_SHARDS), "_seq_no": res.seq_no, "_primary_term": res.primary_term}


def _refresh_after(w: IndexWriter, req: RestRequest, body: dict[str, Any]) -> None:
    mode = req.param("refresh", "false")
    if mode not in ("true", "false", "wait_for", ""):
        raise IllegalArgumentError(f"Unknown value for refresh: [{mode}].")
    if mode in ("true", "", "wait_for"):
        w.refresh()
        if mode != "wait_for":
            body["forced_refresh"] = True


def _source_body(req: RestRequest) -> Any:
    try:
        return json_body(req, required=True)
    except ValidationError as e:
        raise MapperParsingError("failed to parse", caused_by=ValidationError(e.message, "json_parse_exception")
                                 ) from None


def _int_param(req: RestRequest, name: str) -> int | None:
    v = req.param(name)
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        raise IllegalArgumentError(f"Failed to parse int parameter [{name}] with value [{v}]") from None


def index_doc(node: Node, req: RestRequest) -> RestResponse:
    name = req.path_params["index"]
    doc_id = req.path_params.get("id") or auto_id()
    op_type = "create" if req.path.rstrip("/").split("/")[-2] == "_create" else req.param("op_type", "index")
    if op_type not in ("index", "create"):
        raise IllegalArgumentError(f"opType must be 'create' or 'index', found: [{op_type}]")
    if "id" not in req.path_params:
        op_type = "create"
    source = _source_body(req)
    w = writer_for_write(node, name)
    res = w.index(doc_id, source, op_type=op_type, if_seq_no=_int_param(req, "if_seq_no"),
                  if_primary_term=_int_param(req, "if_primary_term"))
    body = op_json(name, res)
    _refresh_after(w, req, body)
    return RestResponse(res.status, body)


def get_doc(node: Node, req: RestRequest) -> RestResponse:
    name, doc_id = req.path_params["index"], req.path_params["id"]
    w = node.writer(name)
    got = w.get(doc_id)
    if got is None:
        return RestResponse(404, {"_index": name, "_id": doc_id, "found": False})
    body: dict[str, Any] = {"_index": name, "_id": doc_id, "_version": got.version, "_seq_no": got.seq_no,
                            "_primary_term": got.primary_term, "found": True}
    sf = parse_source_param(req.param("_source"), req.param("_source_includes"), req.param("_source_excludes"))
    if sf.fetch and got.source is not None:
        body["_source"] = sf.apply(got.source)
    return RestResponse(200, body)


def delete_doc(node: Node, req: RestRequest) -> RestResponse:
    name, doc_id = req.path_params["index"], req.path_params["id"]
    w = node.writer(name)
    res = w.delete(doc_id, if_seq_no=_int_param(req, "if_seq_no"), if_primary_term=_int_param(req, "if_primary_term"))
    body = op_json(name, res)
    _refresh_after(w, req, body)
    return RestResponse(res.status, body)


def merge_update(base: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """OpenSearch's partial update: maps merge recursively, every other value is replaced."""
    out = dict(base)
    for k, v in doc.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_update(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_update(w: IndexWriter, name: str, doc_id: str, body: Any) -> tuple[int, dict[str, Any]]:
    if not isinstance(body, dict):
        raise IllegalArgumentError("Validation Failed: 1: script or doc is missing;")
    for key in body:
        if key not in ("doc", "upsert", "doc_as_upsert", "detect_noop", "_source", "scripted_upsert"):
            raise IllegalArgumentError(f"[UpdateRequest] unknown field [{key}]")
    doc = body.get("doc")
    if doc is None:
        raise IllegalArgumentError("Validation Failed: 1: script or doc is missing;")
    cur = w.get(doc_id)
    if cur is None:
        if body.get("doc_as_upsert"):
            new = doc
        elif body.get("upsert") is not None:
            new = body["upsert"]
        else:
            e = DocumentMissingError(f"[{doc_id}]: document missing")
            e.extra = {"index": name, "shard": "0", "index_uuid": w.uuid.hex()}  # type: ignore[attr-defined]
            raise e
        res = w.index(doc_id, new, op_type="create")
        return res.status, op_json(name, res)
    new = merge_update(cur.source or {}, doc)
    if body.get("detect_noop", True) and new == cur.source:
        return 200, {"_index": name, "_id": doc_id, "_version": cur.version, "result": "noop",
                     "_shards": {"total": 0, "successful": 0, "failed": 0}, "_seq_no": cur.seq_no,
                     "_primary_term": cur.primary_term}
    res = w.index(doc_id, new, if_seq_no=cur.seq_no, if_primary_term=cur.primary_term)
    return 200, op_json(name, res)


def update_doc(node: Node, req: RestRequest) -> RestResponse:
    name, doc_id = req.path_params["index"], req.path_params["id"]
    body = json_body(req, required=True)
    w = writer_for_write(node, name) if isinstance(body, dict) and (body.get("doc_as_upsert") or "upsert" in body) \
        else node.writer(name)
    status, out = apply_update(w, name, doc_id, body)
    _refresh_after(w, req, out)
    return RestResponse(status, out)


def mget(node: Node, req: RestRequest) -> RestResponse:
    body = json_body(req, required=True)
    default = req.path_params.get("index")
    if "ids" in body:
        specs = [{"_id": i} for i in body["ids"]]
    elif "docs" in body:
        specs = body["docs"]
    else:
        raise IllegalArgumentError("unknown key [" + next(iter(body), "") + "] for a START_OBJECT, expected [docs] or [ids]")
    docs = []
    for spec in specs:
        name = spec.get("_index", default)
        if name is None:
            raise IllegalArgumentError("Validation Failed: 1: index is missing for doc 0;")
        sub = RestRequest("GET", "", dict(req.params), None, path_params={"index": name, "id": str(spec["_id"])})
        if "_source" in spec:
            sub.params["_source"] = json.dumps(spec["_source"]) if not isinstance(spec["_source"], (bool, str)) \
                else str(spec["_source"]).lower()
            if isinstance(spec["_source"], (list, dict)):
                sf = spec["_source"]
                sub.params["_source"] = ",".join(sf) if isinstance(sf, list) else "true"
        try:
            docs.append(get_doc(node, sub).body)
        except SegstoreError as e:
            err = error_response(e).body["error"]
            docs.append({"_index": name, "_id": spec["_id"], "error": err})
    return RestResponse(200, {"docs": docs})


def register(r: Router) -> None:
    for m in ("PUT", "POST"):
        r.add(m, "/{index}/_doc/{id}", index_doc, _WRITE_PARAMS)
        r.add(m, "/{index}/_create/{id}", index_doc, _WRITE_PARAMS)
    r.add("POST", "/{index}/_doc", index_doc, _WRITE_PARAMS)
    get_params = "_source _source_includes _source_excludes realtime refresh routing preference stored_fields version version_type"
    r.add("GET", "/{index}/_doc/{id}", get_doc, get_params)
    r.add("HEAD", "/{index}/_doc/{id}", lambda n, q: RestResponse(get_doc(n, q).status, None), get_params)
    r.add("DELETE", "/{index}/_doc/{id}", delete_doc, _WRITE_PARAMS)
    r.add("POST", "/{index}/_update/{id}", update_doc,
          _WRITE_PARAMS + " retry_on_conflict lang _source _source_includes _source_excludes")
    for m in ("GET", "POST"):
        for path in ("/_mget", "/{index}/_mget"):
            r.add(m, path, mget, "_source _source_includes _source_excludes realtime refresh routing preference stored_fields")
    from segstore.rest.bulk import bulk  # noqa: PLC0415

    for m in ("POST", "PUT"):
        for path in ("/_bulk", "/{index}/_bulk"):
            r.add(m, path, bulk, "refresh routing timeout pipeline _source _source_includes _source_excludes "
                  "require_alias wait_for_active_shards")
