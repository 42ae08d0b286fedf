"""The LMDB catalog: round trips, atomic commits, corruption detection, map growth, shared env, processes."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb
import msgpack
import pytest

from segstore.errors import AlreadyClosedError, CatalogError, ChecksumMismatchError, CorruptIndexError, MapFullError
from segstore.index.catalog import MAX_DOC_ID_BYTES, Catalog

U1 = bytes(range(16))
U2 = bytes(range(16, 32))


def seg(name: str = "_0", max_doc: int = 10, del_count: int = 0, del_gen: int = 0) -> dict[str, Any]:
    return {"name": name, "id": os.urandom(16), "codec": "SegStore1", "max_doc": max_doc,
            "del_gen": del_gen, "del_count": del_count}


@pytest.fixture
def cat(tmp_path: Path) -> Iterator[Catalog]:
    c = Catalog.open(tmp_path)
    yield c
    c.close()


def raw_put(c: Catalog, db: str, key: bytes, value: bytes) -> None:
    """Write bytes behind the catalog's back, through its own (shared) environment."""
    with c.env.begin(write=True) as txn:
        txn.put(key, value, db=c.env.open_db(db.encode(), txn=txn))


def raw_get(c: Catalog, db: str, key: bytes) -> bytes:
    with c.env.begin(write=True) as txn:
        data = txn.get(key, db=c.env.open_db(db.encode(), txn=txn))
    assert data is not None
    return data


def frame(value: Any) -> bytes:
    payload = msgpack.packb(value, use_bin_type=True)
    return struct.pack(">I", zlib.crc32(payload)) + payload


def run_child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# --------------------------------------------------------------------------------------------- round trips


def test_index_metadata_round_trip(cat: Catalog) -> None:
    cat.create_index("books", U1, {"settings": {"shards": 1}, "mappings": {"k": [1, 2]}})
    cat.create_index("ünïcode", U2, {})
    assert cat.get_index("books") == {"settings": {"shards": 1}, "mappings": {"k": [1, 2]}, "uuid": U1}
    assert cat.get_index("missing") is None
    assert cat.list_indices() == ["books", "ünïcode"]
    cat.put_index_metadata("books", {"settings": {"shards": 2}})
    assert cat.get_index("books") == {"settings": {"shards": 2}, "uuid": U1}
    with pytest.raises(CatalogError, match="already exists"):
        cat.create_index("books", os.urandom(16), {})
    with pytest.raises(CatalogError, match="already used"):
        cat.create_index("other", U1, {})
    with pytest.raises(CatalogError, match="no index"):
        cat.put_index_metadata("missing", {})
    with pytest.raises(CatalogError, match="16 bytes"):
        cat.create_index("short", b"x" * 15, {})
    with pytest.raises(CatalogError, match="511"):
        cat.create_index("x" * 512, os.urandom(16), {})
    assert cat.list_indices() == ["books", "ünïcode"]


def test_commit_generations_keep_last_two(cat: Catalog) -> None:
    cat.create_index("i", U1, {})
    assert cat.latest_commit(U1) is None and cat.list_commits(U1) == []
    s = seg()
    for expected in range(1, 6):
        assert cat.commit(U1, {"segments": [s], "user_data": {"translog_uuid": "t", "n": expected}}) == expected
    assert cat.list_commits(U1) == [4, 5]
    latest = cat.latest_commit(U1)
    assert latest == {"segments": [s], "user_data": {"translog_uuid": "t", "n": 5}, "generation": 5}
    assert cat.get_commit(U1, 4)["user_data"]["n"] == 4  # type: ignore[index]
    assert cat.get_commit(U1, 3) is None
    assert cat.commit(U1, {}) == 6  # a record without segments is valid (an empty index)


def test_commit_refused_for_unknown_or_impossible(cat: Catalog) -> None:
    with pytest.raises(CatalogError, match="no index with uuid"):
        cat.commit(U1, {})
    cat.create_index("i", U1, {})
    with pytest.raises(CatalogError, match="impossible del_count=11 for max_doc=10"):
        cat.commit(U1, {"segments": [seg(del_count=11)]}, {"a": ("_0", 0, 1, 0)})
    with pytest.raises(CatalogError, match="invalid id"):
        cat.commit(U1, {"segments": [{**seg(), "id": b"short"}]})
    assert cat.list_commits(U1) == [] and cat.pk_get(U1, "a") is None


def test_commit_is_atomic_when_the_txn_function_fails(cat: Catalog) -> None:
    cat.create_index("i", U1, {})
    assert cat.commit(U1, {"segments": [seg()]}, {"a": ("_0", 0, 1, 0), "b": ("_0", 1, 1, 1)}) == 1
    # The record and "c" are written inside the transaction before "d" fails to encode.
    with pytest.raises(CatalogError, match="cannot encode"):
        cat.commit(U1, {"segments": [seg("_1")]}, {"a": None, "c": ("_1", 0, 1, 2), "d": ("_1", object())})
    assert cat.list_commits(U1) == [1]
    assert cat.latest_commit(U1)["generation"] == 1  # type: ignore[index]
    assert cat.pk_get_many(U1, ["a", "b", "c", "d"]) == [("_0", 0, 1, 0), ("_0", 1, 1, 1), None, None]
    with pytest.raises(CatalogError, match="must be a tuple"):
        cat.commit(U1, {}, {"a": "not-a-tuple"})  # type: ignore[dict-item]
    assert cat.commit(U1, {}, {"a": None}) == 2  # the next generation follows the last durable one
    assert cat.pk_get(U1, "a") is None


def test_pk_map_round_trip(cat: Catalog) -> None:
    cat.create_index("i", U1, {})
    ids = ["b", "a", "é", "z" * MAX_DOC_ID_BYTES, "€" * (MAX_DOC_ID_BYTES // 3)]
    cat.commit(U1, {}, {d: ("_0", n, 1, n) for n, d in enumerate(ids)})
    assert cat.pk_get(U1, "a") == ("_0", 1, 1, 1)
    assert cat.pk_get(U1, "nope") is None
    assert cat.pk_get_many(U1, ["é", "nope", "b"]) == [("_0", 2, 1, 2), None, ("_0", 0, 1, 0)]
    assert cat.pk_count(U1) == 5
    items = list(cat.pk_items(U1))
    assert [d for d, _ in items] == sorted(ids, key=lambda s: s.encode())  # key (UTF-8 byte) order
    assert dict(items)["b"] == ("_0", 0, 1, 0)
    it = cat.pk_items(U1)  # a snapshot as of the call: later commits do not show up in it
    cat.commit(U1, {}, {"b": None, "new": ("_1", 0, 2, 9)})
    assert len(list(it)) == 5
    assert cat.pk_count(U1) == 5 and cat.pk_get(U1, "b") is None and cat.pk_get(U1, "new") == ("_1", 0, 2, 9)
    for bad in ("", "z" * (MAX_DOC_ID_BYTES + 1), "€" * (MAX_DOC_ID_BYTES // 3 + 1)):
        with pytest.raises(CatalogError, match="doc id must be"):
            cat.pk_get(U1, bad)
        with pytest.raises(CatalogError, match="doc id must be"):
            cat.commit(U1, {}, {bad: ("_0", 0, 1, 0)})


def test_delete_index_removes_only_that_uuid(cat: Catalog) -> None:
    for name, u in (("a", U1), ("b", U2)):
        cat.create_index(name, u, {"n": name})
        for g in range(3):
            cat.commit(u, {"segments": [seg()]}, {f"{name}{i}": ("_0", i, 1, g) for i in range(50)})
    cat.delete_index("a")
    assert cat.get_index("a") is None and cat.list_indices() == ["b"]
    assert cat.latest_commit(U1) is None and cat.list_commits(U1) == []
    assert cat.pk_count(U1) == 0 and list(cat.pk_items(U1)) == []
    assert cat.list_commits(U2) == [2, 3] and cat.pk_count(U2) == 50 and cat.get_index("b")["n"] == "b"  # type: ignore[index]
    assert cat.stats()["entries"] == {"indices": 1, "commits": 3, "pk": 50, "models": 0, "meta": 0}
    with pytest.raises(CatalogError, match="deleted"):
        cat.commit(U1, {})  # a late flush of the deleted index cannot resurrect it
    with pytest.raises(CatalogError, match="no index"):
        cat.delete_index("a")
    cat.create_index("a", U1, {})  # name and uuid are free again
    assert cat.commit(U1, {}) == 1


def test_models_and_meta_round_trip(cat: Catalog) -> None:
    cat.put_model("m2", {"state": "created", "blob": b"\x00\x01"})
    cat.put_model("m1", {"model_id": "m1", "state": "training"})
    assert cat.get_model("m2") == {"state": "created", "blob": b"\x00\x01"}
    assert cat.get_model("none") is None
    assert [m["model_id"] for m in cat.list_models()] == ["m1", "m2"]
    assert cat.delete_model("m1") is True and cat.delete_model("m1") is False
    assert [m["model_id"] for m in cat.list_models()] == ["m2"]
    assert cat.get_meta("node_id") is None
    cat.put_meta("node_id", "abc")
    cat.put_meta("version", {"format": 1, "ids": [b"x", 2]})
    assert cat.get_meta("node_id") == "abc" and cat.get_meta("version") == {"format": 1, "ids": [b"x", 2]}


def test_stats(cat: Catalog) -> None:
    cat.create_index("i", U1, {})
    st = cat.stats()
    assert st["map_size"] == 64 << 20 and 0 < st["used_bytes"] <= st["map_size"]
    assert st["max_readers"] == 126 and st["path"] == cat.path and cat.path.endswith("catalog")
    assert st["entries"]["indices"] == 1 and st["entries"]["commits"] == 1


# -------------------------------------------------------------------------------------------- lifecycle


def test_open_twice_shares_one_environment(tmp_path: Path) -> None:
    a = Catalog.open(tmp_path)
    b = Catalog.open(str(tmp_path) + "/./")
    assert a.env is b.env and a is not b
    a.create_index("i", U1, {})
    a.close()
    a.close()  # double close of one handle must not drop b's reference
    assert a.closed and not b.closed
    with pytest.raises(AlreadyClosedError):
        a.get_index("i")
    assert b.get_index("i") == {"uuid": U1}
    b.commit(U1, {})
    c = Catalog.open(tmp_path)
    old_env = c.env
    assert old_env is b.env
    b.close()
    c.close()
    c.close()
    d = Catalog.open(tmp_path)  # all handles closed: a fresh environment, same durable data
    try:
        assert d.env is not old_env and d.latest_commit(U1) == {"generation": 1}
    finally:
        d.close()


def test_forked_child_refuses_the_inherited_catalog(cat: Catalog) -> None:
    cat.create_index("i", U1, {})
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        for attempt in (lambda: cat.get_index("i"), lambda: Catalog.open(Path(cat.path).parent)):
            try:
                attempt()
                code |= 1
            except CatalogError as e:
                code |= 0 if "fork()" in str(e) else 2
            except BaseException:
                code |= 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert cat.get_index("i") == {"uuid": U1}  # the parent is unaffected


def test_threads_write_and_read_while_the_map_grows(tmp_path: Path) -> None:
    c = Catalog.open(tmp_path, map_size=64 << 10)
    c.create_index("i", U1, {})
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(t: int) -> None:
        try:
            for g in range(15):
                c.commit(U1, {"t": t}, {f"{t}-{g}-{i}": ("_0", i, 1, g, "x" * 200) for i in range(40)})
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def reader() -> None:
        try:
            while not stop.is_set():
                c.latest_commit(U1)
                c.pk_get_many(U1, ["0-0-0", "1-3-5"])
                c.pk_count(U1)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in readers + writers:
        th.start()
    for th in writers:
        th.join()
    stop.set()
    for th in readers:
        th.join()
    try:
        assert errors == []
        assert c.latest_commit(U1)["generation"] == 60  # type: ignore[index]
        assert c.pk_count(U1) == 4 * 15 * 40 and c.stats()["map_size"] > 64 << 10
    finally:
        c.close()


# ------------------------------------------------------------------------------------------ corruption


@pytest.mark.parametrize("db", ["indices", "commits", "pk", "models", "meta"])
def test_flipped_value_bytes_raise_corrupt_index(cat: Catalog, db: str) -> None:
    cat.create_index("i", U1, {"x": 1})
    cat.commit(U1, {"segments": [seg()]}, {"doc-1": ("_0", 0, 1, 0)})
    cat.put_model("m", {"state": "created"})
    cat.put_meta("k", {"v": 1})
    key, read, where = {
        "indices": (b"i", lambda: cat.get_index("i"), "catalog:indices/i"),
        "commits": (U1 + struct.pack(">Q", 1), lambda: cat.latest_commit(U1), f"catalog:commits/{U1.hex()}/1"),
        "pk": (U1 + b"doc-1", lambda: cat.pk_get(U1, "doc-1"), f"catalog:pk/{U1.hex()}/doc-1"),
        "models": (b"m", lambda: cat.get_model("m"), "catalog:models/m"),
        "meta": (b"k", lambda: cat.get_meta("k"), "catalog:meta/k"),
    }[db]
    data = bytearray(raw_get(cat, db, key))
    data[-1] ^= 0x40
    raw_put(cat, db, key, bytes(data))
    with pytest.raises(ChecksumMismatchError) as info:
        read()
    assert info.value.file == where and where in str(info.value)
    raw_put(cat, db, key, b"\x00\x01")
    with pytest.raises(CorruptIndexError, match="too short"):
        read()


def test_corrupt_pk_value_fails_items_and_many(cat: Catalog) -> None:
    cat.create_index("i", U1, {})
    cat.commit(U1, {}, {"a": ("_0", 0, 1, 0), "b": ("_0", 1, 1, 0)})
    raw_put(cat, "pk", U1 + b"b", frame({"not": "an array"}))  # valid CRC, wrong shape
    with pytest.raises(CorruptIndexError, match="must be an array") as info:
        list(cat.pk_items(U1))
    assert info.value.file == f"catalog:pk/{U1.hex()}/b"
    with pytest.raises(CorruptIndexError):
        cat.pk_get_many(U1, ["a", "b"])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["segments"][0].update(del_count=11), "impossible del_count=11 for max_doc=10"),
        (lambda r: r["segments"][0].update(max_doc=-1), "impossible max_doc=-1"),
        (lambda r: r["segments"][0].update(del_gen=-3), "impossible del_gen=-3"),
        (lambda r: r["segments"][0].update(id=b"x" * 15), "invalid id"),
        (lambda r: r["segments"][0].pop("codec"), "invalid codec"),
        (lambda r: r.update(segments={"a": 1}), "segments must be a list"),
        (lambda r: r.update(generation=7), "generation=7 but is stored as 1"),
    ],
)
def test_impossible_commit_record_raises_corrupt_index(cat: Catalog, mutate: Any, message: str) -> None:
    cat.create_index("i", U1, {})
    cat.commit(U1, {"segments": [seg()]})
    key = U1 + struct.pack(">Q", 1)
    record = msgpack.unpackb(raw_get(cat, "commits", key)[4:], raw=False)
    mutate(record)
    raw_put(cat, "commits", key, frame(record))  # a correct CRC over impossible content
    for read in (lambda: cat.latest_commit(U1), lambda: cat.get_commit(U1, 1)):
        with pytest.raises(CorruptIndexError, match=message) as info:
            read()
        assert info.value.file == f"catalog:commits/{U1.hex()}/1"


# --------------------------------------------------------------------------------------------- map full


def test_map_grows_on_demand(tmp_path: Path) -> None:
    c = Catalog.open(tmp_path, map_size=64 << 10, max_map_size=1 << 30)
    try:
        c.create_index("i", U1, {})
        # One transaction bigger than the whole initial map: aborted, map doubled, rerun until it fits.
        c.commit(U1, {"big": True}, {f"d{i:05d}": ("_0", i, 1, i, "v" * 1000) for i in range(1000)})
        for g in range(10):
            c.commit(U1, {}, {f"e{g}-{i}": ("_1", i, 1, g, "w" * 1000) for i in range(100)})
        assert c.pk_count(U1) == 2000
        assert c.pk_get(U1, "d00999") == ("_0", 999, 1, 999, "v" * 1000)
        assert c.list_commits(U1) == [10, 11]
        assert c.stats()["map_size"] >= 2 << 20 > 64 << 10
    finally:
        c.close()
    with Catalog.open(tmp_path, map_size=64 << 10) as again:  # reopening with a small map_size still works
        assert again.pk_count(U1) == 2000


def test_map_full_when_it_cannot_grow(tmp_path: Path) -> None:
    c = Catalog.open(tmp_path, map_size=64 << 10, max_map_size=64 << 10)
    try:
        c.create_index("i", U1, {"keep": 1})
        assert c.commit(U1, {"segments": [seg()]}, {"a": ("_0", 0, 1, 0)}) == 1
        with pytest.raises(MapFullError, match="catalog map is full at 65536 bytes; raise catalog max_map_size"):
            c.commit(U1, {"segments": []}, {f"d{i}": ("_0", i, 1, i, "v" * 1000) for i in range(2000)})
        assert c.list_commits(U1) == [1] and c.latest_commit(U1)["segments"][0]["max_doc"] == 10  # type: ignore[index]
        assert c.pk_count(U1) == 1 and c.pk_get(U1, "a") == ("_0", 0, 1, 0) and c.pk_get(U1, "d0") is None
        assert c.commit(U1, {}, {"b": ("_0", 1, 1, 1)}) == 2  # still usable for what fits
        assert c.stats()["map_size"] == 64 << 10
    finally:
        c.close()


# ------------------------------------------------------------------------------------------- processes

_CHILD_READ = """
import json, sys
from segstore.index.catalog import Catalog
with Catalog.open(sys.argv[1]) as c:
    u = bytes.fromhex(sys.argv[2])
    rec = c.latest_commit(u)
    print(json.dumps({"gen": rec["generation"], "user": rec["user"], "a": c.pk_get(u, "a"), "n": c.pk_count(u)}))
    c.commit(u, {"user": "from-child"}, {f"c{i}": ("_c", i, 1, i, "x" * 1000) for i in range(2000)})
"""


def test_other_process_reads_and_writes_concurrently(tmp_path: Path) -> None:
    c = Catalog.open(tmp_path, map_size=64 << 10)  # small: the child's 2 MB write grows the map past ours
    try:
        c.create_index("i", U1, {})
        c.commit(U1, {"user": "parent"}, {"a": ("_0", 0, 1, 7)})
        child = run_child(_CHILD_READ, str(tmp_path), U1.hex())
        out, err = child.communicate(timeout=20)
        assert child.returncode == 0, err
        assert json.loads(out) == {"gen": 1, "user": "parent", "a": ["_0", 0, 1, 7], "n": 1}
        latest = c.latest_commit(U1)  # MDB_MAP_RESIZED here is answered by adopting the child's map size
        assert latest == {"user": "from-child", "generation": 2}
        assert c.pk_count(U1) == 2001 and c.pk_get(U1, "c1999") == ("_c", 1999, 1, 1999, "x" * 1000)
        assert c.commit(U1, {}, {"a": None}) == 3
    finally:
        c.close()


_CHILD_HOLD_READER = """
import sys, time
from segstore.index.catalog import Catalog
c = Catalog.open(sys.argv[1])
txn = c.env.begin()  # a read txn (and its reader slot) held until SIGKILL
txn.get(b"x")
print("ready", flush=True)
time.sleep(60)
"""

_CHILD_HOLD_ENV = """
import lmdb, sys, time
env = lmdb.Environment(sys.argv[1], max_dbs=16)  # keeps the lock file (and its reader table) alive
print("ready", flush=True)
time.sleep(60)
"""


def _start_and_wait(code: str, path: str) -> subprocess.Popen[str]:
    proc = run_child(code, path)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def test_stale_reader_of_killed_process_does_not_block_writes(tmp_path: Path) -> None:
    # A fixed 256 KiB map: the stale reader pins the snapshot it saw, so the ~2 MB of churn below can only
    # fit if its pages are reused, i.e. only after reader_check has cleared the dead reader's slot.
    c = Catalog.open(tmp_path, map_size=256 << 10, max_map_size=256 << 10)
    try:
        c.create_index("i", U1, {})
        c.commit(U1, {"pad": "p" * 20000})
        holder = _start_and_wait(_CHILD_HOLD_READER, str(tmp_path))
        _kill(holder)
        assert str(holder.pid) in c.env.readers()  # the dead reader's slot is still in the table
        for g in range(100):
            c.commit(U1, {"pad": "p" * 20000, "g": g})
        assert c.latest_commit(U1)["g"] == 99  # type: ignore[index]
        assert c.stats()["stale_readers_cleared"] >= 1
        assert str(holder.pid) not in c.env.readers()
    finally:
        c.close()


def test_reader_check_on_open_clears_stale_slots(tmp_path: Path) -> None:
    with Catalog.open(tmp_path) as c:
        c.create_index("i", U1, {})
    env_holder = _start_and_wait(_CHILD_HOLD_ENV, str(tmp_path / "catalog"))
    try:
        reader = _start_and_wait(_CHILD_HOLD_READER, str(tmp_path))
        _kill(reader)
        with Catalog.open(tmp_path) as c:  # the env holder keeps the reader table: the slot is still there
            assert c.stats()["stale_readers_cleared"] == 1
            assert str(reader.pid) not in c.env.readers()
            assert c.commit(U1, {}) == 1
    finally:
        _kill(env_holder)


def test_lmdb_environment_is_opened_once(cat: Catalog) -> None:
    # The guarantee the registry exists for: a second raw open of the same files in this process is refused.
    with pytest.raises(lmdb.Error, match="already open"):
        lmdb.Environment(cat.path, max_dbs=16)
