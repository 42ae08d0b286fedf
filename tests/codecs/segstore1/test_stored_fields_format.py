"""SegStore1StoredFields (``.fdt`` + ``.fdx``): exact round trips (fuzzed), blocks, lifecycle, concurrency and
every kind of file damage."""

from __future__ import annotations

import math
import os
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segstore.codec.framing import FramedInput, write_footer, write_header
from segstore.errors import (AlreadyClosedError, ChecksumMismatchError, CorruptIndexError, IndexFormatError,
                             IndexFormatTooNewError, IndexFormatTooOldError, SegmentIdMismatchError,
                             TruncatedFileError)
from segstore.index.field_infos import FieldInfos
from segstore.index.segment_info import SegmentInfo, new_segment_id
from segstore.index.write_state import SegmentReadState, SegmentWriteState
from segstore.store import MemoryDirectory
from segstore.store.directory import Directory
from segstore.testing.corrupt import overwrite, swap_in, truncate
from segstore_codecs.segstore1.stored_fields_format import (DATA_CODEC, INDEX_CODEC, VERSION_CURRENT,
                                                             SegStore1StoredFieldsFormat,
                                                             SegStore1StoredFieldsReader, _Index, _decode_index)

FDT, FDX = "_0.fdt", "_0.fdx"
FMT = SegStore1StoredFieldsFormat()
DATA_START = 4 + 1 + len(DATA_CODEC) + 4 + 16 + 1


def new_state(directory: Directory, max_doc: int, name: str = "_0") -> SegmentWriteState:
    info = SegmentInfo(name=name, segment_id=new_segment_id(), max_doc=max_doc, codec="SegStore1")
    return SegmentWriteState(directory, info, FieldInfos([]))


def write_segment(
    directory: Directory, docs: list[dict[str, Any]], fmt: SegStore1StoredFieldsFormat = FMT, name: str = "_0"
) -> tuple[SegmentInfo, SegmentWriteState]:
    state = new_state(directory, len(docs), name)
    info = state.segment_info
    w = fmt.fields_writer(state)
    for d in docs:
        w.write_document(d)
    w.finish(len(docs))
    return info, state


def open_reader(directory: Directory, info: SegmentInfo) -> SegStore1StoredFieldsReader:
    return FMT.fields_reader(SegmentReadState(directory, info, FieldInfos([])))


def read_index(directory: Directory) -> _Index:
    with FramedInput(directory, FDX, INDEX_CODEC, 1, VERSION_CURRENT, None, verify_checksum=True) as f:
        return _decode_index(f.payload, FDX)


def block_counts(directory: Directory) -> list[int]:
    return read_index(directory).count.tolist()


def packed(v: Any) -> bytes:
    return msgpack.packb(v, use_bin_type=True)


def sample_docs(n: int = 300) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    return [{"_id": f"doc-{i}", "n": i, "text": "ß" * int(rng.integers(0, 300)), "blob": rng.bytes(i % 50),
             "tags": ["a", i, None], "nested": {"x": {"y": [1.5, -0.0]}}} for i in range(n)]


def assert_all_read(directory: Directory, info: SegmentInfo, docs: list[dict[str, Any]]) -> None:
    r = open_reader(directory, info)
    try:
        for i, d in enumerate(docs):
            assert packed(r.document(i)) == packed(d)
            assert r.raw_document(i) == packed(d)
        assert list(r.raw_documents(range(len(docs)))) == [packed(d) for d in docs]
        r.check_integrity()
    finally:
        r.close()


# ------------------------------------------------------------------------------------------ round trips


def test_round_trip_types_and_key_order(directory: Directory) -> None:
    doc = {"z": 1, "a": "str", "m": b"\x00bytes\xff", "neg0": -0.0, "tiny": 1e-300, "big": 2**63 - 1,
           "small": -(2**63), "u64": 2**64 - 1, "none": None, "t": True, "f": False, "f32": 1.0,
           "uni": "日本語 🎉 \u0000", "deep": {"l": [[], {}, [b"", ""]], "k": {"é": [1, "1", b"1"]}}, "": ""}
    info, _ = write_segment(directory, [doc, {}])
    r = open_reader(directory, info)
    got = r.document(0)
    assert got == doc and list(got) == list(doc)
    assert type(got["m"]) is bytes and type(got["a"]) is str and type(got["t"]) is bool
    assert type(got["f32"]) is float and type(got["big"]) is int
    assert math.copysign(1.0, got["neg0"]) == -1.0 and got["tiny"] == 1e-300
    assert got["deep"]["k"]["é"] == [1, "1", b"1"]
    assert r.document(1) == {}
    assert r.num_docs == 2
    r.close()


_scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=True)
    | st.text() | st.binary(max_size=64) | st.sampled_from([-0.0, 1e-300, 2**63 - 1, -1])
)
_values = st.recursive(
    _scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12
)
_docs = st.lists(st.dictionaries(st.text(max_size=10), _values, max_size=6), max_size=40)


@settings(max_examples=60, deadline=None)
@given(docs=_docs, block_bytes=st.sampled_from([1, 100, 16 * 1024]), block_docs=st.sampled_from([1, 3, 128]))
def test_round_trip_fuzz(docs: list[dict[str, Any]], block_bytes: int, block_docs: int) -> None:
    directory = MemoryDirectory()
    fmt = SegStore1StoredFieldsFormat(block_bytes=block_bytes, block_docs=block_docs)
    info, _ = write_segment(directory, docs, fmt)
    # packb equality is exact: float bits (NaN, -0.0), str vs bytes, int vs float, key order.
    assert_all_read(directory, info, docs)
    if docs:
        assert max(block_counts(directory)) <= block_docs


def test_doc_larger_than_a_block_gets_its_own_block(directory: Directory) -> None:
    big = {"blob": os.urandom(100_000)}  # incompressible, 6x the 16 KiB threshold
    docs: list[dict[str, Any]] = [{"i": 0}, big, {"i": 2}]
    info, _ = write_segment(directory, docs)
    assert block_counts(directory) == [2, 1]  # the block is cut right after the big doc
    assert_all_read(directory, info, docs)


def test_thousand_empty_docs(directory: Directory) -> None:
    docs: list[dict[str, Any]] = [{}] * 1000
    info, _ = write_segment(directory, docs)
    assert block_counts(directory) == [128] * 7 + [104]
    assert_all_read(directory, info, docs)


def test_block_cut_at_16_kib(directory: Directory) -> None:
    doc = {"p": "x" * 1000}
    size = len(packed(doc))
    per_block = -(-16 * 1024 // size)  # the first count whose total reaches 16 KiB
    info, _ = write_segment(directory, [doc] * (3 * per_block + 1))
    assert block_counts(directory) == [per_block] * 3 + [1]


def test_empty_segment(directory: Directory) -> None:
    info, state = write_segment(directory, [])
    assert state.files == {FDT, FDX} and block_counts(directory) == []
    r = open_reader(directory, info)
    assert r.num_docs == 0 and list(r.raw_documents([])) == []
    with pytest.raises(IndexError):
        r.document(0)
    r.check_integrity()
    r.close()


def test_write_raw_copies_bytes_unchanged(directory: Directory) -> None:
    docs = sample_docs(50)
    info, _ = write_segment(directory, docs)
    src = open_reader(directory, info)
    state = new_state(directory, 25, "_1")
    merged = state.segment_info
    w = FMT.fields_writer(state)
    raws = list(src.raw_documents(range(0, 50, 2)))
    for raw in raws:
        w.write_raw(raw)
    w.finish(25)
    dst = open_reader(directory, merged)
    assert [dst.raw_document(i) for i in range(25)] == raws == [packed(d) for d in docs[::2]]
    assert dst.document(3) == docs[6]


def test_block_decompressed_once(directory: Directory) -> None:
    docs = sample_docs(300)
    info, _ = write_segment(directory, docs)
    n_blocks = len(block_counts(directory))
    r = open_reader(directory, info)
    calls: list[int] = []
    real: Callable[..., Any] = r._decode_block

    def counting(fdt: FramedInput, b: int) -> Any:
        calls.append(b)
        return real(fdt, b)

    r._decode_block = counting  # type: ignore[method-assign]
    assert len(list(r.raw_documents(range(300)))) == 300
    assert sorted(calls) == list(range(n_blocks))
    calls.clear()
    assert r.document(10) == docs[10] and r.document(11) == docs[11] and r.document(10) == docs[10]
    assert len(calls) <= 1  # neighbours share the cached block


def test_out_of_range_and_bad_doc_ids(directory: Directory) -> None:
    info, _ = write_segment(directory, sample_docs(5))
    r = open_reader(directory, info)
    for bad in (-1, 5, 2**40):
        with pytest.raises(IndexError):
            r.document(bad)
        with pytest.raises(IndexError):
            r.raw_document(bad)
    with pytest.raises(IndexError):
        list(r.raw_documents([0, 5]))
    with pytest.raises(TypeError):
        r.document(1.0)  # type: ignore[arg-type]


def test_concurrent_reads(directory: Directory) -> None:
    docs = sample_docs(500)
    info, _ = write_segment(directory, docs, SegStore1StoredFieldsFormat(block_docs=16))
    expected = [packed(d) for d in docs]
    r = open_reader(directory, info)
    barrier = threading.Barrier(5)

    def work(seed: int) -> int:
        barrier.wait()  # start together so the shared block cache is contended
        docs_read = np.random.default_rng(seed).integers(0, 500, 1500).tolist()
        for doc in docs_read:
            assert packed(r.document(doc)) == expected[doc]
        assert list(r.raw_documents(range(seed, 500, 7))) == expected[seed:500:7]
        return len(docs_read)

    with ThreadPoolExecutor(5) as pool:
        assert list(pool.map(work, range(5))) == [1500] * 5  # map re-raises any thread's failure


# ------------------------------------------------------------------------------------------ lifecycle


def test_abort_leaves_no_file(directory: Directory) -> None:
    state = new_state(directory, 300)
    w = FMT.fields_writer(state)
    for d in sample_docs(300):  # enough to have flushed blocks already
        w.write_document(d)
    w.abort()
    w.abort()  # idempotent
    assert directory.list_all() == [] and state.files == set()
    if hasattr(directory, "path"):
        assert os.listdir(directory.path) == []  # no temp file either
    with pytest.raises(AlreadyClosedError):
        w.write_document({})
    with pytest.raises(AlreadyClosedError):
        w.finish(300)


def test_finish_publishes_state_files_idempotently_and_abort_after_finish_keeps_them(directory: Directory) -> None:
    state = new_state(directory, 2)
    w = FMT.fields_writer(state)
    w.write_document({"a": 1})
    w.write_raw(packed({"a": 2}))
    w.finish(2)
    assert set(directory.list_all()) == state.files == {FDT, FDX}  # exactly what it publishes
    w.finish(2)
    w.abort()
    assert set(directory.list_all()) == state.files == {FDT, FDX}
    assert open_reader(directory, state.segment_info).document(1) == {"a": 2}


def test_finish_with_wrong_count_leaves_no_file(directory: Directory) -> None:
    state = new_state(directory, 3)
    w = FMT.fields_writer(state)
    w.write_document({"a": 1})
    with pytest.raises(ValueError, match="expected=3 actual"):
        w.finish(3)
    assert directory.list_all() == [] and state.files == set()


def test_write_document_rejects_non_str_keys(directory: Directory) -> None:
    w = FMT.fields_writer(new_state(directory, 0))
    with pytest.raises(TypeError):
        w.write_document({1: "a"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        w.write_document(["a"])  # type: ignore[arg-type]
    w.abort()


def test_reader_close_idempotent(directory: Directory) -> None:
    info, _ = write_segment(directory, sample_docs(3))
    r = open_reader(directory, info)
    r.close()
    r.close()
    with pytest.raises(AlreadyClosedError):
        r.document(0)
    with pytest.raises(AlreadyClosedError):
        r.check_integrity()


def test_num_docs_must_match_max_doc(directory: Directory) -> None:
    info, _ = write_segment(directory, sample_docs(3))
    info.max_doc = 4
    with pytest.raises(CorruptIndexError) as ei:
        open_reader(directory, info)
    assert type(ei.value) is CorruptIndexError and ei.value.file == FDX and "expected (max_doc)=4" in str(ei.value)


# ------------------------------------------------------------------------------------------ damage


@pytest.mark.parametrize("name", [FDT, FDX])
@pytest.mark.parametrize("n_bytes", [1, 50])
def test_truncated(directory: Directory, name: str, n_bytes: int) -> None:
    info, _ = write_segment(directory, sample_docs(300))
    truncate(directory, name, n_bytes)
    with pytest.raises(TruncatedFileError) as ei:
        open_reader(directory, info)
    assert type(ei.value) is TruncatedFileError and ei.value.file == name


@pytest.mark.parametrize("rel", [0.0, 0.5, 1.0])
def test_fdx_flip_is_checksum_mismatch_at_open(directory: Directory, rel: float) -> None:
    info, _ = write_segment(directory, sample_docs(300))
    start = 4 + 1 + len(INDEX_CODEC) + 4 + 16 + 1
    end = directory.file_length(FDX) - 16
    data = bytearray(directory.read_bytes(FDX))
    data[start + int(rel * (end - 1 - start))] ^= 0x10
    overwrite(directory, FDX, bytes(data))
    with pytest.raises(ChecksumMismatchError) as ei:
        open_reader(directory, info)
    assert ei.value.file == FDX


@pytest.mark.parametrize("where", ["block_start", "frame_header", "block_middle", "block_end", "last_byte"])
def test_fdt_flip_in_a_block(directory: Directory, where: str) -> None:
    docs = sample_docs(300)
    info, _ = write_segment(directory, docs)
    counts = block_counts(directory)
    bounds = np.cumsum([0, *counts])
    fdt_len = directory.file_length(FDT)
    # Damage block 1 (or the last block): every offset is inside the block region of the .fdt.
    idx = read_index(directory)
    b = len(counts) - 1 if where == "last_byte" else 1
    off, clen = int(idx.offset[b]), int(idx.comp_len[b])
    pos = {"block_start": off, "frame_header": off + 5, "block_middle": off + clen // 2,
           "block_end": off + clen - 1, "last_byte": fdt_len - 17}[where]
    data = bytearray(directory.read_bytes(FDT))
    data[pos] ^= 0x04
    overwrite(directory, FDT, bytes(data))
    r = open_reader(directory, info)  # cheap checks only: opens fine
    with pytest.raises(ChecksumMismatchError) as ei:
        r.check_integrity()
    assert ei.value.file == FDT
    for doc in range(bounds[b], bounds[b + 1]):
        with pytest.raises(ChecksumMismatchError):
            r.document(doc)
    with pytest.raises(ChecksumMismatchError):
        list(r.raw_documents(range(bounds[b], bounds[b + 1])))
    for doc in range(bounds[b]):  # other blocks still read correctly
        assert r.document(doc) == docs[doc]


def test_fdt_every_single_bit_flip_is_detected_never_wrong_data() -> None:
    directory = MemoryDirectory()
    docs = [{"i": i, "s": "v" * i} for i in range(12)]
    info, _ = write_segment(directory, docs, SegStore1StoredFieldsFormat(block_docs=4))
    good = directory.read_bytes(FDT)
    flips = noticed_on_read = 0
    for pos in range(DATA_START, len(good) - 16):
        for bit in range(8):
            data = bytearray(good)
            data[pos] ^= 1 << bit
            overwrite(directory, FDT, bytes(data))
            r = open_reader(directory, info)
            with pytest.raises(ChecksumMismatchError):
                r.check_integrity()
            failed = 0
            for i, d in enumerate(docs):
                try:
                    assert r.document(i) == d  # either the right document ...
                except ChecksumMismatchError:  # ... or the typed error; never wrong data or another exception
                    failed += 1
            flips += 1
            noticed_on_read += failed > 0
            r.close()
    # A few bits change nothing zstd reads (e.g. the frame descriptor's unused bit): those documents are
    # still exactly right and only check_integrity() sees the damage. Everything else fails on read.
    assert noticed_on_read >= 0.97 * flips


def _craft_fdx(directory: Directory, info: SegmentInfo, head: tuple[int, int, int], arrays: list[list[int]]) -> None:
    directory.delete_file(FDX)
    out = directory.create_output(FDX)
    write_header(out, INDEX_CODEC, VERSION_CURRENT, info.segment_id)
    out.write(struct.pack(">IIQ", *head))
    for vals, dt in zip(arrays, ("<i4", "<i8", "<i4", "<i4")):
        out.write(np.asarray(vals, dtype=dt).tobytes())
    write_footer(out)
    out.close()


@pytest.mark.parametrize("mutation", ["first_doc_not_zero", "gap", "docs_not_increasing", "short_end",
                                      "num_docs_zero_with_blocks", "length", "raw_len_small"])
def test_fdx_impossible_layout_with_good_checksum(directory: Directory, mutation: str) -> None:
    info, _ = write_segment(directory, sample_docs(300))
    idx = read_index(directory)
    head = [idx.num_docs, len(idx.first_doc), idx.fdt_length]
    fd, off, cl, rl = (a.tolist() for a in (idx.first_doc, idx.offset, idx.comp_len, idx.raw_len))
    target, i, value = {"first_doc_not_zero": (fd, 0, 1), "gap": (off, 1, off[1] + 1),
                        "docs_not_increasing": (fd, 2, fd[1]), "short_end": (cl, -1, cl[-1] - 1),
                        "num_docs_zero_with_blocks": (head, 0, 0), "length": (head, 1, head[1] + 1),
                        "raw_len_small": (rl, 0, 3)}[mutation]
    target[i] = value
    _craft_fdx(directory, info, tuple(head), [fd, off, cl, rl])  # type: ignore[arg-type]
    with pytest.raises(CorruptIndexError) as ei:
        open_reader(directory, info)
    assert type(ei.value) is CorruptIndexError and ei.value.file == FDX


@pytest.mark.parametrize("name", [FDT, FDX])
def test_swapped_in_from_other_segment(directory: Directory, name: str) -> None:
    docs = sample_docs(300)
    info, _ = write_segment(directory, docs)
    other = MemoryDirectory()
    write_segment(other, docs)  # same segment name and contents, different segment id
    swap_in(directory, name, other)
    with pytest.raises(SegmentIdMismatchError) as ei:
        open_reader(directory, info)
    assert ei.value.file == name


@pytest.mark.parametrize("name,codec", [(FDT, DATA_CODEC), (FDX, INDEX_CODEC)])
@pytest.mark.parametrize("delta,error", [(1, IndexFormatTooNewError), (-1, IndexFormatTooOldError)])
def test_header_version_out_of_range(
    directory: Directory, name: str, codec: str, delta: int, error: type[IndexFormatError]
) -> None:
    info, _ = write_segment(directory, sample_docs(20))
    data = bytearray(directory.read_bytes(name))
    pos = 5 + len(codec)
    struct.pack_into(">I", data, pos, struct.unpack_from(">I", data, pos)[0] + delta)
    overwrite(directory, name, bytes(data))
    with pytest.raises(error) as ei:
        open_reader(directory, info)
    assert ei.value.file == name


@pytest.mark.parametrize("name", [FDT, FDX])
def test_missing_file(directory: Directory, name: str) -> None:
    info, _ = write_segment(directory, sample_docs(3))
    directory.delete_file(name)
    with pytest.raises(FileNotFoundError):
        open_reader(directory, info)


def test_format_names() -> None:
    assert (FMT.name, DATA_CODEC, INDEX_CODEC) == (
        "SegStore1StoredFields", "SegStore1StoredFieldsData", "SegStore1StoredFieldsIndex")
