"""Where an index lives: a data directory (``<data>/catalog/data.mdb``) holds one folder per index,
``<data>/indices/<uuid hex>/``, with the segment files in ``index/`` and the translog in ``translog/``.
:func:`find_data_dir` accepts either the data directory or an index folder inside it; :func:`locate`
turns index names (or that folder) into :class:`IndexLocation` values. Nothing here creates a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from segstore.errors import IndexNotFoundError, SegstoreError
from segstore.index.catalog import Catalog
from segstore.index.index_files import IndexFiles
from segstore.store.fs_directory import FSDirectory

__all__ = ["IndexLocation", "NotADataDirectoryError", "find_data_dir", "locate"]


class NotADataDirectoryError(SegstoreError):
    """The path is neither a data directory nor an index folder inside one (a usage error)."""


@dataclass(frozen=True)
class IndexLocation:
    """Where an index lives. ``files`` is its :class:`IndexFiles` (directory + translog path)."""

    data_dir: str
    name: str
    uuid: bytes

    @property
    def root(self) -> str:
        return os.path.join(self.data_dir, "indices", self.uuid.hex())

    @property
    def index_dir(self) -> str:
        return os.path.join(self.root, "index")

    @property
    def translog_dir(self) -> str:
        return os.path.join(self.root, "translog")

    def files(self) -> IndexFiles:
        return IndexFiles(FSDirectory(self.index_dir), self.translog_dir)


def _is_data_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "catalog", "data.mdb"))


def find_data_dir(path: str | os.PathLike[str]) -> tuple[str, str | None]:
    """``(data_dir, index uuid hex or None)`` for a data directory or for an index folder inside one
    (``<data>/indices/<uuid>``, or its ``index``/``translog`` sub-folder). Never creates anything."""
    p = os.path.abspath(os.fspath(path))
    if not os.path.isdir(p):
        raise NotADataDirectoryError(f"[{path}] is not a directory")
    if _is_data_dir(p):
        return p, None
    q = p
    if os.path.basename(q) in ("index", "translog"):
        q = os.path.dirname(q)
    uuid_hex = os.path.basename(q)
    parent = os.path.dirname(q)
    if re.fullmatch(r"[0-9a-f]{32}", uuid_hex) and os.path.basename(parent) == "indices":
        data = os.path.dirname(parent)
        if _is_data_dir(data):
            return data, uuid_hex
    raise NotADataDirectoryError(
        f"[{path}] is not a segstore data directory (no catalog/data.mdb) nor an index folder "
        "(<data>/indices/<uuid>) inside one")


def locate(catalog: Catalog, data_dir: str, names: Iterable[str] | None = None,
           uuid_hex: str | None = None) -> list[IndexLocation]:
    """The indices to work on: ``names`` (each must exist), else the one whose folder was given, else all."""
    all_names = catalog.list_indices()
    wanted = list(names or [])
    if not wanted and uuid_hex is not None:
        for n in all_names:
            meta = catalog.get_index(n)
            if meta is not None and meta["uuid"].hex() == uuid_hex:
                wanted = [n]
                break
        else:
            raise NotADataDirectoryError(f"no index with uuid {uuid_hex} in the catalog of [{data_dir}]")
    out = []
    for n in wanted or all_names:
        meta = catalog.get_index(n)
        if meta is None:
            raise IndexNotFoundError(n)
        out.append(IndexLocation(data_dir, n, meta["uuid"]))
    return out
