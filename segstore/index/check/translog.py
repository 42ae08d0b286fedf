"""The translog as CheckIndex and the tools see it: :func:`translog_summary` (what
:meth:`Translog.inspect` found, plus what the commit says about it), :func:`iter_translog_ops` (a read-only
replay for dry runs and reports) and :class:`TranslogChecks` (level 1: the translog is clean and belongs to
this index).

File grammars (checkpoint, generation header, records) are in :mod:`segstore.translog.checkpoint`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from segstore.index.check.base import CheckBase
from segstore.index.check.status import Problem, Status

__all__ = ["TranslogChecks", "iter_translog_ops", "translog_summary"]


def _acked(gen: dict[str, Any]) -> int:
    ckp = gen.get("checkpoint") or {}
    return int(ckp["num_ops"]) if "num_ops" in ckp else int(gen.get("operations") or 0)


def translog_summary(report: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
    """:meth:`Translog.inspect` plus what the commit says: uncommitted operations, and for a damaged
    translog how many operations truncation would drop (and how many of those the commit already holds)."""
    ckp = report.get("checkpoint")
    committed_gen = int((record or {}).get("translog_generation", 0) or 0)
    gens = report.get("generations") or []
    out: dict[str, Any] = {
        "path": report.get("path"), "clean": bool(report.get("clean")), "checkpoint_readable": ckp is not None,
        "error": report.get("error"), "checkpoint": ckp, "first_bad": report.get("first_bad"),
        "committed_generation": committed_gen, "generations": gens,
        "stray_files": report.get("stray_files") or [],
        # acknowledged operations (the checkpoints' counts; records that no longer verify included)
        "operations": sum(_acked(g) for g in gens),
        "uncommitted_operations": sum(_acked(g) for g in gens if int(g.get("generation", 0)) >= committed_gen),
        "unreadable_operations": sum(_acked(g) - int(g.get("operations") or 0) for g in gens),
    }
    first = report.get("first_bad")
    if first and ckp is not None:
        # Generations below the commit's translog generation hold only committed operations (a crash between
        # the catalog commit and the translog trim leaves them behind): damage there costs nothing, the repair
        # trims them. Damage at or above it loses every operation from the first bad record on.
        out["damaged_committed_generations"] = [int(g["generation"]) for g in gens if g.get("error")
                                                and int(g.get("generation", 0)) < committed_gen]
        bad_gen = next((int(g["generation"]) for g in gens if g.get("error")
                        and int(g.get("generation", 0)) >= committed_gen), None)
        lost = 0
        for g in gens:
            gen = int(g.get("generation", 0))
            if bad_gen is None or gen < bad_gen:
                continue
            gckp = g.get("checkpoint") or {}
            n = int(gckp.get("num_ops", g.get("operations") or 0)) if gckp else int(g.get("operations") or 0)
            if gen == bad_gen and g.get("first_bad_offset") not in (None, 0) and gckp:
                n = max(0, n - int(g.get("operations") or 0))
            lost += n
        out["ops_to_lose"] = lost
    return out


def iter_translog_ops(translog_dir: str, min_generation: int) -> Iterator[dict[str, Any]]:
    """Read-only: the acknowledged operations of generations >= ``min_generation``, in order (for dry runs
    and reports; raises :class:`TranslogCorruptedError` on damage)."""
    from segstore.translog.checkpoint import (
        CHECKPOINT_NAME,
        Checkpoint,
        ckp_name,
        iter_records,
        read_tlog_header,
        tlog_name,
    )

    ckp = Checkpoint.read(os.path.join(translog_dir, CHECKPOINT_NAME))
    for g in range(max(min_generation, ckp.min_translog_generation), ckp.generation + 1):
        gckp = ckp if g == ckp.generation else Checkpoint.read(os.path.join(translog_dir, ckp_name(g)))
        path = os.path.join(translog_dir, tlog_name(g))
        with open(path, "rb") as fh:
            start = read_tlog_header(fh, path, ckp.translog_uuid, g)
            for _off, op in iter_records(fh, path, start, gckp.offset):
                yield op


class TranslogChecks(CheckBase):
    """``_check_translog`` of the index's translog folder."""

    def _check_translog(self, status: Status, record: dict[str, Any]) -> None:
        from segstore.translog import Translog

        loc = self.location
        if not os.path.isdir(loc.translog_dir):
            status.translog = {"clean": False, "checkpoint_readable": False, "error": "translog folder is missing"}
            self._add(status.problems, Problem("translog", "translog folder is missing", "MissingFileError",
                                               file=loc.translog_dir))
            return
        report = Translog.inspect(loc.translog_dir)
        summary = translog_summary(report, record)
        status.translog = summary
        if not summary["clean"]:
            first = report.get("first_bad") or {}
            gen = next((g for g in report.get("generations") or [] if g.get("generation") == first.get("generation")),
                       {})
            acked = (gen.get("checkpoint") or {}).get("offset")
            self._add(status.problems, Problem(
                "translog", str(first.get("error") or report.get("error") or "translog is damaged"),
                "TranslogCorruptedError", file=first.get("file") or "translog.ckp",
                expected=None if acked is None else f"records valid up to the checkpointed offset {acked}",
                actual=None if first.get("offset") is None else f"first bad record at offset {first['offset']}"))
        ckp = report.get("checkpoint") or {}
        tl_uuid = record.get("translog_uuid")
        if ckp and isinstance(tl_uuid, (bytes, bytearray)):
            got = ckp.get("translog_uuid")
            if isinstance(got, (bytes, bytearray)):
                got = bytes(got).hex()
            if got is not None and got != bytes(tl_uuid).hex():
                self._add(status.problems, Problem("translog", "translog belongs to another index",
                                                   "TranslogCorruptedError", file="translog.ckp",
                                                   expected=bytes(tl_uuid).hex(), actual=got))
