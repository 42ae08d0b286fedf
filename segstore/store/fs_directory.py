"""``FSDirectory``: a :class:`Directory` over a filesystem folder.

Publishing protocol for every file (so a crash never leaves a half-written file under a real name):

1. write to ``.<name>.<random>.tmp`` in the same folder;
2. ``fsync`` the temp file;
3. ``link`` it to ``name`` (fails if ``name`` exists: files are write-once) and unlink the temp name;
4. ``fsync`` the folder, so the new name survives a power loss.

Inputs are memory-mapped read-only; the mapping stays valid after the file is deleted (POSIX semantics), which
lets point-in-time readers keep using files a merge has already dropped.
"""

from __future__ import annotations

import errno
import mmap
import os
import secrets

from segstore.errors import DiskFullError, StorageIOError
from segstore.store.directory import Directory, IndexInput, IndexOutput, Lock
from segstore.store.lock import obtain_native_lock

__all__ = ["FSDirectory", "fsync_dir", "is_temp_name"]

_TMP_SUFFIX = ".tmp"


def is_temp_name(name: str) -> bool:
    """True for the names of unpublished outputs (leftovers of a crash are safe to delete)."""
    return name.startswith(".") and name.endswith(_TMP_SUFFIX)


def fsync_dir(path: str) -> None:
    """``fsync`` a folder so that renames and deletions inside it are durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _wrap_os_error(e: OSError, what: str) -> StorageIOError:
    cls = DiskFullError if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else StorageIOError
    return cls(f"{what}: {e}", e)


class _FSOutput(IndexOutput):
    def __init__(self, directory: "FSDirectory", name: str) -> None:
        super().__init__(name)
        self._dir = directory
        self._tmp = os.path.join(directory.path, f".{name}.{secrets.token_hex(4)}{_TMP_SUFFIX}")
        self._fh = open(self._tmp, "xb")  # noqa: SIM115 - closed in close()/abort()

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self._fh.write(data)
        except OSError as e:
            self.abort()
            raise _wrap_os_error(e, f"cannot write [{self.name}]") from e

    def close(self) -> None:
        if self._closed:
            return
        final = os.path.join(self._dir.path, self.name)
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            os.link(self._tmp, final)  # no-clobber publish: write-once
            os.unlink(self._tmp)
            fsync_dir(self._dir.path)
        except FileExistsError:
            self.abort()
            raise
        except OSError as e:
            self.abort()
            raise _wrap_os_error(e, f"cannot publish [{self.name}]") from e
        self._closed = True

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._fh.close()
        finally:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass


class _MMapInput(IndexInput):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            self._mm = mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ) if size else None
        self._view = memoryview(self._mm) if self._mm is not None else memoryview(b"")

    @property
    def buffer(self) -> memoryview:
        return self._view

    def close(self) -> None:
        # numpy arrays built on the map keep it alive; closing would raise BufferError, so the map is
        # released when the last view goes away.
        pass


class FSDirectory(Directory):
    """A folder of write-once files. ``path`` is created if missing."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(os.fspath(path))
        os.makedirs(self.path, exist_ok=True)

    def __repr__(self) -> str:
        return f"FSDirectory({self.path!r})"

    def _p(self, name: str) -> str:
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"invalid file name [{name}]")
        return os.path.join(self.path, name)

    def list_all(self) -> list[str]:
        return sorted(n for n in os.listdir(self.path) if not is_temp_name(n) and os.path.isfile(self._p(n)))

    def list_temp_files(self) -> list[str]:
        """Unpublished outputs left by a crash."""
        return sorted(n for n in os.listdir(self.path) if is_temp_name(n))

    def file_exists(self, name: str) -> bool:
        return os.path.isfile(self._p(name))

    def file_length(self, name: str) -> int:
        return os.stat(self._p(name)).st_size

    def create_output(self, name: str) -> IndexOutput:
        if self.file_exists(name):
            raise FileExistsError(f"file [{name}] already exists in {self.path} (files are write-once)")
        try:
            return _FSOutput(self, name)
        except OSError as e:
            raise _wrap_os_error(e, f"cannot create [{name}]") from e

    def open_input(self, name: str) -> IndexInput:
        return _MMapInput(name, self._p(name))

    def delete_file(self, name: str) -> None:
        os.unlink(self._p(name))

    def delete_temp_file(self, name: str) -> None:
        """Remove an unpublished leftover (see :meth:`list_temp_files`)."""
        if not is_temp_name(name):
            raise ValueError(f"[{name}] is not a temp file")
        os.unlink(os.path.join(self.path, name))

    def sync_metadata(self) -> None:
        fsync_dir(self.path)

    def obtain_lock(self, name: str) -> Lock:
        return obtain_native_lock(self._p(name))
