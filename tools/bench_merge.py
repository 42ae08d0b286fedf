"""``bench_merge``: merge throughput and search before/after a merge, on real 384-d vectors.

What it does (``python -m segstore_tools.bench_merge``; ``segstore bench-merge`` once registered in the CLI):

1. ingest ``--segments`` x ``--docs-per-segment`` documents of ``minilm-384`` (vector + the sentence as a
   small ``text`` field), one refresh per segment: 10 segments of 10k docs by default. The data set has
   60,000 rows; documents past the end reuse rows from the start plus N(0, 0.01) noise, re-normalised
   (a near-duplicate, never an exact one, so the graph and the recall stay meaningful);
2. search: single-query QPS at k=10, ef_search=100 (warm-up, then the best of ``--passes``) and recall@10
   against an exact numpy search over the indexed vectors;
3. ``force_merge(1)`` through the writer (serial, in this thread): wall time, docs/s, and the merger's own
   timings (``MergeResult.timings``): stored-field copy, vector values, graph rebuild (plus quantization
   training when the field is quantized), and the rest (input verification, doc maps, opening the result);
4. search again on the merged segment.

``--gil`` adds the measurement behind the threads-vs-processes decision of the concurrent merge scheduler
(see :mod:`segstore.index.merge_scheduler`): the stored-field copy and the hnswlib graph build (one native
thread each), two at a time in two threads vs one after the other, and search QPS alone, during a merge
in a thread, and during the same merge in a spawned process.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from typing import Any

import numpy as np

__all__ = ["run", "main", "register"]

DATASET_ROWS = 60_000
DIMS = 384
K = 10
EF_SEARCH = 100
MAPPINGS: dict[str, Any] = {"properties": {
    "v": {"type": "knn_vector", "dimension": DIMS, "space_type": "l2",
          "method": {"name": "hnsw", "parameters": {"m": 16, "ef_construction": 100}}},
    "text": {"type": "text"},
}}


def _data_dir(path: str | None) -> str:
    root = path or os.environ.get("SEGSTORE_DATA") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.pardir, "shared", "data")
    for cand in (os.path.join(root, "minilm-384"), root):
        if os.path.isfile(os.path.join(cand, "docs.f16.npy")):
            return cand
    raise SystemExit(f"no minilm-384/docs.f16.npy under [{root}] (use --data or SEGSTORE_DATA)")


def load(data: str, n: int, queries: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    import zstandard

    base = np.load(os.path.join(data, "docs.f16.npy")).astype(np.float32)
    rows = [base[: min(n, len(base))]]
    rng = np.random.default_rng(0)
    while sum(len(r) for r in rows) < n:  # near-duplicates past the end of the data set
        take = min(n - sum(len(r) for r in rows), len(base))
        extra = base[:take] + rng.normal(0, 0.01, (take, base.shape[1])).astype(np.float32)
        rows.append(extra / np.linalg.norm(extra, axis=1, keepdims=True))
    with open(os.path.join(data, "texts.txt.zst"), "rb") as fh:
        texts = zstandard.ZstdDecompressor().decompress(fh.read()).decode().split("\n")
    q = np.load(os.path.join(data, "queries.f16.npy"))[:queries].astype(np.float32)
    return np.concatenate(rows), [texts[i % len(base)][:200] for i in range(n)], q


def exact_top(docs: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    norms = (docs * docs).sum(axis=1)
    out = []
    for chunk in np.array_split(queries, max(1, len(queries) // 100)):
        d = norms[None, :] - 2 * chunk @ docs.T
        out.append(np.argsort(d, axis=1)[:, :k])
    return np.concatenate(out)


def search(reader: Any, queries: np.ndarray, passes: int) -> tuple[float, list[list[int]]]:
    """(best-pass QPS, hit row ids per query)."""
    import segstore

    rows = list(queries)
    for q in rows[: min(50, len(rows))]:  # warm-up: graphs load lazily
        segstore.knn_search(reader, "v", q, K, ef_search=EF_SEARCH)
    best = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter()
        tops = [segstore.knn_search(reader, "v", q, K, ef_search=EF_SEARCH) for q in rows]
        best = min(best, time.perf_counter() - t0)
    ids = [[int(reader.leaves[sd.leaf].stored_document(sd.doc)["_id"]) for sd in t.score_docs] for t in tops]
    return len(rows) / best, ids


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth)]))


def run(data: str | None = None, segments: int = 10, per_segment: int = 10_000, queries: int = 1000,
        passes: int = 3, gil: bool = False, workdir: str | None = None) -> dict[str, Any]:
    import segstore
    from segstore.index.operations import IndexOp

    n = segments * per_segment
    docs, texts, qs = load(_data_dir(data), n, queries)
    truth = exact_top(docs, qs, K)
    tmp = tempfile.mkdtemp(prefix="segstore-bench-merge-", dir=workdir)
    out: dict[str, Any] = {"docs": n, "segments": segments, "dims": DIMS, "queries": len(qs),
                           "cpus": os.cpu_count(), "synthetic_rows": max(0, n - DATASET_ROWS)}
    try:
        w = segstore.create_index(tmp, "bench", settings={"index.knn": True, "index.translog.durability": "async",
                                                          "index.refresh_interval": "-1"}, mappings=MAPPINGS)
        t0 = time.perf_counter()
        for s in range(segments):
            for b in range(s * per_segment, (s + 1) * per_segment, 1000):
                e = min(b + 1000, (s + 1) * per_segment)
                lists = docs[b:e].tolist()
                w.bulk([IndexOp(str(i), {"v": lists[i - b], "text": texts[i]}) for i in range(b, e)])
            w.refresh()
        w.commit()
        out["ingest_s"] = time.perf_counter() - t0
        with w.acquire_reader() as r:
            assert len(r.leaves) == segments
            out["qps_before"], found = search(r, qs, passes)
            out["recall_before"] = recall(found, truth)
            if gil:
                out["gil"] = measure_gil(w, r, qs, tmp)
        t0 = time.perf_counter()
        (result,) = w.force_merge(1, flush=False)
        out["merge_s"] = time.perf_counter() - t0
        w.commit()
        t = result.timings
        out["merge_timings_s"] = {"stored_fields": t.get("stored_fields", 0.0),
                                  "vector_values": t.get("vector_values", 0.0), "graph": t.get("graph", 0.0)}
        out["merge_timings_s"]["other"] = out["merge_s"] - sum(out["merge_timings_s"].values())
        out["merge_docs_per_s"] = n / out["merge_s"]
        with w.acquire_reader() as r:
            out["qps_after"], found = search(r, qs, passes)
            out["recall_after"] = recall(found, truth)
        w.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# --------------------------------------------------------------------------------------- GIL measurement

def _stored_copy(leaf: Any) -> None:
    import msgpack

    from segstore.index.field_infos import FieldInfos
    from segstore.index.segment_info import SegmentInfo
    from segstore.index.write_state import SegmentWriteState
    from segstore.store import MemoryDirectory

    codec = leaf.core.codec
    info = SegmentInfo("_x", os.urandom(16), leaf.max_doc, codec.name)
    out = codec.stored_fields_format.fields_writer(SegmentWriteState(MemoryDirectory(), info, FieldInfos([])))
    count = 0
    for raw in leaf.core.stored.raw_documents(list(range(leaf.max_doc))):  # what SegmentMerger does
        msgpack.unpackb(raw, raw=False)
        out.write_raw(raw)
        count += 1
    out.finish(count)


def _graph_build(leaf: Any) -> None:
    import hnswlib

    v = np.ascontiguousarray(leaf.vector_values("v").vectors)
    index = hnswlib.Index(space="l2", dim=v.shape[1])
    index.init_index(max_elements=len(v), M=16, ef_construction=100, random_seed=100)
    index.add_items(v, np.arange(len(v)), num_threads=1)


def _merge(leaves: list[Any]) -> float:
    from segstore.codec.registry import default_codec
    from segstore.index.segment_merger import SegmentMerger
    from segstore.store import MemoryDirectory

    t0 = time.perf_counter()
    SegmentMerger(default_codec(), MemoryDirectory(), leaves, "_m", lambda fi, n: True).merge()
    return time.perf_counter() - t0


def _merge_in_child(data_dir: str, conn: Any) -> None:
    import segstore

    reader = segstore.open_reader(data_dir, "bench")
    conn.send(_merge(reader.leaves[:2]))


def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return r.ru_utime + r.ru_stime


def _timed(fn: Any) -> tuple[float, float]:
    """(wall seconds, process CPU seconds / wall seconds)."""
    c0, t0 = _cpu(), time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    return wall, (_cpu() - c0) / wall


def measure_gil(w: Any, reader: Any, qs: np.ndarray, data_dir: str, repeats: int = 3) -> dict[str, Any]:
    """Best of ``repeats`` for each configuration. ``cpu_per_wall`` is the process's CPU seconds per wall
    second: code that holds the GIL cannot go above 1.0 however many threads run it, whatever the load of
    the machine; code that releases it can reach the number of free cores."""
    import segstore

    a, b = reader.leaves[0], reader.leaves[1]
    res: dict[str, Any] = {}
    for name, fn in (("stored_copy", _stored_copy), ("graph_build_1_thread", _graph_build)):
        def serial(fn: Any = fn) -> None:
            fn(a)
            fn(b)

        def threaded(fn: Any = fn) -> None:
            threads = [threading.Thread(target=fn, args=(x,)) for x in (a, b)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()

        runs_s = [_timed(serial) for _ in range(repeats)]
        runs_t = [_timed(threaded) for _ in range(repeats)]
        (s_wall, s_cpu), (t_wall, t_cpu) = min(runs_s), min(runs_t)
        res[name] = {"two_serial_s": s_wall, "two_threads_s": t_wall, "speedup": s_wall / t_wall,
                     "cpu_per_wall_serial": s_cpu, "cpu_per_wall_threads": t_cpu}

    def qps_until(done: Any, seconds: float | None = None) -> float:
        count, t0 = 0, time.perf_counter()
        while True:
            for q in qs[:100]:
                segstore.knn_search(reader, "v", q, K, ef_search=EF_SEARCH)
                count += 1
            elapsed = time.perf_counter() - t0
            if done() or (seconds is not None and elapsed > seconds):
                return count / elapsed

    alone, in_thread, in_proc, m_alone, m_thread, m_proc = [], [], [], [], [], []
    ctx = multiprocessing.get_context("spawn")
    for _ in range(repeats):
        alone.append(qps_until(lambda: False, 5.0))
        took: list[float] = []
        th = threading.Thread(target=lambda took=took: took.append(_merge([a, b])))
        th.start()
        in_thread.append(qps_until(lambda th=th: not th.is_alive()))
        th.join()
        m_thread.append(took[0])
        m_alone.append(_merge([a, b]))
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_merge_in_child, args=(data_dir, child))
        proc.start()
        time.sleep(1.0)  # interpreter start and imports, so the window measures the merge
        in_proc.append(qps_until(lambda proc=proc: not proc.is_alive()))
        proc.join()
        m_proc.append(parent.recv() if parent.poll() else float("nan"))
    res.update(qps_alone=max(alone), qps_during_merge_thread=max(in_thread),
               qps_during_merge_process=max(in_proc), merge_alone_s=min(m_alone), merge_in_thread_s=min(m_thread),
               merge_in_process_s=min(m_proc), repeats=repeats)
    return res


# ---------------------------------------------------------------------------------------------- output

def format_table(r: dict[str, Any]) -> str:
    t = r["merge_timings_s"]
    lines = [
        f"merge {r['segments']} segments -> 1, {r['docs']:,} docs x {r['dims']}-d "
        f"({r['synthetic_rows']:,} near-duplicate rows), {r['cpus']} CPUs",
        "",
        "| measure | value |", "|---|---|",
        f"| ingest ({r['segments']} flushes) | {r['ingest_s']:.1f} s |",
        f"| merge wall time | {r['merge_s']:.1f} s |",
        f"| merge throughput | {r['merge_docs_per_s']:,.0f} docs/s |",
        f"| - stored-field copy | {t['stored_fields']:.2f} s ({100 * t['stored_fields'] / r['merge_s']:.1f} %) |",
        f"| - vector values | {t['vector_values']:.2f} s ({100 * t['vector_values'] / r['merge_s']:.1f} %) |",
        f"| - graph rebuild | {t['graph']:.2f} s ({100 * t['graph'] / r['merge_s']:.1f} %) |",
        f"| - other (verify inputs, doc maps, open result) | {t['other']:.2f} s |",
        f"| search QPS before ({r['segments']} segments) | {r['qps_before']:.0f} |",
        f"| search QPS after (1 segment) | {r['qps_after']:.0f} |",
        f"| recall@10 before / after | {r['recall_before']:.3f} / {r['recall_after']:.3f} |",
    ]
    g = r.get("gil")
    if g:
        lines += ["", f"| GIL measurement (2 x {r['docs'] // r['segments']:,}-doc segments, best of {g['repeats']}) "
                  "| value |", "|---|---|"]
        for name in ("stored_copy", "graph_build_1_thread"):
            x = g[name]
            lines.append(f"| {name}: 2 serial / 2 threads | {x['two_serial_s']:.2f} s / {x['two_threads_s']:.2f} s "
                         f"= {x['speedup']:.2f}x; CPU/wall {x['cpu_per_wall_serial']:.2f} -> "
                         f"{x['cpu_per_wall_threads']:.2f} |")
        lines += [f"| search QPS alone | {g['qps_alone']:.0f} |",
                  f"| search QPS during a merge in a thread | {g['qps_during_merge_thread']:.0f} |",
                  f"| search QPS during a merge in a process | {g['qps_during_merge_process']:.0f} |",
                  f"| merge alone / in thread / in process | {g['merge_alone_s']:.2f} s / "
                  f"{g['merge_in_thread_s']:.2f} s / {g['merge_in_process_s']:.2f} s |"]
    return "\n".join(lines)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="data root holding minilm-384/ (default: $SEGSTORE_DATA or ../shared/data)")
    p.add_argument("--segments", type=int, default=10)
    p.add_argument("--docs-per-segment", type=int, default=10_000)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--gil", action="store_true", help="also measure threads vs processes for merges")
    p.add_argument("--workdir", help="where the temporary index goes (default: the system temp dir)")
    p.add_argument("--json", action="store_true")


def _cmd(args: argparse.Namespace) -> int:
    if args.segments < 2 or args.docs_per_segment < 1:
        print("need --segments >= 2 and --docs-per-segment >= 1", file=sys.stderr)
        return 2
    r = run(args.data, args.segments, args.docs_per_segment, args.queries, args.passes, args.gil, args.workdir)
    print(json.dumps(r, indent=2) if args.json else format_table(r))
    return 0


def register(sub: Any) -> None:
    """Add ``segstore bench-merge`` to the CLI."""
    p = sub.add_parser("bench-merge", help="merge throughput and search before/after a merge")
    _add_arguments(p)
    p.set_defaults(func=_cmd)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_merge", description=__doc__.split("\n", 1)[0])
    _add_arguments(p)
    return _cmd(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
