"""Indexing, searching and background merging at the same time (reliability.md §8 row 17,
ThreadedIndexingAndSearchingTestCase).

4 indexing threads index, update and delete documents of their own key ranges (so a per-thread model of
every acknowledged operation is exact); 4 search threads take a point-in-time reader and run the same k-NN
query twice on it, with merges and commits happening in between: the results must be identical, and the
snapshot never shows a document twice. A refresher refreshes and commits; a tiered policy with a tiny floor
keeps two background merge threads busy. Afterwards a force merge to one segment must hold every
acknowledged document exactly once, at its last version, and no deleted one; so must the reopened index.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import numpy as np
import pytest

import segstore
from segstore.index.merge_policy import TieredMergePolicy
from segstore.index.merge_scheduler import ConcurrentMergeScheduler
from segstore.index.operations import DeleteOp, IndexOp

DIM = 8
MAPPINGS = {"properties": {"v": {"type": "knn_vector", "dimension": DIM}, "tag": {"type": "keyword"},
                           "t": {"type": "text"}}}
KEYS_PER_THREAD = 300


def vector(key: str, rev: int) -> list[float]:
    rng = random.Random(f"{key}/{rev}")
    return [rng.uniform(-1, 1) for _ in range(DIM)]


def run_stress(tmp_path: Any, seconds: float, seed: int = 0) -> None:
    policy = TieredMergePolicy(segments_per_tier=3, max_merge_at_once=3, floor_segment=16 << 10)
    cms = ConcurrentMergeScheduler(2)
    data = str(tmp_path / "data")
    w = segstore.create_index(data, "s", settings={"index.knn": True, "index.translog.durability": "async"},
                              mappings=MAPPINGS, merge_policy=policy, merge_scheduler=cms)
    models: list[dict[str, int]] = [{} for _ in range(4)]  # key -> rev of the last acknowledged index op
    stop = threading.Event()
    errors: list[BaseException] = []
    stats = {"searches": 0, "ops": 0, "snapshots_checked": 0}
    stats_lock = threading.Lock()

    def guarded(fn: Any) -> Any:
        def run(*a: Any) -> None:
            try:
                fn(*a)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
                stop.set()
        return run

    @guarded
    def indexer(t: int) -> None:
        rng = random.Random(seed * 100 + t)
        model = models[t]
        revs: dict[str, int] = {}
        while not stop.is_set():
            batch: list[IndexOp | DeleteOp] = []
            effects: list[tuple[str, int | None]] = []
            for _ in range(rng.randint(1, 8)):
                key = f"{t}-{rng.randrange(KEYS_PER_THREAD)}"
                if key in (k for k, _ in effects):
                    continue
                if rng.random() < 0.2 and key in model:
                    batch.append(DeleteOp(key))
                    effects.append((key, None))
                else:  # a new document or an update of an existing one
                    rev = revs.get(key, 0) + 1
                    revs[key] = rev
                    batch.append(IndexOp(key, {"v": vector(key, rev), "tag": f"r{rev}", "t": f"{key} rev {rev}"}))
                    effects.append((key, rev))
            results = w.bulk(batch)
            for (key, rev), res in zip(effects, results):
                assert not isinstance(res, Exception), res
                if rev is None:
                    model.pop(key, None)
                else:
                    model[key] = rev
            with stats_lock:
                stats["ops"] += len(batch)

    @guarded
    def searcher(t: int) -> None:
        rng = np.random.default_rng(seed * 100 + 10 + t)
        n = 0
        while not stop.is_set():
            with w.acquire_reader() as reader:
                q = rng.uniform(-1, 1, DIM).astype(np.float32)
                first = segstore.knn_search(reader, "v", q, 10)
                docs = reader.num_docs
                time.sleep(rng.uniform(0, 0.01))  # let refreshes, merges and commits happen
                second = segstore.knn_search(reader, "v", q, 10)
                assert second == first, "a point-in-time reader changed its results"
                assert reader.num_docs == docs
                ids = [reader.leaves[sd.leaf].stored_document(sd.doc)["_id"] for sd in first.score_docs]
                assert len(ids) == len(set(ids)), ids
                n += 1
                if n % 25 == 0:  # a whole snapshot: no id is live twice
                    live = [leaf.stored_document(d)["_id"] for leaf in reader.leaves for d in range(leaf.max_doc)
                            if leaf.is_live(d)]
                    assert len(live) == len(set(live)), "a document is live twice in one snapshot"
                    with stats_lock:
                        stats["snapshots_checked"] += 1
            with stats_lock:
                stats["searches"] += 1

    @guarded
    def refresher() -> None:
        rng = random.Random(seed)
        last_commit = time.monotonic()
        while not stop.is_set():
            time.sleep(rng.uniform(0.01, 0.05))
            w.refresh()
            if time.monotonic() - last_commit > 1.0:
                w.commit()
                last_commit = time.monotonic()

    threads = ([threading.Thread(target=indexer, args=(t,)) for t in range(4)]
               + [threading.Thread(target=searcher, args=(t,)) for t in range(4)]
               + [threading.Thread(target=refresher)])
    for th in threads:
        th.start()
    stop.wait(seconds)
    stop.set()
    for th in threads:
        th.join(120)
        assert not th.is_alive()
    assert not errors, errors
    assert cms.sync(120)
    assert not cms.exceptions, list(cms.exceptions)
    merges = w.merge_stats()["total"]
    assert merges >= 3, "the policy was expected to merge in the background"
    assert stats["searches"] > 20 and stats["ops"] > 500 and stats["snapshots_checked"] > 0

    w.force_merge(1)
    assert cms.sync(120)
    assert len(w.segments()) == 1
    expected = {key: rev for model in models for key, rev in model.items()}
    check(w, expected)
    w.close()
    w = segstore.open_index(data, "s")
    check(w, expected)
    on_disk = set(os.listdir(w.directory.path)) - {"write.lock"}
    assert on_disk == {f for s in w.segments() for f in s.files()}
    w.close()


def check(w: segstore.IndexWriter, expected: dict[str, int]) -> None:
    """Every acknowledged document exactly once at its last revision; deleted ones gone."""
    with w.acquire_reader() as reader:
        live: dict[str, int] = {}
        for leaf in reader.leaves:
            for d in range(leaf.max_doc):
                if leaf.is_live(d):
                    doc_id = leaf.stored_document(d)["_id"]
                    assert doc_id not in live, f"{doc_id} is live twice"
                    src = leaf.source(d)
                    assert src is not None
                    live[doc_id] = int(src["tag"][1:])
                    assert src["v"] == pytest.approx(vector(doc_id, live[doc_id]), abs=1e-6)
    assert live == expected
    for key in list(expected)[:50]:
        g = w.get(key)
        assert g is not None and g.source["tag"] == f"r{expected[key]}"


def test_stress_10s(tmp_path: Any) -> None:
    run_stress(tmp_path, 10.0, seed=1)


@pytest.mark.slow
def test_stress_60s(tmp_path: Any) -> None:
    run_stress(tmp_path, 60.0, seed=2)
