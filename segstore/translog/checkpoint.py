"""On-disk formats of the translog (checkpoint, generation header, records) and offline folder tools.

Everything here is stateless: encoding/decoding, verifying a folder, and the read-only ``inspect_folder``
and explicit ``truncate_folder`` repair used by :meth:`Translog.inspect` / :meth:`Translog.truncate_corrupt_tail`.

All integers are big-endian. The header and footer layouts are those of :mod:`segstore.codec.framing`
(same magic, same footer), with the translog UUID in the 16-byte id slot.

Checkpoint file (``translog.ckp`` and the per-generation copies ``translog-<gen>.ckp``)::

    CheckpointFile := Header, Body, Footer                  (exactly CHECKPOINT_SIZE = 117 bytes, < 512)
    Header := Magic:u32 (0x3fd76c17), NameLen:u8, "SegStore1TranslogCheckpoint", Version:u32 (1),
              TranslogUUID:byte[16], SuffixLen:u8 (0)
    Body   := Offset:i64, NumOps:i64, Generation:i64, MinSeqNo:i64, MaxSeqNo:i64, MinTranslogGeneration:i64
    Footer := FooterMagic:u32 (~Magic), AlgorithmId:u32 (0 = CRC32), Checksum:u64 (CRC32 of all prior bytes)

``Offset`` is the valid (fsynced, acknowledged) byte length of ``translog-<Generation>.tlog``; ``NumOps``
the number of records below it; ``MinSeqNo``/``MaxSeqNo`` are -1 when ``NumOps`` is 0 (OpenSearch's
``NO_OPS_PERFORMED``).

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
import secrets
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import IO, Any

import msgpack

from segstore.codec.framing import CODEC_MAGIC, FOOTER_LENGTH, FOOTER_MAGIC, ID_LENGTH, header_length
from segstore.errors import DiskFullError, StorageIOError, TranslogCorruptedError
from segstore.store.fs_directory import fsync_dir

__all__ = [
    "Checkpoint",
    "CHECKPOINT_NAME",
    "CHECKPOINT_SIZE",
    "RecordCorruptedError",
    "tlog_name",
    "ckp_name",
    "tlog_header",
    "tlog_header_length",
    "read_tlog_header",
    "encode_ops",
    "iter_records",
    "write_checkpoint_atomically",
    "write_checkpoint_in_place",
    "wrap_os_error",
    "list_translog_files",
    "GenerationScan",
    "scan_generation",
    "verify_generation",
    "check_current_copy",
    "verify_folder",
    "inspect_folder",
    "truncate_folder",
]

CHECKPOINT_NAME = "translog.ckp"
CHECKPOINT_FORMAT = "SegStore1TranslogCheckpoint"
TLOG_FORMAT = "SegStore1Translog"
VERSION = 1
NO_OPS_PERFORMED = -1
MAX_SEQ_NO = 2**63 - 1

_U32 = struct.Struct(">I")
_BODY = struct.Struct(">qqqqqq")
_FOOTER = struct.Struct(">IIQ")
_CKP_HEADER_LEN = header_length(CHECKPOINT_FORMAT)
CHECKPOINT_SIZE = _CKP_HEADER_LEN + _BODY.size + FOOTER_LENGTH
# One sector write is atomic on every disk we care about; a torn checkpoint would lose the whole translog.
assert CHECKPOINT_SIZE < 512, CHECKPOINT_SIZE
_BIGINT_EXT = 1


def tlog_name(generation: int) -> str:
    return f"translog-{generation}.tlog"


def ckp_name(generation: int) -> str:
    return f"translog-{generation}.ckp"


def wrap_os_error(e: OSError, what: str) -> StorageIOError:
    """Typed storage error; ENOSPC (and quota/size limits) become :class:`DiskFullError`."""
    cls = DiskFullError if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else StorageIOError
    return cls(f"{what}: {e}", e)


def _header(format_name: str, uuid: bytes, suffix: str) -> bytes:
    name, sfx = format_name.encode("ascii"), suffix.encode("ascii")
    return (struct.pack(">IB", CODEC_MAGIC, len(name)) + name + struct.pack(">I", VERSION) + uuid
            + struct.pack(">B", len(sfx)) + sfx)


def _check_header(buf: bytes, format_name: str, suffix: str, file: str) -> bytes:
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


@dataclass(frozen=True)
class Checkpoint:
    """The durable state of one generation (see the module grammar)."""

    offset: int
    num_ops: int
    generation: int
    min_seq_no: int
    max_seq_no: int
    min_translog_generation: int
    translog_uuid: bytes

    @classmethod
    def empty(cls, generation: int, min_translog_generation: int, translog_uuid: bytes) -> Checkpoint:
        """Checkpoint of a freshly created generation: just the header, no operations."""
        return cls(tlog_header_length(generation), 0, generation, NO_OPS_PERFORMED, NO_OPS_PERFORMED,
                   min_translog_generation, translog_uuid)

    def appended(self, n_bytes: int, n_ops: int, min_seq_no: int, max_seq_no: int) -> Checkpoint:
        """This checkpoint after ``n_ops`` records (``n_bytes`` long, seq_nos in the given range) were added."""
        lo = min_seq_no if self.num_ops == 0 else min(self.min_seq_no, min_seq_no)
        hi = max_seq_no if self.num_ops == 0 else max(self.max_seq_no, max_seq_no)
        return replace(self, offset=self.offset + n_bytes, num_ops=self.num_ops + n_ops, min_seq_no=lo,
                       max_seq_no=hi)

    def to_bytes(self) -> bytes:
        body = _header(CHECKPOINT_FORMAT, self.translog_uuid, "") + _BODY.pack(
            self.offset, self.num_ops, self.generation, self.min_seq_no, self.max_seq_no,
            self.min_translog_generation)
        body += struct.pack(">II", FOOTER_MAGIC, 0)
        data = body + struct.pack(">Q", zlib.crc32(body))
        assert len(data) == CHECKPOINT_SIZE
        return data

    @classmethod
    def from_bytes(cls, data: bytes, file: str) -> Checkpoint:
        """Parse and fully verify a checkpoint (length, footer, CRC, header, field sanity)."""
        if len(data) != CHECKPOINT_SIZE:
            raise TranslogCorruptedError(
                f"checkpoint has wrong length: expected={CHECKPOINT_SIZE} actual={len(data)} "
                "(file truncated or extended?)", file)
        magic, algo, crc = _FOOTER.unpack_from(data, CHECKPOINT_SIZE - FOOTER_LENGTH)
        if magic != FOOTER_MAGIC or algo != 0:
            raise TranslogCorruptedError(
                f"codec footer mismatch: actual footer={magic:#010x} algorithm={algo}", file)
        actual = zlib.crc32(data[: CHECKPOINT_SIZE - 8])
        if crc != actual:
            raise TranslogCorruptedError(
                f"checksum failed (hardware problem?) : expected={crc:#010x} actual={actual:#010x}", file)
        uuid = _check_header(data, CHECKPOINT_FORMAT, "", file)
        offset, num_ops, generation, min_seq_no, max_seq_no, min_gen = _BODY.unpack_from(data, _CKP_HEADER_LEN)
        ckp = cls(offset, num_ops, generation, min_seq_no, max_seq_no, min_gen, uuid)
        # The CRC passed, so insane values mean a bug or a forged file; refuse them all the same.
        no_ops = ckp.num_ops == 0 and ckp.min_seq_no == ckp.max_seq_no == NO_OPS_PERFORMED
        some_ops = ckp.num_ops > 0 and 0 <= ckp.min_seq_no <= ckp.max_seq_no
        if (ckp.generation < 1 or not 1 <= ckp.min_translog_generation <= ckp.generation
                or ckp.offset < tlog_header_length(ckp.generation) or not (no_ops or some_ops)):
            raise TranslogCorruptedError(f"checkpoint has inconsistent values: {ckp}", file)
        return ckp

    @classmethod
    def read(cls, path: str) -> Checkpoint:
        """Read and verify a checkpoint file; a missing or damaged file -> TranslogCorruptedError(path)."""
        try:
            with open(path, "rb") as fh:
                data = fh.read(CHECKPOINT_SIZE + 1)  # one more byte reveals an extended file
        except FileNotFoundError as e:
            raise TranslogCorruptedError(f"checkpoint file is missing ({e.strerror})", path) from e
        except OSError as e:
            raise wrap_os_error(e, f"cannot read checkpoint [{path}]") from e
        return cls.from_bytes(data, path)

    def describe(self) -> dict[str, Any]:
        """Plain-dict view (for ``inspect`` and the CLI)."""
        return {"offset": self.offset, "num_ops": self.num_ops, "generation": self.generation,
                "min_seq_no": self.min_seq_no, "max_seq_no": self.max_seq_no,
                "min_translog_generation": self.min_translog_generation,
                "translog_uuid": self.translog_uuid.hex()}

    def __str__(self) -> str:
        return (f"Checkpoint{{offset={self.offset}, numOps={self.num_ops}, generation={self.generation}, "
                f"minSeqNo={self.min_seq_no}, maxSeqNo={self.max_seq_no}, "
                f"minTranslogGeneration={self.min_translog_generation}, uuid={self.translog_uuid.hex()}}}")


def write_checkpoint_in_place(fd: int, ckp: Checkpoint) -> None:
    """Overwrite ``translog.ckp`` at offset 0 and fsync. The file is fixed-size and < 512 bytes, so the
    write is a single sector: either the old or the new checkpoint survives a power loss, never a mix."""
    data = ckp.to_bytes()
    if os.pwrite(fd, data, 0) != len(data):
        raise OSError(errno.EIO, "short write of checkpoint")
    os.fsync(fd)


def write_checkpoint_atomically(folder: str, name: str, ckp: Checkpoint, *, sync_dir: bool = True) -> None:
    """Write ``name`` via temp file + fsync + rename (+ folder fsync), so it exists whole or not at all."""
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            write_checkpoint_in_place(fd, ckp)
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(folder, name))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if sync_dir:
        fsync_dir(folder)


# ------------------------------------------------------------------------------------------- .tlog files


def tlog_header_length(generation: int) -> int:
    return header_length(TLOG_FORMAT, str(generation)) + 4


def tlog_header(translog_uuid: bytes, generation: int) -> bytes:
    head = _header(TLOG_FORMAT, translog_uuid, str(generation))
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
    uuid = _check_header(buf, TLOG_FORMAT, str(generation), file)
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


# ------------------------------------------------------------------------------- reading a whole folder

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


def verify_generation(folder: str, ckp: Checkpoint) -> None:
    """Every record of ``ckp.generation`` up to ``ckp.offset`` must verify and match the checkpoint."""
    scan = scan_generation(folder, ckp.generation, ckp.translog_uuid, ckp.offset)
    if scan.exception is not None:
        raise scan.exception
    if (scan.operations, scan.min_seq_no, scan.max_seq_no) != (ckp.num_ops, ckp.min_seq_no, ckp.max_seq_no):
        raise TranslogCorruptedError(
            f"records disagree with the checkpoint: found numOps={scan.operations} minSeqNo={scan.min_seq_no} "
            f"maxSeqNo={scan.max_seq_no}, checkpoint {ckp}", scan.file)


def check_current_copy(folder: str, ckp: Checkpoint) -> None:
    """A ``translog-<gen>.ckp`` for the current generation (a crash while rolling) must equal ``ckp``."""
    path = os.path.join(folder, ckp_name(ckp.generation))
    try:
        copy = Checkpoint.read(path)
        detail = "" if copy == ckp else f"expected {ckp} but got {copy}"
    except TranslogCorruptedError as e:
        detail = e.detail
    if detail:
        raise TranslogCorruptedError(
            f"checkpoint file {ckp_name(ckp.generation)} already exists but has corrupted content: {detail}", path)


def _rolled_checkpoint(folder: str, generation: int, uuid: bytes) -> Checkpoint:
    path = os.path.join(folder, ckp_name(generation))
    ckp = Checkpoint.read(path)
    if ckp.generation != generation or ckp.translog_uuid != uuid:
        raise TranslogCorruptedError(f"checkpoint does not belong to generation {generation}: {ckp}", path)
    return ckp


def verify_folder(folder: str, ckp: Checkpoint, tlogs: dict[int, str], ckps: dict[int, str],
                  low: int | None = None) -> dict[int, Checkpoint]:
    """Recovery checks of every live generation of ``ckp`` from ``low`` (default: its minimum generation);
    return the rolled generations' checkpoints."""
    gen = ckp.generation
    low = ckp.min_translog_generation if low is None else low
    rolled: dict[int, Checkpoint] = {}
    for g in range(low, gen + 1):
        if g not in tlogs:
            raise TranslogCorruptedError(
                f"translog file doesn't exist with generation: {g} recovering from: {low} checkpoint: {gen} "
                "- translog ids must be consecutive", os.path.join(folder, tlog_name(g)))
        if g < gen:
            if g not in ckps:
                raise TranslogCorruptedError(f"checkpoint of rolled generation {g} is missing",
                                             os.path.join(folder, ckp_name(g)))
            rolled[g] = _rolled_checkpoint(folder, g, ckp.translog_uuid)
            verify_generation(folder, rolled[g])
        else:
            if g in ckps:  # left by a crash while rolling: it must be the very same checkpoint
                check_current_copy(folder, ckp)
            verify_generation(folder, ckp)
    return rolled


def inspect_folder(folder: str) -> dict[str, Any]:
    """Describe a translog folder without modifying it: checkpoint fields, per-generation op counts and the
    first bad offset, if any (``first_bad`` names the generation, file and offset)."""
    report: dict[str, Any] = {"path": folder, "clean": False, "error": None, "checkpoint": None,
                              "generations": [], "first_bad": None, "stray_files": []}
    tlogs, ckps, temps = list_translog_files(folder)
    try:
        ckp = Checkpoint.read(os.path.join(folder, CHECKPOINT_NAME))
    except TranslogCorruptedError as e:
        report["error"] = str(e)
        report["stray_files"] = sorted([*tlogs.values(), *ckps.values(), *temps])
        return report
    report["checkpoint"] = ckp.describe()
    low, gen = ckp.min_translog_generation, ckp.generation
    for g in range(low, gen + 1):
        gckp: Checkpoint | None = ckp
        error: str | None = None
        try:
            if g < gen:
                gckp = _rolled_checkpoint(folder, g, ckp.translog_uuid)
            elif g in ckps:
                check_current_copy(folder, ckp)
        except TranslogCorruptedError as e:
            gckp = None if g < gen else gckp
            error = str(e)
        scan = scan_generation(folder, g, ckp.translog_uuid, gckp.offset if gckp else None)
        if scan.exception is not None:
            error = error or str(scan.exception)
        elif gckp is not None and scan.operations != gckp.num_ops:
            error = error or f"checkpoint says {gckp.num_ops} operations but {scan.operations} records were found"
        report["generations"].append({
            "generation": g, "file": tlog_name(g), "exists": scan.exists, "size": scan.size,
            "checkpoint": gckp.describe() if gckp else None, "operations": scan.operations,
            "first_bad_offset": scan.first_bad_offset, "error": error,
            "unacknowledged_bytes": max(0, scan.size - gckp.offset) if gckp and scan.exists else None,
        })
        if error and report["first_bad"] is None:
            report["first_bad"] = {"generation": g, "file": tlog_name(g), "offset": scan.first_bad_offset,
                                   "error": error}
    report["stray_files"] = sorted([n for g, n in tlogs.items() if not low <= g <= gen]
                                   + [n for g, n in ckps.items() if not low <= g <= gen] + temps)
    report["clean"] = report["first_bad"] is None
    return report


def truncate_folder(folder: str) -> int:
    """Explicit repair: drop every operation from the first bad record on; return how many were dropped.

    The generation holding the first bad record becomes the current one, ending before that record (a bad
    header or a missing file: the generation is recreated empty); later generations are deleted. Bytes past
    the new offset stay in the file but are unacknowledged, hence ignored; the next open rolls past them.
    A rolled generation whose checkpoint is unreadable is dropped whole (its acknowledged length is unknown;
    its count of well-formed records is reported as dropped).
    """
    ckp = Checkpoint.read(os.path.join(folder, CHECKPOINT_NAME))  # nothing can be trusted without it
    uuid, low, gen = ckp.translog_uuid, ckp.min_translog_generation, ckp.generation

    def checkpoint_of(g: int) -> Checkpoint | None:
        try:
            return ckp if g == gen else _rolled_checkpoint(folder, g, uuid)
        except TranslogCorruptedError:
            return None

    for g in range(low, gen + 1):
        gckp = checkpoint_of(g)
        scan = scan_generation(folder, g, uuid, gckp.offset if gckp else None)
        if gckp is not None and scan.exception is None:
            if scan.operations != gckp.num_ops:
                raise TranslogCorruptedError(
                    f"cannot repair by truncation: checkpoint says {gckp.num_ops} operations but "
                    f"{scan.operations} records verify", scan.file)
            continue
        if gckp is None or scan.first_bad_offset == 0:  # nothing of this generation can be kept
            dropped = gckp.num_ops if gckp else scan.operations
            new = Checkpoint.empty(g, low, uuid)
        else:
            assert scan.first_bad_offset is not None
            dropped = gckp.num_ops - scan.operations
            new = Checkpoint(scan.first_bad_offset, scan.operations, g, scan.min_seq_no, scan.max_seq_no, low, uuid)
        for later in range(g + 1, gen + 1):
            lckp = checkpoint_of(later)
            dropped += lckp.num_ops if lckp else scan_generation(folder, later, uuid, None).operations
        try:
            if scan.first_bad_offset == 0 or not scan.exists:
                _rewrite_empty_generation(folder, uuid, g)
            # The copy first: a crash between the two writes then leaves a consistent (shorter) generation g.
            write_checkpoint_atomically(folder, ckp_name(g), new, sync_dir=False)
            write_checkpoint_atomically(folder, CHECKPOINT_NAME, new)
            for later in range(g + 1, gen + 1):
                for name in (tlog_name(later), ckp_name(later)):
                    if os.path.exists(os.path.join(folder, name)):
                        os.unlink(os.path.join(folder, name))
            fsync_dir(folder)
        except OSError as e:
            raise wrap_os_error(e, f"cannot truncate translog in [{folder}]") from e
        return dropped
    return 0


def _rewrite_empty_generation(folder: str, uuid: bytes, generation: int) -> None:
    tmp = os.path.join(folder, f".{tlog_name(generation)}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(tlog_header(uuid, generation))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, os.path.join(folder, tlog_name(generation)))
