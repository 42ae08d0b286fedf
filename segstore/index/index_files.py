"""Where an index's files live inside a data directory, and how its catalog metadata is parsed.

Layout of a data directory (a node)::

    <data>/catalog/                     the LMDB catalog: commit points, primary-key maps, metadata, models
    <data>/indices/<uuid>/index/        segment files and live-docs generations (+ write.lock)
    <data>/indices/<uuid>/translog/     translog generations and checkpoints
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from segstore.index.settings import IndexSettings
from segstore.mapping.mappings import Mappings
from segstore.store.directory import Directory
from segstore.store.fs_directory import FSDirectory

__all__ = ["IndexFiles"]


@dataclass
class IndexFiles:
    directory: Directory
    translog_path: str

    @classmethod
    def in_data_dir(cls, data_dir: str, index_uuid: bytes, directory: Directory | None = None) -> "IndexFiles":
        root = os.path.join(os.path.abspath(data_dir), "indices", index_uuid.hex())
        return cls(directory or FSDirectory(os.path.join(root, "index")), os.path.join(root, "translog"))

    @staticmethod
    def parse_metadata(meta: dict[str, Any]) -> tuple[IndexSettings, Mappings]:
        """Validated settings and mappings from a catalog index record."""
        settings = IndexSettings.parse(meta.get("settings"))
        mappings = Mappings.parse(meta.get("mappings"), index_knn=settings.knn)
        if not mappings.source_enabled:
            settings = IndexSettings.parse(meta.get("settings"), source_enabled=False)
        return settings, mappings
