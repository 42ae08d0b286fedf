"""``segstore info | segments | files``: the commits, segments and files of an index. Read-only.

* ``info``: commits, settings, mappings, durability, format versions found in the file headers, translog
  uuid, generations and operation counts, catalog size.
* ``segments``: ``_cat/segments`` columns plus, per vector field, the vector count, dimension, space and data
  type, graph kind (hnswlib / faiss / faiss_binary / ivf / none), compression, mode, quantization state and
  whether the field is derived (vectors re-injected into ``_source``), and bytes per file type;
  ``--files`` adds every file with its size and stored CRC.
* ``files``: every file of the index folder, the translog and the catalog with its format name, version,
  segment id, size and CRC from the header/footer (``--verify`` recomputes each CRC).

Like every inspection command these read the files without the write lock (see
:mod:`segstore_tools.segment_handles`).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from segstore_tools.progress import (
    OK,
    PROBLEM,
    add_command,
    command,
    emit,
    human_bytes,
    index_reports,
    open_targets,
    table,
)
from segstore_tools.segment_handles import (
    open_segments,
    segment_rows,
    translog_summary_of,
)

__all__ = ["index_info", "list_files", "register"]


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
        "translog": translog_summary_of(loc, latest),
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
    emit(args, index_reports(args, index_info), lambda r: _info_text(r["indices"], r["catalog"]))
    return OK


# --------------------------------------------------------------------------------------- segments


def _segments_text(result: dict[str, Any]) -> str:
    lines = []
    for idx in result["indices"]:
        lines.append(f"index [{idx['index']}] commit generation {idx['generation']}")
        rows = idx["segments"]
        lines += table(rows, ["segment", "generation", "docs.count", "docs.deleted", "size", "committed",
                              "searchable", "version", "compound", "codec", "source"], {"size": human_bytes},
                       indent="  ")
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
                lines += table(frows, ["field", "vectors", "dimension", "space_type", "data_type", "graph",
                                       "graph_bytes", "compression", "mode", "quantization", "derived"],
                               {"graph_bytes": human_bytes}, indent="    ")
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
    from segstore.index.file_names import (
        WRITE_LOCK_NAME,
        live_docs_file_name,
        parse_segment_name,
    )
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
            lines += table(rows, ["file", "component", "format", "version", "size", "crc", "ref", "problem"],
                           {"size": lambda v: "-" if v is None else v}, indent="  ")
        lines += [f"catalog/{f['file']}  {f['size']}  LMDB" for f in r["catalog"]]
        return "\n".join(lines)

    emit(args, {"indices": out, "catalog": catalog_files}, text)
    return PROBLEM if bad else OK


# --------------------------------------------------------------------------------------- register


def register(sub: Any) -> None:
    """Add ``info``, ``segments`` and ``files``."""
    add_command(sub, "info", _cmd_info,
                help_text="commits, settings, mappings, format versions, translog generations",
                description="Commits, durability, settings, mappings, format versions found in the file headers, "
                            "translog uuid, generations and operation counts. Read-only.")

    p = add_command(sub, "segments", _cmd_segments,
                    help_text="_cat/segments plus per-field vector, graph and quantization details",
                    description="Like _cat/segments, plus per vector field: vector count, dimension, space, data "
                                "type, graph kind, compression, quantization state, derived paths, and bytes per "
                                "file type. Read-only.")
    p.add_argument("--commit", type=int, default=None, metavar="N", help="commit generation (default: the last)")
    p.add_argument("--files", action="store_true", help="also list each file with its size and CRC")

    p = add_command(sub, "files", _cmd_files, help_text="every file with its format, version, size and CRC",
                    description="Every file of the index (segments, translog, catalog) with the format name, "
                                "version and segment id from its header and the CRC from its footer. Exit 1 if a "
                                "referenced file is missing or its framing is bad. Read-only.")
    p.add_argument("--verify", action="store_true", help="recompute every CRC (reads every byte)")
