"""Helpers that really damage files, for corruption tests (truncate, flip a byte, swap, delete).

They work on both directory kinds: on an ``FSDirectory`` they rewrite the file on disk (bypassing the
write-once rule on purpose); on a ``MemoryDirectory`` they replace the stored bytes.
"""

from __future__ import annotations

import os
import random

from segstore.store.directory import Directory
from segstore.store.fs_directory import FSDirectory
from segstore.store.memory_directory import MemoryDirectory

__all__ = ["overwrite", "truncate", "flip_byte", "swap_in", "delete"]


def overwrite(directory: Directory, name: str, data: bytes) -> None:
    """Replace the bytes of ``name`` in place."""
    if isinstance(directory, MemoryDirectory):
        directory.replace_bytes(name, data)
    elif isinstance(directory, FSDirectory):
        path = os.path.join(directory.path, name)
        os.unlink(path)  # a fresh inode: live mmaps of the old file keep their bytes, like a real replacement
        with open(path, "wb") as fh:
            fh.write(data)
    else:
        raise TypeError(f"cannot damage files of {directory!r}")


def truncate(directory: Directory, name: str, n_bytes: int = 1) -> None:
    """Drop the last ``n_bytes`` bytes of ``name``."""
    data = directory.read_bytes(name)
    overwrite(directory, name, data[: max(0, len(data) - n_bytes)])


def flip_byte(directory: Directory, name: str, offset: int | None = None, seed: int = 0) -> int:
    """Flip one bit of one byte (at ``offset``, or a random offset); return the offset used."""
    data = bytearray(directory.read_bytes(name))
    if offset is None:
        offset = random.Random(seed).randrange(len(data))
    data[offset] ^= 1 << random.Random(seed + 1).randrange(8)
    overwrite(directory, name, bytes(data))
    return offset


def swap_in(directory: Directory, name: str, source: Directory, source_name: str | None = None) -> None:
    """Replace ``name`` with the bytes of a file from another segment or index."""
    overwrite(directory, name, source.read_bytes(source_name or name))


def delete(directory: Directory, name: str) -> None:
    directory.delete_file(name)
