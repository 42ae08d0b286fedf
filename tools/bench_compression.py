"""``segstore bench --compression``: recall, speed, resident memory and disk of every compression level.

On ``minilm-384`` (60,000 x 384 unit vectors, 1,000 queries, exact L2 top-10 ground truth; ``--docs`` /
``--queries`` take a slice, whose ground truth is then brute-forced), one index per level, each ingested
through ``IndexWriter.bulk`` into one segment (one refresh, one commit):

=======  ======================================================================================
level    mapping (l2, HNSW m = 16)
=======  ======================================================================================
1x       faiss, no quantization (float32 graph)
2x       faiss, ``mode: on_disk``, ``compression_level: 2x`` (sq fp16)
4x       lucene, ``mode: on_disk``, ``compression_level: 4x`` (sq 7-bit)
8x       faiss, ``mode: on_disk``, ``compression_level: 8x`` (binary quantization, 4 bits)
16x      faiss, ``mode: on_disk``, ``compression_level: 16x`` (binary quantization, 2 bits)
32x      faiss, ``mode: on_disk`` (default 32x: binary quantization, 1 bit)
byte     faiss, ``data_type: byte``; docs and queries scaled to int8 with the offline L2 quantizer
         (:mod:`segstore.quantization.offline`: global min/max, 256 buckets; queries clipped)
=======  ======================================================================================

Per level:

* **recall@10** against the float ground truth with the level's default rescoring (what a query without
  ``rescore`` gets: on_disk 8x/16x/32x at d = 384 -> factor 5.0, 4x -> 1.0, 2x none) and with
  ``rescore: false`` (first-pass results and scores); levels without quantization have one number;
* **QPS**: one query per call through :class:`~segstore.search.searcher.IndexSearcher` (parsed queries,
  k = 10), one warm-up pass, then the best of ``--passes`` interleaved passes;
* **resident bytes per vector, measured**: a fresh subprocess imports everything, opens a point-in-time
  reader of the committed index, then warms it (``_plugins/_knn/warmup``: every graph loaded, quantized
  codes opened). RSS (``/proc/self/status``, after ``gc.collect()`` and glibc ``malloc_trim``) is read after
  the imports, after the open and after the warmup; ``resident`` = (RssAnon growth + growth of the resident
  pages of the index's own files) / N, from open to warm; ``VmRSS`` growth is shown next to it (it also
  counts the shared-library code that loading pages in, about 1.6 MB for faiss: a constant, not per
  vector). ``/proc/self/smaps`` splits the resident pages by file: the full-precision ``.vec`` file must
  contribute ~0 after warmup at quantized levels (it is only memory-mapped; rescoring reads it on demand,
  as page cache). The subprocess then runs ``--rss-queries`` searches with default rescoring and reports
  the ``.vec`` pages they mapped (clean, reclaimable page cache) and the anonymous growth (~0);
* next to it ``memory_bytes()`` accounting (loaded graphs + codes, what ``_plugins/_knn/stats`` reports)
  and the docs formula ``1.1 (vector bytes + 8m)`` (:mod:`segstore_tools.estimate_memory`), with the ratio
  measured / formula (target: within 1.3x);
* **disk bytes per vector**: the segment files / N (``.vec`` full precision + graph + codes + stored).

Targets (default rescoring): recall 32x >= 0.90, 16x >= 0.95, 8x >= 0.97, 4x and 2x >= 0.98; memory within
1.3x of the formula at every level; quantized levels hold < 4 d bytes per vector resident. A table is
printed, JSON and a recall-vs-memory plot (matplotlib, the ``bench`` extra; skipped with a warning when
missing) are written to ``--out-dir`` (``bench-results/``). Exit code 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from segstore_tools.bench_compression_memory import measure_resident

__all__ = ["run_compression_bench", "format_table", "register_args", "main_from_args", "LEVELS", "TARGETS",
           "level_mapping", "write_plot"]

log = logging.getLogger(__name__)

FIELD = "embedding"
DIMS = 384
K = 10
M = 16
LEVELS = ("1x", "2x", "4x", "8x", "16x", "32x", "byte")
RECALL_TARGETS = {"32x": 0.90, "16x": 0.95, "8x": 0.97, "4x": 0.98, "2x": 0.98}
MEMORY_RATIO_TARGET = 1.3
TARGETS = {"recall": RECALL_TARGETS, "memory_ratio": MEMORY_RATIO_TARGET}
ENCODING_OF = {"1x": "float32", "2x": "fp16", "4x": "lucene-sq7", "8x": "bq-4bit", "16x": "bq-2bit",
               "32x": "bq-1bit", "byte": "byte"}
BULK = 1000


def level_mapping(level: str, dims: int = DIMS) -> dict[str, Any]:
    """The index mapping of one level (see the module docstring)."""
    base: dict[str, Any] = {"type": "knn_vector", "dimension": dims, "space_type": "l2"}
    if level == "1x":
        spec = {**base, "method": {"name": "hnsw", "engine": "faiss", "parameters": {"m": M}}}
    elif level == "byte":
        spec = {**base, "data_type": "byte", "method": {"name": "hnsw", "engine": "faiss", "parameters": {"m": M}}}
    elif level == "4x":
        spec = {**base, "mode": "on_disk", "compression_level": "4x",
                "method": {"name": "hnsw", "engine": "lucene", "parameters": {"m": M}}}
    elif level == "32x":
        spec = {**base, "mode": "on_disk"}
    elif level in ("2x", "8x", "16x"):
        spec = {**base, "mode": "on_disk", "compression_level": level}
    else:
        raise ValueError(f"unknown level {level}")
    return {"properties": {FIELD: spec}}


SETTINGS = {"index.knn": True, "index.translog.durability": "async", "index.refresh_interval": "-1"}


# ------------------------------------------------------------------------------------------- levels


def _ingest(writer: Any, rows: np.ndarray) -> dict[str, float]:
    from segstore import IndexOp

    t0 = time.perf_counter()
    rejected = 0
    for s in range(0, rows.shape[0], BULK):
        chunk = rows[s:s + BULK].tolist()
        results = writer.bulk([IndexOp(str(s + i), {FIELD: v}) for i, v in enumerate(chunk)])
        rejected += sum(1 for r in results if isinstance(r, Exception))
    t1 = time.perf_counter()
    if rejected:
        raise RuntimeError(f"{rejected} documents rejected")
    writer.refresh()
    t2 = time.perf_counter()
    writer.commit()
    t3 = time.perf_counter()
    return {"bulk_s": t1 - t0, "refresh_s": t2 - t1, "commit_s": t3 - t2}


def _segment_files(writer: Any) -> dict[str, int]:
    """Bytes of the index's live segment files, by extension (``.vec``, ``.hnsw``, ``.qst``, ...)."""
    out: dict[str, int] = {}
    for sci in writer.segments():
        for f in sci.files():
            ext = os.path.splitext(f)[1]
            out[ext] = out.get(ext, 0) + int(writer.directory.file_length(f))
    return out


def _hits_to_ids(reader: Any, hits: list[Any], cache: dict[tuple[int, int], int]) -> list[int]:
    ids = []
    for _score, leaf, doc in hits:
        key = (leaf, doc)
        if key not in cache:
            cache[key] = int(reader.leaves[leaf].stored_document(doc)["_id"])
        ids.append(cache[key])
    return ids


def _recall(found: Sequence[Sequence[int]], gt: np.ndarray) -> float:
    k = gt.shape[1]
    return sum(len(set(f[:k]) & set(gt[i].tolist())) for i, f in enumerate(found)) / float(k * gt.shape[0])


def _time(runners: dict[str, Callable[[], None]], passes: int) -> dict[str, float]:
    for run in runners.values():
        run()
    best = {name: float("inf") for name in runners}
    for _ in range(passes):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def run_level(level: str, docs: np.ndarray, queries: np.ndarray, gt: np.ndarray, data_dir: str, *,
              passes: int, rss_queries: int, workdir: str, quantizer: Any = None) -> dict[str, Any]:
    """Build, search and measure one level; returns its JSON record."""
    from segstore_tools.estimate_memory import ENCODINGS, vector_bytes

    import segstore
    from segstore.quantization import memory as qmem
    from segstore.search.rescore import first_pass_k, resolve_rescore
    from segstore.search.searcher import IndexSearcher

    n, d = docs.shape
    index = f"level-{level}"
    mappings = level_mapping(level, d)
    if level == "byte":
        rows, qrows = quantizer.quantize(docs), quantizer.quantize_queries(queries)
    else:
        rows, qrows = docs, queries
    writer = segstore.create_index(data_dir, index, settings=SETTINGS, mappings=mappings)
    try:
        t0 = time.perf_counter()
        ingest = _ingest(writer, rows)
        ingest["seconds"] = time.perf_counter() - t0
        files = _segment_files(writer)
        fm = writer.mappings.vector_fields[FIELD]
        quantized = fm.encoder is not None and fm.data_type == "float"
        ctx = resolve_rescore(None, mode_typed=fm.mode if fm.user_mode else None,
                              compression=fm.compression_level, dimension=d) if quantized else None
        q_lists = [r.tolist() for r in qrows]
        reader = writer.acquire_reader()
        try:
            qmem.warmup_reader(reader)
            searcher = IndexSearcher(index, reader, writer.mappings, writer.settings)
            variants = {"default": None}
            if ctx is not None:
                variants["no_rescore"] = False
            parsed = {name: [searcher.parse({"knn": {FIELD: {"vector": q, "k": K,
                                                            **({} if v is None else {"rescore": v})}}})
                             for q in q_lists] for name, v in variants.items()}
            cache: dict[tuple[int, int], int] = {}
            recall = {}
            for name, pqs in parsed.items():
                found = [_hits_to_ids(reader, searcher.hits(pq)[1][:K], cache) for pq in pqs]
                recall[name] = _recall(found, gt)

            def runner(pqs: list[Any]) -> Callable[[], None]:
                def run() -> None:
                    for pq in pqs:
                        searcher.hits(pq)
                return run

            best = _time({name: runner(pqs) for name, pqs in parsed.items()}, passes)
        finally:
            reader.dec_ref()
    finally:
        writer.close()
    if "no_rescore" not in recall:
        recall["no_rescore"] = recall["default"]
        best["no_rescore"] = best["default"]
    nq = len(q_lists)
    mem = measure_resident(data_dir, index, mappings, qrows[:rss_queries] if rss_queries else None, workdir,
                           settings=SETTINGS, field=FIELD, k=K)
    st = mem["status"]
    # resident = anonymous memory the warmup allocated + pages of the index's own files it made resident;
    # VmRSS also counts shared-library code faulted in on first use (a constant, not per vector)
    index_files = sum(mem["files_warm"].values()) - sum(mem.get("files_open", {}).values())
    resident = (st["warmed"]["RssAnon"] - st["opened"]["RssAnon"] + index_files) / n
    vmrss = (st["warmed"]["VmRSS"] - st["opened"]["VmRSS"]) / n
    open_warm = (st["warmed"]["VmRSS"] - st["imported"]["VmRSS"]) / n
    acct = mem["accounting"][FIELD]
    enc = next(e for e in ENCODINGS if e.name == ENCODING_OF[level])
    vb = vector_bytes(enc, d)
    formula = 1.1 * (vb + 8 * M)
    vec_file = files.get(".vec", 0)
    vec_rss_warm = mem["files_warm"].get(".vec", 0)
    vec_rss_q = mem.get("files_queried", {}).get(".vec", 0)
    disk = sum(files.values())
    rec = {
        "level": level, "encoding": ENCODING_OF[level], "mapping": mappings["properties"][FIELD],
        "engine": fm.engine, "mode": fm.mode, "compression_level": fm.compression_level, "encoder": fm.encoder,
        "ef_search": fm.ef_search or writer.settings.ef_search, "ef_construction": fm.ef_construction,
        "rescore_factor": None if ctx is None else ctx.oversample_factor,
        "first_pass_k": None if ctx is None else first_pass_k(K, ctx.oversample_factor),
        "recall_default": recall["default"], "recall_no_rescore": recall["no_rescore"],
        "qps_default": nq / best["default"], "qps_no_rescore": nq / best["no_rescore"],
        "resident_bytes_per_vector": resident, "vmrss_bytes_per_vector": vmrss,
        "open_and_warm_bytes_per_vector": open_warm,
        "accounted_bytes_per_vector": acct["total_bytes"] / n,
        "accounted_graph_bytes_per_vector": acct["graph_bytes"] / n,
        "accounted_code_bytes_per_vector": acct["quantized_bytes"] / n,
        "formula_bytes_per_vector": formula, "formula": f"1.1*({vb:g} + 8*{M})",
        "memory_ratio": resident / formula, "accounted_ratio": acct["total_bytes"] / n / formula,
        "vector_bytes_formula": vb, "float_bytes_per_vector": 4 * d,
        "disk_bytes_per_vector": disk / n, "disk_files": files,
        "vec_file_bytes": vec_file, "vec_resident_after_warmup": vec_rss_warm,
        "vec_resident_after_queries": vec_rss_q, "rss_queries": mem.get("queries_run", 0),
        "rss": st, "files_resident_after_warmup": mem["files_warm"], "warmup": mem["warmup"],
        "ingest": ingest,
    }
    rec["checks"] = _checks(rec)
    return rec


def _checks(r: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    t = RECALL_TARGETS.get(r["level"])
    if t is not None:
        out["recall"] = {"target": t, "value": r["recall_default"], "pass": r["recall_default"] >= t}
    ratio = r["memory_ratio"]
    out["memory"] = {"target": MEMORY_RATIO_TARGET, "value": ratio,
                     "pass": 1 / MEMORY_RATIO_TARGET <= ratio <= MEMORY_RATIO_TARGET}
    if r["encoder"] is not None:
        # full precision must not be resident: far below 4d per vector, and the .vec mapping ~empty after warmup
        # (1% of the file, plus 256 KiB for the pages the open reads - header, ord->doc map, footer - each
        # mapped with the kernel's 64 KiB fault-around window)
        vec_frac = r["vec_resident_after_warmup"] / max(1, r["vec_file_bytes"])
        vec_ok = r["vec_resident_after_warmup"] <= 0.01 * r["vec_file_bytes"] + (256 << 10)
        out["no_full_precision"] = {"resident_bytes_per_vector": r["resident_bytes_per_vector"],
                                    "float_bytes_per_vector": r["float_bytes_per_vector"],
                                    "vec_resident_fraction_after_warmup": vec_frac,
                                    "pass": r["resident_bytes_per_vector"] < r["float_bytes_per_vector"] and vec_ok}
    return out


# ---------------------------------------------------------------------------------------------- run


def run_compression_bench(data_dir: str | None = None, *, docs: int | None = None, queries: int | None = None,
                          levels: Sequence[str] = LEVELS, passes: int = 3, rss_queries: int = 200,
                          workdir: str | None = None, out_dir: str | None = "bench-results",
                          plot: bool = True) -> dict[str, Any]:
    """Run every level and return the JSON-ready result; writes ``compression.json`` and
    ``compression.png`` into ``out_dir`` (None: write nothing)."""
    from segstore_tools.bench import BenchDataError, load_data, machine_info

    from segstore.quantization.offline import L2Quantizer

    bad = [lv for lv in levels if lv not in LEVELS]
    if bad or passes < 1:
        raise BenchDataError(f"unknown levels {bad} (known: {', '.join(LEVELS)}) or passes < 1")
    data_dir = data_dir or _default_data_dir()
    doc_vecs, _texts, query_vecs, gt = load_data(data_dir, docs, queries)
    n, nq = doc_vecs.shape[0], query_vecs.shape[0]
    quantizer = L2Quantizer.fit(doc_vecs)
    if workdir is not None:
        os.makedirs(workdir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="segstore-bench-compression-", dir=workdir)
    machine = machine_info()
    results = []
    try:
        for level in levels:
            log.info("compression bench: level %s (%d docs, %d queries)", level, n, nq)
            level_dir = os.path.join(tmp, level)
            results.append(run_level(level, doc_vecs, query_vecs, gt, level_dir, passes=passes,
                                     rss_queries=min(rss_queries, nq), workdir=tmp, quantizer=quantizer))
    finally:
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    passed = all(c["pass"] for r in results for c in r["checks"].values())
    result = {"benchmark": "segstore-compression", "dataset": "minilm-384",
              "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "machine": {**machine, "load_avg_end": _load()},
              "params": {"docs": n, "queries": nq, "dims": int(doc_vecs.shape[1]), "k": K, "m": M,
                         "passes": passes, "rss_queries": min(rss_queries, nq), "levels": list(levels),
                         "byte_quantizer": quantizer.to_dict(), "workdir": tmp if workdir is not None else None},
              "targets": {"recall_default_rescoring": RECALL_TARGETS, "memory_ratio": MEMORY_RATIO_TARGET},
              "levels": results, "passed": passed}
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "compression.json"), "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
        if plot:
            result["plot"] = write_plot(result, os.path.join(out_dir, "compression.png"))
    return result


def _default_data_dir() -> str:
    from segstore_tools.bench import default_data_dir

    return default_data_dir()


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def write_plot(result: dict[str, Any], path: str) -> str | None:
    """Recall@10 versus measured resident bytes per vector (log x); None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed (pip install 'segstore[bench]'): no plot")
        return None
    levels = sorted(result["levels"], key=lambda r: r["resident_bytes_per_vector"])
    floats = [r for r in levels if r["level"] != "byte"]
    others = [r for r in levels if r["level"] == "byte"]
    fig, ax = plt.subplots(figsize=(8, 5))
    x = [r["resident_bytes_per_vector"] for r in floats]
    ax.plot(x, [r["recall_default"] for r in floats], "o-", color="C0", label="float field, default rescoring")
    ax.plot(x, [r["recall_no_rescore"] for r in floats], "s--", mfc="none", color="C1", label="float field, rescore: false")
    ax.scatter([r["formula_bytes_per_vector"] for r in levels], [r["recall_default"] for r in levels], marker="|",
               s=250, color="grey", label="docs formula memory (same recall)")
    if others:
        ax.scatter([r["resident_bytes_per_vector"] for r in others], [r["recall_default"] for r in others],
                   marker="*", s=160, color="C2", zorder=3, label="byte field (offline int8)")
    for r in levels:
        ax.annotate(r["level"], (r["resident_bytes_per_vector"], r["recall_default"]), textcoords="offset points",
                    xytext=(-6, 8), fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("resident bytes per vector (measured: anonymous + index-file pages of a fresh process after warmup; log)")
    ax.set_ylabel(f"recall@{K}")
    p = result["params"]
    ax.set_title(f"segstore compression levels: minilm-384, {p['docs']:,} docs, {p['queries']:,} queries")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------- output


def _after_queries(r: dict[str, Any], n: int) -> tuple[float, float]:
    """(anonymous RSS growth, resident .vec bytes) per vector after the subprocess's queries."""
    st = r["rss"]
    if "queried" not in st:
        return 0.0, 0.0
    return (st["queried"]["RssAnon"] - st["warmed"]["RssAnon"]) / n, r["vec_resident_after_queries"] / n


def format_table(result: dict[str, Any]) -> str:
    p = result["params"]
    n = p["docs"]
    head = ("level", "encoding", "rescore", "recall@10", "no-resc", "QPS", "QPS no-resc", "resident B/vec",
            "VmRSS", "accounted", "formula", "ratio", "disk B/vec", ".vec B/vec warm/q", "anon +q", "checks")
    rows = [head]
    for r in result["levels"]:
        checks = r["checks"]
        status = " ".join(f"{k}:{'ok' if v['pass'] else 'FAIL'}" for k, v in checks.items())
        anon_q, vec_q = _after_queries(r, n)
        rows.append((r["level"], r["encoding"], "-" if r["rescore_factor"] is None else f"{r['rescore_factor']:g}",
                     f"{r['recall_default']:.4f}", f"{r['recall_no_rescore']:.4f}", f"{r['qps_default']:,.0f}",
                     f"{r['qps_no_rescore']:,.0f}", f"{r['resident_bytes_per_vector']:,.1f}",
                     f"{r.get('vmrss_bytes_per_vector', r['resident_bytes_per_vector']):,.1f}",
                     f"{r['accounted_bytes_per_vector']:,.1f}", f"{r['formula_bytes_per_vector']:,.1f}",
                     f"{r['memory_ratio']:.2f}", f"{r['disk_bytes_per_vector']:,.0f}",
                     f"{r['vec_resident_after_warmup'] / n:,.1f}/{vec_q:,.0f}", f"{anon_q:,.1f}", status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [f"segstore bench --compression: {n:,} docs x {p['dims']} dims, {p['queries']:,} queries, "
             f"k={p['k']}, m={p['m']}, best of {p['passes']} passes"]
    for j, row in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[i]) if i in (0, 1, len(head) - 1) else c.rjust(widths[i])
                               for i, c in enumerate(row)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    m = result["machine"]
    lines += ["",
              "resident = growth of a fresh process's anonymous memory + resident pages of the index files, from "
              "opening the index to warming it (graphs + codes), per vector; VmRSS = the same process's whole RSS "
              "growth (also counts shared-library code paged in on first use, a constant); accounted = memory_bytes() of loaded graphs + mapped codes (what _plugins/_knn/stats "
              f"reports); formula = docs' 1.1*(vector bytes + 8m); ratio = resident / formula (target <= "
              f"{MEMORY_RATIO_TARGET}); disk = segment files per vector; .vec = resident pages of the "
              f"full-precision file per vector after warmup / after {p['rss_queries']} default-rescoring queries "
              "(page cache mapped by rescoring reads, reclaimable); anon +q = anonymous RSS growth per vector "
              "over those queries",
              f"machine: {m['cpu_count']} cpus, python {m['python']}, load avg {m['load_avg_start']} -> "
              f"{m['load_avg_end']}",
              f"result: {'PASS' if result['passed'] else 'FAIL'}"]
    busy = m.get("load_avg_start")
    if busy and m.get("cpu_count") and busy[0] > 0.5 * m["cpu_count"]:
        lines.append(f"WARNING: the machine was busy (1-min load {busy[0]} on {m['cpu_count']} cpus): QPS is noisy")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- CLI


def register_args(p: argparse.ArgumentParser) -> None:
    """Options of the compression benchmark (``segstore bench --compression`` reuses ``--data``, ``--docs``,
    ``--queries``, ``--passes``, ``--workdir``, ``--json`` of ``segstore bench``)."""
    p.add_argument("--levels", default=",".join(LEVELS), help=f"comma-separated levels (default {','.join(LEVELS)})")
    p.add_argument("--rss-queries", type=int, default=200,
                   help="queries the memory subprocess runs after warmup to re-check the .vec residency")
    p.add_argument("--out-dir", default="bench-results", help="where compression.json / compression.png go")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG plot")


def main_from_args(args: argparse.Namespace) -> int:
    from segstore_tools.bench import BenchDataError

    try:
        result = run_compression_bench(
            getattr(args, "data", None), docs=getattr(args, "docs", None), queries=getattr(args, "queries", None),
            levels=[s.strip() for s in getattr(args, "levels", ",".join(LEVELS)).split(",") if s.strip()],
            passes=getattr(args, "passes", 3), rss_queries=getattr(args, "rss_queries", 200),
            workdir=getattr(args, "workdir", None), out_dir=getattr(args, "out_dir", "bench-results"),
            plot=not getattr(args, "no_plot", False))
    except BenchDataError as e:
        print(f"segstore bench --compression: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if getattr(args, "json", False) else format_table(result))
    return 0 if result["passed"] else 1


def _main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_compression", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None)
    p.add_argument("--docs", type=int, default=None)
    p.add_argument("--queries", type=int, default=None)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--workdir", default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    register_args(p)
    args = p.parse_args(argv)
    logging.basicConfig(level="INFO" if args.verbose else "WARNING", format="%(levelname)s %(name)s: %(message)s")
    return main_from_args(args)


if __name__ == "__main__":
    sys.exit(_main())
