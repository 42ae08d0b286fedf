"""End-to-end corruption detection (reliability.md §8 rows 10-13 and 16).

A committed index with two segments (``_0``: 1,200 docs, so its graph is searched; ``_1``: 60 docs) and
deletes in both (so ``.liv`` files exist) is damaged one file at a time: truncated by 1 and 37 bytes, one byte
flipped in the middle of the payload, or swapped with the same-named file of another index built by the same
operations (same segment names, different segment ids). Opening, GETting every document, searching and
``check_integrity()`` must raise the matching typed error naming the damaged file:

* metadata files (.si, .fnm, .vem, .fdx, .liv) fail at open;
* .vec and .fdt fail at open when truncated or swapped (length/header checks), a flipped byte is caught by
  the first read of the damaged block (GET) or by ``check_integrity()``;
* .hnsw fails when its graph is loaded (first search over the big segment), or in ``check_integrity()``.

The process never crashes, a failed open deletes nothing, and restoring the file makes the index whole.
A header version patched to a future or a past value raises IndexFormatTooNewError / TooOldError.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import segstore
from segstore.errors import (
    ChecksumMismatchError,
    CorruptIndexError,
    IndexFormatError,
    IndexFormatTooNewError,
    IndexFormatTooOldError,
    SegmentIdMismatchError,
    TruncatedFileError,
)
from segstore.index.operations import DeleteOp, IndexOp
from segstore.store import FSDirectory
from segstore.testing.corrupt import overwrite, swap_in, truncate

INDEX = "c"
N_BIG, N_SMALL, DIM = 1200, 60, 8
DELETED = {"3", "17", "500", "1199", "1205", "1250"}
IDS = [str(i) for i in range(N_BIG + N_SMALL)]
METADATA = ["si", "fnm", "vem", "fdx", "liv"]
DATA = ["vec", "fdt"]
ALL_EXTS = METADATA + DATA + ["hnsw"]
STAGES = ["open", "get", "search", "check"]


def _build(data_dir: str) -> None:
    rng = np.random.default_rng(12)
    vecs = rng.standard_normal((N_BIG + N_SMALL, DIM)).astype(np.float32).tolist()
    w = segstore.create_index(data_dir, INDEX, settings={"index.knn": True},
                              mappings={"properties": {"v": {"type": "knn_vector", "dimension": DIM}}})
    w.bulk([IndexOp(str(i), {"v": vecs[i], "n": i, "t": f"doc {i}"}) for i in range(N_BIG)])
    w.refresh()
    w.bulk([IndexOp(str(i), {"v": vecs[i], "n": i, "t": f"doc {i}"}) for i in range(N_BIG, N_BIG + N_SMALL)])
    w.refresh()
    w.bulk([DeleteOp(i) for i in sorted(DELETED)])
    w.close()  # commits: _0 and _1 with .liv generation 1


def _index_dir(data_dir: str) -> str:
    (uuid,) = os.listdir(os.path.join(data_dir, "indices"))
    return os.path.join(data_dir, "indices", uuid, "index")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("corruption")
    a, b = str(base / "a"), str(base / "b")
    _build(a)
    _build(b)
    files_a = sorted(f for f in os.listdir(_index_dir(a)) if f != "write.lock")
    assert files_a == sorted(f for f in os.listdir(_index_dir(b)) if f != "write.lock")
    for ext in ALL_EXTS:
        assert any(f.endswith("." + ext) for f in files_a), ext
    assert "_0_1.liv" in files_a and "_1_1.liv" in files_a
    assert "_0_f0.hnsw" in files_a and "_1_f0.hnsw" in files_a
    return {"a": a, "b": b, "files": files_a}


@pytest.fixture
def work(built: dict[str, Any], tmp_path: Any) -> str:
    dst = str(tmp_path / "work")
    shutil.copytree(built["a"], dst)
    return dst


def _file_of(files: list[str], segment: str, ext: str) -> str:
    (name,) = [f for f in files if f.startswith(segment + "_") or f.startswith(segment + ".")
               if f.endswith("." + ext)]
    return name


def _header_length(data: bytes) -> int:
    nlen = data[4]
    pos = 5 + nlen + 4 + 16
    return pos + 1 + data[pos]


def _version_offset(data: bytes) -> int:
    return 5 + data[4]


def flip_payload_middle(directory: FSDirectory, name: str) -> None:
    """Flip one bit in the middle of the payload (between header and footer), so the header still matches."""
    data = bytearray(directory.read_bytes(name))
    start, end = _header_length(bytes(data)), len(data) - 16
    data[start + (end - start) // 2] ^= 0x20
    overwrite(directory, name, bytes(data))


def attempt(data_dir: str, use_reader: bool = False) -> tuple[str, BaseException | None]:
    """Open, GET everything, search (graph path on _0), check integrity: (stage reached, error or None)."""
    stage = "open"
    try:
        if use_reader:
            r = segstore.open_reader(data_dir, INDEX)
            r.close()
            return "done", None
        w = segstore.open_index(data_dir, INDEX)
        try:
            stage = "get"
            for doc_id in IDS:
                g = w.get(doc_id)
                assert (g is None) == (doc_id in DELETED), doc_id
                if g is not None:
                    assert g.source["n"] == int(doc_id)
            stage = "search"
            with w.acquire_reader() as reader:
                assert reader.leaves[0].num_docs > 1000
                top = segstore.knn_search(reader, "v", np.ones(DIM, np.float32), 10)
                assert len(top.score_docs) == 10
                stage = "check"
                for leaf in reader.leaves:
                    leaf.check_integrity()
        finally:
            w.close(commit=False)
        return "done", None
    except (CorruptIndexError, IndexFormatError) as e:
        return stage, e


def _expect(stage_err: tuple[str, BaseException | None], cls: type, name: str, stages: list[str]) -> None:
    stage, err = stage_err
    assert err is not None, f"damage to {name} went unnoticed"
    assert type(err) is cls, f"{name}: expected {cls.__name__}, got {type(err).__name__}: {err}"
    assert err.file == name, f"error names {err.file!r}, damaged file is {name!r}"
    assert f"(resource={name})" in str(err)
    assert stage in stages, f"{name}: detected at {stage}, expected one of {stages}"


def _restore_and_verify(work: str, built: dict[str, Any], name: str) -> None:
    d = FSDirectory(_index_dir(work))
    assert sorted(f for f in d.list_all() if f != "write.lock") == built["files"], "a failed open deleted files"
    os.unlink(os.path.join(d.path, name))
    shutil.copy2(os.path.join(_index_dir(built["a"]), name), os.path.join(d.path, name))
    assert attempt(work) == ("done", None)


DAMAGES: dict[str, Callable[[FSDirectory, str, FSDirectory], None]] = {
    "truncate1": lambda d, n, _o: truncate(d, n, 1),
    "truncate37": lambda d, n, _o: truncate(d, n, 37),
    "flip": lambda d, n, _o: flip_payload_middle(d, n),
    "swap": lambda d, n, o: swap_in(d, n, o),
}
ERROR_OF = {"truncate1": TruncatedFileError, "truncate37": TruncatedFileError, "flip": ChecksumMismatchError,
            "swap": SegmentIdMismatchError}


def _stages(ext: str, segment: str, damage: str) -> list[str]:
    if ext in METADATA:
        return ["open"]
    if ext in DATA:
        return ["open"] if damage != "flip" else ["open", "get", "check"]
    # hnsw: the big segment's graph is loaded by the first search; the small one is only read by check
    return ["search"] if segment == "_0" else ["check"]


@pytest.mark.parametrize("damage", list(DAMAGES))
@pytest.mark.parametrize("segment, ext", [(s, e) for e in ALL_EXTS for s in ("_0", "_1")])
def test_damaged_file_is_detected(work: str, built: dict[str, Any], segment: str, ext: str, damage: str) -> None:
    name = _file_of(built["files"], segment, ext)
    d = FSDirectory(_index_dir(work))
    DAMAGES[damage](d, name, FSDirectory(_index_dir(built["b"])))
    _expect(attempt(work), ERROR_OF[damage], name, _stages(ext, segment, damage))
    if ext in METADATA or damage != "flip" and ext in DATA:  # the read-only reader refuses it at open too
        _expect(attempt(work, use_reader=True), ERROR_OF[damage], name, ["open"])
    _restore_and_verify(work, built, name)


@pytest.mark.parametrize("version, cls", [(0xFFFF, IndexFormatTooNewError), (0, IndexFormatTooOldError)])
@pytest.mark.parametrize("ext", ALL_EXTS)
def test_patched_header_version(work: str, built: dict[str, Any], ext: str, version: int, cls: type) -> None:
    name = _file_of(built["files"], "_0", ext)
    d = FSDirectory(_index_dir(work))
    data = bytearray(d.read_bytes(name))
    pos = _version_offset(bytes(data))
    data[pos : pos + 4] = struct.pack(">I", version)
    overwrite(d, name, bytes(data))
    stage, err = attempt(work)
    assert type(err) is cls, (name, err)
    assert err.file == name and err.version == version
    assert not isinstance(err, CorruptIndexError)  # a version problem is not corruption
    assert stage == ("search" if ext == "hnsw" else "open")
    _restore_and_verify(work, built, name)


def test_every_file_every_byte_region_typed(work: str, built: dict[str, Any]) -> None:
    """Whatever files the codec writes (also ones added later, e.g. doc values): truncation and a flip
    anywhere in the header, payload or footer only ever raise typed errors naming that file."""
    d = FSDirectory(_index_dir(work))
    for name in built["files"]:
        good = d.read_bytes(name)
        hlen = _header_length(good)
        for offset in sorted({0, 5, _version_offset(good) + 3, hlen - 1, (hlen + len(good)) // 2,
                              len(good) - 13, len(good) - 1}):
            damaged = bytearray(good)
            damaged[offset] ^= 0x01
            overwrite(d, name, bytes(damaged))
            stage, err = attempt(work)
            assert err is not None, f"flip at {name}[{offset}] went unnoticed (stage {stage})"
            assert getattr(err, "file", None) == name, (name, offset, err)
        overwrite(d, name, good[: len(good) // 3])
        stage, err = attempt(work)
        assert isinstance(err, CorruptIndexError) and err.file == name, (name, err)
        overwrite(d, name, good)
    assert attempt(work) == ("done", None)


def test_missing_file_is_reported(work: str, built: dict[str, Any]) -> None:
    d = FSDirectory(_index_dir(work))
    os.unlink(os.path.join(d.path, "_1.fnm"))
    with pytest.raises((CorruptIndexError, FileNotFoundError)):
        segstore.open_index(work, INDEX)
    assert "_1.si" in d.list_all()  # nothing else was removed by the failed open


def test_damage_found_after_open_does_not_poison_the_writer(work: str, built: dict[str, Any]) -> None:
    """A flip in .fdt surfaces on GET; other documents stay readable and the writer stays usable."""
    d = FSDirectory(_index_dir(work))
    name = _file_of(built["files"], "_0", "fdt")
    data = bytearray(d.read_bytes(name))
    data[_header_length(bytes(data)) + 40] ^= 0x01  # inside the first block (docs 0..)
    overwrite(d, name, bytes(data))
    w = segstore.open_index(work, INDEX)
    try:
        with pytest.raises(ChecksumMismatchError) as ei:
            w.get("0")
        assert ei.value.file == name
        assert w.get("1250") is None and w.get("1210").source["n"] == 1210  # other segment fine
        w.index("new", {"v": [0.0] * DIM})
        w.refresh()
        assert w.get("new").source == {"v": [0.0] * DIM}
        with w.acquire_reader() as reader:
            with pytest.raises(ChecksumMismatchError):
                reader.leaves[0].check_integrity()
            reader.leaves[1].check_integrity()
    finally:
        w.close(commit=False)


# ------------------------------------------------------------------ CRC-valid damage inside the graph blob

_SEARCH_CHILD = """
import sys
import numpy as np
import segstore
from segstore.errors import CorruptIndexError
w = segstore.open_index(sys.argv[1], "c")
try:
    with w.acquire_reader() as reader:
        for q in np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32):
            segstore.knn_search(reader, "v", q, 10)
    print("OK")
except CorruptIndexError as e:
    print("CORRUPT", e.file)
except Exception as e:
    print("UNTYPED", type(e).__name__, e)
finally:
    w.close(commit=False)
"""


def _rewrite_graph_blob(path: str, mode: str) -> None:
    """Damage hnswlib's level-0 block of a graph file and write a *valid* CRC (a file a bug could write, or
    reliability.md §8 row 29's mutation fuzzing): ``links`` points every element's first level-0 neighbour
    far out of range; ``labels`` gives every element an impossible label."""
    import zlib

    import msgpack

    data = bytearray(open(path, "rb").read())
    hlen = _header_length(bytes(data))
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(bytes(data[hlen : hlen + 4096]))
    unpacker.unpack()
    blob = hlen + unpacker.tell()
    head = struct.Struct("<QQQQQQiIQQQdQ")  # hnswlib 0.8 saveIndex fixed header
    _, _, count, size_per, label_off, *_ = head.unpack_from(data, blob)
    level0 = blob + head.size
    for e in range(count):
        if mode == "links":
            struct.pack_into("<I", data, level0 + e * size_per + 4, 0x0FFFFFFF)
        else:
            struct.pack_into("<Q", data, level0 + e * size_per + label_off, 2**40 + e)
    data[-8:] = struct.pack(">Q", zlib.crc32(bytes(data[:-8])))
    os.unlink(path)
    with open(path, "wb") as fh:
        fh.write(bytes(data))


@pytest.mark.parametrize("mode", ["links", "labels"])
def test_crc_valid_graph_damage_never_crashes(work: str, built: dict[str, Any], mode: str) -> None:
    import subprocess
    import sys

    name = _file_of(built["files"], "_0", "hnsw")
    _rewrite_graph_blob(os.path.join(_index_dir(work), name), mode)
    res = subprocess.run([sys.executable, "-c", _SEARCH_CHILD, work], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"the process crashed (rc={res.returncode}): {res.stderr[-500:]}"
    assert res.stdout.strip() in ("OK", f"CORRUPT {name}"), res.stdout


# ------------------------------------------------------------------------- merges must not launder damage


def _flip_first_vector(work: str, name: str) -> None:
    d = FSDirectory(_index_dir(work))
    data = bytearray(d.read_bytes(name))
    first_row = (_header_length(bytes(data)) + 63) // 64 * 64  # vectors start 64-aligned after the header
    data[first_row + 4 * DIM * 2 + 3] ^= 0x01  # a sign/exponent bit of doc 2's first component
    overwrite(d, name, bytes(data))


def test_merge_refuses_damaged_vector_data(work: str, built: dict[str, Any]) -> None:
    _flip_first_vector(work, "_0.vec")
    w = segstore.open_index(work, INDEX)  # .vec gets only the cheap check at open: this is expected to pass
    try:
        segments = [s.name for s in w.segments()]
        with pytest.raises(ChecksumMismatchError) as ei:
            w.force_merge(1)
        assert ei.value.file == "_0.vec"
        assert [s.name for s in w.segments()] == segments  # inputs untouched, nothing merged
    finally:
        w.close(commit=False)


def test_merge_refuses_damaged_stored_fields(work: str, built: dict[str, Any]) -> None:
    d = FSDirectory(_index_dir(work))
    name = _file_of(built["files"], "_0", "fdt")
    data = bytearray(d.read_bytes(name))
    data[_header_length(bytes(data)) + 40] ^= 0x01
    overwrite(d, name, bytes(data))
    w = segstore.open_index(work, INDEX)
    try:
        segments = [s.name for s in w.segments()]
        files = set(d.list_all())
        with pytest.raises(ChecksumMismatchError) as ei:
            w.force_merge(1)
        assert ei.value.file == name
        assert [s.name for s in w.segments()] == segments
        assert set(d.list_all()) == files  # the aborted merge left no file behind
        w.index("still", {"v": [1.0] * DIM})  # the writer is still usable
        assert w.get("still") is not None
    finally:
        w.close(commit=False)


def test_damaged_committed_translog_generation_does_not_block_open(tmp_path: Any) -> None:
    """A crash between publishing a commit and trimming the translog leaves generations the commit already
    holds; damage in them must neither block the reopen nor lose any acknowledged operation."""
    data = str(tmp_path / "d")
    w = segstore.create_index(data, "t", settings={"index.knn": True},
                              mappings={"properties": {"v": {"type": "knn_vector", "dimension": 2}}})
    w.bulk([IndexOp("c1", {"v": [1.0, 0.0]})])
    w.translog.trim_below = lambda g: None  # type: ignore[method-assign] - the crash window
    w.commit()
    w.bulk([IndexOp("u1", {"v": [2.0, 0.0]})])
    w.bulk([IndexOp("u2", {"v": [3.0, 0.0]})])
    folder = w.files.translog_path
    w.close(commit=False)
    tlogs = sorted((f for f in os.listdir(folder) if f.endswith(".tlog")), key=lambda f: int(f[9:-5]))
    oldest = os.path.join(folder, tlogs[0])
    raw = bytearray(open(oldest, "rb").read())
    raw[-3] ^= 0x01
    with open(oldest, "wb") as fh:
        fh.write(bytes(raw))
    with segstore.open_index(data, "t") as w2:
        assert w2.replayed_ops == 2
        assert {d: w2.get(d).source for d in ("c1", "u1", "u2")} == {
            "c1": {"v": [1.0, 0.0]}, "u1": {"v": [2.0, 0.0]}, "u2": {"v": [3.0, 0.0]}}
    assert not os.path.exists(oldest)
