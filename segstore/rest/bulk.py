"""``POST [/{index}]/_bulk``: NDJSON actions, each item failing alone.

The body is NDJSON whether it arrives as ``application/json`` or ``application/x-ndjson``, and must end with a
newline. Parsing follows ``BulkRequestParser`` (messages name XContent tokens; unknown metadata is rejected)
and the whole request is validated (``BulkRequest#validate``) before anything is written: a malformed action
line, an invalid item or an invalid ``refresh`` value fails the request and applies nothing. A bad
*document* fails only its item (``errors: true``).

Indices named by index, create and update items are auto-created first (a delete never creates an index:
its item fails with ``index_not_found_exception``). Index, create and delete items are handed to each
index's writer in one batch (one translog fsync per index and request); update items run one by one, in
order, after the batch that precedes them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from segstore.errors import (
    IllegalArgumentError,
    IndexNotFoundError,
    MapperParsingError,
    SegstoreError,
    ValidationError,
)
from segstore.index.operations import DeleteOp, IndexOp, OpResult
from segstore.node import Node
from segstore.rest.handlers_docs import (
    apply_refresh,
    auto_id,
    fetch_source_requested,
    op_json,
    require_routing,
    writer_for_write,
)
from segstore.rest.handlers_update import (
    UpdateSpec,
    apply_update,
    parse_update_body,
    update_messages,
    with_forced_refresh,
)
from segstore.rest.response import RestRequest, RestResponse, render_error
from segstore.rest.router import JsonSyntaxError, Router, decode_text
from segstore.rest.validation import (
    cas_messages,
    cas_values,
    external_version,
    id_messages,
    refresh_policy,
    token_name,
    validation_error,
    version_messages,
    with_shard,
)
from segstore.search.source_filter import SourceFilter, parse_source_param

__all__ = ["bulk", "parse_bulk", "register", "BulkItem"]

_ACTIONS = ("index", "create", "update", "delete")
_META = ("_index", "_id", "routing", "op_type", "version", "version_type", "if_seq_no", "if_primary_term",
         "retry_on_conflict", "pipeline", "_source", "require_alias")
_PARAMS = "refresh routing timeout pipeline _source _source_includes _source_excludes require_alias " \
          "wait_for_active_shards"


@dataclass
class BulkItem:
    action: str
    line: int
    index: str | None
    doc_id: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    source: Any = None  # the document, an UpdateSpec, or the error that fails this item alone


def _lines(body: Any) -> list[str | bytes]:
    if isinstance(body, list):  # already-split items (embedded callers)
        body = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in body)
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:  # keep the lines as bytes: only the lines that are not UTF-8 fail
            body = bytes(body)
            if not body.endswith(b"\n"):
                raise IllegalArgumentError("The bulk request must be terminated by a newline [\\n]") from None
            return body.split(b"\n")[:-1]  # type: ignore[return-value]
    if not isinstance(body, str) or not body.strip():
        raise ValidationError("request body is required", "parse_exception")
    if not body.endswith("\n"):
        raise IllegalArgumentError("The bulk request must be terminated by a newline [\\n]")
    return body.split("\n")[:-1]  # type: ignore[return-value]


def _json(line: str | bytes) -> Any:
    text = decode_text(line) if isinstance(line, bytes) else line
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise JsonSyntaxError(f"{e.msg} at line 1 column {e.colno}") from None


def _malformed(n: int, msg: str) -> IllegalArgumentError:
    return IllegalArgumentError(f"Malformed action/metadata line [{n}], {msg}")


def _meta_long(n: int, key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lstrip("+-").isdigit():
        return int(value)
    raise _malformed(n, f"expected a number for field [{key}] but found [{token_name(value)}]")


def _parse_action(n: int, line: str | bytes, default_index: str | None) -> tuple[str, dict[str, Any]]:
    try:
        obj = _json(line)
    except JsonSyntaxError as e:
        raise e.as_cause() from None
    if not isinstance(obj, dict):
        raise _malformed(n, f"expected START_OBJECT but found [{token_name(obj)}]")
    if not obj:
        raise _malformed(n, "expected FIELD_NAME but found [END_OBJECT]")
    if len(obj) > 1:
        raise _malformed(n, "expected END_OBJECT but found [FIELD_NAME]")
    action, raw_meta = next(iter(obj.items()))
    if not isinstance(raw_meta, dict):
        raise _malformed(n, f"expected START_OBJECT or END_OBJECT but found [{token_name(raw_meta)}]")
    meta: dict[str, Any] = {"_index": default_index}
    for key, value in raw_meta.items():
        if value is None:
            continue
        if isinstance(value, list) or (isinstance(value, dict) and key != "_source"):
            raise _malformed(n, f"expected a simple value for field [{key}] but found [{token_name(value)}]")
        if key not in _META:
            raise IllegalArgumentError(f"Action/metadata line [{n}] contains an unknown parameter [{key}]")
        if key in ("version", "if_seq_no", "if_primary_term", "retry_on_conflict"):
            value = _meta_long(n, key, value)
        elif key not in ("_source", "require_alias"):
            value = ("true" if value else "false") if isinstance(value, bool) else str(value)
        meta[key] = value
    if action not in _ACTIONS:
        raise _malformed(n, f"expected field [create], [delete], [index] or [update] but found [{action}]")
    return action, meta


def parse_bulk(body: Any, default_index: str | None, default_fetch: SourceFilter | None = None,
               default_routing: str | None = None) -> list[BulkItem]:
    """The items, in order. Raises for a malformed action line or an unparsable update line. An item without
    ``routing`` takes the request's ``routing`` parameter (``BulkRequest#add``'s default routing)."""
    lines = _lines(body)
    items: list[BulkItem] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        action, meta = _parse_action(i, line, default_index)
        if default_routing is not None:
            meta.setdefault("routing", default_routing)
        if action == "update" and ("version" in meta or "version_type" in meta):
            raise IllegalArgumentError("Update requests do not support versioning. Please use `if_seq_no` and "
                                       "`if_primary_term` instead")
        doc_id = meta.get("_id")
        item = BulkItem(action, i, meta.get("_index"), doc_id, meta)
        if action != "delete":
            if i >= len(lines):
                raise validation_error([f"source is missing for {action} item on line [{i}]"])
            raw = lines[i]
            i += 1
            if action == "update":  # parsed with the request, as BulkRequestParser does
                try:
                    body_obj = _json(raw)
                except JsonSyntaxError as e:
                    raise e.as_cause() from None
                spec = UpdateSpec(retry_on_conflict=meta.get("retry_on_conflict", 0), routing=meta.get("routing"))
                spec.if_seq_no, spec.if_primary_term = cas_values(meta.get("if_seq_no"), meta.get("if_primary_term"))
                spec.fetch = parse_source_param(meta["_source"]) if "_source" in meta else default_fetch
                item.source = parse_update_body(body_obj, spec)
            else:
                try:
                    item.source = _json(raw)
                except JsonSyntaxError as e:
                    item.source = MapperParsingError("failed to parse", caused_by=e.as_cause())
        items.append(item)
    return items


def _validate(items: list[BulkItem]) -> None:
    """``BulkRequest#validate``: every item's ``validate()`` messages, one request-level error."""
    msgs = [] if items else ["no requests added"]
    for it in items:
        m = it.meta
        if it.index is None:
            msgs.append("index is missing")
        if it.action == "update":
            msgs += update_messages(it.doc_id, it.source)
            continue
        if_seq_no, if_primary_term = cas_values(m.get("if_seq_no"), m.get("if_primary_term"))
        m["if_seq_no"], m["if_primary_term"] = if_seq_no, if_primary_term
        if it.action == "delete" and not it.doc_id:
            msgs.append("id is missing")
        if it.action != "delete":
            if m.get("op_type") not in (None, "index", "create"):
                raise IllegalArgumentError(f"opType must be 'create' or 'index', found: [{m['op_type']}]")
            create = it.action == "create" or m.get("op_type") == "create"
            if create and (if_seq_no is not None or if_primary_term is not None):
                msgs.append("create operations do not support compare and set. use index instead")
            m["op_type"] = "create" if create or not it.doc_id else "index"  # auto ids are always new
        msgs += version_messages(m.get("version"), m.get("version_type"), if_seq_no=if_seq_no,
                                 create=it.action != "delete" and m.get("op_type") == "create")
        msgs += cas_messages(if_seq_no, if_primary_term) + id_messages(it.doc_id)
    if msgs:
        raise validation_error(msgs)


def _item_error(action: str, index: str, doc_id: str | None, e: SegstoreError) -> dict[str, Any]:
    status = e.status if isinstance(e, ValidationError) else 500
    return {action: {"_index": index, "_id": doc_id, "status": status, "error": render_error(e)}}


def bulk(node: Node, req: RestRequest) -> RestResponse:
    t0 = time.perf_counter()
    default_fetch = None
    if fetch_source_requested(req):
        default_fetch = parse_source_param(req.param("_source"), req.param("_source_includes"),
                                           req.param("_source_excludes"))
    policy = refresh_policy(req)  # RestBulkAction reads refresh before the body
    items = parse_bulk(req.body, req.path_params.get("index"), default_fetch, req.param("routing"))
    _validate(items)
    # TransportBulkAction: auto-create the indices of every non-delete item before executing any item
    create_failed: dict[str, SegstoreError] = {}
    for name in dict.fromkeys(str(it.index) for it in items if it.action != "delete"):
        try:
            writer_for_write(node, name)
        except SegstoreError as e:
            create_failed[name] = e
    exists = {name: name not in create_failed and node.exists(name) for name in {str(it.index) for it in items}}
    forced = policy == "true"
    results: list[dict[str, Any] | None] = [None] * len(items)
    pending: dict[str, list[tuple[int, IndexOp | DeleteOp]]] = {}

    def run_pending() -> None:
        for index, batch in pending.items():
            w = node.writer(index)
            for (slot, op), res in zip(batch, w.bulk([op for _, op in batch])):
                action = items[slot].action
                if isinstance(res, OpResult):
                    results[slot] = {action: {**op_json(index, res, forced), "status": res.status}}
                else:
                    results[slot] = _item_error(action, index, op.doc_id, with_shard(res, index, w.uuid))
        pending.clear()

    for slot, it in enumerate(items):
        index, doc_id = str(it.index), it.doc_id
        if not exists[index]:
            results[slot] = _item_error(it.action, index, doc_id, create_failed.get(index) or IndexNotFoundError(index))
            continue
        if isinstance(it.source, SegstoreError):
            results[slot] = _item_error(it.action, index, doc_id, it.source)
            continue
        if it.action == "update":
            run_pending()
            try:
                status, out, wrote = apply_update(node.writer(index), index, str(doc_id), it.source)
                results[slot] = {"update": {**(with_forced_refresh(out) if wrote and forced else out),
                                            "status": status}}
            except SegstoreError as e:
                results[slot] = _item_error("update", index, doc_id, e)
            continue
        m = it.meta
        doc_id = str(doc_id) if doc_id is not None else auto_id()
        try:
            require_routing(node.writer(index), index, doc_id, m.get("routing"))
        except SegstoreError as e:
            results[slot] = _item_error(it.action, index, doc_id, e)
            continue
        version, version_type = external_version(m.get("version"), m.get("version_type"))
        if it.action == "delete":
            op: IndexOp | DeleteOp = DeleteOp(doc_id, m["if_seq_no"], m["if_primary_term"], version, version_type)
        else:
            op = IndexOp(doc_id, it.source, m["op_type"], m["if_seq_no"], m["if_primary_term"], m.get("routing"),
                         version, version_type)
        pending.setdefault(index, []).append((slot, op))
    run_pending()
    for index in dict.fromkeys(str(it.index) for it in items):
        if exists[index]:
            apply_refresh(node.writer(index), policy)
    errors = any(next(iter(r.values())).get("error") is not None for r in results if r)
    return RestResponse(200, {"took": int((time.perf_counter() - t0) * 1000), "errors": errors, "items": results})


def register(r: Router) -> None:
    for m in ("POST", "PUT"):
        for path in ("/_bulk", "/{index}/_bulk"):
            r.add(m, path, bulk, _PARAMS)
