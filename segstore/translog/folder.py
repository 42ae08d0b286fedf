"""Whole-folder operations on a translog that is not open: the recovery checks, the read-only inspection and
the explicit truncation repair (used by :meth:`Translog.open`, :meth:`Translog.inspect` and
:meth:`Translog.truncate_corrupt_tail`). Stateless; the file grammars are in
:mod:`segstore.translog.checkpoint` and :mod:`segstore.translog.tlog_file`.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from segstore.errors import TranslogCorruptedError
from segstore.store.fs_directory import fsync_dir
from segstore.translog.checkpoint import (
    CHECKPOINT_NAME,
    Checkpoint,
    ckp_name,
    write_checkpoint_atomically,
)
from segstore.translog.tlog_file import (
    list_translog_files,
    scan_generation,
    tlog_header,
    tlog_name,
    wrap_os_error,
)

__all__ = ["verify_generation", "check_current_copy", "verify_folder", "inspect_folder", "truncate_folder"]


def verify_generation(folder: str, ckp: Checkpoint) -> None:
    """Every record of ``ckp.generation`` up to ``ckp.offset`` must verify and match the checkpoint."""
    scan = scan_generation(folder, ckp.generation, ckp.translog_uuid, ckp.offset)
    if scan.exception is not None:
        raise scan.exception
    if (scan.operations, scan.min_seq_no, scan.max_seq_no) != (ckp.num_ops, ckp.min_seq_no, ckp.max_seq_no):
        raise TranslogCorruptedError(
            f"records disagree with the checkpoint: found numOps={scan.operations} minSeqNo={scan.min_seq_no} "
            f"maxSeqNo={scan.max_seq_no}, checkpoint {ckp}", scan.file)


def check_current_copy(folder: str, ckp: Checkpoint) -> None:
    """A ``translog-<gen>.ckp`` for the current generation (a crash while rolling) must equal ``ckp``."""
    path = os.path.join(folder, ckp_name(ckp.generation))
    try:
        copy = Checkpoint.read(path)
        detail = "" if copy == ckp else f"expected {ckp} but got {copy}"
    except TranslogCorruptedError as e:
        detail = e.detail
    if detail:
        raise TranslogCorruptedError(
            f"checkpoint file {ckp_name(ckp.generation)} already exists but has corrupted content: {detail}", path)


def _rolled_checkpoint(folder: str, generation: int, uuid: bytes) -> Checkpoint:
    path = os.path.join(folder, ckp_name(generation))
    ckp = Checkpoint.read(path)
    if ckp.generation != generation or ckp.translog_uuid != uuid:
        raise TranslogCorruptedError(f"checkpoint does not belong to generation {generation}: {ckp}", path)
    return ckp


def verify_folder(folder: str, ckp: Checkpoint, tlogs: dict[int, str], ckps: dict[int, str],
                  low: int | None = None) -> dict[int, Checkpoint]:
    """Recovery checks of every live generation of ``ckp`` from ``low`` (default: its minimum generation);
    return the rolled generations' checkpoints."""
    gen = ckp.generation
    low = ckp.min_translog_generation if low is None else low
    rolled: dict[int, Checkpoint] = {}
    for g in range(low, gen + 1):
        if g not in tlogs:
            raise TranslogCorruptedError(
                f"translog file doesn't exist with generation: {g} recovering from: {low} checkpoint: {gen} "
                "- translog ids must be consecutive", os.path.join(folder, tlog_name(g)))
        if g < gen:
            if g not in ckps:
                raise TranslogCorruptedError(f"checkpoint of rolled generation {g} is missing",
                                             os.path.join(folder, ckp_name(g)))
            rolled[g] = _rolled_checkpoint(folder, g, ckp.translog_uuid)
            verify_generation(folder, rolled[g])
        else:
            if g in ckps:  # left by a crash while rolling: it must be the very same checkpoint
                check_current_copy(folder, ckp)
            verify_generation(folder, ckp)
    return rolled


def inspect_folder(folder: str) -> dict[str, Any]:
    """Describe a translog folder without modifying it: checkpoint fields, per-generation op counts and the
    first bad offset, if any (``first_bad`` names the generation, file and offset)."""
    report: dict[str, Any] = {"path": folder, "clean": False, "error": None, "checkpoint": None,
                              "generations": [], "first_bad": None, "stray_files": []}
    tlogs, ckps, temps = list_translog_files(folder)
    try:
        ckp = Checkpoint.read(os.path.join(folder, CHECKPOINT_NAME))
    except TranslogCorruptedError as e:
        report["error"] = str(e)
        report["stray_files"] = sorted([*tlogs.values(), *ckps.values(), *temps])
        return report
    report["checkpoint"] = ckp.describe()
    low, gen = ckp.min_translog_generation, ckp.generation
    for g in range(low, gen + 1):
        gckp: Checkpoint | None = ckp
        error: str | None = None
        try:
            if g < gen:
                gckp = _rolled_checkpoint(folder, g, ckp.translog_uuid)
            elif g in ckps:
                check_current_copy(folder, ckp)
        except TranslogCorruptedError as e:
            gckp = None if g < gen else gckp
            error = str(e)
        scan = scan_generation(folder, g, ckp.translog_uuid, gckp.offset if gckp else None)
        if scan.exception is not None:
            error = error or str(scan.exception)
        elif gckp is not None and scan.operations != gckp.num_ops:
            error = error or f"checkpoint says {gckp.num_ops} operations but {scan.operations} records were found"
        report["generations"].append({
            "generation": g, "file": tlog_name(g), "exists": scan.exists, "size": scan.size,
            "checkpoint": gckp.describe() if gckp else None, "operations": scan.operations,
            "first_bad_offset": scan.first_bad_offset, "error": error,
            "unacknowledged_bytes": max(0, scan.size - gckp.offset) if gckp and scan.exists else None,
        })
        if error and report["first_bad"] is None:
            report["first_bad"] = {"generation": g, "file": tlog_name(g), "offset": scan.first_bad_offset,
                                   "error": error}
    report["stray_files"] = sorted([n for g, n in tlogs.items() if not low <= g <= gen]
                                   + [n for g, n in ckps.items() if not low <= g <= gen] + temps)
    report["clean"] = report["first_bad"] is None
    return report


def truncate_folder(folder: str) -> int:
    """Explicit repair: drop every operation from the first bad record on; return how many were dropped.

    The generation holding the first bad record becomes the current one, ending before that record (a bad
    header or a missing file: the generation is recreated empty); later generations are deleted. Bytes past
    the new offset stay in the file but are unacknowledged, hence ignored; the next open rolls past them.
    A rolled generation whose checkpoint is unreadable is dropped whole (its acknowledged length is unknown;
    its count of well-formed records is reported as dropped).
    """
    ckp = Checkpoint.read(os.path.join(folder, CHECKPOINT_NAME))  # nothing can be trusted without it
    uuid, low, gen = ckp.translog_uuid, ckp.min_translog_generation, ckp.generation

    def checkpoint_of(g: int) -> Checkpoint | None:
        try:
            return ckp if g == gen else _rolled_checkpoint(folder, g, uuid)
        except TranslogCorruptedError:
            return None

    for g in range(low, gen + 1):
        gckp = checkpoint_of(g)
        scan = scan_generation(folder, g, uuid, gckp.offset if gckp else None)
        if gckp is not None and scan.exception is None:
            if scan.operations != gckp.num_ops:
                raise TranslogCorruptedError(
                    f"cannot repair by truncation: checkpoint says {gckp.num_ops} operations but "
                    f"{scan.operations} records verify", scan.file)
            continue
        if gckp is None or scan.first_bad_offset == 0:  # nothing of this generation can be kept
            dropped = gckp.num_ops if gckp else scan.operations
            new = Checkpoint.empty(g, low, uuid)
        else:
            assert scan.first_bad_offset is not None
            dropped = gckp.num_ops - scan.operations
            new = Checkpoint(scan.first_bad_offset, scan.operations, g, scan.min_seq_no, scan.max_seq_no, low, uuid)
        for later in range(g + 1, gen + 1):
            lckp = checkpoint_of(later)
            dropped += lckp.num_ops if lckp else scan_generation(folder, later, uuid, None).operations
        try:
            if scan.first_bad_offset == 0 or not scan.exists:
                _rewrite_empty_generation(folder, uuid, g)
            # The copy first: a crash between the two writes then leaves a consistent (shorter) generation g.
            write_checkpoint_atomically(folder, ckp_name(g), new, sync_dir=False)
            write_checkpoint_atomically(folder, CHECKPOINT_NAME, new)
            for later in range(g + 1, gen + 1):
                for name in (tlog_name(later), ckp_name(later)):
                    if os.path.exists(os.path.join(folder, name)):
                        os.unlink(os.path.join(folder, name))
            fsync_dir(folder)
        except OSError as e:
            raise wrap_os_error(e, f"cannot truncate translog in [{folder}]") from e
        return dropped
    return 0


def _rewrite_empty_generation(folder: str, uuid: bytes, generation: int) -> None:
    tmp = os.path.join(folder, f".{tlog_name(generation)}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(tlog_header(uuid, generation))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, os.path.join(folder, tlog_name(generation)))
