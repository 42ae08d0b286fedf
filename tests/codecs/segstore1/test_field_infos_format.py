"""SegStore1FieldInfos (``.fnm``): exact round trips, validation, and every kind of file damage."""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
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
from segstore.index.field_infos import VECTOR_DATA_TYPES, FieldInfo, FieldInfos
from segstore.index.segment_info import SegmentInfo, new_segment_id
from segstore.store import MemoryDirectory
from segstore.store.directory import Directory
from segstore.testing.corrupt import flip_byte, overwrite, swap_in, truncate
from segstore_codecs.segstore1.field_infos_format import CODEC_NAME, VERSION_CURRENT, SegStore1FieldInfosFormat

FMT = SegStore1FieldInfosFormat()
FNM = "_0.fnm"


def make_info(name: str = "_0") -> SegmentInfo:
    return SegmentInfo(name=name, segment_id=new_segment_id(), max_doc=10, codec="SegStore1")


def sample_fields() -> FieldInfos:
    return FieldInfos(
        [
            FieldInfo("title_vec", 3, 768, "float", "cosinesimil", {"engine": "faiss", "m": "16", "ef": "100"}),
            FieldInfo("img", 0, 16000, "byte", "l2"),
            FieldInfo("sig", 7, 256, "binary", "hamming", {"engine": "faiss"}),
            FieldInfo("meta", 1),  # no vectors
            FieldInfo("名前", 2, 1, "float", "innerproduct", {"ключ": "значение"}),
        ]
    )


def field_dict(fi: FieldInfo) -> dict[str, Any]:
    return {"name": fi.name, "number": fi.number, "vector_dimension": fi.vector_dimension,
            "vector_data_type": fi.vector_data_type, "vector_space_type": fi.vector_space_type,
            "attributes": fi.attributes}


def write_raw_fnm(directory: Directory, body: Any, segment_id: bytes) -> None:
    """A well-framed .fnm (good CRC) with an arbitrary payload."""
    out = directory.create_output(FNM)
    write_header(out, CODEC_NAME, VERSION_CURRENT, segment_id)
    out.write(body if isinstance(body, bytes) else msgpack.packb(body, use_bin_type=True))
    write_footer(out)
    out.close()


# ------------------------------------------------------------------------------------------ round trip


def test_round_trip(directory: Directory) -> None:
    info = make_info()
    fis = sample_fields()
    assert FMT.write(directory, info, fis) == FNM
    assert directory.list_all() == [FNM]
    got = FMT.read(directory, info)
    assert got == fis
    assert [f.number for f in got] == [0, 1, 2, 3, 7]
    for f in fis:
        g = got.get(f.name)
        assert g is not None and g == f and g.attributes == f.attributes and got.by_number(f.number) == f


def test_round_trip_empty(directory: Directory) -> None:
    info = make_info()
    FMT.write(directory, info, FieldInfos([]))
    got = FMT.read(directory, info)
    assert len(got) == 0 and list(got) == []


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1),
            st.integers(0, 2**31 - 1),
            st.sampled_from(VECTOR_DATA_TYPES),
            st.integers(0, 2000),
            st.sampled_from(["l2", "cosinesimil", "innerproduct", "hamming", "l1", "linf"]),
            st.dictionaries(st.text(), st.text(), max_size=4),
        ),
        max_size=8,
        unique_by=(lambda t: t[0], lambda t: t[1]),
    )
)
def test_round_trip_fuzz(rows: list[tuple[str, int, str, int, str, dict[str, str]]]) -> None:
    directory = MemoryDirectory()
    info = make_info()
    fis = FieldInfos(
        [FieldInfo(n, num, dim * 8 if dt == "binary" else dim, dt, sp, attrs) for n, num, dt, dim, sp, attrs in rows]
    )
    FMT.write(directory, info, fis)
    got = FMT.read(directory, info)
    assert got == fis
    assert [list(f.attributes.items()) for f in got] == [list(f.attributes.items()) for f in fis]


# ------------------------------------------------------------------------------------------ write checks


@pytest.mark.parametrize(
    "fi",
    [
        FieldInfo("v", 0, 16001),
        FieldInfo("v", 0, -1),
        FieldInfo("v", 0, 4, "half"),
        FieldInfo("v", 0, 12, "binary"),
        FieldInfo("v", -1, 4),
        FieldInfo("", 0, 4),
        FieldInfo("v", 0, 4, "float", ""),
        FieldInfo("v", 0, 4, "float", "l2", {"a": 1}),  # type: ignore[dict-item]
    ],
)
def test_write_rejects_invalid_field_and_leaves_no_file(directory: Directory, fi: FieldInfo) -> None:
    with pytest.raises(ValueError):
        FMT.write(directory, make_info(), FieldInfos([fi]))
    assert directory.list_all() == []


# ------------------------------------------------------------------------------------------ damage


@pytest.mark.parametrize("n_bytes", [1, 50])
def test_truncated(directory: Directory, n_bytes: int) -> None:
    info = make_info()
    FMT.write(directory, info, sample_fields())
    truncate(directory, FNM, n_bytes)
    with pytest.raises(TruncatedFileError) as ei:
        FMT.read(directory, info)
    assert type(ei.value) is TruncatedFileError and ei.value.file == FNM


@pytest.mark.parametrize("rel", [0.0, 0.3, 0.7, 1.0])
def test_flipped_payload_byte_is_checksum_mismatch_at_open(directory: Directory, rel: float) -> None:
    info = make_info()
    FMT.write(directory, info, sample_fields())
    start = 4 + 1 + len(CODEC_NAME) + 4 + 16 + 1
    end = directory.file_length(FNM) - 16  # exclusive
    flip_byte(directory, FNM, start + int(rel * (end - 1 - start)))
    with pytest.raises(ChecksumMismatchError) as ei:
        FMT.read(directory, info)
    assert ei.value.file == FNM


def test_swapped_in_from_other_segment(directory: Directory) -> None:
    info = make_info()
    FMT.write(directory, info, sample_fields())
    other = MemoryDirectory()
    FMT.write(other, make_info(), sample_fields())
    swap_in(directory, FNM, other)
    with pytest.raises(SegmentIdMismatchError) as ei:
        FMT.read(directory, info)
    assert ei.value.file == FNM


@pytest.mark.parametrize("delta,error", [(1, IndexFormatTooNewError), (-1, IndexFormatTooOldError)])
def test_header_version_out_of_range(directory: Directory, delta: int, error: type[IndexFormatError]) -> None:
    info = make_info()
    FMT.write(directory, info, sample_fields())
    data = bytearray(directory.read_bytes(FNM))
    pos = 5 + len(CODEC_NAME)
    struct.pack_into(">I", data, pos, struct.unpack_from(">I", data, pos)[0] + delta)
    overwrite(directory, FNM, bytes(data))
    with pytest.raises(error) as ei:
        FMT.read(directory, info)
    assert ei.value.file == FNM


def test_missing_file(directory: Directory) -> None:
    with pytest.raises(FileNotFoundError):
        FMT.read(directory, make_info())


# A good CRC around impossible content: refused as plain CorruptIndexError naming the file.
_V = FieldInfo("v", 0, 8, "float", "l2")
_W = FieldInfo("w", 1, 8, "float", "l2")


@pytest.mark.parametrize(
    "fields",
    [
        [{**field_dict(_V), "vector_dimension": 16001}],
        [{**field_dict(_V), "vector_dimension": -1}],
        [{**field_dict(_V), "vector_dimension": 8.0}],
        [{**field_dict(_V), "vector_data_type": "half"}],
        [{**field_dict(_V), "vector_data_type": "binary", "vector_dimension": 9}],
        [{**field_dict(_V), "number": -1}],
        [{**field_dict(_V), "number": 2**31}],
        [{**field_dict(_V), "name": ""}],
        [{**field_dict(_V), "name": 5}],
        [{**field_dict(_V), "attributes": {"a": None}}],
        [{**field_dict(_V), "extra": 1}],
        [{k: v for k, v in field_dict(_V).items() if k != "vector_space_type"}],
        [field_dict(_V), {**field_dict(_W), "name": "v"}],  # duplicate name
        [field_dict(_V), {**field_dict(_W), "number": 0}],  # duplicate number
        ["not a map"],
    ],
)
def test_impossible_fields_with_good_checksum(directory: Directory, fields: list[Any]) -> None:
    info = make_info()
    write_raw_fnm(directory, {"format_version": VERSION_CURRENT, "fields": fields}, info.segment_id)
    with pytest.raises(CorruptIndexError) as ei:
        FMT.read(directory, info)
    assert type(ei.value) is CorruptIndexError and ei.value.file == FNM


@pytest.mark.parametrize(
    "body",
    [
        b"\xc1",
        b"",
        msgpack.packb({"format_version": VERSION_CURRENT, "fields": []}) + b"\x01",
        {"format_version": VERSION_CURRENT},
        {"format_version": VERSION_CURRENT + 1, "fields": []},
        {"format_version": VERSION_CURRENT, "fields": {}},
        [1, 2],
    ],
)
def test_bad_payload_with_good_checksum(directory: Directory, body: Any) -> None:
    info = make_info()
    write_raw_fnm(directory, body, info.segment_id)
    with pytest.raises(CorruptIndexError) as ei:
        FMT.read(directory, info)
    assert type(ei.value) is CorruptIndexError and ei.value.file == FNM


def test_name_of_format() -> None:
    assert FMT.name == "SegStore1FieldInfos"
