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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from segstore.codec.base import Codec
from segstore.codec.registry import default_codec
from segstore.errors import AlreadyClosedError, ValidationError
from segstore.index.catalog import Catalog
from segstore.index.directory_reader import DirectoryReader
from segstore.index.buffered_graphs import MIN_INCREMENTAL_VECTORS, BufferedGraphs
from segstore.index.documents_writer import flush_documents, root_doc_ids, vector_field_infos
from segstore.index.file_deleter import IndexFileDeleter
from segstore.index.file_names import WRITE_LOCK_NAME, segment_name
from segstore.index.index_files import IndexFiles
from segstore.index.merge_policy import MergePolicy, OneMerge
from segstore.index.merge_scheduler import MergeScheduler, merge_config
from segstore.index.segment_merger import MergeResult
from segstore.index.settings import IndexSettings
from segstore.index.operations import BufferedDoc, DeleteOp, GetResult, IndexOp, OpResult
from segstore.index.segment_info import SegmentCommitInfo
from segstore.index.segment_reader import SegmentReader, vector_to_json
from segstore.index.version_map import VersionValue
from segstore.index.write_ops import OpResolver
from segstore.index.writer_recovery import open_commit, replay_translog
from segstore.derived_source.mask import inject_source
from segstore.mapping.document_parser import DocumentParser, ParsedDocument
from segstore.mapping.dynamic import dynamic_properties, merge_properties
from segstore.mapping.mappings import Mappings
from segstore.models.registry import pending_models, resolve_mappings
from segstore.search.source_filter import SourceFilter
from segstore.translog import Translog

__all__ = ["IndexWriter"]

log = logging.getLogger(__name__)
GC_DELETES = 60.0  # index.gc_deletes default, seconds


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
              routing: str | None = None) -> OpResult:
        """Index one document; raises the typed error if it is rejected."""
        (res,) = self.bulk([IndexOp(doc_id, source, op_type, if_seq_no, if_primary_term, routing)])
        if isinstance(res, ValidationError):
            raise res
        return res

    def delete(self, doc_id: str, *, if_seq_no: int | None = None,
               if_primary_term: int | None = None) -> OpResult:
        (res,) = self.bulk([DeleteOp(doc_id, if_seq_no, if_primary_term)])
        if isinstance(res, ValidationError):
            raise res
        return res

    def bulk(self, ops: Sequence[IndexOp | DeleteOp]) -> list[OpResult | ValidationError]:
        """Apply a batch: each slot gets its result or the error that rejected it alone.

        Validation happens before anything is logged; accepted operations are logged in one translog
        write (one fsync under ``request`` durability) before they are applied.
        """
        self._ensure_open()
        index_ops = [(i, op) for i, op in enumerate(ops) if isinstance(op, IndexOp)]
        pairs = [(str(op.doc_id), op.source) for _, op in index_ops]
        self.mappings  # noqa: B018 - resolves model fields whose model was created since (new parser)
        parsed = self.parser.parse(pairs)
        # Dynamic mappings come only from documents that passed validation; then those documents are
        # parsed again so their doc values follow the new mapping (a later document of the batch that
        # conflicts with a type introduced earlier is rejected there).
        accepted = [j for j, p in enumerate(parsed) if not isinstance(p, ValidationError)]
        rejected = self._apply_dynamic_mappings([index_ops[j][1] for j in accepted])
        if rejected or self._mapping_changed:
            self._mapping_changed = False
            for pos, err in rejected.items():
                parsed[accepted[pos]] = err
            redo = [j for j in accepted if not isinstance(parsed[j], ValidationError)]
            for j, p in zip(redo, self.parser.parse([pairs[j] for j in redo])):
                parsed[j] = p
        parsed_by_slot: dict[int, ParsedDocument | ValidationError] = {
            i: p for (i, _), p in zip(index_ops, parsed)}
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
        """Add OpenSearch's dynamic mappings for unmapped fields (persisted before anything is logged);
        returns the ops rejected by a ``strict`` mapping, by position."""
        new: dict[str, Any] = {}
        rejected: dict[int, ValidationError] = {}
        for j, op in enumerate(ops):
            if isinstance(op.source, dict):
                try:
                    new = merge_properties(new, dynamic_properties(op.source, self.mappings))
                except ValidationError as e:
                    rejected[j] = e
        if new:
            self.put_mapping({"properties": new})
        return rejected

    def put_mapping(self, body: dict[str, Any]) -> None:
        """Add fields to the mapping (existing fields keep their definition), validate, persist."""
        with self._lock:
            current = dict(self.meta.get("mappings") or {})
            merged = dict(current)
            merged["properties"] = merge_properties(current.get("properties") or {}, body.get("properties") or {})
            if merged == current:
                return
            mappings = Mappings.parse(merged, index_knn=self.settings.knn)
            meta = dict(self.meta)
            meta["mappings"] = merged
            self.catalog.put_index_metadata(self.index_name, {k: v for k, v in meta.items() if k != "uuid"})
            self.meta = meta
            self.mappings = mappings
            self.parser = DocumentParser(self.mappings, self._derived_paths())
            self._mapping_changed = True

    # ------------------------------------------------------------------------------------ realtime get

    def get(self, doc_id: str) -> GetResult | None:
        """Realtime get: sees buffered documents too, like OpenSearch's GET."""
        self._ensure_open()
        with self._lock:
            vv = self._resolver.current(doc_id)
            if vv is None or vv.deleted:
                return None
            if vv.location is None:
                return self._buffered_get(self._buffer[doc_id])
            seg, doc = vv.location
            flushing = self._flushing.get(doc_id)
            if flushing is not None and flushing[0] == seg:
                return self._buffered_get(flushing[2])
            reader = self._reader.inc_ref()
        try:
            leaf = reader.leaf(seg)
            if leaf is None:  # the segment was merged away between the lookup and the ref
                return self.get(doc_id)
            record = leaf.stored_document(doc)
            return GetResult.from_record(doc_id, record, leaf.source(doc, record))
        finally:
            reader.dec_ref()

    def _buffered_get(self, d: BufferedDoc) -> GetResult:
        source = d.stored_source
        if source is not None and self.parser.derived_paths:
            suppliers = {}
            for path in self.parser.derived_paths:
                dt = self.mappings.vector_fields[path].data_type
                if self.mappings.nested_scope(path) is None:
                    rows = [vector_to_json(dt, d.vectors[path])] if path in d.vectors else []
                else:  # nested vectors: in block order, one per child that has one
                    rows = [vector_to_json(dt, vecs[path]) for _, vecs in d.children if path in vecs]
                suppliers[path] = (lambda rows=rows: iter(rows))
            source = inject_source(source, suppliers)
        return GetResult(d.doc_id, d.version, d.seq_no, source, routing=d.routing)

    # ---------------------------------------------------------------------------------------- refresh

    def refresh(self) -> bool:
        """Make every applied operation searchable, then let the merge policy look at the new segments.
        Returns False if there was nothing to do."""
        done = self._refresh()
        if done:
            self.maybe_merge("refresh")
        return done

    def _refresh(self) -> bool:
        self._ensure_open()
        with self._refresh_lock:
            with self._lock:
                if not self._buffer and not self._pending_deletes:
                    return False
                docs = list(self._buffer.values())
                self._buffer = {}
                graphs, self._graphs = self._graphs, self._buffered_graphs()
                name = self._next_segment_name() if docs else None
                if name is not None:
                    roots = root_doc_ids(docs)
                    self._flushing_roots = (name, np.asarray(roots, dtype=np.int64))
                    for root, d in zip(roots, docs):
                        self._versions[d.doc_id] = VersionValue(d.version, d.seq_no, (name, root))
                        self._flushing[d.doc_id] = (name, root, d)
            new_sci = None
            if name is not None:
                try:
                    new_sci = flush_documents(self.codec, self.directory, name, docs, self.mappings,
                                              self.parser.derived_paths, self.settings.approximate_threshold,
                                              prebuilt_graph=graphs.take, grown_rows=graphs.rows)
                except BaseException as e:  # acked ops are in the translog; a reopen replays them
                    self._tragic(e)
                    raise
                finally:
                    graphs.close()
            else:
                graphs.close()
            with self._lock:
                if new_sci is not None:
                    self._segments.append(new_sci)
                    self._live[new_sci.name] = None
                self._flushing = {}
                self._flushing_roots = ("", np.zeros(0, dtype=np.int64))
                self._apply_pending_deletes()
                self._open_new_reader()
                self._last_refresh = time.monotonic()
        return True

    def _apply_pending_deletes(self) -> None:
        # A segment's pending deletes are dropped only once its live-docs generation is written: if a write
        # fails, that segment's and the later segments' deletes stay pending for the next refresh (they are
        # already in the translog, but a later commit would otherwise publish the docs as live).
        pending = self._pending_deletes
        for i, sci in enumerate(self._segments):
            docs = pending.get(sci.name)
            if not docs:
                continue
            live = self._live[sci.name]
            live = np.ones(sci.info.max_doc, dtype=bool) if live is None else live.copy()
            live[np.asarray(docs, dtype=np.int64)] = False
            del_count = int(sci.info.max_doc - live.sum())
            if del_count != sci.del_count:
                gen = sci.del_gen + 1
                self.codec.live_docs_format.write(self.directory, sci.info, live, del_count, gen)
                live.flags.writeable = False
                self._segments[i] = SegmentCommitInfo(sci.info, gen, del_count)
                self._live[sci.name] = live
            del pending[sci.name]
        if pending:  # deletes for segments that no longer exist were carried by a merge
            log.debug("dropping pending deletes for vanished segments %s", sorted(pending))
            pending.clear()

    def _open_new_reader(self) -> None:
        old = self._reader
        leaves = []
        try:
            for sci in self._segments:
                prev = old.leaf(sci.name)
                if prev is not None and prev.commit_info.del_gen == sci.del_gen:
                    prev.inc_ref()
                    leaves.append(prev)
                elif prev is not None:
                    leaves.append(prev.with_live_docs(sci, self._live[sci.name]))
                else:
                    leaves.append(SegmentReader(self.directory, sci, self.deleter, live=self._live[sci.name]))
        except BaseException:
            for leaf in leaves:
                leaf.dec_ref()
            raise
        self._reader = DirectoryReader(leaves, old.version + 1)
        old.dec_ref()

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
        """Durably publish everything applied so far; returns the commit generation."""
        self._ensure_open()
        with self._refresh_lock, self._lock:
            self._refresh()  # no merges from here: this thread holds both writer locks
            try:
                new_gen = self.translog.roll_generation()
                record = {
                    "segments": [{"name": s.name, "id": s.info.segment_id, "codec": s.info.codec,
                                  "max_doc": s.info.max_doc, "del_gen": s.del_gen, "del_count": s.del_count}
                                 for s in self._segments],
                    "segment_counter": self._segment_counter,
                    "max_seq_no": self._max_seq_no,
                    "translog_uuid": self._commit_record["translog_uuid"],
                    "translog_generation": new_gen,
                    "user_data": dict(user_data or {}),
                    "timestamp": time.time(),
                }
                pk = {doc_id: vv.pk_value() for doc_id, vv in self._versions.items()}
                gen = self.catalog.commit(self.uuid, record, pk)
                record["generation"] = gen
                self.translog.trim_below(new_gen)
            except BaseException as e:
                self._tragic(e)
                raise
            old_files = self._files_of(self._committed)
            self._commit_record = record
            self._committed = list(self._segments)
            self.deleter.inc_ref(self._files_of(self._committed))
            self.deleter.dec_ref(old_files)
            # Delete tombstones stay in memory for index.gc_deletes (60 s), as OpenSearch's version map
            # keeps them, so a re-created document continues the version sequence across a commit.
            now = time.monotonic()
            self._versions = {i: v for i, v in self._versions.items() if v.deleted and now - v.time < GC_DELETES}
            return gen

    @staticmethod
    def _files_of(segments: list[SegmentCommitInfo]) -> list[str]:
        return [f for s in segments for f in s.files()]

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
        with self._lock:
            return {
                "segments": len(self._segments),
                "docs": sum(s.num_docs for s in self._segments),  # searchable docs, as Lucene counts them
                "deleted_docs": sum(s.del_count for s in self._segments),
                "buffered_docs": len(self._buffer),
                "max_seq_no": self._max_seq_no,
                "commit_generation": self._commit_record.get("generation", 0),
                "translog": asdict(self.translog.stats(self._commit_record.get("translog_generation", 0))),
            }

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

