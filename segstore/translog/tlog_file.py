"""The generation file of the translog, ``translog-<gen>.tlog``: its header, its records, and reading it.

Stateless: encoding operations as records, verifying a generation's header and records, scanning a
generation without raising (for inspection and repair), and listing the translog files of a folder. The
checkpoint file (:mod:`segstore.translog.checkpoint`) shares the header layout written by
:func:`file_header`.

All integers are big-endian. The header layout is that of :mod:`segstore.codec.framing` (same magic), with
the translog UUID in the 16-byte id slot.

Generation file (``translog-<gen>.tlog``)::

    TlogFile   := TlogHeader, Record*, Unacknowledged?
    TlogHeader := Magic:u32, NameLen:u8, "SegStore1Translog", Version:u32 (1), TranslogUUID:byte[16],
                  SuffixLen:u8, Suffix:ascii (str(gen)), HeaderCRC:u32 (CRC32 of the header bytes before it)
    Record     := Length:u32 (>= 1), Payload:byte[Length], CRC:u32 (CRC32 of Payload)
    Payload    := msgpack map (use_bin_type: bytes stay bytes, str stays str) with an int "seq_no" >= 0;
                  integers outside the 64-bit range are msgpack ExtType 1 (two's-complement big-endian)
    Unacknowledged := any bytes past the checkpointed offset (never fsynced+acked: ignored, never replayed)
"""

from __future__ import annotations

import errno
import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import msgpack

from segstore.codec.framing import CODEC_MAGIC, ID_LENGTH, header_length
from segstore.errors import DiskFullError, StorageIOError, TranslogCorruptedError

__all__ = [
    "TLOG_FORMAT",
    "VERSION",
    "NO_OPS_PERFORMED",
    "MAX_SEQ_NO",
    "RecordCorruptedError",
    "tlog_name",
    "wrap_os_error",
    "file_header",
    "check_file_header",
    "tlog_header",
    "tlog_header_length",
    "read_tlog_header",
    "encode_ops",
    "iter_records",
    "list_translog_files",
    "GenerationScan",
    "scan_generation",
]

TLOG_FORMAT = "SegStore1Translog"
VERSION = 1
NO_OPS_PERFORMED = -1
MAX_SEQ_NO = 2**63 - 1

_U32 = struct.Struct(">I")
_BIGINT_EXT = 1


def tlog_name(generation: int) -> str:
    return f"translog-{generation}.tlog"


def wrap_os_error(e: OSError, what: str) -> StorageIOError:
    """Typed storage error; ENOSPC (and quota/size limits) become :class:`DiskFullError`."""
    cls = DiskFullError if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else StorageIOError
    return cls(f"{what}: {e}", e)


def file_header(format_name: str, uuid: bytes, suffix: str) -> bytes:
    name, sfx = format_name.encode("ascii"), suffix.encode("ascii")
    return (struct.pack(">IB", CODEC_MAGIC, len(name)) + name + struct.pack(">I", VERSION) + uuid
            + struct.pack(">B", len(sfx)) + sfx)


def check_file_header(buf: bytes, format_name: str, suffix: str, file: str) -> bytes:
    """Check magic, format name, version and suffix of a header at ``buf[0:]``; return the UUID."""
    (magic,) = _U32.unpack_from(buf, 0)
    if magic != CODEC_MAGIC:
        raise TranslogCorruptedError(
            f"codec header mismatch: actual header={magic:#010x} vs expected header={CODEC_MAGIC:#010x}", file)
    nlen = buf[4]
    name = buf[5 : 5 + nlen].decode("ascii", "replace")
    if name != format_name:
        raise TranslogCorruptedError(f"codec mismatch: actual codec={name} vs expected codec={format_name}", file)
    pos = 5 + nlen
    (version,) = _U32.unpack_from(buf, pos)
    if version != VERSION:
        age = "too new" if version > VERSION else "too old"
        raise TranslogCorruptedError(
            f"format version is not supported: {format_name} version {version} is {age} "
            f"(supported versions {VERSION} to {VERSION})", file)
    pos += 4
    uuid = bytes(buf[pos : pos + ID_LENGTH])
    pos += ID_LENGTH
    got_suffix = buf[pos + 1 : pos + 1 + buf[pos]].decode("ascii", "replace")
    if got_suffix != suffix:
        raise TranslogCorruptedError(f"file mismatch, expected suffix={suffix}, got={got_suffix}", file)
    return uuid


def tlog_header_length(generation: int) -> int:
    return header_length(TLOG_FORMAT, str(generation)) + 4


def tlog_header(translog_uuid: bytes, generation: int) -> bytes:
    head = file_header(TLOG_FORMAT, translog_uuid, str(generation))
    return head + _U32.pack(zlib.crc32(head))


def read_tlog_header(fh: IO[bytes], file: str, translog_uuid: bytes, generation: int) -> int:
    """Verify the header of an open generation file; return its length (where records start)."""
    n = tlog_header_length(generation)
    fh.seek(0)
    buf = fh.read(n)
    if len(buf) < n:
        raise TranslogCorruptedError(f"translog header truncated: length={len(buf)}, header needs {n}", file)
    (crc,) = _U32.unpack_from(buf, n - 4)
    actual = zlib.crc32(buf[: n - 4])
    if crc != actual:
        raise TranslogCorruptedError(
            f"translog header checksum failed: expected={crc:#010x} actual={actual:#010x}", file)
    uuid = check_file_header(buf, TLOG_FORMAT, str(generation), file)
    if uuid != translog_uuid:
        raise TranslogCorruptedError(
            f"translog uuid mismatch: expected={translog_uuid.hex()} got={uuid.hex()}", file)
    return n


class RecordCorruptedError(TranslogCorruptedError):
    """A record inside the checkpointed range does not verify; ``offset`` is where that record starts."""

    def __init__(self, message: str, file: str, offset: int) -> None:
        super().__init__(f"{message} at offset {offset}", file)
        self.offset = offset


def _pack_default(obj: object) -> msgpack.ExtType:
    if isinstance(obj, int):  # msgpack asks us only for ints outside [-2**63, 2**64)
        return msgpack.ExtType(_BIGINT_EXT, obj.to_bytes(obj.bit_length() // 8 + 1, "big", signed=True))
    raise TypeError(f"cannot store a value of type {type(obj).__name__} in a translog operation")


def _ext_hook(code: int, data: bytes) -> int:
    if code == _BIGINT_EXT:
        return int.from_bytes(data, "big", signed=True)
    raise ValueError(f"unknown msgpack extension type {code}")


def _seq_no(op: object) -> int | None:
    if not isinstance(op, dict):
        return None
    seq = op.get("seq_no")
    return seq if type(seq) is int and 0 <= seq <= MAX_SEQ_NO else None


def encode_ops(ops: list[dict[str, Any]]) -> tuple[bytes, int, int]:
    """Encode operations as consecutive records; return (bytes, min seq_no, max seq_no).

    Raises ValueError/TypeError for a bad operation, before anything is written.
    """
    parts: list[bytes] = []
    seqs: list[int] = []
    for op in ops:
        seq = _seq_no(op)
        if seq is None:
            raise ValueError(f"a translog operation must be a dict with an int seq_no in [0, 2**63): {op!r:.200}")
        payload = msgpack.packb(op, use_bin_type=True, default=_pack_default)
        if len(payload) > 0xFFFFFFFF:
            raise ValueError(f"translog operation too large: {len(payload)} bytes")
        parts += (_U32.pack(len(payload)), payload, _U32.pack(zlib.crc32(payload)))
        seqs.append(seq)
    return b"".join(parts), min(seqs), max(seqs)


def iter_records(fh: IO[bytes], file: str, start: int, end: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(offset, op)`` for every record in ``[start, end)``; every record must verify and the last
    one must end exactly at ``end`` (the checkpointed offset), else :class:`RecordCorruptedError`."""
    pos = start
    fh.seek(start)
    while pos < end:
        head = fh.read(4)
        if len(head) < 4:
            raise RecordCorruptedError(f"file truncated: record header missing (checkpointed offset {end})",
                                       file, pos)
        (n,) = _U32.unpack(head)
        if n < 1 or n > end - pos - 8:  # checked before reading, so a flipped length never allocates GBs
            raise RecordCorruptedError(
                f"invalid record length {n} (only {end - pos - 8} bytes left before the checkpointed offset)",
                file, pos)
        payload = fh.read(n)
        tail = fh.read(4)
        if len(payload) < n or len(tail) < 4:
            raise RecordCorruptedError(f"file truncated inside a record (checkpointed offset {end})", file, pos)
        (crc,) = _U32.unpack(tail)
        actual = zlib.crc32(payload)
        if crc != actual:
            raise RecordCorruptedError(
                f"operation checksum failed: expected={crc:#010x} actual={actual:#010x}", file, pos)
        try:
            op = msgpack.unpackb(payload, raw=False, ext_hook=_ext_hook, strict_map_key=False)
        except Exception as e:  # noqa: BLE001 - CRC passed, so this is a bug or a forged file
            raise RecordCorruptedError(f"cannot decode operation ({type(e).__name__}: {e})", file, pos) from e
        if _seq_no(op) is None:
            raise RecordCorruptedError("record is not an operation with a valid seq_no", file, pos)
        yield pos, op
        pos += n + 8


# ------------------------------------------------------------------------------- reading a generation

_FILE_RE = re.compile(r"^translog-(\d+)\.(tlog|ckp)$")


def list_translog_files(folder: str) -> tuple[dict[int, str], dict[int, str], list[str]]:
    """(generation -> .tlog name, generation -> .ckp name, leftover temp names) found in ``folder``."""
    tlogs: dict[int, str] = {}
    ckps: dict[int, str] = {}
    temps: list[str] = []
    for name in os.listdir(folder):
        m = _FILE_RE.match(name)
        if m:
            (tlogs if m.group(2) == "tlog" else ckps)[int(m.group(1))] = name
        elif name.startswith(".translog") and name.endswith(".tmp"):
            temps.append(name)
    return tlogs, ckps, temps


@dataclass
class GenerationScan:
    """What reading one generation found. ``first_bad_offset`` is 0 for a missing file or a bad header."""

    generation: int
    file: str
    exists: bool = False
    size: int = 0
    operations: int = 0  # records that verified, before the first bad one
    min_seq_no: int = NO_OPS_PERFORMED
    max_seq_no: int = NO_OPS_PERFORMED
    first_bad_offset: int | None = None
    exception: TranslogCorruptedError | None = None


def scan_generation(folder: str, generation: int, uuid: bytes, end: int | None) -> GenerationScan:
    """Read ``translog-<generation>.tlog`` up to ``end`` (None: to end of file) without raising."""
    scan = GenerationScan(generation, os.path.join(folder, tlog_name(generation)))
    try:
        fh = open(scan.file, "rb")  # noqa: SIM115
    except FileNotFoundError:
        scan.first_bad_offset = 0
        scan.exception = TranslogCorruptedError(f"translog file of generation {generation} is missing", scan.file)
        return scan
    except OSError as e:
        raise wrap_os_error(e, f"cannot read [{scan.file}]") from e
    with fh:
        scan.exists, scan.size = True, os.fstat(fh.fileno()).st_size
        try:
            start = read_tlog_header(fh, scan.file, uuid, generation)
        except TranslogCorruptedError as e:
            scan.first_bad_offset, scan.exception = 0, e
            return scan
        try:
            for _, op in iter_records(fh, scan.file, start, scan.size if end is None else end):
                seq = op["seq_no"]
                lo, hi = (seq, seq) if scan.operations == 0 else (min(scan.min_seq_no, seq), max(scan.max_seq_no, seq))
                scan.min_seq_no, scan.max_seq_no, scan.operations = lo, hi, scan.operations + 1
        except RecordCorruptedError as e:
            scan.first_bad_offset, scan.exception = e.offset, e
    return scan
