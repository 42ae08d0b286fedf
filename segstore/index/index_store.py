"""Creating, opening and deleting indices in a data directory (the low-level entry points).

``create_index`` validates settings and mappings before anything is written, then creates the translog,
registers the index in the catalog and writes an empty first commit that ties the translog to the index.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from typing import Any

from segstore.errors import IndexNotFoundError, ResourceAlreadyExistsError
from segstore.index.catalog import Catalog
from segstore.index.directory_reader import DirectoryReader
from segstore.index.index_files import IndexFiles
from segstore.index.index_writer import IndexWriter
from segstore.index.segment_reader import SegmentReader
from segstore.index.settings import IndexSettings, flatten_settings
from segstore.index.writer_recovery import load_commit_segments
from segstore.mapping.mappings import Mappings
from segstore.store.directory import Directory
from segstore.translog import Translog

__all__ = ["create_index", "open_index", "open_reader", "delete_index"]


def create_index(
    data_dir: str | os.PathLike[str],
    name: str,
    *,
    settings: Mapping[str, Any] | None = None,
    mappings: Mapping[str, Any] | None = None,
    catalog: Catalog | None = None,
    directory: Directory | None = None,
    **writer_args: Any,
) -> IndexWriter:
    """Create index ``name`` and return its writer. Raises a typed error (and writes nothing) if the
    settings or mappings are invalid or the index exists."""
    data_dir = os.fspath(data_dir)
    parsed = IndexSettings.parse(settings)
    Mappings.parse(mappings, index_knn=parsed.knn)  # validation only
    own = catalog is None
    cat = catalog or Catalog.open(data_dir)
    try:
        if cat.get_index(name) is not None:
            raise ResourceAlreadyExistsError(f"index [{name}/{cat.get_index(name)['uuid'].hex()}] already exists")
        index_uuid = os.urandom(16)
        files = IndexFiles.in_data_dir(data_dir, index_uuid, directory)
        translog_uuid = os.urandom(16)
        Translog.create(files.translog_path, translog_uuid, durability=parsed.durability,
                        sync_interval=parsed.sync_interval).close()
        cat.create_index(name, index_uuid, {"settings": flatten_settings(settings), "mappings": dict(mappings or {}),
                                            "creation_date": int(time.time() * 1000)})
        cat.commit(index_uuid, {"segments": [], "segment_counter": 0, "max_seq_no": -1,
                                "translog_uuid": translog_uuid, "translog_generation": 1, "user_data": {}}, {})
        writer = IndexWriter(cat, name, files, **writer_args)
    except BaseException:
        if own:
            cat.close()
        raise
    if own:
        writer.on_close(cat.close)
    return writer


def _existing_catalog(data_dir: str, name: str) -> Catalog:
    """The data directory's catalog; a directory without one holds no index (and is left untouched:
    opening or reading must never create a catalog where there was none)."""
    if not os.path.isdir(os.path.join(data_dir, "catalog")):
        raise IndexNotFoundError(name)
    return Catalog.open(data_dir)


def open_index(
    data_dir: str | os.PathLike[str], name: str, *, catalog: Catalog | None = None,
    directory: Directory | None = None, **writer_args: Any,
) -> IndexWriter:
    """Open the writer of an existing index (replaying its translog)."""
    data_dir = os.fspath(data_dir)
    own = catalog is None
    cat = catalog or _existing_catalog(data_dir, name)
    try:
        meta = cat.get_index(name)
        if meta is None:
            raise IndexNotFoundError(name)
        writer = IndexWriter(cat, name, IndexFiles.in_data_dir(data_dir, meta["uuid"], directory), **writer_args)
    except BaseException:
        if own:
            cat.close()
        raise
    if own:
        writer.on_close(cat.close)
    return writer


def open_reader(data_dir: str | os.PathLike[str], name: str, *, catalog: Catalog | None = None,
                directory: Directory | None = None) -> DirectoryReader:
    """A read-only point-in-time reader of the last commit (no writer, no translog replay)."""
    data_dir = os.fspath(data_dir)
    cat = catalog or _existing_catalog(data_dir, name)
    try:
        meta = cat.get_index(name)
        if meta is None:
            raise IndexNotFoundError(name)
        files = IndexFiles.in_data_dir(data_dir, meta["uuid"], directory)
        record = cat.latest_commit(meta["uuid"]) or {"segments": []}
        leaves = []
        try:
            for sci in load_commit_segments(files.directory, record, f"catalog:commits/{name}"):
                leaves.append(SegmentReader(files.directory, sci))
        except BaseException:
            for leaf in leaves:
                leaf.dec_ref()
            raise
        return DirectoryReader(leaves, int(record.get("generation", 0)))
    finally:
        if catalog is None:
            cat.close()


def delete_index(data_dir: str | os.PathLike[str], name: str, *, catalog: Catalog | None = None) -> None:
    """Remove an index from the catalog, then its files."""
    data_dir = os.fspath(data_dir)
    cat = catalog or _existing_catalog(data_dir, name)
    try:
        meta = cat.get_index(name)
        if meta is None:
            raise IndexNotFoundError(name)
        cat.delete_index(name)
        shutil.rmtree(os.path.join(data_dir, "indices", meta["uuid"].hex()), ignore_errors=True)
    finally:
        if catalog is None:
            cat.close()
