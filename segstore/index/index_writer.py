"""``IndexWriter``: the single writer of one index.

Every operation is validated first (a bad document writes nothing), then logged to the translog (fsynced
before the call returns under ``request`` durability), then applied to the RAM buffer, the live version map
and the pending deletes. ``refresh()`` turns the buffer into a new immutable segment and publishes pending
deletes as new live-docs generations, then opens a new point-in-time reader. ``commit()`` refreshes, rolls
the translog, publishes the segment list and the primary-key changes in one LMDB transaction, and trims the
translog. Opening an index replays the translog operations newer than the last commit.

Locking: ``_lock`` (re-entrant) guards all mutable state and is held only briefly by ``refresh`` (the
segment is built outside it, so indexing continues during a flush); ``_refresh_lock`` serialises refreshes,
commits and merge commits. ``commit`` holds both for its whole duration so that no operation can slip
between the flush and the translog roll.

Merges: after each refresh ``maybe_merge()`` asks the merge policy for natural merges and hands them to the
merge scheduler (serial by default; the Node uses background threads). A merge holds neither lock while it
reads and writes; it takes both only to swap its inputs for the merged segment (``merge_commit``). Lock
order: scheduler lock, then ``_refresh_lock``, then ``_lock``; nothing calls the scheduler while holding
a writer lock.

The class holds the state and the public API; the steps live in modules of their own, each a set of
functions taking the writer and following the locking rules above: :mod:`.writer_mappings` (parsing a
batch, dynamic mappings, ``put_mapping``), :mod:`.write_ops` (resolving and applying operations),
:mod:`.realtime_get`, :mod:`.writer_refresh` (flush, pending deletes, reader reopening),
:mod:`.writer_commit` (commit, stats), :mod:`.merge_commit` (merges) and :mod:`.writer_recovery` (open).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from segstore.codec.base import Codec
from segstore.codec.registry import default_codec
from segstore.errors import AlreadyClosedError, ValidationError
from segstore.index import realtime_get, writer_commit, writer_mappings, writer_refresh
from segstore.index.buffered_graphs import MIN_INCREMENTAL_VECTORS, BufferedGraphs
from segstore.index.catalog import Catalog
from segstore.index.directory_reader import DirectoryReader
from segstore.index.documents_writer import vector_field_infos
from segstore.index.file_deleter import IndexFileDeleter
from segstore.index.file_names import WRITE_LOCK_NAME, segment_name
from segstore.index.index_files import IndexFiles
from segstore.index.merge_policy import MergePolicy, OneMerge
from segstore.index.merge_scheduler import MergeScheduler, merge_config
from segstore.index.operations import (
    BufferedDoc,
    DeleteOp,
    GetResult,
    IndexOp,
    OpResult,
)
from segstore.index.segment_info import SegmentCommitInfo
from segstore.index.segment_merger import MergeResult
from segstore.index.settings import IndexSettings
from segstore.index.version_map import VersionValue
from segstore.index.write_ops import OpResolver
from segstore.index.writer_recovery import open_commit, replay_translog
from segstore.mapping.document_parser import DocumentParser
from segstore.mapping.mappings import Mappings
from segstore.models.registry import pending_models, resolve_mappings
from segstore.search.source_filter import SourceFilter
from segstore.translog import Translog

__all__ = ["IndexWriter"]

log = logging.getLogger(__name__)


class IndexWriter:
    """Owns one index: its write lock, translog, buffer and segment list. Use as a context manager."""

    def __init__(
        self,
        catalog: Catalog,
        index_name: str,
        files: IndexFiles,
        *,
        codec: Codec | None = None,
        merge_policy: MergePolicy | Callable[[IndexSettings], MergePolicy] | None = None,
        merge_scheduler: MergeScheduler | Callable[[IndexSettings], MergeScheduler] | None = None,
    ) -> None:
        meta = catalog.get_index(index_name)
        if meta is None:
            raise KeyError(f"index [{index_name}] does not exist in the catalog")
        self.catalog = catalog
        self.index_name = index_name
        self.uuid: bytes = meta["uuid"]
        self.files = files
        self.directory = files.directory
        self.codec = codec or default_codec()
        self.meta = meta
        self.settings, mappings = files.parse_metadata(meta)
        self._mappings = resolve_mappings(mappings, catalog)  # model_id fields of created models
        self.merge_policy, self.merge_scheduler, self._owns_scheduler = merge_config(
            merge_policy, merge_scheduler, self.settings)
        self.parser = DocumentParser(self.mappings, self._derived_paths())
        self._lock = threading.RLock()
        self._refresh_lock = threading.RLock()
        self._closed = False
        self._mapping_changed = False
        self._on_close: list[Callable[[], None]] = []
        self.tragic_exception: BaseException | None = None
        self._write_lock = self.directory.obtain_lock(WRITE_LOCK_NAME)
        try:
            self.deleter = IndexFileDeleter(self.directory)
            state = open_commit(self)
            self._commit_record: dict[str, Any] = state.record
            self._segments: list[SegmentCommitInfo] = state.segments
            self._committed: list[SegmentCommitInfo] = list(state.segments)
            self._live: dict[str, np.ndarray | None] = state.live
            self._reader: DirectoryReader = state.reader
            self._segment_counter: int = state.record.get("segment_counter", 0)
            self._max_seq_no: int = state.record.get("max_seq_no", -1)
            self._buffer: dict[str, BufferedDoc] = {}
            self._graphs = self._buffered_graphs()
            self._flushing: dict[str, tuple[str, int, BufferedDoc]] = {}
            self._flushing_roots: tuple[str, np.ndarray] = ("", np.zeros(0, dtype=np.int64))
            self._versions: dict[str, VersionValue] = {}
            self._pending_deletes: dict[str, list[int]] = {}
            self._merging: set[str] = set()
            self._last_refresh = time.monotonic()
            self._pending_merges: list[OneMerge] = []
            self._merges_in_flight: set[int] = set()  # id() of merges handed out and not finished
            self._merge_cond = threading.Condition(self._lock)
            self._merges_paused = 0  # > 0 while a forced merge or close() runs: no natural merges
            self._merge_abort = False  # running merges stop at their next check (close without commit)
            self._force_merge_lock = threading.Lock()
            self._segment_bytes: dict[str, int] = {}
            self._merge_totals = {"total": 0, "total_docs": 0, "total_time_in_millis": 0}
            self.translog: Translog = state.translog
            self._resolver = OpResolver(self)
            self.replayed_ops = replay_translog(self, state)
        except BaseException:
            self._write_lock.close()
            raise

    # ------------------------------------------------------------------------------------------ helpers

    @property
    def mappings(self) -> Mappings:
        """The index mappings. A ``model_id`` field is resolved from its model (dimension, data type, space,
        IVF parameters) as soon as the model is ``created``: a mapping may be created before its model is
        trained (vector-semantics.md §5.4); until then indexing and search fail with ``Model ID '<id>' is
        not created.``. Cheap when no field waits for a model (no catalog access)."""
        current = self._mappings
        if pending_models(current):
            resolved = resolve_mappings(current, self.catalog)
            if resolved is not current:
                with self._lock:
                    if self._mappings is current:
                        self._mappings = resolved
                        self.parser = DocumentParser(resolved, self._derived_paths())
                return self._mappings
        return current

    @mappings.setter
    def mappings(self, value: Mappings) -> None:
        self._mappings = resolve_mappings(value, self.catalog)

    def _derived_paths(self) -> list[str]:
        """Derived vector paths (derived-source.md §1.1): the index setting is on, ``_source`` is enabled,
        the field has no ``copy_to``, and the mapping's ``_source`` includes/excludes keep the field."""
        if not self.settings.derived_source or not self.mappings.source_enabled:
            return []
        keep = SourceFilter(self.mappings.source_includes, self.mappings.source_excludes)
        return [p for p, fm in self.mappings.vector_fields.items() if not fm.copy_to and keep.keeps(p)]

    def _block_start(self, segment: str, root: int) -> int:
        """First doc id of the block whose root is ``root`` (its nested children come first)."""
        name, roots = self._flushing_roots
        if name == segment:
            i = int(np.searchsorted(roots, root))
            return int(roots[i - 1]) + 1 if i > 0 else 0
        leaf = self._reader.leaf(segment)
        return root if leaf is None else leaf.block_start(root)

    def _ensure_open(self) -> None:
        if self._closed:
            raise AlreadyClosedError(f"IndexWriter of [{self.index_name}] is closed", self.tragic_exception)

    def _tragic(self, e: BaseException) -> None:
        log.error("tragic error in IndexWriter of [%s]: %r", self.index_name, e)
        self.tragic_exception = e
        self._close_internal()

    def _buffered_graphs(self) -> BufferedGraphs:
        """Graph builders for a new buffer generation (they start once a field has enough vectors)."""
        return BufferedGraphs(self.codec, lambda: self.mappings,
                              lambda m, path: vector_field_infos(m, {path}).get(path),
                              max(MIN_INCREMENTAL_VECTORS, self.settings.approximate_threshold))

    def _next_segment_name(self) -> str:
        with self._lock:
            name = segment_name(self._segment_counter)
            self._segment_counter += 1
            return name

    @property
    def max_seq_no(self) -> int:
        return self._max_seq_no

    # ---------------------------------------------------------------------------------------- write ops

    def index(self, doc_id: str, source: dict[str, Any], *, op_type: str = "index",
              if_seq_no: int | None = None, if_primary_term: int | None = None,
              routing: str | None = None, version: int | None = None, version_type: str = "internal") -> OpResult:
        """Index one document; raises the typed error if it is rejected."""
        (res,) = self.bulk([IndexOp(doc_id, source, op_type, if_seq_no, if_primary_term, routing, version,
                                    version_type)])
        if isinstance(res, ValidationError):
            raise res
        return res

    def delete(self, doc_id: str, *, if_seq_no: int | None = None, if_primary_term: int | None = None,
               version: int | None = None, version_type: str = "internal") -> OpResult:
        (res,) = self.bulk([DeleteOp(doc_id, if_seq_no, if_primary_term, version, version_type)])
        if isinstance(res, ValidationError):
            raise res
        return res

    def bulk(self, ops: Sequence[IndexOp | DeleteOp]) -> list[OpResult | ValidationError]:
        """Apply a batch: each slot gets its result or the error that rejected it alone.

        Validation happens before anything is logged; accepted operations are logged in one translog
        write (one fsync under ``request`` durability) before they are applied.
        """
        self._ensure_open()
        parsed_by_slot = writer_mappings.parse_documents(self, ops)
        with self._lock:
            self._ensure_open()
            results, log_ops, apply = self._resolver.resolve(ops, parsed_by_slot)
            if log_ops:
                try:
                    self.translog.add(log_ops)
                except BaseException as e:
                    self._tragic(e)
                    raise
                for fn in apply:
                    fn()
                self._graphs.submit()
        return results

    def _apply_dynamic_mappings(self, ops: Sequence[IndexOp]) -> dict[int, ValidationError]:
        return writer_mappings.apply_dynamic_mappings(self, ops)

    def put_mapping(self, body: dict[str, Any]) -> None:
        """Add fields to the mapping (existing fields keep their definition), validate, persist."""
        writer_mappings.put_mapping(self, body)

    # ------------------------------------------------------------------------------------ realtime get

    def get(self, doc_id: str) -> GetResult | None:
        """Realtime get: sees buffered documents too, like OpenSearch's GET (:mod:`.realtime_get`)."""
        return realtime_get.get(self, doc_id)

    # ---------------------------------------------------------------------------------------- refresh

    def refresh(self) -> bool:
        """Make every applied operation searchable, then let the merge policy look at the new segments.
        Returns False if there was nothing to do."""
        done = self._refresh()
        if done:
            self.maybe_merge("refresh")
        return done

    def _refresh(self) -> bool:
        """Refresh without looking for merges (:func:`segstore.index.writer_refresh.refresh`)."""
        return writer_refresh.refresh(self)

    def needs_refresh(self, min_age: float = 0.0) -> bool:
        """True if operations were applied that no reader sees yet, and the last refresh is ``min_age`` old."""
        with self._lock:
            dirty = bool(self._buffer or self._pending_deletes)
            return dirty and time.monotonic() - self._last_refresh >= min_age

    def uncommitted_translog_bytes(self) -> int:
        return int(self.translog.stats(self._commit_record.get("translog_generation", 0))
                   .uncommitted_size_in_bytes)

    def acquire_reader(self) -> DirectoryReader:
        """The current point-in-time reader with an extra reference: ``close()`` it when done."""
        self._ensure_open()
        with self._lock:
            return self._reader.inc_ref()

    # ----------------------------------------------------------------------------------------- commit

    def commit(self, user_data: dict[str, Any] | None = None) -> int:
        """Durably publish everything applied so far; returns the commit generation
        (:func:`segstore.index.writer_commit.commit`)."""
        return writer_commit.commit(self, user_data)

    # ----------------------------------------------------------------------------------------- merges
    # The bookkeeping lives in ``merge_commit`` (imported lazily: it imports this module's types).

    def maybe_merge(self, trigger: str = "explicit") -> None:
        """Ask the merge policy for natural merges and hand them to the scheduler (called after every
        refresh). With the serial scheduler the merges run here; with the concurrent one this returns at
        once. Does nothing while a forced merge or ``close()`` runs."""
        from segstore.index import merge_commit  # noqa: PLC0415

        if not self._closed and merge_commit.register_natural_merges(self):
            self.merge_scheduler.merge(self, trigger)

    def next_merge(self) -> OneMerge | None:
        """The next pending natural merge for the scheduler, or None (also while paused or closed)."""
        with self._lock:
            if self._closed or self._merges_paused or not self._pending_merges:
                return None
            m = self._pending_merges.pop(0)
            self._merges_in_flight.add(id(m))
            return m

    def merge(self, merge: OneMerge) -> MergeResult | None:
        """Run one merge handed out by :meth:`next_merge`: read the inputs at their current generation,
        write the merged segment, commit it in. On failure the inputs are untouched, the merge's files
        are removed and the writer stays usable."""
        from segstore.index import merge_commit  # noqa: PLC0415

        return merge_commit.merge_one(self, merge)

    def merge_stats(self) -> dict[str, int]:
        """Running merges (``current``) and totals of finished ones, as OpenSearch's ``_stats`` shows."""
        from segstore.index import merge_commit  # noqa: PLC0415

        return merge_commit.merge_stats(self)

    def force_merge(self, max_num_segments: int = 1, *, only_expunge_deletes: bool = False,
                    flush: bool = True) -> list[MergeResult]:
        """Merge the segments that exist now down to ``max_num_segments`` (or rewrite the segments with
        deletes: ``only_expunge_deletes``), then commit if ``flush``. Returns what each merge did.
        Safe while indexing goes on (see :func:`segstore.index.merge_commit.force_merge`)."""
        from segstore.index import merge_commit  # noqa: PLC0415

        self._ensure_open()
        results = merge_commit.force_merge(self, max_num_segments, only_expunge_deletes)
        if flush:
            self.commit()
        self.maybe_merge("force_merge")
        return results

    # -------------------------------------------------------------------------------------- lifecycle

    def stats(self) -> dict[str, Any]:
        return writer_commit.stats(self)

    def segments(self) -> list[SegmentCommitInfo]:
        with self._lock:
            return list(self._segments)

    def on_close(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the writer closes (e.g. release a catalog handle it was opened with)."""
        self._on_close.append(fn)

    def _close_internal(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fn in (self._graphs.close, self.translog.close, self._reader.dec_ref, self._write_lock.close,
                   *self._on_close):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - keep closing the rest
                log.warning("error while closing IndexWriter of [%s]: %r", self.index_name, e)

    def close(self, *, commit: bool = True) -> None:
        """Commit (unless ``commit=False``) and release everything. Idempotent.

        Running merges are waited for, so their result is part of the final commit; with ``commit=False``
        they are aborted at their next check (a graph build in progress still completes) and discarded.
        Pending merges are dropped."""
        if self._closed:
            return
        from segstore.index.merge_commit import pause_merges  # noqa: PLC0415

        try:
            pause_merges(self, abort=not commit or self.tragic_exception is not None)
            if commit and self.tragic_exception is None:
                self.commit()
        finally:
            with self._lock:
                self._close_internal()
            if self._owns_scheduler:
                self.merge_scheduler.close()

    def __enter__(self) -> "IndexWriter":
        return self

    def __exit__(self, et: type[BaseException] | None, *exc: object) -> None:
        self.close(commit=et is None)

    def __repr__(self) -> str:
        return f"IndexWriter({self.index_name!r}, {self.directory!r})"

