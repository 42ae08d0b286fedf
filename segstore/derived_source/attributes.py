"""Segment attributes that say which paths of a segment are derived (derived-source.md §1.5, §8).

Keys are segstore's own. Values are comma-joined full paths; an absent key means no path. Parsing keeps
empty entries, as upstream does, and exact case is preserved (the 3.6 lower-casing bug must not come back).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["ROOT_KEY", "NESTED_KEY", "format_paths", "parse_paths", "derived_paths", "union_attributes"]

ROOT_KEY = "segstore.derived_source.root"
NESTED_KEY = "segstore.derived_source.nested"


def format_paths(paths: Iterable[str]) -> str:
    return ",".join(paths)


def parse_paths(value: str | None) -> list[str]:
    return [] if value is None else value.split(",")


def derived_paths(attributes: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(root-scope paths, nested-scope paths) listed by a segment's attributes."""
    return parse_paths(attributes.get(ROOT_KEY)), parse_paths(attributes.get(NESTED_KEY))


def union_attributes(inputs: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """The derived-path attributes of a merged segment: the union of its inputs', in first-seen order."""
    root: dict[str, None] = {}
    nested: dict[str, None] = {}
    for attrs in inputs:
        r, n = derived_paths(attrs)
        root.update(dict.fromkeys(p for p in r if p))
        nested.update(dict.fromkeys(p for p in n if p))
    out: dict[str, str] = {}
    if root:
        out[ROOT_KEY] = format_paths(root)
    if nested:
        out[NESTED_KEY] = format_paths(nested)
    return out
