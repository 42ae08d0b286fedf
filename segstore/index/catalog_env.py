"""The catalog's LMDB environment: opened once per process, shared by handles, grown on demand.

LMDB caveats honoured here (reliability.md §6.2):

* **Never open an environment twice in one process**: its locks are fcntl locks owned by the (process, file)
  pair, so a second open would share them and closing it would drop them. :meth:`SharedEnv.acquire` keeps one
  environment per resolved path with a reference count; :meth:`SharedEnv.release` closes it at zero.
* **Stale readers**: a process killed inside a read transaction leaves its reader slot behind, pinning old
  pages (the file grows) and eventually filling the reader table. ``reader_check`` runs on open, and again
  whenever the map or the reader table runs full.
* **Map full**: ``MDB_MAP_FULL`` aborts the write transaction; the map doubles (up to ``max_map_size``) and the
  whole transaction function runs again, so a transaction is applied completely or not at all. py-lmdb's
  ``set_mapsize`` invalidates every open transaction of the environment, so growth holds the write lock and
  waits (through :class:`_Gate`) until no read transaction of this process is open. Read transactions are
  therefore short: none outlives a catalog method call.
* **Map resized by another process**: ``MDB_MAP_RESIZED`` is answered by ``set_mapsize(0)`` (adopt the size
  recorded in the file) and a retry.
* **No environment across fork()**: a forked child cannot use the inherited environment, and cannot reopen it
  either (py-lmdb still counts it as open); both are refused with a clear :class:`CatalogError`.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import lmdb

from segstore.errors import CatalogError, CorruptIndexError, DiskFullError, MapFullError, SegstoreError

__all__ = ["SharedEnv", "iter_prefix", "delete_prefix", "DBS", "DEFAULT_MAP_SIZE", "DEFAULT_MAX_MAP_SIZE", "DEFAULT_MAX_READERS"]

DEFAULT_MAP_SIZE = 64 << 20  # LMDB files are sparse: the map is address space, not disk
DEFAULT_MAX_MAP_SIZE = 64 << 30
DEFAULT_MAX_READERS = 126
DBS = ("indices", "commits", "pk", "models", "meta")
_MAX_DBS = 16  # room for later sub-dbs without recreating the environment
_MAX_ATTEMPTS = 64  # growth doubles, so a legitimate transaction settles long before this
T = TypeVar("T")
Dbs = dict[str, Any]


class _Gate:
    """Readers share it; a remap waits for them to leave and keeps new ones out until it is done.

    Writers need no gate: they and the remap both hold the write lock.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._remapping = False

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._remapping:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._remapping = True
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._remapping = False
                self._cond.notify_all()


def _wrap(e: lmdb.Error, path: str) -> SegstoreError:
    if isinstance(e, lmdb.DiskError):  # ENOSPC
        return DiskFullError(f"no space left on device for the catalog ({path})", OSError(errno.ENOSPC, str(e)))
    if isinstance(e, (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.BadChecksumError)):
        return CorruptIndexError(f"LMDB reports a damaged catalog: {e}", f"catalog:{path}")
    return CatalogError(f"catalog operation failed ({path}): {type(e).__name__}: {e}")


def iter_prefix(txn: lmdb.Transaction, db: Any, prefix: bytes, values: bool = True) -> Iterator[Any]:
    """Entries (or keys, ``values=False``) whose key starts with ``prefix``, in key order."""
    cur = txn.cursor(db=db)
    if not cur.set_range(prefix):
        return
    for item in cur.iternext(keys=True, values=values):
        if not (item[0] if values else item).startswith(prefix):
            return
        yield item


def delete_prefix(txn: lmdb.Transaction, db: Any, prefix: bytes) -> None:
    cur = txn.cursor(db=db)
    if cur.set_range(prefix):
        while cur.key().startswith(prefix):  # key() is b"" once the cursor runs off the end
            cur.delete()  # deletes and moves to the next entry


class SharedEnv:
    """The one ``lmdb.Environment`` of a catalog directory in this process, its locks and reference count."""

    _registry: dict[str, SharedEnv] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: str, map_size: int, max_map_size: int, max_readers: int) -> None:
        """Internal: use :meth:`acquire`."""
        self.path = path
        self.max_map_size = max_map_size
        self.pid = os.getpid()
        self.refs = 0
        self.write_lock = threading.Lock()  # LMDB allows one write txn; growth happens under it too
        self.gate = _Gate()
        try:
            self.env = lmdb.Environment(
                path, map_size=min(map_size, max_map_size), subdir=True, max_dbs=_MAX_DBS,
                max_readers=max_readers, sync=True, metasync=True, lock=True,
            )
        except lmdb.Error as e:
            raise CatalogError(f"cannot open the catalog at {path}: {type(e).__name__}: {e}") from e
        try:
            self.stale_readers_cleared = self.env.reader_check()
            with self.env.begin(write=True) as txn:
                self.dbs: Dbs = {name: self.env.open_db(name.encode(), txn=txn) for name in DBS}
        except lmdb.Error as e:
            self.env.close()
            raise _wrap(e, path) from e
        except BaseException:
            self.env.close()
            raise

    @classmethod
    def acquire(cls, path: str, map_size: int, max_map_size: int, max_readers: int) -> SharedEnv:
        """The environment at ``path`` (created if missing), shared with this process's other users."""
        os.makedirs(path, exist_ok=True)
        path = os.path.realpath(path)
        with cls._registry_lock:
            shared = cls._registry.get(path)
            if shared is None:
                shared = cls._registry[path] = cls(path, map_size, max_map_size, max_readers)
            shared.check_usable()
            shared.refs += 1
            return shared

    def release(self) -> None:
        """Drop one reference; the last one closes the environment."""
        with self._registry_lock:
            self.refs -= 1
            if self.refs > 0:
                return
            if self._registry.get(self.path) is self:
                del self._registry[self.path]
            if self.pid == os.getpid():
                with self.write_lock, self.gate.exclusive():
                    self.env.close()

    def check_usable(self) -> None:
        # Refuse rather than close-and-reopen: closing the inherited env would abort the parent's (copied)
        # read transactions, clearing *their* slots in the shared reader table.
        if self.pid != os.getpid():
            raise CatalogError(
                f"catalog [{self.path}] was opened by pid {self.pid} before fork(): an LMDB environment does not "
                "survive fork(), so this process can neither use nor reopen it; open the catalog after forking "
                "or start workers with the 'spawn' method"
            )

    def remap(self, size: int) -> None:
        """``set_mapsize`` (0 adopts the size another process set); the caller holds ``write_lock``."""
        with self.gate.exclusive():
            self.env.set_mapsize(size)

    def grow(self) -> None:
        """Make room after ``MDB_MAP_FULL`` aborted a write txn; the caller holds ``write_lock`` and retries."""
        cleared = self.env.reader_check()
        if cleared:  # dead readers pinned old pages; freeing them may be enough without growing
            self.stale_readers_cleared += cleared
            return
        size = self.env.info()["map_size"]
        if size >= self.max_map_size:
            raise MapFullError(
                f"catalog map is full at {size} bytes; raise catalog max_map_size (now {self.max_map_size}) "
                f"or free disk space ({self.path})"
            )
        self.remap(min(size * 2, self.max_map_size))

    def write(self, fn: Callable[[lmdb.Transaction, Dbs], T]) -> T:
        """Run ``fn(txn, dbs)`` in one durable write txn, committed iff ``fn`` returns.

        ``fn`` may run more than once (after map growth), so it must depend on nothing but ``txn``.
        """
        with self.write_lock:
            for _ in range(_MAX_ATTEMPTS):
                try:
                    return self._write_once(fn)
                except lmdb.MapFullError:
                    self.grow()
                except lmdb.MapResizedError:  # another process grew the map past ours
                    self.remap(0)
                except lmdb.Error as e:
                    raise _wrap(e, self.path) from e
        raise CatalogError(f"catalog write did not settle after {_MAX_ATTEMPTS} attempts ({self.path})")

    def _write_once(self, fn: Callable[[lmdb.Transaction, Dbs], T]) -> T:
        txn = self.env.begin(write=True)
        try:
            result = fn(txn, self.dbs)
        except BaseException:
            # py-lmdb's abort takes a lock every read operation also takes; with busy reader threads it can
            # starve for seconds. Readers pause at the gate for the (short) abort instead.
            with self.gate.exclusive():
                txn.abort()
            raise
        txn.commit()  # if this fails (e.g. MDB_MAP_FULL), LMDB has already freed the transaction
        return result

    def read(self, fn: Callable[[lmdb.Transaction, Dbs], T]) -> T:
        """Run ``fn(txn, dbs)`` in one short read txn: a consistent snapshot of the latest commit."""
        for _ in range(_MAX_ATTEMPTS):
            try:
                with self.gate.read(), self.env.begin() as txn:
                    return fn(txn, self.dbs)
            except lmdb.MapResizedError:
                with self.write_lock:
                    self.remap(0)
            except lmdb.ReadersFullError as e:
                cleared = self.env.reader_check()
                if not cleared:
                    raise CatalogError(
                        f"catalog reader table is full ({self.env.max_readers()} slots): too many concurrent "
                        f"readers across processes ({self.path})"
                    ) from e
                self.stale_readers_cleared += cleared
            except lmdb.Error as e:
                raise _wrap(e, self.path) from e
        raise CatalogError(f"catalog read did not settle after {_MAX_ATTEMPTS} attempts ({self.path})")
