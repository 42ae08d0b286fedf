"""The index write lock: ``flock`` on a ``write.lock`` file plus an in-process registry.

``flock`` locks belong to an open file description, so a second ``open`` + ``flock`` of the same file fails
even inside one process; the kernel releases the lock when the process dies (``kill -9`` included), so a
stale lock file never blocks a restart. The in-process registry only gives a clearer message ("held by this
process") than the raw ``EWOULDBLOCK``.
"""

from __future__ import annotations

import fcntl
import os
import threading

from segstore.errors import AlreadyClosedError, LockObtainFailedError
from segstore.store.directory import Lock

__all__ = ["NativeFSLock", "obtain_native_lock"]

_held: set[str] = set()
_held_guard = threading.Lock()


class NativeFSLock(Lock):
    """An exclusive ``flock`` held on ``path`` until :meth:`close`."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def ensure_valid(self) -> None:
        if self._fd is None:
            raise AlreadyClosedError(f"lock [{self.path}] was released")

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with _held_guard:
            _held.discard(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def obtain_native_lock(path: str) -> NativeFSLock:
    """Take an exclusive, non-blocking lock on ``path`` (created if missing)."""
    path = os.path.realpath(path)
    with _held_guard:
        if path in _held:
            raise LockObtainFailedError(f"index locked by this process (pid {os.getpid()}): {path}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise LockObtainFailedError(
                f"index locked by pid {holder}: {path} (is another segstore writer still running?)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # Record the holder for the message a second writer will print; not needed for correctness.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held.add(path)
    return NativeFSLock(path, fd)
