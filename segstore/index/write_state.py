"""Parameter objects handed to format writers and readers (Lucene's ``SegmentWriteState``/``ReadState``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from segstore.index.field_infos import FieldInfos
from segstore.index.segment_info import SegmentInfo
from segstore.store.directory import Directory

__all__ = ["SegmentWriteState", "SegmentReadState"]


@dataclass
class SegmentWriteState:
    """What a format writer needs. Writers add every file they publish to ``files``."""

    directory: Directory
    segment_info: SegmentInfo
    field_infos: FieldInfos
    files: set[str] = field(default_factory=set)


@dataclass
class SegmentReadState:
    """What a format reader needs to open one segment's files."""

    directory: Directory
    segment_info: SegmentInfo
    field_infos: FieldInfos
