"""``Node``: one data directory = one catalog + its indices (+ later the k-NN model registry).

The node opens each index's writer on first use and keeps it open. A background thread refreshes indices
that have unrefreshed changes every ``index.refresh_interval`` (1 s by default, as OpenSearch), and commits
an index whose uncommitted translog grew past ``index.translog.flush_threshold_size``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any

from segstore.errors import IndexNotFoundError, ValidationError
from segstore.index.catalog import Catalog
from segstore.index.index_store import create_index, delete_index, open_index
from segstore.index.index_writer import IndexWriter
from segstore.index.merge_policy import TieredMergePolicy
from segstore.index.merge_scheduler import ConcurrentMergeScheduler
from segstore.index.settings import parse_time_seconds
from segstore.models.registry import ModelRegistry

__all__ = ["Node", "validate_index_name"]

log = logging.getLogger(__name__)
_BAD_CHARS = set('\\/*?"<>| ,#:')
# Indices opened by a Node merge like OpenSearch's: tiered policy, background merge threads, both built from
# the index settings (index.merge.policy.*, index.merge.scheduler.max_thread_count).
_MERGE_ARGS: dict[str, Any] = {"merge_policy": TieredMergePolicy.from_settings,
                               "merge_scheduler": ConcurrentMergeScheduler.from_settings}


def validate_index_name(name: str) -> None:
    def bad(reason: str) -> ValidationError:
        return ValidationError(f"Invalid index name [{name}], {reason}", "invalid_index_name_exception")
    if name != name.lower():
        raise bad("must be lowercase")
    if any(c in _BAD_CHARS for c in name):
        raise bad('must not contain the following characters [ , ", *, \\, <, |, ,, >, /, ?]')
    if name.startswith(("_", "-", "+")):
        raise bad("must not start with '_', '-', or '+'")
    if name in (".", ".."):
        raise bad("must not be '.' or '..'")
    if len(name.encode()) > 255:
        raise bad("index name is too long, (" + str(len(name.encode())) + " > 255)")


def _size_bytes(value: Any) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb)?", str(value).lower())
    if not m:
        return 512 << 20
    return int(float(m.group(1)) * {"b": 1, None: 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30,
                                     "tb": 1 << 40}[m.group(2)])


class Node:
    """Owns the catalog and the open writers of one data directory. Thread-safe."""

    def __init__(self, data_dir: str | os.PathLike[str], *, background_refresh: bool = True) -> None:
        self.data_dir = os.path.abspath(os.fspath(data_dir))
        os.makedirs(self.data_dir, exist_ok=True)
        self.catalog = Catalog.open(self.data_dir)
        # k-NN models; one left "training" by a previous run is reported failed (vector-semantics.md §5.4)
        self.models = ModelRegistry(self.catalog)
        self.models.recover_models()
        self._writers: dict[str, IndexWriter] = {}
        self._lock = threading.RLock()
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background_refresh:
            self._thread = threading.Thread(target=self._refresh_loop, name="segstore-refresh", daemon=True)
            self._thread.start()

    # -- indices

    def index_names(self) -> list[str]:
        return sorted(self.catalog.list_indices())

    def exists(self, name: str) -> bool:
        return self.catalog.get_index(name) is not None

    def writer(self, name: str) -> IndexWriter:
        with self._lock:
            w = self._writers.get(name)
            if w is not None:
                return w
            if self.catalog.get_index(name) is None:
                raise IndexNotFoundError(name)
            w = open_index(self.data_dir, name, catalog=self.catalog, **_MERGE_ARGS)
            self._writers[name] = w
            return w

    def create_index(self, name: str, settings: dict[str, Any] | None, mappings: dict[str, Any] | None) -> IndexWriter:
        validate_index_name(name)
        with self._lock:
            w = create_index(self.data_dir, name, settings=settings, mappings=mappings, catalog=self.catalog,
                             **_MERGE_ARGS)
            self._writers[name] = w
            return w

    def delete_index(self, name: str) -> None:
        with self._lock:
            if self.catalog.get_index(name) is None:
                raise IndexNotFoundError(name)
            w = self._writers.pop(name, None)
            if w is not None:
                w.close(commit=False)
            delete_index(self.data_dir, name, catalog=self.catalog)

    # -- background refresh / flush

    def _refresh_loop(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                writers = list(self._writers.items())
            for name, w in writers:
                try:
                    interval = parse_time_seconds(w.settings.get("index.refresh_interval") or "1s",
                                                  "index.refresh_interval")
                    if interval >= 0 and w.needs_refresh(interval):
                        w.refresh()
                    limit = _size_bytes(w.settings.get("index.translog.flush_threshold_size") or "512mb")
                    if w.uncommitted_translog_bytes() > limit:
                        w.commit()
                except Exception as e:  # noqa: BLE001 - a failing index must not stop the others
                    log.warning("background refresh of [%s] failed: %r", name, e)

    def close(self, *, commit: bool = True) -> None:
        """Commit and close every index, then the catalog. Idempotent. ``commit=False`` closes the writers
        without a commit, as a crash after the translog fsync would leave them (tests of recovery)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.models.close()  # a training job that finishes after this records nothing
        with self._lock:
            for w in self._writers.values():
                try:
                    w.close(commit=commit)
                except Exception as e:  # noqa: BLE001
                    log.warning("closing [%s] failed: %r", w.index_name, e)
            self._writers.clear()
            self.catalog.close()

    def __enter__(self) -> "Node":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
