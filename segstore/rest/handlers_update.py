"""``POST /{index}/_update/{id}``: partial updates (``doc``, ``doc_as_upsert``, ``upsert``), shared with bulk.

Follows OpenSearch's ``RestUpdateAction`` / ``UpdateRequest#validate`` / ``UpdateHelper``: the request is
validated before anything happens; a missing index is auto-created (as OpenSearch does, also when the
document then turns out to be missing); ``if_seq_no``/``if_primary_term`` are checked against the current
document; a ``_source`` fetch context adds the ``get`` section; ``retry_on_conflict`` retries the
read-merge-write cycle when a concurrent write got in between.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from segstore.errors import (DocumentMissingError, IllegalArgumentError, SegstoreError, ValidationError,
                             VersionConflictError)
from segstore.index.index_writer import IndexWriter
from segstore.node import Node
from segstore.rest.handlers_docs import (apply_refresh, fetch_source_requested, op_json, require_routing,
                                         writer_for_write)
from segstore.rest.response import RestRequest, RestResponse
from segstore.rest.router import Router, json_body
from segstore.rest.validation import (cas_messages, cas_params, id_messages, int_param, refresh_policy, token_name,
                                      validation_error, with_shard)
from segstore.search.source_filter import SourceFilter, parse_source_param

__all__ = ["register", "UpdateSpec", "parse_update_body", "update_messages", "apply_update", "merge_update",
           "with_forced_refresh"]

_FIELDS = ("doc", "upsert", "doc_as_upsert", "detect_noop", "_source", "scripted_upsert", "script")
_PARAMS = "refresh routing timeout wait_for_active_shards retry_on_conflict if_seq_no if_primary_term require_alias " \
          "version version_type _source _source_includes _source_excludes"


@dataclass
class UpdateSpec:
    doc: dict[str, Any] | None = None
    upsert: dict[str, Any] | None = None
    doc_as_upsert: bool = False
    detect_noop: bool = True
    fetch: SourceFilter | None = None  # a fetch context: the response gets a ``get`` section
    if_seq_no: int | None = None
    if_primary_term: int | None = None
    retry_on_conflict: int = 0
    routing: str | None = None  # None: an update keeps the document's routing (UpdateHelper#calculateRouting)


def _parse_error(msg: str) -> ValidationError:
    return ValidationError(f"[UpdateRequest] {msg}", "x_content_parse_exception")


def _bool_field(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise _parse_error(f"failed to parse field [{name}]")


def parse_update_body(body: Any, spec: UpdateSpec) -> UpdateSpec:
    """``UpdateRequest#fromXContent`` into ``spec`` (which holds the URL / bulk-metadata values)."""
    if body is None:
        return spec
    if not isinstance(body, dict):
        raise _parse_error(f"Expected START_OBJECT but was: {token_name(body)}")
    for key, value in body.items():
        if key not in _FIELDS:
            raise _parse_error(f"unknown field [{key}]")
        if key == "script":
            raise IllegalArgumentError("segstore does not support scripted updates: use [doc], [doc_as_upsert] or "
                                       "[upsert]")
        if key in ("doc", "upsert"):
            if value is not None and not isinstance(value, dict):
                raise _parse_error(f"failed to parse field [{key}]")
            setattr(spec, key, value)
        elif key in ("doc_as_upsert", "detect_noop"):
            setattr(spec, key, _bool_field(key, value))
        elif key == "_source":
            spec.fetch = parse_source_param(value)
        else:  # scripted_upsert: meaningful only with a script
            _bool_field(key, value)
    return spec


def update_messages(doc_id: str | None, spec: UpdateSpec) -> list[str]:
    """``UpdateRequest#validate``, in its order."""
    msgs = [] if doc_id else ["id is missing"]
    msgs += cas_messages(spec.if_seq_no, spec.if_primary_term)
    if spec.if_seq_no is not None:
        if spec.retry_on_conflict > 0:
            msgs.append("compare and write operations can not be retried")
        if spec.doc_as_upsert:
            msgs.append("compare and write operations can not be used with upsert")
        if spec.upsert is not None:
            msgs.append("upsert requests don't support `if_seq_no` and `if_primary_term`")
    if spec.doc is None:
        msgs.append("script or doc is missing")
        if spec.doc_as_upsert:
            msgs.append("doc must be specified if doc_as_upsert is enabled")
    return msgs + id_messages(doc_id)


def merge_update(base: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """OpenSearch's partial update: maps merge recursively, every other value is replaced."""
    out = dict(base)
    for k, v in doc.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_update(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _get_section(spec: UpdateSpec, seq_no: int, primary_term: int, source: dict[str, Any]) -> dict[str, Any] | None:
    if spec.fetch is None or not spec.fetch.fetch:
        return None
    return {"_seq_no": seq_no, "_primary_term": primary_term, "found": True, "_source": spec.fetch.apply(source)}


def _update_once(w: IndexWriter, name: str, doc_id: str, spec: UpdateSpec) -> tuple[int, dict[str, Any], bool]:
    cur = w.get(doc_id)
    if cur is None:
        new = spec.doc if spec.doc_as_upsert else spec.upsert
        if new is None:
            raise DocumentMissingError(f"[{doc_id}]: document missing")
        res = w.index(doc_id, new, op_type="create", routing=spec.routing)
        out = op_json(name, res)
        get = _get_section(spec, res.seq_no, res.primary_term, new)
        return res.status, {**out, "get": get} if get else out, True
    if spec.if_seq_no is not None and (cur.seq_no != spec.if_seq_no or cur.primary_term != spec.if_primary_term):
        raise VersionConflictError(f"[{doc_id}]: version conflict, required seqNo [{spec.if_seq_no}], primary term "
                                   f"[{spec.if_primary_term}]. current document has seqNo [{cur.seq_no}] and primary "
                                   f"term [{cur.primary_term}]")
    if cur.source is None:
        raise ValidationError(f"[{doc_id}]: document source missing", "document_source_missing_exception")
    assert spec.doc is not None
    new = merge_update(cur.source, spec.doc)
    if spec.detect_noop and new == cur.source:
        out = {"_index": name, "_id": doc_id, "_version": cur.version, "result": "noop",
               "_shards": {"total": 0, "successful": 0, "failed": 0}, "_seq_no": cur.seq_no,
               "_primary_term": cur.primary_term}
        get = _get_section(spec, cur.seq_no, cur.primary_term, new)
        return 200, {**out, "get": get} if get else out, False
    res = w.index(doc_id, new, if_seq_no=cur.seq_no, if_primary_term=cur.primary_term,
                  routing=spec.routing if spec.routing is not None else cur.routing)
    get = _get_section(spec, res.seq_no, res.primary_term, new)
    out = op_json(name, res)
    return 200, {**out, "get": get} if get else out, True


def apply_update(w: IndexWriter, name: str, doc_id: str, spec: UpdateSpec) -> tuple[int, dict[str, Any], bool]:
    """``(status, response body, wrote)``; raises the item's error (with its shard metadata)."""
    require_routing(w, name, doc_id, spec.routing)
    attempt = 0
    while True:
        try:
            return _update_once(w, name, doc_id, spec)
        except VersionConflictError as e:
            if spec.if_seq_no is None and attempt < spec.retry_on_conflict:
                attempt += 1
                continue
            raise with_shard(e, name, w.uuid) from None
        except SegstoreError as e:
            raise with_shard(e, name, w.uuid) from None


def with_forced_refresh(out: dict[str, Any]) -> dict[str, Any]:
    """Insert ``forced_refresh: true`` where ``DocWriteResponse`` renders it (right after ``result``)."""
    items = list(out.items())
    at = next(i for i, (k, _) in enumerate(items) if k == "result") + 1
    return dict(items[:at] + [("forced_refresh", True)] + items[at:])


def update_doc(node: Node, req: RestRequest) -> RestResponse:
    """``RestUpdateAction#prepareRequest`` order: refresh, fetch source, retries, versioning, CAS, body."""
    name, doc_id = req.path_params["index"], req.path_params["id"]
    policy = refresh_policy(req)
    spec = UpdateSpec()
    if fetch_source_requested(req):
        spec.fetch = parse_source_param(req.param("_source"), req.param("_source_includes"),
                                        req.param("_source_excludes"))
    spec.retry_on_conflict = int_param(req, "retry_on_conflict") or 0
    spec.routing = req.param("routing")
    if req.param("version") is not None or req.param("version_type") is not None:
        raise validation_error(["internal versioning can not be used for optimistic concurrency control. Please use "
                                "`if_seq_no` and `if_primary_term` instead"])
    spec.if_seq_no, spec.if_primary_term = cas_params(req)
    parse_update_body(json_body(req), spec)
    msgs = update_messages(doc_id, spec)
    if msgs:
        raise validation_error(msgs)
    w = writer_for_write(node, name)  # TransportUpdateAction auto-creates the index
    status, out, wrote = apply_update(w, name, doc_id, spec)
    if wrote and apply_refresh(w, policy):
        out = with_forced_refresh(out)
    return RestResponse(status, out)


def register(r: Router) -> None:
    r.add("POST", "/{index}/_update/{id}", update_doc, _PARAMS)
