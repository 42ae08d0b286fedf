"""Refreshing an ``IndexWriter``: the RAM buffer becomes a new segment, pending deletes become new live-docs
generations, and a new point-in-time reader opens over the result (Lucene's flush plus near-real-time
reopen; OpenSearch's refresh).

Locking (the writer's rules, see :mod:`segstore.index.index_writer`): :func:`refresh` holds ``_refresh_lock``
for its whole duration and takes ``_lock`` only twice, briefly: to swap out the buffer, and to publish the
new segment, the live docs and the reader. The segment is built outside ``_lock``, so indexing continues
during a flush; until the segment is published, its documents stay reachable for the realtime GET through
``_flushing`` / ``_flushing_roots``. :func:`apply_pending_deletes` and :func:`open_new_reader` run under
``_lock``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from segstore.index.directory_reader import DirectoryReader
from segstore.index.documents_writer import flush_documents, root_doc_ids
from segstore.index.segment_info import SegmentCommitInfo
from segstore.index.segment_reader import SegmentReader
from segstore.index.version_map import VersionValue

if TYPE_CHECKING:
    from segstore.index.index_writer import IndexWriter

__all__ = ["refresh", "apply_pending_deletes", "open_new_reader"]

log = logging.getLogger(__name__)


def refresh(w: "IndexWriter") -> bool:
    """Flush the buffer into a new segment (if it holds documents), publish pending deletes and open a new
    reader. Returns False if there was nothing to do. Starts no merge (callers that may, do)."""
    w._ensure_open()
    with w._refresh_lock:
        with w._lock:
            if not w._buffer and not w._pending_deletes:
                return False
            docs = list(w._buffer.values())
            w._buffer = {}
            graphs, w._graphs = w._graphs, w._buffered_graphs()
            name = w._next_segment_name() if docs else None
            if name is not None:
                roots = root_doc_ids(docs)
                w._flushing_roots = (name, np.asarray(roots, dtype=np.int64))
                for root, d in zip(roots, docs):
                    w._versions[d.doc_id] = VersionValue(d.version, d.seq_no, (name, root))
                    w._flushing[d.doc_id] = (name, root, d)
        new_sci = None
        if name is not None:
            try:
                new_sci = flush_documents(w.codec, w.directory, name, docs, w.mappings,
                                          w.parser.derived_paths, w.settings.approximate_threshold,
                                          prebuilt_graph=graphs.take, grown_rows=graphs.rows)
            except BaseException as e:  # acked ops are in the translog; a reopen replays them
                w._tragic(e)
                raise
            finally:
                graphs.close()
        else:
            graphs.close()
        with w._lock:
            if new_sci is not None:
                w._segments.append(new_sci)
                w._live[new_sci.name] = None
            w._flushing = {}
            w._flushing_roots = ("", np.zeros(0, dtype=np.int64))
            apply_pending_deletes(w)
            open_new_reader(w)
            w._last_refresh = time.monotonic()
    return True


def apply_pending_deletes(w: "IndexWriter") -> None:
    """Write a new live-docs generation for every segment with pending deletes (under ``w._lock``)."""
    # A segment's pending deletes are dropped only once its live-docs generation is written: if a write
    # fails, that segment's and the later segments' deletes stay pending for the next refresh (they are
    # already in the translog, but a later commit would otherwise publish the docs as live).
    pending = w._pending_deletes
    for i, sci in enumerate(w._segments):
        docs = pending.get(sci.name)
        if not docs:
            continue
        live = w._live[sci.name]
        live = np.ones(sci.info.max_doc, dtype=bool) if live is None else live.copy()
        live[np.asarray(docs, dtype=np.int64)] = False
        del_count = int(sci.info.max_doc - live.sum())
        if del_count != sci.del_count:
            gen = sci.del_gen + 1
            w.codec.live_docs_format.write(w.directory, sci.info, live, del_count, gen)
            live.flags.writeable = False
            w._segments[i] = SegmentCommitInfo(sci.info, gen, del_count)
            w._live[sci.name] = live
        del pending[sci.name]
    if pending:  # deletes for segments that no longer exist were carried by a merge
        log.debug("dropping pending deletes for vanished segments %s", sorted(pending))
        pending.clear()


def open_new_reader(w: "IndexWriter") -> None:
    """Replace ``w._reader`` with a reader over the current segment list (under ``w._lock``): unchanged
    segments share the old reader's leaves, segments with a new live-docs generation reuse its core
    readers."""
    old = w._reader
    leaves = []
    try:
        for sci in w._segments:
            prev = old.leaf(sci.name)
            if prev is not None and prev.commit_info.del_gen == sci.del_gen:
                prev.inc_ref()
                leaves.append(prev)
            elif prev is not None:
                leaves.append(prev.with_live_docs(sci, w._live[sci.name]))
            else:
                leaves.append(SegmentReader(w.directory, sci, w.deleter, live=w._live[sci.name]))
    except BaseException:
        for leaf in leaves:
            leaf.dec_ref()
        raise
    w._reader = DirectoryReader(leaves, old.version + 1)
    old.dec_ref()
