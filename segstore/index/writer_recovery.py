"""Opening an index for writing: load the last commit, clean leftovers, open readers and the translog,
then replay the operations the commit does not contain."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from segstore.errors import CorruptIndexError
from segstore.index.directory_reader import DirectoryReader
from segstore.index.file_names import WRITE_LOCK_NAME
from segstore.index.segment_info import SegmentCommitInfo
from segstore.index.segment_reader import SegmentReader, read_segment_info
from segstore.store.fs_directory import FSDirectory
from segstore.translog import Translog

if TYPE_CHECKING:
    from segstore.index.index_writer import IndexWriter

__all__ = ["OpenState", "open_commit", "replay_translog", "load_commit_segments"]

log = logging.getLogger(__name__)


@dataclass
class OpenState:
    record: dict[str, Any]
    segments: list[SegmentCommitInfo]
    live: dict[str, np.ndarray | None]
    reader: DirectoryReader
    translog: Translog


def load_commit_segments(directory: Any, record: dict[str, Any], where: str) -> list[SegmentCommitInfo]:
    """The segments a commit record lists, each read through its own codec and cross-checked."""
    segments = []
    for s in record.get("segments", []):
        info = read_segment_info(directory, s["name"], s["id"], s["codec"])
        if info.max_doc != s["max_doc"]:
            raise CorruptIndexError(
                f"segment {s['name']}: max_doc in the commit is {s['max_doc']}, in the segment info {info.max_doc}",
                where)
        segments.append(SegmentCommitInfo(info, int(s["del_gen"]), int(s["del_count"])))
    return segments


def open_commit(w: "IndexWriter") -> OpenState:
    record = w.catalog.latest_commit(w.uuid)
    where = f"catalog:commits/{w.index_name}"
    if record is None:
        raise CorruptIndexError("the index has no commit point", where)
    segments = load_commit_segments(w.directory, record, where)
    w.deleter.inc_ref(f for s in segments for f in s.files())
    removed = w.deleter.delete_unreferenced(keep=[WRITE_LOCK_NAME])
    if isinstance(w.directory, FSDirectory):
        for tmp in w.directory.list_temp_files():
            w.directory.delete_temp_file(tmp)
            removed.append(tmp)
    if removed:
        log.info("removed %d files not referenced by the last commit of [%s]: %s", len(removed),
                 w.index_name, removed)
    leaves: list[SegmentReader] = []
    try:
        for sci in segments:
            leaves.append(SegmentReader(w.directory, sci, w.deleter))
        translog = Translog.open(w.files.translog_path, record["translog_uuid"],
                                 durability=w.settings.durability, sync_interval=w.settings.sync_interval,
                                 committed_generation=record.get("translog_generation"))
    except BaseException:
        for leaf in leaves:
            leaf.dec_ref()
        raise
    live = {leaf.name: leaf.live for leaf in leaves}
    return OpenState(record, segments, live, DirectoryReader(leaves, 0), translog)


def replay_translog(w: "IndexWriter", state: OpenState) -> int:
    """Apply every logged operation newer than the commit; returns how many were replayed."""
    committed_max = state.record.get("max_seq_no", -1)
    n = 0
    with w._lock:
        for op in state.translog.read_ops(state.record["translog_generation"]):
            if op["seq_no"] <= committed_max:
                continue
            w._resolver.replay(op)
            n += 1
    if n:
        log.info("replayed %d translog operations into [%s]", n, w.index_name)
    return n
