"""``segstore info | segments | files | doc | dump | stats | warmup`` on the sample index (read-only)."""

from __future__ import annotations

import json
import os
import sys
import zlib
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # test_cli_common, whatever the import mode
from test_cli_common import (  # noqa: F401 - fixtures
    DELETED,
    INDEX,
    N_BIG,
    N_SMALL,
    index_dir,
    run_cli,
    sample,
    sample_template,
)


def _snapshot(data: str) -> dict[str, tuple[int, float]]:
    out = {}
    for root, _dirs, files in os.walk(data):
        for f in files:
            p = os.path.join(root, f)
            if f != "lock.mdb":
                st = os.stat(p)
                out[p] = (st.st_size, st.st_mtime)
    return out


def test_inspection_is_read_only(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any]) -> None:
    data, _ = sample
    before = _snapshot(data)
    for argv in (["info", data], ["segments", data, "--files"], ["files", data, "--verify"], ["doc", data, "7"],
                 ["dump", data], ["stats", data], ["warmup", data]):
        r = run_cli(capsys, *argv)
        assert r.code == 0, (argv, r.err)
        assert r.out.strip()
    assert _snapshot(data) == before


def test_info(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any]) -> None:
    from test_cli_common import MAPPINGS

    data, _ = sample
    r = run_cli(capsys, "info", data, "--json")
    assert r.code == 0
    (info,) = r.json()["indices"]
    assert info["index"] == INDEX and info["knn"] is True and info["durability"] == "request"
    assert info["derived_source"] is True
    assert info["mappings"] == MAPPINGS
    gens = [c["generation"] for c in info["commits"]]
    assert len(gens) == 2 and gens[1] == gens[0] + 1  # the catalog keeps the last two commits
    last = info["commits"][-1]
    assert last["segment_names"] == ["_0", "_1"] and last["deleted_docs"] == 4  # 130 is a block of 3
    assert info["format_versions"]["SegStore1HnswGraph"] == [2]
    assert info["format_versions"]["SegStore1SegmentInfo"] == [1]
    assert info["codecs"] == ["SegStore1"]
    tl = info["translog"]
    assert tl["clean"] and tl["uncommitted_operations"] == 3
    assert tl["checkpoint"]["translog_uuid"] == last["translog_uuid"]
    assert info["pk_entries"] == N_BIG + N_SMALL - len(DELETED)
    text = run_cli(capsys, "info", data).out
    assert "translog: uuid" in text and "3 uncommitted" in text


def test_segments(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any]) -> None:
    data, _ = sample
    r = run_cli(capsys, "segments", data, "--files", "--json")
    assert r.code == 0
    (idx,) = r.json()["indices"]
    s0, s1 = idx["segments"]
    # _0: 120 roots + 12 docs with 2 nested children each
    assert (s0["segment"], s0["max_doc"], s0["docs.deleted"], s0["docs.count"]) == ("_0", 144, 1, 143)
    assert (s1["segment"], s1["docs.deleted"]) == ("_1", 3)  # id 130 has two nested children: a block of 3
    fields = {f["field"]: f for f in s0["fields"]}
    assert fields["v"]["graph"] == "hnswlib" and fields["v"]["vectors"] == 120 and fields["v"]["derived"] == "root"
    assert fields["b"]["graph"] == "faiss" and fields["b"]["data_type"] == "byte"
    assert fields["q"]["graph"] == "faiss_binary" and fields["q"]["compression"] == "32x"
    assert fields["q"]["quantization"]["kind"] == "binary" and fields["q"]["quantization"]["codes"] == 120
    assert fields["parts.pv"]["derived"] == "nested" and fields["parts.pv"]["vectors"] == 24
    assert s0["derived_paths"] == {"root": ["v", "b", "q"], "nested": ["parts.pv"]}
    assert set(s0["bytes_by_type"]) == {"si", "fnm", "vec", "vem", "hnsw", "qst", "fdt", "fdx", "liv", "dvd", "dvm"}
    assert sum(s0["bytes_by_type"].values()) == s0["size"]
    files = {f["file"]: f for f in s0["files"]}
    raw = open(os.path.join(index_dir(data), "_0.fdt"), "rb").read()
    assert files["_0.fdt"]["crc"] == f"{zlib.crc32(raw[:-8]):#010x}" and files["_0.fdt"]["size"] == len(raw)
    text = run_cli(capsys, "segments", data).out
    assert "docs.count" in text and "faiss_binary" in text


def test_files_and_verify(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any]) -> None:
    data, _ = sample
    r = run_cli(capsys, "files", data, "--verify", "--json")
    assert r.code == 0
    (idx,) = r.json()["indices"]
    seg_files = [f for f in idx["files"] if f["area"] == "index" and f["file"].startswith("_")]
    assert len(seg_files) == 28 and all(f["referenced"] for f in seg_files)
    assert all(f["stored_crc"] == f["actual_crc"] and f["format"].startswith("SegStore1") for f in seg_files)
    vec = next(f for f in seg_files if f["file"] == "_0.vec")
    assert (vec["format"], vec["version"], vec["component"]) == ("SegStore1VectorValuesData", 1, "vectors")
    tl = [f for f in idx["files"] if f["area"] == "translog"]
    assert {f["format"] for f in tl} == {"SegStore1Translog", "SegStore1TranslogCheckpoint"}
    assert {f["file"] for f in r.json()["catalog"]} >= {"data.mdb"}
    # a flipped byte shows up as a CRC mismatch with --verify
    path = os.path.join(index_dir(data), "_1.vec")
    raw = bytearray(open(path, "rb").read())
    raw[100] ^= 1
    os.unlink(path)
    open(path, "wb").write(bytes(raw))
    r = run_cli(capsys, "files", data, "--verify", "--json")
    assert r.code == 1
    bad = [f for f in r.json()["indices"][0]["files"] if f.get("problem")]
    assert [f["file"] for f in bad] == ["_1.vec"]
    assert bad[0]["problem"]["error"] == "ChecksumMismatchError"
    assert bad[0]["actual_crc"] == f"{zlib.crc32(bytes(raw[:-8])):#010x}" != bad[0]["stored_crc"]


def test_doc_side_by_side(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any]) -> None:
    data, sources = sample
    r = run_cli(capsys, "doc", data, "10", "--json")
    assert r.code == 0
    d = r.json()
    assert d["segment"] == "_0" and d["_version"] == 1
    stored, derived = d["stored_source"], d["derived_source"]
    assert derived == sources["10"]
    # derived paths are masked by the integer 1 on disk, nested ones per child
    assert stored["v"] == 1 and stored["b"] == 1 and stored["q"] == 1
    assert [p["pv"] for p in stored["parts"]] == [1, 1]
    assert stored["title"] == "t10"
    assert sorted(d["derived_paths"]) == ["b", "parts.pv", "q", "v"]
    text = run_cli(capsys, "doc", data, "10").out
    assert "stored _source (on disk)" in text and "derived _source (GET)" in text
    assert "*  parts[0].pv" in text and "   title" in text
    # an uncommitted document comes from the translog
    r = run_cli(capsys, "doc", data, str(N_BIG + N_SMALL), "--json")
    assert r.code == 0 and r.json()["location"].startswith("translog")
    assert r.json()["derived_source"]["v"] == sources[str(N_BIG + N_SMALL)]["v"]
    # deleted / unknown documents
    assert run_cli(capsys, "doc", data, DELETED[0]).code == 1
    assert run_cli(capsys, "doc", data, "nope", "--json").json()["found"] is False


def test_dump_feeds_back_into_bulk(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any],
                                   tmp_path: Any) -> None:
    import segstore

    data, sources = sample
    r = run_cli(capsys, "dump", data)
    assert r.code == 0 and "uncommitted" in r.err  # the 3 translog-only documents are not in the commit
    lines = r.out.splitlines()
    assert len(lines) == 2 * (N_BIG + N_SMALL - len(DELETED))
    got = {}
    for action, source in zip(lines[::2], lines[1::2]):
        meta = json.loads(action)["index"]
        assert meta["_index"] == INDEX
        got[meta["_id"]] = json.loads(source)
    committed = {k: v for k, v in sources.items() if int(k) < N_BIG + N_SMALL}
    assert got == committed
    # straight into _bulk of another data directory
    client = segstore.connect(str(tmp_path / "other"))
    try:
        from test_cli_common import MAPPINGS, SETTINGS

        client.indices.create(index=INDEX, body={"settings": SETTINGS, "mappings": MAPPINGS})
        resp = client.bulk(body=r.out)
        assert not resp["errors"]
        assert client.get(index=INDEX, id="10")["_source"] == sources["10"]
    finally:
        client.close()
    assert len(run_cli(capsys, "dump", data, "--limit", "5").out.splitlines()) == 10
    no_vec = run_cli(capsys, "dump", data, "--limit", "1", "--no-with-vectors").out.splitlines()[1]
    assert json.loads(no_vec) == {"title": "t0", "parts": [{}, {}]}  # doc 0: vectors gone, nested objects kept


def test_stats_and_warmup(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any]) -> None:
    data, _ = sample
    r = run_cli(capsys, "stats", data, "--json")
    assert r.code == 0
    (s,) = r.json()["indices"]
    assert s["docs"]["ids"] == N_BIG + N_SMALL - len(DELETED)
    assert s["segments"]["count"] == 2 and s["translog"]["uncommitted_operations"] == 3
    assert s["knn"]["fields"]["v"]["vectors"] == N_BIG + N_SMALL and s["knn"]["fields"]["v"]["graphs"] == 2
    assert s["knn"]["fields"]["q"]["quantized_bytes_on_disk"] > 0
    assert {"graph", "vectors", "stored", "live_docs", "doc_values", "quantization", "translog"} <= set(s["disk_usage"])
    assert sum(v for k, v in s["disk_usage"].items() if k != "translog") == s["store"]["size_in_bytes"]
    r = run_cli(capsys, "warmup", data, "--json")
    assert r.code == 0
    (w,) = r.json()["indices"]
    assert w["graphs_loaded"] == 8 and w["memory_bytes"] > 0 and not w["errors"]
    assert w["fields"]["q"]["quantized_bytes"] > 0
