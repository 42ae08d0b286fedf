"""``segstore check`` names exactly what is damaged, and ``segstore repair`` restores an index that opens and
checks clean, losing only what it reported (reliability.md §8 rows 10-15 and 30).

Every file type of segment ``_0`` of the sample index (float/hnswlib, byte/faiss, binary-quantized and nested
fields, doc values, deletes) is truncated, has one bit flipped, is deleted, or is swapped with the same-named
file of an index built by the same operations (same names, other segment ids). ``check --json`` must exit 1
and report exactly one error naming segment, file, component, error type and expected/actual values (the
test computes them independently: CRCs with zlib, lengths, segment ids from the commit). Then
``repair --exorcise --rebuild-graphs --rebuild-live-docs --yes`` must exit 0 with a clean re-check; the
writer must open (replaying the 3 translog-only documents) and every document must be there except exactly
the ids the check listed (none for graph, quantization and live-docs damage).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import zlib
from typing import Any

import msgpack
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # test_cli_common, whatever the import mode
from test_cli_common import (  # noqa: F401 - fixtures
    DELETED,
    INDEX,
    build_sample,
    index_dir,
    run_cli,
    sample,
    sample_template,
    translog_dir,
)

FILES = {  # file of segment _0 -> (component, damage costs the segment)
    "_0.si": ("segment_info", True), "_0.fnm": ("field_infos", True), "_0.vem": ("vectors", True),
    "_0.vec": ("vectors", True), "_0.fdx": ("stored", True), "_0.fdt": ("stored", True),
    "_0.dvm": ("doc_values", True), "_0.dvd": ("doc_values", True), "_0_1.liv": ("live_docs", False),
    "_0_f0.hnsw": ("graph", False), "_0_f1.hnsw": ("graph", False), "_0_f2.hnsw": ("graph", False),
    "_0_f2.qst": ("quantization", False), "_0_f3.hnsw": ("graph", False),
}
FIELD_OF = {"_0_f0.hnsw": "v", "_0_f1.hnsw": "b", "_0_f2.hnsw": "q", "_0_f2.qst": "q", "_0_f3.hnsw": "parts.pv"}
LENGTH_RECORDED = {"_0.vec", "_0.fdt", "_0.dvd"}  # metadata files record their exact length
DAMAGES = ["truncate", "flip", "delete", "swap"]


@pytest.fixture(scope="module")
def other_index(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("other") / "data")
    build_sample(path, seed=1, uncommitted=0)
    return path


def _segment_ids(data: str) -> dict[str, str]:
    from segstore.index.catalog import Catalog

    with Catalog.open(data) as cat:
        meta = cat.get_index(INDEX)
        assert meta is not None
        rec = cat.latest_commit(meta["uuid"])
        assert rec is not None
        return {s["name"]: s["id"].hex() for s in rec["segments"]}


def _rewrite(path: str, data: bytes) -> None:
    os.unlink(path)  # a new inode, like segstore.testing.corrupt.overwrite
    with open(path, "wb") as fh:
        fh.write(data)


def _damage(data: str, name: str, damage: str, other: str) -> dict[str, Any]:
    """Damage one file; return what the report must say (error type and expected/actual)."""
    path = os.path.join(index_dir(data), name)
    raw = open(path, "rb").read()
    if damage == "truncate":
        _rewrite(path, raw[:-7])
        if name in LENGTH_RECORDED:
            return {"error": "TruncatedFileError", "expected": str(len(raw)), "actual": str(len(raw) - 7)}
        return {"error": "TruncatedFileError", "actual": f"length={len(raw) - 7}"}
    if damage == "flip":
        buf = bytearray(raw)
        buf[len(buf) - 17] ^= 0x08  # the last payload byte: header and footer stay intact
        _rewrite(path, bytes(buf))
        (stored,) = struct.unpack(">Q", raw[-8:])
        return {"error": "ChecksumMismatchError", "expected": f"{stored:#010x}",
                "actual": f"{zlib.crc32(bytes(buf[:-8])):#010x}"}
    if damage == "delete":
        os.unlink(path)
        return {"error": "MissingFileError"}
    shutil.copyfile(os.path.join(index_dir(other), name), path + ".swap")
    os.replace(path + ".swap", path)
    return {"error": "SegmentIdMismatchError", "expected": _segment_ids(data)["_0"],
            "actual": _segment_ids(other)["_0"]}


def _assert_restored(data: str, sources: dict[str, Any], lost: set[str]) -> None:
    import segstore

    w = segstore.open_index(data, INDEX)
    try:
        assert w.replayed_ops == 3
        for doc_id, src in sources.items():
            got = w.get(doc_id)
            if doc_id in lost:
                assert got is None, doc_id
            else:
                assert got is not None and got.source == src, doc_id
        for doc_id in DELETED:
            assert w.get(doc_id) is None
    finally:
        w.close(commit=False)


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("name", list(FILES))
def test_damage_check_repair(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any], other_index: str,
                             name: str, damage: str) -> None:
    data, sources = sample
    component, costs_segment = FILES[name]
    want = _damage(data, name, damage, other_index)

    r = run_cli(capsys, "check", data, "--json")
    assert r.code == 1, r.out
    (st,) = r.json()["indices"]
    assert not st["clean"]
    errors = [p for p in st["all_problems"] if p["severity"] == "error"]
    assert len(errors) == 1, errors
    (p,) = errors
    assert (p["segment"], p["file"], p["component"], p["error"]) == ("_0", name, component, want["error"]), p
    for key in ("expected", "actual"):
        if key in want:
            assert p[key] == want[key], (key, p)
    if name in FIELD_OF:
        assert p["field"] == FIELD_OF[name]
    seg0 = st["segments"][0]
    expected_lost = {str(i) for i in range(120)} - set(DELETED) if costs_segment else set()
    assert seg0["status"] == ("corrupt" if costs_segment else "rebuildable")
    assert set(seg0["ids_to_lose"]) == expected_lost
    assert seg0["docs_to_lose"] == (143 if costs_segment else 0)
    assert st["segments"][1]["status"] == "ok"
    assert st["tot_lose_doc_count"] == seg0["docs_to_lose"]
    text = run_cli(capsys, "check", data).out
    assert name in text and want["error"] in text
    if costs_segment:
        assert "143 documents would be lost" in text

    r = run_cli(capsys, "repair", data, "--exorcise", "--rebuild-graphs", "--rebuild-live-docs", "--yes", "--json")
    assert r.code == 0, r.out
    (rep,) = r.json()["indices"]
    assert rep["after"]["clean"], rep["after"]
    lost = set(rep["results"].get("segments", {}).get("lost_ids", []))
    assert lost == expected_lost
    assert run_cli(capsys, "check", data, "--level", "2").code == 0
    _assert_restored(data, sources, lost)


def test_swap_with_another_segments_file(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any]) -> None:
    data, _sources = sample
    ids = _segment_ids(data)
    for ext in ("fdt", "vem"):
        d = index_dir(data)
        os.unlink(os.path.join(d, f"_0.{ext}"))
        shutil.copyfile(os.path.join(d, f"_1.{ext}"), os.path.join(d, f"_0.{ext}"))
    r = run_cli(capsys, "verify", data, "--json")
    assert r.code == 1
    errors = [p for p in r.json()["indices"][0]["all_problems"] if p["severity"] == "error"]
    assert {(p["file"], p["error"], p["expected"], p["actual"]) for p in errors} == {
        ("_0.fdt", "SegmentIdMismatchError", ids["_0"], ids["_1"]),
        ("_0.vem", "SegmentIdMismatchError", ids["_0"], ids["_1"])}


def test_repair_is_a_dry_run_by_default(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any],
                                        other_index: str) -> None:
    data, _ = sample
    _damage(data, "_0.fdt", "flip", other_index)
    listing = sorted(os.listdir(index_dir(data)))
    gens = run_cli(capsys, "info", data, "--json").json()["indices"][0]["commits"]
    for argv in (["repair", data, "--exorcise"], ["repair", data, "--exorcise", "--yes", "--dry-run"],
                 ["repair", data]):
        r = run_cli(capsys, *argv)
        assert r.code == 1
        assert sorted(os.listdir(index_dir(data))) == listing
        assert run_cli(capsys, "info", data, "--json").json()["indices"][0]["commits"] == gens
    r = run_cli(capsys, "repair", data, "--exorcise")
    assert "WILL LOSE 143 docs" in r.out and "DRY RUN" in r.out and "backup" in r.err
    r = run_cli(capsys, "repair", data, "--exorcise", "--json")
    plan = r.json()["indices"][0]["plan"]
    assert plan["loses_data"] and plan["steps"][0]["docs_to_lose"] == 143
    assert len(plan["steps"][0]["ids_to_lose"]) == 119
    # without the flag for a damage, repair says which flag it needs
    r = run_cli(capsys, "repair", data, "--rebuild-graphs", "--yes")
    assert r.code == 1 and "needs --exorcise" in r.out


def test_check_takes_the_write_lock(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any]) -> None:
    import segstore

    data, _ = sample
    w = segstore.open_index(data, INDEX)
    try:
        r = run_cli(capsys, "check", data)
        assert r.code == 1 and "locked" in r.err
        assert run_cli(capsys, "check", data, "--no-lock").code == 0
        assert run_cli(capsys, "repair", data, "--rebuild-graphs", "--yes").code == 1
        assert run_cli(capsys, "info", data).code == 0  # inspection never needs the lock
    finally:
        w.close(commit=False)


def test_translog_damage_truncate(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any]) -> None:
    data, sources = sample
    tdir = translog_dir(data)
    (tlog,) = [f for f in os.listdir(tdir) if f.endswith(".tlog")]
    path = os.path.join(tdir, tlog)
    raw = bytearray(open(path, "rb").read())
    raw[-30] ^= 0x01  # inside the last of the 3 acknowledged records
    _rewrite(path, bytes(raw))
    r = run_cli(capsys, "check", data, "--json")
    assert r.code == 1
    (st,) = r.json()["indices"]
    (p,) = [p for p in st["all_problems"] if p["severity"] == "error"]
    assert (p["component"], p["error"], p["file"]) == ("translog", "TranslogCorruptedError", tlog)
    assert st["translog"]["ops_to_lose"] == 1 and st["translog_ops_to_lose"] == 1
    assert run_cli(capsys, "translog", data).code == 1
    r = run_cli(capsys, "recover", data)
    assert r.code == 1 and "truncate-translog" in r.out  # never replays past damage
    r = run_cli(capsys, "translog", data, "truncate", "--json")  # dry run
    assert r.json()["indices"][0]["truncate"]["dry_run"] and os.path.getsize(path) == len(raw)
    r = run_cli(capsys, "repair", data, "--truncate-translog", "--yes", "--json")
    assert r.code == 0
    assert r.json()["indices"][0]["results"]["translog"]["ops_dropped"] == 1
    r = run_cli(capsys, "recover", data, "--json")
    assert r.code == 0 and r.json()["indices"][0]["replayed"] == 2
    assert run_cli(capsys, "check", data, "--level", "2").code == 0
    from test_cli_common import live_sources

    got = live_sources(capsys, data)
    assert got == {k: v for k, v in sources.items() if k != "162"}


def test_translog_checkpoint_unreadable_recreates(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any]) -> None:
    data, sources = sample
    path = os.path.join(translog_dir(data), "translog.ckp")
    raw = bytearray(open(path, "rb").read())
    raw[60] ^= 0x40
    _rewrite(path, bytes(raw))
    r = run_cli(capsys, "check", data, "--json")
    assert r.code == 1
    plan = r.json()["indices"][0]["repair_plan"]
    assert [s["action"] for s in plan] == ["truncate-translog"]
    r = run_cli(capsys, "repair", data, "--truncate-translog", "--yes", "--json")
    assert r.code == 0
    res = r.json()["indices"][0]["results"]["translog"]
    assert res["mode"] == "recreate" and res["ops_dropped"] == 3
    assert run_cli(capsys, "recover", data).code == 0
    from test_cli_common import live_sources

    assert live_sources(capsys, data) == {k: v for k, v in sources.items() if int(k) < 160}


def test_damaged_committed_translog_generation_loses_nothing(capsys: pytest.CaptureFixture[str],
                                                             tmp_path: Any) -> None:
    """A crash between the catalog commit and the translog trim leaves committed generations behind; damage
    there must cost nothing (``Translog.truncate_corrupt_tail`` alone would drop the later, uncommitted
    generations too - see the engine bug list)."""
    import segstore
    from segstore.index.operations import IndexOp

    data = str(tmp_path / "d")
    w = segstore.create_index(data, INDEX, settings={"index.knn": True},
                              mappings={"properties": {"v": {"type": "knn_vector", "dimension": 2}}})
    w.bulk([IndexOp("c1", {"v": [1.0, 0.0]})])
    w.translog.trim_below = lambda g: None  # the crash window
    w.commit()
    w.bulk([IndexOp("u1", {"v": [2.0, 0.0]})])
    w.bulk([IndexOp("u2", {"v": [3.0, 0.0]})])
    w.close(commit=False)
    tdir = translog_dir(data)
    oldest = min((f for f in os.listdir(tdir) if f.endswith(".tlog")), key=lambda f: int(f[9:-5]))
    raw = bytearray(open(os.path.join(tdir, oldest), "rb").read())
    raw[-3] ^= 0x01
    _rewrite(os.path.join(tdir, oldest), bytes(raw))
    r = run_cli(capsys, "check", data, "--json")
    assert r.code == 1
    tl = r.json()["indices"][0]["translog"]
    assert tl["damaged_committed_generations"] and tl["ops_to_lose"] == 0
    r = run_cli(capsys, "repair", data, "--truncate-translog", "--yes", "--json")
    assert r.code == 0 and r.json()["indices"][0]["results"]["translog"]["mode"] == "trim"
    r = run_cli(capsys, "recover", data, "--json")
    assert r.json()["indices"][0]["replayed"] == 2
    from test_cli_common import live_sources

    assert set(live_sources(capsys, data)) == {"c1", "u1", "u2"}


def test_primary_key_map_problems_and_rebuild(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any]) -> None:
    from segstore.index.catalog import Catalog
    from segstore.index.catalog_codec import encode_value, pk_key

    data, sources = sample
    with Catalog.open(data) as cat:
        uuid = cat.get_index(INDEX)["uuid"]  # type: ignore[index]
        good = cat.pk_get(uuid, "5")
        good6 = cat.pk_get(uuid, "6")
        env = cat.env
        pk_db = env.open_db(b"pk")
        with env.begin(write=True) as txn:
            txn.put(pk_key(uuid, "5"), b"\x00\x00\x00\x00" + msgpack.packb(list(good)), db=pk_db)  # bad CRC
            txn.put(pk_key(uuid, "6"), encode_value(["_1", 0, 9, 9], "x"), db=pk_db)  # wrong location
            txn.put(pk_key(uuid, "ghost"), encode_value(["_0", 1, 1, 1], "x"), db=pk_db)  # no such document
    r = run_cli(capsys, "check", data, "--level", "2", "--json")
    assert r.code == 1
    probs = [p for p in r.json()["indices"][0]["all_problems"] if p["component"] == "pk"]
    by_id: dict[str, list[Any]] = {}
    for p in probs:
        by_id.setdefault(p["doc_id"], []).append(p)
    # the damaged entry: its CRC (level 1), and the live document it should point to (level 2)
    assert [(p["error"], p["file"].startswith("catalog:pk/")) for p in by_id["5"]] == [
        ("ChecksumMismatchError", True), ("CorruptIndexError", True)]
    assert by_id["5"][1]["message"] == "live document has no primary-key entry"
    (p6,) = by_id["6"]
    assert p6["expected"] == list(good6) and p6["actual"] == ["_1", 0, 9, 9]
    assert by_id["ghost"][0]["message"] == "primary-key entry points to no live document"
    r = run_cli(capsys, "repair", data, "--rebuild-pk", "--yes", "--json")
    assert r.code == 0, r.out
    assert r.json()["indices"][0]["results"]["pk"]["entries_changed"] == 3
    assert run_cli(capsys, "check", data, "--level", "2").code == 0
    _assert_restored(data, sources, set())


def test_level2_attributes_against_the_mapping(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any]) -> None:
    from segstore.index.catalog import Catalog

    data, _ = sample
    with Catalog.open(data) as cat:
        meta = cat.get_index(INDEX)
        assert meta is not None
        meta = {k: v for k, v in meta.items() if k != "uuid"}
        mappings = json.loads(json.dumps(meta["mappings"]))
        mappings["properties"]["v"]["space_type"] = "innerproduct"
        cat.put_index_metadata(INDEX, {**meta, "mappings": mappings})
    assert run_cli(capsys, "check", data).code == 0  # level 1 only looks at bytes
    r = run_cli(capsys, "check", data, "--level", "2", "--json")
    assert r.code == 1
    probs = [p for p in r.json()["indices"][0]["all_problems"] if p["component"] == "attributes"]
    assert {p["segment"] for p in probs} == {"_0", "_1"}
    assert all(p["field"] == "v" and p["expected"] == [8, "float", "innerproduct"] and
               p["actual"] == [8, "float", "l2"] for p in probs)


def _cut_node(blob: bytearray, base: int, count: int, node: int) -> None:
    """Remove every level-0 link to internal id ``node`` of an hnswlib blob (its own links stay)."""
    from segstore_codecs.segstore1.hnswlib_blob import BLOB_HEADER

    hdr = BLOB_HEADER.unpack_from(blob, base)
    size_per, max_m0 = hdr[3], hdr[9]
    start = base + BLOB_HEADER.size
    for i in range(count):
        off = start + i * size_per
        n = struct.unpack_from("<I", blob, off)[0] & 0xFFFF
        links = list(struct.unpack_from(f"<{max_m0}I", blob, off + 4))[:n]
        kept = [x for x in links if x != node]
        struct.pack_into("<I", blob, off, len(kept))
        struct.pack_into(f"<{max_m0}I", blob, off + 4, *(kept + [0] * (max_m0 - len(kept))))


def test_level3_graph_connectivity_recall_and_round_trip(capsys: pytest.CaptureFixture[str],
                                                         sample: tuple[str, Any]) -> None:
    from segstore.index.check import read_header

    data, _ = sample
    r = run_cli(capsys, "check", data, "--level", "3", "--json")
    assert r.code == 0
    seg0 = r.json()["indices"][0]["segments"][0]
    fields = {f["name"]: f for f in seg0["fields"]}
    for name in ("v", "b", "q", "parts.pv"):
        conn = fields[name]["connectedness_at_level"]
        assert conn and all(c.split("/")[0] == c.split("/")[1] for c in conn), (name, conn)
        assert fields[name]["recall"] >= 0.9
    assert seg0["tests"]["derived source"] == "OK [119 docs round-tripped]"
    # a CRC-valid graph in which one node lost every incoming link: found at level 3 only
    path = os.path.join(index_dir(data), "_0_f0.hnsw")
    raw = bytearray(open(path, "rb").read())
    head = read_header(path)
    assert head is not None
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(bytes(raw[head["data_offset"]:head["data_offset"] + 4096]))
    meta = unpacker.unpack()
    base = head["data_offset"] + unpacker.tell()
    _cut_node(raw, base, meta["count"], node=7)
    body = bytes(raw[:-8])
    _rewrite(path, body + struct.pack(">Q", zlib.crc32(body)))
    assert run_cli(capsys, "check", data, "--level", "2").code == 0
    r = run_cli(capsys, "check", data, "--level", "3", "--json")
    probs = [p for p in r.json()["indices"][0]["all_problems"] if p["error"] == "DisconnectedGraph"]
    assert len(probs) == 1 and probs[0]["field"] == "v" and probs[0]["file"] == "_0_f0.hnsw"
    assert (probs[0]["expected"], probs[0]["actual"]) == (120, 119)
    assert probs[0]["severity"] == "warning" and r.code == 0  # 99 % reachable: a warning
    r = run_cli(capsys, "check", data, "--level", "3")
    assert "WARNING _0_f0.hnsw" in r.out and "1 node(s) unreachable" in r.out


def test_corruption_marker(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any]) -> None:
    data, _ = sample
    marker = os.path.join(index_dir(data), "corrupted_0123")
    open(marker, "wb").write(b"x")
    r = run_cli(capsys, "check", data, "--json")
    assert r.code == 1
    (p,) = r.json()["indices"][0]["all_problems"]
    assert (p["error"], p["file"]) == ("CorruptionMarker", "corrupted_0123")
    r = run_cli(capsys, "repair", data, "--yes", "--json")
    assert r.code == 0 and not os.path.exists(marker)
    assert run_cli(capsys, "check", data).code == 0


def test_fail_fast_and_segment_filter(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any],
                                      other_index: str) -> None:
    data, _ = sample
    _damage(data, "_0.fdt", "flip", other_index)
    _damage(data, "_0.vec", "flip", other_index)
    r = run_cli(capsys, "check", data, "--fail-fast", "--json")
    assert r.code == 1
    st = r.json()["indices"][0]
    assert st["partial"] and len([p for p in st["all_problems"] if p["severity"] == "error"]) == 1
    r = run_cli(capsys, "check", data, "--segment", "_1", "--level", "2", "--json")
    assert r.code == 0
    assert [s["checked"] for s in r.json()["indices"][0]["segments"]] == [False, True]
    r = run_cli(capsys, "check", data, "--threads", "2", "--json")
    assert r.code == 1 and r.json()["indices"][0]["num_bad_segments"] == 1


def test_level3_round_trip_of_normalised_cosine_vectors(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    """faiss ``cosinesimil`` vectors are stored L2-normalised and derived as such; re-parsing them normalises
    again, which in float32 moves about a third of the vectors by an ulp: level 3 tolerates exactly that."""
    import numpy as np

    import segstore
    from segstore.index.operations import IndexOp

    data = str(tmp_path / "d")
    rng = np.random.default_rng(3)
    w = segstore.create_index(data, INDEX, settings={"index.knn": True}, mappings={"properties": {
        "e": {"type": "knn_vector", "dimension": 8, "space_type": "cosinesimil"}}})
    w.bulk([IndexOp(str(i), {"e": rng.standard_normal(8).tolist()}) for i in range(60)])
    w.close()
    r = run_cli(capsys, "check", data, "--level", "3", "--json")
    assert r.code == 0, r.out
    assert r.json()["indices"][0]["segments"][0]["tests"]["derived source"] == "OK [60 docs round-tripped]"


@pytest.mark.parametrize("answer", ["y", "n"])
def test_repair_asks_on_a_terminal(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any], other_index: str,
                                   monkeypatch: pytest.MonkeyPatch, answer: str) -> None:
    import io

    class TtyIn(io.StringIO):
        def isatty(self) -> bool:
            return True

    data, _ = sample
    _damage(data, "_0_f1.hnsw", "flip", other_index)
    monkeypatch.setattr("sys.stdin", TtyIn(answer + "\n"))
    r = run_cli(capsys, "repair", data, "--rebuild-graphs")
    assert "Apply these repairs to index [s]? [y/N]" in r.err
    assert "--rebuild-graphs: rewrite segment(s) _0" in r.out  # the plan is shown before the question
    assert r.code == (0 if answer == "y" else 1)
    assert run_cli(capsys, "check", data).code == (0 if answer == "y" else 1)
