"""Level 1 for one file: its framing header and footer, read leniently (so a damaged file is still
described) and then strictly through :class:`~segstore.codec.framing.FramedInput`.

The framing grammar (:mod:`segstore.codec.framing`, all integers big-endian)::

    File   := Header, Payload, Footer
    Header := Magic:u32 (CODEC_MAGIC), NameLen:u8, FormatName:ascii[NameLen], Version:u32,
              SegmentId:byte[16], SuffixLen:u8, Suffix:ascii[SuffixLen]
    Footer := FooterMagic:u32, AlgorithmId:u32 (0 = CRC32), Checksum:u64 (CRC32 of every prior byte)

Translog files (:mod:`segstore.translog.checkpoint`) share the header, with the translog uuid in the
segment-id slot: a checkpoint (``.ckp``) also has the footer; a generation (``.tlog``) has a ``HeaderCRC:u32``
right after its header, and every record carries its own CRC.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Any

from segstore.codec.framing import (
    CODEC_MAGIC,
    FOOTER_LENGTH,
    FOOTER_MAGIC,
    ID_LENGTH,
    FramedInput,
)
from segstore.errors import CorruptIndexError, IndexFormatError
from segstore.index.check.formats import COMPONENTS, EXPECTED_FORMAT, FORMAT_VERSIONS
from segstore.index.check.status import FileReport, Problem, problem_from_error
from segstore.index.file_names import parse_segment_name
from segstore.store.fs_directory import FSDirectory

__all__ = ["expected_suffix", "inspect_file", "inspect_translog_file", "read_header"]


def _peek_header(buf: memoryview) -> dict[str, Any] | None:
    """Lenient parse of a framing header (for reports about damaged files); None if not even the magic."""
    n = len(buf)
    if n < 5:
        return None
    (magic,) = struct.unpack_from(">I", buf, 0)
    if magic != CODEC_MAGIC:
        return None
    nlen = buf[4]
    pos = 5 + nlen
    out: dict[str, Any] = {"format": bytes(buf[5:pos]).decode("ascii", "replace")}
    if pos + 4 + ID_LENGTH + 1 > n:
        return out
    out["version"] = struct.unpack_from(">I", buf, pos)[0]
    pos += 4
    out["segment_id"] = bytes(buf[pos:pos + ID_LENGTH]).hex()
    pos += ID_LENGTH
    slen = buf[pos]
    out["suffix"] = bytes(buf[pos + 1:pos + 1 + slen]).decode("ascii", "replace")
    out["data_offset"] = pos + 1 + slen
    return out


def read_header(path: str) -> dict[str, Any] | None:
    """Lenient header of the file at ``path`` (format, version, segment_id, suffix); None if unframed."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return None
    return _peek_header(memoryview(head))


def _peek_footer(buf: memoryview) -> int | None:
    n = len(buf)
    if n < FOOTER_LENGTH:
        return None
    magic, algo, crc = struct.unpack_from(">IIQ", buf, n - FOOTER_LENGTH)
    return int(crc) if magic == FOOTER_MAGIC and algo == 0 and not crc >> 32 else None


def expected_suffix(file_name: str) -> str:
    """The header suffix a segment file must carry: ``_3_f1.hnsw`` -> ``f1``, ``_3_2.liv`` -> ``2``."""
    stem = file_name.split(".", 1)[0]
    seg = parse_segment_name(file_name)
    return stem[len(seg) + 1:] if len(stem) > len(seg) else ""


def inspect_file(directory: FSDirectory, name: str, *, segment: str | None = None,
                 expected_id: bytes | None = None, verify: bool = True, expected_length: int | None = None,
                 referenced: bool = True) -> FileReport:
    """Header, footer and (``verify``) full CRC of one segment file, through ``FramedInput``."""
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    component = COMPONENTS.get(ext, "other")
    try:
        seg = segment or parse_segment_name(name)
    except ValueError:
        seg = None
    rep = FileReport(name, seg, component, None, referenced=referenced)
    try:
        rep.size = directory.file_length(name)
    except FileNotFoundError:
        rep.problem = Problem(component, f"file is missing: {name}", "MissingFileError", seg, name)
        return rep
    try:
        inp = directory.open_input(name)
    except OSError as e:
        rep.problem = Problem(component, f"cannot open: {e}", "StorageIOError", seg, name)
        return rep
    buf = inp.buffer
    peek = _peek_header(buf) or {}
    rep.format, rep.version = peek.get("format"), peek.get("version")
    rep.segment_id, rep.suffix = peek.get("segment_id"), peek.get("suffix")
    crc = _peek_footer(buf)
    rep.stored_crc = None if crc is None else f"{crc:#010x}"
    if verify and len(buf) >= 8:
        rep.actual_crc = f"{zlib.crc32(buf[:len(buf) - 8]):#010x}"
    fmt = EXPECTED_FORMAT.get(ext) or peek.get("format") or "?"
    vmin, vmax = FORMAT_VERSIONS.get(fmt, (0, 2**32 - 1))
    try:
        suffix = expected_suffix(name) if seg else (peek.get("suffix") or "")
        framed = FramedInput(directory, name, fmt, vmin, vmax, expected_id, suffix,
                             verify_checksum=verify, expected_length=expected_length)
        framed.close()
    except (CorruptIndexError, IndexFormatError) as e:
        rep.problem = problem_from_error(e, component, segment=seg)
        rep.problem.file = name
        if rep.problem.actual is None and rep.problem.error == "TruncatedFileError":
            rep.problem.actual = f"length={rep.size}"
    finally:
        inp.close()
    return rep


def inspect_translog_file(folder: str, name: str) -> FileReport:
    """Header (and for checkpoints, footer + CRC) of a translog file."""
    path = os.path.join(folder, name)
    rep = FileReport(name, None, "translog", os.path.getsize(path))
    with open(path, "rb") as fh:
        data = fh.read(1 << 16) if name.endswith(".tlog") else fh.read()
    buf = memoryview(data)
    peek = _peek_header(buf) or {}
    rep.format, rep.version, rep.segment_id = peek.get("format"), peek.get("version"), peek.get("segment_id")
    rep.suffix = peek.get("suffix")
    if name.endswith(".ckp"):
        crc = _peek_footer(buf)
        rep.stored_crc = None if crc is None else f"{crc:#010x}"
        rep.actual_crc = f"{zlib.crc32(buf[:len(buf) - 8]):#010x}" if len(buf) >= 8 else None
        if rep.stored_crc != rep.actual_crc:
            rep.problem = Problem("translog", "checkpoint checksum mismatch", "ChecksumMismatchError",
                                  file=name, expected=rep.stored_crc, actual=rep.actual_crc)
    elif "data_offset" in peek:
        off = peek["data_offset"]
        if len(buf) >= off + 4:
            (stored,) = struct.unpack_from(">I", buf, off)
            rep.stored_crc = f"{stored:#010x}"
            rep.actual_crc = f"{zlib.crc32(buf[:off]):#010x}"  # the header CRC; records carry their own
    return rep
