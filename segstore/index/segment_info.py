"""``SegmentInfo`` (what a segment is) and ``SegmentCommitInfo`` (its state in one commit)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from segstore.index.file_names import live_docs_file_name

__all__ = ["SegmentInfo", "SegmentCommitInfo", "new_segment_id"]


def new_segment_id() -> bytes:
    """A random 16-byte id written into every file header of the segment (catches swapped files)."""
    return os.urandom(16)


@dataclass
class SegmentInfo:
    """Immutable facts about one segment, persisted by the codec's segment-info format."""

    name: str
    segment_id: bytes
    max_doc: int
    codec: str
    attributes: dict[str, str] = field(default_factory=dict)
    diagnostics: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


@dataclass
class SegmentCommitInfo:
    """A segment as one commit sees it: its info plus the live-docs generation and delete count."""

    info: SegmentInfo
    del_gen: int = 0  # 0 = no deletes file
    del_count: int = 0

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def live_docs_file(self) -> str | None:
        return live_docs_file_name(self.info.name, self.del_gen) if self.del_gen else None

    def files(self) -> list[str]:
        """Every file this commit needs for the segment."""
        liv = self.live_docs_file
        return list(self.info.files) + ([liv] if liv else [])

    @property
    def num_docs(self) -> int:
        return self.info.max_doc - self.del_count
