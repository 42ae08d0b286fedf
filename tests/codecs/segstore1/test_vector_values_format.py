"""SegStore1VectorValues: round trips, zero-copy views, writer validation and lifecycle, corruption."""

from __future__ import annotations

import mmap
import struct

import numpy as np
import pytest

from segstore.errors import (
    ChecksumMismatchError,
    CorruptIndexError,
    IndexFormatTooNewError,
    IndexFormatTooOldError,
    SegmentIdMismatchError,
    TruncatedFileError,
)
from segstore.index.field_infos import FieldInfo, FieldInfos
from segstore.index.segment_info import SegmentInfo, new_segment_id
from segstore.index.write_state import SegmentReadState, SegmentWriteState
from segstore.store import Directory, FSDirectory, MemoryDirectory
from segstore.testing import corrupt
from segstore_codecs.segstore1.vector_values_format import SegStore1VectorValuesFormat, read_vector_meta

FMT = SegStore1VectorValuesFormat()
F_FLOAT = FieldInfo("emb", 0, vector_dimension=7)
F_BYTE = FieldInfo("codes", 1, vector_dimension=5, vector_data_type="byte")
F_BIN = FieldInfo("bits", 2, vector_dimension=24, vector_data_type="binary")
F_EMPTY = FieldInfo("unused", 3, vector_dimension=4)
ALL = [F_FLOAT, F_BYTE, F_BIN, F_EMPTY]


def make_state(directory: Directory, fields: list[FieldInfo] = ALL, max_doc: int = 50) -> SegmentWriteState:
    info = SegmentInfo(name="_0", segment_id=new_segment_id(), max_doc=max_doc, codec="SegStore1")
    return SegmentWriteState(directory, info, FieldInfos(fields))


def read_state(w: SegmentWriteState) -> SegmentReadState:
    return SegmentReadState(w.directory, w.segment_info, w.field_infos)


def sample(seed: int = 0, max_doc: int = 50) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    docs_f = np.sort(rng.choice(max_doc, 31, replace=False)).astype(np.int32)  # sparse: 19 docs lack it
    docs_b = np.arange(0, max_doc, 3, dtype=np.int32)
    docs_bin = np.array([1, 2, 40, 49], dtype=np.int32)
    return {
        "emb": (rng.standard_normal((31, 7)).astype(np.float32), docs_f),
        "codes": (rng.integers(-128, 128, (len(docs_b), 5)).astype(np.int8), docs_b),
        "bits": (np.packbits(rng.integers(0, 2, (4, 24)).astype(np.uint8), axis=1), docs_bin),
        "unused": (np.empty((0, 4), np.float32), np.empty(0, np.int32)),
    }


def write_segment(directory: Directory, seed: int = 0) -> tuple[SegmentWriteState, dict]:
    state = make_state(directory)
    data = sample(seed)
    w = FMT.fields_writer(state)
    for fi in ALL:
        w.add_field(fi, *data[fi.name])
    w.finish()
    return state, data


def test_round_trip_all_types_sparse_and_empty(directory: Directory) -> None:
    state, data = write_segment(directory)
    assert state.files == {"_0.vec", "_0.vem"}
    assert sorted(directory.list_all()) == ["_0.vec", "_0.vem"]
    r = FMT.fields_reader(read_state(state))
    assert r.fields() == ["emb", "codes", "bits", "unused"]
    for fi in ALL:
        vv = r.get(fi.name)
        assert vv is not None
        vecs, docs = data[fi.name]
        assert (vv.field, vv.dimension, vv.data_type) == (fi.name, fi.vector_dimension, fi.vector_data_type)
        assert vv.vectors.dtype == vecs.dtype and vv.vectors.shape == vecs.shape
        assert np.array_equal(vv.vectors, vecs)
        assert np.array_equal(vv.ord_to_doc, docs)
        assert vv.size == len(docs)
    assert r.get("nope") is None
    r.check_integrity()
    r.close()
    r.close()  # idempotent


def test_binary_bits_are_msb_first(directory: Directory) -> None:
    fi = FieldInfo("b", 0, vector_dimension=8, vector_data_type="binary")
    state = make_state(directory, [fi], max_doc=1)
    w = FMT.fields_writer(state)
    w.add_field(fi, np.packbits(np.array([[1, 0, 0, 0, 0, 0, 0, 1]], np.uint8), axis=1), np.array([0]))
    w.finish()
    vv = FMT.fields_reader(read_state(state)).get("b")
    assert vv is not None and vv.vectors.tolist() == [[0b10000001]]
    assert np.array_equal(np.unpackbits(vv.vectors, axis=1), [[1, 0, 0, 0, 0, 0, 0, 1]])


def test_doc_to_ord_with_missing_docs(directory: Directory) -> None:
    state, data = write_segment(directory)
    vv = FMT.fields_reader(read_state(state)).get("emb")
    assert vv is not None
    docs = data["emb"][1]
    everything = np.arange(50)
    expected = np.full(50, -1)
    expected[docs] = np.arange(len(docs))
    assert np.array_equal(vv.doc_to_ord(everything), expected)
    empty = FMT.fields_reader(read_state(state)).get("unused")
    assert empty is not None and empty.size == 0 and empty.vectors.shape == (0, 4)
    assert np.array_equal(empty.doc_to_ord(np.array([0, 7])), [-1, -1])


def _owner(arr: np.ndarray) -> object:
    base: object = arr
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return base.obj if isinstance(base, memoryview) else base


def test_views_are_read_only_and_zero_copy(directory: Directory) -> None:
    state, _ = write_segment(directory)
    r = FMT.fields_reader(read_state(state))
    for name in r.fields():
        vv = r.get(name)
        assert vv is not None
        for arr in (vv.vectors, vv.ord_to_doc):
            assert not arr.flags.writeable and not arr.flags.owndata
            with pytest.raises(ValueError):
                arr[...] = 0
            if isinstance(directory, FSDirectory):
                assert isinstance(_owner(arr), mmap.mmap), "vectors must be views on the file's memory map"
            if arr.size:
                assert arr.ctypes.data % arr.dtype.itemsize == 0
    # two fields' arrays are views on the same mapped buffer
    a, b = r.get("emb"), r.get("codes")
    assert a is not None and b is not None and _owner(a.vectors) is _owner(b.ord_to_doc)


def test_writer_validates_input(directory: Directory) -> None:
    state = make_state(directory)
    w = FMT.fields_writer(state)
    vecs, docs = sample()["emb"]
    with pytest.raises(ValueError, match="float32"):
        w.add_field(F_FLOAT, vecs.astype(np.float64), docs)
    with pytest.raises(ValueError, match="shape"):
        w.add_field(F_FLOAT, vecs[:, :6], docs)
    with pytest.raises(ValueError, match="strictly increasing"):
        w.add_field(F_FLOAT, vecs, docs[::-1].copy())
    with pytest.raises(ValueError, match="strictly increasing"):
        w.add_field(F_FLOAT, vecs[:2], np.array([3, 3]))
    with pytest.raises(ValueError, match=r"\[0, 50\)"):
        w.add_field(F_FLOAT, vecs[:2], np.array([3, 50]))
    with pytest.raises(ValueError, match=r"\[0, 50\)"):
        w.add_field(F_FLOAT, vecs[:2], np.array([-1, 3]))
    with pytest.raises(ValueError, match="one doc per vector"):
        w.add_field(F_FLOAT, vecs, docs[:-1])
    with pytest.raises(ValueError, match="int8"):
        w.add_field(F_BYTE, np.zeros((1, 5), np.uint8), np.array([0]))
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        w.add_field(F_BIN, np.zeros((1, 24), np.uint8), np.array([0]))
    with pytest.raises(ValueError, match="not a vector field"):
        w.add_field(FieldInfo("other", 9, vector_dimension=7), vecs, docs)
    w.add_field(F_FLOAT, vecs, docs)  # validation failures left the writer usable
    with pytest.raises(ValueError, match="already added"):
        w.add_field(F_FLOAT, vecs, docs)
    w.finish()
    assert state.files == {"_0.vec", "_0.vem"}


def test_writer_abort_leaves_no_files(directory: Directory) -> None:
    state = make_state(directory)
    w = FMT.fields_writer(state)
    w.add_field(F_FLOAT, *sample()["emb"])
    w.abort()
    w.abort()
    assert directory.list_all() == [] and state.files == set()
    if isinstance(directory, FSDirectory):
        assert directory.list_temp_files() == []
    FMT.fields_writer(make_state(directory)).abort()  # unused writer
    assert directory.list_all() == []


def test_no_fields_segment(directory: Directory) -> None:
    state = make_state(directory)
    w = FMT.fields_writer(state)
    w.finish()
    w.finish()  # idempotent
    assert state.files == {"_0.vec", "_0.vem"}
    assert FMT.fields_reader(read_state(state)).fields() == []


# ------------------------------------------------------------------------------------------ corruption


def _open(state: SegmentWriteState):  # type: ignore[no-untyped-def]
    return FMT.fields_reader(read_state(state))


@pytest.mark.parametrize("name", ["_0.vem", "_0.vec"])
@pytest.mark.parametrize("n", [1, 50])
def test_truncation_detected_at_open(directory: Directory, name: str, n: int) -> None:
    state, _ = write_segment(directory)
    corrupt.truncate(directory, name, n)
    with pytest.raises(TruncatedFileError) as ei:
        _open(state)
    assert type(ei.value) is TruncatedFileError and ei.value.file == name


def test_flipped_metadata_byte_detected_at_open(directory: Directory) -> None:
    state, _ = write_segment(directory)
    corrupt.flip_byte(directory, "_0.vem", offset=directory.file_length("_0.vem") - 40)
    with pytest.raises(ChecksumMismatchError) as ei:
        _open(state)
    assert type(ei.value) is ChecksumMismatchError and ei.value.file == "_0.vem"


def test_flipped_vector_byte_detected_by_check_integrity(directory: Directory) -> None:
    state, data = write_segment(directory)
    corrupt.flip_byte(directory, "_0.vec", offset=128 + 5)  # inside the first field's float32 rows
    r = _open(state)  # cheap checks only on open
    vv = r.get("emb")
    assert vv is not None and not np.array_equal(vv.vectors, data["emb"][0])
    with pytest.raises(ChecksumMismatchError) as ei:
        r.check_integrity()
    assert type(ei.value) is ChecksumMismatchError and ei.value.file == "_0.vec"


def test_flipped_ord_byte_detected_at_open(directory: Directory) -> None:
    """A damaged ord->doc map fails the open-time sanity check, which then lets the CRC name the cause."""
    state, _ = write_segment(directory)
    ords_offset = read_vector_meta(read_state(state))[0]["codes"].ords_offset
    corrupt.flip_byte(directory, "_0.vec", offset=ords_offset + 4 + 3)  # high byte of the second doc id
    with pytest.raises(ChecksumMismatchError) as ei:
        _open(state)
    assert ei.value.file == "_0.vec"


def test_impossible_metadata_with_valid_crc_is_corrupt(directory: Directory) -> None:
    """A CRC-valid .vem that lies (e.g. a count that does not fit the file) -> CorruptIndexError on .vem."""
    import msgpack

    from segstore.codec.framing import FramedInput, write_footer, write_header

    state, _ = write_segment(directory)
    with FramedInput(directory, "_0.vem", "SegStore1VectorValuesMeta", 1, 1, None) as inp:
        doc = msgpack.unpackb(inp.payload)
    doc["fields"][0]["count"] += 1
    other = MemoryDirectory()
    out = other.create_output("_0.vem")
    write_header(out, "SegStore1VectorValuesMeta", 1, state.segment_info.segment_id)
    out.write(msgpack.packb(doc))
    write_footer(out)
    out.close()
    corrupt.swap_in(directory, "_0.vem", other)
    with pytest.raises(CorruptIndexError) as ei:
        _open(state)
    assert type(ei.value) is CorruptIndexError and ei.value.file == "_0.vem"
    assert "vectors_length" in str(ei.value)


@pytest.mark.parametrize("name", ["_0.vem", "_0.vec"])
def test_file_from_another_segment(directory: Directory, name: str) -> None:
    state, _ = write_segment(directory)
    other = MemoryDirectory()
    write_segment(other, seed=1)  # same shapes, same names, another segment id
    corrupt.swap_in(directory, name, other)
    with pytest.raises(SegmentIdMismatchError) as ei:
        _open(state)
    assert type(ei.value) is SegmentIdMismatchError and ei.value.file == name


def _bump_version(directory: Directory, name: str, codec: str, delta: int) -> None:
    data = bytearray(directory.read_bytes(name))
    pos = 5 + len(codec)
    (v,) = struct.unpack_from(">I", data, pos)
    struct.pack_into(">I", data, pos, v + delta)
    corrupt.overwrite(directory, name, bytes(data))


@pytest.mark.parametrize("name,codec", [("_0.vem", "SegStore1VectorValuesMeta"),
                                        ("_0.vec", "SegStore1VectorValuesData")])
@pytest.mark.parametrize("delta,error", [(1, IndexFormatTooNewError), (-1, IndexFormatTooOldError)])
def test_header_version(directory: Directory, name: str, codec: str, delta: int, error: type) -> None:
    state, _ = write_segment(directory)
    _bump_version(directory, name, codec, delta)
    with pytest.raises(error) as ei:
        _open(state)
    assert type(ei.value) is error and ei.value.file == name
