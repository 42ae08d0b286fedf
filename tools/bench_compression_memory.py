"""Resident memory of a freshly opened and warmed index, measured in a fresh interpreter (for
``segstore bench --compression``, :mod:`segstore_tools.bench_compression`).

:func:`measure_resident` runs :func:`_child` in a new ``python``: it imports everything, opens a point-in-time
reader of the committed index, warms it (``_plugins/_knn/warmup``: every graph loaded, quantized codes
opened) and reads ``/proc/self/status`` (after ``gc.collect()`` and glibc ``malloc_trim``) after the imports,
after the open and after the warmup; ``/proc/self/smaps`` gives the resident pages of the index's own files,
by extension. With queries it then runs them (default rescoring) and measures again. It reports the
numbers, the ``memory_bytes()`` accounting and the warmup counters as JSON on stdout.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

__all__ = ["measure_resident"]


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def _settle() -> None:
    gc.collect()
    _malloc_trim()


def _status() -> dict[str, int]:
    """VmRSS / RssAnon / RssFile / RssShmem in bytes."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def _rss_by_suffix(root: str) -> dict[str, int]:
    """Resident bytes of mappings of files under ``root``, by file extension (``/proc/self/smaps``)."""
    out: dict[str, int] = {}
    current: str | None = None
    with open("/proc/self/smaps", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):
                parts = line.split()
                path = parts[5] if len(parts) >= 6 else ""
                current = path if path.startswith(root) else None
            elif current is not None and first == "Rss:":
                ext = os.path.splitext(current)[1] or os.path.basename(current)
                out[ext] = out.get(ext, 0) + int(line.split()[1]) * 1024
    return out


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs in a fresh interpreter: open, warm, measure (see the module docstring)."""
    import faiss  # noqa: F401 - imported before the baseline, like everything the search path needs
    import hnswlib  # noqa: F401
    import segstore_codecs.segstore1.codec  # noqa: F401

    import segstore
    from segstore.index.settings import IndexSettings
    from segstore.mapping.mappings import Mappings
    from segstore.quantization import memory as qmem
    from segstore.search.searcher import IndexSearcher

    root = os.path.realpath(spec["data_dir"])
    mappings = Mappings.parse(spec["mappings"], index_knn=True)
    settings = IndexSettings.parse(spec["settings"])
    queries = np.load(spec["queries"]) if spec.get("queries") else None
    q_lists = [] if queries is None else [row.tolist() for row in queries]
    _settle()
    s0 = _status()
    reader = segstore.open_reader(spec["data_dir"], spec["index"])
    _settle()
    s1 = _status()
    files_open = _rss_by_suffix(root)
    t0 = time.perf_counter()
    warm = qmem.warmup_reader(reader)
    warm_s = time.perf_counter() - t0
    _settle()
    s2 = _status()
    files_warm = _rss_by_suffix(root)
    acct = {name: fm.as_dict() for name, fm in qmem.reader_memory(reader, mappings).items()}
    out: dict[str, Any] = {"status": {"imported": s0, "opened": s1, "warmed": s2}, "files_open": files_open,
                           "files_warm": files_warm,
                           "accounting": acct, "warmup": {"graphs_loaded": warm.graphs_loaded,
                                                          "quantized_opened": warm.quantized_opened,
                                                          "seconds": warm_s}}
    if q_lists:
        searcher = IndexSearcher(spec["index"], reader, mappings, settings)
        for q in q_lists:
            searcher.hits(searcher.parse({"knn": {spec["field"]: {"vector": q, "k": spec["k"]}}}))
        _settle()
        out["status"]["queried"] = _status()
        out["files_queried"] = _rss_by_suffix(root)
        out["queries_run"] = len(q_lists)
    reader.close()
    return out


def measure_resident(data_dir: str, index: str, mappings: dict[str, Any], queries: np.ndarray | None,
                     workdir: str, *, settings: dict[str, Any], field: str, k: int) -> dict[str, Any]:
    """Run :func:`_child` in a fresh ``python`` and return its JSON (``queries``: searched on ``field`` with
    ``k`` after the warmup)."""
    qpath = None
    if queries is not None and len(queries):
        qpath = os.path.join(workdir, f"{index}-rss-queries.npy")
        np.save(qpath, queries)
    spec = {"data_dir": data_dir, "index": index, "mappings": mappings, "settings": settings, "queries": qpath,
            "field": field, "k": k}
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", "import sys, json; from segstore_tools.bench_compression_memory import "
                           "_child_main; _child_main()"], input=json.dumps(spec), capture_output=True, text=True,
                          env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"memory subprocess failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _child_main() -> None:
    spec = json.loads(sys.stdin.read())
    print(json.dumps(_child(spec)))
