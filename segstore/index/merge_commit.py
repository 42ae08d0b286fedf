"""Running one merge and committing its result into the writer's segment list.

The merge reads its inputs at the live-docs generation they had when it started (point-in-time readers).
Deletes that land on the inputs while it runs are carried over to the merged segment through the doc maps
when the merge commits, under the writer lock, so no delete is lost. Every document the merge moved gets
its new location in the live version map (written to the catalog's primary-key map at the next commit).
If the merge fails, ``write_segment`` has removed its files and the inputs are untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from segstore.index.field_infos import FieldInfo
from segstore.index.merge_policy import OneMerge
from segstore.index.segment_info import SegmentCommitInfo
from segstore.index.segment_merger import MergeResult, SegmentMerger
from segstore.index.segment_reader import SegmentReader
from segstore.index.version_map import VersionValue

if TYPE_CHECKING:
    from segstore.index.index_writer import IndexWriter

__all__ = ["run_merge"]


def run_merge(w: "IndexWriter", merge: OneMerge) -> MergeResult | None:
    with w._lock:
        readers: list[SegmentReader] = []
        for sci in merge.segments:
            leaf = w._reader.leaf(sci.name)
            if leaf is None:  # already merged away
                for r in readers:
                    r.dec_ref()
                return None
            leaf.inc_ref()
            readers.append(leaf)
    threshold = max(1, w.settings.approximate_threshold)

    def build_graph(fi: FieldInfo, count: int) -> bool:
        return fi.attributes.get("knn") == "true" and count >= threshold

    try:
        result = SegmentMerger(w.codec, w.directory, readers, w._next_segment_name(), build_graph).merge()
        with w._refresh_lock, w._lock:
            _commit_merge(w, readers, result)
        return result
    finally:
        for r in readers:
            r.dec_ref()


def _commit_merge(w: "IndexWriter", readers: list[SegmentReader], result: MergeResult) -> None:
    sci = result.commit_info
    merged_live = np.ones(sci.info.max_doc, dtype=bool)
    for r, doc_map in zip(readers, result.doc_maps):
        now = w._live.get(r.name)
        now = np.ones(r.max_doc, dtype=bool) if now is None else now.copy()
        pending = w._pending_deletes.pop(r.name, [])
        if pending:
            now[np.asarray(pending, dtype=np.int64)] = False
        was = np.ones(r.max_doc, dtype=bool) if r.live is None else r.live
        newly_deleted = np.flatnonzero(was & ~now)
        merged_live[doc_map[newly_deleted]] = False
    del_count = int((~merged_live).sum())
    live = None
    if del_count:
        w.codec.live_docs_format.write(w.directory, sci.info, merged_live, del_count, 1)
        sci = SegmentCommitInfo(sci.info, 1, del_count)
        merged_live.flags.writeable = False
        live = merged_live
    names = {r.name for r in readers}
    at = min(i for i, s in enumerate(w._segments) if s.name in names)
    rest = [s for s in w._segments if s.name not in names]
    w._segments = rest[:at] + [sci] + rest[at:]
    for n in names:
        w._live.pop(n, None)
    w._live[sci.name] = live
    name = sci.name
    for new_doc in np.flatnonzero(merged_live).tolist():
        doc_id = result.ids[new_doc]
        if doc_id is not None:  # nested children have no id; their root carries the block's location
            w._versions[doc_id] = VersionValue(result.versions[new_doc], result.seq_nos[new_doc], (name, new_doc))
    w._open_new_reader()
