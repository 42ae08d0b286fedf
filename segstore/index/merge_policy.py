"""Merge policies: they only *select* merges and never do I/O (Lucene's ``MergePolicy``).

A policy looks at the current segments and returns a :class:`MergeSpecification`; a
:class:`~segstore.index.merge_scheduler.MergeScheduler` runs it and the writer commits the result. This
module holds the contract, the forced-merge selection every policy shares, and :class:`NoMergePolicy`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from segstore.index.segment_info import SegmentCommitInfo

__all__ = ["OneMerge", "MergeSpecification", "MergeContext", "MergePolicy", "NoMergePolicy"]


@dataclass
class OneMerge:
    """Segments to merge into one new segment."""

    segments: list[SegmentCommitInfo]
    reason: str = "natural"

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.segments]


@dataclass
class MergeSpecification:
    merges: list[OneMerge] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.merges)


@dataclass
class MergeContext:
    """What a policy may know besides the segments: which are already being merged."""

    merging: frozenset[str] = frozenset()


class MergePolicy(ABC):
    """Selects merges. Implementations must be fast and side-effect free."""

    @abstractmethod
    def find_merges(self, segments: Sequence[SegmentCommitInfo], context: MergeContext) -> MergeSpecification:
        """Natural merges, called after a refresh."""

    def find_forced_merges(
        self, segments: Sequence[SegmentCommitInfo], max_segment_count: int, context: MergeContext
    ) -> MergeSpecification:
        """Merges that bring the index down to at most ``max_segment_count`` segments.

        The smallest segments are merged together (so the fewest bytes are rewritten); with
        ``max_segment_count`` 1 a lone segment is still rewritten if it has deletions, which expunges them.
        """
        if max_segment_count < 1:
            raise ValueError(f"max_segment_count must be >= 1, got {max_segment_count}")
        eligible = [s for s in segments if s.name not in context.merging]
        if len(eligible) <= max_segment_count:
            if max_segment_count == 1 and len(eligible) == 1 and eligible[0].del_count > 0:
                return MergeSpecification([OneMerge(list(eligible), "force_merge")])
            return MergeSpecification()
        by_size = sorted(eligible, key=lambda s: (s.num_docs, s.name))
        group = by_size[: len(eligible) - max_segment_count + 1]
        order = {s.name: i for i, s in enumerate(segments)}
        group.sort(key=lambda s: order[s.name])  # keep index order: doc ids stay in insertion order
        return MergeSpecification([OneMerge(group, "force_merge")])

    def find_forced_deletes_merges(
        self, segments: Sequence[SegmentCommitInfo], context: MergeContext
    ) -> MergeSpecification:
        """Rewrite every segment that has deletions (``only_expunge_deletes``), each on its own."""
        return MergeSpecification([OneMerge([s], "expunge_deletes") for s in segments
                                   if s.del_count > 0 and s.name not in context.merging])


class NoMergePolicy(MergePolicy):
    """Never selects a natural merge (forced merges still work)."""

    def find_merges(self, segments: Sequence[SegmentCommitInfo], context: MergeContext) -> MergeSpecification:
        return MergeSpecification()
