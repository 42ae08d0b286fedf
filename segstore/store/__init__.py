"""Storage layer: bytes only. No format knowledge lives here."""

from segstore.store.directory import Directory, IndexInput, IndexOutput, Lock
from segstore.store.fs_directory import FSDirectory
from segstore.store.memory_directory import MemoryDirectory

__all__ = ["Directory", "FSDirectory", "IndexInput", "IndexOutput", "Lock", "MemoryDirectory"]
