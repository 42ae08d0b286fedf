"""Maintenance: ``segstore force-merge | export | import``.

``force-merge DIR [--max-segments N | --only-expunge-deletes]`` opens the index writer (replaying the
translog), merges like ``POST /{index}/_forcemerge`` and commits. Before it starts it checks the free space:
a merge writes its output next to its inputs, which are only deleted by the commit that follows, so it needs
up to the size of the index again plus graph-build temp files; the command requires 2x the index size free
(``--skip-space-check`` to override). It reports segments and documents before and after, the deleted
documents expunged, and the peak extra bytes the index folder took while merging (sampled).

``export DIR [-o FILE] [--format bulk|ndjson] [--no-with-vectors] [--definition FILE]`` writes the live
documents of the last commit (derived ``_source``: vectors re-injected) as ``_bulk`` NDJSON (action line +
source) or as one ``{"_index","_id","_version","_seq_no","_source"}`` object per line; ``--definition``
also writes the index's settings and mappings, which ``import --definition`` uses to create the index.

``import DIR FILE [--index NAME] [--definition FILE]`` sends a file in either format through the bulk API of
the embedded client (``segstore.connect(DIR)``), in batches, refreshes and flushes. Exit 1 if any document
was rejected (the first errors are shown).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from typing import IO, Any

from segstore_tools.inspect_documents import bulk_lines, iter_documents
from segstore_tools.progress import (
    OK,
    PROBLEM,
    Progress,
    UsageError,
    add_common_args,
    command,
    emit,
    fail,
    human_bytes,
    open_targets,
    print_json,
    progress_enabled,
)
from segstore_tools.segment_handles import open_segments, segment_files

__all__ = ["export_index", "force_merge_index", "import_file", "index_bytes", "register"]


# ------------------------------------------------------------------------------------- force-merge


def index_bytes(catalog: Any, loc: Any) -> int:
    """Bytes of the files the last commit references."""
    total = 0
    with open_segments(catalog, loc, open_readers=False) as (_record, handles):
        for h in handles:
            for f in segment_files(h):
                try:
                    total += os.path.getsize(os.path.join(loc.index_dir, f))
                except OSError:
                    pass
    return total


def _folder_bytes(path: str) -> int:
    total = 0
    try:
        with os.scandir(path) as it:
            for e in it:
                try:
                    if e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    except OSError:
        pass
    return total


class _Sampler(threading.Thread):
    """Samples the index folder size (peak) and the writer's segment count (progress) while merging."""

    def __init__(self, path: str, writer: Any, bar: Progress, start_segments: int) -> None:
        super().__init__(name="segstore-force-merge-sampler", daemon=True)
        self.path, self.writer, self.bar, self.start_segments = path, writer, bar, start_segments
        self.peak = _folder_bytes(path)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.05):
            self.peak = max(self.peak, _folder_bytes(self.path))
            try:
                now = len(self.writer.segments())
            except Exception:  # noqa: BLE001 - the writer may be closing
                continue
            self.bar.set(max(0, self.start_segments - now))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, _folder_bytes(self.path))


def force_merge_index(catalog: Any, loc: Any, args: argparse.Namespace) -> dict[str, Any]:
    import segstore

    size = index_bytes(catalog, loc)
    free = shutil.disk_usage(loc.index_dir).free
    need = 2 * size
    out: dict[str, Any] = {"index": loc.name, "index_bytes": size, "free_bytes": free, "required_free_bytes": need}
    if free < need and not args.skip_space_check:
        out["error"] = (f"not enough free space for a force merge of [{loc.name}]: {human_bytes(free)} free, "
                        f"{human_bytes(need)} required (2x the index size); free some space or pass "
                        "--skip-space-check")
        return out
    t0 = time.monotonic()
    w = segstore.open_index(loc.data_dir, loc.name, catalog=catalog)
    try:
        before = w.stats()
        names_before = [s.name for s in w.segments()]
        target = (sum(1 for s in w.segments() if s.del_count) if args.only_expunge_deletes
                  else max(0, len(names_before) - args.max_segments + 1))
        with Progress(target, f"force-merge {loc.name}", enabled=progress_enabled(args)) as bar:
            sampler = _Sampler(loc.index_dir, w, bar, len(names_before))
            base = _folder_bytes(loc.index_dir)
            sampler.start()
            try:
                results = w.force_merge(args.max_segments, only_expunge_deletes=args.only_expunge_deletes)
            finally:
                sampler.stop()
        after = w.stats()
        names_after = [s.name for s in w.segments()]
        replayed = int(getattr(w, "replayed_ops", 0))
    finally:
        w.close(commit=False)
    merges = []
    for r in results or []:
        ci = getattr(r, "commit_info", None)
        merges.append({"segment": getattr(ci, "name", None),
                       "docs": getattr(getattr(ci, "info", None), "max_doc", None),
                       "timings": {k: round(v, 4) for k, v in (getattr(r, "timings", None) or {}).items()}})
    out.update({
        "replayed_ops": replayed, "segments_before": names_before, "segments_after": names_after,
        "docs_before": before.get("docs"), "docs_after": after.get("docs"),
        "deleted_before": before.get("deleted_docs"), "deleted_after": after.get("deleted_docs"),
        "expunged_deletes": int(before.get("deleted_docs", 0)) - int(after.get("deleted_docs", 0)),
        "merges": merges, "commit_generation": after.get("commit_generation"),
        # The merged segments exist next to their inputs until the commit, so their size is a floor of the
        # peak; the sampler (which can miss a short merge) may add temporary files seen in flight.
        "peak_extra_bytes": max(sampler.peak - base, _new_segment_bytes(loc.index_dir, names_before, names_after)),
        "index_bytes_after": index_bytes(catalog, loc),
        "seconds": round(time.monotonic() - t0, 3),
    })
    return out


def _new_segment_bytes(index_dir: str, before: list[str], after: list[str]) -> int:
    new = set(after) - set(before)
    total = 0
    for name in os.listdir(index_dir):
        if name.split(".", 1)[0].split("_")[1:2] and "_" + name.split(".", 1)[0].split("_")[1] in new:
            total += os.path.getsize(os.path.join(index_dir, name))
    return total


def _merge_text(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        if r.get("error"):
            lines.append(f"index [{r['index']}]: ERROR {r['error']}")
            continue
        lines.append(f"index [{r['index']}]: {len(r['segments_before'])} -> {len(r['segments_after'])} segments "
                     f"{r['segments_after']}, {r['docs_after']} docs, {r['expunged_deletes']} deleted docs expunged, "
                     f"{len(r['merges'])} merge(s), commit generation {r['commit_generation']}, {r['seconds']} s")
        lines.append(f"  size {human_bytes(r['index_bytes'])} -> {human_bytes(r['index_bytes_after'])}; peak extra "
                     f"{human_bytes(r['peak_extra_bytes'])} while merging (free before: {human_bytes(r['free_bytes'])})"
                     + (f"; replayed {r['replayed_ops']} translog op(s) first" if r["replayed_ops"] else ""))
    return "\n".join(lines)


@command
def _cmd_force_merge(args: argparse.Namespace) -> int:
    if args.max_segments is not None and args.max_segments < 1:
        return fail(args, 2, f"--max-segments must be >= 1, got {args.max_segments}", "UsageError")
    if args.max_segments is None:
        args.max_segments = 1
    results = []
    with open_targets(args) as (catalog, targets):
        for loc in targets:
            results.append(force_merge_index(catalog, loc, args))
    emit(args, {"indices": results}, lambda r: _merge_text(r["indices"]))
    return PROBLEM if any(r.get("error") for r in results) else OK


# ------------------------------------------------------------------------------------------ export


def export_index(catalog: Any, loc: Any, out: IO[str], *, fmt: str, with_vectors: bool, target: str,
                 progress: Progress | None = None) -> int:
    n = 0
    for doc in iter_documents(catalog, loc, with_vectors=with_vectors, progress=progress):
        if fmt == "bulk":
            out.write(bulk_lines(doc, target))
        else:
            line = {"_index": target, "_id": doc["_id"], "_version": doc["_version"], "_seq_no": doc["_seq_no"]}
            if doc.get("_routing") is not None:
                line["_routing"] = doc["_routing"]
            line["_source"] = doc["_source"]
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
        n += 1
    return n


@command
def _cmd_export(args: argparse.Namespace) -> int:
    with open_targets(args, single=True) as (catalog, targets):
        loc = targets[0]
        meta = catalog.get_index(loc.name) or {}
        if args.definition:
            with open(args.definition, "w", encoding="utf-8") as fh:
                json.dump({"settings": meta.get("settings") or {}, "mappings": meta.get("mappings") or {}}, fh,
                          indent=2, sort_keys=True)
                fh.write("\n")
        to_stdout = args.output in (None, "-")
        if to_stdout and args.json:
            return fail(args, 2, "--json needs -o FILE (stdout carries the documents otherwise)", "UsageError")
        t0 = time.monotonic()
        out = sys.stdout if to_stdout else open(args.output, "w", encoding="utf-8")
        try:
            with Progress(None, f"export {loc.name}", enabled=progress_enabled(args) and not to_stdout) as bar:
                n = export_index(catalog, loc, out, fmt=args.format, with_vectors=args.with_vectors,
                                 target=args.target_index or loc.name, progress=bar)
        finally:
            if not to_stdout:
                out.close()
    result = {"index": loc.name, "documents": n, "format": args.format, "with_vectors": args.with_vectors,
              "output": None if to_stdout else os.path.abspath(args.output), "definition": args.definition,
              "bytes": None if to_stdout else os.path.getsize(args.output), "seconds": round(time.monotonic() - t0, 3)}
    if to_stdout:
        sys.stderr.write(f"segstore export: {n} documents of [{loc.name}]\n")
    else:
        emit(args, result, lambda r: f"exported {r['documents']} documents of [{r['index']}] to {r['output']} "
                                     f"({r['format']}, {human_bytes(r['bytes'])}, {r['seconds']} s)"
                                     + (f"; definition in {r['definition']}" if r["definition"] else ""))
    return OK


# ------------------------------------------------------------------------------------------ import


_ACTIONS = ("index", "create", "update", "delete")


def _read_pairs(fh: IO[str], index: str | None) -> Any:
    """Yield ``(action_line, source_line or None)`` from a bulk or hit-style NDJSON stream."""
    lines = (line for line in fh if line.strip())
    for line in lines:
        obj = json.loads(line)
        if isinstance(obj, dict) and len(obj) == 1 and next(iter(obj)) in _ACTIONS:
            op = next(iter(obj))
            meta = dict(obj[op] or {})
            if index:
                meta["_index"] = index
            if not meta.get("_index"):
                raise UsageError("a bulk action line has no _index: pass --index NAME")
            source = None if op == "delete" else next(lines)
            yield json.dumps({op: meta}), source
        elif isinstance(obj, dict) and "_source" in obj:
            target = index or obj.get("_index")
            if not target:
                raise UsageError("a document line has no _index: pass --index NAME")
            meta = {"_index": target}
            if obj.get("_id") is not None:
                meta["_id"] = obj["_id"]
            if obj.get("_routing") is not None:
                meta["routing"] = obj["_routing"]
            yield json.dumps({"index": meta}), json.dumps(obj["_source"], ensure_ascii=False)
        else:
            raise UsageError(f"not a bulk action or document line: {line[:120]!r}")


def import_file(data_dir: str, path: str, *, index: str | None, definition: dict[str, Any] | None,
                batch_size: int, refresh: bool, auto_create: bool, progress: Progress | None = None) -> dict[str, Any]:
    import segstore

    client = segstore.connect(data_dir)
    counts: dict[str, int] = {}
    errors: list[dict[str, Any]] = []
    failed = sent = 0
    touched: set[str] = set()
    t0 = time.monotonic()
    try:
        if index and not client.indices.exists(index=index):
            if definition is not None:
                client.indices.create(index=index, body=definition)
            elif not auto_create:
                raise UsageError(f"index [{index}] does not exist: pass --definition FILE (written by `segstore export "
                                 "--definition`) or --auto-create (dynamic mapping: vectors become plain floats)")
        fh = sys.stdin if path == "-" else open(path, encoding="utf-8")
        try:
            batch: list[str] = []

            def flush() -> None:
                nonlocal failed, sent
                if not batch:
                    return
                resp = client.bulk(body="\n".join(batch) + "\n")
                for item in resp.get("items", []):
                    (op, res), = item.items()
                    status = int(res.get("status", 500))
                    touched.add(res.get("_index") or index or "")
                    if status >= 300:
                        failed += 1
                        if len(errors) < 10:
                            errors.append({"_id": res.get("_id"), "status": status, "error": res.get("error")})
                    else:
                        key = res.get("result") or op
                        counts[key] = counts.get(key, 0) + 1
                    sent += 1
                if progress is not None:
                    progress.set(sent)
                batch.clear()

            n_docs = 0
            for action, source in _read_pairs(fh, index):
                if not index and not auto_create and definition is None:
                    target = json.loads(action)[next(iter(json.loads(action)))]["_index"]
                    if not client.indices.exists(index=target):
                        raise UsageError(f"index [{target}] does not exist: pass --definition FILE or --auto-create")
                batch.append(action)
                if source is not None:
                    batch.append(source.rstrip("\n"))
                n_docs += 1
                if n_docs % batch_size == 0:
                    flush()
            flush()
        finally:
            if fh is not sys.stdin:
                fh.close()
        targets = sorted(t for t in touched if t)
        if refresh and targets:
            client.indices.refresh(index=",".join(targets))
        if targets:
            client.indices.flush(index=",".join(targets))
    finally:
        client.close()
    return {"file": path, "indices": sorted(t for t in touched if t), "operations": sent, "failed": failed,
            "results": counts, "errors": errors, "seconds": round(time.monotonic() - t0, 3)}


@command
def _cmd_import(args: argparse.Namespace) -> int:
    from segstore.index.check import NotADataDirectoryError, find_data_dir

    if args.batch_size < 1:
        return fail(args, 2, f"--batch-size must be >= 1, got {args.batch_size}", "UsageError")
    if args.file != "-" and not os.path.isfile(args.file):
        return fail(args, 2, f"no such file: {args.file}", "UsageError")
    index = args.index[0] if args.index else None
    if args.index and len(args.index) > 1:
        return fail(args, 2, "import takes one --index", "UsageError")
    try:
        data_dir, _ = find_data_dir(args.path)
    except NotADataDirectoryError:
        if os.path.exists(args.path) and (not os.path.isdir(args.path) or os.listdir(args.path)):
            raise
        data_dir = os.path.abspath(args.path)  # a new, empty data directory
    definition = None
    if args.definition:
        with open(args.definition, encoding="utf-8") as fh:
            definition = json.load(fh)
    total = os.path.getsize(args.file) if args.file != "-" else None
    with Progress(None, "import", enabled=progress_enabled(args)) as bar:
        result = import_file(data_dir, args.file, index=index, definition=definition, batch_size=args.batch_size,
                             refresh=not args.no_refresh, auto_create=args.auto_create, progress=bar)
    result["data_dir"] = data_dir
    result["file_bytes"] = total
    emit(args, result, lambda r: (f"imported {r['operations'] - r['failed']} of {r['operations']} operations into "
                                  f"{', '.join(r['indices']) or '-'} ({r['results']}), {r['failed']} failed, "
                                  f"{r['seconds']} s" + "".join(f"\n  FAILED {e}" for e in r["errors"])))
    return PROBLEM if result["failed"] else OK


def register(sub: Any) -> None:
    """Add ``force-merge``, ``export`` and ``import``."""
    p = sub.add_parser("force-merge", help="merge segments (writes; free-space check first)",
                       description=__doc__.split("\n\n")[1])
    add_common_args(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--max-segments", type=int, default=None, metavar="N", help="merge down to N segments (default 1)")
    g.add_argument("--only-expunge-deletes", action="store_true", help="only rewrite segments with deletions")
    p.add_argument("--skip-space-check", action="store_true", help="do not require 2x the index size free")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_force_merge)

    p = sub.add_parser("export", help="live documents as bulk NDJSON (or one document per line)",
                       description=__doc__.split("\n\n")[2])
    add_common_args(p, index_help="index name (needed when DIR holds several indices)")
    p.add_argument("-o", "--output", default=None, metavar="FILE", help="output file (default: stdout)")
    p.add_argument("--format", choices=("bulk", "ndjson"), default="bulk", help="bulk (default) or ndjson")
    p.add_argument("--with-vectors", action=argparse.BooleanOptionalAction, default=True,
                   help="keep vector fields in _source (default: yes)")
    p.add_argument("--target-index", default=None, metavar="NAME", help="_index written into each line")
    p.add_argument("--definition", default=None, metavar="FILE", help="also write settings and mappings as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("import", help="load bulk NDJSON through the embedded client's bulk API (writes)",
                       description=__doc__.split("\n\n")[3])
    p.add_argument("path", metavar="DIR", help="data directory (created if it does not exist)")
    p.add_argument("file", metavar="FILE", help="bulk or ndjson file written by export/dump ('-' = stdin)")
    add_common_args(p, path=False, index_help="target index (overrides _index of every line)")
    p.add_argument("--definition", default=None, metavar="FILE", help="create the index from this settings+mappings "
                                                                       "JSON if it does not exist")
    p.add_argument("--auto-create", action="store_true", help="let the bulk API create missing indices dynamically")
    p.add_argument("--batch-size", type=int, default=500, metavar="N", help="documents per bulk request (default 500)")
    p.add_argument("--no-refresh", action="store_true", help="do not refresh after importing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_import)
    _ = print_json
