"""Merge schedulers: they *run* what the policy selected (Lucene's ``MergeScheduler``).

The writer is the :class:`MergeSource`: it hands out pending merges and executes one merge (read inputs,
write the merged segment, commit it into the segment list). A scheduler decides on which thread that
happens. :class:`SerialMergeScheduler` runs merges in the calling thread, one at a time: tests and tools
use it, and forced merges go through it.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Protocol

from segstore.index.merge_policy import OneMerge

__all__ = ["MergeSource", "MergeScheduler", "SerialMergeScheduler"]


class MergeSource(Protocol):
    def next_merge(self) -> OneMerge | None: ...

    def merge(self, merge: OneMerge) -> None: ...


class MergeScheduler(ABC):
    @abstractmethod
    def merge(self, source: MergeSource, trigger: str) -> None:
        """Run (or schedule) the source's pending merges."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Wait for running merges and stop."""


class SerialMergeScheduler(MergeScheduler):
    """Runs every pending merge in the caller's thread; concurrent callers queue on a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def merge(self, source: MergeSource, trigger: str) -> None:
        with self._lock:
            while (one := source.next_merge()) is not None:
                source.merge(one)
