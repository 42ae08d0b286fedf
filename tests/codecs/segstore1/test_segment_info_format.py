"""SegStore1SegmentInfo (``.si``): exact round trips, validation, and every kind of file damage."""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from segstore_codecs.segstore1.segment_info_format import (
    CODEC_NAME,
    VERSION_CURRENT,
    SegStore1SegmentInfoFormat,
)

FMT = SegStore1SegmentInfoFormat()
SI = "_0.si"


def make_info(name: str = "_0", max_doc: int = 42, **kw: Any) -> SegmentInfo:
    kw.setdefault("files", [f"{name}.fdt", f"{name}.fdx", f"{name}.fnm", f"{name}_vec.hnsw"])
    kw.setdefault("attributes", {"mode": "best_speed"})
    kw.setdefault("diagnostics", {"source": "flush", "os": "linux"})
    return SegmentInfo(name=name, segment_id=new_segment_id(), max_doc=max_doc, codec="SegStore1", **kw)


def write_raw_si(directory: Directory, body: Any, segment_id: bytes, name: str = SI) -> None:
    """Publish a well-framed .si (good CRC) with an arbitrary payload, to test validation after the CRC."""
    out = directory.create_output(name)
    write_header(out, CODEC_NAME, VERSION_CURRENT, segment_id)
    out.write(body if isinstance(body, bytes) else msgpack.packb(body, use_bin_type=True))
    write_footer(out)
    out.close()


def good_body(info: SegmentInfo) -> dict[str, Any]:
    return {
        "format_version": VERSION_CURRENT, "name": info.name, "max_doc": info.max_doc, "codec": info.codec,
        "attributes": info.attributes, "diagnostics": info.diagnostics, "files": info.files,
    }


# ------------------------------------------------------------------------------------------ round trip


def test_round_trip(directory: Directory) -> None:
    info = make_info(attributes={"ü": "日本", "": ""}, diagnostics={"k": "v" * 1000})
    files_before = list(info.files)
    name = FMT.write(directory, info)
    assert name == SI
    assert info.files == files_before  # the format does not add its own file
    assert directory.list_all() == [SI]
    assert FMT.read(directory, "_0", info.segment_id) == info


@pytest.mark.parametrize("max_doc", [0, 1, 2**31 - 1])
def test_max_doc_bounds_round_trip(directory: Directory, max_doc: int) -> None:
    info = make_info(max_doc=max_doc, files=[], attributes={}, diagnostics={})
    FMT.write(directory, info)
    got = FMT.read(directory, "_0", info.segment_id)
    assert got == info and got.max_doc == max_doc and got.files == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    attrs=st.dictionaries(st.text(), st.text(), max_size=5),
    diags=st.dictionaries(st.text(), st.text(), max_size=5),
    suffixes=st.lists(st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True), unique=True, max_size=6),
    max_doc=st.integers(0, 2**31 - 1),
)
def test_round_trip_fuzz(attrs: dict[str, str], diags: dict[str, str], suffixes: list[str], max_doc: int) -> None:
    directory = MemoryDirectory()
    info = make_info(max_doc=max_doc, attributes=attrs, diagnostics=diags, files=[f"_0_{s}.vec" for s in suffixes])
    FMT.write(directory, info)
    got = FMT.read(directory, "_0", info.segment_id)
    assert got == info
    assert list(got.attributes) == list(attrs)  # order preserved too


# ------------------------------------------------------------------------------------------ write checks


@pytest.mark.parametrize(
    "change",
    [
        {"max_doc": -1},
        {"max_doc": 2**31},
        {"files": ["_1.fdt"]},  # another segment's file
        {"files": ["_0.fdt", "_0.fdt"]},
        {"attributes": {"a": 1}},
        {"diagnostics": {1: "a"}},
        {"codec": ""},
    ],
)
def test_write_rejects_impossible_info_and_leaves_no_file(directory: Directory, change: dict[str, Any]) -> None:
    info = make_info()
    for k, v in change.items():
        setattr(info, k, v)
    with pytest.raises(ValueError):
        FMT.write(directory, info)
    assert directory.list_all() == []


def test_files_may_list_the_si_itself(directory: Directory) -> None:
    info = make_info(files=["_0.fdt", "_0.fdx", SI])  # what the segment writer does
    FMT.write(directory, info)
    assert FMT.read(directory, "_0", info.segment_id).files == ["_0.fdt", "_0.fdx", SI]


def test_write_once(directory: Directory) -> None:
    info = make_info()
    FMT.write(directory, info)
    with pytest.raises(FileExistsError):
        FMT.write(directory, info)


# ------------------------------------------------------------------------------------------ read checks


def test_missing_file_raises_file_not_found(directory: Directory) -> None:
    with pytest.raises(FileNotFoundError):
        FMT.read(directory, "_0", new_segment_id())


def test_wrong_segment_id_requested(directory: Directory) -> None:
    FMT.write(directory, make_info())
    with pytest.raises(SegmentIdMismatchError) as ei:
        FMT.read(directory, "_0", new_segment_id())
    assert ei.value.file == SI


@pytest.mark.parametrize("n_bytes", [1, 50])
def test_truncated(directory: Directory, n_bytes: int) -> None:
    info = make_info()
    FMT.write(directory, info)
    truncate(directory, SI, n_bytes)
    with pytest.raises(TruncatedFileError) as ei:
        FMT.read(directory, "_0", info.segment_id)
    assert type(ei.value) is TruncatedFileError and ei.value.file == SI


@pytest.mark.parametrize("where", ["payload_start", "payload_mid", "payload_end", "checksum"])
def test_flipped_byte_is_checksum_mismatch_at_open(directory: Directory, where: str) -> None:
    info = make_info()
    FMT.write(directory, info)
    size = directory.file_length(SI)
    header = 4 + 1 + len(CODEC_NAME) + 4 + 16 + 1
    offset = {"payload_start": header, "payload_mid": (header + size - 16) // 2,
              "payload_end": size - 17, "checksum": size - 1}[where]
    flip_byte(directory, SI, offset)
    with pytest.raises(ChecksumMismatchError) as ei:
        FMT.read(directory, "_0", info.segment_id)
    assert ei.value.file == SI


def test_swapped_in_from_other_segment(directory: Directory) -> None:
    info = make_info()
    FMT.write(directory, info)
    other = MemoryDirectory()
    FMT.write(other, make_info())  # same name "_0", different segment id
    swap_in(directory, SI, other)
    with pytest.raises(SegmentIdMismatchError) as ei:
        FMT.read(directory, "_0", info.segment_id)
    assert ei.value.file == SI


@pytest.mark.parametrize("delta,error", [(1, IndexFormatTooNewError), (-1, IndexFormatTooOldError)])
def test_header_version_out_of_range(directory: Directory, delta: int, error: type[IndexFormatError]) -> None:
    info = make_info()
    FMT.write(directory, info)
    data = bytearray(directory.read_bytes(SI))
    pos = 5 + len(CODEC_NAME)
    (version,) = struct.unpack_from(">I", data, pos)
    assert version == VERSION_CURRENT
    struct.pack_into(">I", data, pos, version + delta)
    overwrite(directory, SI, bytes(data))
    with pytest.raises(error) as ei:
        FMT.read(directory, "_0", info.segment_id)
    assert ei.value.file == SI and ei.value.version == version + delta


# A good CRC around an impossible payload: a bug wrote it; refuse it as plain CorruptIndexError.
@pytest.mark.parametrize(
    "patch",
    [
        {"max_doc": -1},
        {"max_doc": 2**31},
        {"max_doc": "42"},
        {"max_doc": True},
        {"name": "_1"},
        {"codec": 5},
        {"files": "_0.fdt"},
        {"files": [1]},
        {"files": ["_7.fdt"]},
        {"attributes": {"a": 1}},
        {"diagnostics": ["x"]},
        {"format_version": VERSION_CURRENT + 1},
        {"extra": 1},
        {"files": None, "drop": "files"},
    ],
)
def test_impossible_values_with_good_checksum(directory: Directory, patch: dict[str, Any]) -> None:
    info = make_info()
    body = good_body(info)
    drop = patch.pop("drop", None)
    body.update(patch)
    if drop:
        del body[drop]
    write_raw_si(directory, body, info.segment_id)
    with pytest.raises(CorruptIndexError) as ei:
        FMT.read(directory, "_0", info.segment_id)
    assert type(ei.value) is CorruptIndexError and ei.value.file == SI


@pytest.mark.parametrize("payload", [b"", b"\xc1", b"\x93\x01\x02\x03", msgpack.packb({"a": 1}) + b"\x00"])
def test_unparseable_payload_with_good_checksum(directory: Directory, payload: bytes) -> None:
    info = make_info()
    write_raw_si(directory, payload, info.segment_id)
    with pytest.raises(CorruptIndexError) as ei:
        FMT.read(directory, "_0", info.segment_id)
    assert type(ei.value) is CorruptIndexError and ei.value.file == SI


def test_unparseable_payload_reports_checksum_passed(directory: Directory) -> None:
    info = make_info()
    write_raw_si(directory, b"\xc1", info.segment_id)  # 0xc1 is never valid msgpack
    with pytest.raises(CorruptIndexError, match="checksum passed"):
        FMT.read(directory, "_0", info.segment_id)


def test_name_of_format() -> None:
    assert FMT.name == "SegStore1SegmentInfo"
