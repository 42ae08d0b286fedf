"""``segstore bench --compression`` on a small slice: the record of each level, the table, JSON and plot."""

from __future__ import annotations

import json
import os

import pytest


def test_compression_bench_small_slice(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from segstore_tools import bench_compression as bc
    from segstore_tools.bench import default_data_dir

    if not os.path.isfile(os.path.join(default_data_dir(), "minilm-384", "docs.f16.npy")):
        pytest.skip("../shared/data/minilm-384 is not present")
    out = tmp_path / "out"
    r = bc.run_compression_bench(docs=1500, queries=20, levels=["32x", "byte"], passes=1, rss_queries=5,
                                 out_dir=str(out), plot=True)
    by = {lv["level"]: lv for lv in r["levels"]}
    assert set(by) == {"32x", "byte"}
    bq, byte = by["32x"], by["byte"]
    assert (bq["encoder"], bq["mode"], bq["rescore_factor"], bq["first_pass_k"]) == (
        {"name": "binary", "parameters": {"bits": 1}}, "on_disk", 5.0, 100)
    assert byte["encoder"] is None and byte["rescore_factor"] is None
    assert byte["recall_default"] == byte["recall_no_rescore"]
    assert bq["recall_default"] >= bq["recall_no_rescore"]
    assert bq["formula_bytes_per_vector"] == pytest.approx(1.1 * (384 / 8 + 8 * 16))
    assert byte["formula_bytes_per_vector"] == pytest.approx(1.1 * (384 + 8 * 16))
    # the full-precision vectors are on disk (4d per vector in .vec), never in the warmed process's memory
    assert bq["disk_files"][".vec"] >= 1500 * 4 * 384
    assert bq["resident_bytes_per_vector"] < 4 * 384
    assert bq["vec_resident_after_warmup"] < 0.05 * bq["vec_file_bytes"]
    assert bq["accounted_graph_bytes_per_vector"] > 0 and bq["warmup"]["graphs_loaded"] == 1
    assert set(bq["checks"]) == {"recall", "memory", "no_full_precision"} and set(byte["checks"]) == {"memory"}
    saved = json.loads((out / "compression.json").read_text())
    assert [lv["level"] for lv in saved["levels"]] == ["32x", "byte"]
    assert (out / "compression.png").stat().st_size > 0
    table = bc.format_table(r)
    assert "32x" in table and "bq-1bit" in table and "byte" in table
