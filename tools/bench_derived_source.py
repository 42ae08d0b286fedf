"""``segstore bench --derived-source``: derived source on vs off on real data (derived-source.md §4, §5.2).

Two indices receive the same 10,000 documents of ``minilm-384`` (384-d float vectors) with their sentence
as a small ``text`` field; one has ``index.knn.derived_source.enabled`` (the default), the other ``false``.
Each is ingested in bulks and refreshed every ``--segment-docs`` documents (several segments), then:

1. **store size**: bytes on disk of the committed segment files (total and stored fields ``.fdt``/``.fdx``),
   before and after the force merge;
2. **force merge** to one segment: wall time, best of ``--passes`` runs, each on a fresh copy of the
   multi-segment index (the copies are made off the clock); the merge's stored-fields step is reported on
   its own (graphs are rebuilt in both cases and dominate the total);
3. **cold-start ``_source`` fetch**: the page cache is dropped (``/proc/sys/vm/drop_caches`` when writable,
   else ``posix_fadvise(DONTNEED)`` on every file of the data directory), then a FRESH process opens the
   index and GETs ``--fetch`` random documents by id; its open time and per-GET latencies are reported.
   The eviction method actually used, and what ``fincore`` still saw resident, are in the result.

The seed's claims (3x smaller, ~10% faster force merge, up to ~30x / 90% lower cold-start latency measured
on upstream's Lucene-engine search) are printed next to the measured ratios. Results go to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["CLAIMS", "add_arguments", "format_table", "main", "run"]

DATASET = "minilm-384"
DIMS = 384
INDEX = "bench"
FIELD = "embedding"
DEFAULT_DOCS = 10_000
SEED = 20250520
CLAIMS = {"store": "3x smaller", "merge": "~10% faster", "cold_fetch": "up to ~30x (-90%) on cold queries"}
MAPPINGS: dict[str, Any] = {"properties": {
    FIELD: {"type": "knn_vector", "dimension": DIMS, "space_type": "l2",
            "method": {"name": "hnsw", "engine": "faiss", "parameters": {"m": 16, "ef_construction": 100}}},
    "text": {"type": "text"},
    "n": {"type": "integer"},
}}
# Writing /proc/sys/vm/drop_caches empties the page cache of the whole machine; tests switch it off and rely on
# posix_fadvise(DONTNEED) for the benchmark's own files.
DROP_CACHES = True
VARIANTS = {"derived": {"index.knn": True},
            "plain": {"index.knn": True, "index.knn.derived_source.enabled": False}}


class BenchDataError(Exception):
    """The benchmark data is missing or too small (a usage problem: exit 2)."""


# ------------------------------------------------------------------------------------------------ data

def default_data_dir() -> str:
    env = os.environ.get("SEGSTORE_DATA")
    if env:
        return env
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.normpath(os.path.join(repo, os.pardir, "shared", "data"))


def load(data_dir: str | None, n: int) -> tuple[np.ndarray, list[str]]:
    import zstandard

    root = data_dir or default_data_dir()
    ds = next((c for c in (os.path.join(root, DATASET), root) if os.path.isfile(os.path.join(c, "docs.f16.npy"))),
              None)
    if ds is None:
        raise BenchDataError(f"no {DATASET}/docs.f16.npy under [{root}] (set --data or SEGSTORE_DATA)")
    all_docs = np.load(os.path.join(ds, "docs.f16.npy"), mmap_mode="r")
    if not 1 <= n <= all_docs.shape[0]:
        raise BenchDataError(f"--docs must be in [1, {all_docs.shape[0]}], got {n}")
    docs = np.ascontiguousarray(all_docs[:n], dtype=np.float32)
    with open(os.path.join(ds, "texts.txt.zst"), "rb") as fh:
        texts = zstandard.ZstdDecompressor().decompress(fh.read()).decode("utf-8").split("\n")[:n]
    return docs, texts + [""] * (n - len(texts))


# ------------------------------------------------------------------------------------------ measuring

def _files(path: str) -> Iterator[str]:
    for root, _dirs, files in os.walk(path):
        for f in files:
            yield os.path.join(root, f)


def segment_bytes(data_dir: str) -> dict[str, int]:
    """Bytes of the committed segment files of the bench index (apparent sizes) and of the data dir."""
    import segstore

    w = segstore.open_index(data_dir, INDEX)
    try:
        total = stored = 0
        for seg in w.segments():
            for f in seg.files():
                size = os.path.getsize(os.path.join(w.directory.path, f))  # type: ignore[attr-defined]
                total += size
                stored += size if f.endswith((".fdt", ".fdx")) else 0
        segments = len(w.segments())
    finally:
        w.close(commit=False)
    disk = 0
    for f in _files(data_dir):
        try:
            disk += os.lstat(f).st_blocks * 512
        except FileNotFoundError:
            pass
    return {"segment_bytes": total, "stored_fields_bytes": stored, "segments": segments, "data_dir_disk_bytes": disk}


def build(data_dir: str, settings: dict[str, Any], docs: np.ndarray, texts: list[str], bulk_size: int,
          segment_docs: int) -> dict[str, float]:
    import segstore

    t0 = time.perf_counter()
    w = segstore.create_index(data_dir, INDEX, settings={**settings, "index.translog.durability": "async"},
                              mappings=MAPPINGS)
    try:
        since = 0
        for s in range(0, docs.shape[0], bulk_size):
            rows = docs[s:s + bulk_size].tolist()
            ops = [segstore.IndexOp(str(s + j), {"text": texts[s + j], "n": s + j, FIELD: row})
                   for j, row in enumerate(rows)]
            bad = [r for r in w.bulk(ops) if isinstance(r, Exception)]
            if bad:
                raise RuntimeError(f"rejected benchmark documents: {bad[:3]}")
            since += len(ops)
            if since >= segment_docs:
                w.refresh()
                since = 0
        w.commit()
    finally:
        w.close()
    return {"seconds": time.perf_counter() - t0}


@contextmanager
def _merge_timings(sink: list[dict[str, float]]) -> Iterator[None]:
    """Record each SegmentMerger run's per-step timings (``MergeResult.timings``)."""
    from segstore.index import segment_merger

    original = segment_merger.SegmentMerger.merge

    def merge(self: Any) -> Any:
        result = original(self)
        sink.append(dict(result.timings))
        return result

    segment_merger.SegmentMerger.merge = merge  # type: ignore[method-assign]
    try:
        yield
    finally:
        segment_merger.SegmentMerger.merge = original  # type: ignore[method-assign]


def force_merge(template: str, work: str) -> dict[str, float]:
    """Force merge a fresh copy of ``template`` to one segment (copy off the clock)."""
    import segstore

    if os.path.exists(work):
        shutil.rmtree(work)
    shutil.copytree(template, work)
    steps: list[dict[str, float]] = []
    w = segstore.open_index(work, INDEX)
    try:
        with _merge_timings(steps):
            t0 = time.perf_counter()
            w.force_merge(1)
            seconds = time.perf_counter() - t0
    finally:
        w.close()
    out = {"seconds": seconds}
    for key in ("stored_fields", "vector_values", "graph"):
        out[f"{key}_s"] = sum(s.get(key, 0.0) for s in steps)
    return out


def evict(path: str) -> dict[str, Any]:
    """Drop ``path``'s pages from the page cache; say how, and what ``fincore`` still sees resident."""
    method = []
    os.sync()
    if DROP_CACHES:
        try:
            with open("/proc/sys/vm/drop_caches", "w") as fh:
                fh.write("1\n")
            method.append("drop_caches")
        except OSError:
            pass
    for f in _files(path):
        try:
            fd = os.open(f, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    method.append("fadvise_dontneed")
    resident = None
    if shutil.which("fincore"):
        try:
            out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "-o", "RES", *_files(path)],
                                 capture_output=True, text=True, timeout=60, check=False).stdout
            resident = sum(int(x) for x in out.split() if x.isdigit())
        except (OSError, subprocess.TimeoutExpired):
            resident = None
    return {"method": "+".join(method), "resident_bytes_after": resident}


def cold_fetch(data_dir: str, ids: Sequence[str], cwd: str) -> dict[str, Any]:
    """Evict the page cache, then GET ``ids`` from a fresh process (its own timings)."""
    eviction = evict(data_dir)
    cmd = [sys.executable, "-m", "segstore_tools.bench_derived_source", "--cold-fetch", data_dir, ",".join(ids)]
    # cwd outside the checkout: the repository root holds a ``codecs/`` folder that shadows the stdlib
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"cold fetch process failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["eviction"] = eviction
    return result


def _cold_fetch_child(data_dir: str, ids: list[str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    import segstore

    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    client = segstore.connect(data_dir)
    client.transport.node.writer(INDEX)  # opens the index: catalog, segments, readers
    t_open = time.perf_counter() - t1
    lat = []
    nbytes = 0
    try:
        for doc_id in ids:
            s = time.perf_counter()
            got = client.get(index=INDEX, id=doc_id)
            lat.append(time.perf_counter() - s)
            vec = got["_source"][FIELD]
            if len(vec) != DIMS:
                raise RuntimeError(f"doc {doc_id}: vector of {len(vec)} values")
            nbytes += len(json.dumps(got["_source"]))
    finally:
        client.close()
    arr = np.asarray(lat) * 1000.0
    return {"import_s": t_import, "open_s": t_open, "fetches": len(ids), "total_ms": float(arr.sum()),
            "mean_ms": float(arr.mean()), "p50_ms": float(np.percentile(arr, 50)),
            "p99_ms": float(np.percentile(arr, 99)), "first_ms": float(arr[0]), "source_json_bytes": nbytes}


# ------------------------------------------------------------------------------------------------ run

def run(data: str | None = None, *, docs: int = DEFAULT_DOCS, fetch: int = 200, passes: int = 2,
        bulk_size: int = 500, segment_docs: int = 1000, workdir: str | None = None,
        log: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    vectors, texts = load(data, docs)
    own = workdir is None
    work = workdir or tempfile.mkdtemp(prefix="segstore-bench-ds-")
    os.makedirs(work, exist_ok=True)
    rng = random.Random(SEED)
    ids = [str(i) for i in rng.sample(range(docs), min(fetch, docs))]
    out: dict[str, Any] = {"docs": docs, "dims": DIMS, "fetch": len(ids), "passes": passes, "variants": {}}
    t_start, load_start = time.time(), list(os.getloadavg())
    try:
        templates = {}
        for name, settings in VARIANTS.items():
            log(f"ingest [{name}] ...")
            templates[name] = os.path.join(work, f"{name}-segments")
            ingest = build(templates[name], settings, vectors, texts, bulk_size, segment_docs)
            out["variants"][name] = {"ingest": ingest, "before_merge": segment_bytes(templates[name]),
                                     "merges": []}
        for p in range(passes):  # interleaved, so machine noise hits both alike
            for name in (VARIANTS if p % 2 == 0 else reversed(list(VARIANTS))):
                log(f"force merge [{name}] pass {p + 1} ...")
                merged = os.path.join(work, f"{name}-merged")
                out["variants"][name]["merges"].append(force_merge(templates[name], merged))
        for name in VARIANTS:
            v = out["variants"][name]
            v["merge"] = min(v["merges"], key=lambda m: m["seconds"])
            v["after_merge"] = segment_bytes(os.path.join(work, f"{name}-merged"))
            shutil.rmtree(templates[name], ignore_errors=True)
        for p in range(passes):
            for name in (VARIANTS if p % 2 == 0 else reversed(list(VARIANTS))):
                log(f"cold fetch [{name}] pass {p + 1} ...")
                v = out["variants"][name]
                v.setdefault("cold_fetches", []).append(cold_fetch(os.path.join(work, f"{name}-merged"), ids, work))
        for name in VARIANTS:
            v = out["variants"][name]
            v["cold_fetch"] = min(v["cold_fetches"], key=lambda c: c["total_ms"])
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    d, p_ = out["variants"]["derived"], out["variants"]["plain"]
    out["ratios"] = {
        "store_total": p_["after_merge"]["segment_bytes"] / d["after_merge"]["segment_bytes"],
        "store_stored_fields": p_["after_merge"]["stored_fields_bytes"] / d["after_merge"]["stored_fields_bytes"],
        "merge_speedup_pct": 100.0 * (1 - d["merge"]["seconds"] / p_["merge"]["seconds"]),
        "merge_stored_fields_speedup": p_["merge"]["stored_fields_s"] / max(d["merge"]["stored_fields_s"], 1e-9),
        "cold_fetch_speedup": p_["cold_fetch"]["total_ms"] / d["cold_fetch"]["total_ms"],
    }
    out["claims"] = CLAIMS
    out["machine"] = {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                      "load_avg_start": load_start, "load_avg_end": list(os.getloadavg()),
                      "seconds": time.time() - t_start}
    return out


def format_table(r: dict[str, Any]) -> str:
    d, p = r["variants"]["derived"], r["variants"]["plain"]
    q = r["ratios"]
    mib = 2.0 ** 20

    def row(metric: str, plain: str, derived: str, measured: str, claim: str) -> str:
        return f"| {metric:<34} | {plain:>12} | {derived:>12} | {measured:>22} | {claim:<34} |"

    lines = [(f"derived source, {r['docs']} docs x {r['dims']}-d float (minilm-384) + text; "
              f"cold fetch = {r['fetch']} random GETs in a fresh process; best of {r['passes']}"),
             row("metric", "plain", "derived", "measured", "seed claim"),
             "|" + "-" * 36 + "|" + "-" * 14 + "|" + "-" * 14 + "|" + "-" * 24 + "|" + "-" * 36 + "|",
             row("store size, segment files (MiB)", f"{p['after_merge']['segment_bytes'] / mib:.1f}",
                 f"{d['after_merge']['segment_bytes'] / mib:.1f}", f"{q['store_total']:.2f}x smaller",
                 CLAIMS["store"]),
             row("  stored fields .fdt+.fdx (MiB)", f"{p['after_merge']['stored_fields_bytes'] / mib:.2f}",
                 f"{d['after_merge']['stored_fields_bytes'] / mib:.2f}", f"{q['store_stored_fields']:.1f}x smaller",
                 "(the part derived source changes)"),
             row("force merge to 1 segment (s)", f"{p['merge']['seconds']:.2f}", f"{d['merge']['seconds']:.2f}",
                 f"{q['merge_speedup_pct']:+.1f}% faster", CLAIMS["merge"]),
             row("  of which stored-fields copy (s)", f"{p['merge']['stored_fields_s']:.3f}",
                 f"{d['merge']['stored_fields_s']:.3f}", f"{q['merge_stored_fields_speedup']:.1f}x faster",
                 "(graph rebuild dominates the rest)"),
             row("  of which graph rebuild (s)", f"{p['merge']['graph_s']:.2f}", f"{d['merge']['graph_s']:.2f}",
                 "", ""),
             row(f"cold _source fetch, {r['fetch']} GETs (ms)", f"{p['cold_fetch']['total_ms']:.1f}",
                 f"{d['cold_fetch']['total_ms']:.1f}", f"{q['cold_fetch_speedup']:.2f}x faster", CLAIMS["cold_fetch"]),
             row("  per GET p50 / p99 (ms)", f"{p['cold_fetch']['p50_ms']:.2f}/{p['cold_fetch']['p99_ms']:.2f}",
                 f"{d['cold_fetch']['p50_ms']:.2f}/{d['cold_fetch']['p99_ms']:.2f}", "", ""),
             row("  index open in fresh process (s)", f"{p['cold_fetch']['open_s']:.3f}",
                 f"{d['cold_fetch']['open_s']:.3f}", "", ""),
             (f"page cache: {d['cold_fetch']['eviction']['method']} (resident after eviction: plain "
              f"{p['cold_fetch']['eviction']['resident_bytes_after']} B, derived "
              f"{d['cold_fetch']['eviction']['resident_bytes_after']} B)"),
             (f"segments before merge: plain {p['before_merge']['segments']}, derived "
              f"{d['before_merge']['segments']}; machine: {r['machine']['cpu_count']} cpus, load "
              f"{r['machine']['load_avg_end']}, run {r['machine']['seconds']:.0f} s")]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ CLI

def add_arguments(p: argparse.ArgumentParser, *, standalone: bool = True) -> None:
    """Options of the derived-source benchmark (``--data``, ``--docs``, ``--out``, ``--workdir``, ``--json``
    are shared with ``segstore bench`` and only added when ``standalone``)."""
    if standalone:
        p.add_argument("--data", default=None, help="data folder holding minilm-384/")
        p.add_argument("--docs", type=int, default=None, help=f"number of documents (default {DEFAULT_DOCS})")
        p.add_argument("--out", default=os.path.join("bench-results", "bench_derived_source.json"))
        p.add_argument("--workdir", default=None, help="keep the indices under this folder (default: temp)")
        p.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
        p.add_argument("--passes", type=int, default=2, help="force-merge / cold-fetch runs, best kept")
    p.add_argument("--fetch", type=int, default=200, help="documents fetched by the cold-start process")
    p.add_argument("--segment-docs", type=int, default=1000, help="refresh every N documents (segments)")


def run_from_args(args: argparse.Namespace) -> int:
    """Entry point for ``segstore bench --derived-source`` and ``python -m ...bench_derived_source``."""
    out_path = getattr(args, "out", None)
    if out_path and os.path.basename(out_path) == "bench.json":  # segstore bench's default: keep it apart
        out_path = os.path.join(os.path.dirname(out_path), "bench_derived_source.json")
    try:
        result = run(args.data, docs=args.docs or DEFAULT_DOCS, fetch=args.fetch,
                     passes=max(1, getattr(args, "passes", 2)), segment_docs=args.segment_docs,
                     workdir=args.workdir, log=lambda m: print(m, file=sys.stderr, flush=True))
    except BenchDataError as e:
        print(f"segstore bench --derived-source: error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    if out_path:
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
        with open(out_path, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    print(text if args.json else format_table(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--cold-fetch"]:
        print(json.dumps(_cold_fetch_child(argv[1], argv[2].split(","))))
        return 0
    p = argparse.ArgumentParser(prog="bench_derived_source", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run_from_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
