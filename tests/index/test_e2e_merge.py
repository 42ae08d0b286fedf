"""End-to-end merges: force merge drops deletes and remaps doc ids (GET, pk map), keeps stored source
masked, deletes old files only when no reader holds them; point-in-time readers survive merges and commits;
``max_num_segments`` and ``only_expunge_deletes``; deletes and updates that land on the inputs while a merge
runs are carried over to the merged segment.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import msgpack
import numpy as np
import pytest

import segstore
from segstore.index.operations import DeleteOp, IndexOp
from segstore.index.segment_merger import SegmentMerger

DIM = 4
MAPPINGS = {"properties": {"v": {"type": "knn_vector", "dimension": DIM}, "title": {"type": "text"}}}


def vec(i: int) -> list[float]:
    return [float(i), float(i % 7), 1.0, -float(i % 3)]


def src(i: int, rev: int = 0) -> dict[str, Any]:
    return {"title": f"doc {i} rev {rev}", "v": vec(i + rev * 1000), "i": i}


def expected(i: int, rev: int = 0) -> dict[str, Any]:
    return {"title": f"doc {i} rev {rev}", "v": [float(x) for x in vec(i + rev * 1000)], "i": i}


def build(tmp_path: Any, segments: int = 3, per_segment: int = 10) -> tuple[segstore.IndexWriter, dict[str, Any]]:
    """``segments`` segments of ``per_segment`` docs, then deletes and updates (committed)."""
    w = segstore.create_index(str(tmp_path / "data"), "m", settings={"index.knn": True}, mappings=MAPPINGS)
    model: dict[str, Any] = {}
    n = 0
    for _ in range(segments):
        w.bulk([IndexOp(str(n + j), src(n + j)) for j in range(per_segment)])
        model.update({str(n + j): expected(n + j) for j in range(per_segment)})
        n += per_segment
        w.refresh()
    w.bulk([DeleteOp("1"), DeleteOp(str(per_segment + 2)), IndexOp("3", src(3, 1))])
    model.pop("1")
    model.pop(str(per_segment + 2))
    model["3"] = expected(3, 1)
    w.commit()
    return w, model


def files_on_disk(w: segstore.IndexWriter) -> set[str]:
    return {f for f in os.listdir(w.directory.path) if f != "write.lock"}


def segment_files(w: segstore.IndexWriter) -> set[str]:
    return {f for s in w.segments() for f in s.files()}


def check_model(w: segstore.IndexWriter, model: dict[str, Any], universe: range | list[str]) -> None:
    for doc_id in universe:
        g = w.get(str(doc_id))
        if str(doc_id) in model:
            assert g is not None, doc_id
            assert g.source == model[str(doc_id)], doc_id
        else:
            assert g is None, doc_id


def live_ids(reader: segstore.DirectoryReader) -> list[str]:
    return [leaf.stored_document(d)["_id"] for leaf in reader.leaves for d in range(leaf.max_doc) if leaf.is_live(d)]


def test_force_merge_to_one(tmp_path: Any) -> None:
    w, model = build(tmp_path)
    assert len(w.segments()) == 4  # 3 + the update's segment
    old_names = {s.name for s in w.segments()}
    w.force_merge(1)
    (seg,) = w.segments()
    assert seg.name not in old_names
    assert seg.del_count == 0 and seg.info.max_doc == len(model) == 28
    assert w.stats()["deleted_docs"] == 0
    check_model(w, model, range(40))
    # the committed pk map points at the merged segment, at the doc that holds the id
    with w.acquire_reader() as reader:
        (leaf,) = reader.leaves
        for doc_id in model:
            pk = w.catalog.pk_get(w.uuid, doc_id)
            assert pk is not None and pk[0] == seg.name, (doc_id, pk)
            assert leaf.stored_document(pk[1])["_id"] == doc_id
            assert pk[2] == w.get(doc_id).version and pk[3] == w.get(doc_id).seq_no
        assert w.catalog.pk_get(w.uuid, "1") is None
        assert sorted(live_ids(reader), key=int) == sorted(model, key=int)
        # stored fields were copied masked
        rec = leaf.stored_document(w.catalog.pk_get(w.uuid, "3")[1])
        assert msgpack.unpackb(rec["_source"]) == {"title": "doc 3 rev 1", "v": 1, "i": 3}
        assert (rec["_version"], rec["_seq_no"]) == (2, w.get("3").seq_no)
    # old segment files are gone (no reader holds them), only the merged segment remains
    assert files_on_disk(w) == set(seg.files())
    w.close()
    w = segstore.open_index(str(tmp_path / "data"), "m")
    assert [s.name for s in w.segments()] == [seg.name]
    check_model(w, model, range(40))
    w.close()


def test_reader_acquired_before_merge_keeps_working(tmp_path: Any) -> None:
    w, model = build(tmp_path)
    old_reader = w.acquire_reader()
    old_files = segment_files(w)
    old_live = sorted(live_ids(old_reader), key=int)
    q = np.array(vec(5), np.float32)
    before = [(old_reader.leaves[s.leaf].stored_document(s.doc)["_id"], s.score)
              for s in segstore.knn_search(old_reader, "v", q, 5).score_docs]
    w.force_merge(1)  # merges and commits
    w.index("new", {"v": vec(99)})
    w.delete("5")
    w.commit()
    (seg,) = [s for s in w.segments() if s.info.diagnostics.get("source") == "merge"]
    # the old files are still on disk: the old reader holds them
    assert old_files <= files_on_disk(w)
    # the old reader still sees its snapshot: same hits, same live docs, same sources
    after = [(old_reader.leaves[s.leaf].stored_document(s.doc)["_id"], s.score)
             for s in segstore.knn_search(old_reader, "v", q, 5).score_docs]
    assert after == before and before[0] == ("5", 1.0)
    assert sorted(live_ids(old_reader), key=int) == old_live
    for leaf in old_reader.leaves:
        for d in range(leaf.max_doc):
            if leaf.is_live(d):
                doc_id = leaf.stored_document(d)["_id"]
                assert leaf.source(d) == model[doc_id]
        leaf.check_integrity()
    # a new reader sees the merged state
    with w.acquire_reader() as new_reader:
        ids = live_ids(new_reader)
        assert "5" not in ids and "new" in ids
    old_reader.close()
    old_reader.close()  # idempotent
    on_disk = files_on_disk(w)
    assert not (old_files & on_disk), sorted(old_files & on_disk)
    assert on_disk == segment_files(w)
    w.close()


def test_reader_outlives_writer(tmp_path: Any) -> None:
    w, model = build(tmp_path)
    reader = w.acquire_reader()
    old_files = segment_files(w)
    w.force_merge(1)
    w.close()
    assert old_files <= files_on_disk(w)
    assert sorted(live_ids(reader), key=int) == sorted(model, key=int)
    reader.close()
    assert not (old_files & files_on_disk(w))


def test_force_merge_max_num_segments(tmp_path: Any) -> None:
    w, model = build(tmp_path, segments=6, per_segment=5)
    assert len(w.segments()) == 7
    w.force_merge(max_num_segments=2)
    assert len(w.segments()) <= 2
    check_model(w, model, range(40))
    assert files_on_disk(w) == segment_files(w)
    w.force_merge(max_num_segments=2)  # already at the target: nothing to do
    assert len(w.segments()) <= 2
    w.force_merge(1)
    assert len(w.segments()) == 1
    check_model(w, model, range(40))
    w.close()


def test_only_expunge_deletes_rewrites_only_segments_with_deletes(tmp_path: Any) -> None:
    w, model = build(tmp_path)
    before = {s.name: (s.info.segment_id, s.del_count) for s in w.segments()}
    with_deletes = {n for n, (_, dc) in before.items() if dc}
    assert with_deletes == {"_0", "_1"}  # docs 1, 3 (updated) in _0; doc 12 in _1
    w.force_merge(only_expunge_deletes=True)
    after = {s.name: (s.info.segment_id, s.del_count) for s in w.segments()}
    for name in set(before) - with_deletes:
        assert after[name] == before[name]  # untouched: same segment, same id
    assert not (with_deletes & set(after))
    assert all(dc == 0 for _, dc in after.values())
    assert len(after) == len(before)  # each segment with deletes was rewritten on its own
    check_model(w, model, range(40))
    assert files_on_disk(w) == segment_files(w)
    w.close()


def test_force_merge_single_segment_with_deletes_is_rewritten(tmp_path: Any) -> None:
    w = segstore.create_index(str(tmp_path / "data"), "m", settings={"index.knn": True}, mappings=MAPPINGS)
    w.bulk([IndexOp(str(i), src(i)) for i in range(10)])
    w.refresh()
    w.delete("4")
    w.force_merge(1)
    (seg,) = w.segments()
    assert seg.name != "_0" and seg.del_count == 0 and seg.info.max_doc == 9
    w.force_merge(1)  # nothing left to expunge: stays
    assert [s.name for s in w.segments()] == [seg.name]
    w.close()


def _patch_merge(monkeypatch: pytest.MonkeyPatch, during: Any) -> list[Any]:
    calls: list[Any] = []
    orig = SegmentMerger.merge

    def merge(self: SegmentMerger) -> Any:
        result = orig(self)
        calls.append(result)
        if len(calls) == 1:
            # from another thread, as a concurrent indexer would (the merge holds no writer lock here)
            errors: list[BaseException] = []

            def run() -> None:
                try:
                    during()
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)

            t = threading.Thread(target=run)
            t.start()
            t.join(30)
            assert not t.is_alive() and not errors, errors
        return result

    monkeypatch.setattr(SegmentMerger, "merge", merge)
    return calls


@pytest.mark.parametrize("refresh_during", [False, True])
def test_changes_during_merge_are_carried_over(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                               refresh_during: bool) -> None:
    w, model = build(tmp_path)
    inputs = {s.name for s in w.segments()}

    def during() -> None:
        w.bulk([DeleteOp("0"), DeleteOp("15"), IndexOp("7", src(7, 2)), IndexOp("25", src(25, 3)),
                IndexOp("fresh", {"v": vec(50), "title": "fresh"})])
        if refresh_during:
            w.refresh()  # the deletes become new .liv generations of the inputs while they are merged

    calls = _patch_merge(monkeypatch, during)
    w.force_merge(1)
    assert len(calls) == 1
    for k in ("0", "15"):
        model.pop(k)
    model["7"] = expected(7, 2)
    model["25"] = expected(25, 3)
    model["fresh"] = {"v": [float(x) for x in vec(50)], "title": "fresh"}
    check_model(w, model, [*map(str, range(40)), "fresh"])
    merged = [s for s in w.segments() if s.name not in inputs and s.info.diagnostics.get("source") == "merge"]
    assert len(merged) == 1
    assert merged[0].del_count == 4  # 0, 15 deleted; old copies of 7 and 25 replaced
    with w.acquire_reader() as reader:
        ids = live_ids(reader)
        assert len(ids) == len(set(ids)) == len(model)  # exactly one live copy per id
        assert set(ids) == set(model)
    w.close()
    w = segstore.open_index(str(tmp_path / "data"), "m")
    check_model(w, model, [*map(str, range(40)), "fresh"])
    for doc_id in model:
        pk = w.catalog.pk_get(w.uuid, doc_id)
        with w.acquire_reader() as reader:
            leaf = reader.leaf(pk[0])
            assert leaf is not None and leaf.is_live(pk[1])
            assert leaf.stored_document(pk[1])["_id"] == doc_id
    w.close()


def test_merge_then_crash_before_commit_recovers(tmp_path: Any) -> None:
    """A merge that is not committed (flush=False) is simply lost on reopen; no document is."""
    w, model = build(tmp_path)
    committed = set(os.listdir(w.directory.path))
    w.force_merge(1, flush=False)
    w.index("after", {"v": vec(1)})
    w.close(commit=False)
    w = segstore.open_index(str(tmp_path / "data"), "m")
    model["after"] = {"v": [float(x) for x in vec(1)]}
    check_model(w, model, [*map(str, range(40)), "after"])
    assert files_on_disk(w) <= committed  # the uncommitted merged segment was cleaned up
    w.close()


def test_live_docs_generations_are_deleted_when_unreferenced(tmp_path: Any) -> None:
    w = segstore.create_index(str(tmp_path / "data"), "m", settings={"index.knn": True}, mappings=MAPPINGS)
    w.bulk([IndexOp(str(i), src(i)) for i in range(10)])
    w.refresh()

    def liv() -> list[str]:
        return sorted(f for f in os.listdir(w.directory.path) if f.endswith(".liv"))

    w.delete("1")
    w.refresh()
    assert liv() == ["_0_1.liv"]
    held = w.acquire_reader()  # holds generation 1
    w.delete("2")
    w.refresh()
    w.delete("3")
    w.refresh()
    assert liv() == ["_0_1.liv", "_0_3.liv"]  # gen 2: no reader, not committed -> deleted at once
    assert sorted(live_ids(held), key=int) == [str(i) for i in range(10) if i != 1]
    held.close()
    assert liv() == ["_0_3.liv"]
    w.commit()
    w.delete("4")
    w.refresh()
    assert liv() == ["_0_3.liv", "_0_4.liv"]  # gen 3 is held by the last commit
    w.commit()
    assert liv() == ["_0_4.liv"]
    w.close()
    w = segstore.open_index(str(tmp_path / "data"), "m")
    assert [w.get(str(i)) is not None for i in range(10)] == [i not in (1, 2, 3, 4) for i in range(10)]
    w.close()
