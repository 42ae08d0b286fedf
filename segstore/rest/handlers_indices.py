"""Cluster and index-level endpoints: ``/``, index create/delete/exists, mappings, settings, refresh, flush,
force merge, ``_stats`` and ``_cat``."""

from __future__ import annotations

import re
from typing import Any

from segstore.errors import IllegalArgumentError, ParseError, ResourceAlreadyExistsError, ValidationError
from segstore.index.index_writer import IndexWriter
from segstore.node import Node
from segstore.rest.response import RestRequest, RestResponse
from segstore.rest.router import JsonSyntaxError, Router, json_body, parse_json
from segstore.search.query_dsl import ParsingError
from segstore.rest.validation import int_param, token_name, validation_error

__all__ = ["register", "VERSION", "targets", "structured_settings"]

VERSION = "3.3.0"  # the OpenSearch version whose k-NN behaviour segstore follows
_SHARDS_ACK = {"total": 2, "successful": 1, "failed": 0}


def targets(node: Node, expr: str | None) -> list[str]:
    """Index names an expression (``a,b``, ``logs-*``, ``_all``, empty) resolves to; a missing concrete
    name is an error."""
    from fnmatch import fnmatchcase  # noqa: PLC0415

    from segstore.errors import IndexNotFoundError  # noqa: PLC0415

    names = node.index_names()
    if not expr or expr in ("_all", "*"):
        return names
    out: list[str] = []
    for part in expr.split(","):
        if "*" in part:
            out.extend(n for n in names if fnmatchcase(n, part) and n not in out)
        elif part in names:
            out.append(part)
        else:
            raise IndexNotFoundError(part)
    return out


def info(node: Node, req: RestRequest) -> RestResponse:
    return RestResponse(200, {
        "name": "segstore", "cluster_name": "segstore", "cluster_uuid": node.catalog.get_meta("cluster_uuid") or "_na_",
        "version": {"distribution": "opensearch", "number": VERSION, "build_type": "segstore",
                    "build_hash": "segstore", "build_date": "2026-11-22T00:00:00Z", "build_snapshot": False,
                    "lucene_version": "10.2.2", "minimum_wire_compatibility_version": "2.19.0",
                    "minimum_index_compatibility_version": "2.0.0"},
        "tagline": "The OpenSearch Project: https://opensearch.org/"})


def create(node: Node, req: RestRequest) -> RestResponse:
    name = req.path_params["index"]
    try:
        body = parse_json(req.body) or {}
    except JsonSyntaxError as e:  # XContentHelper#convertToMap
        raise ParseError("Failed to parse content to map", caused_by=e.as_cause()) from None
    if not isinstance(body, dict):
        raise ParseError("Failed to parse content to map", caused_by=ValidationError(
            f"Expected [START_OBJECT] but found [{token_name(body)}]", "parsing_exception"))
    for key, value in body.items():  # CreateIndexRequest#source(Map)
        if key not in ("settings", "mappings", "aliases"):
            raise ParseError(f"unknown key [{key}] for create index")
        if key == "settings" and not isinstance(value, dict):
            raise ParseError("key [settings] must be an object")
        if key in ("mappings", "aliases") and not isinstance(value, dict):
            raise ParseError(f"Failed to parse content to map: [{key}] must be an object")
    if body.get("aliases"):
        raise IllegalArgumentError("segstore does not support index aliases: [aliases] must be empty")
    if node.exists(name):
        uuid = node.catalog.get_index(name)["uuid"].hex()  # type: ignore[index]
        e = ResourceAlreadyExistsError(f"index [{name}/{uuid}] already exists")
        e.extra = {"index_uuid": uuid, "index": name}  # type: ignore[attr-defined]
        raise e
    node.create_index(name, body.get("settings"), body.get("mappings"))
    return RestResponse(200, {"acknowledged": True, "shards_acknowledged": True, "index": name})


def delete(node: Node, req: RestRequest) -> RestResponse:
    for name in targets(node, req.path_params["index"]):
        node.delete_index(name)
    return RestResponse(200, {"acknowledged": True})


def exists(node: Node, req: RestRequest) -> RestResponse:
    ok = all(node.exists(n) for n in req.path_params["index"].split(","))
    return RestResponse(200 if ok else 404, None)


def _setting_text(value: Any) -> Any:
    """Settings values are strings (lists of strings for list settings), as ``Settings`` stores them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return [_setting_text(v) for v in value]
    return str(value)


def structured_settings(flat: dict[str, Any]) -> dict[str, Any]:
    """Port of ``Settings#getAsStructuredMap``: nest the sorted flat keys on ``.``; where a key is both a value
    and a prefix (``index.knn`` and ``index.knn.algo_param.ef_search``), the rest of the longer key stays
    dotted: ``{"knn": "true", "knn.algo_param": {"ef_search": "100"}}``. Maps whose keys are 0..n-1 become
    lists."""
    out: dict[str, Any] = {}
    for key in sorted(flat):
        _process_setting(out, "", key, flat[key])
    return {k: _maps_to_arrays(v) if isinstance(v, dict) else v for k, v in out.items()}


def _process_setting(m: dict[str, Any], prefix: str, setting: str, value: Any) -> None:
    dot = setting.find(".")
    if dot == -1:
        inner = m.get(prefix + setting)
        if isinstance(inner, dict):  # a value where a map is stored: the map goes to dotted keys
            for k, v in inner.items():
                m[f"{prefix}{setting}.{k}"] = v
        m[prefix + setting] = value
        return
    key, rest = setting[:dot], setting[dot + 1:]
    existing = m.get(prefix + key)
    if existing is None:
        new: dict[str, Any] = {}
        _process_setting(new, "", rest, value)
        m[prefix + key] = new
    elif isinstance(existing, dict):
        _process_setting(existing, "", rest, value)
    else:  # a map where a value is stored: fall back to dotted notation
        _process_setting(m, f"{prefix}{key}.", rest, value)


def _maps_to_arrays(m: dict[str, Any]) -> Any:
    for k, v in m.items():
        if isinstance(v, dict):
            m[k] = _maps_to_arrays(v)
    if m and all(re.fullmatch(r"[0-9]{1,9}", k) for k in m) and {int(k) for k in m} == set(range(len(m))):
        return [m[str(i)] for i in range(len(m))]
    return m


def _flat_settings(node: Node, name: str) -> dict[str, Any]:
    meta = node.catalog.get_index(name) or {}
    stored = dict(meta.get("settings", {}))
    flat = {"index.number_of_shards": "1", "index.number_of_replicas": "1", **stored,
            "index.uuid": meta["uuid"].hex(), "index.provided_name": name,
            "index.creation_date": str(meta.get("creation_date", 0)), "index.version.created": "137257827"}
    # the k-NN plugin's setting provider stores derived source = true for every index created with index.knn
    if _setting_text(stored.get("index.knn", False)) == "true":
        flat.setdefault("index.knn.derived_source.enabled", "true")
    return {k: _setting_text(v) for k, v in flat.items() if v is not None}


def _settings_of(node: Node, name: str, flat: bool = False) -> dict[str, Any]:
    settings = _flat_settings(node, name)
    return dict(sorted(settings.items())) if flat else structured_settings(settings)


def put_settings(node: Node, req: RestRequest) -> RestResponse:
    """``RestUpdateSettingsAction``: the body is the settings, or ``{"settings": {...}}``; all target indices
    are validated before any is changed."""
    from segstore.index.settings import flatten_settings  # noqa: PLC0415
    from segstore.index.writer_settings import apply_settings, check_update, merged_settings  # noqa: PLC0415

    body = json_body(req, required=True)
    if not isinstance(body, dict):
        raise ParsingError(f"Expected [START_OBJECT] but found [{token_name(body)}]")
    inner = body.get("settings")
    changes = flatten_settings(inner if isinstance(inner, dict) else body)
    if not changes:
        raise validation_error(["no settings to update"])
    names = targets(node, req.path_params.get("index"))
    writers = [node.writer(n) for n in names]
    check_update(changes, [f"{w.index_name}/{w.uuid.hex()}" for w in writers])
    preserve = req.bool_param("preserve_existing")
    updates = [merged_settings(dict(w.meta.get("settings") or {}), changes, preserve, w.mappings.source_enabled)[0]
               for w in writers]
    for w, flat in zip(writers, updates):
        apply_settings(w, flat)
    return RestResponse(200, {"acknowledged": True})


def get_index(node: Node, req: RestRequest) -> RestResponse:
    out = {}
    flat = req.bool_param("flat_settings")
    for name in targets(node, req.path_params["index"]):
        meta = node.catalog.get_index(name) or {}
        out[name] = {"aliases": {}, "mappings": meta.get("mappings", {}), "settings": _settings_of(node, name, flat)}
    return RestResponse(200, out)


def get_mapping(node: Node, req: RestRequest) -> RestResponse:
    return RestResponse(200, {n: {"mappings": (node.catalog.get_index(n) or {}).get("mappings", {})}
                              for n in targets(node, req.path_params.get("index"))})


def get_settings(node: Node, req: RestRequest) -> RestResponse:
    flat = req.bool_param("flat_settings")
    return RestResponse(200, {n: {"settings": _settings_of(node, n, flat)}
                              for n in targets(node, req.path_params.get("index"))})


def _each(node: Node, req: RestRequest, fn: Any) -> RestResponse:
    names = targets(node, req.path_params.get("index"))
    for n in names:
        fn(node.writer(n))
    total = len(names) * 2
    return RestResponse(200, {"_shards": {"total": total, "successful": len(names), "failed": 0}})


def refresh(node: Node, req: RestRequest) -> RestResponse:
    return _each(node, req, IndexWriter.refresh)


def flush(node: Node, req: RestRequest) -> RestResponse:
    return _each(node, req, IndexWriter.commit)


def force_merge(node: Node, req: RestRequest) -> RestResponse:
    max_seg = int_param(req, "max_num_segments")
    expunge = req.bool_param("only_expunge_deletes")
    if max_seg is not None and max_seg != -1 and expunge:  # ForceMergeRequest#validate
        raise validation_error(["cannot set only_expunge_deletes and max_num_segments at the same time, those "
                                "two parameters are mutually exclusive"])
    flush_after = req.bool_param("flush", True)

    def run(w: IndexWriter) -> None:
        # InternalEngine.forceMerge: only_expunge_deletes -> forceMergeDeletes; max_num_segments <= 0 (the
        # default -1) -> maybeMerge, the natural merges only; else forceMerge(n); then flush if asked.
        if expunge:
            w.force_merge(only_expunge_deletes=True, flush=flush_after)
        elif max_seg is None or max_seg <= 0:
            w.maybe_merge("force_merge")
            if flush_after:
                w.commit()
        else:
            w.force_merge(max_seg, flush=flush_after)

    return _each(node, req, run)


def _index_numbers(node: Node, name: str) -> dict[str, Any]:
    w = node.writer(name)
    st = w.stats()
    size = sum(w.directory.file_length(f) for s in w.segments() for f in s.files())
    tl = st["translog"]
    return {"docs": {"count": st["docs"], "deleted": st["deleted_docs"]},
            "store": {"size_in_bytes": size, "reserved_in_bytes": 0},
            "segments": {"count": st["segments"]},
            "translog": {"operations": tl["operations"], "size_in_bytes": tl["size_in_bytes"],
                         "uncommitted_operations": tl["uncommitted_operations"],
                         "uncommitted_size_in_bytes": tl["uncommitted_size_in_bytes"]},
            "indexing": {"index_total": st["max_seq_no"] + 1}}


def stats(node: Node, req: RestRequest) -> RestResponse:
    names = targets(node, req.path_params.get("index"))
    indices = {}
    for n in names:
        numbers = _index_numbers(node, n)
        indices[n] = {"uuid": node.catalog.get_index(n)["uuid"].hex(),  # type: ignore[index]
                      "primaries": numbers, "total": numbers}
    agg: dict[str, Any] = {}
    for v in indices.values():
        for section, values in v["primaries"].items():
            dst = agg.setdefault(section, {})
            for k, x in values.items():
                dst[k] = dst.get(k, 0) + x
    return RestResponse(200, {"_shards": {"total": 2 * len(names), "successful": len(names), "failed": 0},
                              "_all": {"primaries": agg, "total": agg}, "indices": indices})


def _cat(req: RestRequest, rows: list[dict[str, Any]], columns: list[str]) -> RestResponse:
    if req.param("format") == "json":
        return RestResponse(200, [{c: (None if r.get(c) is None else str(r[c])) for c in columns} for r in rows])
    cols = [c.strip() for c in req.param("h").split(",")] if req.param("h") else columns
    table = [[("" if r.get(c) is None else str(r[c])) for c in cols] for r in rows]
    if req.bool_param("v"):
        table.insert(0, cols)
    widths = [max([len(row[i]) for row in table] + [1]) for i in range(len(cols))]
    text = "".join(" ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n" for row in table)
    return RestResponse(200, text, "text/plain; charset=UTF-8")


def _human_bytes(n: int) -> str:
    for unit in ("b", "kb", "mb", "gb"):
        if n < 1024 or unit == "gb":
            return f"{n}{unit}" if unit == "b" else f"{n:.1f}{unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def cat_indices(node: Node, req: RestRequest) -> RestResponse:
    rows = []
    for n in targets(node, req.path_params.get("index")):
        numbers = _index_numbers(node, n)
        replicas = int(_settings_of(node, n)["index"].get("number_of_replicas", "1"))
        size = _human_bytes(numbers["store"]["size_in_bytes"])
        rows.append({"health": "green" if replicas == 0 else "yellow", "status": "open", "index": n,
                     "uuid": node.catalog.get_index(n)["uuid"].hex(), "pri": 1, "rep": replicas,  # type: ignore[index]
                     "docs.count": numbers["docs"]["count"], "docs.deleted": numbers["docs"]["deleted"],
                     "store.size": size, "pri.store.size": size})
    return _cat(req, rows, ["health", "status", "index", "uuid", "pri", "rep", "docs.count", "docs.deleted",
                            "store.size", "pri.store.size"])


def cat_segments(node: Node, req: RestRequest) -> RestResponse:
    rows = []
    for n in targets(node, req.path_params.get("index")):
        w = node.writer(n)
        committed = {s["name"] for s in w._commit_record.get("segments", [])}
        for s in w.segments():
            size = sum(w.directory.file_length(f) for f in s.files())
            rows.append({"index": n, "shard": 0, "prirep": "p", "ip": "127.0.0.1", "segment": s.name,
                         "generation": int(s.name[1:], 36), "docs.count": s.num_docs, "docs.deleted": s.del_count,
                         "size": _human_bytes(size), "size.memory": 0, "committed": str(s.name in committed).lower(),
                         "searchable": "true", "version": "10.2.2", "compound": "false"})
    return _cat(req, rows, ["index", "shard", "prirep", "ip", "segment", "generation", "docs.count",
                            "docs.deleted", "size", "size.memory", "committed", "searchable", "version", "compound"])


def register(r: Router) -> None:
    r.add("GET", "/", info)
    r.add("HEAD", "/", lambda n, q: RestResponse(200, None))
    r.add("PUT", "/{index}", create, "include_type_name")
    r.add("DELETE", "/{index}", delete, "ignore_unavailable allow_no_indices expand_wildcards")
    r.add("HEAD", "/{index}", exists, "local include_defaults ignore_unavailable allow_no_indices expand_wildcards flat_settings")
    r.add("GET", "/{index}", get_index, "local include_defaults ignore_unavailable allow_no_indices expand_wildcards flat_settings")
    for path in ("/{index}/_mapping", "/_mapping"):
        r.add("GET", path, get_mapping, "local ignore_unavailable allow_no_indices expand_wildcards include_type_name")
    for path in ("/{index}/_settings", "/_settings"):
        r.add("GET", path, get_settings, "local include_defaults ignore_unavailable allow_no_indices expand_wildcards flat_settings")
        r.add("PUT", path, put_settings, "preserve_existing timeout master_timeout cluster_manager_timeout "
              "ignore_unavailable allow_no_indices expand_wildcards flat_settings")
    for path in ("/_refresh", "/{index}/_refresh"):
        for m in ("POST", "GET"):
            r.add(m, path, refresh, "ignore_unavailable allow_no_indices expand_wildcards")
    for path in ("/_flush", "/{index}/_flush"):
        for m in ("POST", "GET"):
            r.add(m, path, flush, "force wait_if_ongoing ignore_unavailable allow_no_indices expand_wildcards")
    for path in ("/_forcemerge", "/{index}/_forcemerge"):
        r.add("POST", path, force_merge,
              "max_num_segments only_expunge_deletes flush ignore_unavailable allow_no_indices expand_wildcards "
              "wait_for_completion primary_only")
    for path in ("/_stats", "/{index}/_stats"):
        r.add("GET", path, stats, "level completion_fields fielddata_fields fields groups include_segment_file_sizes "
              "include_unloaded_segments expand_wildcards forbid_closed_indices")
    cat_params = "format h help s v bytes time local expand_wildcards pri health"
    for path in ("/_cat/indices", "/_cat/indices/{index}"):
        r.add("GET", path, cat_indices, cat_params)
    for path in ("/_cat/segments", "/_cat/segments/{index}"):
        r.add("GET", path, cat_segments, cat_params)


