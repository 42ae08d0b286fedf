"""``BufferedGraphs``: graphs that grow beside one generation of the writer's RAM buffer.

Lucene builds a segment's HNSW graph while its documents are indexed, not at flush. segstore does the same
for fields whose graph format offers an :class:`~segstore.codec.base.IncrementalGraphBuilder`: every vector
that enters the buffer is handed, one batch per bulk, to the field's builder, which inserts it on a
background thread while the writer goes on parsing and logging. At refresh the flush takes the grown graph
instead of building one.

The graph's ordinals must be the flushed segment's: the order in which the field's vectors enter the buffer.
That order only breaks when a buffered document is replaced or deleted (its vector would stay in the graph);
the field then stops growing a graph for this generation and the flush builds it as before. A builder starts
once a field has ``min_vectors`` buffered vectors (smaller segments are searched exactly, or their graph is
cheap to build at flush), catching up on the vectors buffered before.

Every method but :meth:`take` and :meth:`close` runs under the writer's lock; the flush calls those two
after the generation is detached from the writer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from segstore.codec.base import Codec, IncrementalGraphBuilder
from segstore.index.field_infos import FieldInfo
from segstore.index.operations import BufferedDoc
from segstore.mapping.mappings import Mappings

__all__ = ["MIN_INCREMENTAL_VECTORS", "BufferedGraphs"]

log = logging.getLogger(__name__)

MIN_INCREMENTAL_VECTORS = 1000  # below this many buffered vectors a field's graph is left to the flush


class BufferedGraphs:
    """The incremental graph builders of one buffer generation."""

    def __init__(self, codec: Codec, mappings: Callable[[], Mappings],
                 field_info: Callable[[Mappings, str], FieldInfo], min_vectors: int = MIN_INCREMENTAL_VECTORS) -> None:
        self._codec = codec
        self._mappings = mappings
        self._field_info = field_info
        self._min_vectors = max(1, min_vectors)
        # per field, the vector dicts of the documents buffered since the last submit (rows not yet given
        # to a builder), and the batches already given (in order: together, the segment's rows)
        self._pending: dict[str, list[dict[str, np.ndarray]]] = {}
        self._batches: dict[str, list[np.ndarray]] = {}
        self._builders: dict[str, IncrementalGraphBuilder] = {}
        self._off: set[str] = set()  # fields built at flush in this generation (ineligible or order broken)

    def buffered(self, doc: BufferedDoc) -> None:
        """``doc`` was appended to the buffer (its top-level vectors take the next ordinals)."""
        for path in doc.vectors:
            if path not in self._off:
                pending = self._pending.get(path)
                if pending is None:
                    pending = self._pending[path] = []
                pending.append(doc.vectors)

    def removed(self, doc: BufferedDoc) -> None:
        """``doc`` left the buffer (replaced or deleted): its fields' ordinals no longer follow arrival."""
        for path in doc.vectors:
            self._turn_off(path)

    def submit(self) -> None:
        """Hand the rows buffered since the last call to the builders (once per bulk: one batch each)."""
        for path, dicts in list(self._pending.items()):
            if not dicts:
                continue
            builder = self._builders.get(path)
            if builder is None:  # until a builder starts, the pending rows are all of the field's rows
                if len(dicts) < self._min_vectors:
                    continue  # keep accumulating references; nothing is copied yet
                builder = self._start(path)
                if builder is None:
                    continue
            self._pending[path] = []
            batch = self._stack(path, dicts)
            try:
                builder.add(batch)
            except Exception as e:  # noqa: BLE001 - a builder may cost time, never a write
                log.warning("incremental graph of [%s] dropped: %r", path, e)
                self._turn_off(path)

    def _stack(self, path: str, dicts: list[dict[str, np.ndarray]]) -> np.ndarray:
        """One array of the rows of ``dicts``; each document's row becomes a view into it, so the batch
        replaces (rather than doubles) the parser's arrays, and the flush reuses it as the segment's rows."""
        batch = np.stack([d[path] for d in dicts])
        for k, d in enumerate(dicts):
            d[path] = batch[k]
        self._batches.setdefault(path, []).append(batch)
        return batch

    def rows(self, path: str) -> np.ndarray | None:
        """All buffered rows of ``path`` in ordinal order, while its graph grows (None otherwise): the flush
        takes them instead of stacking one row per document again."""
        if path not in self._builders:
            return None
        dicts = self._pending.pop(path, None)
        if dicts:  # buffered after the last submit (e.g. by translog replay)
            self._builders[path].add(self._stack(path, dicts))
        batches = self._batches.get(path) or []
        return batches[0] if len(batches) == 1 else np.concatenate(batches) if batches else None

    def _start(self, path: str) -> IncrementalGraphBuilder | None:
        mappings = self._mappings()
        fm = mappings.vector_fields.get(path)
        builder = None
        if fm is not None and fm.knn and mappings.nested_scope(path) is None:
            try:
                builder = self._codec.graph_format.incremental_builder(self._field_info(mappings, path))
            except Exception as e:  # noqa: BLE001 - e.g. a model field without a model: the flush decides
                log.debug("no incremental graph for [%s]: %r", path, e)
        if builder is None:
            self._turn_off(path)
            return None
        self._builders[path] = builder
        return builder

    def _turn_off(self, path: str) -> None:
        self._off.add(path)
        self._pending.pop(path, None)
        self._batches.pop(path, None)
        builder = self._builders.pop(path, None)
        if builder is not None:
            builder.abort()

    def take(self, field: FieldInfo, count: int) -> object | None:
        """The graph grown for ``field`` if it holds exactly the flushed segment's ``count`` vectors, else
        None (the flush builds it). Each builder is handed out at most once."""
        builder = self._builders.pop(field.name, None)
        self._batches.pop(field.name, None)
        if builder is None:
            return None
        dicts = self._pending.pop(field.name, None)
        if dicts:  # buffered after the last submit (e.g. by translog replay)
            builder.add(np.stack([d[field.name] for d in dicts]))
        return builder.finish(count)

    def close(self) -> None:
        """Abort every builder not taken (idempotent)."""
        for path in list(self._builders):
            self._turn_off(path)
        self._pending.clear()
        self._batches.clear()

    @property
    def growing(self) -> list[str]:
        """Fields with a running builder (for stats and tests)."""
        return sorted(self._builders)
