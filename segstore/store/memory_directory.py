"""``MemoryDirectory``: the :class:`Directory` contract held in a dict, for fast tests.

It honours the same rules as :class:`~segstore.store.fs_directory.FSDirectory`: write-once names, publish on
close only, locks that refuse a second holder.
"""

from __future__ import annotations

import threading

from segstore.errors import AlreadyClosedError, LockObtainFailedError
from segstore.store.directory import Directory, IndexInput, IndexOutput, Lock

__all__ = ["MemoryDirectory"]


class _MemOutput(IndexOutput):
    def __init__(self, directory: "MemoryDirectory", name: str) -> None:
        super().__init__(name)
        self._dir = directory
        self._buf = bytearray()

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._dir._guard:
            if self.name in self._dir._files:
                raise FileExistsError(f"file [{self.name}] already exists (files are write-once)")
            self._dir._files[self.name] = bytes(self._buf)

    def abort(self) -> None:
        self._closed = True
        self._buf = bytearray()


class _MemInput(IndexInput):
    def __init__(self, name: str, data: bytes) -> None:
        super().__init__(name)
        self._view = memoryview(data)

    @property
    def buffer(self) -> memoryview:
        return self._view


class _MemLock(Lock):
    def __init__(self, directory: "MemoryDirectory", name: str) -> None:
        self._dir: MemoryDirectory | None = directory
        self._name = name

    def ensure_valid(self) -> None:
        if self._dir is None:
            raise AlreadyClosedError(f"lock [{self._name}] was released")

    def close(self) -> None:
        d, self._dir = self._dir, None
        if d is not None:
            with d._guard:
                d._locks.discard(self._name)


class MemoryDirectory(Directory):
    """An in-memory directory; contents vanish with the object."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        self._locks: set[str] = set()
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryDirectory({len(self._files)} files)"

    def list_all(self) -> list[str]:
        with self._guard:
            return sorted(self._files)

    def file_exists(self, name: str) -> bool:
        return name in self._files

    def file_length(self, name: str) -> int:
        try:
            return len(self._files[name])
        except KeyError:
            raise FileNotFoundError(name) from None

    def create_output(self, name: str) -> IndexOutput:
        if name in self._files:
            raise FileExistsError(f"file [{name}] already exists (files are write-once)")
        return _MemOutput(self, name)

    def open_input(self, name: str) -> IndexInput:
        try:
            return _MemInput(name, self._files[name])
        except KeyError:
            raise FileNotFoundError(name) from None

    def delete_file(self, name: str) -> None:
        with self._guard:
            try:
                del self._files[name]
            except KeyError:
                raise FileNotFoundError(name) from None

    def sync_metadata(self) -> None:
        pass

    def obtain_lock(self, name: str) -> Lock:
        with self._guard:
            if name in self._locks:
                raise LockObtainFailedError(f"index locked by this process: lock [{name}] is held")
            self._locks.add(name)
        return _MemLock(self, name)

    # --- test helpers: damage files in place (the real rule is write-once; tests break it on purpose)

    def replace_bytes(self, name: str, data: bytes) -> None:
        """Overwrite a file's bytes, bypassing write-once. For corruption tests only."""
        with self._guard:
            self._files[name] = bytes(data)
