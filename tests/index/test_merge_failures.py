"""A merge that fails part-way (reliability.md §8 rows 2, 3 and 19; Lucene's LUCENE-2593): an I/O error is
injected at every operation of a merge in turn (SQLite style), transient and persistent, EIO and ENOSPC.
Afterwards the writer is still usable (index, refresh, search, and the merge itself once the disk is back),
its inputs are intact, no output handle is left open, and the reopened index holds every document, passes
``check_integrity()`` on every segment and has no unreferenced file.

The fault only hits the merging thread: another thread deletes and updates input documents while the merge
runs, so the merge commit has deletes to carry over (a live-docs file of its own) and pending deletes to
remap.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import segstore
from segstore.errors import DiskFullError, StorageIOError
from segstore.index.merge_policy import TieredMergePolicy
from segstore.index.merge_scheduler import ConcurrentMergeScheduler
from segstore.index.operations import DeleteOp, IndexOp
from segstore.index.segment_merger import SegmentMerger
from segstore.store import MemoryDirectory
from segstore.testing.mock_directory import OPERATIONS, FaultyDirectory

DIM = 8
MAPPINGS = {"properties": {
    "v": {"type": "knn_vector", "dimension": DIM},
    "q": {"type": "knn_vector", "dimension": DIM, "mode": "on_disk"},  # binary quantization: a .qst file
    "tag": {"type": "keyword"}, "n": {"type": "integer"}, "t": {"type": "text"},
}}
PER_SEGMENT = 20


def vec(i: int) -> list[float]:
    return [float(i), float(i % 7), 1.0, -float(i % 3), 0.5, float(i % 2), 2.0, float(i % 5)]


def src(i: int, rev: int = 0) -> dict[str, Any]:
    return {"v": vec(i + 100 * rev), "q": vec(i * 3 + rev), "tag": f"t{i % 3}", "n": i, "t": f"doc {i} rev {rev}"}


class Scenario:
    """Three committed segments with deletes; during the merge another thread changes input documents."""

    def __init__(self, root: Any) -> None:
        self.dir = FaultyDirectory(MemoryDirectory())
        self.data = str(root)
        self.w = segstore.create_index(self.data, "f", settings={"index.knn": True, "index.translog.durability":
                                                                 "async"}, mappings=MAPPINGS, directory=self.dir)
        self.model: dict[str, dict[str, Any]] = {}
        for s in range(3):
            ids = range(s * PER_SEGMENT, (s + 1) * PER_SEGMENT)
            self.w.bulk([IndexOp(str(i), src(i)) for i in ids])
            self.model.update({str(i): src(i) for i in ids})
            self.w.refresh()
        self.w.bulk([DeleteOp("3"), DeleteOp("25")])
        del self.model["3"], self.model["25"]
        self.w.commit()
        self.inputs = [s.name for s in self.w.segments()]

    def during_merge(self) -> None:
        """Deletes and an update reaching the inputs while the merge runs: some refreshed, one pending."""
        self.w.bulk([DeleteOp("5"), IndexOp("30", src(30, 1))])
        self.w.refresh()
        self.w.delete("41")
        del self.model["5"], self.model["41"]
        self.model["30"] = src(30, 1)

    def check_docs(self, w: segstore.IndexWriter, new: bool = False) -> None:
        """Exactly the model's documents are live, once each, with their latest stored text."""
        w.refresh()  # a delete that was pending when the merge failed becomes visible now
        for i in ("0", "3", "5", "25", "30", "41", "59"):
            g = w.get(i)
            assert (g.source["t"] if g is not None else None) == (self.model[i]["t"] if i in self.model else None)
        with w.acquire_reader() as r:
            live = [(rec["_id"], rec["_version"]) for leaf in r.leaves for d in range(leaf.max_doc)
                    if leaf.is_live(d) for rec in (leaf.stored_document(d),)]
        ids = [i for i, _ in live]
        assert len(ids) == len(set(ids)), "a document is live twice"
        assert set(ids) == set(self.model) | ({"new"} if new else set())
        assert dict(live).get("30") == (2 if self.model["30"]["t"].endswith("rev 1") else 1)


@pytest.fixture
def fast_tmp(tmp_path: Path) -> Iterator[Path]:
    """A RAM-backed temp dir when there is one: the loops create a catalog (LMDB, fsynced) per iteration."""
    if os.access("/dev/shm", os.W_OK):
        with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="segstore-merge-failures-") as d:
            yield Path(d)
    else:
        yield tmp_path


@pytest.fixture
def during(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Runs ``hook["fn"]`` in another thread after the merged segment is written, before it is committed."""
    hook: dict[str, Any] = {"fn": None}
    orig = SegmentMerger.merge

    def merge(self: SegmentMerger) -> Any:
        result = orig(self)
        fn, hook["fn"] = hook["fn"], None
        if fn is not None:
            errors: list[BaseException] = []

            def run() -> None:
                try:
                    fn()
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)

            t = threading.Thread(target=run)
            t.start()
            t.join(60)
            assert not errors, errors
        return result

    monkeypatch.setattr(SegmentMerger, "merge", merge)
    return hook


def count_merge_ops(root: Any, during: dict[str, Any], ops: tuple[str, ...] | None = None) -> int:
    sc = Scenario(root)
    during["fn"] = sc.during_merge
    # never fires; counts this thread's operations up to the merge commit (then come the deletes of the
    # input files the merge released, which only log on failure: test_failed_deletes_...)
    fault = sc.dir.fail_at(10**9, ops=[op for op in ops or OPERATIONS if op != "delete"], this_thread_only=True)
    sc.w.force_merge(1, flush=False)
    seen = fault.seen
    sc.w.close()
    return seen


def run_with_fault(root: Any, during: dict[str, Any], nth: int, *, persistent: bool, error: int,
                   ops: tuple[str, ...] | None) -> bool:
    """One iteration; True if the merge failed."""
    sc = Scenario(root)
    w, d = sc.w, sc.dir
    during["fn"] = sc.during_merge
    kw = {"ops": ops} if ops else {}
    fault = d.fail_at(nth, error=error, persistent=persistent, this_thread_only=True, **kw)
    failed = False
    try:
        w.force_merge(1, flush=False)  # the merge and its commit into the writer; commit() comes later
    except (StorageIOError, OSError) as e:
        failed = True
        if error == errno.ENOSPC and isinstance(e, StorageIOError):
            assert isinstance(e, DiskFullError) and e.errno == errno.ENOSPC
    assert fault.fired >= 1 or fault.seen < nth
    d.clear_faults()
    assert d.open_outputs() == []
    if failed:  # the inputs are intact and still the writer's segments
        names = [s.name for s in w.segments()]
        assert set(sc.inputs) <= set(names), (names, sc.inputs)
        assert not any(s.info.diagnostics.get("source") == "merge" for s in w.segments())
    sc.check_docs(w)
    # the writer is still usable: index, refresh, search, and the merge once the disk is back
    during["fn"] = None
    w.index("new", {"v": [9.0] * DIM, "q": [1.0] * DIM, "t": "new"})
    w.refresh()
    with w.acquire_reader() as r:
        top = segstore.knn_search(r, "v", np.full(DIM, 9.0, np.float32), 1)
        assert r.leaves[top.score_docs[0].leaf].stored_document(top.score_docs[0].doc)["_id"] == "new"
    w.force_merge(1)
    assert len(w.segments()) == 1
    sc.check_docs(w, new=True)
    w.close()
    # reopen on the same bytes without faults: every doc, every segment verifies, no unreferenced file
    w = segstore.open_index(sc.data, "f", directory=d.delegate)
    sc.check_docs(w, new=True)
    with w.acquire_reader() as r:
        for leaf in r.leaves:
            leaf.check_integrity()
    referenced = {f for s in w.segments() for f in s.files()} | {"write.lock"}
    assert set(d.delegate.list_all()) <= referenced
    w.close()
    return failed


WRITES = ("create_output", "write", "close")


@pytest.mark.parametrize(("mode", "error", "ops", "step"), [
    pytest.param("transient", errno.EIO, None, 1, id="transient-EIO-every-op"),
    pytest.param("persistent", errno.EIO, None, 4, id="persistent-EIO-every-4th-op"),
    pytest.param("persistent", errno.ENOSPC, WRITES, 4, id="persistent-ENOSPC-every-4th-write"),
    pytest.param("persistent", errno.EIO, None, 1, marks=pytest.mark.slow, id="persistent-EIO-every-op"),
    pytest.param("persistent", errno.ENOSPC, WRITES, 1, marks=pytest.mark.slow, id="persistent-ENOSPC-every-write"),
])
def test_fault_at_every_step_of_a_merge(fast_tmp: Path, during: dict[str, Any], mode: str, error: int,
                                        ops: tuple[str, ...] | None, step: int) -> None:
    """The N-th operation of the merge fails, for every N (every ``step``-th in the fast variants)."""
    tmp_path = fast_tmp
    total = count_merge_ops(tmp_path / "count", during, ops)
    assert total > 50  # verification opens, then creates, writes and publishes of ~10 files
    failures = tried = 0
    for nth in range(1, total + 1, step):
        tried += 1
        failures += run_with_fault(tmp_path / f"{mode}-{nth}", during, nth, persistent=mode == "persistent",
                                   error=error, ops=ops)
    assert failures == tried  # every operation of a merge is needed: each fault fails it cleanly


def test_failed_deletes_of_merged_away_files_are_retried_at_open(tmp_path: Any) -> None:
    sc = Scenario(tmp_path)
    old = {f for s in sc.w.segments() for f in s.files()}
    sc.dir.fail_at(1, ops=("delete",), persistent=True)
    sc.w.force_merge(1)  # the commit releases the inputs; every delete fails (logged, not raised)
    assert old <= set(sc.dir.list_all())
    sc.dir.clear_faults()
    sc.check_docs(sc.w)
    sc.w.close()
    w = segstore.open_index(sc.data, "f", directory=sc.dir.delegate)
    assert set(sc.dir.delegate.list_all()) - {"write.lock"} == {f for s in w.segments() for f in s.files()}
    sc.check_docs(w)
    w.close()


def test_pending_deletes_survive_a_failed_live_docs_write(tmp_path: Any) -> None:
    sc = Scenario(tmp_path)
    sc.w.delete("7")
    sc.dir.fail_at(1, ops=("close",), names=lambda n: n.endswith(".liv"))
    with pytest.raises(StorageIOError):
        sc.w.refresh()
    sc.dir.clear_faults()
    del sc.model["7"]
    sc.check_docs(sc.w)  # refreshes again: doc 7 must be gone from the reader too
    sc.w.close()


def test_failed_background_merge_keeps_the_writer_usable(tmp_path: Any) -> None:
    d = FaultyDirectory(MemoryDirectory())
    cms = ConcurrentMergeScheduler(1)
    w = segstore.create_index(str(tmp_path), "f", settings={"index.knn": True}, mappings=MAPPINGS, directory=d,
                              merge_policy=TieredMergePolicy(segments_per_tier=3, max_merge_at_once=3),
                              merge_scheduler=cms)
    # the flushes write _0 .. _3; every later .vec is a merge's
    d.fail_at(1, ops=("write",), persistent=True, names=lambda n: n.endswith(".vec") and n[:3] not in (
        "_0.", "_1.", "_2.", "_3."))
    for s in range(4):
        w.bulk([IndexOp(f"{s}-{i}", src(i)) for i in range(PER_SEGMENT)])
        w.refresh()
    assert cms.sync(60)
    assert cms.exceptions and all(isinstance(e, StorageIOError) for e in cms.exceptions)
    assert d.open_outputs() == []
    assert not any(s.info.diagnostics.get("source") == "merge" for s in w.segments())
    d.clear_faults()
    w.refresh()
    w.index("x", src(1))
    w.refresh()  # the next refresh asks the policy again: the merge now succeeds
    assert cms.sync(60)
    assert any(s.info.diagnostics.get("source") == "merge" for s in w.segments())
    assert w.stats()["docs"] == 4 * PER_SEGMENT + 1
    w.close()
    w = segstore.open_index(str(tmp_path), "f", directory=d.delegate)
    assert w.stats()["docs"] == 4 * PER_SEGMENT + 1
    assert set(d.delegate.list_all()) <= {f for s in w.segments() for f in s.files()} | {"write.lock"}
    w.close()


def test_non_io_error_in_a_format_merge_aborts_cleanly(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Row 19: a codec fails inside the vector merge; the inputs stay, the temp files go."""
    sc = Scenario(tmp_path)
    before = set(sc.dir.list_all())
    fmt = type(sc.w.codec.vector_values_format)
    orig = fmt.fields_writer

    def failing_writer(self: Any, state: Any) -> Any:
        writer = orig(self, state)
        if state.segment_info.diagnostics.get("source") == "merge":
            def add_field(*a: Any, **k: Any) -> None:
                raise RuntimeError("merge_vectors failed")
            writer.add_field = add_field
        return writer

    monkeypatch.setattr(fmt, "fields_writer", failing_writer)
    with pytest.raises(RuntimeError, match="merge_vectors failed"):
        sc.w.force_merge(1)
    assert set(sc.dir.list_all()) == before and sc.dir.open_outputs() == []
    assert [s.name for s in sc.w.segments()] == sc.inputs
    sc.check_docs(sc.w)
    monkeypatch.undo()
    sc.w.force_merge(1)
    sc.check_docs(sc.w)
    sc.w.close()


# --------------------------------------------------------------------------------- the FaultyDirectory


def test_faulty_directory_counts_and_fails_the_nth_operation(tmp_path: Any) -> None:
    from segstore.store import FSDirectory

    d = FaultyDirectory(FSDirectory(tmp_path / "d"))
    assert d.path == str(tmp_path / "d")  # the wrapped directory's attributes show through
    d.write_bytes("_0.a", b"x")
    assert dict(d.counts) == {"create_output": 1, "write": 1, "close": 1}
    d.fail_at(2, ops=("open_input",))  # transient: only the 2nd open from now fails
    d.open_input("_0.a").close()
    with pytest.raises(OSError) as e:
        d.open_input("_0.a")
    assert e.value.errno == errno.EIO and not isinstance(e.value, StorageIOError)  # as FSDirectory: raw
    d.open_input("_0.a").close()
    d.fail_at(1, ops=("write",), error=errno.ENOSPC, persistent=True)
    for _ in range(2):
        out = d.create_output("_1.a")
        with pytest.raises(DiskFullError) as full:
            out.write(b"y")
        assert full.value.errno == errno.ENOSPC
    assert d.open_outputs() == [] and not d.file_exists("_1.a")  # the failed output was aborted
    assert [n for n in os.listdir(tmp_path / "d") if n.endswith(".tmp")] == []
    d.clear_faults()
    d.fail_at(1, ops=("close",))
    out = d.create_output("_2.a")
    out.write(b"z")
    with pytest.raises(StorageIOError):
        out.close()
    assert not d.file_exists("_2.a") and d.open_outputs() == []
    d.fail_at(1, ops=("delete",), names=lambda n: n == "_0.a")
    with pytest.raises(OSError):
        d.delete_file("_0.a")
    d.delete_file("_0.a")
    with pytest.raises(ValueError):
        d.fail_at(1, ops=("rename",))


def test_faulty_directory_quota_and_leak_tracking() -> None:
    d = FaultyDirectory(MemoryDirectory(), max_bytes=10)
    d.write_bytes("_0.a", b"123456")
    out = d.create_output("_0.b")
    out.write(b"1234")
    assert d.open_outputs() == ["_0.b"]  # a leaked handle shows
    with pytest.raises(DiskFullError):
        out.write(b"5")  # 6 published + 4 pending + 1 > 10
    assert d.open_outputs() == [] and d.list_all() == ["_0.a"]
    d.delete_file("_0.a")
    d.write_bytes("_0.c", b"0123456789")  # room again
    d.record()
    d.open_input("_0.c").close()
    assert d.log == [("open_input", "_0.c")]
