"""Writer and reader lifecycle (reliability.md §8 rows 18 and 20): double close, use after close, tragic
errors, one writer per index (in this process and from another process), create/open errors.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest

import segstore
from segstore.errors import (
    AlreadyClosedError,
    IndexNotFoundError,
    LockObtainFailedError,
    ResourceAlreadyExistsError,
    StorageIOError,
)

MAPPINGS = {"properties": {"v": {"type": "knn_vector", "dimension": 2}}}


def create(tmp_path: Any) -> segstore.IndexWriter:
    return segstore.create_index(str(tmp_path / "data"), "life", settings={"index.knn": True}, mappings=MAPPINGS)


def reopen(tmp_path: Any) -> segstore.IndexWriter:
    return segstore.open_index(str(tmp_path / "data"), "life")


def test_writer_double_close(tmp_path: Any) -> None:
    w = create(tmp_path)
    w.index("1", {"v": [1, 2]})
    w.close()
    w.close()
    w.close(commit=False)
    w = reopen(tmp_path)
    assert w.get("1").source == {"v": [1.0, 2.0]}
    w.close()


@pytest.mark.parametrize("call", [
    lambda w: w.index("2", {"v": [1, 2]}),
    lambda w: w.delete("1"),
    lambda w: w.bulk([segstore.IndexOp("3", {"v": [0, 0]})]),
    lambda w: w.get("1"),
    lambda w: w.refresh(),
    lambda w: w.commit(),
    lambda w: w.acquire_reader(),
    lambda w: w.force_merge(1),
], ids=["index", "delete", "bulk", "get", "refresh", "commit", "acquire_reader", "force_merge"])
def test_use_after_close_raises_already_closed(tmp_path: Any, call: Any) -> None:
    w = create(tmp_path)
    w.index("1", {"v": [1, 2]})
    w.close()
    with pytest.raises(AlreadyClosedError) as ei:
        call(w)
    assert ei.value.cause is None
    assert "closed" in str(ei.value)


def test_directory_reader_double_close_and_use_after_close(tmp_path: Any) -> None:
    w = create(tmp_path)
    w.index("1", {"v": [1, 2]})
    w.refresh()
    r = w.acquire_reader()
    r2 = w.acquire_reader()
    r.close()
    r.close()  # idempotent: releases its own reference once
    assert r2.num_docs == 1  # the other handle is unaffected
    top = segstore.knn_search(r2, "v", np.array([1, 2], np.float32), 1)
    assert top.score_docs[0].score == 1.0
    r2.close()
    w.close()
    # a reader handed out by open_reader
    rd = segstore.open_reader(str(tmp_path / "data"), "life")
    assert rd.num_docs == 1
    rd.close()
    rd.close()
    with pytest.raises(AlreadyClosedError):
        rd.inc_ref()


def test_context_manager_with_error_does_not_commit_but_keeps_acked_ops(tmp_path: Any) -> None:
    w = create(tmp_path)
    w.index("0", {"v": [0, 0]})
    w.commit()
    with pytest.raises(RuntimeError):
        with w:
            w.index("1", {"v": [1, 1]})
            raise RuntimeError("caller failed")
    with pytest.raises(AlreadyClosedError):  # closed by __exit__ (without commit)
        w.get("1")
    with reopen(tmp_path) as w2:
        assert w2.replayed_ops == 1  # not committed, replayed from the translog
        assert w2.get("1").source == {"v": [1.0, 1.0]}


def test_tragic_translog_failure_closes_writer_with_cause(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    w = create(tmp_path)
    w.index("acked", {"v": [1, 1]})

    def failing_add(ops: Any) -> None:
        raise StorageIOError("injected EIO", OSError(5, "Input/output error"))

    monkeypatch.setattr(w.translog, "add", failing_add)
    with pytest.raises(StorageIOError):
        w.index("lost", {"v": [2, 2]})
    assert isinstance(w.tragic_exception, StorageIOError)
    with pytest.raises(AlreadyClosedError) as ei:
        w.index("after", {"v": [3, 3]})
    assert ei.value.cause is w.tragic_exception
    assert "tragic cause" in str(ei.value)
    w.close()  # fine after a tragic close
    monkeypatch.undo()
    w = reopen(tmp_path)  # the lock was released; acked ops survive
    assert w.get("acked").source == {"v": [1.0, 1.0]}
    assert w.get("lost") is None
    w.close()


def test_second_writer_in_process_is_refused(tmp_path: Any) -> None:
    w = create(tmp_path)
    with pytest.raises(LockObtainFailedError) as ei:
        reopen(tmp_path)
    assert "locked by this process" in str(ei.value)
    w.index("1", {"v": [1, 2]})  # the first writer is unaffected
    w.close()
    w = reopen(tmp_path)
    assert w.get("1") is not None
    w.close()


_OPEN_IN_CHILD = textwrap.dedent("""
    import sys
    import segstore
    from segstore.errors import LockObtainFailedError
    try:
        w = segstore.open_index(sys.argv[1], "life")
    except LockObtainFailedError as e:
        print("REFUSED", e)
        sys.exit(3)
    print("OPENED", w.get("1").source)
    w.close()
""")


def test_second_writer_in_another_process_is_refused(tmp_path: Any) -> None:
    w = create(tmp_path)
    w.index("1", {"v": [1, 2]})
    w.commit()
    data = str(tmp_path / "data")
    res = subprocess.run([sys.executable, "-c", _OPEN_IN_CHILD, data], capture_output=True, text=True, timeout=120)
    assert res.returncode == 3, res.stdout + res.stderr
    assert f"index locked by pid {os.getpid()}" in res.stdout
    w.index("2", {"v": [3, 4]})  # still ours
    w.close()
    res = subprocess.run([sys.executable, "-c", _OPEN_IN_CHILD, data], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == "OPENED {'v': [1.0, 2.0]}"


def test_read_only_reader_while_writer_is_open(tmp_path: Any) -> None:
    w = create(tmp_path)
    w.index("1", {"v": [1, 2]})
    w.commit()
    w.index("2", {"v": [3, 4]})  # not committed: invisible to open_reader
    r = segstore.open_reader(str(tmp_path / "data"), "life")
    assert r.num_docs == 1
    r.close()
    w.close()


def test_create_existing_and_open_missing(tmp_path: Any) -> None:
    w = create(tmp_path)
    w.close()
    files_before = sorted(os.listdir(tmp_path / "data" / "indices"))
    with pytest.raises(ResourceAlreadyExistsError):
        create(tmp_path)
    assert sorted(os.listdir(tmp_path / "data" / "indices")) == files_before
    with pytest.raises(IndexNotFoundError):
        segstore.open_index(str(tmp_path / "data"), "nope")
    with pytest.raises(IndexNotFoundError):
        segstore.open_reader(str(tmp_path / "data"), "nope")
    segstore.delete_index(str(tmp_path / "data"), "life")
    assert os.listdir(tmp_path / "data" / "indices") == []
    with pytest.raises(IndexNotFoundError):
        segstore.open_index(str(tmp_path / "data"), "life")


def test_open_removes_crash_leftovers_but_read_only_reader_does_not(tmp_path: Any) -> None:
    w = create(tmp_path)
    w.index("1", {"v": [1, 2]})
    w.commit()
    d = w.directory
    w.close()
    leftovers = ["_7.si", "_7.fdt", "_0_9.liv"]
    for name in leftovers:  # files of a flush/merge that never made it into a commit
        d.write_bytes(name, b"half-written")
    tmp = os.path.join(d.path, "._8.vec.1a2b3c4d.tmp")  # an unpublished output of a killed process
    open(tmp, "wb").write(b"partial")
    r = segstore.open_reader(str(tmp_path / "data"), "life")  # read-only: touches nothing
    assert r.num_docs == 1
    r.close()
    assert all(d.file_exists(n) for n in leftovers) and os.path.exists(tmp)
    w = reopen(tmp_path)
    assert not any(d.file_exists(n) for n in leftovers)
    assert not os.path.exists(tmp)
    assert set(d.list_all()) - {"write.lock"} == {f for s in w.segments() for f in s.files()}
    assert w.get("1").source == {"v": [1.0, 2.0]}
    w.close()


def test_memory_directory_index_lifecycle(tmp_path: Any) -> None:
    """The engine runs on either Directory implementation (segments in RAM, translog/catalog on disk)."""
    from segstore.store import MemoryDirectory

    md = MemoryDirectory()
    data = str(tmp_path / "data")
    w = segstore.create_index(data, "mem", settings={"index.knn": True}, mappings=MAPPINGS, directory=md)
    for i in range(10):
        w.index(str(i), {"v": [i, 1]})
    w.refresh()
    w.delete("3")
    w.refresh()
    reader = w.acquire_reader()
    old = set(md.list_all())
    w.force_merge(1)
    assert old <= set(md.list_all())  # held by the reader
    reader.close()
    assert set(md.list_all()) == {f for s in w.segments() for f in s.files()}
    w.index("x", {"v": [0, 0]})
    w.close(commit=False)
    with pytest.raises(LockObtainFailedError):
        with md.obtain_lock("write.lock"):
            segstore.open_index(data, "mem", directory=md)
    w = segstore.open_index(data, "mem", directory=md)
    assert [w.get(str(i)) is not None for i in range(10)] == [i != 3 for i in range(10)]
    assert w.get("x").source == {"v": [0.0, 0.0]}
    w.close()


@pytest.mark.parametrize("fn", ["open_index", "open_reader", "delete_index"])
def test_missing_index_in_an_empty_path_creates_nothing(tmp_path: Any, fn: str) -> None:
    """Opening, reading or deleting in a directory that holds no catalog is "no such index", and the path
    stays as it was (no catalog/ folder appears where a typo pointed)."""
    from segstore.errors import IndexNotFoundError

    target = tmp_path / "typo"
    with pytest.raises(IndexNotFoundError, match=r"no such index \[x\]"):
        getattr(segstore, fn)(str(target), "x")
    assert not target.exists()


def test_external_versions_survive_replay_and_commit(tmp_path: Any) -> None:
    from segstore.errors import VersionConflictError

    data = str(tmp_path / "d")
    mappings = {"properties": {"v": {"type": "knn_vector", "dimension": 2}}}
    w = segstore.create_index(data, "ext", settings={"index.knn": True}, mappings=mappings)
    assert w.index("a", {"v": [1, 2]}, version=7, version_type="external").version == 7
    w.commit()
    assert w.index("b", {"v": [3, 4]}, version=40, version_type="external").version == 40
    w.close(commit=False)  # "b" lives in the translog only
    with segstore.open_index(data, "ext") as w2:
        assert (w2.get("a").version, w2.get("b").version) == (7, 40)
        with pytest.raises(VersionConflictError, match=r"current version \[40\] is higher or equal to the one "
                                                       r"provided \[40\]"):
            w2.index("b", {"v": [0, 0]}, version=40, version_type="external")
        assert w2.index("a", {"v": [5, 6]}).version == 8  # internal versioning counts on from there
