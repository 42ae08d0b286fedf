"""``IndexFileDeleter``: reference counts on index files; a file is deleted when nothing references it.

References come from the last commit, from the writer's current segment list, and from every open
``SegmentReader`` (core files) and its live-docs generation. A point-in-time reader therefore keeps every
file it uses alive until it is closed, whatever merges and commits happen meanwhile (reliability §8 row 17).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable

from segstore.store.directory import Directory

__all__ = ["IndexFileDeleter"]

log = logging.getLogger(__name__)


class IndexFileDeleter:
    """Thread-safe reference counts over one directory's files."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self._refs: Counter[str] = Counter()
        self._lock = threading.Lock()

    def inc_ref(self, files: Iterable[str]) -> None:
        with self._lock:
            self._refs.update(files)

    def dec_ref(self, files: Iterable[str]) -> None:
        doomed = []
        with self._lock:
            for f in files:
                self._refs[f] -= 1
                if self._refs[f] <= 0:
                    del self._refs[f]
                    doomed.append(f)
        for f in doomed:
            self._delete(f)

    def ref_count(self, name: str) -> int:
        with self._lock:
            return self._refs.get(name, 0)

    def delete_unreferenced(self, keep: Iterable[str] = ()) -> list[str]:
        """Delete every file with no reference (leftovers of a crash or an aborted flush/merge)."""
        keep_set = set(keep)
        with self._lock:
            doomed = [f for f in self.directory.list_all()
                      if f not in self._refs and f not in keep_set and f.startswith("_")]
        for f in doomed:
            self._delete(f)
        return doomed

    def _delete(self, name: str) -> None:
        try:
            self.directory.delete_file(name)
        except FileNotFoundError:
            pass
        except OSError as e:  # a failed delete only costs space; the next writer open retries it
            log.warning("could not delete unreferenced file %s: %s", name, e)
