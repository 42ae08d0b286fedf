"""kill -9 during flush, commit and merge, then ``segstore recover`` (reliability.md §8 rows 6 and 8).

A child process (this file run as a script) indexes, updates and deletes documents with ``request``
durability, printing ``A <id> <hash>`` after each call returned (acknowledged), then runs a flush, a commit
or a force merge during which a failpoint SIGKILLs the process itself at a precise step:

* ``flush.mid`` / ``merge.mid``: when the 3rd file of the new segment is being created (a temp file and some
  published files are left);
* ``flush.after`` / ``merge.after``: the new segment is complete on disk but not yet committed;
* ``commit.before`` / ``commit.after``: just before / just after the catalog transaction (after: the
  translog has not been trimmed yet);
* ``translog.roll``: the translog rolled its generation, the commit was never published.

The parent then runs ``segstore recover``: every acknowledged operation must be in the new commit (checked
through ``segstore dump``), a second ``recover`` replays nothing and changes nothing, and ``check --level 2``
is clean with no leftover file. The slow test kills a random-workload child (``tests/crash/kill9_child.py``)
after random delays, several rounds on the same index.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import pytest

HERE = os.path.abspath(__file__)
sys.path.insert(0, os.path.dirname(HERE))  # test_cli_common, whatever the pytest import mode
INDEX = "crash"
MAPPINGS = {"properties": {"v": {"type": "knn_vector", "dimension": 4}, "tag": {"type": "keyword"},
                           "n": {"properties": {"w": {"type": "knn_vector", "dimension": 2}}}}}
POINTS = ["flush.mid", "flush.after", "commit.before", "commit.after", "merge.mid", "merge.after", "translog.roll"]


def source_hash(source: Any) -> str:
    return hashlib.sha1(json.dumps(source, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------ child


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _install(point: str, armed: dict[str, bool]) -> None:
    import segstore.index.writer_refresh as wr
    from segstore.index.catalog import Catalog
    from segstore.index.segment_merger import SegmentMerger
    from segstore.store.fs_directory import FSDirectory
    from segstore.translog import Translog

    if point.endswith(".mid"):
        orig_create = FSDirectory.create_output
        count = [0]

        def create_output(self: Any, name: str) -> Any:
            out = orig_create(self, name)
            if armed["on"] and name.startswith("_"):
                count[0] += 1
                if count[0] == 3:
                    out.write(b"partial")
                    _die()
            return out

        FSDirectory.create_output = create_output  # type: ignore[method-assign]
    elif point == "flush.after":
        orig_flush = wr.flush_documents

        def flush_documents(*a: Any, **k: Any) -> Any:
            result = orig_flush(*a, **k)
            if armed["on"]:
                _die()
            return result

        wr.flush_documents = flush_documents
    elif point.startswith("commit."):
        orig_commit = Catalog.commit

        def commit(self: Any, *a: Any, **k: Any) -> Any:
            if armed["on"] and point == "commit.before":
                _die()
            gen = orig_commit(self, *a, **k)
            if armed["on"]:
                _die()
            return gen

        Catalog.commit = commit  # type: ignore[method-assign]
    elif point == "merge.after":
        orig_merge = SegmentMerger.merge

        def merge(self: Any) -> Any:
            result = orig_merge(self)
            if armed["on"]:
                _die()
            return result

        SegmentMerger.merge = merge  # type: ignore[method-assign]
    elif point == "translog.roll":
        orig_roll = Translog.roll_generation

        def roll_generation(self: Any) -> int:
            gen = orig_roll(self)
            if armed["on"]:
                _die()
            return gen

        Translog.roll_generation = roll_generation  # type: ignore[method-assign]


def child(data_dir: str, point: str, seed: int) -> None:
    import segstore
    from segstore.index.operations import DeleteOp, IndexOp

    rng = random.Random(seed)
    armed = {"on": False}
    _install(point, armed)
    w = segstore.create_index(data_dir, INDEX, settings={"index.knn": True}, mappings=MAPPINGS)

    def emit(lines: list[str]) -> None:
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()

    def ops(n: int) -> None:
        batch, acks = [], []
        for _ in range(n):
            doc_id = f"d{rng.randrange(60)}"
            if rng.random() < 0.85:
                src: dict[str, Any] = {"v": [rng.randint(-999, 999) / 1000 for _ in range(4)],
                                       "tag": rng.choice("xyz"), "k": rng.randrange(1000)}
                if rng.random() < 0.3:
                    src["n"] = {"w": [rng.randint(-9, 9) / 10, 0.5]}
                batch.append(IndexOp(doc_id, src))
                acks.append(f"A {doc_id} {source_hash(src)}")
            else:
                batch.append(DeleteOp(doc_id))
                acks.append(f"A {doc_id} deleted")
        results = w.bulk(batch)
        assert not [r for r in results if isinstance(r, Exception)]
        emit(acks)

    emit(["READY"])
    for i in range(6):  # three committed segments with deletes, plus buffered and refreshed operations
        ops(25)
        if i % 2 == 1:
            w.commit()
    ops(20)
    w.refresh()
    ops(15)
    if point.startswith("merge"):
        w.refresh()  # so the forced merge's own refresh flushes nothing: the failpoint fires in the merge
    armed["on"] = True
    if point.startswith("flush"):
        w.refresh()
    elif point.startswith("merge"):
        w.force_merge(1)
    else:
        w.commit()
    emit(["SURVIVED"])


# ----------------------------------------------------------------------------------------------- parent


def _expected(lines: list[str]) -> dict[str, str]:
    state: dict[str, str] = {}
    for line in lines:
        if line.startswith("A "):
            _, doc_id, h = line.split()
            state[doc_id] = h
    return state


def _run_child(data_dir: str, point: str, seed: int) -> list[str]:
    proc = subprocess.run([sys.executable, HERE, "child", data_dir, point, str(seed)], capture_output=True,
                          timeout=120, env={**os.environ, "PYTHONHASHSEED": "0"}, check=False)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr.decode()[-3000:])
    lines = proc.stdout.decode().splitlines()
    assert "SURVIVED" not in lines and lines[0] == "READY"
    return lines


def _verify(capsys: Any, data_dir: str, expected: dict[str, str], *, first_replays: bool = True) -> dict[str, Any]:
    from test_cli_common import run_cli

    r = run_cli(capsys, "recover", data_dir, "--json")
    assert r.code == 0, r.out + r.err
    first = r.json()["indices"][0]
    if first_replays:
        assert first["replayed"] > 0 and first["committed"]
    dump = run_cli(capsys, "dump", data_dir, "--json")
    got = {d["_id"]: source_hash(d["_source"]) for d in dump.json()["docs"]}
    want = {k: v for k, v in expected.items() if v != "deleted"}
    assert got == want, (sorted(set(got) ^ set(want)), [k for k in got if k in want and got[k] != want[k]])
    # recovery twice gives the same result: nothing left to replay, same documents
    r2 = run_cli(capsys, "recover", data_dir, "--json").json()["indices"][0]
    assert r2["replayed"] == 0 and not r2["committed"] and r2["docs"] == first["docs"]
    assert run_cli(capsys, "dump", data_dir, "--json").out == dump.out
    check = run_cli(capsys, "check", data_dir, "--level", "2", "--json")
    assert check.code == 0, check.out
    assert check.json()["indices"][0]["unreferenced_files"] == []
    return first


@pytest.mark.parametrize("point", POINTS)
def test_kill9_at_failpoint_then_recover(capsys: pytest.CaptureFixture[str], tmp_path: Any, point: str) -> None:
    data_dir = str(tmp_path / "data")
    lines = _run_child(data_dir, point, seed=POINTS.index(point) + 7)
    expected = _expected(lines)
    assert len(expected) > 20
    from test_cli_common import run_cli

    # before recovery: check sees a consistent last commit; leftovers of the killed step are reported
    r = run_cli(capsys, "check", data_dir, "--json")
    assert r.code == 0, r.out
    st = r.json()["indices"][0]
    committed = point == "commit.after"  # killed after the catalog transaction: everything is committed
    assert (st["translog"]["uncommitted_operations"] > 0) != committed
    if point in ("flush.after", "merge.after", "flush.mid", "merge.mid"):
        assert st["unreferenced_files"], point  # the half-done segment is visible, not referenced
    dry = run_cli(capsys, "recover", data_dir, "--dry-run", "--json").json()["indices"][0]
    first = _verify(capsys, data_dir, expected, first_replays=not committed)
    assert first["replayed"] == dry["would_replay"]
    if point in ("flush.after", "merge.after"):
        assert first["leftover_files_removed"]


@pytest.mark.slow
def test_kill9_random_workload_rounds(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    """Random operations, refreshes, commits, force merges and reopens, SIGKILLed after a random delay;
    three rounds on the same index. An operation in flight at the kill may be applied or not."""
    from test_cli_common import run_cli

    crash_child = os.path.join(os.path.dirname(os.path.dirname(HERE)), "crash", "kill9_child.py")
    data_dir = str(tmp_path / "data")
    seed = int(os.environ.get("SEGSTORE_TEST_SEED", "4242"))
    rng = random.Random(seed)
    state: dict[str, str] = {}
    for rnd in range(3):
        err = tempfile.TemporaryFile()
        mode = "create" if rnd == 0 else "open"
        proc = subprocess.Popen([sys.executable, crash_child, data_dir, str(seed + rnd), mode],
                                stdout=subprocess.PIPE, stderr=err, env={**os.environ, "PYTHONHASHSEED": "0"})
        lines: list[str] = []
        ready = threading.Event()

        def reader(proc: Any = proc, lines: list[str] = lines, ready: threading.Event = ready) -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                if not raw.endswith(b"\n"):
                    break
                lines.append(raw.decode().rstrip("\n"))
                if lines[-1] == "READY":
                    ready.set()

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        assert ready.wait(60), "child never got ready"
        time.sleep(rng.uniform(0.4, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        t.join(10)
        in_flight: dict[str, set[str]] = {}
        for line in lines:
            kind, *rest = line.split()
            if kind == "P":
                in_flight.setdefault(rest[0], set()).add(rest[1])
            elif kind == "A":
                state[rest[0]] = rest[1]
                in_flight.pop(rest[0], None)
        r = run_cli(capsys, "recover", data_dir, "--json")
        assert r.code == 0, (seed, r.out)
        dump = run_cli(capsys, "dump", data_dir, "--json").json()["docs"]
        got = {d["_id"]: _kill9_hash(d["_source"]) for d in dump}
        for doc_id in set(state) | set(got) | set(in_flight):
            want = state.get(doc_id, "deleted")
            have = got.get(doc_id, "deleted")
            assert have == want or have in in_flight.get(doc_id, set()), (seed, rnd, doc_id, want, have)
            if doc_id in in_flight:
                state[doc_id] = have
        assert run_cli(capsys, "recover", data_dir, "--json").json()["indices"][0]["replayed"] == 0
        assert run_cli(capsys, "check", data_dir, "--level", "2").code == 0


def _kill9_hash(source: Any) -> str:
    # tests/crash/kill9_child.py's source_hash (key order counts)
    return hashlib.sha1(json.dumps(source).encode()).hexdigest()[:20]


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "child":
    child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
