"""``inner_hits`` of a ``nested`` query: per hit, the nested objects that matched, in OpenSearch's shape.

Each inner hit names its root's ``_id``, its position (``_nested``: the nested field relative to the
enclosing nested object, and the ``offset`` among that object's children of the field, recursively for
nested-in-nested, as ``FetchPhase#getInternalNestedIdentity`` counts them), its own ``_score`` and, by
default, its ``_source``: the nested object itself, cut from the root's ``_source`` *after* vectors were
injected (derived source never shows the mask here either). Inner-hit ``_source`` filtering uses full
paths (``nested_field.color``) and does not depend on the top-level ``_source`` option.

Options: ``name`` (default: the nested path), ``from`` (0), ``size`` (3), ``_source``, ``fields`` (full
paths, see :mod:`segstore.search.fetch_fields`), ``ignore_unmapped``; ``version``, ``explain``,
``seq_no_primary_term`` and ``track_scores`` are accepted when false. Other InnerHitBuilder options
(sort, highlight, stored/docvalue/script fields, collapse) are rejected
with a message naming the option: segstore does not implement them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from segstore.errors import IllegalArgumentError, ValidationError
from segstore.floats import shortest_float32
from segstore.index.segment_reader import SegmentReader
from segstore.mapping.mappings import Mappings
from segstore.search.fetch_fields import fetch_fields, parse_fields
from segstore.search.source_filter import SourceFilter, parse_source_param

__all__ = ["InnerHitsSpec", "InnerHitsContext", "parse_inner_hits", "nested_identity", "DEFAULT_MAX_INNER_WINDOW"]

DEFAULT_MAX_INNER_WINDOW = 100  # index.max_inner_result_window
_FLAGS = ("version", "explain", "seq_no_primary_term", "track_scores")
_UNSUPPORTED = ("stored_fields", "docvalue_fields", "script_fields", "sort", "highlight", "collapse")


@dataclass(frozen=True)
class InnerHitsSpec:
    name: str | None = None
    from_: int = 0
    size: int = 3
    source: SourceFilter = field(default_factory=SourceFilter)
    ignore_unmapped: bool = False
    fields: tuple[str, ...] = ()


def _int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).lstrip("-").isdigit():
        raise ValidationError(f"[inner_hits] failed to parse field [{key}]", "x_content_parse_exception")
    return int(value)


def parse_inner_hits(spec: Any) -> InnerHitsSpec:
    """``InnerHitBuilder#fromXContent`` for the options segstore implements."""
    if not isinstance(spec, dict):
        raise ValidationError("[inner_hits] inner_hits doesn't support values of type: "
                              f"{type(spec).__name__}", "x_content_parse_exception")
    name, start, size, source, ignore, fields = None, 0, 3, SourceFilter(), False, ()
    for key, value in spec.items():
        if key == "name":
            name = str(value)
        elif key == "from":
            start = _int(key, value)
            if start < 0:
                raise IllegalArgumentError(f"illegal from [{start}], must be >= 0")
        elif key == "size":
            size = _int(key, value)
            if size < 0:
                raise IllegalArgumentError(f"illegal size [{size}], must be >= 0")
        elif key == "_source":
            source = parse_source_param(value)
        elif key == "fields":
            fields = tuple(parse_fields(value, "inner_hits"))
        elif key == "ignore_unmapped":
            ignore = value in (True, "true")
        elif key in _FLAGS:
            if value not in (False, "false"):
                raise IllegalArgumentError(f"segstore does not support [inner_hits] option [{key}: true]")
        elif key in _UNSUPPORTED:
            raise IllegalArgumentError(f"segstore does not support [inner_hits] option [{key}]")
        else:
            raise ValidationError(f"[inner_hits] unknown field [{key}]", "x_content_parse_exception")
    return InnerHitsSpec(name, start, size, source, ignore, fields)


def _nested_chain(path: str, mappings: Mappings) -> list[str]:
    """The nested paths from the outermost one down to ``path`` itself."""
    return sorted((n for n in mappings.nested_paths if n == path or path.startswith(n + ".")), key=len)


def nested_identity(paths: list[str | None], idx: int, chain: list[str]) -> list[tuple[str, int]]:
    """``[(field, offset), ...]`` outermost first for the child at ``idx`` of a block whose children have the
    nested ``paths`` (block order: post-order, a nested object after its own children).

    A level's offset counts the earlier children of the same field inside the same enclosing object, which
    is the object's own doc: the first doc of the enclosing path after this child. Its children start after
    the previous doc of the enclosing path (or at the block start)."""
    out: list[tuple[str, int]] = []
    cur = idx
    for level in range(len(chain) - 1, -1, -1):
        path = chain[level]
        parent = chain[level - 1] if level else None
        lo = 0
        if parent is not None:
            before = [j for j in range(cur) if paths[j] == parent]
            lo = before[-1] + 1 if before else 0
        offset = sum(1 for x in paths[lo:cur] if x == path)
        out.append((path if parent is None else path[len(parent) + 1:], offset))
        if parent is not None:
            cur = next(j for j in range(cur + 1, len(paths)) if paths[j] == parent)
    return out[::-1]


def _identity_json(identity: list[tuple[str, int]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    for i, (name, offset) in enumerate(identity):
        node["field"], node["offset"] = name, offset
        if i + 1 < len(identity):
            node["_nested"] = {}
            node = node["_nested"]
    return out


def _child_object(root: Any, identity: list[tuple[str, int]]) -> dict[str, Any] | None:
    """The nested object at ``identity`` in the root ``_source`` (None if the source lacks it, e.g. when the
    mapping's ``_source`` filter dropped it). Only objects make children, so the offset counts objects."""
    node = root
    for name, offset in identity:
        for part in name.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        items = node if isinstance(node, list) else [node]
        objects = [x for x in items if isinstance(x, dict)]
        if offset >= len(objects):
            return None
        node = objects[offset]
    return node if isinstance(node, dict) else None


def _filtered(obj: dict[str, Any], identity: list[tuple[str, int]], sf: SourceFilter) -> dict[str, Any]:
    """``FetchSourcePhase`` for a nested hit: filter the object wrapped in its full path, then unwrap it
    (``{}`` when the filter removed it)."""
    if sf.is_noop:
        return obj
    wrapped: Any = obj
    for name, _ in reversed(identity):
        wrapped = {name: wrapped}
    node: Any = sf.apply(wrapped)
    for name, _ in identity:
        node = node.get(name) if isinstance(node, dict) else None
        if node is None:
            return {}
    return node if isinstance(node, dict) else {}


@dataclass
class InnerHitsContext:
    """The inner hits of one search: the matched children per ``(leaf, root doc)`` and how to render them."""

    spec: InnerHitsSpec
    path: str
    children: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]
    mappings: Mappings

    @property
    def name(self) -> str:
        return self.spec.name or self.path

    def needs_source(self) -> bool:
        return (self.spec.source.fetch or bool(self.spec.fields)) and self.spec.size > 0

    def render(self, index: str, leaf: SegmentReader, leaf_i: int, root: int, root_id: str,
               root_source: dict[str, Any] | None) -> dict[str, Any]:
        docs, scores = self.children.get((leaf_i, root), (np.zeros(0, np.int64), np.zeros(0, np.float32)))
        total = int(docs.shape[0])
        page = list(range(self.spec.from_, min(self.spec.from_ + self.spec.size, total)))
        hits: list[dict[str, Any]] = []
        if page:
            start = leaf.block_start(root)
            records = leaf.core.stored.raw_documents(list(range(start, root)))
            paths = [msgpack.unpackb(raw, raw=False).get("_nested_path") for raw in records]
            chain = _nested_chain(self.path, self.mappings)
            shown = shortest_float32(scores[page]).tolist()
            for j, score in zip(page, shown):
                identity = nested_identity(paths, int(docs[j]) - start, chain)
                hit: dict[str, Any] = {"_index": index, "_id": root_id, "_nested": _identity_json(identity),
                                       "_score": score}
                obj = _child_object(root_source, identity) if root_source is not None else None
                if self.spec.source.fetch and obj is not None:
                    hit["_source"] = _filtered(obj, identity, self.spec.source)
                if self.spec.fields and obj is not None:
                    found = fetch_fields(obj, list(self.spec.fields), self.mappings, root=self.path)
                    if found:
                        hit["fields"] = found
                hits.append(hit)
        # max_score comes from every matching child, not the page; none when nothing is collected (size 0)
        max_score = float(shortest_float32(scores.max(keepdims=True))[0]) if total and self.spec.size else None
        return {self.name: {"hits": {"total": {"value": total, "relation": "eq"}, "max_score": max_score,
                                     "hits": hits}}}
