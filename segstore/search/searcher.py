"""Executes a ``_search`` body against one index's point-in-time reader.

kNN queries are validated against the field mapping (vector-semantics.md §2.4, §6) and run through
:func:`~segstore.search.knn_query.knn_search` or :func:`~segstore.search.knn_query.radial_search`; filters
(a ``knn.filter`` and the clauses around a ``knn`` in a ``bool``) become per-segment masks computed from
doc values. Hits carry ``_source`` with vectors injected, then the request's filtering.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from segstore.errors import IllegalArgumentError, ValidationError
from segstore.index.directory_reader import DirectoryReader
from segstore.index.segment_reader import SegmentReader
from segstore.index.settings import IndexSettings
from segstore.mapping.document_parser import _encode, _validate_one
from segstore.mapping.mappings import Mappings
from segstore.floats import shortest_float32
from segstore.search.fetch_fields import fetch_fields
from segstore.search.hit_list import HitList
from segstore.search.inner_hits import InnerHitsContext
from segstore.search.knn_query import knn_search, radial_search
from segstore.search.nested_knn import nested_knn_search
from segstore.search.nested_quantized import nested_quantized_knn_search
from segstore.search.nested_query import NestedClause
from segstore.search.quantized import quantized_knn_search
from segstore.search.rescore import RescoreContext, resolve_rescore
from segstore.search.similarity import scores as exact_scores
from segstore.search.query_dsl import Filter, KnnClause, ParsedQuery, parse_query
from segstore.search.source_filter import SourceFilter

__all__ = ["IndexSearcher"]

Hit = tuple[float, int, int]  # (score, leaf index, doc)


class IndexSearcher:
    """Search over one reader snapshot of one index."""

    def __init__(self, index: str, reader: DirectoryReader, mappings: Mappings, settings: IndexSettings) -> None:
        self.index = index
        self.reader = reader
        self.mappings = mappings
        self.settings = settings
        self.inner_hits: InnerHitsContext | None = None  # set by a ``nested`` query with ``inner_hits``

    def parse(self, query: Any) -> ParsedQuery:
        return parse_query(query, set(self.mappings.doc_value_fields))

    def query_vector(self, field: str, vector: Any) -> np.ndarray:
        fm = self.mappings.vector_fields[field]
        dimension = fm.require_dimension()  # "Model ID '<id>' is not created." for an untrained model field
        values = vector if isinstance(vector, list) else [vector]
        width = dimension // 8 if fm.data_type == "binary" else dimension
        if len(values) != width:
            given = len(values) * 8 if fm.data_type == "binary" else len(values)
            raise IllegalArgumentError(f"Query vector has invalid dimension: {given}. Dimension should be: "
                                       f"{fm.dimension}")
        return _encode(fm, _validate_one(fm, values))[0]  # type: ignore[no-any-return]

    @staticmethod
    def _masker(filters: list[Filter]) -> Any:
        cache: dict[str, np.ndarray] = {}

        def accept(leaf: SegmentReader) -> np.ndarray:
            mask = cache.get(leaf.name)
            if mask is None:
                mask = filters[0].mask(leaf)
                for f in filters[1:]:
                    mask = mask & f.mask(leaf)
                cache[leaf.name] = mask
            return mask
        return accept

    def _nested_path_mapped(self, clause: NestedClause) -> bool:
        """``NestedQueryBuilder#doToQuery``'s checks of the path (False: unmapped and ``ignore_unmapped``)."""
        if clause.path in self.mappings.nested_paths:
            return True
        if clause.path in self.mappings.object_paths:
            raise ValidationError(f"[nested] nested object under path [{clause.path}] is not of nested type",
                                  "illegal_state_exception")
        if clause.ignore_unmapped:
            return False
        raise ValidationError(f"[nested] failed to find nested object under path [{clause.path}]",
                              "illegal_state_exception")

    def _knn(self, knn: KnnClause, outer: Filter | None) -> tuple[int, list[Hit]]:
        if knn.nested is not None and not self._nested_path_mapped(knn.nested):
            return 0, []
        fm = self.mappings.vector_fields.get(knn.field)
        if fm is None:
            if knn.field in self.mappings.leaf_types:
                raise IllegalArgumentError(f"Field '{knn.field}' is not knn_vector type.")
            if knn.ignore_unmapped:
                return 0, []
            raise IllegalArgumentError(f"Field '{knn.field}' is not knn_vector type.")
        if not fm.knn:
            raise IllegalArgumentError(f"Field '{knn.field}' is not built for ANN search.")
        fm.require_dimension()  # a model field whose model is not created has no engine/method yet
        assert fm.engine is not None and fm.method is not None
        scope = self.mappings.nested_scope(knn.field)
        if knn.nested is not None and scope != knn.nested.path:
            # the inner query is restricted to the path's children (NestedHelper#mightMatchNonNestedDocs): a
            # field of another scope matches none of them
            return 0, []
        if knn.expand_nested_docs and scope is None:
            raise IllegalArgumentError("Invalid value provided for the [expand_nested_docs] field. "
                                       "[expand_nested_docs] is only supported with a nested field.")
        radial = knn.max_distance is not None or knn.min_score is not None
        qtype = "max_distance" if knn.max_distance is not None else "min_score" if knn.min_score is not None else "k"
        if knn.method_parameters:
            allowed = {"hnsw": {"ef_search"}, "ivf": {"nprobes"}}.get(fm.method, set())
            if fm.engine == "lucene" and radial:
                allowed = set()
            bad = [p for p in knn.method_parameters if p not in allowed]
            if bad:
                msgs = "".join(f"{i + 1}: Unknown parameter '{p}' found;" for i, p in enumerate(bad))
                raise IllegalArgumentError(f"Parameters not valid for [{fm.engine.upper()}]:[{fm.method}]:[{qtype}] "
                                           f"combination: [Validation Failed: {msgs}]")
        q = self.query_vector(knn.field, knn.vector)
        filters = [f for f in (knn.filter, outer) if f is not None]
        accept = self._masker(filters) if filters else None
        if radial and fm.encoder is not None and fm.encoder.get("name") == "binary":
            raise IllegalArgumentError("Radial search is not supported for indices which have quantization enabled")
        if radial and scope is not None:
            raise IllegalArgumentError("segstore does not support radial search on fields inside nested objects")
        if radial:
            if fm.engine == "nmslib":
                raise IllegalArgumentError("Engine [NMSLIB] does not support radial search")
            if fm.data_type == "binary":
                raise IllegalArgumentError("Binary data type does not support radial search")
            if knn.min_score is not None and knn.min_score > 1 and fm.space_type != "innerproduct":
                raise IllegalArgumentError(f"[knn] requires score to be in the range [0, 1] for space type: "
                                           f"{fm.space_type}")
            if knn.max_distance is not None and knn.max_distance < 0 and fm.space_type != "innerproduct":
                raise IllegalArgumentError(f"[knn] requires distance to be non-negative for space type: "
                                           f"{fm.space_type}")
            top = radial_search(self.reader, knn.field, q, max_distance=knn.max_distance, min_score=knn.min_score,
                                ip_distance_sign=1.0 if fm.engine == "lucene" else -1.0, accept_docs=accept,
                                max_results=int(self.settings.get("index.max_result_window") or 10000))
        else:
            assert knn.k is not None
            if knn.filter is not None and fm.engine == "nmslib":
                raise IllegalArgumentError("Engine [NMSLIB] does not support filters")
            ef = knn.ef_search or fm.ef_search or self.settings.ef_search
            threshold = self.settings.get("index.knn.advanced.filtered_exact_search_threshold")
            threshold = int(threshold) if threshold is not None else None
            pre = self._masker([knn.filter]) if knn.filter is not None else None
            if scope is not None:
                return self._nested_knn(knn, fm, q, max(ef, knn.k), pre, outer)
            if fm.encoder is not None and fm.data_type == "float":
                ctx = self._rescore_context(knn, fm)
                top = quantized_knn_search(self.reader, knn.field, q, knn.k, max(ef, knn.k), ctx, pre, threshold)
            else:
                nprobes = (knn.nprobes or fm.nprobes) if fm.method == "ivf" else None
                top = knn_search(self.reader, knn.field, q, knn.k, max(ef, knn.k), pre, threshold,
                                 per_segment=fm.engine != "lucene", nprobes=nprobes)
            if outer is not None:
                # Clauses next to a knn query filter its results afterwards (post-filtering, as OpenSearch).
                post = self._masker([outer])
                kept = [sd for sd in top.score_docs if post(self.reader.leaves[sd.leaf])[sd.doc]]
                top = type(top)(len(kept), kept)
        if knn.boost != 1.0:  # OpenSearch multiplies two Java floats
            boosted = shortest_float32(np.asarray([sd.score for sd in top.score_docs], np.float32)
                                       * np.float32(knn.boost)).tolist()
            hits = [(b, sd.leaf, sd.doc) for b, sd in zip(boosted, top.score_docs)]
        else:
            hits = [(sd.score, sd.leaf, sd.doc) for sd in top.score_docs]
        return top.total_hits, hits

    def _rescore_context(self, knn: KnnClause, fm: Any) -> RescoreContext | None:
        return resolve_rescore(
            knn.rescore, mode_typed=fm.mode if fm.user_mode else None, compression=fm.compression_level,
            dimension=int(fm.dimension or 0),
            shard_level_rescoring_disabled=str(self.settings.get(
                "index.knn.disk.vector.shard_level_rescoring_disabled")).lower() == "true")

    def _nested_knn(self, knn: KnnClause, fm: Any, q: np.ndarray, ef: int, pre: Any,
                    outer: Filter | None) -> tuple[int, list[Hit]]:
        """A knn query on a field inside nested objects (:mod:`segstore.search.nested_knn`). Without a
        ``nested`` wrapper (a segstore extension: OpenSearch matches no root then), roots take their best
        child's score and there are no inner hits."""
        assert knn.k is not None
        clause = knn.nested
        mode = clause.score_mode if clause is not None else "max"
        expand = bool(knn.expand_nested_docs)
        boosts = {"child_boost": knn.boost, "parent_boost": clause.boost if clause is not None else 1.0}
        if fm.encoder is not None and fm.data_type == "float":
            # Lucene skips rescoring when it expands nested docs (vector-semantics.md §3.4)
            ctx = None if expand and fm.engine == "lucene" else self._rescore_context(knn, fm)
            top = nested_quantized_knn_search(self.reader, knn.field, q, knn.k, ef, ctx, pre, expand=expand,
                                              score_mode=mode, **boosts)
        else:
            top = nested_knn_search(self.reader, knn.field, q, knn.k, ef, pre, per_segment=fm.engine != "lucene",
                                    expand=expand, score_mode=mode,
                                    nprobes=(knn.nprobes or fm.nprobes) if fm.method == "ivf" else None, **boosts)
        docs = top.score_docs
        total = top.total_hits
        if outer is not None:  # clauses next to the query filter its roots afterwards, as for flat fields
            post = self._masker([outer])
            docs = [sd for sd in docs if post(self.reader.leaves[sd.leaf])[sd.doc]]
            total = len(docs)
        if clause is not None and clause.inner_hits is not None:
            self.inner_hits = InnerHitsContext(clause.inner_hits, clause.path, top.children, self.mappings)
        return total, [(sd.score, sd.leaf, sd.doc) for sd in docs]

    def _script_score(self, sc: Any) -> tuple[int, list[Hit]]:
        """Exact ``knn_score`` over the inner query's live hits (the way to search a flat field).

        Script scores follow the k-NN plugin's script rules (vector-semantics.md §2.1): ``hammingbit`` is
        1/(1+h) over packed bits; the other spaces score as the query does."""
        fm = self.mappings.vector_fields.get(sc.field)
        if fm is None:
            raise IllegalArgumentError(f"Field '{sc.field}' is not knn_vector type.")
        space = {"hammingbit": "hamming"}.get(sc.space_type, sc.space_type)
        if space not in ("l2", "cosinesimil", "innerproduct", "l1", "linf", "hamming"):
            raise IllegalArgumentError("Invalid space type. Please refer to the available space types.")
        q = self.query_vector(sc.field, sc.query_value)
        scores, leaves, docs = [], [], []
        for li, leaf in enumerate(self.reader.leaves):
            values = leaf.vector_values(sc.field)
            if values is None or values.size == 0:
                continue
            mask = sc.inner.mask(leaf) if sc.inner is not None else np.ones(leaf.max_doc, dtype=bool)
            if leaf.live is not None:
                mask = mask & leaf.live
            ords = np.flatnonzero(mask[values.ord_to_doc])
            scores.append(shortest_float32(exact_scores(space, values.vectors[ords], q)))
            docs.append(values.ord_to_doc[ords].astype(np.int64))
            leaves.append(np.full(ords.shape[0], li, dtype=np.int64))
        if not docs:
            return 0, []
        s, leaf_arr, doc_arr = np.concatenate(scores), np.concatenate(leaves), np.concatenate(docs)
        # every scored document is a hit: arrays in (score desc, global doc asc) order, no tuple per document
        order = np.lexsort((self.reader.doc_bases[leaf_arr] + doc_arr, -s))
        return int(s.shape[0]), HitList(s[order], leaf_arr[order], doc_arr[order])

    def hits(self, pq: ParsedQuery) -> tuple[int, Sequence[Hit]]:
        """(total, [(score, leaf, doc)]) for the query, best first (all matches for non-kNN queries). A
        ``nested`` query with ``inner_hits`` leaves them in :attr:`inner_hits` for :meth:`hit_json`."""
        self.inner_hits = None
        if pq.script is not None:
            return self._script_score(pq.script)
        if pq.knn is not None:
            return self._knn(pq.knn, pq.filter)
        leaves, docs = [], []
        for li, leaf in enumerate(self.reader.leaves):
            mask = pq.filter.mask(leaf) if pq.filter is not None else np.ones(leaf.max_doc, dtype=bool)
            if leaf.live is not None:
                mask = mask & leaf.live
            roots = leaf.root_mask()
            if roots is not None:  # nested children are never hits themselves
                mask = mask & roots
            found = np.flatnonzero(mask)
            docs.append(found)
            leaves.append(np.full(found.shape[0], li, dtype=np.int64))
        doc_arr = np.concatenate(docs) if docs else np.zeros(0, dtype=np.int64)
        leaf_arr = np.concatenate(leaves) if leaves else np.zeros(0, dtype=np.int64)
        # every match of a filter query scores the same: arrays, not a tuple per matching document
        return int(doc_arr.shape[0]), HitList(np.full(doc_arr.shape[0], pq.score, dtype=np.float64), leaf_arr,
                                              doc_arr.astype(np.int64, copy=False))

    def hit_json(self, score: float | None, leaf_i: int, doc: int, sf: SourceFilter,
                 fields: list[str] | None = None) -> dict[str, Any]:
        """One hit in ``SearchHit``'s order: meta fields, ``_source``, ``fields``, ``inner_hits``."""
        leaf = self.reader.leaves[leaf_i]
        rec = leaf.stored_document(doc)
        hit: dict[str, Any] = {"_index": self.index, "_id": rec["_id"], "_score": score}
        if "_routing" in rec:  # a meta field, rendered after the score (SearchHit#toInnerXContent)
            hit["_routing"] = rec["_routing"]
        inner = self.inner_hits
        source = None
        if sf.fetch or fields or (inner is not None and inner.needs_source()):
            source = leaf.source(doc, rec)  # vectors injected once, for the hit and its inner hits
        if sf.fetch and source is not None:
            hit["_source"] = sf.apply(source)
        if fields and (found := fetch_fields(source, fields, self.mappings)):
            hit["fields"] = found
        if inner is not None:
            hit["inner_hits"] = inner.render(self.index, leaf, leaf_i, doc, rec["_id"], source)
        return hit
