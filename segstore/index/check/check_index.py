"""``CheckIndex``: runs the checks of one index, in order, and collects them into a :class:`Status`.

The order (:meth:`CheckIndex._run`): the commit record is read (nothing else can be checked without it),
the index metadata is parsed, the catalog values and the translog are checked, then every selected segment
(in parallel with ``threads``), then the index folder is listed for unreferenced files and corruption
markers, the ids that exorcising would lose are collected, and at level 2 the commit record and the
primary-key map are checked against the segments. The checks of each area live in their own mixin:
:class:`~segstore.index.check.segment.SegmentChecks` (with its field and round-trip checks),
:class:`~segstore.index.check.catalog.CatalogChecks` and :class:`~segstore.index.check.translog.TranslogChecks`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from segstore.errors import SegstoreError
from segstore.index.catalog import Catalog
from segstore.index.check.base import _FailFast
from segstore.index.check.catalog import CatalogChecks
from segstore.index.check.location import IndexLocation
from segstore.index.check.segment import SegmentChecks
from segstore.index.check.status import (
    Problem,
    SegmentStatus,
    Status,
    problem_from_error,
)
from segstore.index.check.translog import TranslogChecks
from segstore.index.file_names import WRITE_LOCK_NAME
from segstore.index.index_files import IndexFiles
from segstore.store.fs_directory import FSDirectory

__all__ = ["CheckIndex", "ProgressFn"]

ProgressFn = Callable[[int, int, str], None]


class CheckIndex(SegmentChecks, CatalogChecks, TranslogChecks):
    """Checks one index of a data directory. ``run()`` never raises for damage it can describe.

    ``segments`` restricts the per-segment checks (the primary-key check is then skipped, like Lucene's
    ``-segment``). ``fail_fast`` stops at the first error. ``threads`` checks segments in parallel.
    ``progress(done, total, what)`` is called after each segment.
    """

    def __init__(self, catalog: Catalog, location: IndexLocation, *, level: int = 1,
                 segments: Iterable[str] | None = None, fail_fast: bool = False, threads: int = 1,
                 progress: ProgressFn | None = None, recall_queries: int = 20, min_recall: float = 0.5,
                 round_trip_limit: int | None = None) -> None:
        if level not in (1, 2, 3):
            raise ValueError(f"level must be 1, 2 or 3, got {level}")
        self.catalog = catalog
        self.location = location
        self.level = level
        self.only = set(segments or ())
        self.fail_fast = fail_fast
        self.threads = max(1, int(threads))
        self.progress = progress
        self.recall_queries = recall_queries
        self.min_recall = min_recall
        self.round_trip_limit = round_trip_limit
        self.directory = FSDirectory(location.index_dir) if os.path.isdir(location.index_dir) else None
        self._settings: Any = None
        self._mappings: Any = None
        self._stop = False

    def _metadata(self, status: Status) -> None:
        meta = self.catalog.get_index(self.location.name) or {}
        try:
            self._settings, self._mappings = IndexFiles.parse_metadata(meta)
        except Exception as e:  # noqa: BLE001 - a bad mapping is reported, the file checks still run
            self._add(status.problems, Problem("catalog", f"index metadata does not parse: {e}",
                                               type(e).__name__, file=f"catalog:indices/{self.location.name}",
                                               level=2))

    # -- entry point

    def run(self) -> Status:
        t0 = time.monotonic()
        loc = self.location
        status = Status(loc.name, loc.uuid.hex(), loc.data_dir, self.level, partial=bool(self.only))
        try:
            self._run(status)
        except _FailFast:
            status.partial = True
        status.took_seconds = round(time.monotonic() - t0, 3)
        return status

    def _run(self, status: Status) -> None:
        loc = self.location
        where = f"catalog:commits/{loc.uuid.hex()}"
        try:
            record = self.catalog.latest_commit(loc.uuid)
        except SegstoreError as e:
            status.commit_readable = False
            self._add(status.problems, problem_from_error(e, "commit"))
            return
        if record is None:
            status.commit_readable = False
            self._add(status.problems, Problem("commit", "the index has no commit point", file=where))
            return
        status.generation = int(record.get("generation", 0))
        status.commit = {k: v for k, v in record.items() if k != "segments"}
        status.commit["segment_count"] = len(record.get("segments") or [])
        self._metadata(status)
        if self.directory is None:
            self._add(status.problems, Problem("commit", f"index folder is missing: {loc.index_dir}",
                                               "MissingFileError", file=loc.index_dir))
            return
        entries = list(record.get("segments") or [])
        for s in entries:
            status.segments.append(SegmentStatus(
                s["name"], bytes(s["id"]).hex(), s["codec"], int(s["max_doc"]), int(s["del_gen"]),
                int(s["del_count"]), checked=not self.only or s["name"] in self.only))
        self._check_catalog(status)
        self._check_translog(status, record)
        work = [(st, s) for st, s in zip(status.segments, entries) if st.checked]
        done = 0
        total = len(work)

        def one(item: tuple[SegmentStatus, dict[str, Any]]) -> None:
            st, s = item
            if self._stop:
                return
            try:
                self._check_segment(st, s, record)
            except _FailFast:
                raise
            except Exception as e:  # noqa: BLE001 - an unexpected failure is a finding, not a crash
                self._add(st.problems, problem_from_error(e, segment=st.name, level=self.level))

        if self.threads > 1 and total > 1:
            with ThreadPoolExecutor(self.threads) as pool:
                for _ in pool.map(one, work):
                    done += 1
                    if self.progress:
                        self.progress(done, total, "segments")
        else:
            for item in work:
                one(item)
                done += 1
                if self.progress:
                    self.progress(done, total, item[0].name)
        referenced = {WRITE_LOCK_NAME}
        for st in status.segments:
            referenced.update(st.files)
        status.unreferenced_files = [f for f in self.directory.list_all() if f not in referenced]
        for f in status.unreferenced_files:
            if f.startswith("corrupted_"):
                self._add(status.problems, Problem("commit", "corruption marker present", "CorruptionMarker",
                                                   file=f))
        self._lost_ids(status)
        if self.level >= 2 and not self.only:
            self._check_commit_record(status, record)
            self._check_pk(status)
