"""Executes a ``_search`` body against one index's point-in-time reader.

kNN queries go through :func:`~segstore.search.knn_query.knn_search`; filters (a ``knn.filter`` or the
clauses around a ``knn`` in a ``bool``) become per-segment accept masks. Other queries scan the live
documents' stored sources. Hits carry ``_source`` with vectors injected, then request filtering.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack
import numpy as np

from segstore.errors import IllegalArgumentError
from segstore.index.directory_reader import DirectoryReader
from segstore.index.segment_reader import SegmentReader
from segstore.index.settings import IndexSettings
from segstore.mapping.document_parser import _encode, _validate_one
from segstore.mapping.mappings import Mappings
from segstore.search.knn_query import knn_search
from segstore.search.query_dsl import ParsedQuery, Predicate, parse_query
from segstore.search.source_filter import SourceFilter, parse_source_param

__all__ = ["IndexSearcher", "SHARDS"]

SHARDS = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}


class IndexSearcher:
    """Search over one reader snapshot of one index."""

    def __init__(self, index: str, reader: DirectoryReader, mappings: Mappings, settings: IndexSettings) -> None:
        self.index = index
        self.reader = reader
        self.mappings = mappings
        self.settings = settings

    # -- query vector

    def query_vector(self, field: str, vector: Any) -> np.ndarray:
        fm = self.mappings.vector_fields[field]
        values = vector if isinstance(vector, list) else [vector]
        width = fm.dimension // 8 if fm.data_type == "binary" else fm.dimension
        if len(values) != width:
            given = len(values) * 8 if fm.data_type == "binary" else len(values)
            raise IllegalArgumentError(f"Query vector has invalid dimension: {given}. Dimension should be: "
                                       f"{fm.dimension}")
        return _encode(fm, _validate_one(fm, values))[0]  # type: ignore[no-any-return]

    # -- filters

    def _accept(self, pred: Predicate) -> Any:
        cache: dict[str, np.ndarray] = {}

        def accept(leaf: SegmentReader) -> np.ndarray:
            mask = cache.get(leaf.name)
            if mask is None:
                mask = np.zeros(leaf.max_doc, dtype=bool)
                for doc in range(leaf.max_doc):
                    if leaf.is_live(doc):
                        rec = leaf.stored_document(doc)
                        src = msgpack.unpackb(rec["_source"], raw=False) if "_source" in rec else {}
                        mask[doc] = pred(src, rec["_id"])
                cache[leaf.name] = mask
            return mask
        return accept

    # -- execution

    def hits(self, pq: ParsedQuery) -> tuple[int, list[tuple[float, int, int]]]:
        """(total, [(score, leaf, doc)]) for the query, best first (all matches for non-kNN queries)."""
        if pq.knn is not None:
            knn = pq.knn
            fm = self.mappings.vector_fields.get(knn.field)
            if fm is None:
                if knn.ignore_unmapped and knn.field not in self.mappings.leaf_types:
                    return 0, []
                if knn.field in self.mappings.leaf_types:
                    raise IllegalArgumentError(f"Field '{knn.field}' is not knn_vector type.")
                raise IllegalArgumentError(f"[knn] failed to find field [{knn.field}]: it is not mapped")
            if not fm.knn:
                raise IllegalArgumentError(f"Field '{knn.field}' is not built for ANN search.")
            q = self.query_vector(knn.field, knn.vector)
            preds = [p for p in (knn.filter, pq.predicate) if p is not None]
            accept = None
            if preds:
                accept = self._accept(preds[0] if len(preds) == 1 else
                                      (lambda s, i: all(p(s, i) for p in preds)))
            ef = knn.ef_search or fm.ef_search or self.settings.ef_search
            top = knn_search(self.reader, knn.field, q, knn.k, ef, accept)
            return top.total_hits, [(sd.score * knn.boost if knn.boost != 1.0 else sd.score, sd.leaf, sd.doc)
                                    for sd in top.score_docs]
        out = []
        for li, leaf in enumerate(self.reader.leaves):
            for doc in range(leaf.max_doc):
                if not leaf.is_live(doc):
                    continue
                if pq.predicate is not None:
                    rec = leaf.stored_document(doc)
                    src = msgpack.unpackb(rec["_source"], raw=False) if "_source" in rec else {}
                    if not pq.predicate(src, rec["_id"]):
                        continue
                out.append((1.0, li, doc))
        return len(out), out

    def hit_json(self, score: float | None, leaf_i: int, doc: int, sf: SourceFilter) -> dict[str, Any]:
        leaf = self.reader.leaves[leaf_i]
        rec = leaf.stored_document(doc)
        hit: dict[str, Any] = {"_index": self.index, "_id": rec["_id"], "_score": score}
        if sf.fetch:
            source = leaf.source(doc, rec)
            if source is not None:
                hit["_source"] = sf.apply(source)
        return hit

    def search(self, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        t0 = time.perf_counter()
        size = int(params.get("size", body.get("size", 10)))
        start = int(params.get("from", body.get("from", 0)))
        if size < 0:
            raise IllegalArgumentError(f"[size] parameter cannot be negative, found [{size}]")
        if start < 0:
            raise IllegalArgumentError(f"[from] parameter cannot be negative, found [{start}]")
        sf = parse_source_param(body.get("_source", params.get("_source")),
                                params.get("_source_includes"), params.get("_source_excludes"))
        total, found = self.hits(parse_query(body.get("query")))
        page = found[start:start + size]
        hits = [self.hit_json(s, li, d, sf) for s, li, d in page]
        max_score = max((h["_score"] for h in hits), default=None) if found else None
        return {"took": int((time.perf_counter() - t0) * 1000), "timed_out": False, "_shards": dict(SHARDS),
                "hits": {"total": {"value": total, "relation": "eq"}, "max_score": max_score, "hits": hits}}

    def count(self, body: dict[str, Any]) -> int:
        return self.hits(parse_query(body.get("query")))[0]
