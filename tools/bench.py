"""``segstore bench``: segstore against raw hnswlib on the same data, in one run.

Measured side by side on ``minilm-384`` (see ``../shared/data/README.md``):

1. segstore ingest: ``IndexWriter.bulk`` in bulks of ``--bulk-size`` (one translog fsync per bulk under
   ``request`` durability), then one ``refresh()`` (one segment; the HNSW graph grows during the bulks and
   is finished and written there) and one
   ``commit()``. Rate = N / (bulks + refresh + commit). Each bulk's vectors are turned into Python lists
   off the clock: a server receives JSON-decoded lists, building them is not the engine's cost.
2. raw hnswlib build: ``init_index`` + ``add_items`` (all cores) with the same M / ef_construction / seed.
   Steps 1 and 2 run ``--ingest-runs`` times (default 2), alternating, and each side keeps its best run.
3. single-query QPS at k=10, ef=100: one query per call, a warm-up pass, then the best of 3 timed passes
   (segstore and hnswlib passes interleaved, so machine noise hits both alike).
4. recall@10 of both against exact L2 ground truth (the shipped top-100 for the full 60k docs, a numpy
   brute force for a slice).
5. ratios segstore / hnswlib with targets (QPS >= 0.8, ingest >= 0.7): exit code 1 if one is missed.

:func:`run_bench` is the importable core (tests call it on small slices); :func:`register` adds the CLI.
"""

from __future__ import annotations

import argparse
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
INGEST_RUNS = 2
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
    for s in range(0, queries.shape[0], chunk):
        q = queries[s:s + chunk].astype(np.float64)
        dist = norms[None, :] - 2.0 * (q @ d64.T)
        kth = np.partition(dist, k - 1, axis=1)[:, k - 1]
        for j in range(q.shape[0]):
            cand = np.flatnonzero(dist[j] <= kth[j])  # every row tied with the k-th stays a candidate
            out[s + j] = cand[np.lexsort((cand, dist[j][cand]))][:k]
    return out


def recall_at_k(found: Sequence[Sequence[int]], gt: np.ndarray) -> float:
    """Mean fraction of each query's true top-k that was found."""
    k = gt.shape[1]
    hits = sum(len(set(int(x) for x in f[:k]) & set(gt[i].tolist())) for i, f in enumerate(found))
    return hits / float(k * gt.shape[0])


# -------------------------------------------------------------------------------------------- measuring

def _disk_bytes(path: str) -> int:
    """Bytes allocated on disk under ``path`` (st_blocks, so sparse LMDB maps count what they use)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


def _cpu() -> float:
    """CPU seconds of this process, every thread (diagnostic: other tenants inflate wall time, not this)."""
    t = os.times()
    return t.user + t.system


def build_hnswlib(docs: np.ndarray) -> tuple[Any, dict[str, float]]:
    """Raw hnswlib build with every core (``add_items``' default); returns (index, stats)."""
    import hnswlib

    n = docs.shape[0]
    c0, t0 = _cpu(), time.perf_counter()
    index = hnswlib.Index(space="l2", dim=docs.shape[1])
    index.init_index(max_elements=n, M=M, ef_construction=EF_CONSTRUCTION, random_seed=SEED)
    index.add_items(docs, np.arange(n, dtype=np.int64))
    seconds, cpu = time.perf_counter() - t0, _cpu() - c0
    index.set_ef(EF_SEARCH)
    return index, {"seconds": seconds, "docs_per_s": n / seconds, "cpu_s": cpu}


def ingest_segstore(writer: Any, docs: np.ndarray, texts: list[str], bulk_size: int) -> dict[str, Any]:
    """Bulks, one refresh, one commit. Only the engine calls are timed: each bulk's sources (vectors as
    Python lists, as a JSON decoder hands them to a server) are built just before the clock restarts, so
    the heap holds one request at a time, as a server's would."""
    from segstore import IndexOp

    n = docs.shape[0]
    bulk_s = bulk_cpu = 0.0
    rejected = 0
    for s in range(0, n, bulk_size):
        e = min(n, s + bulk_size)
        ops = [IndexOp(str(i), {FIELD: row, "text": texts[i]}) for i, row in zip(range(s, e), docs[s:e].tolist())]
        c0, t0 = _cpu(), time.perf_counter()
        results = writer.bulk(ops)
        bulk_s += time.perf_counter() - t0
        bulk_cpu += _cpu() - c0
        del ops
        rejected += sum(1 for r in results if isinstance(r, Exception))
    if rejected:
        raise RuntimeError(f"segstore rejected {rejected} benchmark documents")
    c0, t0 = _cpu(), time.perf_counter()
    writer.refresh()
    t1 = time.perf_counter()
    writer.commit()
    t2, c2 = time.perf_counter(), _cpu()
    total = bulk_s + (t2 - t0)
    return {"seconds": total, "docs_per_s": n / total, "bulk_s": bulk_s, "refresh_s": t1 - t0,
            "commit_s": t2 - t1, "bulks": -(-n // bulk_size), "cpu_s": bulk_cpu + (c2 - c0)}


def time_queries(runners: dict[str, Callable[[], None]], passes: int) -> dict[str, dict[str, Any]]:
    """One warm-up pass each, then ``passes`` rounds in which every runner makes one timed pass (interleaved,
    so machine noise hits all of them alike); reports each runner's best pass."""
    for run in runners.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(passes):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: {"best_pass_s": min(t), "passes_s": t} for name, t in times.items()}


def _segstore_ids(reader: Any, tops: list[Any]) -> list[list[int]]:
    """Row ids of the hits, from each hit's stored ``_id`` (read once per (leaf, doc))."""
    cache: dict[tuple[int, int], int] = {}
    found = []
    for top in tops:
        row = []
        for sd in top.score_docs:
            key = (sd.leaf, sd.doc)
            if key not in cache:
                cache[key] = int(reader.leaves[sd.leaf].stored_document(sd.doc)["_id"])
            row.append(cache[key])
        found.append(row)
    return found


def measure(docs: np.ndarray, texts: list[str], queries: np.ndarray, data_dir: str, *, bulk_size: int,
            durability: str, passes: int, ingest_runs: int = 2
            ) -> tuple[dict[str, Any], dict[str, Any], list[list[int]], list[list[int]]]:
    """(segstore stats, hnswlib stats, segstore hits, hnswlib hits) as row ids per query."""
    import segstore

    def new_writer(path: str) -> Any:
        return segstore.create_index(path, "bench", settings={"index.knn": True,
                                                              "index.translog.durability": durability},
                                     mappings=MAPPINGS)

    # Ingest runs alternate hnswlib and segstore, and each side keeps its best run (as the query passes do):
    # a burst of machine noise then hits one run, not the result. The last run's indexes serve the queries.
    builds, ingests = [], []
    for r in range(ingest_runs - 1):
        builds.append(build_hnswlib(docs)[1])
        scratch = f"{data_dir}.run{r}"
        w = new_writer(scratch)
        try:
            ingests.append(ingest_segstore(w, docs, texts, bulk_size))
        finally:
            w.close()
            shutil.rmtree(scratch, ignore_errors=True)
    index, last_build = build_hnswlib(docs)
    builds.append(last_build)
    build = max(builds, key=lambda b: b["docs_per_s"])
    build["runs_docs_per_s"] = [b["docs_per_s"] for b in builds]
    writer = new_writer(data_dir)
    try:
        ingests.append(ingest_segstore(writer, docs, texts, bulk_size))
        ingest = max(ingests, key=lambda i: i["docs_per_s"])
        ingest["runs_docs_per_s"] = [i["docs_per_s"] for i in ingests]
        segments = len(writer.segments())
        k = min(K, docs.shape[0])
        rows = [queries[i] for i in range(queries.shape[0])]
        with writer.acquire_reader() as reader:
            knn = segstore.knn_search

            def run_segstore() -> None:
                for q in rows:
                    knn(reader, FIELD, q, k, ef_search=EF_SEARCH)

            def run_hnswlib() -> None:
                for q in rows:
                    index.knn_query(q, k=k, num_threads=1)

            timed = time_queries({"hnswlib": run_hnswlib, "segstore": run_segstore}, passes)
            seg_found = _segstore_ids(reader, [knn(reader, FIELD, q, k, ef_search=EF_SEARCH) for q in rows])
        hn_found = [index.knn_query(q, k=k, num_threads=1)[0][0].tolist() for q in rows]
    finally:
        writer.close()
    for t in timed.values():
        t["qps"] = len(rows) / t["best_pass_s"]
    root = os.path.join(data_dir, "indices")
    seg = {"ingest": ingest, "query": timed["segstore"], "segments": segments,
           "index_bytes": sum(_disk_bytes(os.path.join(root, u, "index")) for u in os.listdir(root)),
           "data_dir_bytes": _disk_bytes(data_dir)}
    return seg, {"build": build, "query": timed["hnswlib"]}, seg_found, hn_found


def _load() -> list[float] | None:
    """The 1/5/15-minute load average, or None where the platform has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU count, versions, and the 1/5/15-minute load average (a busy machine skews every rate)."""

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    return {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "numpy": np.__version__, "hnswlib": version("hnswlib"), "segstore": version("segstore"),
            "load_avg_start": _load()}


def run_bench(data_dir: str | None = None, *, docs: int | None = None, queries: int | None = None,
              bulk_size: int = 500, durability: str = "request", workdir: str | None = None,
              passes: int = PASSES, ingest_runs: int = INGEST_RUNS) -> dict[str, Any]:
    """Run the whole comparison and return the JSON-ready result (see the module docstring).

    ``workdir`` (kept afterwards) receives a fresh ``segstore-bench-*`` folder; by default a temporary
    folder is used and removed.
    """
    if bulk_size < 1 or passes < 1 or ingest_runs < 1:
        raise BenchDataError("--bulk-size, --passes and --ingest-runs must be >= 1")
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
        machine = machine_info()
        seg, hnsw, seg_found, hnsw_found = measure(doc_vecs, texts, query_vecs, os.path.join(tmp, "data"),
                                                   bulk_size=bulk_size, durability=durability, passes=passes,
                                                   ingest_runs=ingest_runs)
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
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": {**machine, "load_avg_end": _load()},
        "params": {"docs": n, "queries": nq, "dims": int(doc_vecs.shape[1]), "k": K, "ef_search": EF_SEARCH,
                   "m": M, "ef_construction": EF_CONSTRUCTION, "bulk_size": bulk_size, "durability": durability,
                   "passes": passes, "ingest_runs": ingest_runs, "workdir": tmp if workdir is not None else None},
        "segstore": seg, "hnswlib": hnsw, "ratios": ratios, "targets": targets,
        "passed": all(t["pass"] for t in targets.values()),
    }


# ------------------------------------------------------------------------------------------------ output

def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.4f}" if v < 1 else f"{v:,.1f}"


def _ratio(v: float) -> str:
    """Three decimals, truncated: a ratio shown as 0.700 really is >= 0.700."""
    return f"{int(v * 1000) / 1000:.3f}"


def format_table(r: dict[str, Any]) -> str:
    """The result as an aligned plain-text table."""
    seg, hn, tg, p, m = r["segstore"], r["hnswlib"], r["targets"], r["params"], r["machine"]

    def status(name: str) -> str:
        return f">= {tg[name]['target']:.2f} {'PASS' if tg[name]['pass'] else 'FAIL'}"

    rows = [("metric", "segstore", "hnswlib", "ratio", "target"),
            ("ingest / build (docs/s)", _fmt(seg["ingest"]["docs_per_s"]), _fmt(hn["build"]["docs_per_s"]),
             _ratio(r["ratios"]["ingest"]), status("ingest")),
            (f"QPS k={p['k']} ef={p['ef_search']} (1 thread)", _fmt(seg["query"]["qps"]), _fmt(hn["query"]["qps"]),
             _ratio(r["ratios"]["qps"]), status("qps")),
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
              "ingest runs (docs/s, best kept): segstore "
              + ", ".join(f"{x:,.0f}" for x in ing.get("runs_docs_per_s", [ing["docs_per_s"]])) + "; hnswlib "
              + ", ".join(f"{x:,.0f}" for x in hn["build"].get("runs_docs_per_s", [hn["build"]["docs_per_s"]])),
              f"CPU seconds:     segstore ingest {ing['cpu_s']:.2f}, hnswlib build {hn['build']['cpu_s']:.2f} "
              f"(all threads; wall > cpu / {m['cpu_count']} means other load)",
              f"segstore index:  {seg['segments']} segment(s), {seg['index_bytes'] / 2**20:.1f} MiB segment files, "
              f"{seg['data_dir_bytes'] / 2**20:.1f} MiB data dir",
              f"machine: {m['cpu_count']} cpus, python {m['python']}, numpy {m['numpy']}, hnswlib {m['hnswlib']}, "
              f"load avg {m['load_avg_start']} -> {m['load_avg_end']}",
              f"result: {'PASS' if r['passed'] else 'FAIL'}"]
    busy = m.get("load_avg_start")
    if busy and m.get("cpu_count") and busy[0] > 0.5 * m["cpu_count"]:
        lines.append(f"WARNING: the machine was busy before the run (1-min load {busy[0]} on {m['cpu_count']} "
                     "cpus): rates are unreliable, rerun on an idle machine")
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
    p.add_argument("--ingest-runs", type=int, default=INGEST_RUNS,
                   help="ingest/build runs per side, alternated, best kept (default 2)")
    p.add_argument("--out", default=os.path.join("bench-results", "bench.json"), help="JSON results file")
    p.add_argument("--workdir", default=None, help="keep the index under this folder (default: temp, removed)")
    p.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    p.add_argument("--compression", action="store_true",
                   help="instead: every compression level (recall with/without rescoring, QPS, measured resident "
                        "memory vs the docs formula, disk); JSON + PNG to bench-results/compression.*")
    p.add_argument("--derived-source", action="store_true",
                   help="instead: derived source on vs off (store size, force-merge time, cold-start _source fetch "
                        "in a fresh process; default 10,000 docs); JSON to bench-results/bench_derived_source.json")
    from segstore_tools import bench_compression, bench_derived_source  # noqa: PLC0415 - their options live with them

    bench_compression.register_args(p)
    bench_derived_source.add_arguments(p, standalone=False)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    """Run the benchmark for the CLI: 0 = every target met, 1 = a target missed, 2 = bad data or sizes."""
    if getattr(args, "compression", False):
        from segstore_tools.bench_compression import main_from_args  # noqa: PLC0415

        return int(main_from_args(args))
    if getattr(args, "derived_source", False):
        from segstore_tools.bench_derived_source import run_from_args  # noqa: PLC0415

        return int(run_from_args(args))
    try:
        result = run_bench(args.data, docs=args.docs, queries=args.queries, bulk_size=args.bulk_size,
                           durability=args.durability, workdir=args.workdir, passes=args.passes,
                           ingest_runs=args.ingest_runs)
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
