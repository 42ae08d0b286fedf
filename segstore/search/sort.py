"""``sort`` and ``search_after`` of ``_search``: OpenSearch's field sort over doc values, computed in bulk.

A request's sort is parsed once (:func:`parse_sort`; ``[_score]`` alone is no sort at all, as
``SortBuilder#buildSort`` says); each shard then resolves every key against its mapping
(:func:`resolve_kinds`, whose errors are shard failures with OpenSearch's texts) and reads one column per
key for its hits (:func:`shard_columns`): the per-document value chosen by ``mode`` (``min`` for ascending
and ``max`` for descending by default; ``sum``, ``avg``, ``median`` on numbers) from the segment's doc values,
whose entries are sorted by doc then value, so every mode is a ``searchsorted`` and a gather.

The coordinator (:func:`order_hits`) substitutes missing values the way Lucene's comparators do
(``_last``: ``Long.MAX_VALUE`` / ``+Infinity`` ascending, the opposite descending; keywords sort missing
values first or last and report ``null``), ranks each column with ``np.unique`` and orders the hits with
one ``np.lexsort``; ties fall back to shard order, then doc order (``SearchPhaseController#sortDocs``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from segstore.errors import IllegalArgumentError, ValidationError
from segstore.floats import shortest_float32_list
from segstore.mapping.mappings import NUMERIC_FLOAT_TYPES, NUMERIC_INT_TYPES

__all__ = ["SortKey", "Column", "parse_sort", "resolve_kinds", "shard_columns", "order_hits",
           "sort_values", "TEXT_FIELDDATA", "no_fielddata"]

_LONG_MAX, _LONG_MIN = (1 << 63) - 1, -(1 << 63)
_ORDERS = ("asc", "desc")
_MODES = ("min", "max", "sum", "avg", "median")
_FIELD_OPTIONS = {"order", "missing", "mode", "unmapped_type", "numeric_type", "format"}
TEXT_FIELDDATA = ("Text fields are not optimised for operations that require per-document field data like "
                  "aggregations and sorting, so these operations are disabled by default. Please use a keyword "
                  "field instead. Alternatively, set fielddata=true on [{0}] in order to load field data by "
                  "uninverting the inverted index. Note that this can use significant memory.")


@dataclass(frozen=True)
class SortKey:
    """One sort criterion: ``_score``, ``_doc`` or a field."""

    field: str
    order: str
    missing: Any = "_last"
    mode: str | None = None
    unmapped_type: str | None = None


@dataclass
class Column:
    """One key's values for a shard's hits: ``values`` (int64, float64 or object strings) and ``present``."""

    kind: str  # long | double | float | keyword | ip | score | doc | unmapped
    values: np.ndarray
    present: np.ndarray


def _order(value: Any) -> str:
    text = str(value).lower()
    if text not in _ORDERS:
        raise IllegalArgumentError(f"Unknown SortOrder [{value}]")
    return text


def _parse_one(item: Any) -> SortKey:
    if isinstance(item, str):
        return SortKey(item, "desc" if item == "_score" else "asc")
    if not isinstance(item, Mapping) or len(item) != 1:
        raise ValidationError(f"[sort] unexpected element in sort array: {item!r}", "parsing_exception")
    field, spec = next(iter(item.items()))
    default = "desc" if field == "_score" else "asc"
    if isinstance(spec, str):
        return SortKey(field, _order(spec))
    if not isinstance(spec, Mapping):
        raise ValidationError(f"[sort] unexpected value for [{field}]: {spec!r}", "parsing_exception")
    allowed = {"order"} if field in ("_score", "_doc") else _FIELD_OPTIONS
    name = {"_score": "_score", "_doc": "_doc"}.get(field, "field_sort")
    for key in spec:
        if key not in allowed:
            raise ValidationError(f"[{name}] unknown field [{key}]", "x_content_parse_exception")
    mode = spec.get("mode")
    if mode is not None and str(mode).lower() not in _MODES:
        raise IllegalArgumentError(f"Unknown SortMode [{mode}]")
    if spec.get("numeric_type") is not None or spec.get("format") is not None:
        raise IllegalArgumentError(f"segstore does not support [numeric_type] or [format] in the sort on [{field}]")
    missing = spec.get("missing", "_last")
    if missing is None:
        missing = "_last"
    return SortKey(field, _order(spec.get("order", default)), missing,
                   None if mode is None else str(mode).lower(), spec.get("unmapped_type"))


def parse_sort(body_sort: Any, param: str | None) -> list[SortKey] | None:
    """The request's sort keys (body first, then the ``sort`` URL parameter's ``field:order`` items), or
    None when there is none or it is ``_score`` descending alone (plain relevance order)."""
    items: list[Any] = []
    if body_sort is not None:
        items.extend(body_sort if isinstance(body_sort, list) else [body_sort])
    keys = [_parse_one(i) for i in items]
    for part in (param.split(",") if param else []):
        part = part.strip()
        if not part:
            continue
        field, _, order = part.rpartition(":")
        if field and order in _ORDERS:
            keys.append(SortKey(field, order))
        else:
            keys.append(SortKey(part, "desc" if part == "_score" else "asc"))
    if not keys or (len(keys) == 1 and keys[0].field == "_score" and keys[0].order == "desc"):
        return None
    return keys


def no_fielddata(field: str, ftype: str) -> IllegalArgumentError:
    """The error of sorting or aggregating on a field that has no doc values (``MappedFieldType``)."""
    if ftype in ("text", "match_only_text"):
        return IllegalArgumentError(TEXT_FIELDDATA.format(field))
    return IllegalArgumentError(f"Can't load fielddata on [{field}] because fielddata is unsupported on fields of "
                                f"type [{ftype}]. Use doc values instead.")


def field_kind(ftype: str) -> str | None:
    """The doc-values kind of a mapped type (None: no doc values of a sortable kind)."""
    if ftype in NUMERIC_INT_TYPES:
        return "long"
    if ftype in ("float", "half_float"):
        return "float"
    if ftype in NUMERIC_FLOAT_TYPES:
        return "double"
    if ftype in ("keyword", "constant_keyword"):
        return "keyword"
    if ftype == "ip":
        return "ip"
    return None


def _shard_error(message: str) -> ValidationError:
    return ValidationError(message, "query_shard_exception")


def resolve_kinds(mappings: Any, keys: list[SortKey]) -> list[str]:
    """Each key's column kind on one shard; raises what ``FieldSortBuilder#build`` raises there."""
    kinds = []
    for key in keys:
        if key.field in ("_score", "_doc"):
            kinds.append(key.field[1:])
            continue
        ftype = mappings.leaf_types.get(key.field)
        if ftype is None and key.field in mappings.vector_fields:
            ftype = "knn_vector"
        if ftype is None:
            if key.unmapped_type is None:
                raise _shard_error(f"No mapping found for [{key.field}] in order to sort on")
            kind = field_kind(str(key.unmapped_type))
            if kind is None:
                raise no_fielddata(key.field, str(key.unmapped_type))
            kinds.append("unmapped:" + kind)
            continue
        kind = field_kind(ftype)
        if kind is None or key.field in mappings.no_doc_values:
            raise no_fielddata(key.field, ftype)
        if mappings.nested_scope(key.field) is not None:
            raise IllegalArgumentError(f"segstore does not support sorting on [{key.field}], a field inside "
                                       "nested objects")
        if key.mode in ("sum", "avg", "median") and kind not in ("long", "double", "float"):
            raise _shard_error("we only support AVG, MEDIAN and SUM on number based fields")
        kinds.append(kind)
    return kinds


def _leaf_values(dv: Any, docs: np.ndarray, mode: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-doc value of ``docs`` by ``mode`` from one segment's doc values (entries sorted by doc, value)."""
    starts = np.searchsorted(dv.docs, docs, "left")
    ends = np.searchsorted(dv.docs, docs, "right")
    present = ends > starts
    n = len(dv.values)
    if n == 0:
        return np.zeros(len(docs), dtype=np.int64), present
    lo, hi = np.minimum(starts, n - 1), np.clip(ends - 1, 0, n - 1)
    if dv.terms is not None:  # ordinals follow term order: min is the first entry, max the last
        ords = dv.values[lo if mode == "min" else hi]
        terms = np.asarray(dv.terms, dtype=object)
        return terms[ords] if len(terms) else np.full(len(docs), "", dtype=object), present
    vals = dv.values
    if mode == "min":
        return vals[lo], present
    if mode == "max":
        return vals[hi], present
    count = np.maximum(ends - starts, 1)
    if mode == "median":
        mid = (vals[np.minimum(starts + (count - 1) // 2, n - 1)] + vals[np.minimum(starts + count // 2, n - 1)]) / 2.0
        return (np.floor(mid + 0.5).astype(np.int64) if kind == "long" else mid), present
    csum = np.concatenate([np.zeros(1, dtype=vals.dtype), np.cumsum(vals)])
    total = csum[ends] - csum[starts]
    if mode == "sum":
        return total, present
    avg = total / count  # MultiValueMode.AVG: Math.round for longs
    return (np.floor(avg + 0.5).astype(np.int64) if kind == "long" else avg), present


def shard_columns(reader: Any, keys: list[SortKey], kinds: list[str], leaves: np.ndarray, docs: np.ndarray,
                  scores: np.ndarray) -> list[Column]:
    """One :class:`Column` per key for one shard's hits (``leaves``/``docs`` arrays, any order)."""
    cols = []
    for key, kind in zip(keys, kinds):
        if kind == "score":
            cols.append(Column("score", scores.astype(np.float64), np.ones(len(docs), dtype=bool)))
            continue
        if kind == "doc":
            cols.append(Column("doc", reader.doc_bases[leaves] + docs, np.ones(len(docs), dtype=bool)))
            continue
        if kind.startswith("unmapped:"):
            base = kind.split(":", 1)[1]
            dtype = object if base in ("keyword", "ip") else np.int64 if base == "long" else np.float64
            cols.append(Column(kind, np.zeros(len(docs), dtype=dtype), np.zeros(len(docs), dtype=bool)))
            continue
        mode = key.mode or ("min" if key.order == "asc" else "max")
        numeric = kind in ("long", "double", "float")
        values = np.zeros(len(docs), dtype=(np.int64 if kind == "long" else np.float64) if numeric else object)
        present = np.zeros(len(docs), dtype=bool)
        for li in np.unique(leaves):
            sel = np.flatnonzero(leaves == li)
            dv = reader.leaves[int(li)].core.doc_values.get(key.field)
            if dv is None:
                continue
            v, p = _leaf_values(dv, docs[sel], mode, kind)
            values[sel] = v
            present[sel] = p
        cols.append(Column(kind, values, present))
    return cols


def _merge_kind(kinds: set[str], field: str) -> str:
    real = {k for k in kinds if not k.startswith("unmapped:")} or {k.split(":", 1)[1] for k in kinds}
    if len(real) == 1:
        return real.pop()
    if real <= {"long", "double", "float"}:
        return "double"
    raise IllegalArgumentError(f"Can't sort on field [{field}]; the field has incompatible sort types")


def _missing_value(key: SortKey, kind: str) -> Any:
    """The value Lucene's comparator substitutes for a document without one (None: keyword first/last)."""
    m = key.missing
    if m in ("_last", "_first"):
        high = (m == "_last") == (key.order == "asc")
        if kind == "long":
            return _LONG_MAX if high else _LONG_MIN
        if kind in ("double", "float"):
            return float("inf") if high else float("-inf")
        return None
    try:
        if kind == "long":
            return int(float(m)) if not isinstance(m, bool) else int(m)
        if kind in ("double", "float"):
            return float(m)
    except (TypeError, ValueError):
        raise ValidationError(f'For input string: "{m}"', "number_format_exception") from None
    return str(m)


def _ip_key(text: Any) -> bytes:
    ip = ipaddress.ip_address(str(text))
    return (ipaddress.IPv6Address(f"::ffff:{ip}") if ip.version == 4 else ip).packed


def _after_value(raw: Any, kind: str) -> tuple[Any, bool]:
    if raw is None:
        return None, False
    if kind == "long":
        return int(raw), True
    if kind in ("double", "float", "score"):
        return float(raw), True
    if kind == "doc":
        return int(raw), True
    return str(raw), True


def _ranks(key: SortKey, kind: str, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """An int64 array ordering the rows as ``key`` wants (ties equal)."""
    missing = _missing_value(key, kind) if kind not in ("score", "doc") else None
    vals = values.copy()
    if missing is not None:
        vals[~present] = missing
        present = np.ones(len(vals), dtype=bool)
    ranks = np.zeros(len(vals), dtype=np.int64)
    if present.any():
        picked = vals[present]
        if kind == "ip":
            picked = np.asarray([_ip_key(v) for v in picked], dtype=object)  # a handful of hits, not a hot path
        uniq, inv = np.unique(picked, return_inverse=True)
        ranks[present] = inv if key.order == "asc" else -inv
        bound = len(uniq) + 1
    else:
        bound = 1
    # missing keywords: first or last whatever the order (Lucene's STRING_FIRST / STRING_LAST)
    ranks[~present] = bound if key.missing != "_first" else -bound
    return ranks


def order_hits(keys: list[SortKey], shard_cols: list[list[Column]], shard_of: np.ndarray, gdoc: np.ndarray,
               search_after: list[Any] | None = None) -> tuple[np.ndarray, list[Column]]:
    """Indices of the hits in sort order (hits equal to or before ``search_after`` dropped) and the merged
    columns (for :func:`sort_values`)."""
    merged: list[Column] = []
    for i, key in enumerate(keys):
        kind = _merge_kind({c[i].kind for c in shard_cols}, key.field)
        values = np.concatenate([c[i].values for c in shard_cols]) if shard_cols else np.zeros(0)
        if kind in ("double", "float") and values.dtype != np.float64:
            values = values.astype(np.float64)
        present = np.concatenate([c[i].present for c in shard_cols]) if shard_cols else np.zeros(0, dtype=bool)
        merged.append(Column(kind, values, present))
    n = len(gdoc)
    if search_after is not None:
        extra = [_after_value(v, c.kind) for v, c in zip(search_after, merged)]
        rank_cols = [_ranks(k, c.kind, np.append(c.values, np.asarray(
            [e[0] if e[1] or c.values.dtype == object else 0], dtype=c.values.dtype)), np.append(c.present, e[1]))
            for k, c, e in zip(keys, merged, extra)]
        after, gt, eq = [r[n] for r in rank_cols], np.zeros(n, dtype=bool), np.ones(n, dtype=bool)
        for r, a in zip(rank_cols, after):
            gt |= eq & (r[:n] > a)
            eq &= r[:n] == a
        rank_cols = [r[:n] for r in rank_cols]
        keep = np.flatnonzero(gt)
    else:
        rank_cols = [_ranks(k, c.kind, c.values, c.present) for k, c in zip(keys, merged)]
        keep = np.arange(n)
    order = np.lexsort([gdoc[keep], shard_of[keep]] + [r[keep] for r in reversed(rank_cols)])
    return keep[order], merged


def sort_values(keys: list[SortKey], merged: list[Column], rows: np.ndarray) -> list[list[Any]]:
    """The ``sort`` array of each of ``rows``: longs as ints, doubles as floats, keywords as strings,
    missing numbers as the substituted value (``Infinity`` quoted, as Jackson writes it)."""
    out: list[list[Any]] = [[] for _ in rows]
    for key, col in zip(keys, merged):
        vals, present = col.values[rows], col.present[rows]
        missing = _missing_value(key, col.kind) if col.kind not in ("score", "doc") else None
        if col.kind == "float":
            shown: list[Any] = shortest_float32_list(np.where(present, vals, 0.0))
        elif col.kind in ("double", "score"):
            shown = [float(v) for v in vals]
        elif col.kind in ("long", "doc"):
            shown = [int(v) for v in vals]
        else:
            shown = [str(v) for v in vals]
        for i, (v, p) in enumerate(zip(shown, present)):
            if not p:
                v = missing
                if isinstance(v, float) and v in (float("inf"), float("-inf")):
                    v = "Infinity" if v > 0 else "-Infinity"
                elif isinstance(v, float) and col.kind == "float":
                    v = shortest_float32_list(np.asarray([v]))[0]
            out[i].append(v)
    return out
