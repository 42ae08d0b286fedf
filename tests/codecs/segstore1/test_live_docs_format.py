"""SegStore1LiveDocs (``.liv``): exact bitset round trips, count checks, and every kind of file damage."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from segstore.codec.framing import write_footer, write_header
from segstore.errors import (
    ChecksumMismatchError,
    CorruptIndexError,
    IndexFormatError,
    IndexFormatTooNewError,
    IndexFormatTooOldError,
    SegmentIdMismatchError,
    TruncatedFileError,
)
from segstore.index.segment_info import SegmentInfo, new_segment_id
from segstore.store import MemoryDirectory
from segstore.store.directory import Directory
from segstore.testing.corrupt import flip_byte, overwrite, swap_in, truncate
from segstore_codecs.segstore1.live_docs_format import CODEC_NAME, VERSION_CURRENT, SegStore1LiveDocsFormat

FMT = SegStore1LiveDocsFormat()
LIV = "_0_1.liv"


def make_info(max_doc: int = 1000, name: str = "_0") -> SegmentInfo:
    return SegmentInfo(name=name, segment_id=new_segment_id(), max_doc=max_doc, codec="SegStore1")


def random_live(max_doc: int, seed: int = 0, p_del: float = 0.3) -> np.ndarray:
    return np.random.default_rng(seed).random(max_doc) >= p_del


def write_sample(directory: Directory, max_doc: int = 1000, gen: int = 1) -> tuple[SegmentInfo, np.ndarray, int]:
    info = make_info(max_doc)
    live = random_live(max_doc)
    dels = int((~live).sum())
    FMT.write(directory, info, live, dels, gen)
    return info, live, dels


def write_raw_liv(directory: Directory, info: SegmentInfo, payload: bytes, gen: int = 1) -> str:
    """A well-framed .liv (good CRC) with an arbitrary payload."""
    name = f"{info.name}_{np.base_repr(gen, 36).lower()}.liv"
    out = directory.create_output(name)
    write_header(out, CODEC_NAME, VERSION_CURRENT, info.segment_id, np.base_repr(gen, 36).lower())
    out.write(payload)
    write_footer(out)
    out.close()
    return name


# ------------------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("max_doc", [0, 1, 7, 8, 9, 1000, 100_003])
def test_round_trip(directory: Directory, max_doc: int) -> None:
    info = make_info(max_doc)
    live = random_live(max_doc, seed=max_doc)
    dels = int((~live).sum())
    assert FMT.write(directory, info, live, dels, 1) == LIV
    got = FMT.read(directory, info, 1, dels)
    assert got.dtype == np.bool_ and got.shape == (max_doc,)
    np.testing.assert_array_equal(got, live)
    assert not got.flags.writeable
    if max_doc:
        with pytest.raises(ValueError):
            got[0] = not got[0]


@pytest.mark.parametrize("pattern", ["all_live", "all_deleted", "alternating"])
def test_round_trip_patterns(directory: Directory, pattern: str) -> None:
    info = make_info(77)
    live = {"all_live": np.ones(77, bool), "all_deleted": np.zeros(77, bool),
            "alternating": np.arange(77) % 2 == 0}[pattern]
    dels = int((~live).sum())
    FMT.write(directory, info, live, dels, 3)
    np.testing.assert_array_equal(FMT.read(directory, info, 3, dels), live)


def test_file_layout_matches_grammar(directory: Directory) -> None:
    info = make_info(10)
    live = np.array([1, 0, 1, 1, 1, 1, 1, 1, 0, 1], bool)
    FMT.write(directory, info, live, 2, 1)
    data = directory.read_bytes(LIV)
    header = 4 + 1 + len(CODEC_NAME) + 4 + 16 + 1 + 1
    assert data[header:-16] == struct.pack(">II", 10, 2) + bytes([0b11111101, 0b00000010])


def test_generation_goes_into_name_and_suffix(directory: Directory) -> None:
    info = make_info(20)
    live = np.ones(20, bool)
    for gen in (1, 10, 36, 1295):
        name = FMT.write(directory, info, live, 0, gen)
        assert name == f"_0_{np.base_repr(gen, 36).lower()}.liv"
        assert FMT.read(directory, info, gen, 0).all()
    assert sorted(directory.list_all()) == ["_0_1.liv", "_0_10.liv", "_0_a.liv", "_0_zz.liv"]


def test_one_million_docs_is_fast(directory: Directory) -> None:
    import time

    info = make_info(1_000_000)
    live = random_live(1_000_000, seed=1, p_del=0.01)
    dels = int((~live).sum())
    t0 = time.perf_counter()
    FMT.write(directory, info, live, dels, 1)
    got = FMT.read(directory, info, 1, dels)
    assert time.perf_counter() - t0 < 2.0  # vectorised: milliseconds, not a Python loop per doc
    np.testing.assert_array_equal(got, live)


# ------------------------------------------------------------------------------------------ write checks


@pytest.mark.parametrize(
    "live,dels,gen",
    [
        (np.ones(9, bool), 0, 1),  # wrong length
        (np.ones(10, bool), 1, 1),  # wrong del count
        (np.ones(10, np.uint8), 0, 1),  # not bool
        (np.ones((2, 5), bool), 0, 1),  # not 1-d
        (np.ones(10, bool), 0, 0),  # generation 0 means "no file"
        (np.ones(10, bool), 0, -1),
    ],
)
def test_write_rejects_and_leaves_no_file(directory: Directory, live: np.ndarray, dels: int, gen: int) -> None:
    with pytest.raises(ValueError):
        FMT.write(directory, make_info(10), live, dels, gen)
    assert directory.list_all() == []


# ------------------------------------------------------------------------------------------ read checks


def test_caller_del_count_mismatch(directory: Directory) -> None:
    info, _, dels = write_sample(directory)
    with pytest.raises(CorruptIndexError) as ei:
        FMT.read(directory, info, 1, dels + 1)
    assert type(ei.value) is CorruptIndexError and ei.value.file == LIV
    assert f"expected (commit)={dels + 1}" in str(ei.value) and f"actual (file)={dels}" in str(ei.value)


def test_max_doc_mismatch(directory: Directory) -> None:
    info, _, dels = write_sample(directory)
    info.max_doc = 1001
    with pytest.raises(CorruptIndexError) as ei:
        FMT.read(directory, info, 1, dels)
    assert type(ei.value) is CorruptIndexError and ei.value.file == LIV
    assert "expected=1001" in str(ei.value) and "actual=1000" in str(ei.value)


def test_stored_del_count_disagrees_with_bits(directory: Directory) -> None:
    info = make_info(16)
    bits = np.packbits(np.ones(16, bool), bitorder="little").tobytes()
    write_raw_liv(directory, info, struct.pack(">II", 16, 3) + bits)  # says 3 deletes, bitset has 0
    with pytest.raises(CorruptIndexError) as ei:
        FMT.read(directory, info, 1, 3)
    assert type(ei.value) is CorruptIndexError and ei.value.file == LIV
    assert "expected=3 actual=0" in str(ei.value)


@pytest.mark.parametrize(
    "max_doc,payload",
    [
        (16, struct.pack(">II", 16, 0) + b"\xff"),  # one byte short
        (16, struct.pack(">II", 16, 0) + b"\xff\xff\xff"),  # one byte long
        (12, struct.pack(">II", 12, 0) + b"\xff\xff"),  # padding bits after doc 11 set
        (16, struct.pack(">II", 12, 0) + b"\xff\x0f"),  # max_doc differs from the segment's
        (16, b"\x00\x00"),  # no room for the counts
    ],
)
def test_bad_payload_with_good_checksum(directory: Directory, max_doc: int, payload: bytes) -> None:
    info = make_info(max_doc)
    write_raw_liv(directory, info, payload)
    with pytest.raises(CorruptIndexError) as ei:
        FMT.read(directory, info, 1, 0)
    assert type(ei.value) is CorruptIndexError and ei.value.file == LIV


def test_padding_bits_must_be_zero(directory: Directory) -> None:
    info = make_info(12)
    write_raw_liv(directory, info, struct.pack(">II", 12, 0) + b"\xff\xff")
    with pytest.raises(CorruptIndexError, match="padding"):
        FMT.read(directory, info, 1, 0)


def test_missing_file(directory: Directory) -> None:
    with pytest.raises(FileNotFoundError):
        FMT.read(directory, make_info(), 1, 0)


@pytest.mark.parametrize("n_bytes", [1, 50])
def test_truncated(directory: Directory, n_bytes: int) -> None:
    info, _, dels = write_sample(directory)
    truncate(directory, LIV, n_bytes)
    with pytest.raises(TruncatedFileError) as ei:
        FMT.read(directory, info, 1, dels)
    assert type(ei.value) is TruncatedFileError and ei.value.file == LIV


@pytest.mark.parametrize("rel", [0.0, 0.01, 0.5, 1.0])
def test_flipped_payload_byte_is_checksum_mismatch_at_open(directory: Directory, rel: float) -> None:
    info, _, dels = write_sample(directory)
    start = 4 + 1 + len(CODEC_NAME) + 4 + 16 + 1 + 1
    end = directory.file_length(LIV) - 16
    flip_byte(directory, LIV, start + int(rel * (end - 1 - start)))
    with pytest.raises(ChecksumMismatchError) as ei:
        FMT.read(directory, info, 1, dels)
    assert ei.value.file == LIV


def test_swapped_in_from_other_segment(directory: Directory) -> None:
    info, _, dels = write_sample(directory)
    other = MemoryDirectory()
    write_sample(other)  # same name, same contents, different segment id
    swap_in(directory, LIV, other)
    with pytest.raises(SegmentIdMismatchError) as ei:
        FMT.read(directory, info, 1, dels)
    assert ei.value.file == LIV


def test_swapped_in_from_other_generation(directory: Directory) -> None:
    info = make_info(100)
    live = np.ones(100, bool)
    FMT.write(directory, info, live, 0, 1)
    FMT.write(directory, info, live, 0, 2)
    swap_in(directory, "_0_2.liv", directory, "_0_1.liv")  # right segment, wrong generation
    with pytest.raises(SegmentIdMismatchError) as ei:
        FMT.read(directory, info, 2, 0)
    assert ei.value.file == "_0_2.liv"


@pytest.mark.parametrize("delta,error", [(1, IndexFormatTooNewError), (-1, IndexFormatTooOldError)])
def test_header_version_out_of_range(directory: Directory, delta: int, error: type[IndexFormatError]) -> None:
    info, _, dels = write_sample(directory)
    data = bytearray(directory.read_bytes(LIV))
    pos = 5 + len(CODEC_NAME)
    struct.pack_into(">I", data, pos, struct.unpack_from(">I", data, pos)[0] + delta)
    overwrite(directory, LIV, bytes(data))
    with pytest.raises(error) as ei:
        FMT.read(directory, info, 1, dels)
    assert ei.value.file == LIV


def test_name_of_format() -> None:
    assert FMT.name == "SegStore1LiveDocs"
