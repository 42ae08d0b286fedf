"""The live version map: where each document id lives now, for ids changed since the last commit.

Committed locations are in the catalog's primary-key map; this overlay holds every change made after the
last commit (new docs, updates, deletes, docs moved by a merge) and is written into the catalog, in the
same transaction as the next commit point, then cleared. Lookups check the overlay first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["VersionValue", "IN_BUFFER"]

IN_BUFFER: tuple[str, int] | None = None


@dataclass(frozen=True)
class VersionValue:
    """``location`` is (segment, doc), or None while the doc is still in the RAM buffer."""

    version: int
    seq_no: int
    location: tuple[str, int] | None
    deleted: bool = False
    time: float = field(default_factory=time.monotonic)  # when the entry was made (for tombstone GC)

    def pk_value(self) -> tuple[str, int, int, int] | None:
        """The catalog value for this id (None deletes the entry)."""
        if self.deleted:
            return None
        assert self.location is not None, "a buffered doc must be flushed before commit"
        return (self.location[0], self.location[1], self.version, self.seq_no)

    @classmethod
    def from_pk(cls, value: tuple | list) -> "VersionValue":
        seg, doc, version, seq_no = value
        return cls(int(version), int(seq_no), (str(seg), int(doc)))
