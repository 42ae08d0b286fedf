"""The state every CheckIndex mixin shares, and :meth:`CheckBase._add`, the one way a finding is recorded.

:class:`~segstore.index.check.check_index.CheckIndex` is assembled from one mixin per checked area
(:mod:`~segstore.index.check.segment`, :mod:`~segstore.index.check.fields`,
:mod:`~segstore.index.check.round_trip`, :mod:`~segstore.index.check.catalog`,
:mod:`~segstore.index.check.translog`); its constructor sets the attributes declared here.
"""

from __future__ import annotations

from typing import Any

from segstore.index.catalog import Catalog
from segstore.index.check.location import IndexLocation
from segstore.index.check.status import Problem
from segstore.store.fs_directory import FSDirectory

__all__ = ["CheckBase"]


class _FailFast(Exception):
    """Unwinds every check up to :meth:`CheckIndex.run` once ``fail_fast`` has seen its first error."""


class CheckBase:
    """Options and handles that :class:`CheckIndex` sets in its constructor (declared here so that each
    mixin type-checks on its own)."""

    catalog: Catalog
    location: IndexLocation
    level: int
    fail_fast: bool
    recall_queries: int
    min_recall: float
    round_trip_limit: int | None
    directory: FSDirectory | None
    _settings: Any
    _mappings: Any
    _stop: bool

    def _add(self, target: list[Problem], p: Problem) -> None:
        if p.file is not None and any(q.file == p.file and q.error == p.error and q.message == p.message
                                      for q in target):
            return  # the same damage seen by two checks
        target.append(p)
        if self.fail_fast and p.severity == "error":
            self._stop = True
            raise _FailFast()
