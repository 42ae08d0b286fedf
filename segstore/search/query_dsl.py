"""The query DSL subset segstore executes: ``knn`` plus filters evaluated on ``_source``.

Supported: ``match_all``, ``match_none``, ``knn``, ``ids``, ``term``, ``terms``, ``match`` (every analysed
token must be present, case-insensitive), ``range``, ``exists``, ``bool`` (``must``/``filter``/``should``/
``must_not``, ``minimum_should_match``). Non-kNN clauses are boolean filters with constant score 1.0; they
are evaluated against each live document's stored ``_source`` (masked vectors never matter to them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from segstore.errors import IllegalArgumentError, ValidationError

__all__ = ["ParsedQuery", "KnnClause", "parse_query", "get_path"]

Predicate = Callable[[dict[str, Any], str], bool]  # (source, doc id) -> matches
_TOKEN = re.compile(r"\w+", re.UNICODE)


class ParsingError(ValidationError):
    error_type = "parsing_exception"


@dataclass
class KnnClause:
    field: str
    vector: Any
    k: int
    ef_search: int | None
    filter: Predicate | None
    boost: float
    name: str | None
    ignore_unmapped: bool


@dataclass
class ParsedQuery:
    """``knn`` is set for a kNN query; ``predicate`` (None = match all) filters every other query."""

    knn: KnnClause | None
    predicate: Predicate | None
    match_none: bool = False


def get_path(source: Any, path: str) -> list[Any]:
    """All values at a dotted path (arrays flattened), like a field's values."""
    nodes = [source]
    for part in path.split("."):
        nxt: list[Any] = []
        for n in nodes:
            if isinstance(n, dict) and part in n:
                v = n[part]
                nxt.extend(v if isinstance(v, list) else [v])
            elif isinstance(n, list):
                for el in n:
                    if isinstance(el, dict) and part in el:
                        v = el[part]
                        nxt.extend(v if isinstance(v, list) else [v])
        nodes = nxt
    flat: list[Any] = []
    for n in nodes:
        flat.extend(n if isinstance(n, list) else [n])
    return [v for v in flat if v is not None]


def _single(spec: Any, qname: str) -> tuple[str, Any]:
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ParsingError(f"[{qname}] query doesn't support multiple fields, found {list(spec)}"
                           if isinstance(spec, Mapping) else f"[{qname}] query malformed, no start_object after query name")
    return next(iter(spec.items()))


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or str(a).lower() == str(b).lower()
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return str(a) == str(b)


def _compile(q: Any) -> tuple[Predicate | None, KnnClause | None]:
    if not isinstance(q, Mapping) or len(q) != 1:
        raise ParsingError("query malformed, must start with start_object" if not isinstance(q, Mapping)
                           else f"[_na] query malformed, expected a single query but found {list(q)}")
    kind, spec = next(iter(q.items()))
    if kind == "match_all":
        return None, None
    if kind == "match_none":
        return (lambda s, i: False), None
    if kind == "knn":
        return None, _parse_knn(spec)
    if kind == "ids":
        values = {str(v) for v in (spec or {}).get("values", [])}
        return (lambda s, i: i in values), None
    if kind in ("term", "terms"):
        field, value = _single({k: v for k, v in spec.items() if k != "boost"}, kind)
        if kind == "term" and isinstance(value, Mapping):
            value = value.get("value")
        wanted = value if kind == "terms" else [value]
        if not isinstance(wanted, list):
            raise ParsingError(f"[terms] query does not support [{field}]")
        f = field[:-8] if field.endswith(".keyword") else field
        return (lambda s, i: any(_eq(v, w) for v in get_path(s, f) for w in wanted)), None
    if kind == "match":
        field, value = _single(spec, kind)
        if isinstance(value, Mapping):
            value = value.get("query")
        tokens = {t.lower() for t in _TOKEN.findall(str(value))}
        f = field[:-8] if field.endswith(".keyword") else field

        def match(s: dict[str, Any], i: str) -> bool:
            have = {t.lower() for v in get_path(s, f) for t in _TOKEN.findall(str(v))}
            return bool(tokens) and bool(tokens & have)
        return match, None
    if kind == "exists":
        f = (spec or {}).get("field")
        return (lambda s, i: bool(get_path(s, f))), None
    if kind == "range":
        field, bounds = _single(spec, kind)
        ops = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b,
               "lte": lambda a, b: a <= b}
        checks = [(ops[k], v) for k, v in bounds.items() if k in ops]

        def in_range(s: dict[str, Any], i: str) -> bool:
            for v in get_path(s, field):
                try:
                    if all(op(v, b) for op, b in checks):
                        return True
                except TypeError:
                    continue
            return False
        return in_range, None
    if kind == "bool":
        return _compile_bool(spec)
    raise ParsingError(f"unknown query [{kind}]")


def _compile_bool(spec: Mapping[str, Any]) -> tuple[Predicate | None, KnnClause | None]:
    def clauses(key: str) -> list[Any]:
        v = spec.get(key, [])
        return v if isinstance(v, list) else [v]

    knn = None
    must: list[Predicate] = []
    for c in clauses("must") + clauses("filter"):
        p, k = _compile(c)
        if k is not None:
            if knn is not None:
                raise IllegalArgumentError("only one knn clause per query is supported")
            knn = k
        elif p is not None:
            must.append(p)
    should = [p for p, _ in map(_compile, clauses("should"))]
    must_not = [p for p, _ in map(_compile, clauses("must_not"))]
    msm = int(spec.get("minimum_should_match", 1 if should and not must and knn is None else 0))

    def pred(s: dict[str, Any], i: str) -> bool:
        if not all(p(s, i) for p in must):
            return False
        if any(p is None or p(s, i) for p in must_not):
            return False
        return msm <= 0 or sum(1 for p in should if p is None or p(s, i)) >= msm
    return pred, knn


def _parse_knn(spec: Any) -> KnnClause:
    if not isinstance(spec, Mapping) or not spec:
        raise ParsingError("[knn] malformed query, expected a field name")
    if len(spec) > 1:
        a, b = list(spec)[:2]
        raise ParsingError(f"[knn] query doesn't support multiple fields, found [{a}] and [{b}]")
    field, body = next(iter(spec.items()))
    if not isinstance(body, Mapping):
        body = {"vector": body}
    vector = body.get("vector")
    if not vector:
        raise IllegalArgumentError("[knn] field 'vector' requires to be non-null and non-empty")
    given = [key for key in ("k", "max_distance", "min_score") if body.get(key) is not None]
    if len(given) != 1:
        raise IllegalArgumentError("[knn] requires exactly one of k, distance or score to be set")
    if given[0] != "k":
        raise IllegalArgumentError(f"[knn] radial search ({given[0]}) is not supported by this segstore version")
    k = body["k"]
    if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= 10000:
        raise IllegalArgumentError("[knn] requires k to be in the range (0, 10000]")
    params = body.get("method_parameters")
    ef = None
    if params is not None:
        if not params:
            raise IllegalArgumentError("method_parameters cannot be empty")
        for name, value in params.items():
            if name not in ("ef_search", "nprobes"):
                raise IllegalArgumentError(f"[knn] unknown method parameter found [{name}]")
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise IllegalArgumentError(f"{name} should be greater than 0")
        ef = params.get("ef_search")
    filt = None
    if body.get("filter") is not None:
        filt, inner = _compile(body["filter"])
        if inner is not None:
            raise IllegalArgumentError("[knn] filter cannot contain a knn query")
    return KnnClause(str(field), vector, k, ef, filt, float(body.get("boost", 1.0)), body.get("_name"),
                     bool(body.get("ignore_unmapped", False)))


def parse_query(query: Any) -> ParsedQuery:
    if query is None:
        return ParsedQuery(None, None)
    pred, knn = _compile(query)
    return ParsedQuery(knn, pred)
