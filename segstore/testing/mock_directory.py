"""``FaultyDirectory``: a :class:`~segstore.store.directory.Directory` wrapper that counts operations and
fails chosen ones (reliability.md §7.2 MockDirectoryWrapper, §7.3, §8 rows 1-3 and 19).

Every operation on the wrapper is counted, per kind and in total:

=================  =============================================================================
kind               operation
=================  =============================================================================
``create_output``  :meth:`Directory.create_output`
``write``          one :meth:`IndexOutput.write` call
``close``          :meth:`IndexOutput.close` (the publish: temp + fsync + rename on a filesystem)
``open_input``     :meth:`Directory.open_input`
``delete``         :meth:`Directory.delete_file`
``sync``           :meth:`Directory.sync_metadata`
=================  =============================================================================

A fault (:meth:`FaultyDirectory.fail_at`) fails the N-th matching operation counted from the moment it is
set, either once (*transient*) or that one and every later matching one (*persistent*, a dead disk),
with ``EIO`` or ``ENOSPC``. The error has the type the real :class:`~segstore.store.FSDirectory` raises for
that operation: writes, publishes and output creation wrap the ``OSError`` in
:class:`~segstore.errors.StorageIOError` / :class:`~segstore.errors.DiskFullError` (``errno`` kept), opens
and deletes raise the ``OSError`` itself; ``wrap=False`` raises the bare ``OSError`` everywhere. A failed
write or publish aborts the output, as ``FSDirectory`` does, so nothing becomes visible.

``max_bytes`` is a disk quota: a write that would take the bytes of published plus unpublished files past
it fails with ``ENOSPC`` (writing nothing). Open outputs are tracked (:meth:`open_outputs`) so tests can
assert that a failed merge left no handle behind. Attributes the wrapper does not define (``path``,
``list_temp_files`` of an ``FSDirectory``) come from the wrapped directory.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from segstore.errors import DiskFullError, StorageIOError
from segstore.store.directory import Directory, IndexInput, IndexOutput, Lock

__all__ = ["FaultyDirectory", "Fault", "OPERATIONS"]

OPERATIONS = ("create_output", "write", "close", "open_input", "delete", "sync")
_WRAPPED = frozenset(("create_output", "write", "close"))  # the operations FSDirectory wraps


@dataclass
class Fault:
    """Fail the ``nth`` (1-based) operation matching ``ops`` / ``names`` / ``thread`` after the fault was set."""

    nth: int
    ops: frozenset[str]
    error: int = errno.EIO
    persistent: bool = False
    names: Callable[[str], bool] | None = None
    thread: int | None = None
    seen: int = 0
    fired: int = 0

    def matches(self, op: str, name: str) -> bool:
        return (op in self.ops and (self.names is None or self.names(name))
                and (self.thread is None or self.thread == threading.get_ident()))


class _FaultyOutput(IndexOutput):
    def __init__(self, directory: "FaultyDirectory", delegate: IndexOutput) -> None:
        super().__init__(delegate.name)
        self._dir = directory
        self._delegate = delegate

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        n = memoryview(data).nbytes
        try:
            self._dir._check("write", self.name)
            self._dir._reserve(self.name, n)
        except BaseException:
            self.abort()
            raise
        self._delegate.write(data)

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._dir._check("close", self.name)
        except BaseException:
            self.abort()
            raise
        try:
            self._delegate.close()
        finally:
            self._closed = True
            self._dir._output_done(self, published=True)

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._delegate.abort()
        finally:
            self._dir._output_done(self, published=False)


class FaultyDirectory(Directory):
    """Counts and fails operations on ``delegate``. Thread-safe."""

    def __init__(self, delegate: Directory, *, max_bytes: int | None = None, wrap: bool = True) -> None:
        self.delegate = delegate
        self.max_bytes = max_bytes
        self.wrap = wrap
        self.counts: Counter[str] = Counter()
        self.log: list[tuple[str, str]] | None = None
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._outputs: dict[int, _FaultyOutput] = {}
        self._pending_bytes: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"FaultyDirectory({self.delegate!r}, ops={self.total})"

    def __getattr__(self, name: str) -> Any:  # path, list_temp_files, ... of the wrapped directory
        if name.startswith("__") or name == "delegate":
            raise AttributeError(name)
        return getattr(self.delegate, name)

    # -- faults and counters

    @property
    def total(self) -> int:
        """Operations counted so far (all kinds)."""
        with self._lock:
            return sum(self.counts.values())

    def fail_at(self, nth: int, *, ops: Iterable[str] = OPERATIONS, error: int = errno.EIO,
                persistent: bool = False, names: Callable[[str], bool] | None = None,
                this_thread_only: bool = False) -> Fault:
        """Fail the ``nth`` matching operation from now on (and every later one if ``persistent``)."""
        if nth < 1:
            raise ValueError(f"nth must be >= 1, got {nth}")
        ops = frozenset(ops)
        if unknown := ops - set(OPERATIONS):
            raise ValueError(f"unknown operations {sorted(unknown)}; known: {OPERATIONS}")
        fault = Fault(nth, ops, error, persistent, names, threading.get_ident() if this_thread_only else None)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every fault (the disk "recovers")."""
        with self._lock:
            self._faults.clear()

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            if self.log is not None:
                self.log.clear()

    def record(self, on: bool = True) -> None:
        """Keep a log of ``(operation, file name)`` in :attr:`log`."""
        with self._lock:
            self.log = [] if on else None

    def open_outputs(self) -> list[str]:
        """Names of outputs neither closed nor aborted (leaked handles)."""
        with self._lock:
            return sorted(o.name for o in self._outputs.values())

    def _check(self, op: str, name: str) -> None:
        with self._lock:
            self.counts[op] += 1
            if self.log is not None:
                self.log.append((op, name))
            fire = None
            for f in self._faults:
                if f.matches(op, name):
                    f.seen += 1
                    if f.seen == f.nth or (f.persistent and f.seen > f.nth):
                        f.fired += 1
                        fire = f
        if fire is not None:
            raise self._error(op, name, fire.error, f"injected fault #{fire.nth} ({op})")

    def _error(self, op: str, name: str, code: int, why: str) -> BaseException:
        os_error = OSError(code, f"{os.strerror(code)} [{why}]", name)
        if not self.wrap or op not in _WRAPPED:
            return os_error
        cls = DiskFullError if code == errno.ENOSPC else StorageIOError
        verb = {"create_output": "cannot create", "write": "cannot write", "close": "cannot publish"}[op]
        return cls(f"{verb} [{name}]: {os_error}", os_error)

    def _reserve(self, name: str, n: int) -> None:
        if self.max_bytes is None:
            return
        with self._lock:
            used = sum(self._pending_bytes.values()) + self._published_bytes()
            if used + n > self.max_bytes:
                full = True
            else:
                full = False
                self._pending_bytes[name] += n
        if full:
            raise self._error("write", name, errno.ENOSPC, f"quota of {self.max_bytes} bytes reached")

    def _published_bytes(self) -> int:
        total = 0
        for f in self.delegate.list_all():
            try:
                total += self.delegate.file_length(f)
            except OSError:
                pass
        return total

    def _output_done(self, out: _FaultyOutput, published: bool) -> None:
        with self._lock:
            self._outputs.pop(id(out), None)
            self._pending_bytes.pop(out.name, None)

    # -- the Directory contract

    def list_all(self) -> list[str]:
        return self.delegate.list_all()

    def file_exists(self, name: str) -> bool:
        return self.delegate.file_exists(name)

    def file_length(self, name: str) -> int:
        return self.delegate.file_length(name)

    def create_output(self, name: str) -> IndexOutput:
        self._check("create_output", name)
        out = _FaultyOutput(self, self.delegate.create_output(name))
        with self._lock:
            self._outputs[id(out)] = out
        return out

    def open_input(self, name: str) -> IndexInput:
        self._check("open_input", name)
        return self.delegate.open_input(name)

    def delete_file(self, name: str) -> None:
        self._check("delete", name)
        self.delegate.delete_file(name)

    def sync_metadata(self) -> None:
        self._check("sync", "")
        self.delegate.sync_metadata()

    def obtain_lock(self, name: str) -> Lock:
        return self.delegate.obtain_lock(name)

    def close(self) -> None:
        self.delegate.close()
