"""``segstore bench`` end to end on small slices of ``../shared/data`` (skipped when the data is absent)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segstore_tools import bench, bench_derived_source
from segstore_tools.cli import main


def _check_result(r: dict[str, Any], docs: int, queries: int) -> None:
    assert r["params"]["docs"] == docs and r["params"]["queries"] == queries and r["params"]["dims"] == 384
    for key in ("cpu_count", "python", "numpy", "hnswlib", "load_avg_start", "load_avg_end"):
        assert key in r["machine"]
    seg, hn = r["segstore"], r["hnswlib"]
    assert seg["ingest"]["docs_per_s"] > 0 and hn["build"]["docs_per_s"] > 0
    assert seg["query"]["qps"] > 0 and hn["query"]["qps"] > 0
    assert len(seg["query"]["passes_s"]) == len(hn["query"]["passes_s"]) == r["params"]["passes"]
    assert seg["segments"] == 1 and seg["index_bytes"] > docs * 384 * 4
    assert seg["ingest"]["bulks"] == -(-docs // r["params"]["bulk_size"])
    assert set(r["targets"]) == {"qps", "ingest"}
    for name, t in r["targets"].items():
        assert t["ratio"] == pytest.approx(r["ratios"][name]) and t["pass"] == (t["ratio"] >= t["target"])
    assert r["passed"] == all(t["pass"] for t in r["targets"].values())
    assert r["ratios"]["qps"] == pytest.approx(seg["query"]["qps"] / hn["query"]["qps"])


def test_run_bench_small_slice(shared_data: str, tmp_path: Path) -> None:
    r = bench.run_bench(shared_data, docs=2000, queries=50, workdir=str(tmp_path))
    _check_result(r, 2000, 50)
    assert r["segstore"]["recall_at_10"] > 0.9
    assert r["hnswlib"]["recall_at_10"] > 0.9
    json.dumps(r)  # JSON-ready
    table = bench.format_table(r)
    assert "ingest / build" in table and "recall@10" in table and ("PASS" in table or "FAIL" in table)
    assert os.listdir(tmp_path)  # --workdir keeps the index


def test_exact_ground_truth_matches_shipped_file(shared_data: str) -> None:
    """The brute force used for slices agrees with the shipped top-10 when given all 60k docs."""
    ds = os.path.join(shared_data, "minilm-384")
    docs = np.load(os.path.join(ds, "docs.f16.npy")).astype(np.float32)
    queries = np.load(os.path.join(ds, "queries.f16.npy"))[:5].astype(np.float32)
    gt = np.load(os.path.join(ds, "gt_l2_top100.i32.npy"))[:5, :10]
    mine = bench.exact_top_k(docs, queries, 10)
    assert bench.recall_at_k(mine.tolist(), gt) >= 0.98  # float64 vs float32 distances may swap near-ties


def test_cli_json(shared_data: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "res" / "bench.json"
    code = main(["bench", "--data", shared_data, "--docs", "1000", "--queries", "20", "--json", "--out", str(out)])
    assert code in (0, 1)
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    _check_result(printed, 1000, 20)
    assert code == (0 if printed["passed"] else 1)


def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--data", str(tmp_path), "--out", str(tmp_path / "x.json")]) == 2
    assert "minilm-384" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["bench", "--durability", "never"])
    assert e.value.code == 2


def test_cli_rejects_out_of_range_sizes(shared_data: str, tmp_path: Path) -> None:
    assert main(["bench", "--data", shared_data, "--docs", "0", "--out", str(tmp_path / "x.json")]) == 2
    assert main(["bench", "--data", shared_data, "--queries", "5000", "--out", str(tmp_path / "x.json")]) == 2


def test_default_data_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEGSTORE_DATA", str(tmp_path))
    assert bench.default_data_dir() == str(tmp_path)
    monkeypatch.delenv("SEGSTORE_DATA")
    expected = Path(bench.__file__).resolve().parent.parent.parent / "shared" / "data"
    assert Path(bench.default_data_dir()) == expected


def test_cli_derived_source_smoke(shared_data: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``segstore bench --derived-source`` on 300 documents: both variants merged to one segment, the derived
    index's stored fields several times smaller, the cold fetch done by a fresh process."""
    monkeypatch.setattr(bench_derived_source, "DROP_CACHES", False)  # never empty the machine's page cache here
    out = tmp_path / "ds.json"
    code = main(["bench", "--derived-source", "--data", shared_data, "--docs", "300", "--fetch", "10",
                 "--segment-docs", "100", "--passes", "1", "--workdir", str(tmp_path / "w"), "--out", str(out),
                 "--json"])
    assert code == 0
    r = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == r
    assert (r["docs"], r["dims"], r["fetch"], r["passes"]) == (300, 384, 10, 1)
    d, p = r["variants"]["derived"], r["variants"]["plain"]
    assert d["after_merge"]["segments"] == p["after_merge"]["segments"] == 1
    assert d["after_merge"]["stored_fields_bytes"] * 5 < p["after_merge"]["stored_fields_bytes"]
    assert d["after_merge"]["segment_bytes"] < p["after_merge"]["segment_bytes"]
    for v in (d, p):
        assert v["cold_fetch"]["fetches"] == 10 and v["cold_fetch"]["total_ms"] > 0
        assert v["cold_fetch"]["eviction"]["method"] == "fadvise_dontneed"
    table = bench_derived_source.format_table(r)
    assert "3x smaller" in table and "~10% faster" in table
