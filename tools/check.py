"""``segstore check`` and ``segstore verify``: CheckIndex from the command line (reliability.md §5.1, §8 row 30).

``check DIR [--level 1|2|3] [--segment S]... [--threads N] [--fail-fast]`` checks every index of a data
directory (or ``--index``): level 1 every CRC, level 2 the logical checks, level 3 graph connectivity, a
recall sample and a derived-source round trip (see :mod:`segstore.index.check`). The report names the
commit, segment, file, component, error and expected/actual values, says how many documents each corrupt
segment holds (and their ids) and which ``segstore repair`` would fix what. ``verify`` is ``check --level 1``.

Like Lucene's CheckIndex the check takes the index write lock, so no writer changes the index under it;
``--no-lock`` checks the last commit next to a running writer (files a concurrent commit deletes may then
show up as missing). Exit code 0 when clean, 1 when a problem was found (or the index is locked), 2 on a usage
error. Warnings (for example a few HNSW nodes unreachable from the entry point) do not change the exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from typing import Any

from segstore_tools.progress import (
    OK,
    PROBLEM,
    Progress,
    add_common_args,
    command,
    emit,
    human_bytes,
    open_targets,
    progress_enabled,
)

__all__ = ["format_status", "index_lock", "register", "run_check"]


@contextlib.contextmanager
def index_lock(loc: Any, enabled: bool = True) -> Iterator[None]:
    """Hold the index write lock (``write.lock``) for the duration; raises LockObtainFailedError."""
    if not enabled or not os.path.isdir(loc.index_dir):
        yield
        return
    from segstore.index.file_names import WRITE_LOCK_NAME
    from segstore.store import FSDirectory

    lock = FSDirectory(loc.index_dir).obtain_lock(WRITE_LOCK_NAME)
    try:
        yield
    finally:
        lock.close()


def run_check(catalog: Any, loc: Any, args: argparse.Namespace, *, level: int | None = None) -> Any:
    """CheckIndex of one index with the options of ``args`` (progress bar on a terminal)."""
    from segstore.index.check import CheckIndex

    lvl = level if level is not None else getattr(args, "level", 1)
    with Progress(None, f"check {loc.name}", enabled=progress_enabled(args)) as bar:
        return CheckIndex(catalog, loc, level=lvl, segments=getattr(args, "segment", None),
                          fail_fast=getattr(args, "fail_fast", False), threads=getattr(args, "threads", 1) or 1,
                          progress=bar.callback(), min_recall=getattr(args, "min_recall", 0.5)).run()


def _problem_line(p: Any) -> str:
    where = p.file or p.segment or p.component
    s = f"{where} [{p.component}" + (f" field {p.field}" if p.field else "") + f"]: {p.error}: {p.message}"
    if p.doc is not None or p.doc_id is not None:
        s += f" (doc {p.doc}" + (f", id {p.doc_id}" if p.doc_id is not None else "") + ")"
    shown = f"expected={p.expected}" in p.message and f"actual={p.actual}" in p.message
    if (p.expected is not None or p.actual is not None) and not shown:
        s += f"  expected={_short(p.expected) if p.expected is not None else '-'} actual={_short(p.actual)}"
    if p.rebuildable and p.severity == "error":
        s += "  (rebuildable)"
    return s


def _short(v: Any, n: int = 120) -> str:
    s = str(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def format_status(status: Any, verbose: bool = False) -> str:
    """Lucene-CheckIndex-style text report of one :class:`Status`."""
    lines = [f"Checking index [{status.index}] uuid={status.uuid} level={status.level}",
             f"  path: {os.path.join(status.data_dir, 'indices', status.uuid)}"]
    if status.commit is not None:
        c = status.commit
        lines.append(f"  commit generation {status.generation}: {c.get('segment_count')} segments, max_seq_no "
                     f"{c.get('max_seq_no')}, translog generation {c.get('translog_generation')}, "
                     f"segment_counter {c.get('segment_counter')}")
    n = len(status.segments)
    for i, s in enumerate(status.segments, 1):
        if not s.checked:
            lines.append(f"  {i} of {n}: {s.name} (skipped: not selected)")
            continue
        lines.append(f"  {i} of {n}: name={s.name} maxDoc={s.max_doc} delCount={s.del_count} codec={s.codec} "
                     f"id={s.segment_id} files={len(s.files)} size={human_bytes(s.size_bytes)} "
                     f"status={s.status.upper()}")
        if s.diagnostics:
            lines.append("    diagnostics = " + str({k: v for k, v in s.diagnostics.items() if k != "timestamp"}))
        for test, result in s.tests.items():
            lines.append(f"    test: {test:.<22} {result}")
        for f in s.fields:
            if verbose or f.nodes_at_level is not None or f.recall is not None:
                extra = ""
                if f.nodes_at_level is not None:
                    extra += f" nodes/level={f.nodes_at_level} connectedness={f.connectedness_at_level}"
                if f.recall is not None:
                    extra += f" recall={f.recall}"
                lines.append(f"    field {f.name}: {f.vectors} vectors dim={f.dimension} {f.data_type} "
                             f"{f.space_type} graph={f.graph or '-'}" + extra)
        for p in s.problems:
            tag = "WARNING" if p.severity == "warning" else "ERROR"
            lines.append(f"    {tag} {_problem_line(p)}")
        if s.status == "corrupt":
            ids = s.ids_to_lose
            shown = ", ".join(ids[:20]) + (f", ... ({len(ids)} ids, --json lists all)" if len(ids) > 20 else "")
            lines.append(f"    -> exorcising this segment loses {s.docs_to_lose} docs" + (f": ids {shown}" if ids
                                                                                          else ""))
        elif s.status == "rebuildable":
            what = []
            if s.needs("graph", "quantization"):
                what.append("graphs/quantization from the vectors (repair --rebuild-graphs)")
            if s.needs("live_docs"):
                what.append("live docs from the primary-key map (repair --rebuild-live-docs)")
            lines.append(f"    -> rebuildable without losing a document: {'; '.join(what)}")
    tl = status.translog or {}
    if tl:
        gens = tl.get("generations") or []
        lines.append(f"  translog: {'clean' if tl.get('clean') else 'DAMAGED'}, {len(gens)} generation(s), "
                     f"{tl.get('operations', 0)} ops ({tl.get('uncommitted_operations', 0)} uncommitted)")
        if not tl.get("clean"):
            first = tl.get("first_bad") or {}
            lines.append(f"    first bad: generation {first.get('generation')} {first.get('file')} offset "
                         f"{first.get('offset')}: {first.get('error') or tl.get('error')}")
            if tl.get("damaged_committed_generations"):
                lines.append(f"    -> damaged generation(s) {tl['damaged_committed_generations']} hold only committed "
                             "operations: `repair --truncate-translog` trims them, nothing is lost")
            if tl.get("ops_to_lose") or ("ops_to_lose" in tl and not tl.get("damaged_committed_generations")):
                lines.append(f"    -> truncating loses {tl['ops_to_lose']} acknowledged uncommitted operation(s)")
    if status.pk_entries is not None:
        lines.append(f"  primary-key map: {status.pk_entries} entries")
    for p in status.problems:
        if p.component == "translog" and not verbose:
            continue
        tag = "WARNING" if p.severity == "warning" else "ERROR"
        lines.append(f"  {tag} {_problem_line(p)}")
    if status.unreferenced_files:
        lines.append(f"  unreferenced files (removed by the next writer open): {', '.join(status.unreferenced_files)}")
    lines.append("")
    if status.clean:
        lines.append(f"No problems were detected with this index ({status.took_seconds} s).")
    else:
        bad = status.bad_segments
        if bad:
            lines.append(f"WARNING: {len(bad)} broken segment(s) (containing {status.tot_lose_doc_count} documents) "
                         "detected")
            lines.append(f"WARNING: would write a new commit, and {status.tot_lose_doc_count} documents would be lost")
        for step in status.repair_plan:
            flag = step["flag"]
            lines.append(f"  repair: {'segstore repair ' + flag if flag else '(manual)'}: {step['description']}")
        if status.partial:
            lines.append("(partial check: --segment or --fail-fast)")
    return "\n".join(lines)


@command
def _cmd_check(args: argparse.Namespace) -> int:
    if args.command == "verify":
        args.level = 1
    statuses = []
    with open_targets(args) as (catalog, targets):
        for loc in targets:
            with index_lock(loc, not args.no_lock):
                statuses.append(run_check(catalog, loc, args))
    clean = all(s.clean for s in statuses)
    result = {"clean": clean, "level": args.level, "indices": [s.to_dict() for s in statuses]}
    emit(args, result, lambda _r: "\n\n".join(format_status(s, args.verbose_report) for s in statuses))
    return OK if clean else PROBLEM


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def register(sub: Any) -> None:
    """Add ``check`` and ``verify``."""
    p = sub.add_parser("check", help="verify an index: CRCs (1), logical checks (2), graphs and round trips (3)",
                       description=__doc__.split("\n\n")[1])
    add_common_args(p)
    p.add_argument("--level", type=int, choices=(1, 2, 3), default=1,
                   help="1: every CRC (default); 2: + logical checks; 3: + graph connectivity, recall sample and "
                        "derived-source round trip")
    p.add_argument("--segment", action="append", default=None, metavar="S",
                   help="only check segment S (repeatable; skips the primary-key check)")
    p.add_argument("--threads", type=_positive, default=1, metavar="N", help="segments checked in parallel")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first error")
    p.add_argument("--min-recall", type=float, default=0.5, metavar="R",
                   help="level 3: recall below R is an error (default 0.5)")
    p.add_argument("--no-lock", action="store_true", help="do not take the write lock (check next to a writer)")
    p.add_argument("--verbose-report", "-V", action="store_true", help="list every field and translog problem")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("verify", help="full CRC pass over every file (= check --level 1)",
                       description="Full CRC pass over every file of every segment, the catalog values and the "
                                   "translog (= check --level 1). Exit 1 on any mismatch.")
    add_common_args(p)
    p.add_argument("--segment", action="append", default=None, metavar="S", help="only segment S (repeatable)")
    p.add_argument("--threads", type=_positive, default=1, metavar="N", help="segments checked in parallel")
    p.add_argument("--no-lock", action="store_true", help="do not take the write lock")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_check, level=1, fail_fast=False, verbose_report=False, min_recall=0.5)
