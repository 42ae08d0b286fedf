"""Building hnswlib graphs for float fields: all at once (flush, merge, repair) or while documents arrive.

:func:`build_hnsw` builds a field's graph over a whole segment's vectors. :class:`HnswGraphBuilder` grows the
same graph while the segment's documents are still buffered, as Lucene's indexing chain grows an on-heap
HNSW graph with every added vector, so that a refresh of a large buffer mostly writes files instead of
building the graph then. It runs on a background thread: hnswlib releases the GIL while it inserts, so the
graph grows on the other cores while the caller parses and logs the next documents.

Both build the graph the graph format stores (:mod:`.graph_format`): space, M and ef_construction from the
field attributes, hnswlib's level seed ``RANDOM_SEED``, labels = the field's vector ordinals, and
``max_elements`` equal to the vector count. A multi-threaded hnswlib build is not deterministic, so a graph
built incrementally is a different but equally valid graph over the same vectors.
"""

from __future__ import annotations

import logging
import os
import threading

import hnswlib
import numpy as np

from segstore.codec.base import IncrementalGraphBuilder
from segstore.index.field_infos import FieldInfo

__all__ = [
    "DEFAULT_EF_CONSTRUCTION",
    "DEFAULT_M",
    "HNSW_SPACES",
    "RANDOM_SEED",
    "HnswGraphBuilder",
    "build_hnsw",
    "hnsw_params",
    "hnsw_space",
    "new_hnsw_index",
]

log = logging.getLogger(__name__)

RANDOM_SEED = 100
DEFAULT_M = 16
DEFAULT_EF_CONSTRUCTION = 100
HNSW_SPACES = {"l2": "l2", "innerproduct": "ip", "cosinesimil": "cosine"}  # field space -> hnswlib space
M_RANGE = (1, 2048)  # the mapping accepts m > 0; the upper bound only rejects absurd (corrupt) values
EF_RANGE = (2, 1 << 20)
_INITIAL_CAPACITY = 16384  # elements; an incremental graph doubles its capacity as it grows


def hnsw_space(field: FieldInfo) -> str:
    """hnswlib's space name for a float field (ValueError for other data types and unsupported spaces)."""
    if field.vector_data_type != "float":
        raise ValueError(f"hnswlib graphs support float vectors only; field [{field.name}] has data_type "
                         f"[{field.vector_data_type}] (use build_graph, which builds faiss graphs for them)")
    try:
        return HNSW_SPACES[field.vector_space_type]
    except KeyError:
        raise ValueError(f"SegStore1HnswGraph does not support space type [{field.vector_space_type}] of "
                         f"field [{field.name}]; supported: {sorted(HNSW_SPACES)}") from None


def hnsw_params(field: FieldInfo) -> tuple[int, int]:
    """``(m, ef_construction)`` from the field attributes."""
    # OpenSearch accepts any m > 0, but HNSW's level multiplier is 1/ln(m): both libraries need m >= 2, so a
    # mapping's m = 1 builds (and records) an m = 2 graph.
    return (max(2, _int_attribute(field, "hnsw.m", DEFAULT_M, M_RANGE)),
            _int_attribute(field, "hnsw.ef_construction", DEFAULT_EF_CONSTRUCTION, EF_RANGE))


def _int_attribute(field: FieldInfo, key: str, default: int, bounds: tuple[int, int]) -> int:
    raw = field.attribute(key)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        raise ValueError(f"field [{field.name}]: attribute [{key}] must be an integer, got {raw!r}") from None
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"field [{field.name}]: attribute [{key}]={value} outside {list(bounds)}")
    return value


def new_hnsw_index(field: FieldInfo, capacity: int) -> hnswlib.Index:
    """An empty hnswlib index for ``field`` with room for ``capacity`` elements."""
    m, ef_construction = hnsw_params(field)
    index = hnswlib.Index(space=hnsw_space(field), dim=field.vector_dimension)
    index.init_index(max_elements=max(1, capacity), M=m, ef_construction=ef_construction, random_seed=RANDOM_SEED)
    return index


def build_hnsw(field: FieldInfo, vectors: np.ndarray) -> hnswlib.Index:
    """Build the HNSW graph of ``field`` over ``vectors`` (float32 [n, dimension], n >= 1); labels are
    ordinals 0..n-1. Used by the writer and by repair tools that rebuild graphs from vector values."""
    hnsw_space(field)
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    if data.ndim != 2 or data.shape[1] != field.vector_dimension or data.shape[0] < 1:
        raise ValueError(f"field [{field.name}]: need float32 vectors of shape (n >= 1, {field.vector_dimension}), "
                         f"got {np.shape(vectors)}")
    n = data.shape[0]
    index = new_hnsw_index(field, n)
    index.add_items(data, np.arange(n, dtype=np.int64), num_threads=os.cpu_count() or 1)
    return index


class HnswGraphBuilder(IncrementalGraphBuilder):
    """Grows one float field's hnswlib graph on a background thread as rows are added.

    ``add`` only queues (a list append under a condition); the worker takes everything queued, grows the
    index's capacity when needed (doubling, so resizes are rare) and inserts the batch with every core.
    ``finish`` waits for the queue to drain, trims the capacity to the row count (the stored blob's
    ``max_elements`` is the count) and hands the index over. A failure in the worker is kept and turns
    ``finish`` into None, so the flush builds the graph itself: a builder can cost time, never a segment.
    """

    def __init__(self, field: FieldInfo, dtype: type = np.float32) -> None:
        self.field = field
        self._index = new_hnsw_index(field, _INITIAL_CAPACITY)
        self._capacity = _INITIAL_CAPACITY
        self._dtype = dtype
        self._queue: list[np.ndarray] = []
        self._queued = 0  # rows handed to add(), i.e. the next ordinal
        self._added = 0  # rows inserted into the index
        self._closed = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        # A daemon thread: an abandoned builder (a writer that died) must not keep the process alive.
        self._thread = threading.Thread(target=self._run, name=f"segstore-hnsw-builder[{field.name}]", daemon=True)
        self._thread.start()

    def add(self, rows: np.ndarray) -> None:
        if rows.ndim != 2 or rows.shape[1] != self.field.vector_dimension:
            raise ValueError(f"field [{self.field.name}]: rows must have shape (n, {self.field.vector_dimension}),"
                             f" got {rows.shape}")
        if rows.shape[0] == 0:
            return
        with self._cond:
            if self._closed:
                raise RuntimeError(f"graph builder of field [{self.field.name}] is closed")
            self._queue.append(np.ascontiguousarray(rows, dtype=self._dtype))
            self._queued += rows.shape[0]
            self._cond.notify_all()

    @property
    def count(self) -> int:
        """Rows added so far (queued or inserted)."""
        return self._queued

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return  # closed and drained
                batch = self._queue[0] if len(self._queue) == 1 else np.concatenate(self._queue)
                self._queue = []
            try:
                if self._error is None:
                    self._insert(batch)
            except BaseException as e:  # noqa: BLE001 - reported through finish(), which falls back
                log.warning("incremental graph build of field [%s] failed: %r", self.field.name, e)
                self._error = e

    def _insert(self, batch: np.ndarray) -> None:
        first = self._added
        need = first + batch.shape[0]
        if need > self._capacity:
            self._capacity = max(need, 2 * self._capacity)
            self._index.resize_index(self._capacity)
        labels = np.arange(first, need, dtype=np.int64)
        self._index.add_items(batch, labels, num_threads=os.cpu_count() or 1)
        self._added = need

    def finish(self, count: int) -> hnswlib.Index | None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        if self._error is not None or self._added != count or count < 1:
            return None
        if self._capacity != count:
            self._index.resize_index(count)
        index, self._index = self._index, None
        return index

    def abort(self) -> None:
        with self._cond:
            self._closed = True
            self._queue = []
            self._cond.notify_all()
        self._thread.join()
        self._index = None
