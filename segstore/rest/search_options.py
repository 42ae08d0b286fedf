"""Request options of ``_search`` that shape the hits: ``track_total_hits`` and ``sort`` / ``search_after``.

``track_total_hits`` (``SearchSourceBuilder#trackTotalHitsUpTo``, ``RestSearchAction#checkRestTotalHits``):
``true`` counts exactly, ``false`` (or ``-1``) reports no total, an integer N counts up to N and then
reports ``{"value": N, "relation": "gte"}`` (``SearchPhaseController.TopDocsStats#getTotalHits``); the
default is 10,000. ``rest_total_hits_as_int`` makes the default exact, renders the total as a number
(``-1`` when disabled) and refuses any other bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

import numpy as np

from segstore.errors import IllegalArgumentError, ValidationError
from segstore.rest.response import RestRequest
from segstore.search.hit_list import ShardHits, hit_arrays
from segstore.search.sort import Column, SortKey, order_hits, resolve_kinds, shard_columns, sort_values

__all__ = ["TRACK_ACCURATE", "TRACK_DISABLED", "track_total_hits", "render_total", "SortContext"]

TRACK_ACCURATE = 2**31 - 1  # SearchContext.TRACK_TOTAL_HITS_ACCURATE (Integer.MAX_VALUE)
TRACK_DISABLED = -1
DEFAULT_TRACK = 10_000


def _as_track(value: Any) -> int:
    if isinstance(value, bool):
        return TRACK_ACCURATE if value else TRACK_DISABLED
    if isinstance(value, str) and value in ("true", "false"):
        return TRACK_ACCURATE if value == "true" else TRACK_DISABLED
    try:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
        n = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f'For input string: "{value}"', "number_format_exception") from None
    if n < TRACK_DISABLED:
        raise IllegalArgumentError(f"[track_total_hits] parameter must be positive or equals to -1, got {n}")
    return n


def track_total_hits(body: dict[str, Any], req: RestRequest) -> int:
    """The bound up to which hits are counted (the URL parameter wins over the body)."""
    param = req.param("track_total_hits")
    value = param if param is not None else body.get("track_total_hits")
    track = None if value is None else _as_track(value)
    if req.bool_param("rest_total_hits_as_int"):
        if track is None:
            return TRACK_ACCURATE
        if track not in (TRACK_ACCURATE, TRACK_DISABLED):
            raise IllegalArgumentError("[rest_total_hits_as_int] cannot be used if the tracking of total hits "
                                       f"is not accurate, got {track}")
    return DEFAULT_TRACK if track is None else track


def render_total(total: int, track: int, as_int: bool) -> Any:
    """``hits.total`` as OpenSearch renders it (None: leave the key out)."""
    if track == TRACK_DISABLED:
        return -1 if as_int else None
    if as_int:
        return total
    if total > track:
        return {"value": track, "relation": "gte"}
    return {"value": total, "relation": "eq"}


@dataclass
class SortContext:
    """A request's sort: per-shard kinds (resolved in the query phase), then the global order of the hits."""

    keys: list[SortKey]
    search_after: list[Any] | None
    kinds: dict[int, list[str]]

    def check(self, si: int, mappings: Any, start: int) -> None:
        """Per-shard validation (``FieldSortBuilder#build``, ``SearchAfterBuilder#buildFieldDoc``)."""
        self.kinds[si] = resolve_kinds(mappings, self.keys)
        if self.search_after is not None:
            if start > 0:
                raise IllegalArgumentError("`from` parameter must be set to 0 when `search_after` is used.")
            if len(self.search_after) != len(self.keys):
                raise IllegalArgumentError(f"search_after has {len(self.search_after)} value(s) but sort has "
                                           f"{len(self.keys)}.")

    @property
    def tracks_scores(self) -> bool:
        return any(k.field == "_score" for k in self.keys)

    def order(self, readers: dict[int, Any], results: list[tuple[int, int, Sequence[tuple[Any, int, int]]]]
              ) -> tuple[ShardHits, list[Column]]:
        """All hits in sort order (arrays, read as ``(score, shard, leaf, doc)``) and the merged sort
        columns in the same order."""
        cols: list[list[Column]] = []
        shard_of, gdocs, all_scores, all_leaves, all_docs = [], [], [], [], []
        for si, _, hits in results:
            scores, leaves, docs = hit_arrays(hits)
            reader = readers[si]
            cols.append(shard_columns(reader, self.keys, self.kinds[si], leaves, docs, scores))
            shard_of.append(np.full(len(hits), si, dtype=np.int64))
            gdocs.append(reader.doc_bases[leaves] + docs if len(hits) else np.zeros(0, dtype=np.int64))
            all_scores.append(scores)
            all_leaves.append(leaves)
            all_docs.append(docs)

        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)

        shard_arr, gdoc_arr = cat(shard_of, np.int64), cat(gdocs, np.int64)
        rows, merged = order_hits(self.keys, cols, shard_arr, gdoc_arr, self.search_after)
        ordered = ShardHits(cat(all_scores, np.float64)[rows], shard_arr[rows], cat(all_leaves, np.int64)[rows],
                            cat(all_docs, np.int64)[rows])
        return ordered, [Column(c.kind, c.values[rows], c.present[rows]) for c in merged]

    def values(self, merged: list[Column], start: int, stop: int) -> list[list[Any]]:
        return sort_values(self.keys, merged, np.arange(start, min(stop, len(merged[0].values)) if merged else 0))
