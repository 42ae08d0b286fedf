"""``segstore repair``: fix what ``check`` found. A dry run unless confirmed (reliability.md §5, §8 rows 13-15).

``repair DIR [--exorcise] [--rebuild-graphs] [--truncate-translog] [--rebuild-pk] [--yes] [--dry-run]``

The command takes the index write lock (nothing else may write meanwhile), runs CheckIndex (``--level``,
2 by default), prints a backup banner and exactly what each selected repair would do and lose, then:

* with ``--dry-run``, or without ``--yes`` when stdin is not a terminal: stops there (exit 1 if problems);
* on a terminal without ``--yes``: asks ``Confirm [y/N]``;
* with ``--yes``: goes ahead (after a 5 s countdown on a terminal when data would be lost).

Repairs (each selected by its flag; without any flag the command only shows the plan):

``--rebuild-graphs`` (no data loss). Segments are write-once and every file header carries the segment id,
so a graph file cannot be replaced in place. Each segment whose only damage is in graph (``.hnsw``/``.ivf``)
or quantization-state (``.qst``) files is rewritten through ``SegmentMerger`` as a one-input merge into a
new segment: stored fields and canonical vectors are copied (after their full CRC), graphs are rebuilt and
quantization states retrained from the vectors, deleted documents are dropped. Then one catalog commit
swaps the old segment for the new one at the same position and moves every id of the primary-key map to its
new location. A crash before that commit leaves only unreferenced files (removed by the next writer open).

``--exorcise`` (loses data). Writes a new commit without the corrupt segments and removes their ids from the
primary-key map; the report lists every lost id (from the primary-key map, which stays readable whatever
happened to the segment files). Their files are left in place, like Lucene's ``-exorcise``; the next writer
open deletes them.

``--truncate-translog`` (loses operations). ``Translog.truncate_corrupt_tail``: drops every operation from
the first bad record on and says how many are gone. When the checkpoint itself is unreadable, a new empty
translog (new uuid) is created and tied to the index by a new commit; every uncommitted operation is lost.

``--rebuild-live-docs`` (no data loss). A damaged ``.liv`` file is rebuilt from the catalog's primary-key
map, which is committed in the same transaction as the segment list and so names exactly the live documents
of each segment; the rebuilt delete count must equal the commit's, else the command refuses. The new bitset
is written as the next live-docs generation (files are write-once) and published by a new commit.

``--rebuild-pk`` (no data loss). Rewrites the catalog's primary-key map from the live documents of the
segments (the check level is raised to 2).

After the repairs the check runs again; exit code 0 only if the index is then clean. A ``corrupted_*``
marker file is removed once the index checks clean.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from segstore_tools.check import format_status, index_lock, run_check
from segstore_tools.progress import (
    OK,
    PROBLEM,
    Progress,
    add_common_args,
    command,
    confirm,
    countdown,
    emit,
    is_tty,
    open_targets,
    progress_enabled,
)

__all__ = [
    "rebuild_and_exorcise",
    "rebuild_live_docs",
    "rebuild_pk",
    "register",
    "translog_plan",
    "trim_committed_generations",
    "truncate_translog",
]

BANNER = ("    WARNING: segstore repair rewrites the commit point of the index. Make a backup copy of the data\n"
          "    directory first, and make sure no segstore process uses it (the write lock is held now).")


# ------------------------------------------------------------------------------------------ repairs


def _reader_for_rebuild(directory: Any, sci: Any) -> Any:
    """A ``SegmentReader`` whose ``check_integrity`` (called by the merger before it copies anything) skips
    the graph and quantization files: those are the damaged ones, and they are rebuilt, never copied."""
    from segstore.index.segment_reader import SegmentReader

    class _RebuildReader(SegmentReader):
        def check_integrity(self) -> None:
            self.core.stored.check_integrity()
            self.core.vectors.check_integrity()
            self.core.doc_values.check_integrity()

    return _RebuildReader(directory, sci)


def rebuild_and_exorcise(catalog: Any, loc: Any, status: Any, *, exorcise: bool, rebuild: bool,
                         progress: Progress | None = None) -> dict[str, Any]:
    """Apply ``--exorcise`` and/or ``--rebuild-graphs`` in one new commit; returns what was done."""
    from segstore.codec.registry import default_codec
    from segstore.errors import SegstoreError
    from segstore.index.file_names import segment_name
    from segstore.index.index_files import IndexFiles
    from segstore.index.segment_merger import SegmentMerger
    from segstore.index.writer_recovery import load_commit_segments
    from segstore.store import FSDirectory

    record = catalog.latest_commit(loc.uuid)
    if record is None or int(record.get("generation", 0)) != status.generation:
        raise SegstoreError(f"index [{loc.name}] changed since it was checked (generation "
                            f"{None if record is None else record.get('generation')} != {status.generation})")
    bad = {s.name: s for s in status.bad_segments} if exorcise else {}
    rebuild_names = {s.name for s in status.rebuildable_segments
                     if s.needs("graph", "quantization") and not s.needs("live_docs")} if rebuild else set()
    if not bad and not rebuild_names:
        return {"commit_generation": None, "exorcised": [], "rebuilt": [], "lost_ids": [], "docs_lost": 0}
    directory = FSDirectory(loc.index_dir)
    settings, _mappings = IndexFiles.parse_metadata(catalog.get_index(loc.name) or {})
    threshold = max(1, settings.approximate_threshold)
    codec = default_codec()

    def build_graph(fi: Any, count: int) -> bool:
        return fi.attributes.get("knn") == "true" and count >= threshold

    counter = int(record.get("segment_counter", 0))
    entries: list[dict[str, Any]] = []
    pk_updates: dict[str, tuple[Any, ...] | None] = {}
    created: list[str] = []
    rebuilt: list[dict[str, Any]] = []
    lost_ids: list[str] = []
    docs_lost = 0
    try:
        for entry in record.get("segments") or []:
            name = entry["name"]
            if name in bad:
                lost_ids.extend(bad[name].ids_to_lose)
                docs_lost += int(entry["max_doc"]) - int(entry["del_count"])
                for doc_id in bad[name].ids_to_lose:
                    pk_updates[doc_id] = None
                continue
            if name not in rebuild_names:
                entries.append(dict(entry))
                continue
            t0 = time.monotonic()
            (sci,) = load_commit_segments(directory, {"segments": [entry]}, f"catalog:commits/{loc.name}")
            new_name = segment_name(counter)
            counter += 1
            reader = _reader_for_rebuild(directory, sci)
            try:
                result = SegmentMerger(codec, directory, [reader], new_name, build_graph).merge()
            finally:
                reader.dec_ref()
            info = result.commit_info.info
            created.extend(result.commit_info.files())
            moved = 0
            for doc, doc_id in enumerate(result.ids):
                if doc_id is not None:
                    pk_updates[doc_id] = (new_name, doc, int(result.versions[doc]), int(result.seq_nos[doc]))
                    moved += 1
            entries.append({"name": new_name, "id": info.segment_id, "codec": info.codec, "max_doc": info.max_doc,
                            "del_gen": 0, "del_count": 0})
            rebuilt.append({"segment": name, "new_segment": new_name, "docs": info.max_doc, "ids_moved": moved,
                            "deleted_docs_dropped": int(entry["del_count"]),
                            "seconds": round(time.monotonic() - t0, 3)})
            if progress is not None:
                progress.update(1, f"rebuilt {name} -> {new_name}")
        new_record = {k: v for k, v in record.items() if k != "generation"}
        new_record["segments"] = entries
        new_record["segment_counter"] = counter
        new_record["timestamp"] = time.time()
        user_data = dict(record.get("user_data") or {})
        user_data["segstore.repair"] = ",".join(
            (["exorcise:" + "+".join(sorted(bad))] if bad else [])
            + (["rebuild-graphs:" + "+".join(sorted(rebuild_names))] if rebuild_names else []))
        new_record["user_data"] = user_data
        gen = catalog.commit(loc.uuid, new_record, pk_updates)
    except BaseException:
        for f in created:  # nothing references them: the commit never happened
            try:
                directory.delete_file(f)
            except OSError:
                pass
        raise
    return {"commit_generation": gen, "exorcised": sorted(bad), "rebuilt": rebuilt, "lost_ids": sorted(lost_ids),
            "docs_lost": docs_lost}


def rebuild_live_docs(catalog: Any, loc: Any, status: Any) -> dict[str, Any]:
    """Apply ``--rebuild-live-docs``: a new live-docs generation for every segment whose live-docs file is
    damaged, from the primary-key map (committed in the same LMDB transaction as the segment list, so the ids
    it places in a segment are exactly that segment's live documents; nested children follow their root).
    Refuses a segment whose rebuilt delete count differs from the commit's."""
    import numpy as np

    from segstore.codec.registry import codec_for_name
    from segstore.errors import SegstoreError
    from segstore.index.check import read_pk_map
    from segstore.index.file_names import live_docs_file_name
    from segstore.index.segment_info import SegmentCommitInfo
    from segstore.index.segment_reader import SegmentReader, read_segment_info
    from segstore.store import FSDirectory

    record = catalog.latest_commit(loc.uuid)
    if record is None or int(record.get("generation", 0)) != status.generation:
        raise SegstoreError(f"index [{loc.name}] changed since it was checked")
    targets = {s.name for s in status.rebuildable_segments if s.needs("live_docs")}
    if not targets:
        return {"commit_generation": None, "segments": []}
    directory = FSDirectory(loc.index_dir)
    roots: dict[str, list[int]] = {n: [] for n in targets}
    values, bad = read_pk_map(catalog, loc.uuid)
    if bad:
        raise SegstoreError(f"the primary-key map has {len(bad)} damaged entr(ies) ({sorted(bad)[:5]}): rebuild it "
                            "(--rebuild-pk) or exorcise the segment")
    for value in values.values():
        if value and value[0] in roots:
            roots[value[0]].append(int(value[1]))
    entries, done, written = [], [], []
    try:
        for entry in record.get("segments") or []:
            name = entry["name"]
            if name not in targets:
                entries.append(dict(entry))
                continue
            info = read_segment_info(directory, name, bytes(entry["id"]), entry["codec"])
            reader = SegmentReader(directory, SegmentCommitInfo(info, 0, 0))
            try:
                live = np.zeros(info.max_doc, dtype=bool)
                for root in roots[name]:
                    if not 0 <= root < info.max_doc:
                        raise SegstoreError(f"primary-key map places a document at doc {root} of segment {name}, "
                                            f"which has max_doc {info.max_doc}")
                    live[reader.block_start(root):root + 1] = True
            finally:
                reader.dec_ref()
            del_count = int(info.max_doc - live.sum())
            if del_count != int(entry["del_count"]):
                raise SegstoreError(
                    f"cannot rebuild the live docs of segment {name}: the primary-key map leaves {del_count} deleted "
                    f"docs, the commit says {entry['del_count']}; use --exorcise")
            gen = 0
            if del_count:
                gen = int(entry["del_gen"]) + 1
                while directory.file_exists(live_docs_file_name(name, gen)):
                    gen += 1  # write-once names: skip leftovers
                codec_for_name(info.codec).live_docs_format.write(directory, info, live, del_count, gen)
                written.append(live_docs_file_name(name, gen))
            entries.append({**entry, "del_gen": gen})
            done.append({"segment": name, "live_docs": int(live.sum()), "deleted": del_count, "new_del_gen": gen,
                         "file": live_docs_file_name(name, gen) if gen else None})
        new_record = {k: v for k, v in record.items() if k != "generation"}
        user_data = dict(record.get("user_data") or {})
        user_data["segstore.repair"] = "rebuild-live-docs:" + "+".join(sorted(targets))
        new_record.update(segments=entries, user_data=user_data, timestamp=time.time())
        gen_no = catalog.commit(loc.uuid, new_record, {})
    except BaseException:
        for f in written:
            try:
                directory.delete_file(f)
            except OSError:
                pass
        raise
    return {"commit_generation": gen_no, "segments": done}


def _count_records(folder: str) -> int:
    """Well-formed records found in every ``.tlog`` of a folder whose checkpoint is unreadable."""
    from segstore.index.check import read_header
    from segstore.translog.checkpoint import list_translog_files, scan_generation

    tlogs, _ckps, _temps = list_translog_files(folder)
    n = 0
    for g, name in tlogs.items():
        head = read_header(os.path.join(folder, name)) or {}
        try:
            uuid = bytes.fromhex(head.get("segment_id") or "")
            n += scan_generation(folder, g, uuid, None).operations
        except (ValueError, OSError):
            continue
    return n


def translog_plan(status: Any) -> dict[str, Any] | None:
    """What ``--truncate-translog`` would do for this status, or None if the translog is clean."""
    tl = status.translog or {}
    if not tl or tl.get("clean"):
        return None
    if not tl.get("checkpoint_readable", True):
        return {"mode": "recreate", "ops_to_lose": None, "error": tl.get("error"),
                "description": "the checkpoint is unreadable: a new empty translog (new uuid) would replace it and "
                               "every uncommitted operation would be lost"}
    committed = tl.get("damaged_committed_generations") or []
    lose = int(tl.get("ops_to_lose") or 0)
    uncommitted_damage = any(g.get("error") and int(g["generation"]) >= int(tl.get("committed_generation") or 0)
                             for g in tl.get("generations") or [])
    return {"mode": "truncate" if uncommitted_damage else "trim", "ops_to_lose": lose,
            "trim_generations": committed, "committed_generation": tl.get("committed_generation"),
            "first_bad": tl.get("first_bad"),
            "description": (f"generation(s) {committed} hold only committed operations: trimmed, nothing lost"
                            if committed else "")}


def trim_committed_generations(folder: str, committed_generation: int) -> list[str]:
    """Drop the generations below the commit's translog generation (what ``Translog.trim_below`` does after
    a commit; a crash between the catalog commit and the trim leaves them). The checkpoint is rewritten
    atomically first; returns the removed files."""
    from dataclasses import replace

    from segstore.store.fs_directory import fsync_dir
    from segstore.translog.checkpoint import (
        CHECKPOINT_NAME,
        Checkpoint,
        ckp_name,
        list_translog_files,
        write_checkpoint_atomically,
    )

    ckp = Checkpoint.read(os.path.join(folder, CHECKPOINT_NAME))
    if not ckp.min_translog_generation < committed_generation <= ckp.generation:
        return []
    new = replace(ckp, min_translog_generation=committed_generation)
    if os.path.exists(os.path.join(folder, ckp_name(ckp.generation))):  # a crash while rolling left a copy
        write_checkpoint_atomically(folder, ckp_name(ckp.generation), new, sync_dir=False)
    write_checkpoint_atomically(folder, CHECKPOINT_NAME, new)
    tlogs, ckps, _temps = list_translog_files(folder)
    removed = []
    for g, name in sorted([*tlogs.items(), *ckps.items()]):
        if g < committed_generation:
            os.unlink(os.path.join(folder, name))
            removed.append(name)
    fsync_dir(folder)
    return removed


def truncate_translog(catalog: Any, loc: Any, status: Any) -> dict[str, Any]:
    """Apply ``--truncate-translog``; returns what was dropped."""
    from segstore.index.settings import IndexSettings
    from segstore.translog import Translog

    plan = translog_plan(status)
    if plan is None:
        return {"mode": None, "ops_dropped": 0}
    if plan["mode"] in ("trim", "truncate"):
        out: dict[str, Any] = {"mode": plan["mode"], "ops_dropped": 0, "estimated": plan["ops_to_lose"]}
        if plan["trim_generations"]:
            out["trimmed_files"] = trim_committed_generations(loc.translog_dir, int(plan["committed_generation"]))
        if plan["mode"] == "truncate":
            out["ops_dropped"] = Translog.truncate_corrupt_tail(loc.translog_dir)
        return out
    # Unreadable checkpoint: start a new translog and tie it to the index with a new commit.
    found = _count_records(loc.translog_dir)
    record = catalog.latest_commit(loc.uuid) or {}
    meta = catalog.get_index(loc.name) or {}
    settings = IndexSettings.parse(meta.get("settings"))
    new_uuid = os.urandom(16)
    Translog.create(loc.translog_dir, new_uuid, durability=settings.durability,
                    sync_interval=settings.sync_interval, overwrite=True).close()
    new_record = {k: v for k, v in record.items() if k != "generation"}
    new_record.update(translog_uuid=new_uuid, translog_generation=1, timestamp=time.time())
    user_data = dict(record.get("user_data") or {})
    user_data["segstore.repair"] = "recreate-translog"
    new_record["user_data"] = user_data
    gen = catalog.commit(loc.uuid, new_record, {})
    return {"mode": "recreate", "ops_dropped": found, "commit_generation": gen, "translog_uuid": new_uuid.hex(),
            "note": "records counted in the damaged files; committed ones among them are not lost"}


def rebuild_pk(catalog: Any, loc: Any, status: Any) -> dict[str, Any]:
    """Apply ``--rebuild-pk`` from a level-2 status of the current commit (every segment must be readable)."""
    from segstore.errors import SegstoreError
    from segstore.index.check import read_pk_map

    record = catalog.latest_commit(loc.uuid) or {}
    if int(record.get("generation", 0)) != status.generation:
        raise SegstoreError("the index changed since it was checked")
    expected: dict[str, tuple[Any, ...]] = {}
    for s in status.segments:
        if s.live_ids is None:
            raise SegstoreError(f"segment {s.name} could not be read; exorcise or rebuild it first")
        for doc_id, (doc, version, seq_no) in s.live_ids.items():
            expected.setdefault(doc_id, (s.name, doc, version, seq_no))
    actual, bad = read_pk_map(catalog, loc.uuid)
    bad_keys = set(bad)
    updates: dict[str, tuple[Any, ...] | None] = {}
    for doc_id, want in expected.items():
        have = actual.get(doc_id)
        if have is None or doc_id in bad_keys or [str(x) if i == 0 else int(x) for i, x in enumerate(have)] != [
                str(want[0]), int(want[1]), int(want[2]), int(want[3])]:
            updates[doc_id] = want
    for doc_id in [*actual, *bad_keys]:
        if doc_id not in expected:
            updates[doc_id] = None
    if not updates:
        return {"commit_generation": None, "entries_changed": 0}
    new_record = {k: v for k, v in record.items() if k != "generation"}
    user_data = dict(record.get("user_data") or {})
    user_data["segstore.repair"] = "rebuild-pk"
    new_record.update(user_data=user_data, timestamp=time.time())
    gen = catalog.commit(loc.uuid, new_record, updates)
    return {"commit_generation": gen, "entries_changed": len(updates),
            "entries_removed": sum(1 for v in updates.values() if v is None)}


def _remove_markers(loc: Any) -> list[str]:
    removed = []
    if os.path.isdir(loc.index_dir):
        for name in os.listdir(loc.index_dir):
            if name.startswith("corrupted_"):
                os.unlink(os.path.join(loc.index_dir, name))
                removed.append(name)
    return removed


# --------------------------------------------------------------------------------------------- plan


def _plan(status: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The selected repairs for one index, with what each loses, and what stays unfixed."""
    steps: list[dict[str, Any]] = []
    unfixed: list[str] = []
    bad, rebuild = status.bad_segments, status.rebuildable_segments
    if bad:
        if args.exorcise:
            steps.append({"action": "exorcise", "segments": [s.name for s in bad],
                          "docs_to_lose": status.tot_lose_doc_count,
                          "ids_to_lose": sorted(i for s in bad for i in s.ids_to_lose)})
        else:
            unfixed.append(f"{len(bad)} corrupt segment(s) {[s.name for s in bad]}: needs --exorcise "
                           f"({status.tot_lose_doc_count} docs would be lost)")
    live = [s for s in rebuild if s.needs("live_docs")]
    graphs = [s for s in rebuild if s.needs("graph", "quantization")]
    if live:
        if args.rebuild_live_docs:
            steps.append({"action": "rebuild-live-docs", "segments": [s.name for s in live], "docs_to_lose": 0})
        else:
            unfixed.append(f"{len(live)} segment(s) with a damaged live-docs file {[s.name for s in live]}: needs "
                           "--rebuild-live-docs (no data loss)")
    if graphs:
        if args.rebuild_graphs:
            steps.append({"action": "rebuild-graphs", "segments": [s.name for s in graphs], "docs_to_lose": 0,
                          "fields": sorted({p.field or "?" for s in graphs for p in s.problems
                                            if p.component in ("graph", "quantization")})})
        else:
            unfixed.append(f"{len(graphs)} segment(s) with damaged graphs {[s.name for s in graphs]}: needs "
                           "--rebuild-graphs (no data loss)")
    tplan = translog_plan(status)
    if tplan is not None:
        if args.truncate_translog:
            steps.append({"action": "truncate-translog", **tplan})
        else:
            unfixed.append(f"damaged translog: needs --truncate-translog ({tplan.get('ops_to_lose')} ops would be "
                           "lost)")
    pk_problems = [p for p in status.errors if p.component == "pk"]
    if pk_problems:
        if args.rebuild_pk:
            steps.append({"action": "rebuild-pk", "entries": len(pk_problems), "docs_to_lose": 0})
        else:
            unfixed.append(f"{len(pk_problems)} primary-key map problem(s): needs --rebuild-pk (no data loss)")
    markers = sorted(p.file for p in status.errors if p.error == "CorruptionMarker" and p.file)
    if markers:
        steps.append({"action": "remove-markers", "files": markers, "docs_to_lose": 0})
    handled = {"pk", "translog"}
    other = [p for p in status.errors if p.segment is None and p.component not in handled
             and p.error != "CorruptionMarker"]
    unfixed += [f"no automatic repair: {p}" for p in other]
    loses = any(s.get("docs_to_lose") or s.get("ops_to_lose") or s.get("mode") == "recreate" for s in steps)
    return {"steps": steps, "unfixed": unfixed, "loses_data": bool(loses)}


def _plan_text(loc: Any, status: Any, plan: dict[str, Any], verbose: bool) -> list[str]:
    lines = [f"index [{loc.name}] (uuid {loc.uuid.hex()}), commit generation {status.generation}: "
             + ("clean" if status.clean else f"{len(status.errors)} problem(s)")]
    if not status.clean:
        lines += ["  " + line for line in format_status(status, verbose).splitlines()[2:] if line.strip()
                  and ("ERROR" in line or "WARNING" in line or "status=CORRUPT" in line
                       or "status=REBUILDABLE" in line)]
    for s in plan["steps"]:
        a = s["action"]
        if a == "exorcise":
            ids = s["ids_to_lose"]
            shown = ", ".join(ids[:30]) + (f", ... ({len(ids)} ids; --json lists all)" if len(ids) > 30 else "")
            lines.append(f"  --exorcise: drop segment(s) {', '.join(s['segments'])}: WILL LOSE {s['docs_to_lose']} "
                         f"docs" + (f": ids {shown}" if ids else ""))
        elif a == "rebuild-graphs":
            lines.append(f"  --rebuild-graphs: rewrite segment(s) {', '.join(s['segments'])} with graphs rebuilt "
                         f"from the vectors (fields {', '.join(s['fields'])}): no data loss")
        elif a == "rebuild-live-docs":
            lines.append(f"  --rebuild-live-docs: rewrite the live docs of segment(s) {', '.join(s['segments'])} from "
                         "the primary-key map: no data loss")
        elif a == "truncate-translog":
            if s["mode"] == "recreate":
                lines.append(f"  --truncate-translog: {s['description']}")
                continue
            if s.get("trim_generations"):
                lines.append(f"  --truncate-translog: {s['description']}")
            if s["mode"] == "truncate":
                bad = [g for g in (s.get("generations") or []) if g]
                fb = s.get("first_bad") or {}
                lines.append(f"  --truncate-translog: drop operations from the first bad record of an uncommitted "
                             f"generation on: WILL LOSE {s['ops_to_lose']} acknowledged operation(s)"
                             + ("" if s.get("trim_generations") else f" (generation {fb.get('generation')} offset "
                                                                     f"{fb.get('offset')})"))
                _ = bad
        elif a == "remove-markers":
            lines.append(f"  remove corruption marker(s) {', '.join(s['files'])} once everything else checks clean")
        elif a == "rebuild-pk":
            lines.append(f"  --rebuild-pk: rewrite {s['entries']} primary-key entr(ies) from the segments: no data "
                         "loss")
    for u in plan["unfixed"]:
        lines.append(f"  not selected: {u}")
    return lines


# ------------------------------------------------------------------------------------------ command


@command
def _cmd_repair(args: argparse.Namespace) -> int:
    selected = (args.exorcise or args.rebuild_graphs or args.truncate_translog or args.rebuild_pk
                or args.rebuild_live_docs)
    if args.rebuild_pk and args.level < 2:
        args.level = 2
    report: dict[str, Any] = {"dry_run": True, "applied": False, "indices": []}
    text: list[str] = []
    exit_code = OK
    if selected and not args.json:
        sys.stderr.write(BANNER + "\n")
    with open_targets(args) as (catalog, targets):
        for loc in targets:
            with index_lock(loc):
                status = run_check(catalog, loc, args)
                plan = _plan(status, args)
                entry: dict[str, Any] = {"index": loc.name, "uuid": loc.uuid.hex(), "before": status.to_dict(),
                                         "plan": plan, "results": {}, "after": None}
                report["indices"].append(entry)
                text += _plan_text(loc, status, plan, args.verbose_report)
                if not plan["steps"]:
                    if not status.clean:
                        exit_code = PROBLEM
                    continue
                apply = _decide(args, plan, loc, text)
                if not apply:
                    exit_code = PROBLEM
                    continue
                report["dry_run"] = False
                report["applied"] = True
                entry["results"] = _apply(catalog, loc, status, plan, args)
                after = run_check(catalog, loc, args)
                if after.errors and all(p.error == "CorruptionMarker" for p in after.errors):
                    # the marker goes only once everything else checks clean
                    entry["results"]["markers_removed"] = _remove_markers(loc)
                    after = run_check(catalog, loc, args)
                entry["after"] = {"clean": after.clean, "generation": after.generation,
                                  "problems": [p.to_dict() for p in after.errors]}
                text += _results_text(entry["results"])
                text.append(f"  after repair: {'clean' if after.clean else 'NOT CLEAN'} (commit generation "
                            f"{after.generation})")
                text += [f"    ERROR {p}" for p in after.errors[:20]]
                if not after.clean:
                    exit_code = PROBLEM
    if report["dry_run"] and any(e["plan"]["steps"] for e in report["indices"]):
        text.append("DRY RUN: nothing was changed. Re-run with --yes to apply (or answer y on a terminal).")
    elif not selected and any(not e["before"]["clean"] for e in report["indices"]):
        text.append("No repair selected: pass --exorcise, --rebuild-graphs, --rebuild-live-docs, --truncate-translog "
                    "or --rebuild-pk.")
    emit(args, report, lambda _r: "\n".join(text))
    return exit_code


def _decide(args: argparse.Namespace, plan: dict[str, Any], loc: Any, text: list[str]) -> bool:
    if args.dry_run:
        return False
    if args.yes:
        if plan["loses_data"]:
            countdown(args.countdown, f"YOU WILL LOSE DATA in index [{loc.name}]. THIS IS YOUR LAST CHANCE TO "
                                      "CTRL+C!")
        return True
    if is_tty(sys.stdin) and not args.json:
        sys.stdout.write("\n".join(text) + "\n")
        text.clear()
        warn = "YOU MAY LOSE DATA. " if plan["loses_data"] else ""
        return confirm(f"{warn}Apply these repairs to index [{loc.name}]?")
    return False


def _apply(catalog: Any, loc: Any, status: Any, plan: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    actions = {s["action"] for s in plan["steps"]}
    results: dict[str, Any] = {}
    if "rebuild-live-docs" in actions:
        results["live_docs"] = rebuild_live_docs(catalog, loc, status)
        if actions & {"exorcise", "rebuild-graphs"}:
            status = run_check(catalog, loc, args)  # the segment list changed: plan the rest on the new commit
    n = len(status.rebuildable_segments) if "rebuild-graphs" in actions else 0
    with Progress(n, f"repair {loc.name}", enabled=progress_enabled(args)) as bar:
        if actions & {"exorcise", "rebuild-graphs"}:
            results["segments"] = rebuild_and_exorcise(catalog, loc, status, exorcise="exorcise" in actions,
                                                       rebuild="rebuild-graphs" in actions, progress=bar)
    if "truncate-translog" in actions:
        results["translog"] = truncate_translog(catalog, loc, status)
    if "rebuild-pk" in actions:
        fresh = run_check(catalog, loc, args, level=max(2, args.level))
        results["pk"] = rebuild_pk(catalog, loc, fresh)
    return results


def _results_text(results: dict[str, Any]) -> list[str]:
    lines = []
    ld = results.get("live_docs")
    if ld and ld.get("commit_generation"):
        for r in ld["segments"]:
            lines.append(f"  rebuilt live docs of {r['segment']}: {r['live_docs']} live, {r['deleted']} deleted "
                         f"({r['file'] or 'no deletes file'})")
        lines.append(f"  wrote commit generation {ld['commit_generation']}")
    seg = results.get("segments")
    if seg and seg.get("commit_generation"):
        if seg["exorcised"]:
            lines.append(f"  exorcised {', '.join(seg['exorcised'])}: {seg['docs_lost']} docs lost "
                         f"({len(seg['lost_ids'])} ids)")
        for r in seg["rebuilt"]:
            lines.append(f"  rebuilt {r['segment']} as {r['new_segment']}: {r['docs']} docs, {r['ids_moved']} ids "
                         f"moved, {r['deleted_docs_dropped']} deleted docs dropped, {r['seconds']} s")
        lines.append(f"  wrote commit generation {seg['commit_generation']}")
    tl = results.get("translog")
    if tl and tl.get("mode"):
        if tl.get("trimmed_files"):
            lines.append(f"  translog: trimmed committed generation files {', '.join(tl['trimmed_files'])} (nothing "
                         "lost)")
        if tl["mode"] == "truncate":
            lines.append(f"  translog truncated: {tl['ops_dropped']} acknowledged operation(s) dropped")
        elif tl["mode"] == "recreate":
            lines.append(f"  translog recreated (uuid {tl.get('translog_uuid')}): {tl['ops_dropped']} record(s) in the "
                         "damaged files dropped")
    pk = results.get("pk")
    if pk and pk.get("commit_generation"):
        lines.append(f"  primary-key map: {pk['entries_changed']} entr(ies) rewritten, commit generation "
                     f"{pk['commit_generation']}")
    if results.get("markers_removed"):
        lines.append(f"  removed corruption marker(s): {', '.join(results['markers_removed'])}")
    return lines


def register(sub: Any) -> None:
    """Add ``repair``."""
    p = sub.add_parser("repair", help="fix what check found (dry run unless confirmed; takes the write lock)",
                       description=__doc__.split("\n\n")[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--exorcise", action="store_true", help="drop corrupt segments (LOSES their documents)")
    p.add_argument("--rebuild-graphs", action="store_true",
                   help="rebuild damaged graphs / quantization states from the vectors (no data loss)")
    p.add_argument("--truncate-translog", action="store_true",
                   help="drop a corrupt translog tail (LOSES the operations from the first bad record on)")
    p.add_argument("--rebuild-live-docs", action="store_true",
                   help="rewrite damaged live-docs files from the primary-key map (no data loss)")
    p.add_argument("--rebuild-pk", action="store_true",
                   help="rewrite the primary-key map from the segments (no data loss)")
    p.add_argument("--yes", "-y", action="store_true", help="apply without asking")
    p.add_argument("--dry-run", action="store_true", help="only show what would be done (the default without "
                                                          "--yes when stdin is not a terminal)")
    p.add_argument("--level", type=int, choices=(1, 2, 3), default=2, help="check level used to find problems "
                                                                           "(default 2)")
    p.add_argument("--countdown", type=float, default=5.0, metavar="SECONDS",
                   help="with --yes on a terminal, seconds to wait before losing data (default 5)")
    p.add_argument("--verbose-report", "-V", action="store_true", help="list every problem")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_repair, segment=None, fail_fast=False, threads=1, min_recall=0.5)
