"""``segstore bench``: segstore against raw hnswlib on the same data, in one run.

Measured side by side on ``minilm-384`` (see ``../shared/data/README.md``):

1. segstore ingest: ``IndexWriter.bulk`` in bulks of ``--bulk-size`` (one translog fsync per bulk under
   ``request`` durability), then one ``refresh()`` (one segment; the HNSW graph is built there) and one
   ``commit()``. Rate = N / (bulks + refresh + commit). The documents' vectors are turned into Python lists
   before the clock starts: a server receives JSON-decoded lists, building them is the client's cost.
2. raw hnswlib build: ``init_index`` + ``add_items`` (all cores) with the same M / ef_construction / seed.
3. single-query QPS at k=10, ef=100: one query per call, a warm-up pass, then the best of 3 timed passes.
4. recall@10 of both against exact L2 ground truth (the shipped top-100 for the full 60k docs, a numpy
   brute force for a slice).
5. ratios segstore / hnswlib with targets (QPS >= 0.8, ingest >= 0.7): exit code 1 if one is missed.

:func:`run_bench` is the importable core (tests call it on small slices); :func:`register` adds the CLI.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import numpy as np

__all__ = ["run_bench", "register", "format_table", "default_data_dir", "TARGETS"]

log = logging.getLogger(__name__)

DATASET = "minilm-384"
DIMS = 384
K = 10
EF_SEARCH = 100
M = 16
EF_CONSTRUCTION = 100
SEED = 100
FIELD = "embedding"
PASSES = 3
TARGETS: dict[str, float] = {"qps": 0.8, "ingest": 0.7}  # segstore / hnswlib
MAPPINGS: dict[str, Any] = {"properties": {
    FIELD: {"type": "knn_vector", "dimension": DIMS, "space_type": "l2",
            "method": {"name": "hnsw", "engine": "faiss",
                       "parameters": {"m": M, "ef_construction": EF_CONSTRUCTION, "ef_search": EF_SEARCH}}},
    "text": {"type": "text"},
}}


class BenchDataError(Exception):
    """The benchmark data is missing or does not fit the requested sizes (a usage problem: exit 2)."""


# ------------------------------------------------------------------------------------------------- data

def default_data_dir() -> str:
    """``$SEGSTORE_DATA`` if set, else ``<repo>/../shared/data`` resolved from this file."""
    env = os.environ.get("SEGSTORE_DATA")
    if env:
        return env
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.normpath(os.path.join(repo, os.pardir, "shared", "data"))


def _dataset_dir(data_dir: str) -> str:
    """Accept either the data root (holding ``minilm-384/``) or the dataset folder itself."""
    for cand in (os.path.join(data_dir, DATASET), data_dir):
        if os.path.isfile(os.path.join(cand, "docs.f16.npy")):
            return cand
    raise BenchDataError(f"no {DATASET}/docs.f16.npy under [{data_dir}] (set --data or SEGSTORE_DATA)")


def load_data(data_dir: str, n_docs: int | None, n_queries: int | None
              ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """(docs float32 [N, 384], texts [N], queries float32 [Q, 384], exact top-10 row ids [Q, 10])."""
    import zstandard

    ds = _dataset_dir(data_dir)
    all_docs = np.load(os.path.join(ds, "docs.f16.npy"), mmap_mode="r")
    all_queries = np.load(os.path.join(ds, "queries.f16.npy"), mmap_mode="r")
    n = all_docs.shape[0] if n_docs is None else n_docs
    q = all_queries.shape[0] if n_queries is None else n_queries
    if not 1 <= n <= all_docs.shape[0] or not 1 <= q <= all_queries.shape[0]:
        raise BenchDataError(f"--docs must be in [1, {all_docs.shape[0]}] and --queries in "
                             f"[1, {all_queries.shape[0]}], got {n} and {q}")
    docs = np.ascontiguousarray(all_docs[:n], dtype=np.float32)
    queries = np.ascontiguousarray(all_queries[:q], dtype=np.float32)
    with open(os.path.join(ds, "texts.txt.zst"), "rb") as fh:
        texts = zstandard.ZstdDecompressor().decompress(fh.read()).decode("utf-8").split("\n")[:n]
    texts += [""] * (n - len(texts))
    if n == all_docs.shape[0]:
        gt = np.load(os.path.join(ds, "gt_l2_top100.i32.npy"))[:q, :K].astype(np.int64)
    else:
        gt = exact_top_k(docs, queries, K)
    return docs, texts, queries, gt


def exact_top_k(docs: np.ndarray, queries: np.ndarray, k: int, chunk: int = 256) -> np.ndarray:
    """Brute-force L2 top-k row ids (float64 distances, ties broken by row number)."""
    d64 = docs.astype(np.float64)
    norms = (d64 * d64).sum(axis=1)
    k = min(k, docs.shape[0])
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    rows = np.arange(docs.shape[0])
    for s in range(0, queries.shape[0], chunk):
        q = queries[s:s + chunk].astype(np.float64)
        dist = norms[None, :] - 2.0 * (q @ d64.T)
        for j in range(q.shape[0]):
            out[s + j] = np.lexsort((rows, dist[j]))[:k]
    return out


def recall_at_k(found: Sequence[Sequence[int]], gt: np.ndarray) -> float:
    """Mean fraction of each query's true top-k that was found."""
    k = gt.shape[1]
    hits = sum(len(set(int(x) for x in f[:k]) & set(gt[i].tolist())) for i, f in enumerate(found))
    return hits / float(k * gt.shape[0])


# -------------------------------------------------------------------------------------------- measuring

def _best_pass(run_pass: Callable[[], None], passes: int) -> tuple[float, list[float]]:
    """Warm up once, then time ``passes`` passes; return (best seconds, all seconds)."""
    run_pass()
    times = []
    for _ in range(passes):
        t0 = time.perf_counter()
        run_pass()
        times.append(time.perf_counter() - t0)
    return min(times), times


def _disk_bytes(path: str) -> int:
    """Bytes allocated on disk under ``path`` (st_blocks, so sparse LMDB maps count what they use)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(root, f))
            except FileNotFoundError:
                continue
            total += st.st_blocks * 512
    return total


def bench_hnswlib(docs: np.ndarray, queries: np.ndarray, passes: int) -> tuple[dict[str, Any], list[list[int]]]:
    """Raw hnswlib: build rate (all cores) and single-query QPS (one thread)."""
    import hnswlib

    n = docs.shape[0]
    ids = np.arange(n, dtype=np.int64)
    t0 = time.perf_counter()
    index = hnswlib.Index(space="l2", dim=docs.shape[1])
    index.init_index(max_elements=n, M=M, ef_construction=EF_CONSTRUCTION, random_seed=SEED)
    index.add_items(docs, ids)
    build_s = time.perf_counter() - t0
    index.set_ef(EF_SEARCH)
    k = min(K, n)
    rows = [queries[i] for i in range(queries.shape[0])]
    found: list[list[int]] = []

    def run_pass() -> None:
        for q in rows:
            index.knn_query(q, k=k, num_threads=1)

    for q in rows:  # the results used for recall (not timed)
        found.append(index.knn_query(q, k=k, num_threads=1)[0][0].tolist())
    best, times = _best_pass(run_pass, passes)
    return {"build": {"seconds": build_s, "docs_per_s": n / build_s},
            "query": {"qps": len(rows) / best, "best_pass_s": best, "passes_s": times}}, found


def bench_segstore(docs: np.ndarray, texts: list[str], queries: np.ndarray, data_dir: str, *,
                   bulk_size: int, durability: str, passes: int) -> tuple[dict[str, Any], list[list[int]]]:
    """segstore: bulk ingest + refresh + commit, then single-query QPS on the one-segment reader."""
    import segstore
    from segstore import IndexOp

    n = docs.shape[0]
    # What a server gets after JSON decoding: plain lists of floats. Not the engine's cost, so untimed.
    sources = [{FIELD: row, "text": text} for row, text in zip(docs.tolist(), texts)]
    ids = [str(i) for i in range(n)]
    gc.collect()
    gc.freeze()  # the harness's pre-built lists are not the engine's heap: keep them out of GC scans
    writer = segstore.create_index(
        data_dir, "bench", settings={"index.knn": True, "index.translog.durability": durability},
        mappings=MAPPINGS)
    try:
        t0 = time.perf_counter()
        rejected = 0
        for s in range(0, n, bulk_size):
            results = writer.bulk([IndexOp(ids[i], sources[i]) for i in range(s, min(n, s + bulk_size))])
            rejected += sum(1 for r in results if isinstance(r, Exception))
        t1 = time.perf_counter()
        writer.refresh()
        t2 = time.perf_counter()
        writer.commit()
        t3 = time.perf_counter()
        if rejected:
            raise RuntimeError(f"segstore rejected {rejected} benchmark documents")
        segments = len(writer.segments())
        reader = writer.acquire_reader()
    except BaseException:
        writer.close(commit=False)
        raise
    finally:
        gc.unfreeze()
    del sources
    try:
        k = min(K, n)
        rows = [queries[i] for i in range(queries.shape[0])]
        tops = [segstore.knn_search(reader, FIELD, q, k, ef_search=EF_SEARCH) for q in rows]  # loads graph

        def run_pass() -> None:
            for q in rows:
                segstore.knn_search(reader, FIELD, q, k, ef_search=EF_SEARCH)

        best, times = _best_pass(run_pass, passes)
        id_cache: dict[tuple[int, int], int] = {}
        found: list[list[int]] = []
        for top in tops:
            row = []
            for sd in top.score_docs:
                key = (sd.leaf, sd.doc)
                if key not in id_cache:
                    id_cache[key] = int(reader.leaves[sd.leaf].stored_document(sd.doc)["_id"])
                row.append(id_cache[key])
            found.append(row)
    finally:
        reader.close()
        writer.close()
    index_root = os.path.join(data_dir, "indices")
    seg_bytes = sum(_disk_bytes(os.path.join(index_root, u, "index")) for u in os.listdir(index_root))
    ingest_s = t3 - t0
    return {"ingest": {"seconds": ingest_s, "docs_per_s": n / ingest_s, "bulk_s": t1 - t0,
                       "refresh_s": t2 - t1, "commit_s": t3 - t2, "bulks": -(-n // bulk_size)},
            "query": {"qps": len(rows) / best, "best_pass_s": best, "passes_s": times},
            "segments": segments, "index_bytes": seg_bytes, "data_dir_bytes": _disk_bytes(data_dir)}, found


def machine_info() -> dict[str, Any]:
    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    return {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "numpy": np.__version__, "hnswlib": version("hnswlib"), "segstore": version("segstore")}


def run_bench(data_dir: str | None = None, *, docs: int | None = None, queries: int | None = None,
              bulk_size: int = 500, durability: str = "request", workdir: str | None = None,
              passes: int = PASSES) -> dict[str, Any]:
    """Run the whole comparison and return the JSON-ready result (see the module docstring).

    ``workdir`` (kept afterwards) receives a fresh ``segstore-bench-*`` folder; by default a temporary
    folder is used and removed.
    """
    if bulk_size < 1 or passes < 1:
        raise BenchDataError("--bulk-size and passes must be >= 1")
    if durability not in ("request", "async"):
        raise BenchDataError(f"--durability must be request or async, got {durability!r}")
    data_dir = data_dir or default_data_dir()
    doc_vecs, texts, query_vecs, gt = load_data(data_dir, docs, queries)
    n, nq = doc_vecs.shape[0], query_vecs.shape[0]
    log.info("bench: %d docs, %d queries, bulk %d, durability %s", n, nq, bulk_size, durability)
    if workdir is not None:
        os.makedirs(workdir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="segstore-bench-", dir=workdir)
    try:
        log.info("bench: hnswlib build + queries")
        hnsw, hnsw_found = bench_hnswlib(doc_vecs, query_vecs, passes)
        log.info("bench: segstore ingest + queries in %s", tmp)
        seg, seg_found = bench_segstore(doc_vecs, texts, query_vecs, os.path.join(tmp, "data"),
                                        bulk_size=bulk_size, durability=durability, passes=passes)
    finally:
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    hnsw["recall_at_10"] = recall_at_k(hnsw_found, gt)
    seg["recall_at_10"] = recall_at_k(seg_found, gt)
    ratios = {"qps": seg["query"]["qps"] / hnsw["query"]["qps"],
              "ingest": seg["ingest"]["docs_per_s"] / hnsw["build"]["docs_per_s"]}
    targets = {name: {"ratio": ratios[name], "target": t, "pass": ratios[name] >= t} for name, t in TARGETS.items()}
    return {
        "benchmark": "segstore-vs-hnswlib", "dataset": DATASET,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine_info(),
        "params": {"docs": n, "queries": nq, "dims": int(doc_vecs.shape[1]), "k": K, "ef_search": EF_SEARCH,
                   "m": M, "ef_construction": EF_CONSTRUCTION, "bulk_size": bulk_size, "durability": durability,
                   "passes": passes, "workdir": tmp if workdir is not None else None},
        "segstore": seg, "hnswlib": hnsw, "ratios": ratios, "targets": targets,
        "passed": all(t["pass"] for t in targets.values()),
    }


# ------------------------------------------------------------------------------------------------ output

def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.4f}" if v < 1 else f"{v:,.1f}"


def format_table(r: dict[str, Any]) -> str:
    """The result as an aligned plain-text table."""
    seg, hn, tg, p, m = r["segstore"], r["hnswlib"], r["targets"], r["params"], r["machine"]

    def status(name: str) -> str:
        return f">= {tg[name]['target']:.2f} {'PASS' if tg[name]['pass'] else 'FAIL'}"

    rows = [("metric", "segstore", "hnswlib", "ratio", "target"),
            ("ingest / build (docs/s)", _fmt(seg["ingest"]["docs_per_s"]), _fmt(hn["build"]["docs_per_s"]),
             f"{r['ratios']['ingest']:.3f}", status("ingest")),
            (f"QPS k={p['k']} ef={p['ef_search']} (1 thread)", _fmt(seg["query"]["qps"]), _fmt(hn["query"]["qps"]),
             f"{r['ratios']['qps']:.3f}", status("qps")),
            (f"recall@{p['k']}", f"{seg['recall_at_10']:.4f}", f"{hn['recall_at_10']:.4f}", "", "")]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [f"segstore bench: {p['docs']:,} docs x {p['dims']} dims, {p['queries']:,} queries, bulk "
             f"{p['bulk_size']}, durability {p['durability']}"]
    for j, row in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    ing = seg["ingest"]
    lines += ["",
              f"segstore ingest: {ing['seconds']:.2f} s = bulks {ing['bulk_s']:.2f} s ({ing['bulks']} bulks) "
              f"+ refresh {ing['refresh_s']:.2f} s + commit {ing['commit_s']:.2f} s",
              f"hnswlib build:   {hn['build']['seconds']:.2f} s",
              f"segstore index:  {seg['segments']} segment(s), {seg['index_bytes'] / 2**20:.1f} MiB segment files, "
              f"{seg['data_dir_bytes'] / 2**20:.1f} MiB data dir",
              f"machine: {m['cpu_count']} cpus, python {m['python']}, numpy {m['numpy']}, hnswlib {m['hnswlib']}",
              f"result: {'PASS' if r['passed'] else 'FAIL'}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- CLI

def register(sub: Any) -> None:
    """Add the ``bench`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser("bench", help="benchmark segstore against raw hnswlib (ingest, QPS, recall)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="data folder holding minilm-384/ (default: $SEGSTORE_DATA or "
                                                "<repo>/../shared/data)")
    p.add_argument("--docs", type=int, default=None, help="number of documents (default: all 60,000)")
    p.add_argument("--queries", type=int, default=None, help="number of queries (default: all 1,000)")
    p.add_argument("--bulk-size", type=int, default=500, help="documents per bulk request (default 500)")
    p.add_argument("--durability", choices=("request", "async"), default="request",
                   help="index.translog.durability (default request: one fsync per bulk)")
    p.add_argument("--passes", type=int, default=PASSES, help="timed query passes, best kept (default 3)")
    p.add_argument("--out", default=os.path.join("bench-results", "bench.json"), help="JSON results file")
    p.add_argument("--workdir", default=None, help="keep the index under this folder (default: temp, removed)")
    p.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    try:
        result = run_bench(args.data, docs=args.docs, queries=args.queries, bulk_size=args.bulk_size,
                           durability=args.durability, workdir=args.workdir, passes=args.passes)
    except BenchDataError as e:
        print(f"segstore bench: error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2, sort_keys=False)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    print(text if args.json else format_table(result))
    return 0 if result["passed"] else 1
