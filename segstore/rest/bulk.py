"""``POST [/{index}]/_bulk``: NDJSON actions, each item failing alone.

The body is NDJSON whether it arrives as ``application/json`` or ``application/x-ndjson``, and must end
with a newline. A malformed *action* line fails the whole request (nothing is applied), as OpenSearch does;
a bad *document* fails only its item (``errors: true``). Index, create and delete items are handed to each
index's writer in one batch (one translog fsync per index and request); update items run one by one,
in order, after the batch that precedes them.
"""

from __future__ import annotations

import json
import time
from typing import Any

from segstore.errors import IllegalArgumentError, MapperParsingError, SegstoreError, ValidationError
from segstore.index.operations import DeleteOp, IndexOp, OpResult
from segstore.node import Node
from segstore.rest.handlers_docs import apply_update, auto_id, op_json, writer_for_write
from segstore.rest.response import RestRequest, RestResponse, error_response

__all__ = ["bulk", "parse_bulk"]

_ACTIONS = ("index", "create", "update", "delete")


def _loads(line: str) -> Any:
    return json.loads(line)


def parse_bulk(body: Any, default_index: str | None) -> list[tuple[str, dict[str, Any], Any]]:
    """``(action, metadata, source-or-error)`` per item. Raises for a malformed action line."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, list):  # already-split items (embedded callers)
        lines = [x if isinstance(x, str) else json.dumps(x) for x in body]
        body = "\n".join(lines) + "\n"
    if not isinstance(body, str) or not body.strip():
        raise IllegalArgumentError("request body is required")
    if not body.endswith("\n"):
        raise IllegalArgumentError("The bulk request must be terminated by a newline [\\n]")
    lines = body.split("\n")[:-1]
    items: list[tuple[str, dict[str, Any], Any]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        try:
            action_obj = _loads(line)
        except json.JSONDecodeError:
            raise IllegalArgumentError(f"Malformed action/metadata line [{i}], expected START_OBJECT or "
                                       "END_OBJECT but found [VALUE_STRING]") from None
        if not isinstance(action_obj, dict) or len(action_obj) != 1:
            raise IllegalArgumentError(f"Malformed action/metadata line [{i}], expected START_OBJECT or END_OBJECT "
                                       f"but found [{type(action_obj).__name__}]")
        action, meta = next(iter(action_obj.items()))
        if action not in _ACTIONS:
            raise IllegalArgumentError(f"Malformed action/metadata line [{i}], expected field [create], [delete], "
                                       f"[index] or [update] but found [{action}]")
        if not isinstance(meta, dict):
            raise IllegalArgumentError(f"Malformed action/metadata line [{i}], expected START_OBJECT but found "
                                       f"[{type(meta).__name__}]")
        meta = dict(meta)
        meta.setdefault("_index", default_index)
        if meta["_index"] is None:
            raise IllegalArgumentError("Validation Failed: 1: index is missing;")
        source: Any = None
        if action != "delete":
            if i >= len(lines):
                raise IllegalArgumentError(f"Validation Failed: 1: source is missing for {action} item [{i}];")
            raw = lines[i]
            i += 1
            try:
                source = _loads(raw)
            except json.JSONDecodeError as e:
                source = MapperParsingError("failed to parse", caused_by=ValidationError(
                    f"{e.msg} at line {e.lineno} column {e.colno}", "json_parse_exception"))
        items.append((action, meta, source))
    return items


def _item_error(action: str, index: str, doc_id: str | None, e: SegstoreError) -> dict[str, Any]:
    err = error_response(e).body
    out = {"_index": index, "_id": doc_id, "status": err["status"], "error": {
        k: v for k, v in err["error"].items() if k != "root_cause"}}
    return {action: out}


def bulk(node: Node, req: RestRequest) -> RestResponse:
    t0 = time.perf_counter()
    items = parse_bulk(req.body, req.path_params.get("index"))
    results: list[dict[str, Any] | None] = [None] * len(items)
    pending: dict[str, list[tuple[int, IndexOp | DeleteOp]]] = {}

    def run_pending() -> None:
        for index, batch in pending.items():
            try:
                w = writer_for_write(node, index)
                outs = w.bulk([op for _, op in batch])
            except SegstoreError as e:
                outs = [e] * len(batch)
            for (slot, op), res in zip(batch, outs):
                action = items[slot][0]
                if isinstance(res, OpResult):
                    results[slot] = {action: {**op_json(index, res), "status": res.status}}
                else:
                    results[slot] = _item_error(action, index, op.doc_id, res)
        pending.clear()

    for slot, (action, meta, source) in enumerate(items):
        index = str(meta["_index"])
        doc_id = meta.get("_id")
        if action == "update":
            run_pending()
            try:
                if isinstance(source, SegstoreError):
                    raise source
                if doc_id is None:
                    raise IllegalArgumentError("Validation Failed: 1: id is missing;")
                w = writer_for_write(node, index) if isinstance(source, dict) and (
                    source.get("doc_as_upsert") or "upsert" in source) else node.writer(index)
                status, out = apply_update(w, index, str(doc_id), source)
                results[slot] = {action: {**out, "status": status}}
            except SegstoreError as e:
                results[slot] = _item_error(action, index, doc_id, e)
            continue
        if isinstance(source, SegstoreError):
            results[slot] = _item_error(action, index, doc_id, source)
            continue
        if action == "delete":
            if doc_id is None:
                results[slot] = _item_error(action, index, None, IllegalArgumentError("Validation Failed: 1: id is missing;"))
                continue
            op: IndexOp | DeleteOp = DeleteOp(str(doc_id), meta.get("if_seq_no"), meta.get("if_primary_term"))
        else:
            op_type = "create" if action == "create" or meta.get("op_type") == "create" else "index"
            op = IndexOp(str(doc_id) if doc_id is not None else auto_id(), source, op_type,
                         meta.get("if_seq_no"), meta.get("if_primary_term"))
        pending.setdefault(index, []).append((slot, op))
    run_pending()
    mode = req.param("refresh", "false")
    if mode in ("true", "", "wait_for"):
        for index in {str(m["_index"]) for _, m, _ in items}:
            if node.exists(index):
                node.writer(index).refresh()
    errors = any(next(iter(r.values())).get("error") is not None for r in results if r)
    return RestResponse(200, {"took": int((time.perf_counter() - t0) * 1000), "errors": errors, "items": results})
