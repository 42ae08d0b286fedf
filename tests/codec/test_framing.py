"""File framing (``segstore.codec.framing``): header/footer round trip and every typed error it raises.

Each damaged file must raise the documented error class, and every error names the file (``.file`` and
``(resource=<file>)`` in the message).
"""

from __future__ import annotations

import struct
import zlib

import pytest

from segstore.codec.framing import (
    CODEC_MAGIC,
    FOOTER_LENGTH,
    FOOTER_MAGIC,
    FramedInput,
    check_name,
    header_length,
    pad_to,
    write_footer,
    write_header,
)
from segstore.errors import (
    ChecksumMismatchError,
    CorruptIndexError,
    IndexFormatError,
    IndexFormatTooNewError,
    IndexFormatTooOldError,
    SegmentIdMismatchError,
    TruncatedFileError,
)
from segstore.store import Directory, MemoryDirectory
from segstore.testing.corrupt import overwrite

FMT = "TestFormat"
SEG_ID = bytes(range(16))
OTHER_ID = bytes(range(1, 17))
PAYLOAD = b"hello framing payload \x00\x01\x02" * 5
NAME = "_0_f3.tst"


def write_file(directory: Directory, name: str = NAME, fmt: str = FMT, version: int = 2,
               seg_id: bytes = SEG_ID, suffix: str = "f3", payload: bytes = PAYLOAD) -> bytes:
    out = directory.create_output(name)
    write_header(out, fmt, version, seg_id, suffix)
    out.write(payload)
    write_footer(out)
    out.close()
    return directory.read_bytes(name)


def open_file(directory: Directory, name: str = NAME, *, fmt: str = FMT, vmin: int = 1, vmax: int = 3,
              seg_id: bytes | None = SEG_ID, suffix: str = "f3", verify: bool = True,
              expected_length: int | None = None) -> FramedInput:
    return FramedInput(directory, name, fmt, vmin, vmax, seg_id, suffix, verify_checksum=verify,
                       expected_length=expected_length)


def assert_names_file(err: BaseException, name: str = NAME) -> None:
    assert getattr(err, "file") == name
    assert f"(resource={name})" in str(err)


@pytest.fixture
def mem() -> MemoryDirectory:
    return MemoryDirectory()


# ------------------------------------------------------------------------------------------- round trip


def test_round_trip_exact_layout(directory: Directory) -> None:
    data = write_file(directory)
    hlen = header_length(FMT, "f3")
    assert hlen == 4 + 1 + len(FMT) + 4 + 16 + 1 + 2
    assert len(data) == hlen + len(PAYLOAD) + FOOTER_LENGTH
    # header bytes, big-endian
    assert data[:4] == struct.pack(">I", 0x3FD76C17) == struct.pack(">I", CODEC_MAGIC)
    assert data[4] == len(FMT) and data[5 : 5 + len(FMT)] == FMT.encode()
    assert struct.unpack(">I", data[5 + len(FMT) : 9 + len(FMT)]) == (2,)
    assert data[9 + len(FMT) : 25 + len(FMT)] == SEG_ID
    assert data[25 + len(FMT)] == 2 and data[26 + len(FMT) : hlen] == b"f3"
    # footer: ~magic, algorithm 0, CRC32 of everything before the checksum field in a u64
    magic, algo, crc = struct.unpack(">IIQ", data[-16:])
    assert magic == FOOTER_MAGIC == 0x3FD76C17 ^ 0xFFFFFFFF
    assert algo == 0
    assert crc == zlib.crc32(data[:-8])
    with open_file(directory) as inp:
        assert inp.version == 2
        assert inp.segment_id == SEG_ID
        assert inp.data_offset == hlen
        assert bytes(inp.payload) == PAYLOAD
        assert inp.stored_checksum == crc
        inp.check_integrity()
        assert inp.parse(lambda p: bytes(p[:5])) == b"hello"


def test_round_trip_empty_suffix_and_payload(mem: MemoryDirectory) -> None:
    write_file(mem, "_1.si", suffix="", payload=b"")
    with open_file(mem, "_1.si", suffix="") as inp:
        assert bytes(inp.payload) == b""
        assert inp.data_offset == header_length(FMT)


def test_segment_id_none_skips_the_id_check(mem: MemoryDirectory) -> None:
    write_file(mem, seg_id=OTHER_ID)
    with open_file(mem, seg_id=None) as inp:
        assert inp.segment_id == OTHER_ID


def test_version_bounds_are_inclusive(mem: MemoryDirectory) -> None:
    write_file(mem, version=1)
    with open_file(mem, vmin=1, vmax=1) as inp:
        assert inp.version == 1


def test_pad_to_alignment(mem: MemoryDirectory) -> None:
    out = mem.create_output("p")
    out.write(b"abc")
    pad_to(out, 64)
    assert out.file_pointer == 64
    pad_to(out, 64)
    assert out.file_pointer == 64
    out.close()
    assert mem.read_bytes("p") == b"abc" + bytes(61)


def test_writer_side_validation(mem: MemoryDirectory) -> None:
    out = mem.create_output("bad")
    with pytest.raises(ValueError):
        write_header(out, "has space", 1, SEG_ID)
    with pytest.raises(ValueError):
        write_header(out, "x" * 128, 1, SEG_ID)
    with pytest.raises(ValueError):
        write_header(out, FMT, 1, b"short")
    with pytest.raises(ValueError):
        write_header(out, FMT, 1, SEG_ID, "s" * 256)
    out.abort()
    assert check_name("Ok_Name1") == "Ok_Name1"
    with pytest.raises(ValueError):
        check_name("")


# -------------------------------------------------------------------------------------------- truncation


def test_too_short_is_truncated(mem: MemoryDirectory) -> None:
    data = write_file(mem)
    need = header_length(FMT, "f3") + FOOTER_LENGTH
    overwrite(mem, NAME, data[: need - 1])
    with pytest.raises(TruncatedFileError) as ei:
        open_file(mem)
    assert_names_file(ei.value)
    assert f"length={need - 1}" in str(ei.value)
    overwrite(mem, NAME, b"")
    with pytest.raises(TruncatedFileError) as ei:
        open_file(mem)
    assert_names_file(ei.value)


@pytest.mark.parametrize("cut", [1, 7, 16, 17])
def test_footer_missing_is_truncated(mem: MemoryDirectory, cut: int) -> None:
    data = write_file(mem)
    overwrite(mem, NAME, data[:-cut])
    with pytest.raises(TruncatedFileError) as ei:
        open_file(mem, verify=False)  # even the cheap open detects it
    assert_names_file(ei.value)


def test_extended_file_is_detected(mem: MemoryDirectory) -> None:
    data = write_file(mem)
    overwrite(mem, NAME, data + b"\x00" * 3)
    with pytest.raises(TruncatedFileError) as ei:
        open_file(mem, verify=False)
    assert_names_file(ei.value)


def test_expected_length_mismatch(mem: MemoryDirectory) -> None:
    data = write_file(mem)
    with pytest.raises(TruncatedFileError) as ei:
        open_file(mem, verify=False, expected_length=len(data) + 1)
    assert_names_file(ei.value)
    assert f"expected={len(data) + 1} actual={len(data)}" in str(ei.value)
    assert "truncated" in str(ei.value)
    with pytest.raises(TruncatedFileError) as ei:
        open_file(mem, verify=False, expected_length=len(data) - 1)
    assert "extended" in str(ei.value)
    with open_file(mem, verify=False, expected_length=len(data)) as inp:
        assert bytes(inp.payload) == PAYLOAD


# ------------------------------------------------------------------------------------- header mismatches


def test_wrong_magic(mem: MemoryDirectory) -> None:
    data = bytearray(write_file(mem))
    data[0] ^= 0xFF
    overwrite(mem, NAME, bytes(data))
    with pytest.raises(CorruptIndexError) as ei:
        open_file(mem)
    assert type(ei.value) is CorruptIndexError
    assert "codec header mismatch" in str(ei.value)
    assert_names_file(ei.value)


def test_wrong_format_name(mem: MemoryDirectory) -> None:
    write_file(mem, fmt="OtherFormat")
    with pytest.raises(CorruptIndexError) as ei:
        open_file(mem)
    assert type(ei.value) is CorruptIndexError
    assert "actual codec=OtherFormat vs expected codec=TestFormat" in str(ei.value)
    assert_names_file(ei.value)
    # Same length, different letters.
    mem2 = MemoryDirectory()
    write_file(mem2, fmt="TestFormaT")
    with pytest.raises(CorruptIndexError) as ei:
        open_file(mem2)
    assert type(ei.value) is CorruptIndexError


def test_version_too_old(mem: MemoryDirectory) -> None:
    write_file(mem, version=1)
    with pytest.raises(IndexFormatTooOldError) as ei:
        open_file(mem, vmin=2, vmax=3)
    e = ei.value
    assert (e.version, e.min_version, e.max_version) == (1, 2, 3)
    assert isinstance(e, IndexFormatError) and not isinstance(e, CorruptIndexError)
    assert_names_file(e)


def test_version_too_new(mem: MemoryDirectory) -> None:
    write_file(mem, version=4)
    with pytest.raises(IndexFormatTooNewError) as ei:
        open_file(mem, vmin=1, vmax=3)
    e = ei.value
    assert (e.version, e.min_version, e.max_version) == (4, 1, 3)
    assert not isinstance(e, CorruptIndexError)
    assert "too new" in str(e)
    assert_names_file(e)


def test_patched_version_word_in_a_valid_file(mem: MemoryDirectory) -> None:
    """Patch the u32 version in place (CRC now wrong): the version check still comes first, as in Lucene."""
    data = bytearray(write_file(mem, version=2))
    pos = 5 + len(FMT)
    data[pos : pos + 4] = struct.pack(">I", 7)
    overwrite(mem, NAME, bytes(data))
    with pytest.raises(IndexFormatTooNewError):
        open_file(mem)
    data[pos : pos + 4] = struct.pack(">I", 0)
    overwrite(mem, NAME, bytes(data))
    with pytest.raises(IndexFormatTooOldError):
        open_file(mem)


def test_segment_id_mismatch(mem: MemoryDirectory) -> None:
    write_file(mem, seg_id=OTHER_ID)
    with pytest.raises(SegmentIdMismatchError) as ei:
        open_file(mem)
    e = ei.value
    assert isinstance(e, CorruptIndexError)
    assert e.expected == SEG_ID.hex() and e.actual == OTHER_ID.hex()
    assert f"expected id={SEG_ID.hex()}, got={OTHER_ID.hex()}" in str(e)
    assert_names_file(e)


def test_suffix_mismatch(mem: MemoryDirectory) -> None:
    write_file(mem, suffix="f4")
    with pytest.raises(SegmentIdMismatchError) as ei:
        open_file(mem, suffix="f3")
    e = ei.value
    assert (e.expected, e.actual) == ("f3", "f4")
    assert "expected suffix=f3, got=f4" in str(e)
    assert_names_file(e)
    mem2 = MemoryDirectory()
    write_file(mem2, suffix="")
    with pytest.raises(SegmentIdMismatchError):
        open_file(mem2, suffix="f3")


# ---------------------------------------------------------------------------------------------- checksum


def test_checksum_mismatch(mem: MemoryDirectory) -> None:
    data = bytearray(write_file(mem))
    hlen = header_length(FMT, "f3")
    data[hlen + 10] ^= 0x10
    overwrite(mem, NAME, bytes(data))
    with pytest.raises(ChecksumMismatchError) as ei:
        open_file(mem, verify=True)
    e = ei.value
    assert isinstance(e, CorruptIndexError)
    stored = struct.unpack(">Q", bytes(data[-8:]))[0]
    assert e.expected == stored
    assert e.actual == zlib.crc32(bytes(data[:-8]))
    assert f"expected={stored:#010x} actual={e.actual:#010x}" in str(e)
    assert "checksum failed (hardware problem?)" in str(e)
    assert_names_file(e)
    # The cheap open does not read the payload; check_integrity() does.
    inp = open_file(mem, verify=False)
    with pytest.raises(ChecksumMismatchError) as ei2:
        inp.check_integrity()
    assert_names_file(ei2.value)
    inp.close()


def test_damaged_crc_field_itself(mem: MemoryDirectory) -> None:
    data = bytearray(write_file(mem))
    data[-1] ^= 0x01
    overwrite(mem, NAME, bytes(data))
    with pytest.raises(ChecksumMismatchError) as ei:
        open_file(mem)
    assert_names_file(ei.value)


def test_footer_algorithm_and_high_crc_bits(mem: MemoryDirectory) -> None:
    data = bytearray(write_file(mem))
    bad_algo = bytes(data[:-12]) + struct.pack(">I", 1) + bytes(data[-8:])
    overwrite(mem, NAME, bad_algo)
    with pytest.raises(CorruptIndexError) as ei:
        open_file(mem, verify=False)
    assert type(ei.value) is CorruptIndexError
    assert "unknown checksum algorithm=1" in str(ei.value)
    assert_names_file(ei.value)
    crc = struct.unpack(">Q", bytes(data[-8:]))[0]
    high = bytes(data[:-8]) + struct.pack(">Q", crc | (1 << 40))
    overwrite(mem, NAME, high)
    with pytest.raises(CorruptIndexError) as ei:
        open_file(mem, verify=False)
    assert type(ei.value) is CorruptIndexError
    assert "illegal CRC-32 checksum" in str(ei.value)


# ---------------------------------------------------------------------------------- parse(prior exception)


def test_parse_with_bad_crc_reports_checksum_mismatch(mem: MemoryDirectory) -> None:
    data = bytearray(write_file(mem))
    data[header_length(FMT, "f3") + 3] ^= 0x04
    overwrite(mem, NAME, bytes(data))
    inp = open_file(mem, verify=False)

    def boom(_payload: memoryview) -> None:
        raise ValueError("cannot decode")

    with pytest.raises(ChecksumMismatchError) as ei:
        inp.parse(boom)
    assert_names_file(ei.value)
    inp.close()


def test_parse_with_good_crc_reports_corruption_with_checksum_passed(mem: MemoryDirectory) -> None:
    write_file(mem)
    inp = open_file(mem)

    def boom(_payload: memoryview) -> None:
        raise KeyError("missing key")

    with pytest.raises(CorruptIndexError) as ei:
        inp.parse(boom)
    e = ei.value
    assert type(e) is CorruptIndexError
    assert "checksum passed" in str(e)
    assert "KeyError" in str(e)
    assert isinstance(e.__cause__, KeyError)
    assert_names_file(e)
    inp.close()


def test_parse_lets_corrupt_index_errors_through(mem: MemoryDirectory) -> None:
    write_file(mem)
    inp = open_file(mem)
    own = CorruptIndexError("impossible value", NAME)

    def fail(_payload: memoryview) -> None:
        raise own

    with pytest.raises(CorruptIndexError) as ei:
        inp.parse(fail)
    assert ei.value is own
    inp.close()


def test_every_framing_error_is_typed_for_random_damage(mem: MemoryDirectory) -> None:
    """Flip every byte of a small file in turn: each flip raises one of the typed errors, never anything else."""
    good = write_file(mem)
    allowed = (CorruptIndexError, IndexFormatError)
    for i in range(len(good)):
        damaged = bytearray(good)
        damaged[i] ^= 0x01
        overwrite(mem, NAME, bytes(damaged))
        with pytest.raises(allowed) as ei:
            open_file(mem)
        assert getattr(ei.value, "file") == NAME, i
