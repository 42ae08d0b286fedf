"""``segstore force-merge | export | import``."""

from __future__ import annotations

import json
import os
import sys
from collections import namedtuple
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # test_cli_common, whatever the import mode
from test_cli_common import (  # noqa: F401 - fixtures
    live_sources,
    run_cli,
    sample,
    sample_template,
)


def test_force_merge(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any]) -> None:
    data, sources = sample
    r = run_cli(capsys, "force-merge", data, "--max-segments", "1", "--json")
    assert r.code == 0, r.out + r.err
    (m,) = r.json()["indices"]
    assert m["replayed_ops"] == 3  # the writer replays the translog first
    assert len(m["segments_after"]) == 1 and m["deleted_after"] == 0 and m["expunged_deletes"] == 4
    assert m["peak_extra_bytes"] > 0 and m["required_free_bytes"] == 2 * m["index_bytes"]
    assert run_cli(capsys, "check", data, "--level", "3").code == 0
    assert live_sources(capsys, data) == sources
    text = run_cli(capsys, "force-merge", data).out
    assert "1 -> 1 segments" in text


def test_only_expunge_deletes(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any]) -> None:
    data, sources = sample
    r = run_cli(capsys, "force-merge", data, "--only-expunge-deletes", "--json")
    assert r.code == 0
    (m,) = r.json()["indices"]
    assert m["deleted_after"] == 0 and len(m["merges"]) == 2  # each segment with deletes rewritten on its own
    assert live_sources(capsys, data) == sources


def test_force_merge_free_space_check(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from segstore_tools import maintenance

    data, _ = sample
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(maintenance.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    gens = run_cli(capsys, "info", data, "--json").json()["indices"][0]["commits"]
    r = run_cli(capsys, "force-merge", data)
    assert r.code == 1 and "not enough free space" in r.out and "2x the index size" in r.out
    assert run_cli(capsys, "info", data, "--json").json()["indices"][0]["commits"] == gens  # nothing done
    r = run_cli(capsys, "force-merge", data, "--skip-space-check", "--json")
    assert r.code == 0 and len(r.json()["indices"][0]["segments_after"]) == 1


def test_export_import_round_trip(capsys: pytest.CaptureFixture[str], sample: tuple[str, Any], tmp_path: Any) -> None:
    data, sources = sample
    run_cli(capsys, "recover", data)  # commit the translog-only documents first
    for fmt in ("bulk", "ndjson"):
        out, definition = tmp_path / f"docs.{fmt}", tmp_path / f"def.{fmt}.json"
        r = run_cli(capsys, "export", data, "-o", out, "--format", fmt, "--definition", definition, "--json")
        assert r.code == 0 and r.json()["documents"] == len(sources)
        first = json.loads(out.read_text().splitlines()[0])
        assert ("index" in first) == (fmt == "bulk")
        target = tmp_path / f"copy-{fmt}"
        r = run_cli(capsys, "import", target, out, "--index", "copy", "--definition", definition, "--json")
        assert r.code == 0, r.out
        res = r.json()
        assert res["failed"] == 0 and res["results"] == {"created": len(sources)}
        assert live_sources(capsys, str(target)) == sources
        info = run_cli(capsys, "info", target, "--json").json()["indices"][0]
        assert info["mappings"] == json.loads(definition.read_text())["mappings"]
        assert run_cli(capsys, "check", target, "--level", "3").code == 0


def test_export_import_keeps_routing(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    import segstore

    data = tmp_path / "src"
    c = segstore.connect(data)
    try:
        c.indices.create(index="r", body={"settings": {"index.knn": True}, "mappings": {"properties": {
            "v": {"type": "knn_vector", "dimension": 2}}}})
        c.index(index="r", id="a", body={"v": [1.5, 2.5]}, routing="ra")
        c.index(index="r", id="b", body={"v": [3.5, 4.5]})
        c.indices.flush(index="r")
    finally:
        c.close()
    for fmt in ("bulk", "ndjson"):
        out, definition = tmp_path / f"docs.{fmt}", tmp_path / f"def.{fmt}.json"
        assert run_cli(capsys, "export", data, "-o", out, "--format", fmt, "--definition", definition).code == 0
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        if fmt == "bulk":
            assert [line["index"] for line in lines[::2]] == [{"_index": "r", "_id": "a", "routing": "ra"},
                                                              {"_index": "r", "_id": "b"}]
        else:
            assert [line.get("_routing") for line in lines] == ["ra", None]
        target = tmp_path / f"copy-{fmt}"
        r = run_cli(capsys, "import", target, out, "--index", "copy", "--definition", definition, "--json")
        assert r.code == 0 and r.json()["failed"] == 0, r.out
        c = segstore.connect(target)
        try:
            assert [c.get(index="copy", id=i).get("_routing") for i in ("a", "b")] == ["ra", None]
            assert c.get(index="copy", id="a")["_source"] == {"v": [1.5, 2.5]}
        finally:
            c.close()


def test_import_reports_rejected_documents(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    definition = tmp_path / "def.json"
    definition.write_text(json.dumps({"settings": {"index.knn": True},
                                      "mappings": {"properties": {"v": {"type": "knn_vector", "dimension": 2}}}}))
    f = tmp_path / "in.ndjson"
    f.write_text("".join(json.dumps(x) + "\n" for x in [
        {"index": {"_index": "x", "_id": "1"}}, {"v": [1.0, 2.0]},
        {"index": {"_index": "x", "_id": "2"}}, {"v": [1.0, 2.0, 3.0]},  # wrong dimension
        {"delete": {"_index": "x", "_id": "1"}},
        {"index": {"_index": "x", "_id": "3"}}, {"v": [0.5, 0.5]},
    ]))
    r = run_cli(capsys, "import", tmp_path / "d", f, "--definition", definition, "--index", "x", "--json")
    assert r.code == 1
    res = r.json()
    assert res["failed"] == 1 and res["results"] == {"created": 2, "deleted": 1}
    assert res["errors"][0]["_id"] == "2" and res["errors"][0]["status"] == 400
    assert set(live_sources(capsys, str(tmp_path / "d"))) == {"3"}
    # a missing index without a definition is a usage error
    r = run_cli(capsys, "import", tmp_path / "d2", f, "--index", "y")
    assert r.code == 2 and "--definition" in r.err
