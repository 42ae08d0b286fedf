"""Read-only inspection: ``segstore info | segments | files | doc | dump | stats | warmup``.

None of these takes the write lock or writes a byte: they read the last commit (``segments --commit N``: an
older stored generation) straight from the files, so they also work next to a running writer or server and
on a damaged index (a segment that does not open is shown with its error, the others normally).

* ``info``: commits, settings, mappings, durability, format versions found in the file headers, translog
  uuid, generations and operation counts, catalog size.
* ``segments``: ``_cat/segments`` columns plus, per vector field, the vector count, dimension, space and data
  type, graph kind (hnswlib / faiss / faiss_binary / ivf / none), compression, mode, quantization state and
  whether the field is derived (vectors re-injected into ``_source``), and bytes per file type;
  ``--files`` adds every file with its size and stored CRC.
* ``files``: every file of the index folder, the translog and the catalog with its format name, version,
  segment id, size and CRC from the header/footer (``--verify`` recomputes each CRC).
* ``doc ID``: the stored ``_source`` exactly as on disk (vectors masked by ``1`` where derived) next to the
  derived ``_source`` a GET returns; uncommitted documents are read from the translog.
* ``dump``: live documents as bulk NDJSON that feeds straight back into ``_bulk``.
* ``stats``: ``_stats``-style counts, k-NN stats per field and disk usage per component.
* ``warmup``: loads every graph (and quantized codes) and reports their memory; in this process that
  verifies every graph loads and leaves the files in the OS page cache for the next process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
from segstore_tools.progress import (
    OK,
    PROBLEM,
    Progress,
    UsageError,
    add_common_args,
    command,
    emit,
    human_bytes,
    open_targets,
    print_json,
    progress_enabled,
)

__all__ = [
    "SegmentHandle",
    "find_document",
    "index_info",
    "index_stats",
    "iter_documents",
    "open_segments",
    "register",
    "remove_paths",
    "segment_rows",
]


# ------------------------------------------------------------------------------------- data access


@dataclass
class SegmentHandle:
    """One segment of a commit: its commit entry, and its info / reader when they open (else ``error``)."""

    entry: dict[str, Any]
    info: Any = None
    leaf: Any = None
    error: str | None = None

    @property
    def name(self) -> str:
        return str(self.entry["name"])


@contextlib.contextmanager
def open_segments(catalog: Any, loc: Any, generation: int | None = None,
                  open_readers: bool = True) -> Iterator[tuple[dict[str, Any], list[SegmentHandle]]]:
    """``(commit record, segments)`` of the last commit (or ``generation``), each opened on its own."""
    from segstore.errors import SegstoreError
    from segstore.index.segment_info import SegmentCommitInfo
    from segstore.index.segment_reader import SegmentReader, read_segment_info
    from segstore.store import FSDirectory

    record = catalog.latest_commit(loc.uuid) if generation is None else catalog.get_commit(loc.uuid, generation)
    if record is None:
        stored = catalog.list_commits(loc.uuid)
        raise UsageError(f"index [{loc.name}] has no commit generation {generation} (stored: {stored})")
    handles = [SegmentHandle(dict(e)) for e in record.get("segments") or []]
    directory = FSDirectory(loc.index_dir) if os.path.isdir(loc.index_dir) else None
    try:
        for h in handles:
            if directory is None:
                h.error = f"index folder is missing: {loc.index_dir}"
                continue
            try:
                h.info = read_segment_info(directory, h.name, bytes(h.entry["id"]), h.entry["codec"])
                if open_readers:
                    sci = SegmentCommitInfo(h.info, int(h.entry["del_gen"]), int(h.entry["del_count"]))
                    h.leaf = SegmentReader(directory, sci)
            except (SegstoreError, OSError, ValueError, KeyError) as e:
                h.error = f"{type(e).__name__}: {e}"
        yield record, handles
    finally:
        for h in handles:
            if h.leaf is not None:
                h.leaf.dec_ref()


def _file_size(loc: Any, name: str) -> int | None:
    try:
        return os.path.getsize(os.path.join(loc.index_dir, name))
    except OSError:
        return None


def _segment_files(h: SegmentHandle) -> list[str]:
    from segstore.index.file_names import live_docs_file_name

    files = list(h.info.files) if h.info is not None else []
    if int(h.entry.get("del_gen", 0)):
        files.append(live_docs_file_name(h.name, int(h.entry["del_gen"])))
    return files


def _framed_meta(path: str, *, length_prefixed: bool = False) -> dict[str, Any] | None:
    """The msgpack map right after a file's header (graph meta; ``length_prefixed``: .qst meta)."""
    from segstore.index.check import read_header

    head = read_header(path)
    if not head or "data_offset" not in head:
        return None
    try:
        with open(path, "rb") as fh:
            fh.seek(head["data_offset"])
            data = fh.read(8192)
        if length_prefixed:
            (n,) = struct.unpack_from(">I", data, 0)
            meta = msgpack.unpackb(data[4:4 + n], raw=False)
        else:
            unpacker = msgpack.Unpacker(raw=False)
            unpacker.feed(data)
            meta = unpacker.unpack()
        return meta if isinstance(meta, dict) else None
    except Exception:  # noqa: BLE001 - a damaged header is reported by check, not here
        return None


def _field_rows(loc: Any, h: SegmentHandle) -> list[dict[str, Any]]:
    from segstore.derived_source.attributes import derived_paths

    if h.leaf is None:
        return []
    root, nested = derived_paths(h.info.attributes)
    files = set(_segment_files(h))
    rows = []
    for fi in h.leaf.field_infos.vector_fields():
        values = h.leaf.vector_values(fi.name)
        a = fi.attributes
        graph = graph_file = None
        graph_bytes = 0
        for ext in ("hnsw", "ivf"):
            name = f"{h.name}_f{fi.number}.{ext}"
            if name in files:
                graph_file = name
                graph_bytes = _file_size(loc, name) or 0
                meta = _framed_meta(os.path.join(loc.index_dir, name))
                graph = "ivf" if ext == "ivf" else ((meta or {}).get("library") or "hnswlib" if meta else "unreadable")
        qfile = f"{h.name}_f{fi.number}.qst"
        quant = None
        if qfile in files:
            meta = _framed_meta(os.path.join(loc.index_dir, qfile), length_prefixed=True) or {}
            quant = {"file": qfile, "kind": meta.get("kind"), "bits": meta.get("bits"), "codes": meta.get("count"),
                     "code_width": meta.get("code_width"), "bytes": _file_size(loc, qfile)}
        rows.append({
            "field": fi.name, "number": fi.number, "vectors": None if values is None else values.size,
            "dimension": fi.vector_dimension, "data_type": fi.vector_data_type, "space_type": fi.vector_space_type,
            "knn": a.get("knn"), "engine": a.get("engine"), "method": a.get("method"),
            "m": a.get("hnsw.m"), "ef_construction": a.get("hnsw.ef_construction"),
            "graph": graph, "graph_file": graph_file, "graph_bytes": graph_bytes,
            "compression": a.get("compression"), "mode": a.get("mode"), "encoder": a.get("encoder"),
            "quantization": quant,
            "derived": "root" if fi.name in root else "nested" if fi.name in nested else None,
        })
    return rows


def segment_rows(loc: Any, record: dict[str, Any], handles: list[SegmentHandle], *,
                 with_files: bool = False) -> list[dict[str, Any]]:
    """``_cat/segments`` rows plus the per-field and per-file-type details."""
    from segstore.derived_source.attributes import derived_paths
    from segstore.index.check import COMPONENTS, inspect_file
    from segstore.index.file_names import from_base36
    from segstore.store import FSDirectory

    out = []
    for h in handles:
        e = h.entry
        files = _segment_files(h)
        by_ext: dict[str, int] = {}
        size = 0
        for f in files:
            n = _file_size(loc, f) or 0
            size += n
            ext = f.rsplit(".", 1)[-1]
            by_ext[ext] = by_ext.get(ext, 0) + n
        diag = dict(h.info.diagnostics) if h.info is not None else {}
        root, nested = derived_paths(h.info.attributes) if h.info is not None else ([], [])
        try:
            generation = from_base36(h.name[1:])
        except ValueError:
            generation = None
        row: dict[str, Any] = {
            "index": loc.name, "shard": 0, "prirep": "p", "segment": h.name, "generation": generation,
            "docs.count": int(e["max_doc"]) - int(e["del_count"]), "docs.deleted": int(e["del_count"]),
            "max_doc": int(e["max_doc"]), "size": size, "size.memory": 0, "committed": True, "searchable": True,
            "version": diag.get("segstore.version"), "compound": False, "codec": e.get("codec"),
            "segment_id": bytes(e["id"]).hex(), "del_gen": int(e["del_gen"]), "source": diag.get("source"),
            "merged_from": diag.get("merged_from"), "timestamp": diag.get("timestamp"),
            "derived_paths": {"root": [p for p in root if p], "nested": [p for p in nested if p]},
            "bytes_by_type": dict(sorted(by_ext.items())),
            "bytes_by_component": _by_component(by_ext, COMPONENTS),
            "fields": _field_rows(loc, h), "error": h.error,
        }
        if with_files:
            directory = FSDirectory(loc.index_dir) if os.path.isdir(loc.index_dir) else None
            reps = []
            for f in files:
                if directory is None:
                    break
                rep = inspect_file(directory, f, segment=h.name, expected_id=bytes(e["id"]), verify=False)
                reps.append({"file": f, "size": rep.size, "crc": rep.stored_crc, "format": rep.format,
                             "version": rep.version,
                             "problem": None if rep.problem is None else str(rep.problem)})
            row["files"] = reps
        out.append(row)
    return out


def _by_component(by_ext: dict[str, int], components: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for ext, n in by_ext.items():
        c = components.get(ext, "other")
        out[c] = out.get(c, 0) + n
    return dict(sorted(out.items()))


def _translog_summary(loc: Any, record: dict[str, Any] | None) -> dict[str, Any]:
    from segstore.index.check import translog_summary
    from segstore.translog import Translog

    if not os.path.isdir(loc.translog_dir):
        return {"clean": False, "error": "translog folder is missing"}
    summary = translog_summary(Translog.inspect(loc.translog_dir), record)
    summary["size_in_bytes"] = sum(int(g.get("size") or 0) for g in summary.get("generations") or [])
    return summary


# ------------------------------------------------------------------------------------------- info


def index_info(catalog: Any, loc: Any) -> dict[str, Any]:
    from segstore import __version__
    from segstore.index.check import FORMAT_VERSIONS, read_header
    from segstore.index.settings import IndexSettings

    meta = catalog.get_index(loc.name) or {}
    commits = []
    latest = None
    for gen in catalog.list_commits(loc.uuid):
        try:
            rec = catalog.get_commit(loc.uuid, gen)
        except Exception as e:  # noqa: BLE001 - a damaged record is shown, not fatal
            commits.append({"generation": gen, "error": f"{type(e).__name__}: {e}"})
            continue
        if rec is None:
            continue
        latest = rec
        segs = rec.get("segments") or []
        commits.append({
            "generation": gen, "segments": len(segs),
            "docs": sum(int(s["max_doc"]) - int(s["del_count"]) for s in segs),
            "deleted_docs": sum(int(s["del_count"]) for s in segs), "max_seq_no": rec.get("max_seq_no"),
            "segment_counter": rec.get("segment_counter"), "translog_generation": rec.get("translog_generation"),
            "translog_uuid": bytes(rec.get("translog_uuid") or b"").hex() or None,
            "timestamp": rec.get("timestamp"), "user_data": rec.get("user_data") or {},
            "segment_names": [s["name"] for s in segs],
        })
    formats: dict[str, set[int]] = {}
    codecs = set()
    for rec in ([latest] if latest else []):
        for s in rec.get("segments") or []:
            codecs.add(s.get("codec"))
    if os.path.isdir(loc.index_dir):
        for f in sorted(os.listdir(loc.index_dir)):
            if f.startswith("_"):
                head = read_header(os.path.join(loc.index_dir, f))
                if head and "version" in head:
                    formats.setdefault(head["format"], set()).add(int(head["version"]))
    if os.path.isdir(loc.translog_dir):
        for f in sorted(os.listdir(loc.translog_dir)):
            head = read_header(os.path.join(loc.translog_dir, f))
            if head and "version" in head:
                formats.setdefault(head["format"], set()).add(int(head["version"]))
    settings_error = None
    durability: str | None
    derived: bool | None
    knn: bool | None
    try:
        parsed = IndexSettings.parse(meta.get("settings"))
        durability, derived, knn = parsed.durability, parsed.derived_source, parsed.knn
    except Exception as e:  # noqa: BLE001 - shown as settings_error
        durability = derived = knn = None
        settings_error = str(e)
    return {
        "index": loc.name, "uuid": loc.uuid.hex(), "data_dir": loc.data_dir, "path": loc.root,
        "segstore_version": __version__, "creation_date": meta.get("creation_date"),
        "knn": knn, "durability": durability, "derived_source": derived, "settings_error": settings_error,
        "settings": meta.get("settings") or {}, "mappings": meta.get("mappings") or {},
        "commits": commits, "codecs": sorted(c for c in codecs if c),
        "format_versions": {k: sorted(v) for k, v in sorted(formats.items())},
        "supported_format_versions": {k: list(v) for k, v in sorted(FORMAT_VERSIONS.items())},
        "pk_entries": catalog.pk_count(loc.uuid),
        "translog": _translog_summary(loc, latest),
    }


def _info_text(results: list[dict[str, Any]], catalog_stats: dict[str, Any]) -> str:
    lines = []
    for r in results:
        lines.append(f"index [{r['index']}]  uuid {r['uuid']}")
        lines.append(f"  path:          {r['path']}")
        lines.append(f"  knn: {r['knn']}   durability: {r['durability']}   derived source: {r['derived_source']}"
                     f"   ids: {r['pk_entries']}")
        lines.append("  commits:")
        for c in r["commits"]:
            if "error" in c:
                lines.append(f"    gen {c['generation']}: {c['error']}")
                continue
            ts = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c["timestamp"])) if c.get("timestamp") else "-"
            lines.append(f"    gen {c['generation']}: {c['segments']} segments {c['segment_names']}, {c['docs']} docs "
                         f"({c['deleted_docs']} deleted), max_seq_no {c['max_seq_no']}, translog gen "
                         f"{c['translog_generation']}, {ts}" + (f", user_data {c['user_data']}" if c["user_data"]
                                                               else ""))
        lines.append(f"  codecs: {', '.join(r['codecs']) or '-'}")
        lines.append("  format versions: " + ", ".join(f"{k} v{','.join(map(str, v))}"
                                                       for k, v in r["format_versions"].items()))
        lines.append("  settings: " + json.dumps(r["settings"], sort_keys=True))
        lines.append("  mappings: " + json.dumps(r["mappings"], sort_keys=True))
        tl = r["translog"]
        ckp = tl.get("checkpoint") or {}
        lines.append(f"  translog: uuid {ckp.get('translog_uuid', '-')}, {'clean' if tl.get('clean') else 'DAMAGED'}, "
                     f"{tl.get('operations', 0)} ops ({tl.get('uncommitted_operations', 0)} uncommitted), "
                     f"{human_bytes(tl.get('size_in_bytes'))}")
        for g in tl.get("generations") or []:
            lines.append(f"    generation {g['generation']}: {g['operations']} ops, {human_bytes(g['size'])}"
                         + (f", ERROR {g['error']}" if g.get("error") else ""))
    lines.append(f"catalog: {catalog_stats['path']} used {human_bytes(catalog_stats['used_bytes'])} of map "
                 f"{human_bytes(catalog_stats['map_size'])}, {catalog_stats['num_readers']} readers")
    return "\n".join(lines)


@command
def _cmd_info(args: argparse.Namespace) -> int:
    with open_targets(args) as (catalog, targets):
        results = [index_info(catalog, loc) for loc in targets]
        cstats = catalog.stats()
    emit(args, {"indices": results, "catalog": cstats}, lambda r: _info_text(r["indices"], r["catalog"]))
    return OK


# --------------------------------------------------------------------------------------- segments


def _table(rows: list[dict[str, Any]], cols: list[str], fmt: dict[str, Any] | None = None) -> list[str]:
    fmt = fmt or {}
    def cell(r: dict[str, Any], c: str) -> str:
        v = r.get(c)
        if c in fmt:
            return str(fmt[c](v))
        if isinstance(v, bool):
            return str(v).lower()  # _cat style
        return "-" if v is None else str(v)

    cells = [[cell(r, c) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return out


def _segments_text(result: dict[str, Any]) -> str:
    lines = []
    for idx in result["indices"]:
        lines.append(f"index [{idx['index']}] commit generation {idx['generation']}")
        rows = idx["segments"]
        lines += ["  " + s for s in _table(rows, ["segment", "generation", "docs.count", "docs.deleted", "size",
                                                  "committed", "searchable", "version", "compound", "codec",
                                                  "source"], {"size": human_bytes})]
        for r in rows:
            lines.append(f"  {r['segment']}: " + ", ".join(f"{k} {human_bytes(v)}"
                                                          for k, v in r["bytes_by_type"].items())
                         + (f"; derived: {', '.join(r['derived_paths']['root'] + r['derived_paths']['nested'])}"
                            if any(r["derived_paths"].values()) else ""))
            if r.get("error"):
                lines.append(f"    ERROR {r['error']}")
            if r["fields"]:
                frows = [{**f, "quantization": (f"{f['quantization']['kind']}/{f['quantization']['bits']}b"
                                                if f["quantization"] else None)} for f in r["fields"]]
                lines += ["    " + s for s in _table(frows, ["field", "vectors", "dimension", "space_type",
                                                             "data_type", "graph", "graph_bytes", "compression",
                                                             "mode", "quantization", "derived"],
                                                      {"graph_bytes": human_bytes})]
            for f in r.get("files") or []:
                lines.append(f"    {f['file']:<16} {human_bytes(f['size']):>9}  crc {f['crc']}  {f['format']} "
                             f"v{f['version']}" + (f"  PROBLEM {f['problem']}" if f["problem"] else ""))
    return "\n".join(lines)


@command
def _cmd_segments(args: argparse.Namespace) -> int:
    out = []
    errors = 0
    with open_targets(args) as (catalog, targets):
        for loc in targets:
            with open_segments(catalog, loc, args.commit) as (record, handles):
                rows = segment_rows(loc, record, handles, with_files=args.files)
                errors += sum(1 for r in rows if r["error"])
                out.append({"index": loc.name, "generation": record.get("generation"), "segments": rows})
    emit(args, {"indices": out}, _segments_text)
    return PROBLEM if errors else OK


# ------------------------------------------------------------------------------------------- files


def list_files(loc: Any, record: dict[str, Any] | None, *, verify: bool) -> list[dict[str, Any]]:
    from segstore.index.check import COMPONENTS, inspect_file, inspect_translog_file
    from segstore.index.file_names import WRITE_LOCK_NAME, live_docs_file_name, parse_segment_name
    from segstore.store import FSDirectory

    ids = {s["name"]: bytes(s["id"]) for s in (record or {}).get("segments") or []}
    referenced: set[str] = set()
    if record:
        from segstore.index.segment_reader import read_segment_info

        directory = FSDirectory(loc.index_dir) if os.path.isdir(loc.index_dir) else None
        for s in record.get("segments") or []:
            if s.get("del_gen"):
                referenced.add(live_docs_file_name(s["name"], int(s["del_gen"])))
            try:
                if directory is not None:
                    referenced.update(read_segment_info(directory, s["name"], bytes(s["id"]), s["codec"]).files)
            except Exception:  # noqa: BLE001 - the unreadable .si is flagged below
                referenced.add(f"{s['name']}.si")
    out = []
    if os.path.isdir(loc.index_dir):
        directory = FSDirectory(loc.index_dir)
        for name in sorted(os.listdir(loc.index_dir)):
            path = os.path.join(loc.index_dir, name)
            if not os.path.isfile(path):
                continue
            if name == WRITE_LOCK_NAME or not name.startswith("_"):
                out.append({"area": "index", "file": name, "size": os.path.getsize(path), "format": None,
                            "component": "lock" if name == WRITE_LOCK_NAME else "other", "referenced": None})
                continue
            try:
                seg = parse_segment_name(name)
            except ValueError:
                seg = None
            rep = inspect_file(directory, name, segment=seg, expected_id=ids.get(seg or ""), verify=verify,
                               referenced=name in referenced)
            d = rep.to_dict()
            d["area"] = "index"
            d["file"] = d.pop("name")
            if not rep.referenced:
                d["problem"] = None  # an unreferenced leftover: its id is not expected to match anything
            out.append(d)
        missing = sorted(referenced - set(os.listdir(loc.index_dir)))
        for name in missing:
            out.append({"area": "index", "file": name, "size": None, "component": COMPONENTS.get(
                name.rsplit(".", 1)[-1], "other"), "referenced": True,
                "problem": {"error": "MissingFileError", "message": f"file is missing: {name}"}})
    if os.path.isdir(loc.translog_dir):
        for name in sorted(os.listdir(loc.translog_dir)):
            rep = inspect_translog_file(loc.translog_dir, name)
            d = rep.to_dict()
            d["area"] = "translog"
            d["file"] = d.pop("name")
            out.append(d)
    return out


@command
def _cmd_files(args: argparse.Namespace) -> int:
    out = []
    bad = 0
    with open_targets(args) as (catalog, targets):
        catalog_files = []
        cdir = os.path.join(targets[0].data_dir if targets else args.path, "catalog")
        for name in sorted(os.listdir(cdir)) if os.path.isdir(cdir) else []:
            catalog_files.append({"area": "catalog", "file": name, "size": os.path.getsize(os.path.join(cdir, name)),
                                  "format": "LMDB", "component": "catalog"})
        for loc in targets:
            try:
                record = catalog.latest_commit(loc.uuid)
            except Exception:  # noqa: BLE001 - the damaged commit is reported by check
                record = None
            files = list_files(loc, record, verify=args.verify)
            bad += sum(1 for f in files if f.get("problem"))
            out.append({"index": loc.name, "uuid": loc.uuid.hex(), "path": loc.root, "files": files})

    def text(r: dict[str, Any]) -> str:
        lines = []
        for idx in r["indices"]:
            lines.append(f"index [{idx['index']}] {idx['path']}")
            rows = [{**f, "file": f"{f['area']}/{f['file']}",
                     "crc": f.get("stored_crc") if not f.get("actual_crc") or f.get("actual_crc") == f.get(
                         "stored_crc") else f"{f.get('stored_crc')}!={f.get('actual_crc')}",
                     "ref": {True: "yes", False: "NO", None: "-"}[f.get("referenced")],
                     "problem": (f["problem"] or {}).get("error") if f.get("problem") else None}
                    for f in idx["files"]]
            lines += ["  " + s for s in _table(rows, ["file", "component", "format", "version", "size", "crc", "ref",
                                                      "problem"], {"size": lambda v: "-" if v is None else v})]
        lines += [f"catalog/{f['file']}  {f['size']}  LMDB" for f in r["catalog"]]
        return "\n".join(lines)

    emit(args, {"indices": out, "catalog": catalog_files}, text)
    return PROBLEM if bad else OK


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
    lines += ["  " + s for s in _table(rows, ["", "path", "stored _source (on disk)", "derived _source (GET)"])]
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
        uncommitted = _translog_summary(loc, catalog.latest_commit(loc.uuid)).get("uncommitted_operations", 0)
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


# ------------------------------------------------------------------------------------------ stats


def index_stats(catalog: Any, loc: Any) -> dict[str, Any]:
    from segstore.index.check import COMPONENTS

    with open_segments(catalog, loc) as (record, handles):
        rows = segment_rows(loc, record, handles)
    by_component: dict[str, int] = {}
    store = 0
    fields: dict[str, dict[str, Any]] = {}
    for r in rows:
        store += r["size"]
        for c, n in r["bytes_by_component"].items():
            by_component[c] = by_component.get(c, 0) + n
        for f in r["fields"]:
            agg = fields.setdefault(f["field"], {
                "dimension": f["dimension"], "data_type": f["data_type"], "space_type": f["space_type"],
                "vectors": 0, "segments": 0, "graphs": 0, "graph_bytes_on_disk": 0, "quantized_bytes_on_disk": 0,
                "graph_kinds": [], "compression": f["compression"], "mode": f["mode"], "derived": f["derived"]})
            agg["vectors"] += f["vectors"] or 0
            agg["segments"] += 1
            if f["graph_file"]:
                agg["graphs"] += 1
                agg["graph_bytes_on_disk"] += f["graph_bytes"]
                if f["graph"] not in agg["graph_kinds"]:
                    agg["graph_kinds"].append(f["graph"])
            if f["quantization"]:
                agg["quantized_bytes_on_disk"] += f["quantization"].get("bytes") or 0
    for agg in fields.values():
        agg["graph_bytes_per_vector"] = round(agg["graph_bytes_on_disk"] / agg["vectors"], 2) if agg["vectors"] else 0
    tl = _translog_summary(loc, record)
    tl_bytes = tl.get("size_in_bytes", 0)
    by_component["translog"] = tl_bytes
    committed_gen = int(record.get("translog_generation", 0) or 0)
    uncommitted_bytes = sum(int(g.get("size") or 0) for g in tl.get("generations") or []
                            if int(g.get("generation", 0)) >= committed_gen)
    _ = COMPONENTS
    return {
        "index": loc.name, "uuid": loc.uuid.hex(),
        "docs": {"count": sum(r["docs.count"] for r in rows), "deleted": sum(r["docs.deleted"] for r in rows),
                 "ids": catalog.pk_count(loc.uuid)},
        "store": {"size_in_bytes": store, "size": human_bytes(store)},
        "segments": {"count": len(rows), "max_doc": sum(r["max_doc"] for r in rows),
                     "errors": [r["segment"] for r in rows if r["error"]]},
        "translog": {"operations": tl.get("operations", 0),
                     "uncommitted_operations": tl.get("uncommitted_operations", 0),
                     "size_in_bytes": tl_bytes, "uncommitted_size_in_bytes": uncommitted_bytes,
                     "generations": [g["generation"] for g in tl.get("generations") or []], "clean": tl.get("clean")},
        "commit": {"generation": record.get("generation"), "max_seq_no": record.get("max_seq_no")},
        "knn": {"fields": fields, "graph_bytes_on_disk": sum(a["graph_bytes_on_disk"] for a in fields.values())},
        "disk_usage": dict(sorted(by_component.items())),
    }


def _stats_text(r: dict[str, Any]) -> str:
    lines = []
    for s in r["indices"]:
        lines.append(f"index [{s['index']}]: {s['docs']['count']} docs ({s['docs']['deleted']} deleted, "
                     f"{s['docs']['ids']} ids), {s['segments']['count']} segments, store {s['store']['size']}, "
                     f"commit gen {s['commit']['generation']}")
        t = s["translog"]
        lines.append(f"  translog: {t['operations']} ops ({t['uncommitted_operations']} uncommitted), "
                     f"{human_bytes(t['size_in_bytes'])}, generations {t['generations']}")
        lines.append("  disk usage: " + ", ".join(f"{k} {human_bytes(v)}" for k, v in s["disk_usage"].items()))
        for name, f in s["knn"]["fields"].items():
            lines.append(f"  knn field [{name}]: {f['vectors']} vectors, dim {f['dimension']} {f['data_type']} "
                         f"{f['space_type']}, {f['graphs']} graph(s) {','.join(f['graph_kinds']) or '-'} "
                         f"{human_bytes(f['graph_bytes_on_disk'])} ({f['graph_bytes_per_vector']} B/vector)"
                         + (f", quantized {human_bytes(f['quantized_bytes_on_disk'])}" if f["quantized_bytes_on_disk"]
                            else "") + (f", derived ({f['derived']})" if f["derived"] else ""))
    c = r["catalog"]
    lines.append(f"catalog: {human_bytes(c['used_bytes'])} used, entries {c['entries']}")
    return "\n".join(lines)


@command
def _cmd_stats(args: argparse.Namespace) -> int:
    with open_targets(args) as (catalog, targets):
        out = [index_stats(catalog, loc) for loc in targets]
        cstats = catalog.stats()
    emit(args, {"indices": out, "catalog": cstats}, _stats_text)
    return PROBLEM if any(s["segments"]["errors"] for s in out) else OK


# ------------------------------------------------------------------------------------------ warmup


@command
def _cmd_warmup(args: argparse.Namespace) -> int:
    from segstore.errors import SegstoreError

    results = []
    failures = 0
    with open_targets(args) as (catalog, targets):
        for loc in targets:
            t0 = time.monotonic()
            fields: dict[str, dict[str, Any]] = {}
            errors = []
            with open_segments(catalog, loc) as (_record, handles):
                work = [(h, f) for h in handles if h.leaf is not None for f in h.leaf.core.graphs.fields()]
                errors += [{"segment": h.name, "error": h.error} for h in handles if h.leaf is None]
                with Progress(len(work), f"warmup {loc.name}", enabled=progress_enabled(args)) as bar:
                    for h, name in work:
                        agg = fields.setdefault(name, {"graphs": 0, "graph_bytes": 0, "quantized_bytes": 0,
                                                       "vectors": 0, "seconds": 0.0})
                        g0 = time.monotonic()
                        try:
                            graph = h.leaf.graph(name)
                            agg["graph_bytes"] += int(graph.memory_bytes()) if graph is not None else 0
                            q = h.leaf.quantized(name)
                            if q is not None:
                                agg["quantized_bytes"] += int(q.memory_bytes())
                            agg["graphs"] += 1
                            values = h.leaf.vector_values(name)
                            agg["vectors"] += values.size if values is not None else 0
                        except (SegstoreError, OSError, ValueError) as e:
                            errors.append({"segment": h.name, "field": name, "error": f"{type(e).__name__}: {e}"})
                        agg["seconds"] = round(agg["seconds"] + time.monotonic() - g0, 4)
                        bar.update(1, f"warmup {loc.name} {h.name}/{name}")
            failures += len(errors)
            total = sum(f["graph_bytes"] + f["quantized_bytes"] for f in fields.values())
            results.append({"index": loc.name, "graphs_loaded": sum(f["graphs"] for f in fields.values()),
                            "memory_bytes": total, "fields": fields, "errors": errors,
                            "seconds": round(time.monotonic() - t0, 3)})

    def text(r: dict[str, Any]) -> str:
        lines = []
        for x in r["indices"]:
            lines.append(f"index [{x['index']}]: {x['graphs_loaded']} graph(s) loaded, "
                         f"{human_bytes(x['memory_bytes'])} "
                         f"in memory, {x['seconds']} s")
            for name, f in x["fields"].items():
                lines.append(f"  {name}: {f['graphs']} graph(s), {f['vectors']} vectors, graph "
                             f"{human_bytes(f['graph_bytes'])}" + (f", quantized {human_bytes(f['quantized_bytes'])}"
                                                                  if f["quantized_bytes"] else ""))
            for e in x["errors"]:
                lines.append(f"  ERROR {e}")
        return "\n".join(lines)

    emit(args, {"indices": results}, text)
    return PROBLEM if failures else OK


# --------------------------------------------------------------------------------------- register


def register(sub: Any) -> None:
    """Add ``info``, ``segments``, ``files``, ``doc``, ``dump``, ``stats`` and ``warmup``."""
    p = sub.add_parser("info", help="commits, settings, mappings, format versions, translog generations",
                       description="Commits, durability, settings, mappings, format versions found in the file "
                                   "headers, translog uuid, generations and operation counts. Read-only.")
    add_common_args(p)
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("segments", help="_cat/segments plus per-field vector, graph and quantization details",
                       description="Like _cat/segments, plus per vector field: vector count, dimension, space, "
                                   "data type, graph kind, compression, quantization state, derived paths, and "
                                   "bytes per file type. Read-only.")
    add_common_args(p)
    p.add_argument("--commit", type=int, default=None, metavar="N", help="commit generation (default: the last)")
    p.add_argument("--files", action="store_true", help="also list each file with its size and CRC")
    p.set_defaults(func=_cmd_segments)

    p = sub.add_parser("files", help="every file with its format, version, size and CRC",
                       description="Every file of the index (segments, translog, catalog) with the format name, "
                                   "version and segment id from its header and the CRC from its footer. Exit 1 "
                                   "if a referenced file is missing or its framing is bad. Read-only.")
    add_common_args(p)
    p.add_argument("--verify", action="store_true", help="recompute every CRC (reads every byte)")
    p.set_defaults(func=_cmd_files)

    p = sub.add_parser("doc", help="one document: stored _source (masked) and derived _source side by side",
                       description="The stored _source exactly as on disk (derived vectors masked) next to the "
                                   "derived _source a GET returns. Exit 1 if the document is not found.")
    p.add_argument("path", metavar="DIR", help="data directory (or an index folder)")
    p.add_argument("id", metavar="ID", help="document id")
    add_common_args(p, path=False, index_help="index name (needed when DIR holds several indices)")
    p.set_defaults(func=_cmd_doc)

    p = sub.add_parser("dump", help="live documents as bulk NDJSON (feeds straight back into _bulk)",
                       description="Live documents of the last commit as _bulk NDJSON on stdout: an index action "
                                   "line and the derived _source per document. Read-only.")
    add_common_args(p, index_help="index name (needed when DIR holds several indices)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="at most N documents")
    p.add_argument("--segment", action="append", default=None, metavar="S", help="only segment S (repeatable)")
    p.add_argument("--target-index", default=None, metavar="NAME", help="_index in the action lines")
    p.add_argument("--with-vectors", action=argparse.BooleanOptionalAction, default=True,
                   help="keep vector fields in _source (default: yes)")
    p.set_defaults(func=_cmd_dump)

    p = sub.add_parser("stats", help="_stats-style counts, k-NN stats and disk usage per component",
                       description="_stats-style document, store, segment and translog counts, k-NN stats per "
                                   "field (vectors, graphs, bytes) and disk usage per component. Read-only.")
    add_common_args(p)
    p.set_defaults(func=_cmd_stats)

    p = sub.add_parser("warmup", help="load every graph and report its memory",
                       description="Load every graph (and quantized codes) of the last commit and report the "
                                   "bytes they take in memory. Verifies that every graph loads and leaves the "
                                   "files in the OS page cache. Read-only.")
    add_common_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_warmup)
