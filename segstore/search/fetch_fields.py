"""The ``fields`` option of ``_search`` and of ``inner_hits``: mapped field values read from ``_source``.

As OpenSearch's ``FieldFetcher``: each requested name is a mapped field or a wildcard pattern (``*`` and
``?``) over mapped field names; object and nested paths are not fields themselves. Values come from the
hit's ``_source`` (with vectors injected, so derived source returns the vectors, never the mask), arrays
flattened and nulls dropped, and are formatted by the field's type (numbers parsed, keywords as strings).
Every value list is an array; a field with no value is left out, and ``fields`` is absent when nothing was
found. Fields inside a ``nested`` path are grouped per nested object under that path, as OpenSearch does
(``{"user": [{"first": ["John"]}, ...]}``), except in an inner hit, whose root is the nested object.

Supported entry shapes: ``"name"`` and ``{"field": "name"}`` (a ``format`` is rejected: segstore does not
implement date/number formatting).
"""

from __future__ import annotations

import fnmatch
from typing import Any

from segstore.derived_source.paths import split_path
from segstore.errors import IllegalArgumentError, ValidationError
from segstore.mapping.mappings import Mappings

__all__ = ["parse_fields", "fetch_fields"]

_INTEGERS = ("long", "integer", "short", "byte", "unsigned_long")
_FLOATS = ("double", "float", "half_float", "scaled_float")


def parse_fields(spec: Any, where: str = "fields") -> list[str]:
    """The requested names of a ``fields`` array (strings or ``{"field": name}`` objects)."""
    if not isinstance(spec, list):
        raise ValidationError(f"[{where}] Expected [START_ARRAY] but found [{type(spec).__name__}]",
                              "parsing_exception")
    out: list[str] = []
    for item in spec:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and isinstance(item.get("field"), str):
            unknown = [k for k in item if k not in ("field", "format", "include_unmapped")]
            if unknown:
                raise ValidationError(f"[{where}] unknown field [{unknown[0]}]", "parsing_exception")
            if item.get("format") is not None:
                raise IllegalArgumentError(f"segstore does not support [format] in [{where}]")
            out.append(item["field"])
        else:
            raise ValidationError(f"[{where}] Expected a field name or an object with [field], got [{item}]",
                                  "parsing_exception")
    return out


def _matching(patterns: list[str], mappings: Mappings) -> list[str]:
    """Mapped leaf and vector fields matching any pattern, in mapping order, each once."""
    names = list(mappings.leaf_types) + list(mappings.vector_fields)
    out: list[str] = []
    for name in names:
        if any(name == p or ("*" in p or "?" in p) and fnmatch.fnmatchcase(name, p) for p in patterns):
            out.append(name)
    return out


def _format(ftype: str | None, value: Any) -> Any:
    if ftype in _INTEGERS and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return int(float(value))
        except ValueError:
            return value
    if ftype in _FLOATS and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            return value
    if ftype in ("keyword", "text", "constant_keyword", "wildcard", "match_only_text", "ip") \
            and isinstance(value, (int, float, bool)):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return value


def _values(node: Any, parts: tuple[str, ...], vector: bool) -> list[Any]:
    """Values at ``parts`` under ``node`` (dotted keys matched like the mapper), arrays flattened, nulls out.
    A vector is one value: its array is kept whole."""
    if not parts:
        if node is None:
            return []
        if isinstance(node, list) and not vector:
            return [v for item in node for v in _values(item, (), False)]
        return [node]
    if isinstance(node, list):
        return [v for item in node for v in _values(item, parts, vector)]
    if not isinstance(node, dict):
        return []
    out: list[Any] = []
    for key, value in node.items():
        kp = split_path(key)
        if kp == parts[:len(kp)]:
            out.extend(_values(value, parts[len(kp):], vector))
    return out


def fetch_fields(source: dict[str, Any] | None, patterns: list[str], mappings: Mappings,
                 root: str | None = None) -> dict[str, list[Any]]:
    """``fields`` of one hit. ``root`` is the nested path whose object ``source`` is (inner hits): field
    names keep their full path, values are read relative to it."""
    if source is None or not patterns:
        return {}
    out: dict[str, list[Any]] = {}
    groups: dict[str, list[str]] = {}
    for name in _matching(patterns, mappings):
        if root is not None and not name.startswith(root + "."):
            continue
        scope = mappings.nested_scope(name)
        if scope is not None and scope != root:
            top = _outermost_nested(name, root, mappings)
            groups.setdefault(top, []).append(name)
            continue
        src_path = mappings.source_paths.get(name, name)
        rel_src = src_path[len(root) + 1:] if root is not None else src_path
        vector = name in mappings.vector_fields
        values = [_format(mappings.leaf_types.get(name), v) for v in _values(source, split_path(rel_src), vector)]
        if values:
            out[name] = values
    for top, names in groups.items():
        rel_top = top[len(root) + 1:] if root is not None else top
        objects = [o for o in _values(source, split_path(rel_top), False) if isinstance(o, dict)]
        grouped = [g for g in (fetch_fields(o, names, mappings, top) for o in objects) if g]
        if grouped:
            out[top] = [{k[len(top) + 1:]: v for k, v in g.items()} for g in grouped]
    return out


def _outermost_nested(name: str, root: str | None, mappings: Mappings) -> str:
    """The first nested path below ``root`` on the way to ``name``."""
    for path in sorted(mappings.nested_paths, key=len):
        if name.startswith(path + ".") and (root is None or path.startswith(root + ".")):
            return path
    raise AssertionError(f"{name} has a nested scope but no nested path contains it")
