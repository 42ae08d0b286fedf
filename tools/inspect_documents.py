"""``segstore doc | dump``: documents as stored and as a GET returns them. Read-only.

* ``doc ID``: the stored ``_source`` exactly as on disk (vectors masked by ``1`` where derived) next to the
  derived ``_source`` a GET returns; uncommitted documents are read from the translog.
* ``dump``: live documents as bulk NDJSON that feeds straight back into ``_bulk``: per document an action
  line ``{"index": {"_index", "_id"[, "routing"]}}`` and a source line (the derived ``_source``).

:func:`iter_documents` and :func:`bulk_lines` also serve ``segstore export``
(:mod:`segstore_tools.maintenance`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
from segstore_tools.progress import (
    OK,
    PROBLEM,
    Progress,
    add_command,
    command,
    emit,
    open_targets,
    print_json,
    table,
)
from segstore_tools.segment_handles import open_segments, translog_summary_of

__all__ = ["bulk_lines", "find_document", "iter_documents", "register", "remove_paths"]


# --------------------------------------------------------------------------------------------- doc


def _vector_json(dtype: str, raw: bytes) -> list[Any]:
    from segstore.index.segment_reader import vector_to_json

    np_dtype = {"float": np.float32, "byte": np.int8, "binary": np.uint8}[dtype]
    return vector_to_json(dtype, np.frombuffer(raw, dtype=np_dtype))


def find_document(catalog: Any, loc: Any, doc_id: str) -> dict[str, Any] | None:
    """Where ``doc_id`` lives (the committed segment, or the translog when newer) and both sources."""
    from segstore.derived_source.attributes import derived_paths
    from segstore.derived_source.mask import inject_source
    from segstore.index.check import iter_translog_ops
    from segstore.index.index_files import IndexFiles

    record = catalog.latest_commit(loc.uuid) or {}
    pending = None
    try:
        for op in iter_translog_ops(loc.translog_dir, int(record.get("translog_generation", 1))):
            if op.get("id") == doc_id and op["seq_no"] > int(record.get("max_seq_no", -1)):
                pending = op
    except Exception:  # noqa: BLE001 - a damaged translog only hides uncommitted changes here
        pending = None
    if pending is not None:
        out: dict[str, Any] = {"_index": loc.name, "_id": doc_id, "_version": pending.get("version"),
                               "_seq_no": pending["seq_no"], "location": "translog (uncommitted)",
                               "segment": None, "doc": None}
        if pending["op"] == "delete":
            out.update(found=False, deleted=True, stored_source=None, derived_source=None, derived_paths=[])
            return out
        meta = catalog.get_index(loc.name) or {}
        settings, mappings = IndexFiles.parse_metadata(meta)
        stored = pending.get("source")
        vectors = pending.get("vectors") or {}
        suppliers: dict[str, Any] = {}
        for path, raw in vectors.items():
            fm = mappings.vector_fields.get(path)
            if fm is not None and stored is not None and mappings.nested_scope(path) is None:
                rows = [_vector_json(fm.data_type, raw)]
                suppliers[path] = (lambda rows=rows: iter(rows))
        derived = stored
        if stored is not None and suppliers and settings.derived_source:
            try:
                derived = inject_source(stored, suppliers)
            except LookupError:
                derived = stored
        out.update(found=True, stored_source=stored, derived_source=derived, derived_paths=sorted(suppliers))
        return out
    pk = catalog.pk_get(loc.uuid, doc_id)
    if pk is None:
        return None
    seg, doc, version, seq_no = pk
    with open_segments(catalog, loc) as (_record, handles):
        h = next((x for x in handles if x.name == seg), None)
        base = {"_index": loc.name, "_id": doc_id, "_version": version, "_seq_no": seq_no,
                "location": "segment (committed)", "segment": seg, "doc": int(doc)}
        if h is None or h.leaf is None:
            return {**base, "found": True, "error": h.error if h else f"segment {seg} is not in the commit",
                    "stored_source": None, "derived_source": None, "derived_paths": []}
        rec = h.leaf.stored_document(int(doc))
        raw = rec.get("_source")
        stored = None if raw is None else msgpack.unpackb(raw, raw=False, strict_map_key=False)
        derived = h.leaf.source(int(doc), rec)
        root, nested = derived_paths(h.info.attributes)
        vectors = {}
        for fi in h.leaf.field_infos.vector_fields():
            values = h.leaf.vector_values(fi.name)
            if values is None:
                continue
            o = int(values.doc_to_ord(np.array([int(doc)]))[0])
            if o >= 0:
                from segstore.index.segment_reader import vector_to_json

                vectors[fi.name] = vector_to_json(fi.vector_data_type, values.vectors[o])
        return {**base, "found": True, "stored_record_keys": sorted(rec), "stored_source": stored,
                "derived_source": derived, "derived_paths": [p for p in (*root, *nested) if p],
                "vectors": vectors, "stored_source_bytes": None if raw is None else len(raw)}


def _flatten(v: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(v, dict):
        if not v:
            yield prefix or ".", {}
        for k, x in v.items():
            yield from _flatten(x, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v):
        for i, x in enumerate(v):
            yield from _flatten(x, f"{prefix}[{i}]")
    else:
        yield prefix, v


def _cell(v: Any, width: int = 44) -> str:
    if v is _ABSENT:
        return "(absent)"
    if isinstance(v, list) and len(v) > 6:
        s = json.dumps(v[:6], ensure_ascii=False)[:-1] + f", ...] ({len(v)})"
    else:
        s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= width else s[: width - 3] + "..."


_ABSENT = object()


def _doc_text(r: dict[str, Any]) -> str:
    lines = [f"doc [{r['_id']}] of index [{r['_index']}]: {r['location']}"
             + (f", segment {r['segment']} doc {r['doc']}" if r.get("segment") else "")
             + f", _version {r.get('_version')}, _seq_no {r.get('_seq_no')}"]
    if r.get("deleted"):
        lines.append("  deleted (the delete is in the translog, not yet committed)")
        return "\n".join(lines)
    if r.get("error"):
        lines.append(f"  ERROR {r['error']}")
        return "\n".join(lines)
    lines.append(f"  derived paths: {', '.join(r.get('derived_paths') or []) or '(none: _source holds the vectors)'}")
    stored = dict(_flatten(r.get("stored_source") or {}))
    derived = dict(_flatten(r.get("derived_source") or {}))
    keys = list(dict.fromkeys([*derived, *stored]))
    rows = []
    for k in keys:
        s, d = stored.get(k, _ABSENT), derived.get(k, _ABSENT)
        rows.append({"": "*" if s != d else " ", "path": k, "stored _source (on disk)": _cell(s),
                     "derived _source (GET)": _cell(d)})
    lines += table(rows, ["", "path", "stored _source (on disk)", "derived _source (GET)"], indent="  ")
    lines.append("  (* = differs: the stored value is the derived-source mask, the vector is re-injected from the "
                 "vector values)")
    return "\n".join(lines)


@command
def _cmd_doc(args: argparse.Namespace) -> int:
    with open_targets(args, single=True) as (catalog, targets):
        loc = targets[0]
        result = find_document(catalog, loc, args.id)
    if result is None:
        if args.json:
            print_json({"_index": loc.name, "_id": args.id, "found": False})
        else:
            sys.stderr.write(f"segstore doc: document [{args.id}] not found in index [{loc.name}]\n")
        return PROBLEM
    emit(args, result, _doc_text)
    return OK if result.get("found") else PROBLEM


# -------------------------------------------------------------------------------------------- dump


def remove_paths(source: Any, paths: list[str]) -> Any:
    """A copy of ``source`` without the values at each dotted path (through objects and arrays)."""
    def remove(node: Any, parts: list[str]) -> Any:
        if isinstance(node, list):
            return [remove(x, parts) for x in node]
        if not isinstance(node, dict) or not parts:
            return node
        out = dict(node)
        dotted = ".".join(parts)
        if dotted in out:  # a dotted key ("a.b": [...]) holds the whole path
            out.pop(dotted)
        head, rest = parts[0], parts[1:]
        if head in out:
            if rest:
                out[head] = remove(out[head], rest)
            else:
                out.pop(head)
        return out

    for p in paths:
        source = remove(source, p.split("."))
    return source


def iter_documents(catalog: Any, loc: Any, *, with_vectors: bool = True, segments: list[str] | None = None,
                   progress: Progress | None = None) -> Iterator[dict[str, Any]]:
    """Live documents of the last commit as ``{"_id", "_version", "_seq_no", "_source", "segment", "doc"}``,
    segment by segment in commit order; ``_source`` is the derived source (vectors re-injected)."""
    from segstore.errors import CorruptIndexError
    from segstore.index.index_files import IndexFiles

    vector_paths: list[str] = []
    if not with_vectors:
        _settings, mappings = IndexFiles.parse_metadata(catalog.get_index(loc.name) or {})
        vector_paths = list(mappings.vector_fields)
    with open_segments(catalog, loc) as (_record, handles):
        if progress is not None:
            progress.set(0, sum(int(h.entry["max_doc"]) - int(h.entry["del_count"]) for h in handles))
        for h in handles:
            if segments and h.name not in segments:
                continue
            if h.leaf is None:
                raise CorruptIndexError(f"segment {h.name} does not open: {h.error}", h.name)
            leaf = h.leaf
            docs = leaf.roots if leaf.roots is not None else range(leaf.max_doc)
            for doc in docs:
                doc = int(doc)
                if not leaf.is_live(doc):
                    continue
                rec = leaf.stored_document(doc)
                src = leaf.source(doc, rec)
                if vector_paths and src is not None:
                    src = remove_paths(src, vector_paths)
                if progress is not None:
                    progress.update(1)
                out = {"_id": rec.get("_id"), "_version": rec.get("_version"), "_seq_no": rec.get("_seq_no"),
                       "_source": src, "segment": h.name, "doc": doc}
                if rec.get("_routing") is not None:
                    out["_routing"] = rec["_routing"]
                yield out


def bulk_lines(doc: dict[str, Any], index: str) -> str:
    meta = {"_index": index, "_id": doc["_id"]}
    if doc.get("_routing") is not None:  # bulk metadata knows ``routing`` (not ``_routing``)
        meta["routing"] = doc["_routing"]
    action = {"index": meta}
    return (json.dumps(action, ensure_ascii=False) + "\n"
            + json.dumps(doc["_source"] if doc["_source"] is not None else {}, ensure_ascii=False) + "\n")


@command
def _cmd_dump(args: argparse.Namespace) -> int:
    n = 0
    with open_targets(args, single=True) as (catalog, targets):
        loc = targets[0]
        uncommitted = translog_summary_of(loc, catalog.latest_commit(loc.uuid)).get("uncommitted_operations", 0)
        target = args.target_index or loc.name
        docs = []
        for doc in iter_documents(catalog, loc, with_vectors=args.with_vectors, segments=args.segment):
            if args.limit is not None and n >= args.limit:
                break
            n += 1
            if args.json:
                docs.append({k: doc[k] for k in ("_id", "_version", "_seq_no", "_source", "segment", "doc")})
            else:
                sys.stdout.write(bulk_lines(doc, target))
    if uncommitted:
        sys.stderr.write(f"segstore dump: note: the translog holds {uncommitted} uncommitted operation(s) not in "
                         f"this dump; run `segstore recover` first to include them\n")
    if args.json:
        print_json({"index": loc.name, "count": n, "uncommitted_operations": uncommitted, "docs": docs})
    return OK


# --------------------------------------------------------------------------------------- register


def register(sub: Any) -> None:
    """Add ``doc`` and ``dump``."""
    one_index = "index name (needed when DIR holds several indices)"
    # argparse lists positionals after options whatever the order they are added in: DIR ID stays last
    p = add_command(sub, "doc", _cmd_doc,
                    help_text="one document: stored _source (masked) and derived _source side by side",
                    description="The stored _source exactly as on disk (derived vectors masked) next to the "
                                "derived _source a GET returns. Exit 1 if the document is not found.",
                    path=False, index_help=one_index)
    p.add_argument("path", metavar="DIR", help="data directory (or an index folder)")
    p.add_argument("id", metavar="ID", help="document id")

    p = add_command(sub, "dump", _cmd_dump,
                    help_text="live documents as bulk NDJSON (feeds straight back into _bulk)",
                    description="Live documents of the last commit as _bulk NDJSON on stdout: an index action "
                                "line and the derived _source per document. Read-only.", index_help=one_index)
    p.add_argument("--limit", type=int, default=None, metavar="N", help="at most N documents")
    p.add_argument("--segment", action="append", default=None, metavar="S", help="only segment S (repeatable)")
    p.add_argument("--target-index", default=None, metavar="NAME", help="_index in the action lines")
    p.add_argument("--with-vectors", action=argparse.BooleanOptionalAction, default=True,
                   help="keep vector fields in _source (default: yes)")
