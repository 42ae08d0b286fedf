"""The ``nested`` query, as segstore runs it: around one ``knn`` query on a field of the nested path.

Parsing follows ``NestedQueryBuilder#fromXContent``: ``path`` and ``query`` are required (checked in that
order, as the builder's constructor does), ``score_mode`` is one of ``none``/``min``/``max``/``avg``/``sum``
(default ``avg``), plus ``inner_hits``, ``ignore_unmapped``, ``boost`` and ``_name``. What the path means is
checked per shard, against the mapping (:meth:`segstore.search.searcher.IndexSearcher`). Other inner
queries (filters on nested fields, nested inside nested) are rejected with a message saying so: segstore's
filters work on root documents only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from segstore.errors import IllegalArgumentError, ValidationError
from segstore.search.inner_hits import InnerHitsSpec, parse_inner_hits

__all__ = ["NestedClause", "parse_nested", "SCORE_MODES"]

SCORE_MODES = ("none", "min", "max", "avg", "sum")


@dataclass
class NestedClause:
    """How the children's scores make the root's (``score_mode``, ``boost``), and the inner hits."""

    path: str
    score_mode: str = "avg"
    inner_hits: InnerHitsSpec | None = None
    ignore_unmapped: bool = False
    boost: float = 1.0
    name: str | None = None


def _parsing_error(message: str) -> ValidationError:
    return ValidationError(message, "parsing_exception")


def parse_nested(spec: Any, compile_inner: Callable[[Any], tuple[Any, Any]]) -> Any:
    """The inner ``KnnClause`` with its :class:`NestedClause` set. ``compile_inner`` compiles a query into
    ``(filter, knn clause)`` (the query DSL's compiler)."""
    if not isinstance(spec, Mapping):
        raise _parsing_error("[nested] query malformed, no start_object after query name")
    path: str | None = None
    query: Any = None
    inner: InnerHitsSpec | None = None
    clause = NestedClause("")
    for key, value in spec.items():
        if isinstance(value, Mapping):
            if key == "query":
                query = value
            elif key == "inner_hits":
                inner = parse_inner_hits(value)
            else:
                raise _parsing_error(f"[nested] query does not support [{key}]")
        elif key == "path":
            path = str(value)
        elif key == "boost":
            clause.boost = float(value)
        elif key == "ignore_unmapped":
            clause.ignore_unmapped = value in (True, "true")
        elif key == "score_mode":
            if value not in SCORE_MODES:
                raise IllegalArgumentError(f"No score mode for child query [{value}] found")
            clause.score_mode = str(value)
        elif key == "_name":
            clause.name = str(value)
        else:
            raise _parsing_error(f"[nested] query does not support [{key}]")
    if path is None:
        raise IllegalArgumentError("[nested] requires 'path' field")
    if query is None:
        raise IllegalArgumentError("[nested] requires 'query' field")
    filt, knn = compile_inner(query)
    if knn is None or filt is not None:
        raise IllegalArgumentError("segstore supports [nested] queries around a single [knn] query only")
    if knn.nested is not None:
        raise IllegalArgumentError("segstore does not support a [nested] query inside a [nested] query")
    clause.path, clause.inner_hits = path, inner
    knn.nested = clause
    return knn
