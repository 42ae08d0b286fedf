"""File framing shared by every format (segstore's ``CodecUtil``).

Grammar of every segstore file (all integers big-endian)::

    File       := Header, Payload, Footer
    Header     := Magic:u32 (0x3fd76c17), NameLen:u8, FormatName:ascii[NameLen], Version:u32,
                  SegmentId:byte[16], SuffixLen:u8, Suffix:ascii[SuffixLen]
    Footer     := FooterMagic:u32 (~Magic), AlgorithmId:u32 (0 = zlib CRC32), Checksum:u64
    Checksum   := CRC32 of every byte before the Checksum field (header, payload, FooterMagic, AlgorithmId);
                  the upper 32 bits must be zero.

Checks and the typed error each failure raises (every error names the file):

* shorter than header + footer, or no footer magic in the last 16 bytes -> :class:`TruncatedFileError`;
* wrong magic, wrong format name, bad algorithm id -> :class:`CorruptIndexError`;
* version below / above the reader's range -> :class:`IndexFormatTooOldError` / :class:`IndexFormatTooNewError`;
* segment id or suffix differ from the caller's -> :class:`SegmentIdMismatchError` (a swapped-in file);
* CRC mismatch -> :class:`ChecksumMismatchError`.

Metadata files are fully checksummed on open (``verify_checksum=True``); large data files get the cheap
length-and-footer check on open and the full CRC in ``check_integrity()``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import TypeVar

from segstore.errors import (
    ChecksumMismatchError,
    CorruptIndexError,
    IndexFormatTooNewError,
    IndexFormatTooOldError,
    SegmentIdMismatchError,
    TruncatedFileError,
)
from segstore.store.directory import Directory, IndexInput, IndexOutput

__all__ = [
    "CODEC_MAGIC",
    "FOOTER_MAGIC",
    "FOOTER_LENGTH",
    "ID_LENGTH",
    "FramedInput",
    "header_length",
    "write_header",
    "write_footer",
    "pad_to",
    "check_name",
]

CODEC_MAGIC = 0x3FD76C17
FOOTER_MAGIC = CODEC_MAGIC ^ 0xFFFFFFFF
FOOTER_LENGTH = 16
ID_LENGTH = 16
_ALGORITHM_CRC32 = 0
_FOOTER = struct.Struct(">IIQ")
T = TypeVar("T")


def check_name(name: str, what: str = "name") -> str:
    """Names written into files are ASCII alphanumeric (plus ``_``), 1..127 chars, like Lucene's SPI names."""
    if not (0 < len(name) < 128) or not name.isascii() or not name.replace("_", "").isalnum():
        raise ValueError(f"illegal {what} [{name}]: must be 1-127 ASCII letters, digits or '_'")
    return name


def header_length(format_name: str, suffix: str = "") -> int:
    """Byte length of the header for ``format_name`` and ``suffix``."""
    return 4 + 1 + len(format_name) + 4 + ID_LENGTH + 1 + len(suffix)


def write_header(out: IndexOutput, format_name: str, version: int, segment_id: bytes, suffix: str = "") -> None:
    """Write the index header (see the module grammar)."""
    check_name(format_name, "format name")
    if len(segment_id) != ID_LENGTH:
        raise ValueError(f"segment id must be {ID_LENGTH} bytes, got {len(segment_id)}")
    sfx = suffix.encode("ascii")
    if len(sfx) > 255:
        raise ValueError(f"suffix too long: {suffix!r}")
    name = format_name.encode("ascii")
    out.write(struct.pack(">IB", CODEC_MAGIC, len(name)) + name + struct.pack(">I", version) + bytes(segment_id)
              + struct.pack(">B", len(sfx)) + sfx)


def write_footer(out: IndexOutput) -> None:
    """Write the 16-byte footer; the checksum covers every byte before it."""
    head = struct.pack(">II", FOOTER_MAGIC, _ALGORITHM_CRC32)
    out.write(head)
    out.write(struct.pack(">Q", out.checksum))


def pad_to(out: IndexOutput, alignment: int) -> None:
    """Write zero bytes until the file pointer is a multiple of ``alignment`` (for zero-copy numpy views)."""
    rem = out.file_pointer % alignment
    if rem:
        out.write(bytes(alignment - rem))


class FramedInput:
    """An opened, header-and-footer-checked file. ``payload`` is the bytes between header and footer.

    ``data_offset`` is the payload's absolute offset in the file, so formats can record absolute offsets
    of aligned arrays and slice ``buffer`` directly.
    """

    def __init__(
        self,
        directory: Directory,
        name: str,
        format_name: str,
        min_version: int,
        max_version: int,
        segment_id: bytes | None,
        suffix: str = "",
        *,
        verify_checksum: bool = False,
        expected_length: int | None = None,
    ) -> None:
        self.name = name
        self._input: IndexInput = directory.open_input(name)
        try:
            self.buffer = self._input.buffer
            self.version = self._check_header(format_name, min_version, max_version, segment_id, suffix)
            self._check_footer_shape(expected_length)
            if verify_checksum:
                self.check_integrity()
        except BaseException:
            self._input.close()
            raise
        self.payload = self.buffer[self.data_offset : len(self.buffer) - FOOTER_LENGTH]

    # -- checks

    def _check_header(self, fmt: str, vmin: int, vmax: int, seg_id: bytes | None, suffix: str) -> int:
        buf, n = self.buffer, len(self.buffer)
        need = header_length(fmt, suffix) + FOOTER_LENGTH
        if n < need:
            raise TruncatedFileError(
                f"file too short to be a {fmt} file: length={n}, header+footer need {need} (file truncated?)",
                self.name,
            )
        (magic,) = struct.unpack_from(">I", buf, 0)
        if magic != CODEC_MAGIC:
            raise CorruptIndexError(
                f"codec header mismatch: actual header={magic:#010x} vs expected header={CODEC_MAGIC:#010x}",
                self.name,
            )
        nlen = buf[4]
        actual = bytes(buf[5 : 5 + nlen]).decode("ascii", "replace")
        if actual != fmt:
            raise CorruptIndexError(f"codec mismatch: actual codec={actual} vs expected codec={fmt}", self.name)
        pos = 5 + nlen
        (version,) = struct.unpack_from(">I", buf, pos)
        if version < vmin:
            raise IndexFormatTooOldError(
                f"format version is not supported: {fmt} version {version} is too old "
                f"(supported versions {vmin} to {vmax}); reindex with an older segstore first",
                self.name, version, vmin, vmax,
            )
        if version > vmax:
            raise IndexFormatTooNewError(
                f"format version is not supported: {fmt} version {version} is too new "
                f"(supported versions {vmin} to {vmax}); it was written by a newer segstore",
                self.name, version, vmin, vmax,
            )
        pos += 4
        got_id = bytes(buf[pos : pos + ID_LENGTH])
        pos += ID_LENGTH
        if seg_id is not None and got_id != seg_id:
            raise SegmentIdMismatchError(self.name, "id", seg_id.hex(), got_id.hex())
        self.segment_id = got_id
        slen = buf[pos]
        got_suffix = bytes(buf[pos + 1 : pos + 1 + slen]).decode("ascii", "replace")
        if got_suffix != suffix:
            raise SegmentIdMismatchError(self.name, "suffix", suffix, got_suffix)
        self.data_offset = pos + 1 + slen
        return version

    def _check_footer_shape(self, expected_length: int | None) -> None:
        buf, n = self.buffer, len(self.buffer)
        if expected_length is not None and n != expected_length:
            word = "truncated" if n < expected_length else "extended"
            raise TruncatedFileError(
                f"file length mismatch: expected={expected_length} actual={n} (file {word}?)", self.name
            )
        if n - FOOTER_LENGTH < self.data_offset:
            raise TruncatedFileError(f"misplaced codec footer (file truncated?): length={n}", self.name)
        magic, algo, crc = _FOOTER.unpack_from(buf, n - FOOTER_LENGTH)
        if magic != FOOTER_MAGIC:
            raise TruncatedFileError(
                f"codec footer mismatch (file truncated or extended?): actual footer={magic:#010x} "
                f"vs expected footer={FOOTER_MAGIC:#010x}",
                self.name,
            )
        if algo != _ALGORITHM_CRC32:
            raise CorruptIndexError(f"codec footer mismatch: unknown checksum algorithm={algo}", self.name)
        if crc >> 32:
            raise CorruptIndexError(f"illegal CRC-32 checksum: {crc}", self.name)
        self.stored_checksum = crc

    def check_integrity(self) -> None:
        """Full CRC32 over the file (reads every byte)."""
        n = len(self.buffer)
        actual = zlib.crc32(self.buffer[: n - 8])
        if actual != self.stored_checksum:
            raise ChecksumMismatchError(self.name, self.stored_checksum, actual)

    def parse(self, fn: Callable[[memoryview], T]) -> T:
        """Run ``fn(payload)``; if it fails, let the checksum decide what the error really is.

        A bad checksum becomes the main error (the disk is damaged); a good one turns the failure into a
        :class:`CorruptIndexError` that says the checksum passed, pointing at a transient fault or a bug.
        This is Lucene's ``checkFooter(in, priorException)`` idiom.

        **NOTE:** a :class:`CorruptIndexError` raised by ``fn`` itself passes through unchanged, without the
        CRC check; parsers of large data files should raise plain exceptions so the checksum decides.
        """
        try:
            return fn(self.payload)
        except CorruptIndexError:
            raise
        except Exception as e:  # noqa: BLE001 - every parse failure is reported as corruption
            self.check_integrity()  # raises ChecksumMismatchError if the bytes are damaged
            raise CorruptIndexError(
                f"cannot parse payload ({type(e).__name__}: {e}); checksum passed, "
                "possibly a transient resource issue or a segstore bug",
                self.name,
            ) from e

    def close(self) -> None:
        self._input.close()

    def __enter__(self) -> "FramedInput":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
