"""``SegStore1StoredFields``: each document's stored record, msgpack-encoded, in zstd-compressed blocks.

Two files per segment (framing per :mod:`segstore.codec.framing`; scalars big-endian, arrays little-endian)::

    .fdt  File     := Header("SegStore1StoredFieldsData", Version, SegmentId, ""), Block^NumBlocks, Footer
          Block    := one zstd frame (level 3, with content size and content checksum) of RawBlock
          RawBlock := Count:u32le, Lengths:u32le[Count], Record^Count
          Record   := msgpack.packb(fields, use_bin_type=True)   (a map; key order is preserved)

    .fdx  File     := Header("SegStore1StoredFieldsIndex", Version, SegmentId, ""), Payload, Footer
          Payload  := NumDocs:u32, NumBlocks:u32, FdtLength:u64,
                      FirstDoc:int32le[NumBlocks], Offset:int64le[NumBlocks] (absolute offset in .fdt),
                      CompLen:int32le[NumBlocks], RawLen:int32le[NumBlocks]

Blocks are cut once they hold >= 16 KiB of raw records or 128 documents, so a GET decompresses at most one
small block, and a single document larger than a block gets a block of its own. Blocks are written back to
back: Offset[0] is the end of the .fdt header, Offset[i+1] = Offset[i] + CompLen[i], and the last block ends
where the footer starts (FdtLength - 16). Block i holds docs FirstDoc[i] .. FirstDoc[i+1]-1.

Checks: the .fdx is small and fully checksummed on open, then validated (layout above, NumDocs = max_doc).
The .fdt may be large, so it only gets the cheap check on open: its exact length (FdtLength from the index,
so truncation is a :class:`TruncatedFileError` right away) and footer; ``check_integrity()`` runs its full CRC.
A bit flip inside a block is caught when the block is read: zstd's content checksum (4 bytes per block, which
is why it is enabled) fails or the block does not parse, and then the full CRC decides the error type
(:class:`ChecksumMismatchError` if the file is damaged, else :class:`CorruptIndexError`). Damaged data is
never returned.
"""

from __future__ import annotations

import operator
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
import zstandard

from segstore.codec.base import StoredFieldsFormat, StoredFieldsReader, StoredFieldsWriter
from segstore.codec.framing import FOOTER_LENGTH, FramedInput, header_length, write_footer, write_header
from segstore.errors import AlreadyClosedError, CorruptIndexError
from segstore.index.file_names import segment_file_name
from segstore.index.write_state import SegmentReadState, SegmentWriteState
from segstore.store.directory import Directory

__all__ = [
    "SegStore1StoredFieldsFormat",
    "SegStore1StoredFieldsWriter",
    "SegStore1StoredFieldsReader",
    "DATA_CODEC",
    "INDEX_CODEC",
]

DATA_CODEC = "SegStore1StoredFieldsData"
INDEX_CODEC = "SegStore1StoredFieldsIndex"
DATA_EXTENSION = "fdt"
INDEX_EXTENSION = "fdx"
VERSION_START = 1  # never 0, so a "version - 1" header is still a representable (too old) u32
VERSION_CURRENT = 1
DEFAULT_BLOCK_BYTES = 16 * 1024
DEFAULT_BLOCK_DOCS = 128
ZSTD_LEVEL = 3
_INT32_MAX = 2**31 - 1  # RawLen / CompLen / FirstDoc are int32 in the index
_INDEX_HEAD = struct.Struct(">IIQ")
_ENTRY_BYTES = 4 + 8 + 4 + 4
_U32LE = struct.Struct("<I")


class SegStore1StoredFieldsWriter(StoredFieldsWriter):
    """Buffers records into blocks and streams compressed blocks to ``.fdt``; writes ``.fdx`` at finish."""

    def __init__(self, state: SegmentWriteState, block_bytes: int, block_docs: int, level: int) -> None:
        self._state = state
        self._dir: Directory = state.directory
        seg = state.segment_info.name
        self._fdt_name = segment_file_name(seg, "", DATA_EXTENSION)
        self._fdx_name = segment_file_name(seg, "", INDEX_EXTENSION)
        self._block_bytes, self._block_docs = block_bytes, block_docs
        self._zstd = zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._num_docs = 0  # documents accepted so far, including pending ones
        self._first_doc: list[int] = []
        self._offset: list[int] = []
        self._comp_len: list[int] = []
        self._raw_len: list[int] = []
        self._status = "open"  # -> "finished" | "aborted"
        self._out = self._dir.create_output(self._fdt_name)
        try:
            write_header(self._out, DATA_CODEC, VERSION_CURRENT, state.segment_info.segment_id)
        except BaseException:
            self._out.abort()
            raise

    def _ensure_open(self) -> None:
        if self._status != "open":
            raise AlreadyClosedError(f"stored fields writer for [{self._fdt_name}] is {self._status}")

    def write_document(self, fields: dict[str, Any]) -> None:
        if not isinstance(fields, dict) or not all(isinstance(k, str) for k in fields):
            raise TypeError("a stored document must be a dict with str keys")
        self._append(msgpack.packb(fields, use_bin_type=True))

    def write_raw(self, raw: bytes) -> None:
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise TypeError(f"raw record must be bytes, got {type(raw).__name__}")
        self._append(bytes(raw))

    def _append(self, raw: bytes) -> None:
        self._ensure_open()
        if self._num_docs >= _INT32_MAX:
            raise ValueError(f"too many documents in one segment: {self._num_docs}")
        # The block's raw size must fit RawLen:int32; the 4-byte length prefix of each record counts too.
        if 4 + 4 + len(raw) > _INT32_MAX:
            raise ValueError(f"stored document too large: {len(raw)} bytes")
        if self._pending and 4 + 4 * (len(self._pending) + 1) + self._pending_bytes + len(raw) > _INT32_MAX:
            self._flush_block()
        self._pending.append(raw)
        self._pending_bytes += len(raw)
        self._num_docs += 1
        if self._pending_bytes >= self._block_bytes or len(self._pending) >= self._block_docs:
            self._flush_block()

    def _flush_block(self) -> None:
        count = len(self._pending)
        lengths = np.array([len(r) for r in self._pending], dtype="<u4")
        raw_block = b"".join((_U32LE.pack(count), lengths.tobytes(), *self._pending))
        comp = self._zstd.compress(raw_block)
        if len(comp) > _INT32_MAX:
            raise ValueError(f"compressed block too large: {len(comp)} bytes")
        self._first_doc.append(self._num_docs - count)
        self._offset.append(self._out.file_pointer)
        self._comp_len.append(len(comp))
        self._raw_len.append(len(raw_block))
        self._out.write(comp)
        self._pending, self._pending_bytes = [], 0

    def finish(self, num_docs: int) -> None:
        if self._status == "finished" and num_docs == self._num_docs:
            return  # idempotent
        self._ensure_open()
        if num_docs != self._num_docs:
            self.abort()  # leave nothing behind: the caller's segment is broken anyway
            raise ValueError(
                f"stored fields doc count mismatch for [{self._fdt_name}]: expected={num_docs} "
                f"actual (written)={self._num_docs}"
            )
        try:
            if self._pending:
                self._flush_block()
            write_footer(self._out)
            fdt_length = self._out.file_pointer
        except BaseException:
            self.abort()
            raise
        self._out.close()  # publishes .fdt
        try:
            self._write_index(fdt_length)
        except BaseException:
            # .fdt is already visible; remove it so a failed finish leaves no file, like abort().
            self._status = "aborted"
            try:
                self._dir.delete_file(self._fdt_name)
            except FileNotFoundError:
                pass
            raise
        self._status = "finished"
        self._state.files.update((self._fdt_name, self._fdx_name))

    def _write_index(self, fdt_length: int) -> None:
        out = self._dir.create_output(self._fdx_name)
        try:
            write_header(out, INDEX_CODEC, VERSION_CURRENT, self._state.segment_info.segment_id)
            out.write(_INDEX_HEAD.pack(self._num_docs, len(self._first_doc), fdt_length))
            out.write(np.asarray(self._first_doc, dtype="<i4").tobytes())
            out.write(np.asarray(self._offset, dtype="<i8").tobytes())
            out.write(np.asarray(self._comp_len, dtype="<i4").tobytes())
            out.write(np.asarray(self._raw_len, dtype="<i4").tobytes())
            write_footer(out)
        except BaseException:
            out.abort()
            raise
        out.close()

    def abort(self) -> None:
        # After finish() the files are published and listed in state.files: whoever owns the segment
        # deletes them. Aborting here only discards an unpublished .fdt.
        if self._status != "open":
            return
        self._status = "aborted"
        self._pending, self._pending_bytes = [], 0
        self._out.abort()


@dataclass(frozen=True)
class _Index:
    num_docs: int
    fdt_length: int
    first_doc: np.ndarray  # int64[num_blocks], strictly increasing, first_doc[0] == 0
    offset: np.ndarray  # int64[num_blocks], absolute in .fdt
    comp_len: np.ndarray  # int64[num_blocks]
    raw_len: np.ndarray  # int64[num_blocks]
    count: np.ndarray  # int64[num_blocks], docs per block (derived)


def _decode_index(payload: memoryview, name: str) -> _Index:
    def bad(msg: str) -> CorruptIndexError:
        return CorruptIndexError(msg, name)

    if len(payload) < _INDEX_HEAD.size:
        raise bad(f"stored fields index too short: expected>={_INDEX_HEAD.size} actual={len(payload)}")
    num_docs, n, fdt_length = _INDEX_HEAD.unpack_from(payload, 0)
    if len(payload) != _INDEX_HEAD.size + n * _ENTRY_BYTES:
        raise bad(f"index length mismatch for {n} blocks: expected={_INDEX_HEAD.size + n * _ENTRY_BYTES} "
                  f"actual={len(payload)}")
    if num_docs > _INT32_MAX or n > num_docs or (n == 0) != (num_docs == 0):
        raise bad(f"impossible counts: num_docs={num_docs} num_blocks={n}")
    arrays = []
    pos = _INDEX_HEAD.size
    for dtype in ("<i4", "<i8", "<i4", "<i4"):
        a = np.frombuffer(payload, dtype=dtype, count=n, offset=pos)
        arrays.append(a.astype(np.int64))  # a copy: the index must not pin the file's buffer
        pos += a.nbytes
    first_doc, offset, comp_len, raw_len = arrays
    count = np.diff(np.append(first_doc, num_docs))
    data_start = header_length(DATA_CODEC)
    if n and (first_doc[0] != 0 or np.any(count < 1)):
        raise bad("first_doc must start at 0 and be strictly increasing below num_docs")
    if np.any(comp_len < 1) or np.any(raw_len < 4 + 4 * count):
        raise bad("block lengths too small for their document counts")
    ends = offset + comp_len
    starts_ok = n == 0 or (offset[0] == data_start and np.array_equal(offset[1:], ends[:-1]))
    end = int(ends[-1]) if n else data_start
    if not starts_ok or end != fdt_length - FOOTER_LENGTH:
        raise bad(f"blocks are not laid out back to back from {data_start} to {fdt_length - FOOTER_LENGTH}")
    return _Index(num_docs, fdt_length, first_doc, offset, comp_len, raw_len, count)


@dataclass(frozen=True)
class _Block:
    data: bytes
    starts: list[int]  # record i is data[starts[i]:starts[i + 1]]

    def record(self, i: int) -> bytes:
        return self.data[self.starts[i] : self.starts[i + 1]]


class SegStore1StoredFieldsReader(StoredFieldsReader):
    """Random access to stored records. Safe for concurrent use; caches the last decompressed block."""

    def __init__(self, state: SegmentReadState) -> None:
        info = state.segment_info
        seg = info.name
        fdx_name = segment_file_name(seg, "", INDEX_EXTENSION)
        self._fdt_name = segment_file_name(seg, "", DATA_EXTENSION)
        with FramedInput(state.directory, fdx_name, INDEX_CODEC, VERSION_START, VERSION_CURRENT,
                         info.segment_id, verify_checksum=True) as fdx:
            self._index = fdx.parse(lambda payload: _decode_index(payload, fdx_name))
        if self._index.num_docs != info.max_doc:
            raise CorruptIndexError(
                f"stored fields doc count mismatch: expected (max_doc)={info.max_doc} "
                f"actual={self._index.num_docs}", fdx_name)
        self._fdt: FramedInput | None = FramedInput(
            state.directory, self._fdt_name, DATA_CODEC, VERSION_START, VERSION_CURRENT, info.segment_id,
            expected_length=self._index.fdt_length)
        self._lock = threading.Lock()
        self._cache: tuple[int, _Block] | None = None
        # zstd (de)compressor objects must not be shared between threads: one per thread.
        self._tls = threading.local()

    @property
    def num_docs(self) -> int:
        return self._index.num_docs

    def _input(self) -> FramedInput:
        fdt = self._fdt
        if fdt is None:
            raise AlreadyClosedError(f"stored fields reader for [{self._fdt_name}] is closed")
        return fdt

    def _block_of(self, doc: int) -> int:
        doc = operator.index(doc)
        if not 0 <= doc < self._index.num_docs:
            raise IndexError(f"doc {doc} out of range [0, {self._index.num_docs}) in [{self._fdt_name}]")
        return int(np.searchsorted(self._index.first_doc, doc, side="right")) - 1

    def _decode_block(self, fdt: FramedInput, b: int) -> _Block:
        # Raises plain exceptions on damage; FramedInput.parse turns them into typed errors via the full CRC.
        idx = self._index
        off, comp_len, raw_len, count = (int(idx.offset[b]), int(idx.comp_len[b]), int(idx.raw_len[b]),
                                         int(idx.count[b]))
        comp = fdt.buffer[off : off + comp_len]
        # Check the frame's declared size first so a damaged header cannot make zstd allocate gigabytes.
        declared = zstandard.frame_content_size(comp)
        if declared != raw_len:
            raise ValueError(f"block {b}: frame content size {declared} != index raw_len {raw_len}")
        dctx = getattr(self._tls, "dctx", None)
        if dctx is None:
            dctx = self._tls.dctx = zstandard.ZstdDecompressor()
        data = dctx.decompress(comp, max_output_size=raw_len, allow_extra_data=False)
        if len(data) != raw_len:
            raise ValueError(f"block {b}: decompressed {len(data)} bytes, expected {raw_len}")
        (stored_count,) = _U32LE.unpack_from(data, 0)
        if stored_count != count:
            raise ValueError(f"block {b}: holds {stored_count} docs, index says {count}")
        head = 4 + 4 * count
        ends = head + np.cumsum(np.frombuffer(data, dtype="<u4", count=count, offset=4), dtype=np.int64)
        if int(ends[-1]) != raw_len:
            raise ValueError(f"block {b}: record lengths end at {int(ends[-1])}, block has {raw_len} bytes")
        return _Block(data, [head, *ends.tolist()])

    def _load(self, b: int) -> _Block:
        with self._lock:
            cached = self._cache
        if cached is not None and cached[0] == b:
            return cached[1]
        fdt = self._input()
        # Decompress outside the lock so concurrent readers of different blocks do not serialise.
        block = fdt.parse(lambda _payload: self._decode_block(fdt, b))
        with self._lock:
            self._cache = (b, block)
        return block

    def raw_document(self, doc: int) -> bytes:
        self._input()
        b = self._block_of(doc)
        return self._load(b).record(doc - int(self._index.first_doc[b]))

    def document(self, doc: int) -> dict[str, Any]:
        raw = self.raw_document(doc)
        return self._unpack(raw)

    def _unpack(self, raw: bytes) -> dict[str, Any]:
        def decode(_payload: memoryview) -> dict[str, Any]:
            # Nested maps may have non-str keys (msgpack allows them); data is CRC-protected, not hostile.
            fields = msgpack.unpackb(raw, raw=False, strict_map_key=False)
            if not isinstance(fields, dict):
                raise ValueError(f"stored record is a {type(fields).__name__}, not a map")
            return fields

        return self._input().parse(decode)

    def raw_documents(self, docs: Iterable[int]) -> Iterator[bytes]:
        # Keep our own current block: another thread may replace the shared cache between two docs.
        current: tuple[int, _Block] | None = None
        for doc in docs:
            self._input()
            b = self._block_of(doc)
            if current is None or current[0] != b:
                current = (b, self._load(b))
            yield current[1].record(doc - int(self._index.first_doc[b]))

    def check_integrity(self) -> None:
        self._input().check_integrity()

    def close(self) -> None:
        fdt, self._fdt = self._fdt, None
        self._cache = None
        if fdt is not None:
            fdt.close()


class SegStore1StoredFieldsFormat(StoredFieldsFormat):
    """zstd-compressed msgpack blocks; block thresholds are configurable for tests."""

    name = "SegStore1StoredFields"

    def __init__(
        self, block_bytes: int = DEFAULT_BLOCK_BYTES, block_docs: int = DEFAULT_BLOCK_DOCS, level: int = ZSTD_LEVEL
    ) -> None:
        if block_bytes < 1 or block_docs < 1:
            raise ValueError(f"block thresholds must be >= 1: block_bytes={block_bytes} block_docs={block_docs}")
        self.block_bytes, self.block_docs, self.level = block_bytes, block_docs, level

    def fields_writer(self, state: SegmentWriteState) -> SegStore1StoredFieldsWriter:
        return SegStore1StoredFieldsWriter(state, self.block_bytes, self.block_docs, self.level)

    def fields_reader(self, state: SegmentReadState) -> SegStore1StoredFieldsReader:
        return SegStore1StoredFieldsReader(state)
