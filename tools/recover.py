"""``segstore recover`` and ``segstore translog [inspect|truncate]``.

``recover DIR [--dry-run]`` replays the translog into a new commit: it reads the acknowledged operations
newer than the last commit (read-only) to report them, opens the index writer (which replays exactly those,
removes files no commit references, e.g. the half-written segment of a flush or merge that was killed, and
rolls the translog), commits, and reports the operations replayed and the last sequence number. Running it
again replays nothing and changes nothing (the result is the same). A damaged translog is never replayed
past its damage: the command stops and points to ``repair --truncate-translog``.

``translog DIR inspect`` shows the checkpoint, every generation (operations, size, unacknowledged bytes),
the first bad offset and how many operations the last commit does not hold yet. ``translog DIR truncate``
is ``repair --truncate-translog`` (write lock, dry run unless ``--yes``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from segstore_tools.check import index_lock
from segstore_tools.progress import (
    OK,
    PROBLEM,
    USAGE,
    add_common_args,
    command,
    emit,
    fail,
    human_bytes,
    open_targets,
)

__all__ = ["pending_operations", "recover_index", "register"]


def pending_operations(loc: Any, record: dict[str, Any]) -> dict[str, Any]:
    """The acknowledged operations the commit ``record`` does not hold (read-only)."""
    from segstore.index.check import iter_translog_ops

    committed = int(record.get("max_seq_no", -1))
    ops = [op for op in iter_translog_ops(loc.translog_dir, int(record.get("translog_generation", 1)))
           if int(op["seq_no"]) > committed]
    kinds: dict[str, int] = {}
    for op in ops:
        kinds[op["op"]] = kinds.get(op["op"], 0) + 1
    return {"operations": len(ops), "by_type": kinds,
            "first_seq_no": min((int(o["seq_no"]) for o in ops), default=None),
            "last_seq_no": max((int(o["seq_no"]) for o in ops), default=None),
            "ids": list(dict.fromkeys(str(o.get("id")) for o in ops)),
            "ops": [{"op": o["op"], "id": o.get("id"), "seq_no": o["seq_no"], "version": o.get("version")}
                    for o in ops]}


def _leftovers(loc: Any, record: dict[str, Any]) -> list[str]:
    """Files of the index folder that the commit does not reference (a writer open deletes them)."""
    from segstore.index.file_names import WRITE_LOCK_NAME, live_docs_file_name
    from segstore.index.segment_reader import read_segment_info
    from segstore.store import FSDirectory

    if not os.path.isdir(loc.index_dir):
        return []
    directory = FSDirectory(loc.index_dir)
    referenced = {WRITE_LOCK_NAME}
    for s in record.get("segments") or []:
        try:
            referenced.update(read_segment_info(directory, s["name"], bytes(s["id"]), s["codec"]).files)
        except Exception:  # noqa: BLE001 - the writer open reports it
            pass
        if s.get("del_gen"):
            referenced.add(live_docs_file_name(s["name"], int(s["del_gen"])))
    return sorted(n for n in os.listdir(loc.index_dir) if n not in referenced)


def recover_index(catalog: Any, loc: Any, *, dry_run: bool) -> dict[str, Any]:
    """Replay the translog of one index into a new commit (or, ``dry_run``, only report what would be)."""
    import segstore
    from segstore.index.check import translog_summary
    from segstore.translog import Translog

    record = catalog.latest_commit(loc.uuid) or {}
    summary = translog_summary(Translog.inspect(loc.translog_dir), record)
    out: dict[str, Any] = {"index": loc.name, "dry_run": dry_run, "commit_generation_before": record.get("generation"),
                           "max_seq_no_before": record.get("max_seq_no"), "translog_clean": summary["clean"]}
    if not summary["clean"]:
        why = (summary.get("first_bad") or {}).get("error") or summary["error"]
        out["error"] = (f"the translog is damaged ({why});"
                        " nothing was replayed. See `segstore translog DIR inspect`, then `segstore repair "
                        "--truncate-translog`")
        out["translog"] = summary
        return out
    pending = pending_operations(loc, record)
    leftovers = _leftovers(loc, record)
    out["pending"] = {k: v for k, v in pending.items() if k != "ops"}
    out["leftover_files"] = leftovers
    if dry_run:
        out["would_replay"] = pending["operations"]
        out["ops"] = pending["ops"]
        return out
    from segstore.errors import LockObtainFailedError, SegstoreError

    try:
        w = segstore.open_index(loc.data_dir, loc.name, catalog=catalog)
    except LockObtainFailedError:
        raise
    except SegstoreError as e:
        out["error"] = (f"the index does not open: {type(e).__name__}: {e}; nothing was replayed. Run `segstore check "
                        "--level 2`, then `segstore repair`")
        return out
    try:
        replayed = int(getattr(w, "replayed_ops", 0))
        gen = w.commit() if replayed else None
        stats = w.stats()
    finally:
        w.close(commit=False)
    after = catalog.latest_commit(loc.uuid) or {}
    out.update({
        "replayed": replayed, "by_type": pending["by_type"], "first_seq_no": pending["first_seq_no"],
        "last_seq_no": after.get("max_seq_no"), "commit_generation_after": gen if gen is not None else
        record.get("generation"), "committed": gen is not None, "docs": stats.get("docs"),
        "deleted_docs": stats.get("deleted_docs"), "segments": stats.get("segments"),
        "leftover_files_removed": [f for f in leftovers if not os.path.exists(os.path.join(loc.index_dir, f))],
        "ops": pending["ops"],
    })
    if replayed != pending["operations"]:
        out["warning"] = f"the writer replayed {replayed} operations, the translog holds {pending['operations']}"
    return out


def _recover_text(results: list[dict[str, Any]], show: int) -> str:
    lines = []
    for r in results:
        if r.get("error"):
            lines.append(f"index [{r['index']}]: ERROR {r['error']}")
            continue
        if r["dry_run"]:
            p = r["pending"]
            lines.append(f"index [{r['index']}]: would replay {p['operations']} operation(s) {p['by_type']} "
                         f"(seq_no {p['first_seq_no']}..{p['last_seq_no']}) into a new commit after generation "
                         f"{r['commit_generation_before']}")
        elif r["replayed"]:
            lines.append(f"index [{r['index']}]: replayed {r['replayed']} operation(s) {r['by_type']} (seq_no "
                         f"{r['first_seq_no']}..{r['last_seq_no']}), committed generation "
                         f"{r['commit_generation_after']}; last seq_no {r['last_seq_no']}; {r['docs']} docs in "
                         f"{r['segments']} segments")
        else:
            lines.append(f"index [{r['index']}]: nothing to replay (last seq_no {r['last_seq_no']}, commit generation "
                         f"{r['commit_generation_after']}); {r['docs']} docs in {r['segments']} segments")
        for op in r.get("ops", [])[:show]:
            lines.append(f"    {op['seq_no']:>8}  {op['op']:<6} {op['id']}  v{op['version']}")
        if len(r.get("ops", [])) > show:
            lines.append(f"    ... {len(r['ops']) - show} more (--show N, or --json)")
        removed = r.get("leftover_files_removed") if not r["dry_run"] else r.get("leftover_files")
        if removed:
            lines.append(f"  {'removed' if not r['dry_run'] else 'would remove'} {len(removed)} file(s) no commit "
                         "references (left by an interrupted flush or merge, or by a repair): "
                         f"{', '.join(removed[:12])}"
                         + (" ..." if len(removed) > 12 else ""))
        if r.get("warning"):
            lines.append(f"  WARNING {r['warning']}")
    return "\n".join(lines)


@command
def _cmd_recover(args: argparse.Namespace) -> int:
    results = []
    with open_targets(args) as (catalog, targets):
        for loc in targets:
            results.append(recover_index(catalog, loc, dry_run=args.dry_run))
    emit(args, {"indices": results}, lambda r: _recover_text(r["indices"], args.show))
    return PROBLEM if any(r.get("error") for r in results) else OK


# ------------------------------------------------------------------------------------------ translog


def _translog_text(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        tl = r["translog"]
        ckp = tl.get("checkpoint") or {}
        lines.append(f"index [{r['index']}] translog {tl.get('path')}: {'clean' if tl['clean'] else 'DAMAGED'}")
        if not ckp:
            lines.append(f"  checkpoint unreadable: {tl.get('error')}")
        else:
            lines.append(f"  checkpoint: generation {ckp['generation']}, offset {ckp['offset']}, {ckp['num_ops']} ops, "
                         f"seq_no {ckp['min_seq_no']}..{ckp['max_seq_no']}, min generation "
                         f"{ckp['min_translog_generation']}, uuid {ckp['translog_uuid']}")
        lines.append(f"  commit: generation {r['commit_generation']}, translog generation "
                     f"{tl['committed_generation']}, "
                     f"max_seq_no {r['max_seq_no']}; {tl.get('uncommitted_operations', 0)} uncommitted op(s)")
        for g in tl.get("generations") or []:
            gckp = g.get("checkpoint") or {}
            lines.append(f"  generation {g['generation']:>4} {g['file']:<20} {g['operations']:>6} ops "
                         f"(checkpoint {gckp.get('num_ops', '?')}), {human_bytes(g['size'])}, unacknowledged "
                         f"{g.get('unacknowledged_bytes')} b" + (f"  ERROR at offset {g.get('first_bad_offset')}: "
                                                                  f"{g['error']}" if g.get("error") else ""))
        if tl.get("first_bad"):
            fb = tl["first_bad"]
            lines.append(f"  first bad record: generation {fb['generation']} {fb['file']} offset {fb['offset']}")
            lines.append(f"  -> segstore repair --truncate-translog would drop {tl.get('ops_to_lose')} acknowledged "
                         "uncommitted operation(s)" + (f" and trim committed generation(s) "
                                                       f"{tl['damaged_committed_generations']}"
                                                       if tl.get("damaged_committed_generations") else ""))
        if tl.get("stray_files"):
            lines.append(f"  stray files (deleted by the next open): {', '.join(tl['stray_files'])}")
        if r.get("truncate"):
            t = r["truncate"]
            lines.append(f"  truncate: {t}")
    return "\n".join(lines)


@command
def _cmd_translog(args: argparse.Namespace) -> int:
    from segstore_tools.repair_translog import translog_plan, truncate_translog

    from segstore.index.check import Status, translog_summary
    from segstore.translog import Translog

    results = []
    code = OK
    with open_targets(args) as (catalog, targets):
        for loc in targets:
            if not os.path.isdir(loc.translog_dir):
                return fail(args, PROBLEM, f"index [{loc.name}] has no translog folder {loc.translog_dir}")
            with index_lock(loc, args.action == "truncate"):
                record = catalog.latest_commit(loc.uuid) or {}
                summary = translog_summary(Translog.inspect(loc.translog_dir), record)
                r: dict[str, Any] = {"index": loc.name, "commit_generation": record.get("generation"),
                                     "max_seq_no": record.get("max_seq_no"), "translog": summary}
                if not summary["clean"]:
                    code = PROBLEM
                if args.action == "truncate" and not summary["clean"]:
                    status = Status(loc.name, loc.uuid.hex(), loc.data_dir, 1, generation=record.get("generation"),
                                    translog=summary)
                    plan = translog_plan(status)
                    r["plan"] = plan
                    if args.yes and not args.dry_run:
                        r["truncate"] = truncate_translog(catalog, loc, status)
                        after = translog_summary(Translog.inspect(loc.translog_dir), catalog.latest_commit(loc.uuid))
                        r["after"] = {"clean": after["clean"]}
                        code = OK if after["clean"] else PROBLEM
                    else:
                        r["truncate"] = {"dry_run": True, **(plan or {})}
                        if not args.json:
                            sys.stderr.write("DRY RUN: nothing was changed; re-run with --yes to truncate\n")
                results.append(r)
    emit(args, {"indices": results}, lambda x: _translog_text(x["indices"]))
    return code


def register(sub: Any) -> None:
    """Add ``recover`` and ``translog``."""
    p = sub.add_parser("recover", help="replay the translog into a new commit and report what was replayed",
                       description=__doc__.split("\n\n")[1])
    add_common_args(p)
    p.add_argument("--dry-run", action="store_true", help="only report what would be replayed")
    p.add_argument("--show", type=int, default=20, metavar="N", help="list at most N replayed operations (text)")
    p.set_defaults(func=_cmd_recover)

    p = sub.add_parser("translog", help="inspect the translog, or truncate a corrupt tail",
                       description=__doc__.split("\n\n")[2])
    p.add_argument("path", metavar="DIR", help="data directory (or an index folder)")
    p.add_argument("action", nargs="?", choices=("inspect", "truncate"), default="inspect",
                   help="inspect (default, read-only) or truncate (writes; dry run unless --yes)")
    add_common_args(p, path=False)
    p.add_argument("--yes", "-y", action="store_true", help="truncate: apply without asking")
    p.add_argument("--dry-run", action="store_true", help="truncate: only show what would be dropped")
    p.set_defaults(func=_cmd_translog)
    _ = USAGE
