"""Committing an ``IndexWriter``: durably publish everything applied so far as one commit point, and the
writer's counters.

A commit refreshes, rolls the translog to a new generation, writes the commit record (segment list,
counters, translog uuid and first uncommitted generation, user data) together with the primary-key changes
in one LMDB transaction (:meth:`Catalog.commit`), then trims the translog below the new generation. The
file deleter then moves its references from the previous commit's files to the new commit's.

Locking (see :mod:`segstore.index.index_writer`): :func:`commit` holds ``_refresh_lock`` and ``_lock`` for
its whole duration, so that no operation can slip between the flush and the translog roll. It starts no
merge: the thread holds both writer locks, and nothing may call the merge scheduler while holding one.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from segstore.index.segment_info import SegmentCommitInfo

if TYPE_CHECKING:
    from segstore.index.index_writer import IndexWriter

__all__ = ["GC_DELETES", "commit", "stats"]

GC_DELETES = 60.0  # index.gc_deletes default, seconds


def commit(w: "IndexWriter", user_data: dict[str, Any] | None = None) -> int:
    """Durably publish everything applied so far; returns the commit generation."""
    w._ensure_open()
    with w._refresh_lock, w._lock:
        w._refresh()  # no merges from here: this thread holds both writer locks
        try:
            new_gen = w.translog.roll_generation()
            record = {
                "segments": [{"name": s.name, "id": s.info.segment_id, "codec": s.info.codec,
                              "max_doc": s.info.max_doc, "del_gen": s.del_gen, "del_count": s.del_count}
                             for s in w._segments],
                "segment_counter": w._segment_counter,
                "max_seq_no": w._max_seq_no,
                "translog_uuid": w._commit_record["translog_uuid"],
                "translog_generation": new_gen,
                "user_data": dict(user_data or {}),
                "timestamp": time.time(),
            }
            pk = {doc_id: vv.pk_value() for doc_id, vv in w._versions.items()}
            gen = w.catalog.commit(w.uuid, record, pk)
            record["generation"] = gen
            w.translog.trim_below(new_gen)
        except BaseException as e:
            w._tragic(e)
            raise
        old_files = _files_of(w._committed)
        w._commit_record = record
        w._committed = list(w._segments)
        w.deleter.inc_ref(_files_of(w._committed))
        w.deleter.dec_ref(old_files)
        # Delete tombstones stay in memory for index.gc_deletes (60 s), as OpenSearch's version map
        # keeps them, so a re-created document continues the version sequence across a commit.
        now = time.monotonic()
        w._versions = {i: v for i, v in w._versions.items() if v.deleted and now - v.time < GC_DELETES}
        return gen


def _files_of(segments: list[SegmentCommitInfo]) -> list[str]:
    return [f for s in segments for f in s.files()]


def stats(w: "IndexWriter") -> dict[str, Any]:
    """Segment and document counts, the last commit generation and the translog's counters."""
    with w._lock:
        return {
            "segments": len(w._segments),
            "docs": sum(s.num_docs for s in w._segments),  # searchable docs, as Lucene counts them
            "deleted_docs": sum(s.del_count for s in w._segments),
            "buffered_docs": len(w._buffer),
            "max_seq_no": w._max_seq_no,
            "commit_generation": w._commit_record.get("generation", 0),
            "translog": asdict(w.translog.stats(w._commit_record.get("translog_generation", 0))),
        }
