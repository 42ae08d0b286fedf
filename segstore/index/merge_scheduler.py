"""Merge schedulers: they *run* what the policy selected (Lucene's ``MergeScheduler``).

The writer is the :class:`MergeSource`: it hands out pending merges and executes one merge (read inputs,
write the merged segment, commit it into the segment list). A scheduler only decides on which thread that
happens:

* :class:`SerialMergeScheduler` runs merges in the calling thread, one at a time (tests and tools);
* :class:`ConcurrentMergeScheduler` runs them in up to ``max_thread_count`` background threads, so indexing,
  refresh and search go on during a merge (indices opened by the Node).

Threads, not worker processes, were chosen from a measurement (2 cores, shared machine; 384-d minilm, 2 x
10k-doc segments with a text field; ``tools/bench_merge.py --segments 2 --gil``, best of 3):

* the stored-field copy (msgpack decode + block writes, a Python loop) holds the GIL: two copies in two
  threads take 0.10 s vs 0.09 s one after the other (0.95x), and the process never uses more than 1.01
  CPU-seconds per wall-second;
* the hnswlib graph build releases it: two builds in two threads take 1.85 s vs 2.96 s (1.60x, 1.79
  CPU-seconds per wall-second);
* the graph build is 92.5 % of a 20k-doc merge and 94.5 % of a 100k-doc merge; the GIL-bound copy is 3.6 %
  and 1.9 %;
* foreground search during a merge, 5 interleaved runs with an already started worker process (load 5-8):
  median 410 QPS with the merge in a thread, 348 QPS with it in a process (1,157 alone); merge 10.0 s vs
  10.3 s. Search competes for the cores the graph build uses (hnswlib builds with every core), not for the
  GIL, so a worker process would add pickling, a second open of every input and an FS-only directory
  requirement and gain nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from abc import ABC, abstractmethod
from collections import deque
from typing import Any, Protocol

from segstore.index.merge_policy import (
    MergePolicy,
    NoMergePolicy,
    OneMerge,
    int_setting,
)

__all__ = ["MergeSource", "MergeScheduler", "SerialMergeScheduler", "ConcurrentMergeScheduler",
           "default_max_thread_count", "MergeAbortedError", "merge_config"]

log = logging.getLogger(__name__)


class MergeAbortedError(Exception):
    """A running merge was aborted (the writer is closing without commit, or rolled back). Not an error of
    the index: the inputs are untouched and the merge's files are removed."""


class MergeSource(Protocol):
    def next_merge(self) -> OneMerge | None: ...

    def merge(self, merge: OneMerge) -> Any: ...


def default_max_thread_count(cores: int | None = None) -> int:
    """OpenSearch's default for ``index.merge.scheduler.max_thread_count``: max(1, min(4, cores / 2))."""
    n = cores if cores is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                         else os.cpu_count() or 1)
    return max(1, min(4, n // 2))


class MergeScheduler(ABC):
    @abstractmethod
    def merge(self, source: MergeSource, trigger: str) -> None:
        """Run (or schedule) the source's pending merges."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Wait for running merges and stop."""


class SerialMergeScheduler(MergeScheduler):
    """Runs every pending merge in the caller's thread; concurrent callers queue on a lock. A merge that
    fails propagates its error to the caller (after the writer has cleaned up)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def merge(self, source: MergeSource, trigger: str) -> None:
        with self._lock:
            while (one := source.next_merge()) is not None:
                source.merge(one)


class ConcurrentMergeScheduler(MergeScheduler):
    """Runs each merge in its own background thread, at most ``max_thread_count`` at a time.

    ``merge()`` returns at once: it starts a thread per pending merge while fewer than ``max_thread_count``
    run; a thread that finishes its merge takes the next pending one (merges the writer selects after a
    merge finished included) and exits when there is none. The "take the next or exit" step and the start
    of new threads hold the same lock, so a merge registered while a thread exits is never stranded.

    A failed merge is logged and kept in :attr:`exceptions` (the last 16); the writer has already removed
    its files and kept its inputs, so the index stays usable. :class:`MergeAbortedError` is not an error.
    """

    def __init__(self, max_thread_count: int | None = None, *, name: str = "segstore-merge") -> None:
        count = default_max_thread_count() if max_thread_count is None else int(max_thread_count)
        if count < 1:
            raise ValueError(f"max_thread_count must be >= 1, got {count}")
        self.max_thread_count = count
        self.name = name
        self.exceptions: deque[BaseException] = deque(maxlen=16)
        self._cond = threading.Condition()
        self._threads: set[threading.Thread] = set()
        self._seq = 0

    @classmethod
    def from_settings(cls, settings: Any) -> "ConcurrentMergeScheduler":
        """``index.merge.scheduler.max_thread_count`` when set (>= 1), else OpenSearch's default."""
        raw = getattr(settings, "raw", settings)
        value = raw.get("index.merge.scheduler.max_thread_count")
        if value is None:
            return cls()
        return cls(int_setting(raw, "index.merge.scheduler.max_thread_count", 1, 1))

    def __repr__(self) -> str:
        return f"ConcurrentMergeScheduler(max_thread_count={self.max_thread_count})"

    @property
    def running(self) -> int:
        """Number of merge threads alive."""
        with self._cond:
            return len(self._threads)

    def merge(self, source: MergeSource, trigger: str) -> None:
        with self._cond:
            self._spawn(source)

    def _spawn(self, source: MergeSource) -> None:
        """Start a thread per pending merge while slots are free (caller holds ``_cond``)."""
        while len(self._threads) < self.max_thread_count:
            one = source.next_merge()
            if one is None:
                return
            self._seq += 1
            t = threading.Thread(target=self._run, args=(source, one), daemon=True, name=f"{self.name}-{self._seq}")
            self._threads.add(t)
            try:
                t.start()
            except BaseException:
                self._threads.discard(t)
                raise

    def _run(self, source: MergeSource, one: OneMerge | None) -> None:
        me = threading.current_thread()
        try:
            while one is not None:
                try:
                    source.merge(one)
                except MergeAbortedError:
                    log.debug("merge of %s aborted", one.names)
                except BaseException as e:  # noqa: BLE001 - a background failure must not kill the pool
                    self.exceptions.append(e)
                    log.warning("merge of %s failed: %r", one.names, e)
                with self._cond:
                    one = source.next_merge()
                    if one is None:
                        self._threads.discard(me)
                        self._cond.notify_all()
                    else:  # a finished merge may have made several new ones pending: fill free slots
                        self._spawn(source)
        finally:
            with self._cond:
                if me in self._threads:  # next_merge raised
                    self._threads.discard(me)
                    self._cond.notify_all()

    def sync(self, timeout: float | None = None) -> bool:
        """Wait until no merge thread runs; False if ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._threads, timeout)

    def close(self) -> None:
        self.sync()


def merge_config(policy: Any, scheduler: Any, settings: Any) -> tuple[MergePolicy, MergeScheduler, bool]:
    """The writer's (policy, scheduler, owns_scheduler). Each may be an instance, a factory called with the
    index settings (the Node passes ``TieredMergePolicy.from_settings`` and
    ``ConcurrentMergeScheduler.from_settings``) or None: :class:`NoMergePolicy` and
    :class:`SerialMergeScheduler`, the defaults of tests and tools. The writer closes a scheduler it built."""
    p = policy if isinstance(policy, MergePolicy) else policy(settings) if policy is not None else NoMergePolicy()
    if isinstance(scheduler, MergeScheduler):
        return p, scheduler, False
    return p, (scheduler(settings) if scheduler is not None else SerialMergeScheduler()), True
