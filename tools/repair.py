"""``segstore repair``: fix what ``check`` found. A dry run unless confirmed (reliability.md §5, §8 rows 13-15).

``repair DIR [--exorcise] [--rebuild-graphs] [--truncate-translog] [--rebuild-pk] [--yes] [--dry-run]``

The command takes the index write lock (nothing else may write meanwhile), runs CheckIndex (``--level``,
2 by default), prints a backup banner and exactly what each selected repair would do and lose, then:

* with ``--dry-run``, or without ``--yes`` when stdin is not a terminal: stops there (exit 1 if problems);
* on a terminal without ``--yes``: asks ``Confirm [y/N]``;
* with ``--yes``: goes ahead (after a 5 s countdown on a terminal when data would be lost).

Repairs (each selected by its flag; without any flag the command only shows the plan): ``--exorcise``
(loses data), ``--rebuild-graphs``, ``--rebuild-live-docs`` and ``--rebuild-pk`` (no data loss) are in
:mod:`segstore_tools.repair_segments`, ``--truncate-translog`` (loses operations) in
:mod:`segstore_tools.repair_translog`; each is described there.

After the repairs the check runs again; exit code 0 only if the index is then clean. A ``corrupted_*``
marker file is removed once the index checks clean.
"""

from __future__ import annotations

import argparse
import os
import sys
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
from segstore_tools.repair_segments import (
    rebuild_and_exorcise,
    rebuild_live_docs,
    rebuild_pk,
)
from segstore_tools.repair_translog import translog_plan, truncate_translog

__all__ = ["register"]

BANNER = ("    WARNING: segstore repair rewrites the commit point of the index. Make a backup copy of the data\n"
          "    directory first, and make sure no segstore process uses it (the write lock is held now).")


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
