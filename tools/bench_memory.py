"""Resident memory of segstore's HNSW graphs per vector, next to OpenSearch's memory formulas.

``python tools/bench_memory.py --vectors 100000`` builds, with m = 16, one graph per vector encoding through
the real ``SegStore1`` formats (vector values writer, then graph writer, into an ``FSDirectory`` segment):

* ``float``  - hnswlib HNSW over the minilm-384 float vectors (d = 384);
* ``byte``   - faiss ``HNSW16,SQ8_direct_signed`` over the same vectors scaled to int8:
  ``round(x * 127 / max|x|)`` with one global ``max|x|`` over the whole set;
* ``binary`` - faiss ``BHNSW16`` over the sign bits of the same vectors (bit set iff x > 0; d = 384 bits,
  packed MSB-first into 48 bytes, the knn-testdata binary style).

Data: ``../shared/data/minilm-384/docs.f16.npy`` holds 60,000 unit vectors. When more are asked for, row
``i >= 60000`` is a perturbed copy of row ``i mod 60000``: Gaussian noise with sigma 0.02 per dimension (about
40% of a typical component, 1/sqrt(384) ~ 0.051), renormalised to unit length, from a fixed seed. The copies
are near (not equal to) their originals, so graphs and sign codes stay realistic and distinct.

Per encoding it reports:

* ``rss/vec``  - the VmRSS growth of a *fresh* subprocess that imports everything, opens the segment's graph
  reader, then loads only that graph (``GraphReader.get``), after ``gc.collect()``, divided by n. The file's
  memory map is released once the graph is loaded, so this is what the loaded graph keeps resident
  (anonymous memory). ``rss+1q/vec`` is the same after one search (hnswlib allocates its visited-list pool
  then; faiss allocates per search and frees);
* ``mem/vec``  - ``KnnGraph.memory_bytes() / n``, the engine's own accounting;
* ``file/vec`` - the graph file size / n;
* ``formula``  - vector-semantics.md §7: float ``1.1·(4d + 8m)``, byte ``1.1·(d + 8m)``, binary
  ``1.1·(d/8 + 8m)`` bytes per vector, and the ratios to it.

A detailed table and a summary (measured RSS per vector next to the formula) are printed, and the same
numbers are written as JSON (``--out`` / ``--json``, parent folders created).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # ``python tools/bench_memory.py`` puts tools/ first on sys.path, and tools/ holds modules named like the
    # standard library's (tools/inspect.py): numpy's ``import inspect`` would load it. Drop the folder.
    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import gc
import json
import platform
import shutil
import subprocess
import tempfile
import time
from typing import Any

import numpy as np

DIMS = 384
DEFAULT_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.pardir, "shared",
                            "data", "minilm-384", "docs.f16.npy")
KINDS = ("float", "byte", "binary")
PERTURB_SIGMA = 0.02
PERTURB_SEED = 20240601


# ---------------------------------------------------------------------------------------------- data


def load_vectors(path: str, n: int) -> np.ndarray:
    """n unit float32 vectors: the file's rows, then perturbed copies (see the module docstring)."""
    base = np.load(path, mmap_mode="r")
    if base.ndim != 2 or base.shape[1] != DIMS:
        raise SystemExit(f"{path}: expected (rows, {DIMS}), got {base.shape}")
    rows = base.shape[0]
    out = np.empty((n, DIMS), np.float32)
    take = min(n, rows)
    out[:take] = base[:take]
    if n > rows:
        rng = np.random.default_rng(PERTURB_SEED)
        for start in range(rows, n, rows):
            stop = min(n, start + rows)
            src = np.asarray(base[: stop - start], dtype=np.float32)
            noisy = src + rng.normal(0.0, PERTURB_SIGMA, src.shape).astype(np.float32)
            out[start:stop] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    return out


def encode(kind: str, x: np.ndarray) -> np.ndarray:
    if kind == "float":
        return x
    if kind == "byte":
        scale = 127.0 / float(np.abs(x).max())
        return np.clip(np.rint(x * scale), -128, 127).astype(np.int8)
    return np.packbits(x > 0, axis=1)  # MSB-first: bit 7 of byte 0 = dimension 0


FORMULA_TEXT = {"float": "1.1*(4d + 8m)", "byte": "1.1*(d + 8m)", "binary": "1.1*(d/8 + 8m)"}


def formula(kind: str, d: int, m: int) -> float:
    per_dim = {"float": 4 * d, "byte": d, "binary": d / 8}[kind]
    return 1.1 * (per_dim + 8 * m)


# ------------------------------------------------------------------------------------------- segment


def _field(kind: str, m: int, ef_construction: int) -> Any:
    from segstore.index.field_infos import FieldInfo

    space = "hamming" if kind == "binary" else "l2"
    return FieldInfo("v", 0, vector_dimension=DIMS, vector_data_type=kind, vector_space_type=space,
                     attributes={"knn": "true", "engine": "faiss", "method": "hnsw", "hnsw.m": str(m),
                                 "hnsw.ef_construction": str(ef_construction)})


def write_segment(root: str, kind: str, vectors: np.ndarray, m: int, ef_construction: int) -> dict[str, Any]:
    """Write one segment with the real SegStore1 vector values and graph writers; return its spec."""
    from segstore.index.field_infos import FieldInfos
    from segstore.index.segment_info import SegmentInfo, new_segment_id
    from segstore.index.write_state import SegmentReadState, SegmentWriteState
    from segstore.store import FSDirectory
    from segstore_codecs.segstore1.graph_format import SegStore1HnswGraphFormat
    from segstore_codecs.segstore1.vector_values_format import SegStore1VectorValuesFormat

    path = os.path.join(root, kind)
    directory = FSDirectory(path)
    fi = _field(kind, m, ef_construction)
    n = vectors.shape[0]
    info = SegmentInfo(name="_0", segment_id=new_segment_id(), max_doc=n, codec="SegStore1")
    state = SegmentWriteState(directory, info, FieldInfos([fi]))
    vw = SegStore1VectorValuesFormat().fields_writer(state)
    vw.add_field(fi, vectors, np.arange(n, dtype=np.int32))
    vw.finish()
    values = SegStore1VectorValuesFormat().fields_reader(SegmentReadState(directory, info, state.field_infos))
    t0 = time.perf_counter()
    gw = SegStore1HnswGraphFormat().fields_writer(state)
    gw.add_field(fi, values.get("v"))
    gw.finish()
    build = time.perf_counter() - t0
    info.files = sorted(state.files)
    graph_file = next(f for f in info.files if f.endswith(".hnsw"))
    return {"kind": kind, "path": path, "segment_id": info.segment_id.hex(), "files": info.files, "n": n,
            "m": m, "ef_construction": ef_construction, "build_seconds": round(build, 2),
            "graph_file_bytes": os.path.getsize(os.path.join(path, graph_file)),
            "query": vectors[: 1].tolist()}


# ------------------------------------------------------------------------------------ child process


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def _warm_up(fi: Any) -> None:
    """Build, save, load and search a tiny graph of the same kind, so the libraries' code pages and lazy
    one-time allocations are resident before the baseline: the delta is then the graph's data alone."""
    from segstore_codecs.segstore1 import faiss_graph
    from segstore_codecs.segstore1.graph_format import build_graph

    rng = np.random.default_rng(0)
    width = DIMS // 8 if fi.vector_data_type == "binary" else DIMS
    if fi.vector_data_type == "float":
        tiny = rng.standard_normal((64, width)).astype(np.float32)
        index = build_graph(fi, tiny)
        index.knn_query(tiny[:2], k=2)
    else:
        tiny = rng.integers(0, 256, (64, width)).astype(np.uint8 if fi.vector_data_type == "binary" else np.int8)
        layout = faiss_graph.faiss_layout(fi)
        index = faiss_graph.deserialize(memoryview(faiss_graph.serialize(build_graph(fi, tiny))), layout)
        faiss_graph.FaissGraph(index, layout, "warm", DIMS, 64).search(tiny[:2], k=2, ef=16)
    del index
    gc.collect()


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs in a fresh interpreter: load only the graph and report what it added to the process."""
    import faiss  # noqa: F401 - imported before the baseline, like every other library
    import hnswlib  # noqa: F401

    from segstore.index.field_infos import FieldInfos
    from segstore.index.segment_info import SegmentInfo
    from segstore.index.write_state import SegmentReadState
    from segstore.store import FSDirectory
    from segstore_codecs.segstore1.graph_format import SegStore1HnswGraphFormat

    fi = _field(spec["kind"], spec["m"], spec["ef_construction"])
    _warm_up(fi)
    info = SegmentInfo(name="_0", segment_id=bytes.fromhex(spec["segment_id"]), max_doc=spec["n"],
                       codec="SegStore1", files=list(spec["files"]))
    reader = SegStore1HnswGraphFormat().fields_reader(
        SegmentReadState(FSDirectory(spec["path"]), info, FieldInfos([fi])))
    gc.collect()
    before = _status()
    t0 = time.perf_counter()
    graph = reader.get("v")
    load = time.perf_counter() - t0
    gc.collect()
    loaded = _status()
    assert graph is not None
    dtype = {"float": np.float32, "byte": np.int8, "binary": np.uint8}[spec["kind"]]
    graph.search(np.asarray(spec["query"], dtype=dtype), k=10, ef=100)
    gc.collect()
    searched = _status()
    with open("/proc/self/maps") as fh:  # the graph file's map must be gone: nothing of it stays resident
        still_mapped = any(line.rstrip().endswith(".hnsw") for line in fh)
    return {"rss_delta": loaded["VmRSS"] - before["VmRSS"], "anon_delta": loaded["RssAnon"] - before["RssAnon"],
            "graph_file_still_mapped": still_mapped,
            "file_delta": loaded["RssFile"] - before["RssFile"],
            "rss_delta_after_search": searched["VmRSS"] - before["VmRSS"], "memory_bytes": graph.memory_bytes(),
            "graph_type": type(graph).__name__, "load_seconds": round(load, 3)}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child for [{spec['kind']}] failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------- report


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'encoding':<8} {'graph':<10} {'n':>7} {'d':>4} {'rss/vec':>8} {'rss+1q/vec':>10} {'mem/vec':>8} "
            f"{'file/vec':>8} {'formula':>8} {'rss/form':>8} {'mem/form':>8} {'build s':>7} {'load s':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['kind']:<8} {r['graph_type']:<10} {r['n']:>7} {r['d']:>4} {r['rss_per_vector']:>8.1f} "
            f"{r['rss_after_search_per_vector']:>10.1f} {r['memory_bytes_per_vector']:>8.1f} "
            f"{r['file_per_vector']:>8.1f} {r['formula_per_vector']:>8.1f} {r['rss_vs_formula']:>8.3f} "
            f"{r['memory_bytes_vs_formula']:>8.3f} {r['build_seconds']:>7.1f} {r['load_seconds']:>6.2f}")
    return "\n".join(lines)


def format_summary(rows: list[dict[str, Any]]) -> str:
    """Measured resident bytes per vector next to the vector-semantics.md §7 formula."""
    head = (f"{'encoding':<8} {'n':>7} {'d':>4} {'m':>3} {'measured RSS B/vec':>18} {'formula':<16} "
            f"{'formula B/vec':>13} {'measured/formula':>16}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['kind']:<8} {r['n']:>7} {r['d']:>4} {r['m']:>3} {r['rss_per_vector']:>18.1f} "
                     f"{FORMULA_TEXT[r['kind']]:<16} {r['formula_per_vector']:>13.1f} {r['rss_vs_formula']:>16.3f}")
    return "\n".join(lines)


def run(n: int, data: str, m: int, ef_construction: int, kinds: list[str], workdir: str | None) -> dict[str, Any]:
    x = load_vectors(data, n)
    root = tempfile.mkdtemp(prefix="segstore-bench-memory-", dir=workdir)
    rows = []
    try:
        for kind in kinds:
            spec = write_segment(root, kind, encode(kind, x), m, ef_construction)
            got = measure(spec)
            f = formula(kind, DIMS, m)
            rows.append({
                "kind": kind, "graph_type": got["graph_type"], "n": n, "d": DIMS, "m": m,
                "ef_construction": ef_construction,
                "rss_per_vector": got["rss_delta"] / n, "anon_per_vector": got["anon_delta"] / n,
                "rss_after_search_per_vector": got["rss_delta_after_search"] / n,
                "memory_bytes_per_vector": got["memory_bytes"] / n,
                "file_per_vector": spec["graph_file_bytes"] / n, "formula_per_vector": f,
                "rss_vs_formula": got["rss_delta"] / n / f, "memory_bytes_vs_formula": got["memory_bytes"] / n / f,
                "build_seconds": spec["build_seconds"], "load_seconds": got["load_seconds"],
                "raw": {**got, "graph_file_bytes": spec["graph_file_bytes"]},
            })
            shutil.rmtree(spec["path"], ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"vectors": n, "dimension": DIMS, "m": m, "ef_construction": ef_construction, "data": data,
            "perturbation": {"sigma": PERTURB_SIGMA, "seed": PERTURB_SEED} if n > 60000 else None,
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()}, "results": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vectors", type=int, default=100_000)
    p.add_argument("--data", default=os.path.normpath(DEFAULT_DATA))
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=100)
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of float,byte,binary")
    p.add_argument("--json", "--out", dest="json", default="bench_memory.json",
                   help="where to write the results as JSON (parent folders are created)")
    p.add_argument("--workdir", default=None, help="where the temporary segments go (default: system temp)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    kinds = [k for k in args.kinds.split(",") if k]
    if not kinds or any(k not in KINDS for k in kinds) or args.vectors < 1:
        p.error(f"--kinds must be a subset of {','.join(KINDS)} and --vectors >= 1")
    report = run(args.vectors, args.data, args.m, args.ef_construction, kinds, args.workdir)
    print(format_table(report["results"]))
    print()
    print(format_summary(report["results"]))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump(report, fh, indent=2)
    print(f"\nJSON: {os.path.abspath(args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
