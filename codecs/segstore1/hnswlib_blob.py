"""Structural validation of an hnswlib 0.8 ``saveIndex`` blob before ``load_index`` sees it.

hnswlib trusts its input: out-of-range neighbour ids or link counts make it read or write out of bounds and
crash the process (nmslib/hnswlib#673, #677). The CRC only proves the bytes are the ones written; a blob
written wrong, or damaged before the checksum was computed, must still never reach hnswlib. Grammar::

    Blob     := Header(96 bytes), Level0[count], Upper[count]
    Header   := offsetLevel0:u64, max_elements:u64, cur_element_count:u64, size_data_per_element:u64,
                label_offset:u64, offsetData:u64, maxlevel:i32, enterpoint_node:u32, maxM:u64, maxM0:u64,
                M:u64, mult:f64, ef_construction:u64                  (little-endian)
    Level0   := LinkCount:u16, pad:u16, Neighbours:u32[maxM0], Vector:f32[dim], Label:u64
    Upper    := Size:u32, Size bytes = levels x (LinkCount:u16, pad:u16, Neighbours:u32[maxM])

Checks: the header agrees with the segment's meta; every link count is within its level's maximum; every
used neighbour id is below ``count``; the labels are a permutation of the ordinals; upper-level sizes are whole levels no deeper
than ``maxlevel``; the entry point lives on ``maxlevel``; the blob ends exactly after the last element.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from segstore.errors import CorruptIndexError

__all__ = ["BLOB_HEADER", "validate_hnswlib_blob"]

BLOB_HEADER = struct.Struct("<QQQQQQiIQQQdQ")


def _check_links(counts: np.ndarray, neighbours: np.ndarray, max_links: int, n: int, where: str, name: str) -> None:
    if counts.size and int(counts.max()) > max_links:
        raise CorruptIndexError(f"hnswlib blob: {where} link count above {max_links}", name)
    used = np.arange(neighbours.shape[1])[None, :] < counts[:, None]
    if used.any() and int(neighbours[used].max()) >= n:
        raise CorruptIndexError(f"hnswlib blob: {where} neighbour id out of range (count {n})", name)


def validate_hnswlib_blob(blob: memoryview, meta: dict[str, Any], name: str) -> None:
    """Raise :class:`CorruptIndexError` unless ``blob`` is a well-formed graph of ``meta["count"]`` ords."""
    count, m, dim = int(meta["count"]), int(meta["m"]), int(meta["dimension"])
    if len(blob) < BLOB_HEADER.size:
        raise CorruptIndexError(f"hnswlib blob too short: {len(blob)} bytes", name)
    (off0, max_el, cur, size_per, label_off, data_off, max_level, entry, max_m, max_m0, m_, _mult,
     efc) = BLOB_HEADER.unpack_from(blob, 0)
    links0 = max_m0 * 4 + 4
    ok = (off0 == 0 and cur == count and max_el == count and m_ == m and max_m == m and max_m0 == 2 * m
          and efc == meta["ef_construction"] and data_off == links0 and label_off == links0 + dim * 4
          and size_per == label_off + 8 and 0 <= max_level < 64 and entry < max(count, 1)
          and len(blob) >= BLOB_HEADER.size + count * (size_per + 4))
    if not ok:
        raise CorruptIndexError("hnswlib blob header is inconsistent with the graph meta", name)
    base = BLOB_HEADER.size
    level0 = np.frombuffer(blob, np.uint8, count * size_per, base).reshape(count, size_per)
    counts0 = level0[:, 0:4].copy().view("<u4")[:, 0] & 0xFFFF
    neigh0 = level0[:, 4:links0].copy().view("<u4")
    _check_links(counts0, neigh0, max_m0, count, "level-0", name)
    labels = level0[:, label_off:label_off + 8].copy().view("<u8")[:, 0]
    # A multi-threaded build assigns internal ids in any order: labels must be a permutation of 0..count-1.
    if not np.array_equal(np.sort(labels), np.arange(count, dtype=np.uint64)):
        raise CorruptIndexError("hnswlib blob: labels are not a permutation of the ordinals", name)
    # Upper levels are variable-sized records, so they are walked in order; most elements have none.
    size_links = max_m * 4 + 4
    pos = base + count * size_per
    end = len(blob)
    entry_level = -1
    for i in range(count):
        if pos + 4 > end:
            raise CorruptIndexError("hnswlib blob: truncated upper-level link lists", name)
        (size,) = struct.unpack_from("<I", blob, pos)
        pos += 4
        if not size:
            if i == entry:
                entry_level = 0
            continue
        levels, rem = divmod(size, size_links)
        if rem or levels > max_level or pos + size > end:
            raise CorruptIndexError(f"hnswlib blob: element {i} has a malformed upper-level list", name)
        block = np.frombuffer(blob, np.uint8, size, pos).reshape(levels, size_links).copy()
        _check_links(block[:, 0:4].view("<u4")[:, 0] & 0xFFFF, block[:, 4:].view("<u4"), max_m, count,
                     f"element {i} upper-level", name)
        if i == entry:
            entry_level = levels
        pos += size
    if pos != end:
        raise CorruptIndexError(f"hnswlib blob: {end - pos} unexpected bytes after the last element", name)
    if count and entry_level != max_level:
        raise CorruptIndexError(f"hnswlib blob: entry point level {entry_level} != maxlevel {max_level}", name)
