"""``aggs`` of ``_search``: metric and ``terms`` aggregations over doc values, computed in bulk.

An aggregation runs over every document the query matched (for a ``knn`` query, the hits it returned in
``hits.total``, as OpenSearch's k-NN query matches only those), on every shard, and is reduced into one
result. Supported, with OpenSearch's response shapes:

* ``min``, ``max``, ``sum``, ``avg``: over every value of a numeric, date or boolean field (a multi-valued
  document counts each value); ``{"value": x}`` as a double, ``null`` for ``min``/``max``/``avg`` without
  values, ``0.0`` for ``sum``;
* ``value_count`` (number of values) and ``cardinality`` (distinct values, exact): any doc-values field;
* ``stats``: ``count``, ``min``, ``max``, ``avg``, ``sum``;
* ``terms``: buckets of distinct values with the number of documents holding each (``doc_count``), ordered
  by ``_count`` desc then ``_key`` asc unless ``order`` says ``{"_count"|"_key": "asc"|"desc"}``, ``size``
  (10) of them, ``min_doc_count`` (1), ``doc_count_error_upper_bound`` 0 (one shard per index) and
  ``sum_other_doc_count``; keyword keys are strings, numeric keys numbers, boolean keys 0/1 with
  ``key_as_string``; sub-aggregations (``aggs``) run per bucket.

Any other aggregation type is refused with a 400 naming it, never ignored. Values are read per segment as
numpy arrays: the entries of the matched documents are selected with one mask and reduced with numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from segstore.errors import IllegalArgumentError, ValidationError
from segstore.mapping.mappings import NUMERIC_FLOAT_TYPES, NUMERIC_INT_TYPES
from segstore.search.hit_list import hit_arrays
from segstore.search.sort import no_fielddata

__all__ = ["AggSpec", "parse_aggs", "check_aggs", "run_aggs"]

_METRICS = ("min", "max", "sum", "avg", "value_count", "cardinality", "stats")
_NUMERIC_ONLY = ("min", "max", "sum", "avg", "stats")
_TERMS_OPTIONS = {"field", "size", "order", "min_doc_count", "shard_size", "show_term_doc_count_error"}

# one shard's matches: (reader, {leaf index: matched doc ids})
DocSets = list[tuple[Any, dict[int, np.ndarray]]]


@dataclass(frozen=True)
class AggSpec:
    name: str
    kind: str
    field: str
    size: int = 10
    order: tuple[str, str] = ("_count", "desc")
    min_doc_count: int = 1
    subs: tuple["AggSpec", ...] = field(default_factory=tuple)


def parse_aggs(spec: Any) -> list[AggSpec]:
    """The request's ``aggs``/``aggregations`` object (``AggregatorFactories#parseAggregators``)."""
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        raise ValidationError("Aggregation definition must be an object", "parsing_exception")
    out = []
    for name, body in spec.items():
        if not isinstance(body, Mapping):
            raise ValidationError(f"Expected [START_OBJECT] under [{name}], but got a [{type(body).__name__}] in "
                                  f"[{name}]", "parsing_exception")
        kinds = [k for k in body if k not in ("aggs", "aggregations", "meta")]
        if len(kinds) != 1:
            raise ValidationError(f"Expected one aggregation type under [{name}], found {kinds}", "parsing_exception")
        kind = kinds[0]
        params = body[kind]
        if kind != "terms" and kind not in _METRICS:
            raise IllegalArgumentError(f"segstore does not support the [{kind}] aggregation [{name}]: supported are "
                                       "terms, min, max, sum, avg, stats, value_count and cardinality")
        if not isinstance(params, Mapping) or not isinstance(params.get("field"), str):
            raise IllegalArgumentError("Required one of fields [field, script], but none were specified. ")
        subs = tuple(parse_aggs(body.get("aggs", body.get("aggregations"))))
        if kind != "terms":
            if subs:
                raise ValidationError(f"Aggregator [{name}] of type [{kind}] cannot accept sub-aggregations",
                                      "aggregation_initialization_exception")
            out.append(AggSpec(name, kind, params["field"]))
            continue
        unknown = [k for k in params if k not in _TERMS_OPTIONS]
        if unknown:
            raise IllegalArgumentError(f"segstore does not support [{unknown[0]}] in the terms aggregation [{name}]")
        size = int(params.get("size", 10))
        if size < 1:
            raise IllegalArgumentError(f"[size] must be greater than 0. Found [{size}] in [{name}]")
        out.append(AggSpec(name, "terms", params["field"], size, _order(params.get("order"), name),
                           int(params.get("min_doc_count", 1)), subs))
    return out


def _order(order: Any, name: str) -> tuple[str, str]:
    if order is None:
        return ("_count", "desc")
    if isinstance(order, list) and len(order) == 1:
        order = order[0]
    if not isinstance(order, Mapping) or len(order) != 1:
        raise IllegalArgumentError(f"segstore supports one [_count] or [_key] order in the terms aggregation [{name}]")
    (key, direction), = order.items()
    if key not in ("_count", "_key") or direction not in ("asc", "desc"):
        raise IllegalArgumentError(f"segstore supports ordering terms by [_count] or [_key], asc or desc; got "
                                   f"[{key}: {direction}] in [{name}]")
    return (key, direction)


def check_aggs(specs: list[AggSpec], mappings: Any) -> None:
    """Per-shard field checks (``ValuesSourceConfig#resolve``): fields without doc values and metrics that
    need numbers are refused with OpenSearch's texts; unmapped fields aggregate nothing."""
    for spec in specs:
        ftype = mappings.leaf_types.get(spec.field)
        if ftype is not None and spec.field not in mappings.doc_value_fields:
            raise no_fielddata(spec.field, ftype)
        if ftype is not None and spec.kind in _NUMERIC_ONLY and ftype not in NUMERIC_INT_TYPES | NUMERIC_FLOAT_TYPES:
            raise IllegalArgumentError(f"Field [{spec.field}] of type [{ftype}] is not supported for aggregation "
                                       f"[{spec.kind}]")
        if spec.field in mappings.vector_fields:
            raise IllegalArgumentError(f"Field [{spec.field}] of type [knn_vector] is not supported for aggregation "
                                       f"[{spec.kind}]")
        check_aggs(list(spec.subs), mappings)


def _entries(shards: DocSets, fld: str) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(global doc keys, values) of every doc-values entry of the matched documents, and the field's type.
    Keyword values come back as strings; numbers as float64 or int64 (float fields rounded to float32)."""
    keys, values, ftype = [], [], None
    for si, (reader, per_leaf) in enumerate(shards):
        for li, docs in per_leaf.items():
            leaf = reader.leaves[li]
            dv = leaf.core.doc_values.get(fld)
            fi = leaf.field_infos.get(fld)
            if dv is None or fi is None or docs.size == 0:
                continue
            ftype = fi.attributes.get("type", ftype)
            matched = np.zeros(leaf.max_doc, dtype=bool)
            matched[docs] = True
            sel = matched[dv.docs]
            v = dv.values[sel]
            if dv.terms is not None:
                v = np.asarray(dv.terms, dtype=object)[v] if len(dv.terms) else np.zeros(0, dtype=object)
            elif ftype in ("float", "half_float"):
                v = v.astype(np.float16 if ftype == "half_float" else np.float32).astype(np.float64)
            keys.append((int(reader.doc_bases[li]) + dv.docs[sel].astype(np.int64)) * len(shards) + si)
            values.append(v)
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.float64), ftype
    return np.concatenate(keys), np.concatenate(values), ftype


def _metric(spec: AggSpec, values: np.ndarray, ftype: str | None) -> dict[str, Any]:
    out = _metric_value(spec, values)
    if ftype in ("date", "date_nanos") and spec.kind in ("min", "max") and out["value"] is not None:
        out["value_as_string"] = _date_string(int(out["value"]))
    return out


def _metric_value(spec: AggSpec, values: np.ndarray) -> dict[str, Any]:
    n = int(values.shape[0])
    nums = values.astype(np.float64) if spec.kind in _NUMERIC_ONLY else values
    if spec.kind == "value_count":
        return {"value": n}
    if spec.kind == "cardinality":
        return {"value": int(np.unique(values).shape[0]) if n else 0}
    total = float(nums.sum()) if n else 0.0
    lo, hi = (float(nums.min()), float(nums.max())) if n else (None, None)
    avg = total / n if n else None
    if spec.kind == "stats":
        return {"count": n, "min": lo, "max": hi, "avg": avg, "sum": total}
    return {"value": {"min": lo, "max": hi, "sum": total, "avg": avg}[spec.kind]}


def _date_string(millis: int) -> str:
    """``strict_date_optional_time`` in UTC with milliseconds, as OpenSearch formats date values."""
    when = datetime.fromtimestamp(millis // 1000, tz=timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"


def _key_json(key: Any, ftype: str | None) -> dict[str, Any]:
    if ftype in ("date", "date_nanos"):  # epoch millis, and the default date format
        return {"key": int(key), "key_as_string": _date_string(int(key))}
    if ftype == "boolean":
        return {"key": int(key), "key_as_string": "true" if int(key) else "false"}
    if isinstance(key, (np.floating, float)) and ftype not in NUMERIC_INT_TYPES:
        return {"key": float(key)}
    if isinstance(key, (np.integer, int)) or ftype in NUMERIC_INT_TYPES:
        return {"key": int(key)}
    return {"key": str(key)}


def _terms(spec: AggSpec, shards: DocSets) -> dict[str, Any]:
    keys, values, ftype = _entries(shards, spec.field)
    buckets: list[dict[str, Any]] = []
    other = 0
    if values.shape[0]:
        # one count per (document, distinct value): a value repeated in a document counts once
        terms, inverse = np.unique(values, return_inverse=True)
        pairs = np.unique(np.stack([inverse.astype(np.int64), keys]), axis=1)
        counts = np.bincount(pairs[0], minlength=terms.shape[0])
        by, direction = spec.order
        if by == "_count":  # ties by key ascending
            order = np.lexsort((np.arange(terms.shape[0]), -counts if direction == "desc" else counts))
        else:
            order = np.arange(terms.shape[0])[::-1] if direction == "desc" else np.arange(terms.shape[0])
        order = order[counts[order] >= spec.min_doc_count]
        shown, rest = order[:spec.size], order[spec.size:]
        other = int(counts[rest].sum())
        for t in shown.tolist():
            bucket = {**_key_json(terms[t], ftype), "doc_count": int(counts[t])}
            if spec.subs:
                bucket.update(run_aggs(list(spec.subs), _restrict(shards, pairs[1][pairs[0] == t])))
            buckets.append(bucket)
    return {"doc_count_error_upper_bound": 0, "sum_other_doc_count": other, "buckets": buckets}


def _restrict(shards: DocSets, wanted: np.ndarray) -> DocSets:
    """The shards' matched documents whose global key is in ``wanted`` (a terms bucket's documents)."""
    out: DocSets = []
    for si, (reader, per_leaf) in enumerate(shards):
        mine = wanted[wanted % len(shards) == si] // len(shards)
        kept = {}
        for li, docs in per_leaf.items():
            g = int(reader.doc_bases[li]) + docs.astype(np.int64)
            kept[li] = docs[np.isin(g, mine)]
        out.append((reader, kept))
    return out


def run_aggs(specs: list[AggSpec], shards: DocSets) -> dict[str, Any]:
    """The reduced result of every aggregation, keyed by name, in request order."""
    out: dict[str, Any] = {}
    for spec in specs:
        if spec.kind == "terms":
            out[spec.name] = _terms(spec, shards)
        else:
            _, values, ftype = _entries(shards, spec.field)
            out[spec.name] = _metric(spec, values, ftype)
    return out


def doc_sets(results: list[tuple[Any, Sequence[tuple[Any, int, int]]]]) -> DocSets:
    """Per shard (reader, hits ``(score, leaf, doc)``): the matched doc ids grouped by leaf."""
    out: DocSets = []
    for reader, hits in results:
        _, leaves, docs = hit_arrays(hits)
        out.append((reader, {int(li): docs[leaves == li] for li in np.unique(leaves)}))
    return out
