"""The translog checkpoint: the durable state of one generation, in ``translog.ckp`` and the per-generation
copies ``translog-<gen>.ckp``.

All integers are big-endian. The header and footer layouts are those of :mod:`segstore.codec.framing`
(same magic, same footer), with the translog UUID in the 16-byte id slot; the header is shared with the
generation files (:mod:`segstore.translog.tlog_file`, which holds their grammar).

Checkpoint file (``translog.ckp`` and the per-generation copies ``translog-<gen>.ckp``)::

    CheckpointFile := Header, Body, Footer                  (exactly CHECKPOINT_SIZE = 117 bytes, < 512)
    Header := Magic:u32 (0x3fd76c17), NameLen:u8, "SegStore1TranslogCheckpoint", Version:u32 (1),
              TranslogUUID:byte[16], SuffixLen:u8 (0)
    Body   := Offset:i64, NumOps:i64, Generation:i64, MinSeqNo:i64, MaxSeqNo:i64, MinTranslogGeneration:i64
    Footer := FooterMagic:u32 (~Magic), AlgorithmId:u32 (0 = CRC32), Checksum:u64 (CRC32 of all prior bytes)

``Offset`` is the valid (fsynced, acknowledged) byte length of ``translog-<Generation>.tlog``; ``NumOps``
the number of records below it; ``MinSeqNo``/``MaxSeqNo`` are -1 when ``NumOps`` is 0 (OpenSearch's
``NO_OPS_PERFORMED``).

Verifying, inspecting and truncating a whole folder is :mod:`segstore.translog.folder`. This module also
exports the generation-file names that :mod:`segstore.index.check_index` and ``segstore_tools.repair`` import
from here.
"""

from __future__ import annotations

import errno
import os
import secrets
import struct
import zlib
from dataclasses import dataclass, replace
from typing import Any

from segstore.codec.framing import FOOTER_LENGTH, FOOTER_MAGIC, header_length
from segstore.errors import TranslogCorruptedError
from segstore.store.fs_directory import fsync_dir
from segstore.translog.tlog_file import (
    NO_OPS_PERFORMED,
    TLOG_FORMAT,
    VERSION,
    check_file_header,
    file_header,
    iter_records,
    list_translog_files,
    read_tlog_header,
    scan_generation,
    tlog_header_length,
    tlog_name,
    wrap_os_error,
)

__all__ = [
    "Checkpoint",
    "CHECKPOINT_NAME",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_SIZE",
    "ckp_name",
    "write_checkpoint_atomically",
    "write_checkpoint_in_place",
    # generation files (segstore.translog.tlog_file), for the importers named in the module docstring
    "TLOG_FORMAT",
    "VERSION",
    "tlog_name",
    "read_tlog_header",
    "iter_records",
    "list_translog_files",
    "scan_generation",
]

CHECKPOINT_NAME = "translog.ckp"
CHECKPOINT_FORMAT = "SegStore1TranslogCheckpoint"

_BODY = struct.Struct(">qqqqqq")
_FOOTER = struct.Struct(">IIQ")
_CKP_HEADER_LEN = header_length(CHECKPOINT_FORMAT)
CHECKPOINT_SIZE = _CKP_HEADER_LEN + _BODY.size + FOOTER_LENGTH
# One sector write is atomic on every disk we care about; a torn checkpoint would lose the whole translog.
assert CHECKPOINT_SIZE < 512, CHECKPOINT_SIZE


def ckp_name(generation: int) -> str:
    return f"translog-{generation}.ckp"


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
        body = file_header(CHECKPOINT_FORMAT, self.translog_uuid, "") + _BODY.pack(
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
        uuid = check_file_header(data, CHECKPOINT_FORMAT, "", file)
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
