"""Writer process for the kill -9 tests (``test_kill9.py``); the parent SIGKILLs it at a random moment.

Usage: ``python kill9_child.py DATA_DIR SEED {create|open}``

Protocol on stdout (one line per event, flushed; a line is only ever written whole):

* ``READY``                 the writer is open;
* ``P <id> <hash>|deleted`` an operation about to be sent (it may or may not survive a kill);
* ``A <id> <hash>|deleted`` the operation was acknowledged: the call returned (``request`` durability, so it
                            is fsynced in the translog) - printed strictly AFTER the call returned;
* ``X <what>``              a refresh / commit / force merge / reopen returned (informational).

``<hash>`` is :func:`source_hash` of the source exactly as a GET must return it. Vector components are
multiples of 1/1000 in [-1, 1], which float32 round-trips to the same shortest decimal, so the expected GET
source equals the indexed source.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from typing import Any

INDEX = "kill9"
N_IDS = 80
MAPPINGS = {
    "properties": {
        "v": {"type": "knn_vector", "dimension": 4},
        "a": {"properties": {"b": {"properties": {"vec": {"type": "knn_vector", "dimension": 2}}}}},
        "title": {"type": "text"},
    }
}
SETTINGS = {"index.knn": True, "index.translog.durability": "request"}


def source_hash(source: Any) -> str:
    """Content hash of a ``_source`` (key order counts: GET must preserve it)."""
    return "deleted" if source is None else hashlib.sha1(json.dumps(source).encode()).hexdigest()[:20]


def make_source(rng: random.Random, doc_id: str, n: int) -> dict[str, Any]:
    src: dict[str, Any] = {"title": f"doc {doc_id} rev {n}", "n": n}
    roll = rng.random()
    if roll < 0.8:
        src["v"] = [rng.randint(-1000, 1000) / 1000 for _ in range(4)]
    elif roll < 0.9:
        src["v"] = None
    src["meta"] = {"tags": [rng.choice("xyz") for _ in range(rng.randint(0, 3))], "deep": {"k": n % 7}}
    if rng.random() < 0.4:
        src["a"] = {"b": {"vec": [rng.randint(-1000, 1000) / 1000 for _ in range(2)], "note": "obj"}}
    return src


def main() -> None:
    data_dir, seed, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    import segstore
    from segstore.index.operations import DeleteOp, IndexOp

    rng = random.Random(seed)
    out = sys.stdout

    def emit(lines: list[str]) -> None:
        out.write("".join(line + "\n" for line in lines))
        out.flush()

    if mode == "create":
        w = segstore.create_index(data_dir, INDEX, settings=SETTINGS, mappings=MAPPINGS)
    else:
        w = segstore.open_index(data_dir, INDEX)
    emit(["READY"])
    n = seed * 1_000_000
    while True:
        roll = rng.random()
        if roll < 0.78:
            ops: list[Any] = []
            pending: list[tuple[str, str]] = []
            for _ in range(rng.randint(1, 6)):
                doc_id = f"d{rng.randrange(N_IDS)}"
                if rng.random() < 0.75:
                    n += 1
                    src = make_source(rng, doc_id, n)
                    ops.append(IndexOp(doc_id, src))
                    pending.append((doc_id, source_hash(src)))
                else:
                    ops.append(DeleteOp(doc_id))
                    pending.append((doc_id, "deleted"))
            emit([f"P {i} {h}" for i, h in pending])
            if len(ops) == 1 and rng.random() < 0.5:  # the single-document entry points
                op = ops[0]
                w.index(op.doc_id, op.source) if isinstance(op, IndexOp) else w.delete(op.doc_id)
            else:
                results = w.bulk(ops)
                bad = [r for r in results if isinstance(r, Exception)]
                if bad:
                    raise bad[0]
            emit([f"A {i} {h}" for i, h in pending])
        elif roll < 0.88:
            w.refresh()
            emit(["X refresh"])
        elif roll < 0.94:
            w.commit()
            emit(["X commit"])
        elif roll < 0.97:
            w.force_merge(rng.choice([1, 2]), only_expunge_deletes=rng.random() < 0.3)
            emit(["X force_merge"])
        else:
            w.close(commit=rng.random() < 0.5)
            w = segstore.open_index(data_dir, INDEX)
            emit(["X reopen"])


if __name__ == "__main__":
    main()
