"""``segstore.quantization.memory``: resident-memory accounting of loaded graphs and quantized codes, warmup,
and the k-NN cache counters."""

from __future__ import annotations

import numpy as np
import pytest

import segstore
from segstore import IndexOp
from segstore.quantization import memory as qmem

D, N = 32, 1100


def _build(path, segments: int = 2):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    x = rng.standard_normal((N * segments, D)).astype(np.float32)
    mappings = {"properties": {
        "bq": {"type": "knn_vector", "dimension": D, "mode": "on_disk", "compression_level": "16x"},
        "fp16": {"type": "knn_vector", "dimension": D, "compression_level": "2x"},
        "byte": {"type": "knn_vector", "dimension": D, "data_type": "byte"},
    }}
    w = segstore.create_index(path, "idx", mappings=mappings,
                              settings={"index.knn": True, "index.translog.durability": "async"})
    codes = np.clip(np.round(x * 40), -128, 127).astype(int)
    for s in range(segments):
        rows = range(s * N, (s + 1) * N)
        w.bulk([IndexOp(str(i), {"bq": x[i].tolist(), "fp16": x[i].tolist(), "byte": codes[i].tolist()})
                for i in rows])
        w.refresh()
    return w, x


def test_accounting_counts_only_what_is_loaded(tmp_path) -> None:  # type: ignore[no-untyped-def]
    w, x = _build(tmp_path)
    try:
        mem = qmem.writer_memory(w)
        assert set(mem) == {"bq", "fp16", "byte"}
        for f in mem.values():
            assert (f.segments, f.vectors, f.graphs_total) == (2, 2 * N, 2)
            assert f.graph_count == f.graph_bytes == f.quantized_bytes == 0
        assert (mem["bq"].encoding, mem["bq"].compression_level, mem["bq"].mode) == ("binary 2-bit", "16x", "on_disk")
        assert (mem["fp16"].encoding, mem["byte"].encoding) == ("fp16", "int8")

        reader = w.acquire_reader()
        try:
            g = reader.leaves[0].graph("byte")  # load one graph by hand
            mem = qmem.reader_memory(reader)
            assert mem["byte"].graph_count == 1 and mem["byte"].graph_bytes == g.memory_bytes()
            assert mem["byte"].graph_kb == -(-g.memory_bytes() // 1024)
            assert mem["bq"].graph_count == 0

            res = qmem.warmup_reader(reader)
            assert (res.segments, res.graphs_loaded, res.graphs_already_loaded) == (2, 5, 1)
            assert res.quantized_opened == 4  # bq and fp16 codes of both segments
            mem = qmem.reader_memory(reader)
            for f in mem.values():
                assert f.graph_count == 2
                expect = sum(leaf.graph(f.field).memory_bytes() for leaf in reader.leaves)
                assert f.graph_bytes == expect
            # the state's (2, d) float32 threshold table per segment, plus the codes when they are mapped
            # (2 bits x 32 dims = 8 bytes per vector; fp16: 2 bytes per dimension); byte fields have no codes
            assert mem["bq"].quantized_bytes in (2 * (2 * D * 4), 2 * N * 8 + 2 * (2 * D * 4))
            assert mem["fp16"].quantized_bytes in (0, 2 * N * 2 * D)
            assert mem["byte"].quantized_bytes == 0
            for f in ("bq", "fp16"):
                assert mem[f].quantized_bytes == sum(leaf.quantized(f).memory_bytes() for leaf in reader.leaves)
            # graphs over codes: 8-byte codes + links (bq) < 64-byte fp16 codes + links
            assert mem["bq"].graph_bytes < mem["fp16"].graph_bytes
        finally:
            reader.dec_ref()
    finally:
        w.close()


def test_node_memory_only_sees_open_indices(tmp_path) -> None:  # type: ignore[no-untyped-def]
    w, _ = _build(tmp_path / "data", segments=1)
    w.close()
    node = segstore.Node(tmp_path / "data", background_refresh=False)
    try:
        assert qmem.node_memory(node) == {}  # nothing opened, nothing resident
        writer = node.writer("idx")
        assert set(qmem.node_memory(node)) == {"idx"}
        qmem.warmup_writer(writer, fields=["bq"])
        mem = qmem.node_memory(node)["idx"]
        assert mem["bq"].graph_count == 1 and mem["fp16"].graph_count == 0 and mem["byte"].graph_count == 0
    finally:
        node.close()


def test_cache_counters_observation_and_instrumented_mode() -> None:
    stats = qmem.CacheStats()

    class G:  # a stand-in graph
        pass

    a, b = G(), G()
    stats.observe(a, nanos=5)
    stats.observe(a)  # seen before: no new load
    stats.observe(a, warmup_hit=True)
    assert stats.snapshot() == {"hit_count": 1, "miss_count": 1, "load_success_count": 1, "load_exception_count": 0,
                                "total_load_time": 5, "eviction_count": 0}
    stats.record_load(b, 7)  # a graph reader reporting its own events switches inference off
    stats.record_hit()
    stats.record_load_failure(1)
    stats.observe(G())
    assert stats.instrumented
    assert stats.snapshot() == {"hit_count": 2, "miss_count": 3, "load_success_count": 2, "load_exception_count": 1,
                                "total_load_time": 13, "eviction_count": 0}
    stats.reset()
    assert set(stats.snapshot().values()) == {0}


def test_units_and_capacity(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [qmem.kilobytes(b) for b in (0, 1, 1024, 1025, 4096)] == [0, 1, 1, 2, 4]
    monkeypatch.setenv("SEGSTORE_KNN_MEMORY_LIMIT", "2gb")
    assert qmem.default_capacity_bytes() == 2 << 30
    monkeypatch.setenv("SEGSTORE_KNN_MEMORY_LIMIT", "100%")
    full = qmem.default_capacity_bytes()
    monkeypatch.delenv("SEGSTORE_KNN_MEMORY_LIMIT")
    assert qmem.default_capacity_bytes() == full // 2
    assert qmem.field_encoding({"encoder": "binary", "encoder.bits": "4"}, "float") == "binary 4-bit"
    assert qmem.field_encoding({"encoder": "sq", "encoder.bits": "7"}, "float") == "sq 7-bit"
    assert qmem.field_encoding({"encoder": "sq", "encoder.type": "fp16"}, "float") == "fp16"
    assert qmem.field_encoding({}, "binary") == "bits"
