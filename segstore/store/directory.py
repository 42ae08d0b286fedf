"""The ``Directory`` abstraction: a flat namespace of write-once files.

A directory holds the files of one index (segment files and live-docs generations). Files are write-once:
:meth:`Directory.create_output` refuses an existing name, and an output becomes visible under its name only
when it is closed, atomically (temp name, fsync, rename, fsync of the directory for the filesystem
implementation). Readers get the whole file as one read-only buffer (memory-mapped on the filesystem), so
formats can slice it with numpy without copying.

The write lock (:meth:`Directory.obtain_lock`) makes sure one writer at a time owns an index, whether the
second writer lives in this process or another one.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from types import TracebackType

from segstore.errors import AlreadyClosedError

__all__ = ["Directory", "IndexInput", "IndexOutput", "Lock"]


class IndexOutput(ABC):
    """A sequential, write-once output with a running CRC32 of everything written so far."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._crc = 0
        self._length = 0
        self._closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` and fold it into the running checksum."""
        if self._closed:
            raise AlreadyClosedError(f"output [{self.name}] is closed")
        self._crc = zlib.crc32(data, self._crc)
        self._length += memoryview(data).nbytes  # bytes, also for multi-byte memoryviews
        self._write(data)

    @property
    def checksum(self) -> int:
        """CRC32 of every byte written so far."""
        return self._crc

    @property
    def file_pointer(self) -> int:
        """Number of bytes written so far."""
        return self._length

    @abstractmethod
    def _write(self, data: bytes | bytearray | memoryview) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Publish the file under its name (atomically). Idempotent."""

    @abstractmethod
    def abort(self) -> None:
        """Discard everything written; the name never becomes visible. Idempotent."""

    def __enter__(self) -> "IndexOutput":
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if et is None:
            self.close()
        else:
            self.abort()


class IndexInput(ABC):
    """A whole file exposed as a read-only ``memoryview`` (``buffer``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    @abstractmethod
    def buffer(self) -> memoryview: ...

    def __len__(self) -> int:
        return len(self.buffer)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the underlying resources. Buffers already handed out stay valid until collected."""

    def __enter__(self) -> "IndexInput":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Lock(ABC):
    """A held lock. ``close()`` releases it and is idempotent."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def ensure_valid(self) -> None:
        """Raise if the lock was released."""

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Directory(ABC):
    """A flat set of named, write-once files plus a write lock."""

    @abstractmethod
    def list_all(self) -> list[str]:
        """Names of all published files, sorted."""

    @abstractmethod
    def file_exists(self, name: str) -> bool: ...

    @abstractmethod
    def file_length(self, name: str) -> int: ...

    @abstractmethod
    def create_output(self, name: str) -> IndexOutput:
        """Start writing ``name``. Raises ``FileExistsError`` if it was already published."""

    @abstractmethod
    def open_input(self, name: str) -> IndexInput:
        """Open a published file. Raises ``FileNotFoundError`` if it does not exist."""

    @abstractmethod
    def delete_file(self, name: str) -> None:
        """Remove a published file. Raises ``FileNotFoundError`` if it does not exist."""

    @abstractmethod
    def sync_metadata(self) -> None:
        """Make renames and deletions durable (fsync of the directory itself)."""

    @abstractmethod
    def obtain_lock(self, name: str) -> Lock:
        """Take the lock ``name`` or raise :class:`~segstore.errors.LockObtainFailedError` at once."""

    def read_bytes(self, name: str) -> bytes:
        """Convenience: the whole file as ``bytes``."""
        with self.open_input(name) as inp:
            return bytes(inp.buffer)

    def write_bytes(self, name: str, data: bytes) -> None:
        """Convenience: publish ``data`` as ``name`` in one step."""
        out = self.create_output(name)
        try:
            out.write(data)
        except BaseException:
            out.abort()
            raise
        out.close()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources held by the directory itself."""

    def __enter__(self) -> "Directory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
