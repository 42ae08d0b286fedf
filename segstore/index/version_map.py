"""The live version map: where each document id lives now, for ids changed since the last commit.

Committed locations are in the catalog's primary-key map; this overlay holds every change made after the
last commit (new docs, updates, deletes, docs moved by a merge) and is written into the catalog, in the
same transaction as the next commit point, then cleared. Lookups check the overlay first.
"""

from __future__ import annotations

import time
from typing import NamedTuple

__all__ = ["IN_BUFFER", "VersionValue"]

IN_BUFFER: tuple[str, int] | None = None


class VersionValue(NamedTuple):
    """``location`` is (segment, doc), or None while the doc is still in the RAM buffer. ``time`` (monotonic)
    is when a delete's tombstone was made, for tombstone GC. A named tuple: two are made per indexed document
    on the bulk path (see ``BufferedDoc``)."""

    version: int
    seq_no: int
    location: tuple[str, int] | None
    deleted: bool = False
    time: float = 0.0

    @classmethod
    def tombstone(cls, version: int, seq_no: int) -> VersionValue:
        """A deleted id's entry, stamped now."""
        return cls(version, seq_no, None, True, time.monotonic())

    def pk_value(self) -> tuple[str, int, int, int] | None:
        """The catalog value for this id (None deletes the entry)."""
        if self.deleted:
            return None
        assert self.location is not None, "a buffered doc must be flushed before commit"
        return (self.location[0], self.location[1], self.version, self.seq_no)

    @classmethod
    def from_pk(cls, value: tuple | list) -> VersionValue:
        seg, doc, version, seq_no = value
        return cls(int(version), int(seq_no), (str(seg), int(doc)))
