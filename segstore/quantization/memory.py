"""What k-NN search really keeps in memory, per index and field, and the k-NN plugin's cache statistics.

OpenSearch's ``GET _plugins/_knn/stats`` reports the *native memory cache*: every loaded graph is one
allocation whose size is counted in ``graph_memory_usage`` (KB) and per index under ``indices_in_cache``.
segstore has no separate cache: a graph is loaded on first use by its segment's graph reader and stays
loaded until the segment's last reader closes. So the accounting here walks the segments of the *open*
indices and adds up what is actually resident:

* ``graph_bytes``: ``KnnGraph.memory_bytes()`` of every graph that is **loaded** (graphs not loaded yet
  cost nothing and are not counted, as in OpenSearch);
* ``quantized_bytes``: for quantized fields, ``QuantizedValues.memory_bytes()`` of every segment whose
  quantization state has been opened: the state (thresholds) and the memory-mapped codes when they are
  mapped (first-pass scoring reads them);
* never the full-precision vectors: they stay in the memory-mapped ``.vec`` file, read only by rescoring
  (page cache, not counted; the OpenSearch plugin does not count Lucene's flat vectors either).

Units follow the plugin: per-allocation sizes in KB (rounded up per allocation, one allocation = one
graph or one segment's codes), percentages of the cache capacity (``knn.memory.circuit_breaker.limit``,
default 50% of the machine's memory; segstore never evicts, so ``eviction_count`` stays 0 and
``cache_capacity_reached`` only reports that the capacity is exceeded).

Cache counters: loads performed by :func:`warmup_reader` are counted as they happen; graphs loaded by
searches are counted when an accounting pass first sees them (``load_success_count`` and ``miss_count``
both +1), unless the graph reader reports its own events through :data:`CACHE_STATS` (then
``CACHE_STATS.instrumented`` is set and only those events count). ``hit_count`` therefore only counts
warmups of already-loaded graphs until the graph reader is instrumented.

This module only reads engine state; it imports nothing heavy at module level so that the graph reader may
import it.
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from segstore.index.directory_reader import DirectoryReader
    from segstore.index.index_writer import IndexWriter
    from segstore.index.segment_reader import SegmentReader
    from segstore.node import Node

__all__ = [
    "FieldMemory", "CacheStats", "CACHE_STATS", "default_capacity_bytes", "field_encoding",
    "reader_memory", "writer_memory", "node_memory", "open_writers", "loaded_graphs", "warmup_reader",
    "warmup_writer", "kilobytes",
]


# ------------------------------------------------------------------------------------------- counters


class CacheStats:
    """Guava-style cache counters of the k-NN plugin's native memory cache (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.instrumented = False  # set by a graph reader that reports its own hits/misses/loads
        self._seen: weakref.WeakSet[Any] = weakref.WeakSet()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.hit_count = 0
            self.miss_count = 0
            self.load_success_count = 0
            self.load_exception_count = 0
            self.total_load_time = 0  # nanoseconds
            self.eviction_count = 0
            self._seen = weakref.WeakSet()

    # -- events reported by a graph reader (instrumented mode)

    def record_hit(self) -> None:
        with self._lock:
            self.instrumented = True
            self.hit_count += 1

    def record_load(self, graph: Any, nanos: int) -> None:
        with self._lock:
            self.instrumented = True
            self.miss_count += 1
            self.load_success_count += 1
            self.total_load_time += int(nanos)
            self._add_seen(graph)

    def record_load_failure(self, nanos: int) -> None:
        with self._lock:
            self.instrumented = True
            self.miss_count += 1
            self.load_exception_count += 1
            self.total_load_time += int(nanos)

    # -- inference from observed state (until the graph reader is instrumented)

    def _add_seen(self, graph: Any) -> None:
        try:
            self._seen.add(graph)
        except TypeError:  # not weak-referenceable: cannot be tracked, never double counted either
            pass

    def observe(self, graph: Any, *, nanos: int = 0, warmup_hit: bool = False) -> None:
        """An accounting pass (or a warmup) saw ``graph`` loaded."""
        with self._lock:
            try:
                new = graph not in self._seen
            except TypeError:
                new = False
            if new:
                self._add_seen(graph)
                if not self.instrumented:
                    self.miss_count += 1
                    self.load_success_count += 1
                    self.total_load_time += int(nanos)
            elif warmup_hit and not self.instrumented:
                self.hit_count += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"hit_count": self.hit_count, "miss_count": self.miss_count,
                    "load_success_count": self.load_success_count,
                    "load_exception_count": self.load_exception_count,
                    "total_load_time": self.total_load_time, "eviction_count": self.eviction_count}


CACHE_STATS = CacheStats()


def default_capacity_bytes() -> int:
    """``knn.memory.circuit_breaker.limit`` (50%) of physical memory (``$SEGSTORE_KNN_MEMORY_LIMIT``, in
    bytes or with a kb/mb/gb suffix or as a percentage, overrides it)."""
    total = _physical_memory()
    env = os.environ.get("SEGSTORE_KNN_MEMORY_LIMIT")
    if env:
        text = env.strip().lower()
        try:
            if text.endswith("%"):
                return int(total * float(text[:-1]) / 100.0)
            for suffix, mult in (("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30), ("b", 1)):
                if text.endswith(suffix):
                    return int(float(text[: -len(suffix)]) * mult)
            return int(float(text))
        except ValueError:
            pass
    return total // 2


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def kilobytes(n_bytes: int) -> int:
    """One allocation's size in KB, rounded up (a non-empty allocation is at least 1 KB)."""
    return int(math.ceil(n_bytes / 1024.0)) if n_bytes > 0 else 0


# --------------------------------------------------------------------------------------- accounting


@dataclass
class FieldMemory:
    """Resident memory of one vector field of one index (summed over its segments)."""

    field: str
    encoding: str = ""
    compression_level: str | None = None
    mode: str | None = None
    dimension: int = 0
    segments: int = 0
    vectors: int = 0
    graphs_total: int = 0  # segments with a graph file for this field
    graph_count: int = 0  # graphs loaded
    graph_bytes: int = 0
    graph_kb: int = 0
    quantized_segments: int = 0  # segments whose codes are open
    quantized_bytes: int = 0
    quantized_kb: int = 0
    segment_names: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return self.graph_bytes + self.quantized_bytes

    @property
    def total_kb(self) -> int:
        return self.graph_kb + self.quantized_kb

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("segment_names")
        d["total_bytes"] = self.total_bytes
        d["total_kb"] = self.total_kb
        return d


def field_encoding(attributes: dict[str, str], data_type: str) -> str:
    """A short name of what the field's graph holds per vector (``float32``, ``binary 1-bit``, ``fp16``,
    ``sq 7-bit``, ``int8``, ``bits``)."""
    if data_type == "byte":
        return "int8"
    if data_type == "binary":
        return "bits"
    encoder = attributes.get("encoder")
    if encoder == "binary":
        return f"binary {attributes.get('encoder.bits', '1')}-bit"
    if encoder == "sq":
        bits = attributes.get("encoder.bits")
        if bits == "7":
            return "sq 7-bit"
        if bits == "1":
            return "sq 1-bit"
        return "fp16"
    return "float32"


def loaded_graphs(leaf: "SegmentReader") -> dict[str, Any]:
    """Graphs of ``leaf`` that are already loaded, by field (never loads one)."""
    graphs = leaf.core.graphs
    public = getattr(graphs, "loaded", None)
    if callable(public):
        return dict(public())
    return dict(getattr(graphs, "_graphs", {}) or {})


def _loaded_quantized(leaf: "SegmentReader") -> dict[str, Any]:
    """Quantized values of ``leaf`` that are already open, by field (never opens one)."""
    core = leaf.core
    public = getattr(core, "loaded_quantized", None)
    if callable(public):
        return dict(public())
    lock = getattr(core, "_lock", None)
    cache = getattr(core, "_quantized", {}) or {}
    if lock is None:
        return {k: v for k, v in dict(cache).items() if v is not None}
    with lock:
        return {k: v for k, v in cache.items() if v is not None}


def _graph_fields(leaf: "SegmentReader") -> list[str]:
    try:
        return list(leaf.core.graphs.fields())
    except Exception:  # noqa: BLE001 - a closed reader has no graphs to report
        return []


def reader_memory(reader: "DirectoryReader", mappings: Any = None) -> dict[str, FieldMemory]:
    """Per vector field of ``reader``: what its segments hold resident right now. ``mappings`` (the index's
    :class:`~segstore.mapping.mappings.Mappings`, optional) adds the resolved mode and compression."""
    out: dict[str, FieldMemory] = {}
    for leaf in reader.leaves:
        graphs = loaded_graphs(leaf)
        quantized = _loaded_quantized(leaf)
        with_graph = set(_graph_fields(leaf))
        for fi in leaf.field_infos.vector_fields():
            fm = out.get(fi.name)
            if fm is None:
                fm = out[fi.name] = FieldMemory(fi.name, field_encoding(fi.attributes, fi.vector_data_type),
                                                fi.attributes.get("compression"), fi.attributes.get("mode"),
                                                fi.vector_dimension)
            fm.segments += 1
            fm.segment_names.append(leaf.name)
            values = leaf.vector_values(fi.name)
            fm.vectors += 0 if values is None else values.size
            if fi.name in with_graph:
                fm.graphs_total += 1
            g = graphs.get(fi.name)
            if g is not None:
                CACHE_STATS.observe(g)
                b = int(g.memory_bytes())
                fm.graph_count += 1
                fm.graph_bytes += b
                fm.graph_kb += kilobytes(b)
            q = quantized.get(fi.name)
            if q is not None:
                b = int(q.memory_bytes())
                fm.quantized_segments += 1
                fm.quantized_bytes += b
                fm.quantized_kb += kilobytes(b)
    if mappings is not None:
        for name, fm in out.items():
            vf = getattr(mappings, "vector_fields", {}).get(name)
            if vf is not None:
                fm.compression_level = vf.compression_level or fm.compression_level
                fm.mode = vf.mode or fm.mode
    return out


def writer_memory(writer: "IndexWriter") -> dict[str, FieldMemory]:
    """:func:`reader_memory` of the writer's current point-in-time reader."""
    reader = writer.acquire_reader()
    try:
        return reader_memory(reader, writer.mappings)
    finally:
        reader.dec_ref()  # not close(): the acquired handle is the writer's shared reader object


def open_writers(node: "Node") -> dict[str, "IndexWriter"]:
    """The node's indices that are open (only they can hold loaded graphs); never opens one."""
    public = getattr(node, "open_writers", None)
    if callable(public):
        return dict(public())
    lock = getattr(node, "_lock", None)
    writers = getattr(node, "_writers", {}) or {}
    if lock is None:
        return dict(writers)
    with lock:
        return dict(writers)


def node_memory(node: "Node") -> dict[str, dict[str, FieldMemory]]:
    """index -> field -> :class:`FieldMemory` for every open index of ``node`` (closed writers skipped)."""
    out: dict[str, dict[str, FieldMemory]] = {}
    for name, w in sorted(open_writers(node).items()):
        try:
            out[name] = writer_memory(w)
        except Exception:  # noqa: BLE001 - an index closing concurrently holds nothing any more
            continue
    return out


# ------------------------------------------------------------------------------------------- warmup


@dataclass
class WarmupResult:
    segments: int = 0
    graphs_loaded: int = 0  # loaded by this warmup
    graphs_already_loaded: int = 0
    quantized_opened: int = 0
    seconds: float = 0.0
    fields: dict[str, int] = field(default_factory=dict)  # field -> graphs now loaded


def _iter_vector_fields(leaf: "SegmentReader") -> Iterator[Any]:
    yield from leaf.field_infos.vector_fields()


def _page_in(codes: Any) -> None:
    """Touch one byte per page of a (memory-mapped) array so that it is resident."""
    import numpy as np  # noqa: PLC0415

    flat = np.asarray(codes).reshape(-1).view(np.uint8)
    if flat.size:
        int(flat[::4096].sum(dtype=np.int64))


def warmup_reader(reader: "DirectoryReader", fields: Iterable[str] | None = None) -> WarmupResult:
    """Load every graph of every segment of ``reader`` (OpenSearch's ``_plugins/_knn/warmup``), open the
    quantization state of quantized fields, and page in the codes of segments that have no graph (they are
    scanned exactly, reading every code), so that the first search pays no loading cost. ``fields``
    restricts it to some fields."""
    wanted = None if fields is None else set(fields)
    res = WarmupResult()
    t_all = time.perf_counter()
    for leaf in reader.leaves:
        res.segments += 1
        before = loaded_graphs(leaf)
        with_graph = set(_graph_fields(leaf))
        for fi in _iter_vector_fields(leaf):
            if wanted is not None and fi.name not in wanted:
                continue
            if fi.name in with_graph:
                if fi.name in before:
                    res.graphs_already_loaded += 1
                    if CACHE_STATS.instrumented:
                        leaf.graph(fi.name)  # the graph reader counts the hit itself
                    else:
                        CACHE_STATS.observe(before[fi.name], warmup_hit=True)
                else:
                    t0 = time.perf_counter_ns()
                    try:
                        g = leaf.graph(fi.name)
                    except Exception:
                        with CACHE_STATS._lock:  # noqa: SLF001
                            if not CACHE_STATS.instrumented:
                                CACHE_STATS.miss_count += 1
                                CACHE_STATS.load_exception_count += 1
                        raise
                    if g is not None:
                        CACHE_STATS.observe(g, nanos=time.perf_counter_ns() - t0)
                        res.graphs_loaded += 1
                res.fields[fi.name] = res.fields.get(fi.name, 0) + 1
            if fi.vector_data_type == "float" and fi.attributes.get("encoder"):
                q = leaf.quantized(fi.name)
                if q is not None:
                    res.quantized_opened += 1
                    if fi.name not in with_graph:
                        _page_in(q.codes)  # an exact-scan segment reads its codes on every search
    res.seconds = time.perf_counter() - t_all
    return res


def warmup_writer(writer: "IndexWriter", fields: Iterable[str] | None = None) -> WarmupResult:
    reader = writer.acquire_reader()
    try:
        return warmup_reader(reader, fields)
    finally:
        reader.dec_ref()  # not close(): the acquired handle is the writer's shared reader object
