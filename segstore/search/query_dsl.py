"""The query DSL subset segstore executes: ``knn`` plus filters.

Supported: ``match_all``, ``match_none``, ``knn``, ``ids``, ``term``, ``terms``, ``match`` (any analysed
token present, case-insensitive), ``range``, ``exists``, ``bool`` (``must``/``filter``/``should``/``must_not``,
``minimum_should_match``), and ``nested`` around a ``knn`` query on a field of that nested path (with
``score_mode`` and ``inner_hits``: :mod:`segstore.search.nested_query`). Every clause compiles to a
:class:`Filter` that yields a boolean mask over a segment's doc ids. ``term``/``terms``/``range``/``exists`` on
keyword, numeric, date and boolean fields use the segment's doc values (numpy, no per-document work); other
clauses (``ids``, ``match`` on text) read the stored ``_source`` of each live document. Non-kNN queries score
1.0 (0.0 for a ``bool`` made only of filters); segstore has no BM25.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack
import numpy as np

from segstore.errors import IllegalArgumentError, ValidationError
from segstore.search.nested_query import NestedClause, parse_nested

if TYPE_CHECKING:
    from segstore.index.segment_reader import SegmentReader

__all__ = ["ParsedQuery", "KnnClause", "NestedClause", "Filter", "parse_query", "get_path", "ParsingError"]

_TOKEN = re.compile(r"\w+", re.UNICODE)


class ParsingError(ValidationError):
    error_type = "parsing_exception"


def get_path(source: Any, path: str) -> list[Any]:
    """All non-null values at a dotted path (arrays flattened), like a field's values."""
    nodes = [source]
    for part in path.split("."):
        nxt: list[Any] = []
        for n in nodes:
            for el in (n if isinstance(n, list) else [n]):
                if isinstance(el, dict) and part in el:
                    v = el[part]
                    nxt.extend(v if isinstance(v, list) else [v])
        nodes = nxt
    flat: list[Any] = []
    for n in nodes:
        flat.extend(n if isinstance(n, list) else [n])
    return [v for v in flat if v is not None]


class Filter(ABC):
    """A compiled clause: ``mask(leaf)`` is a bool array over the leaf's doc ids (deletions ignored)."""

    @abstractmethod
    def mask(self, leaf: "SegmentReader") -> np.ndarray: ...


class MatchAll(Filter):
    def mask(self, leaf: "SegmentReader") -> np.ndarray:
        return np.ones(leaf.max_doc, dtype=bool)


class MatchNone(Filter):
    def mask(self, leaf: "SegmentReader") -> np.ndarray:
        return np.zeros(leaf.max_doc, dtype=bool)


class SourceFilter(Filter):
    """Evaluates ``pred(source, doc_id)`` on each live document's stored ``_source``."""

    def __init__(self, pred: Callable[[dict[str, Any], str], bool]) -> None:
        self.pred = pred

    def mask(self, leaf: "SegmentReader") -> np.ndarray:
        out = np.zeros(leaf.max_doc, dtype=bool)
        docs = range(leaf.max_doc) if leaf.live is None else np.flatnonzero(leaf.live).tolist()
        for doc, raw in zip(docs, leaf.core.stored.raw_documents(list(docs))):
            rec = msgpack.unpackb(raw, raw=False)
            if "_id" not in rec:
                continue  # a nested child: filters select root documents
            src = msgpack.unpackb(rec["_source"], raw=False) if "_source" in rec else {}
            out[doc] = self.pred(src, rec["_id"])
        return out


class DocValuesFilter(Filter):
    """``term``/``terms``/``range``/``exists`` over doc values, with a ``_source`` fallback for fields
    that have none (text fields, unmapped fields)."""

    def __init__(self, field: str, op: str, arg: Any, fallback: Callable[[dict[str, Any], str], bool],
                 has_doc_values: bool) -> None:
        self.field, self.op, self.arg = field, op, arg
        self.fallback = SourceFilter(fallback)
        self.has_doc_values = has_doc_values  # the mapping gives the field doc values

    def mask(self, leaf: "SegmentReader") -> np.ndarray:
        fi = leaf.field_infos.get(self.field)
        if fi is None or fi.attributes.get("doc_values") is None:
            if self.has_doc_values:  # no document of this segment has the field
                return np.zeros(leaf.max_doc, dtype=bool)
            return self.fallback.mask(leaf)
        dv = leaf.core.doc_values.get(self.field)
        if dv is None:
            return np.zeros(leaf.max_doc, dtype=bool)
        if self.op == "terms":
            wanted = self.arg
            if fi.attributes.get("type") in ("date", "date_nanos"):
                from segstore.mapping.dynamic import _to_epoch_millis  # noqa: PLC0415

                wanted = [_to_epoch_millis(w) for w in wanted]
            return dv.term_mask(leaf.max_doc, wanted)  # type: ignore[no-any-return]
        if self.op == "range":
            bounds = self.arg
            if fi.attributes.get("type") in ("date", "date_nanos"):
                from segstore.mapping.dynamic import _to_epoch_millis  # noqa: PLC0415

                bounds = {k: _to_epoch_millis(v) for k, v in bounds.items()}
            return dv.range_mask(leaf.max_doc, bounds)  # type: ignore[no-any-return]
        return dv.exists_mask(leaf.max_doc)  # type: ignore[no-any-return]


class BoolFilter(Filter):
    def __init__(self, must: list[Filter], should: list[Filter], must_not: list[Filter], msm: int) -> None:
        self.must, self.should, self.must_not, self.msm = must, should, must_not, msm

    def mask(self, leaf: "SegmentReader") -> np.ndarray:
        out = np.ones(leaf.max_doc, dtype=bool)
        for f in self.must:
            out &= f.mask(leaf)
        for f in self.must_not:
            out &= ~f.mask(leaf)
        if self.msm > 0 and self.should:
            hits = np.zeros(leaf.max_doc, dtype=np.int32)
            for f in self.should:
                hits += f.mask(leaf)
            out &= hits >= self.msm
        return out


@dataclass
class KnnClause:
    field: str
    vector: Any
    k: int | None
    max_distance: float | None
    min_score: float | None
    ef_search: int | None
    nprobes: int | None
    filter: Filter | None
    boost: float
    name: str | None
    ignore_unmapped: bool
    method_parameters: dict[str, Any] | None
    rescore: Any = None
    expand_nested_docs: bool | None = None
    nested: NestedClause | None = None  # set when the knn query sits inside a ``nested`` query


@dataclass
class ScriptScoreClause:
    """``script_score`` with the k-NN plugin's ``knn_score`` script: exact scoring of the inner query's hits."""

    field: str
    query_value: Any
    space_type: str
    inner: Filter | None


@dataclass
class ParsedQuery:
    """``knn`` is set for a kNN query; ``filter`` (None = everything) restricts the documents;
    ``script`` is set for a ``script_score`` query."""

    knn: KnnClause | None
    filter: Filter | None
    score: float = 1.0
    script: ScriptScoreClause | None = None


def _single(spec: Any, qname: str) -> tuple[str, Any]:
    if not isinstance(spec, Mapping):
        raise ParsingError(f"[{qname}] query malformed, no start_object after query name")
    fields = [k for k in spec if k not in ("boost", "_name")]
    if len(fields) != 1:
        raise ParsingError(f"[{qname}] query doesn't support multiple fields, found [{fields[0]}] and "
                           f"[{fields[1]}]" if len(fields) > 1 else f"[{qname}] query malformed, no field")
    return fields[0], spec[fields[0]]


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return str(a).lower() == str(b).lower()
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return str(a) == str(b)


def _compile(q: Any, dv: frozenset[str]) -> tuple[Filter | None, KnnClause | None]:
    if not isinstance(q, Mapping) or len(q) != 1:
        raise ParsingError("query malformed, must start with start_object" if not isinstance(q, Mapping)
                           else f"[_na] query malformed, expected a single query but found {list(q)}")
    kind, spec = next(iter(q.items()))
    if kind == "match_all":
        return None, None
    if kind == "match_none":
        return MatchNone(), None
    if kind == "knn":
        return None, _parse_knn(spec, dv)
    if kind == "ids":
        values = {str(v) for v in (spec or {}).get("values", [])}
        return SourceFilter(lambda s, i: i in values), None
    if kind in ("term", "terms"):
        field, value = _single(spec, kind)
        if kind == "term" and isinstance(value, Mapping):
            value = value.get("value")
        wanted = value if kind == "terms" else [value]
        if not isinstance(wanted, list):
            raise ParsingError(f"[terms] query does not support [{field}]")
        return DocValuesFilter(field, "terms", wanted,
                               lambda s, i: any(_eq(v, w) for v in get_path(s, field) for w in wanted),
                               field in dv), None
    if kind == "match":
        field, value = _single(spec, kind)
        if isinstance(value, Mapping):
            value = value.get("query")
        tokens = {t.lower() for t in _TOKEN.findall(str(value))}
        src = field[: -len(".keyword")] if field.endswith(".keyword") else field

        def match(s: dict[str, Any], i: str) -> bool:
            return bool(tokens & {t.lower() for v in get_path(s, src) for t in _TOKEN.findall(str(v))})
        return SourceFilter(match), None
    if kind == "exists":
        field = (spec or {}).get("field")
        if not field:
            raise ParsingError("[exists] must be provided with a [field]")
        return DocValuesFilter(field, "exists", None, lambda s, i: bool(get_path(s, field)), field in dv), None
    if kind == "range":
        field, bounds = _single(spec, kind)
        ops = {k: v for k, v in bounds.items() if k in ("gt", "gte", "lt", "lte") and v is not None}
        cmp = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b,
               "lte": lambda a, b: a <= b}

        def in_range(s: dict[str, Any], i: str) -> bool:
            for v in get_path(s, field):
                try:
                    if all(cmp[op](v, b) for op, b in ops.items()):
                        return True
                except TypeError:
                    continue
            return False
        return DocValuesFilter(field, "range", ops, in_range, field in dv), None
    if kind == "bool":
        return _compile_bool(spec, dv)
    if kind == "nested":
        return None, parse_nested(spec, lambda inner: _compile(inner, dv))
    raise ParsingError(f"unknown query [{kind}]")


def _compile_bool(spec: Mapping[str, Any], dv: frozenset[str]) -> tuple[Filter | None, KnnClause | None]:
    def clauses(key: str) -> list[Any]:
        v = spec.get(key, [])
        return v if isinstance(v, list) else [v]

    knn = None
    must: list[Filter] = []
    for c in clauses("must") + clauses("filter"):
        f, k = _compile(c, dv)
        if k is not None:
            if knn is not None:
                raise IllegalArgumentError("segstore supports one knn clause per query")
            knn = k
        elif f is not None:
            must.append(f)
    should = [_compile(c, dv)[0] or MatchAll() for c in clauses("should")]
    must_not = [_compile(c, dv)[0] or MatchAll() for c in clauses("must_not")]
    default_msm = 1 if should and not clauses("must") and not clauses("filter") else 0
    msm = int(spec.get("minimum_should_match", default_msm))
    if not must and not should and not must_not:
        return None, knn
    return BoolFilter(must, should, must_not, msm), knn


def _parse_knn(spec: Any, dv: frozenset[str]) -> KnnClause:
    if not isinstance(spec, Mapping) or not spec:
        raise ParsingError("[knn] malformed query, expected a field name")
    if len(spec) > 1:
        a, b = list(spec)[:2]
        raise ParsingError(f"[knn] query doesn't support multiple fields, found [{a}] and [{b}]")
    field, body = next(iter(spec.items()))
    if not isinstance(body, Mapping):
        body = {"vector": body}
    vector = body.get("vector")
    if vector is None or (isinstance(vector, list) and not vector):
        raise IllegalArgumentError("[knn] field 'vector' requires to be non-null and non-empty")
    given = [key for key in ("k", "max_distance", "min_score") if body.get(key) is not None]
    if len(given) != 1:
        raise IllegalArgumentError("[knn] requires exactly one of k, distance or score to be set")
    k = body.get("k")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= 10000):
        raise IllegalArgumentError("[knn] requires k to be in the range (0, 10000]")
    min_score = body.get("min_score")
    if min_score is not None and float(min_score) <= 0:
        raise IllegalArgumentError("[knn] requires minScore to be greater than 0")
    if (body.get("max_distance") is not None or min_score is not None) and body.get("rescore") is not None:
        raise IllegalArgumentError("[knn] rescore cannot be used with max_distance or min_score")
    rescore = body.get("rescore")
    if isinstance(rescore, Mapping) and "oversample_factor" in rescore:
        from segstore.search.rescore import resolve_rescore  # noqa: PLC0415 - validation happens at parse time

        resolve_rescore(dict(rescore), mode_typed=None, compression=None, dimension=0)
    params = body.get("method_parameters")
    if params is not None:
        if not isinstance(params, Mapping) or not params:
            raise IllegalArgumentError("method_parameters cannot be empty")
        for name, value in params.items():
            if name not in ("ef_search", "nprobes"):
                raise IllegalArgumentError(f"[knn] unknown method parameter found [{name}]")
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise IllegalArgumentError(f"{name} should be greater than 0")
    filt = None
    if body.get("filter") is not None:
        filt, inner = _compile(body["filter"], dv)
        if inner is not None:
            raise IllegalArgumentError("[knn] filter cannot contain a knn query")
        filt = filt or MatchAll()
    return KnnClause(
        str(field), vector, k,
        None if body.get("max_distance") is None else float(body["max_distance"]),
        None if min_score is None else float(min_score),
        (params or {}).get("ef_search"), (params or {}).get("nprobes"), filt, float(body.get("boost", 1.0)),
        body.get("_name"), bool(body.get("ignore_unmapped", False)), dict(params) if params else None,
        body.get("rescore"), body.get("expand_nested_docs"),
    )


def parse_query(query: Any, doc_value_fields: frozenset[str] | set[str] = frozenset()) -> ParsedQuery:
    """Compile a query; ``doc_value_fields`` are the mapping's fields that have doc values."""
    if query is None:
        return ParsedQuery(None, None)
    if isinstance(query, Mapping) and len(query) == 1 and "script_score" in query:
        return _parse_script_score(query["script_score"], frozenset(doc_value_fields))
    f, knn = _compile(query, frozenset(doc_value_fields))
    only_filters = isinstance(query, Mapping) and "bool" in query and not (query["bool"] or {}).get("must") \
        and not (query["bool"] or {}).get("should")
    return ParsedQuery(knn, f, 0.0 if only_filters and knn is None else 1.0)


def _parse_script_score(spec: Any, dv: frozenset[str]) -> ParsedQuery:
    if not isinstance(spec, Mapping) or "script" not in spec:
        raise ParsingError("[script_score] requires a [script]")
    script = spec["script"] or {}
    if script.get("source") != "knn_score" or script.get("lang") != "knn":
        raise IllegalArgumentError("segstore supports only the k-NN scoring script: "
                                   '{"source": "knn_score", "lang": "knn"}')
    params = script.get("params") or {}
    for key in ("field", "query_value", "space_type"):
        if key not in params:
            raise IllegalArgumentError(f"Missing parameter [{key}]")
    inner, knn = _compile(spec.get("query", {"match_all": {}}), dv)
    if knn is not None:
        raise IllegalArgumentError("[script_score] query cannot wrap a knn query in segstore")
    return ParsedQuery(None, inner, 1.0,
                       ScriptScoreClause(str(params["field"]), params["query_value"], str(params["space_type"]), inner))
