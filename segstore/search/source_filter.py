"""``_source`` includes/excludes filtering with wildcards, as OpenSearch's ``XContentMapValues.filter``.

A path is kept when it matches an include pattern (or lies under an object an include names, or is an
object on the way to an include) and matches no exclude pattern; excludes win. Patterns use ``*`` wildcards
over full dotted paths. Arrays are filtered element by element; objects left empty by an include filter
are dropped, as OpenSearch does.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

__all__ = ["SourceFilter", "parse_source_param"]


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


def _matches(patterns: Sequence[str], path: str) -> bool:
    return any(_regex(p).match(path) for p in patterns)


def _could_match_below(patterns: Sequence[str], path: str) -> bool:
    """True if some pattern may match a path under ``path`` (so an object must be kept and descended)."""
    prefix = path + "."
    for p in patterns:
        head = p.split("*", 1)[0]
        if head.startswith(prefix) or prefix.startswith(head) or _regex(p).match(prefix):
            return True
    return False


class SourceFilter:
    """Immutable includes/excludes; ``fetch=False`` means no ``_source`` at all."""

    def __init__(self, includes: Sequence[str] = (), excludes: Sequence[str] = (), fetch: bool = True) -> None:
        self.includes = tuple(includes)
        self.excludes = tuple(excludes)
        self.fetch = fetch

    @property
    def is_noop(self) -> bool:
        return self.fetch and not self.includes and not self.excludes

    def keeps(self, path: str) -> bool:
        """Would the final filter keep (something at) ``path``? Used to decide vector injection."""
        if not self.fetch or _matches(self.excludes, path):
            return False
        if not self.includes:
            return True
        return _matches(self.includes, path) or _could_match_below(self.includes, path) or any(
            _matches(self.includes, ".".join(path.split(".")[:i])) for i in range(1, path.count(".") + 1))

    def apply(self, source: dict[str, Any]) -> dict[str, Any]:
        if self.is_noop:
            return source
        return self._map(source, "", included=not self.includes)

    def _map(self, node: dict[str, Any], prefix: str, included: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            path = f"{prefix}{key}"
            if _matches(self.excludes, path):
                continue
            inc = included or _matches(self.includes, path)
            if isinstance(value, dict):
                if inc or _could_match_below(self.includes, path):
                    sub = self._map(value, path + ".", inc)
                    if sub or inc:
                        out[key] = sub
            elif isinstance(value, list):
                if inc or _could_match_below(self.includes, path):
                    items = self._list(value, path, inc)
                    if items or inc:
                        out[key] = items
            elif inc:
                out[key] = value
        return out

    def _list(self, items: list[Any], path: str, included: bool) -> list[Any]:
        out = []
        for v in items:
            if isinstance(v, dict):
                sub = self._map(v, path + ".", included)
                if sub or (included and not v):  # objects emptied by the filter are dropped, as OpenSearch
                    out.append(sub)
            elif isinstance(v, list):
                out.append(self._list(v, path, included))
            elif included:
                out.append(v)
        return out


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.split(",") if v]
    return [str(v) for v in value]


def parse_source_param(source: Any = None, includes: Any = None, excludes: Any = None) -> SourceFilter:
    """Build a filter from a body ``_source`` value and/or ``_source_includes``/``_source_excludes``."""
    if source is False or source == "false":
        return SourceFilter(fetch=False)
    inc, exc = _as_list(includes), _as_list(excludes)
    if isinstance(source, dict):
        inc += _as_list(source.get("includes", source.get("include")))
        exc += _as_list(source.get("excludes", source.get("exclude")))
    elif isinstance(source, (str, list)) and source not in ("true", True):
        inc += _as_list(source)
    both = sorted(set(inc) & set(exc))
    if both:
        from segstore.errors import IllegalArgumentError  # noqa: PLC0415

        raise IllegalArgumentError("The same entry cannot be both included and excluded in _source.")
    return SourceFilter(inc, exc)
