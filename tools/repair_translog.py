"""The translog repair of ``segstore repair`` (also ``segstore translog DIR truncate``).

``--truncate-translog`` (loses operations). ``Translog.truncate_corrupt_tail``: drops every operation from
the first bad record on and says how many are gone. When the checkpoint itself is unreadable, a new empty
translog (new uuid) is created and tied to the index by a new commit; every uncommitted operation is lost.

Damage in a generation below the commit's translog generation costs nothing: those generations hold only
committed operations, so they are trimmed (:func:`trim_committed_generations`). :func:`translog_plan` says
which of the three modes (``trim``, ``truncate``, ``recreate``) a checked status needs.
"""

from __future__ import annotations

import os
import time
from typing import Any

__all__ = ["translog_plan", "trim_committed_generations", "truncate_translog"]


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
