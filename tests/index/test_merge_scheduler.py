"""Merge schedulers and their writer integration: the serial scheduler runs merges in the caller; the
concurrent one runs them in at most ``max_thread_count`` background threads while indexing, refresh and
search go on; ``maybe_merge()`` after every refresh; ``close()`` waits for (or aborts) running merges;
forced merges stay correct while indexing and background merges go on."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import segstore
from segstore.errors import IllegalArgumentError
from segstore.index.merge_policy import NoMergePolicy, OneMerge, TieredMergePolicy
from segstore.index.merge_scheduler import (
    ConcurrentMergeScheduler,
    SerialMergeScheduler,
    default_max_thread_count,
    merge_config,
)
from segstore.index.operations import DeleteOp, IndexOp
from segstore.index.segment_merger import SegmentMerger
from segstore.index.settings import IndexSettings

DIM = 4
MAPPINGS = {"properties": {"v": {"type": "knn_vector", "dimension": DIM}, "n": {"type": "integer"}}}


class FakeSource:
    """A MergeSource whose merges run ``work``; records concurrency."""

    def __init__(self, count: int, work: Callable[[OneMerge], None] = lambda m: time.sleep(0.02)) -> None:
        self.pending: deque[OneMerge] = deque(OneMerge([], reason=str(i)) for i in range(count))
        self.work = work
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.done: list[str] = []
        self.threads: set[str] = set()

    def add(self, n: int) -> None:
        with self.lock:
            self.pending.extend(OneMerge([], reason=f"late{i}") for i in range(n))

    def next_merge(self) -> OneMerge | None:
        with self.lock:
            return self.pending.popleft() if self.pending else None

    def merge(self, m: OneMerge) -> None:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.threads.add(threading.current_thread().name)
        try:
            self.work(m)
        finally:
            with self.lock:
                self.active -= 1
                self.done.append(m.reason)


def test_serial_scheduler_runs_every_merge_in_the_caller() -> None:
    src = FakeSource(5, work=lambda m: None)
    SerialMergeScheduler().merge(src, "test")
    assert len(src.done) == 5 and src.threads == {threading.current_thread().name}


def test_concurrent_scheduler_respects_max_thread_count() -> None:
    src = FakeSource(12)
    cms = ConcurrentMergeScheduler(3)
    t0 = time.perf_counter()
    cms.merge(src, "test")
    assert time.perf_counter() - t0 < 0.02 * 3  # returns at once
    assert cms.sync(30)
    assert sorted(src.done, key=int) == [str(i) for i in range(12)]
    assert src.max_active == 3 and cms.running == 0
    assert threading.current_thread().name not in src.threads


def test_failed_merge_is_recorded_and_the_others_go_on() -> None:
    def work(m: OneMerge) -> None:
        if m.reason == "2":
            raise OSError(5, "boom")

    src = FakeSource(6, work)
    cms = ConcurrentMergeScheduler(2)
    cms.merge(src, "test")
    assert cms.sync(30)
    assert len(src.done) == 6
    assert [type(e) for e in cms.exceptions] == [OSError]


def test_merge_added_while_threads_exit_is_never_stranded() -> None:
    cms = ConcurrentMergeScheduler(1)
    src = FakeSource(0, work=lambda m: None)
    for _ in range(300):
        src.add(1)
        cms.merge(src, "test")
    assert cms.sync(30)
    assert len(src.done) == 300 and not src.pending


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (3, 1), (4, 2), (6, 3), (8, 4), (64, 4)])
def test_default_max_thread_count_is_opensearch_default(cores: int, expected: int) -> None:
    assert default_max_thread_count(cores) == expected


def test_scheduler_from_settings() -> None:
    assert ConcurrentMergeScheduler.from_settings(IndexSettings.parse({})).max_thread_count == \
        default_max_thread_count()
    s = IndexSettings.parse({"index.merge.scheduler.max_thread_count": 3})
    assert ConcurrentMergeScheduler.from_settings(s).max_thread_count == 3
    with pytest.raises(IllegalArgumentError, match=r"Failed to parse value \[0\] for setting "
                                                   r"\[index.merge.scheduler.max_thread_count\] must be >= 1"):
        ConcurrentMergeScheduler.from_settings({"index.merge.scheduler.max_thread_count": 0})


def test_merge_config_accepts_instances_factories_and_defaults() -> None:
    settings = IndexSettings.parse({"index.merge.policy.segments_per_tier": 4})
    p, s, owned = merge_config(None, None, settings)
    assert isinstance(p, NoMergePolicy) and isinstance(s, SerialMergeScheduler) and owned
    p, s, owned = merge_config(TieredMergePolicy.from_settings, ConcurrentMergeScheduler.from_settings, settings)
    assert isinstance(p, TieredMergePolicy) and p.segments_per_tier == 4
    assert isinstance(s, ConcurrentMergeScheduler) and owned
    mine = ConcurrentMergeScheduler(1)
    assert merge_config(None, mine, settings)[1:] == (mine, False)


# ------------------------------------------------------------------------------- writer integration


def small_tiered() -> TieredMergePolicy:
    return TieredMergePolicy(segments_per_tier=3, max_merge_at_once=3, floor_segment=1 << 20)


def vec(i: int) -> list[float]:
    return [float(i), float(i % 7), 1.0, -float(i % 3)]


def new_writer(tmp_path: Any, **kw: Any) -> segstore.IndexWriter:
    return segstore.create_index(str(tmp_path / "data"), "m", settings={"index.knn": True}, mappings=MAPPINGS, **kw)


def add_segments(w: segstore.IndexWriter, count: int, per: int = 5, start: int = 0) -> int:
    n = start
    for _ in range(count):
        w.bulk([IndexOp(str(n + j), {"v": vec(n + j), "n": n + j}) for j in range(per)])
        n += per
        w.refresh()
    return n


def all_ids(w: segstore.IndexWriter) -> list[str]:
    with w.acquire_reader() as r:
        return [leaf.stored_document(d)["_id"] for leaf in r.leaves for d in range(leaf.max_doc) if leaf.is_live(d)]


def files_on_disk(w: segstore.IndexWriter) -> set[str]:
    return {f for f in os.listdir(w.directory.path) if f != "write.lock"}


def test_refresh_runs_natural_merges(tmp_path: Any) -> None:
    w = new_writer(tmp_path, merge_policy=small_tiered())
    n = add_segments(w, 12)
    assert len(w.segments()) <= 5  # the tier budget of 3 (+ what is below it)
    assert any(s.info.diagnostics.get("source") == "merge" for s in w.segments())
    assert sorted(all_ids(w), key=int) == [str(i) for i in range(n)]
    stats = w.merge_stats()
    assert stats["current"] == 0 and stats["total"] >= 3 and stats["total_docs"] >= 3 * 5
    w.commit()
    assert files_on_disk(w) == {f for s in w.segments() for f in s.files()}
    w.close()


def test_no_merge_policy_is_the_default(tmp_path: Any) -> None:
    w = new_writer(tmp_path)
    add_segments(w, 12)
    assert len(w.segments()) == 12
    w.close()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, threading.Event]]:
    """Merges wait in SegmentMerger.merge until ``release`` is set; ``entered`` is set when one waits."""
    ev = {"entered": threading.Event(), "release": threading.Event()}
    orig = SegmentMerger.merge

    def merge(self: SegmentMerger) -> Any:
        ev["entered"].set()
        assert ev["release"].wait(60)
        return orig(self)

    monkeypatch.setattr(SegmentMerger, "merge", merge)
    yield ev
    ev["release"].set()


def test_indexing_refresh_and_search_go_on_during_a_background_merge(tmp_path: Any, gate: Any) -> None:
    cms = ConcurrentMergeScheduler(1)
    w = new_writer(tmp_path, merge_policy=small_tiered(), merge_scheduler=cms)
    n = add_segments(w, 4)
    assert gate["entered"].wait(30)  # a merge runs (and waits) in the background
    assert cms.running == 1
    t0 = time.perf_counter()
    n = add_segments(w, 3, start=n)
    w.index("x", {"v": vec(99), "n": 99})
    w.refresh()
    with w.acquire_reader() as r:
        top = segstore.knn_search(r, "v", np.array(vec(99), np.float32), 1)
        assert r.leaves[top.score_docs[0].leaf].stored_document(top.score_docs[0].doc)["_id"] == "x"
    assert w.get("3") is not None
    assert time.perf_counter() - t0 < 30 and cms.running == 1  # nothing waited for the merge
    gate["release"].set()
    assert cms.sync(60)
    w.maybe_merge()
    assert cms.sync(60)
    assert not cms.exceptions
    assert sorted(all_ids(w)) == sorted([str(i) for i in range(n)] + ["x"])
    assert len(w.segments()) < 8
    w.close()


def test_close_waits_for_the_running_merge(tmp_path: Any, gate: Any) -> None:
    cms = ConcurrentMergeScheduler(1)
    w = new_writer(tmp_path, merge_policy=small_tiered(), merge_scheduler=cms)
    n = add_segments(w, 4)
    assert gate["entered"].wait(30)
    closer = threading.Thread(target=w.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive()  # waiting for the merge
    gate["release"].set()
    closer.join(60)
    assert not closer.is_alive()
    w = segstore.open_index(str(tmp_path / "data"), "m")
    assert any(s.info.diagnostics.get("source") == "merge" for s in w.segments())  # in the final commit
    assert sorted(all_ids(w), key=int) == [str(i) for i in range(n)]
    w.close()


def test_close_without_commit_aborts_the_running_merge(tmp_path: Any, gate: Any) -> None:
    cms = ConcurrentMergeScheduler(1)
    w = new_writer(tmp_path, merge_policy=small_tiered(), merge_scheduler=cms)
    n = add_segments(w, 2)
    w.commit()
    committed = files_on_disk(w)
    add_segments(w, 2, start=n)
    assert gate["entered"].wait(30)
    closer = threading.Thread(target=w.close, kwargs={"commit": False})
    closer.start()
    deadline = time.monotonic() + 30
    while not w._merge_abort and time.monotonic() < deadline:
        time.sleep(0.01)
    gate["release"].set()  # the merge starts, sees the abort at its first check and cleans up
    closer.join(60)
    assert not closer.is_alive() and cms.sync(30)
    assert not cms.exceptions  # an abort is not a failure
    assert files_on_disk(w) == committed  # the merged segment's files and the uncommitted segments are gone
    w = segstore.open_index(str(tmp_path / "data"), "m")  # the translog brings back the rest
    w.refresh()
    assert sorted(all_ids(w), key=int) == [str(i) for i in range(2 * n)]
    w.close()


def test_force_merge_while_indexing_and_background_merging(tmp_path: Any) -> None:
    w = new_writer(tmp_path, merge_policy=small_tiered(), merge_scheduler=ConcurrentMergeScheduler(1))
    n = add_segments(w, 8)
    stop = threading.Event()
    errors: list[BaseException] = []
    added: list[str] = []

    def indexer() -> None:
        i = 0
        try:
            while not stop.is_set():
                w.bulk([IndexOp(f"x{i}", {"v": vec(i), "n": i}), IndexOp(f"x{i + 1}", {"v": vec(i + 1), "n": i})])
                added.extend((f"x{i}", f"x{i + 1}"))
                i += 2
                w.refresh()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=indexer)
    t.start()
    try:
        time.sleep(0.2)
        results = w.force_merge(1)
        assert results
    finally:
        stop.set()
        t.join(60)
    assert not errors, errors
    merged = results[-1].commit_info.name
    assert merged in {s.name for s in w.segments()}
    with w.acquire_reader() as r:
        leaf = r.leaf(merged)
        assert leaf is not None
        assert {str(i) for i in range(n)} <= {leaf.stored_document(d)["_id"] for d in range(leaf.max_doc)}
    w.merge_scheduler.sync(60)  # type: ignore[attr-defined]
    ids = all_ids(w)
    assert len(ids) == len(set(ids)) and set(ids) == {str(i) for i in range(n)} | set(added)
    w.close()


def test_a_merge_never_changes_what_a_search_sees(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An update that lands on an input while it is merged, not yet refreshed, stays invisible to search
    after the merge commits (its delete is remapped to the merged segment and applied at the next refresh),
    while the realtime GET already sees it."""
    w = new_writer(tmp_path)
    add_segments(w, 3)
    orig = SegmentMerger.merge

    def merge(self: SegmentMerger) -> Any:
        result = orig(self)
        t = threading.Thread(target=lambda: w.index("7", {"v": vec(700), "n": 700}))
        t.start()
        t.join(30)
        return result

    monkeypatch.setattr(SegmentMerger, "merge", merge)
    with w.acquire_reader() as before:
        docs_before = before.num_docs
    w.force_merge(1, flush=False)
    monkeypatch.undo()
    with w.acquire_reader() as r:
        assert len(r.leaves) == 1 and r.num_docs == docs_before
        (leaf,) = r.leaves
        sevens = [leaf.stored_document(d) for d in range(leaf.max_doc) if leaf.is_live(d)
                  and leaf.stored_document(d)["_id"] == "7"]
        assert [s["_version"] for s in sevens] == [1]  # the old copy, still the searchable one
    g = w.get("7")
    assert g is not None and g.version == 2 and g.source["n"] == 700  # realtime: the new one
    w.refresh()
    with w.acquire_reader() as r:
        sevens = [leaf.stored_document(d)["_version"] for leaf in r.leaves for d in range(leaf.max_doc)
                  if leaf.is_live(d) and leaf.stored_document(d)["_id"] == "7"]
        assert sevens == [2]
    w.commit()
    w.close()
    w = segstore.open_index(str(tmp_path / "data"), "m")
    assert w.get("7").version == 2 and sorted(all_ids(w), key=int) == [str(i) for i in range(15)]
    w.close()


def test_a_merge_of_only_deleted_documents_drops_the_segment(tmp_path: Any) -> None:
    w = new_writer(tmp_path, merge_policy=small_tiered())
    add_segments(w, 2)
    w.bulk([DeleteOp(str(i)) for i in range(10)])
    w.refresh()
    w.force_merge(1)
    assert w.segments() == [] and w.stats()["docs"] == 0
    assert files_on_disk(w) == set()
    w.index("a", {"v": vec(1), "n": 1})
    w.close()
    w = segstore.open_index(str(tmp_path / "data"), "m")
    w.refresh()
    assert all_ids(w) == ["a"]
    w.close()
