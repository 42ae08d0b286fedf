"""All segstore file naming goes through here (Lucene's ``IndexFileNames``).

Per-segment files are ``<segment>[_<suffix>].<ext>`` where ``<segment>`` is ``_`` plus a base-36 counter
(``_0``, ``_1``, ..., ``_a``). Live-docs generations are ``<segment>_<gen base36>.liv``.

========  ====================================================  =========
ext       contents                                              checked
========  ====================================================  =========
``si``    segment info: id, max_doc, codec name, attributes      full CRC on open
``fnm``   field infos: fields, vector parameters, attributes     full CRC on open
``vem``   vector values metadata: per field offsets and counts   full CRC on open
``vec``   vector values data: vectors + ord->doc maps            length + footer on open
``hnsw``  one field's HNSW graph (hnswlib / faiss blob)           full CRC before load
``fdx``   stored fields block index                              full CRC on open
``fdt``   stored fields data: zstd(msgpack) blocks               length + footer on open
``liv``   live docs bitset of one delete generation              full CRC on open
========  ====================================================  =========
"""

from __future__ import annotations

import re

__all__ = [
    "segment_name",
    "segment_file_name",
    "live_docs_file_name",
    "parse_segment_name",
    "to_base36",
    "from_base36",
    "CODEC_FILE_PATTERN",
    "WRITE_LOCK_NAME",
]

WRITE_LOCK_NAME = "write.lock"
CODEC_FILE_PATTERN = re.compile(r"^_[a-z0-9]+(_[a-z0-9_]+)?\.[a-z]+$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def to_base36(n: int) -> str:
    if n < 0:
        raise ValueError(f"negative: {n}")
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _DIGITS[r] + out
        if n == 0:
            return out


def from_base36(s: str) -> int:
    return int(s, 36)


def segment_name(counter: int) -> str:
    """``_`` + base-36 counter."""
    return "_" + to_base36(counter)


def segment_file_name(segment: str, suffix: str, ext: str) -> str:
    return f"{segment}_{suffix}.{ext}" if suffix else f"{segment}.{ext}"


def live_docs_file_name(segment: str, gen: int) -> str:
    return f"{segment}_{to_base36(gen)}.liv"


def parse_segment_name(file_name: str) -> str:
    """The segment a file belongs to: ``_3_f1.hnsw`` -> ``_3``."""
    stem = file_name.split(".", 1)[0]
    if not stem.startswith("_"):
        raise ValueError(f"not a segment file: {file_name}")
    second = stem.find("_", 1)
    return stem if second < 0 else stem[:second]
