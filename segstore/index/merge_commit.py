"""Running one merge and committing its result into the writer's segment list.

The merge reads its inputs at the live-docs generation they had when it started (point-in-time readers,
referenced for the whole merge so no input file can go away). Committing it swaps the inputs for the merged
segment in the segment list and opens a new point-in-time reader, in one step under the writer locks:

1. before the locks: the merged segment's files are complete and its core readers are opened (this is where
   an I/O error on the new files shows up, while nothing has changed yet);
2. under the locks: deletes that reached the inputs' live docs while the merge ran are carried to the
   merged segment through the doc maps and written as its first live-docs generation; then, without any
   more I/O, the segment list, the live docs, the version map and the reader are replaced together.

Deletes that were applied but not yet refreshed (``_pending_deletes`` of an input) stay pending: they are
remapped to the merged segment and become visible at the next refresh, as they would have without the
merge. A merge therefore never changes what a search sees, only where the documents live.

If anything fails (or the merge is aborted) the inputs are untouched: ``write_segment`` removes what it
wrote, and once the merged segment's core readers are open, releasing them removes its files through the
file deleter (nothing else references them yet). Input files are deleted by the deleter only when the last
reader and the last commit using them are gone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from segstore.errors import AlreadyClosedError
from segstore.index.directory_reader import DirectoryReader
from segstore.index.field_infos import FieldInfo
from segstore.index.merge_policy import MergeContext, OneMerge
from segstore.index.merge_scheduler import MergeAbortedError
from segstore.index.segment_info import SegmentCommitInfo
from segstore.index.segment_merger import MergeResult, SegmentMerger
from segstore.index.segment_reader import SegmentCoreReaders, SegmentReader
from segstore.index.version_map import VersionValue

if TYPE_CHECKING:
    from segstore.index.index_writer import IndexWriter

__all__ = ["run_merge", "merge_one", "register_natural_merges", "pause_merges", "force_merge", "merge_stats"]


# ------------------------------------------------------------------------------------ writer bookkeeping
# State on the writer (under ``w._lock``): ``_merging`` (names of segments in a registered merge),
# ``_pending_merges`` (registered natural merges not handed out yet), ``_merges_in_flight`` (id() of merges
# handed out and not finished), ``_merges_paused`` (> 0: no natural merges), ``_merge_abort``.


def merge_stats(w: "IndexWriter") -> dict[str, int]:
    """OpenSearch's ``_stats`` ``merges`` numbers: running merges and totals of finished ones."""
    with w._lock:
        return {"current": len(w._merges_in_flight), **w._merge_totals}


def segment_sizes(w: "IndexWriter", segments: Sequence[SegmentCommitInfo]) -> dict[str, int]:
    """Bytes of each segment's files, for the policy (cached: segment files are write-once)."""
    cache = w._segment_bytes
    sizes = {}
    for s in segments:
        size = cache.get(s.name)
        if size is None:
            try:
                size = sum(w.directory.file_length(f) for f in s.info.files)
            except OSError:
                continue  # the policy falls back to max_doc; retried at the next call
        sizes[s.name] = size
    w._segment_bytes = sizes
    return sizes


def _context(w: "IndexWriter", segments: Sequence[SegmentCommitInfo],
             forced: dict[str, bool] | None = None) -> MergeContext:
    with w._lock:
        merging = frozenset(w._merging)
    return MergeContext(merging, segment_sizes(w, segments), forced)


def _register(w: "IndexWriter", merges: Sequence[OneMerge]) -> list[OneMerge]:
    """Mark the merges' segments as merging; merges that went stale (a segment gone or taken) are skipped."""
    with w._lock:
        current = {s.name for s in w._segments}
        taken = []
        for m in merges:
            if not m.segments or any(n in w._merging or n not in current for n in m.names):
                continue
            w._merging.update(m.names)
            taken.append(m)
        return taken


def register_natural_merges(w: "IndexWriter") -> bool:
    """Ask the policy (outside the locks: it is pure but may take a moment) and queue what it selects;
    True if merges are pending."""
    with w._lock:
        if w._closed or w._merges_paused:
            return False
        segments = list(w._segments)
    spec = w.merge_policy.find_merges(segments, _context(w, segments))
    with w._lock:
        if w._closed or w._merges_paused:
            return False
        w._pending_merges.extend(_register(w, spec.merges))
        return bool(w._pending_merges)


def merge_one(w: "IndexWriter", merge: OneMerge) -> MergeResult | None:
    """``IndexWriter.merge``: run a registered merge and release its segments, whatever happens."""
    with w._lock:
        if id(merge) not in w._merges_in_flight:  # called directly: register it now
            if not _register(w, [merge]):
                raise ValueError(f"segments {merge.names} are already merging or gone")
            w._merges_in_flight.add(id(merge))
    result = None
    t0 = time.perf_counter()
    try:
        result = run_merge(w, merge)
    finally:
        with w._lock:
            w._merging.difference_update(merge.names)
            w._merges_in_flight.discard(id(merge))
            if result is not None:
                totals = w._merge_totals
                totals["total"] += 1
                totals["total_docs"] += result.commit_info.info.max_doc
                totals["total_time_in_millis"] += int((time.perf_counter() - t0) * 1000)
            w._merge_cond.notify_all()
    if result is not None and merge.reason == "natural":
        register_natural_merges(w)  # cascade: the scheduler's threads pick them up
    return result


def pause_merges(w: "IndexWriter", *, abort: bool = False) -> None:
    """Stop handing out natural merges, drop the pending ones and wait for the running ones (aborting them
    at their next check if ``abort``). Undo with :func:`resume_merges` (``close()`` never does)."""
    with w._lock:
        w._merges_paused += 1
        if abort:
            w._merge_abort = True
        for m in w._pending_merges:
            w._merging.difference_update(m.names)
        w._pending_merges.clear()
        w._merge_cond.wait_for(lambda: not w._merges_in_flight)


def resume_merges(w: "IndexWriter") -> None:
    with w._lock:
        w._merges_paused -= 1


def force_merge(w: "IndexWriter", max_num_segments: int, only_expunge_deletes: bool) -> list[MergeResult]:
    """The merges of ``IndexWriter.force_merge``, run in the calling thread.

    Natural merges pause (running ones finish first) so the forced rounds see every segment. Each round asks
    the policy again, over the segments present at the start (``True``) and the results of earlier rounds
    (``False``) only (Lucene's ``segmentsToMerge``): segments flushed meanwhile cannot keep it going, and a
    merged result that received deletes is not rewritten again. Stops when a round selects nothing.
    """
    if max_num_segments < 1 and not only_expunge_deletes:
        raise ValueError(f"max_num_segments must be >= 1, got {max_num_segments}")
    results: list[MergeResult] = []
    with w._force_merge_lock:
        pause_merges(w)
        try:
            w._refresh()
            with w._lock:
                targets = {s.name: True for s in w._segments}
            while True:
                with w._lock:
                    segments = [s for s in w._segments if s.name in targets]
                ctx = _context(w, segments, dict(targets))
                spec = (w.merge_policy.find_forced_deletes_merges(segments, ctx) if only_expunge_deletes
                        else w.merge_policy.find_forced_merges(segments, max_num_segments, ctx))
                merges = _register(w, spec.merges)
                with w._lock:
                    w._merges_in_flight.update(id(m) for m in merges)
                progress = False
                for i, m in enumerate(merges):
                    try:
                        result = merge_one(w, m)
                    except BaseException:
                        with w._lock:  # release the merges this round will not run
                            for rest in merges[i + 1:]:
                                w._merging.difference_update(rest.names)
                                w._merges_in_flight.discard(id(rest))
                        raise
                    if result is not None:
                        progress = True
                        results.append(result)
                        for n in m.names:
                            targets.pop(n, None)
                        targets[result.commit_info.name] = False
                if not progress or only_expunge_deletes:
                    return results
        finally:
            resume_merges(w)


def run_merge(w: "IndexWriter", merge: OneMerge) -> MergeResult | None:
    """Merge ``merge.segments`` and commit the result; None if an input was merged away meanwhile."""
    with w._lock:
        if w._closed:
            raise AlreadyClosedError(f"IndexWriter of [{w.index_name}] is closed", w.tragic_exception)
        readers: list[SegmentReader] = []
        for sci in merge.segments:
            leaf = w._reader.leaf(sci.name)
            if leaf is None:
                for r in readers:
                    r.dec_ref()
                return None
            leaf.inc_ref()
            readers.append(leaf)
    threshold = max(1, w.settings.approximate_threshold)

    def check_abort() -> None:
        if w._closed or w._merge_abort:
            raise MergeAbortedError(f"merge of {merge.names} into a new segment was aborted")

    def build_graph(fi: FieldInfo, count: int) -> bool:
        check_abort()  # a graph build cannot be interrupted: check before each one
        return fi.attributes.get("knn") == "true" and count >= threshold

    core: SegmentCoreReaders | None = None
    result: MergeResult | None = None
    try:
        paths = w.parser.derived_paths
        derived = ([p for p in paths if w.mappings.nested_scope(p) is None],
                   [p for p in paths if w.mappings.nested_scope(p) is not None])
        result = SegmentMerger(w.codec, w.directory, readers, w._next_segment_name(), build_graph,
                               check_abort=check_abort, derived=derived).merge()
        check_abort()
        core = SegmentCoreReaders(w.directory, result.commit_info.info, w.deleter)
        with w._refresh_lock, w._lock:
            check_abort()
            _commit_merge(w, readers, result, core)
        return result
    except BaseException:
        if result is not None and core is None:  # written but never referenced: delete directly
            for f in result.commit_info.info.files:
                try:
                    w.directory.delete_file(f)
                except OSError:
                    pass  # missing, or a failing disk: the next open removes unreferenced files
        raise
    finally:
        if core is not None:
            core.dec_ref()  # the merged leaf holds its own reference; after a failure this removes the files
        for r in readers:
            r.dec_ref()


def _commit_merge(w: "IndexWriter", readers: list[SegmentReader], result: MergeResult,
                  core: SegmentCoreReaders) -> None:
    sci = result.commit_info
    merged_live = np.ones(sci.info.max_doc, dtype=bool)
    still_pending: list[np.ndarray] = []
    for r, doc_map in zip(readers, result.doc_maps):
        now = w._live.get(r.name)
        was = np.ones(r.max_doc, dtype=bool) if r.live is None else r.live
        if now is not None:
            merged_live[doc_map[np.flatnonzero(was & ~now)]] = False
        pending = w._pending_deletes.get(r.name)
        if pending:
            moved = doc_map[np.asarray(pending, dtype=np.int64)]
            still_pending.append(moved[moved >= 0])
    del_count = int((~merged_live).sum())
    if del_count == sci.info.max_doc:  # every document is gone: drop the merged segment (Lucene does too)
        _swap(w, readers, result, None, None, [])
        return
    live = None
    if del_count:
        w.codec.live_docs_format.write(w.directory, sci.info, merged_live, del_count, 1)
        sci = SegmentCommitInfo(sci.info, 1, del_count)
        merged_live.flags.writeable = False
        live = merged_live
    try:
        leaf = SegmentReader(w.directory, sci, w.deleter, core=core, live=live)
    except BaseException:
        if sci.live_docs_file:
            try:
                w.directory.delete_file(sci.live_docs_file)
            except OSError:
                pass
        raise
    _swap(w, readers, result, leaf, merged_live, still_pending)


def _swap(w: "IndexWriter", readers: list[SegmentReader], result: MergeResult, leaf: SegmentReader | None,
          merged_live: np.ndarray | None, still_pending: list[np.ndarray]) -> None:
    """Replace the inputs by ``leaf`` (None: by nothing) in the segment list and the reader."""
    names = {r.name for r in readers}
    at = min(i for i, s in enumerate(w._segments) if s.name in names)
    rest = [s for s in w._segments if s.name not in names]
    segments = rest if leaf is None else rest[:at] + [leaf.commit_info] + rest[at:]
    old = w._reader
    leaves = [] if leaf is None else [leaf]
    try:
        for s in rest:
            prev = old.leaf(s.name)
            if prev is None:  # only after a refresh failed half-way: the reader lags the segment list
                leaves.append(SegmentReader(w.directory, s, w.deleter, live=w._live[s.name]))
            elif prev.commit_info.del_gen == s.del_gen:
                prev.inc_ref()
                leaves.append(prev)
            else:
                leaves.append(prev.with_live_docs(s, w._live[s.name]))
    except BaseException:
        for r in leaves:
            r.dec_ref()  # the merged leaf's reference was the only one on its live-docs file: deleted
        raise
    order = {s.name: i for i, s in enumerate(segments)}
    leaves.sort(key=lambda r: order[r.name])
    # From here on nothing can fail: the segment list, live docs, version map and reader change together.
    w._segments = segments
    for n in names:
        w._live.pop(n, None)
        w._pending_deletes.pop(n, None)
    if leaf is not None and merged_live is not None:
        name = leaf.name
        w._live[name] = leaf.live
        visible = merged_live.copy()
        if still_pending:
            moved = np.unique(np.concatenate(still_pending))
            if moved.size:
                w._pending_deletes[name] = moved.tolist()
                visible[moved] = False  # replaced or deleted in the buffer: the version map points there
        for new_doc in np.flatnonzero(visible).tolist():
            doc_id = result.ids[new_doc]
            if doc_id is not None:  # nested children have no id; their root carries the block's location
                w._versions[doc_id] = VersionValue(result.versions[new_doc], result.seq_nos[new_doc],
                                                   (name, new_doc))
    w._reader = DirectoryReader(leaves, old.version + 1)
    old.dec_ref()
