"""Merge policies: they only *select* merges and never do I/O (Lucene's ``MergePolicy``, style rule 6).

A policy looks at the current segments and returns a :class:`MergeSpecification`; a
:class:`~segstore.index.merge_scheduler.MergeScheduler` runs it and the writer commits the result. Everything a
policy may know besides the segments comes in a :class:`MergeContext` built by the writer: which segments are
being merged and how many bytes each segment's files take (the writer asks its directory; the policy stays
pure and can be tested with made-up sizes).

* :class:`NoMergePolicy`: never merges on its own; forced merges pick the smallest segments by live docs.
* :class:`TieredMergePolicy`: Lucene's ``TieredMergePolicy`` with OpenSearch's ``index.merge.policy.*``
  settings and defaults (:meth:`TieredMergePolicy.from_settings`).
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from segstore.errors import IllegalArgumentError
from segstore.index.segment_info import SegmentCommitInfo

__all__ = ["OneMerge", "MergeSpecification", "MergeContext", "MergePolicy", "NoMergePolicy",
           "TieredMergePolicy", "parse_byte_size", "int_setting"]


@dataclass
class OneMerge:
    """Segments to merge into one new segment (in index order: doc ids keep their relative order)."""

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


@dataclass(frozen=True)
class MergeContext:
    """What a policy may know besides the segments.

    ``merging``: names of segments already being merged. ``sizes``: bytes of each segment's files (live-docs
    generations excluded; segments missing from the map count ``max_doc`` bytes). ``segments_to_merge``
    (forced merges only): the segments the forced merge may touch, mapped to True for the segments that
    existed when it started and False for the results of its own earlier rounds (Lucene's ``isOriginal``).
    """

    merging: frozenset[str] = frozenset()
    sizes: Mapping[str, int] = field(default_factory=dict)
    segments_to_merge: Mapping[str, bool] | None = None

    def size_in_bytes(self, s: SegmentCommitInfo) -> int:
        """Bytes of the segment's files."""
        return int(self.sizes.get(s.name, s.info.max_doc))

    def live_size(self, s: SegmentCommitInfo) -> int:
        """Bytes of the live docs: file bytes x live ratio (Lucene's ``MergePolicy.size``)."""
        size = self.size_in_bytes(s)
        if s.info.max_doc <= 0:
            return size
        return int(size * (1.0 - s.del_count / s.info.max_doc))


def _index_order(merge: list[SegmentCommitInfo], segments: Sequence[SegmentCommitInfo]) -> list[SegmentCommitInfo]:
    order = {s.name: i for i, s in enumerate(segments)}
    return sorted(merge, key=lambda s: order[s.name])


class MergePolicy(ABC):
    """Selects merges. Implementations must be fast and side-effect free."""

    @abstractmethod
    def find_merges(self, segments: Sequence[SegmentCommitInfo], context: MergeContext) -> MergeSpecification:
        """Natural merges, asked for after each refresh and after each finished merge."""

    def find_forced_merges(
        self, segments: Sequence[SegmentCommitInfo], max_segment_count: int, context: MergeContext
    ) -> MergeSpecification:
        """Merges that bring the forced segments down to at most ``max_segment_count``.

        The smallest segments (by live docs) are merged together, so the fewest bytes are rewritten; with
        ``max_segment_count`` 1 a lone segment is still rewritten if it is an original one with deletions,
        which expunges them.
        """
        if max_segment_count < 1:
            raise ValueError(f"max_segment_count must be >= 1, got {max_segment_count}")
        forced = context.segments_to_merge
        eligible = [s for s in segments if s.name not in context.merging and (forced is None or s.name in forced)]
        if len(eligible) <= max_segment_count:
            only = eligible[0] if len(eligible) == 1 else None
            if max_segment_count == 1 and only is not None and only.del_count > 0 and (
                    forced is None or forced[only.name]):
                return MergeSpecification([OneMerge([only], "force_merge")])
            return MergeSpecification()
        by_size = sorted(eligible, key=lambda s: (s.num_docs, s.name))
        group = by_size[: len(eligible) - max_segment_count + 1]
        return MergeSpecification([OneMerge(_index_order(group, segments), "force_merge")])

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


# ------------------------------------------------------------------------------------------- settings

_UNITS = {"b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30,
          "t": 1 << 40, "tb": 1 << 40, "p": 1 << 50, "pb": 1 << 50}


def parse_byte_size(value: Any, name: str) -> int:
    """OpenSearch's ``ByteSizeValue.parseBytesSizeValue``: ``5gb``, ``2mb``, ``1.5kb``, ``512b``."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", str(value).lower())
    if m is None or m.group(2) not in _UNITS:
        raise IllegalArgumentError(f"failed to parse setting [{name}] with value [{value}] as a size in bytes: "
                                   "unit is missing or unrecognized")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def _double(settings: Any, name: str, default: float, minimum: float, maximum: float | None = None) -> float:
    value = settings.get(name, default)
    try:
        if isinstance(value, bool):
            raise ValueError
        d = float(value)
    except (TypeError, ValueError):
        raise IllegalArgumentError(f"Failed to parse value [{value}] for setting [{name}]") from None
    if d < minimum:
        raise IllegalArgumentError(f"Failed to parse value [{d}] for setting [{name}] must be >= {minimum}")
    if maximum is not None and d > maximum:
        raise IllegalArgumentError(f"Failed to parse value [{d}] for setting [{name}] must be <= {maximum}")
    return d


def int_setting(settings: Any, name: str, default: int, minimum: int) -> int:
    """An integer setting with OpenSearch's ``Setting.intSetting`` messages."""
    value = settings.get(name, default)
    try:
        if isinstance(value, bool) or (isinstance(value, float) and value != int(value)):
            raise ValueError
        i = int(value)
    except (TypeError, ValueError):
        raise IllegalArgumentError(f"Failed to parse value [{value}] for setting [{name}]") from None
    if i < minimum:
        raise IllegalArgumentError(f"Failed to parse value [{i}] for setting [{name}] must be >= {minimum}")
    return i


# --------------------------------------------------------------------------------------------- tiered

_MB = 1 << 20


class TieredMergePolicy(MergePolicy):
    """Lucene's ``TieredMergePolicy``: merges segments of about equal size, at most ``max_merge_at_once`` at
    a time, so that each "tier" (segments of about one size) holds at most ``segments_per_tier`` segments.

    Sizes are bytes of live docs (file bytes x live ratio). Segments below ``floor_segment`` count as that
    size when tiers and skew are computed, so tiny flushes merge together early. A segment larger than half
    of ``max_merged_segment`` stops taking part in natural merges unless it has more than
    ``deletes_pct_allowed`` percent deletions (and the index too). Among the candidate merges (windows of
    consecutive segments sorted by size) the one with the lowest score wins: skew (largest input / total;
    lower is better balanced) x total^0.05 (mildly prefer small merges) x (live ratio)^2 (prefer merges that
    reclaim deletes).
    """

    def __init__(self, *, segments_per_tier: float = 10.0, max_merge_at_once: int = 10,
                 max_merged_segment: int = 5 << 30, floor_segment: int = 2 * _MB,
                 deletes_pct_allowed: float = 20.0, force_merge_deletes_pct_allowed: float = 10.0) -> None:
        if segments_per_tier < 2.0:
            raise ValueError(f"segmentsPerTier must be >= 2.0 (got {segments_per_tier})")
        if max_merge_at_once < 2:
            raise ValueError(f"maxMergeAtOnce must be > 1 (got {max_merge_at_once})")
        if max_merged_segment <= 0 or floor_segment <= 0:
            raise ValueError("max_merged_segment and floor_segment must be > 0")
        if not 5.0 <= deletes_pct_allowed <= 50.0:
            raise ValueError(f"deletesPctAllowed must be between 5.0 and 50.0 (got {deletes_pct_allowed})")
        self.segments_per_tier = float(segments_per_tier)
        self.max_merge_at_once = int(max_merge_at_once)
        self.max_merged_segment = int(max_merged_segment)
        self.floor_segment = int(floor_segment)
        self.deletes_pct_allowed = float(deletes_pct_allowed)
        self.force_merge_deletes_pct_allowed = float(force_merge_deletes_pct_allowed)

    @classmethod
    def from_settings(cls, settings: Any) -> "TieredMergePolicy":
        """Build from index settings (anything with ``get(name, default)``), with OpenSearch's names,
        defaults, bounds and messages (``MergePolicyConfig``). As OpenSearch does, ``max_merge_at_once`` is
        lowered to ``segments_per_tier`` when it is larger."""
        p = "index.merge.policy."
        tier = _double(settings, p + "segments_per_tier", 10.0, 2.0)
        at_once = int_setting(settings, p + "max_merge_at_once", 10, 2)
        return cls(
            segments_per_tier=tier,
            max_merge_at_once=min(int(at_once), max(2, int(tier))),
            max_merged_segment=parse_byte_size(settings.get(p + "max_merged_segment", "5gb"),
                                               p + "max_merged_segment"),
            floor_segment=parse_byte_size(settings.get(p + "floor_segment", "2mb"), p + "floor_segment"),
            deletes_pct_allowed=_double(settings, p + "deletes_pct_allowed", 20.0, 5.0, 50.0),
            force_merge_deletes_pct_allowed=_double(settings, p + "expunge_deletes_allowed", 10.0, 0.0, 100.0),
        )

    def __repr__(self) -> str:
        return (f"TieredMergePolicy(segments_per_tier={self.segments_per_tier}, max_merge_at_once="
                f"{self.max_merge_at_once}, max_merged_segment={self.max_merged_segment}, floor_segment="
                f"{self.floor_segment}, deletes_pct_allowed={self.deletes_pct_allowed})")

    def _floor(self, size: int) -> int:
        return max(self.floor_segment, size)

    @staticmethod
    def _sorted(segments: Sequence[SegmentCommitInfo], ctx: MergeContext) -> list[SegmentCommitInfo]:
        """Largest live size first, ties by name (Lucene's ``getSortedBySegmentSize``)."""
        return sorted(segments, key=lambda s: (-ctx.live_size(s), s.name))

    # -- natural merges

    def find_merges(self, segments: Sequence[SegmentCommitInfo], context: MergeContext) -> MergeSpecification:
        ctx = context
        tot_bytes, min_bytes, del_docs, max_docs, merging_bytes = 0, None, 0, 0, 0
        eligible = []
        for s in self._sorted(segments, ctx):
            size = ctx.live_size(s)
            if s.name in ctx.merging:
                merging_bytes += size
                max_docs += s.info.max_doc - s.del_count  # its deletes are being reclaimed already
            else:
                eligible.append(s)
                del_docs += s.del_count
                max_docs += s.info.max_doc
            min_bytes = size if min_bytes is None else min(min_bytes, size)
            tot_bytes += size
        if not eligible:
            return MergeSpecification()
        total_del_pct = 100.0 * del_docs / max_docs if max_docs else 0.0
        allowed_del = int(self.deletes_pct_allowed * max_docs / 100)
        kept = []
        for s in eligible:  # grace out too-large segments, unless deletes make them worth rewriting
            seg_del_pct = 100.0 * s.del_count / s.info.max_doc if s.info.max_doc else 0.0
            if ctx.live_size(s) > self.max_merged_segment / 2 and (
                    total_del_pct <= self.deletes_pct_allowed or seg_del_pct <= self.deletes_pct_allowed):
                tot_bytes -= ctx.live_size(s)
                allowed_del -= s.del_count
            else:
                kept.append(s)
        allowed_del = max(0, allowed_del)
        merge_factor = int(min(self.max_merge_at_once, self.segments_per_tier))
        level = max(min_bytes or 0, self.floor_segment)
        left = tot_bytes
        allowed_segs = 0.0
        while True:
            at_level = left / level
            if at_level < self.segments_per_tier or level == self.max_merged_segment:
                allowed_segs += math.ceil(at_level)
                break
            allowed_segs += self.segments_per_tier
            left -= int(self.segments_per_tier * level)
            level = min(self.max_merged_segment, level * merge_factor)
        allowed_segs = max(allowed_segs, self.segments_per_tier)
        return self._do_find_merges(kept, segments, self.max_merged_segment, merge_factor, int(allowed_segs),
                                    allowed_del, "natural", ctx, merging_bytes >= self.max_merged_segment)

    def _do_find_merges(self, sorted_eligible: list[SegmentCommitInfo], segments: Sequence[SegmentCommitInfo],
                        max_merge_bytes: int, merge_factor: int, allowed_segs: int, allowed_del: int,
                        kind: str, ctx: MergeContext, max_merge_running: bool) -> MergeSpecification:
        spec = MergeSpecification()
        eligible = list(sorted_eligible)
        taken: set[str] = set()
        have_one_large = False
        while True:
            eligible = [s for s in eligible if s.name not in taken]
            if not eligible:
                return spec
            if kind == "natural" and len(eligible) <= allowed_segs and sum(
                    s.del_count for s in eligible) <= allowed_del:
                return spec
            best: list[SegmentCommitInfo] | None = None
            best_score = 0.0
            best_too_large = False
            for start in range(len(eligible)):
                candidate: list[SegmentCommitInfo] = []
                hit_too_large = False
                after, this_merge = 0, 0
                idx = start
                while idx < len(eligible) and len(candidate) < merge_factor and this_merge < max_merge_bytes:
                    s = eligible[idx]
                    size = ctx.live_size(s)
                    idx += 1
                    if after + size > max_merge_bytes:
                        hit_too_large = True
                        if not candidate:  # a segment that cannot be merged with others: a singleton
                            candidate.append(s)
                            this_merge += size
                        continue  # keep packing smaller segments into this merge
                    candidate.append(s)
                    this_merge += size
                    after += size
                first = candidate[0]
                if (not hit_too_large and kind == "natural" and this_merge < ctx.live_size(first) * 1.5
                        and first.del_count < first.info.max_doc * self.deletes_pct_allowed / 100):
                    continue  # would barely grow the largest input: O(N^2) rewriting
                if len(candidate) == 1 and first.del_count == 0:
                    continue  # a singleton merge without deletes makes no sense
                if best is not None and not hit_too_large and len(candidate) < merge_factor:
                    break  # only smaller merges from here on
                score = self.score(candidate, hit_too_large, ctx)
                if (best is None or score < best_score) and (not hit_too_large or not max_merge_running):
                    best, best_score, best_too_large = candidate, score, hit_too_large
            if best is None:
                return spec
            # Only one max-sized merge per round (a burst of deletes must not start many large merges).
            if not have_one_large or not best_too_large or kind == "expunge_deletes":
                have_one_large |= best_too_large
                spec.merges.append(OneMerge(_index_order(best, segments), kind))
            taken.update(s.name for s in best)

    def score(self, candidate: list[SegmentCommitInfo], hit_too_large: bool, ctx: MergeContext) -> float:
        """Lower is better: skew x bytes^0.05 x (live ratio)^2."""
        after = sum(ctx.live_size(s) for s in candidate)
        floored = sum(self._floor(ctx.live_size(s)) for s in candidate)
        before = sum(ctx.size_in_bytes(s) for s in candidate)
        if hit_too_large:  # will not cascade, so skew does not matter: pretend it is perfect
            skew = 1.0 / int(min(self.max_merge_at_once, self.segments_per_tier))
        else:
            skew = self._floor(ctx.live_size(candidate[0])) / floored
        non_del = after / before if before else 1.0
        return skew * math.pow(max(after, 1), 0.05) * non_del * non_del

    # -- forced merges

    def find_forced_merges(
        self, segments: Sequence[SegmentCommitInfo], max_segment_count: int, context: MergeContext
    ) -> MergeSpecification:
        if max_segment_count < 1:
            raise ValueError(f"max_segment_count must be >= 1, got {max_segment_count}")
        ctx = context
        forced = ctx.segments_to_merge if ctx.segments_to_merge is not None else {s.name: True for s in segments}
        candidates, total, running = [], 0, False
        for s in self._sorted(segments, ctx):
            if s.name not in forced:
                continue
            if s.name in ctx.merging:
                running = True
                continue
            candidates.append(s)
            total += ctx.live_size(s)
        if max_segment_count == 1:
            max_bytes = 1 << 62
        else:
            max_bytes = int(max(total / max_segment_count, self.max_merged_segment) * 1.25)
        found_deletes = any(s.del_count and forced[s.name] for s in candidates)
        candidates = [s for s in candidates if s.del_count or ctx.live_size(s) < max_bytes]
        if not candidates:
            return MergeSpecification()
        if not found_deletes and ((1 < max_segment_count >= len(candidates))
                                  or (max_segment_count == 1 and len(candidates) == 1)):
            return MergeSpecification()  # already merged
        if running:
            return MergeSpecification()
        if max_segment_count == 1 and total < max_bytes:
            return MergeSpecification([OneMerge(_index_order(candidates, segments), "force_merge")])
        spec = MergeSpecification()
        index = len(candidates) - 1
        resulting = len(candidates)
        while True:  # bin-pack from the smallest segments up
            group: list[SegmentCommitInfo] = []
            group_bytes = 0
            while index >= 0 and resulting > max_segment_count:
                s = candidates[index]
                size = ctx.size_in_bytes(s)
                if group_bytes + size <= max_bytes or len(group) < 2:
                    group.append(s)
                    index -= 1
                    group_bytes += size
                    if len(group) > 1:
                        resulting -= 1
                else:
                    break
            if len(group) > 1:
                spec.merges.append(OneMerge(_index_order(group, segments), "force_merge"))
            else:
                return spec

    def find_forced_deletes_merges(
        self, segments: Sequence[SegmentCommitInfo], context: MergeContext
    ) -> MergeSpecification:
        """Segments with more than ``expunge_deletes_allowed`` percent deletions, merged as natural merges
        would group them (Lucene's ``findForcedDeletesMerges``)."""
        eligible = [s for s in self._sorted(segments, context) if s.name not in context.merging
                    and s.info.max_doc and 100.0 * s.del_count / s.info.max_doc > self.force_merge_deletes_pct_allowed]
        if not eligible:
            return MergeSpecification()
        return self._do_find_merges(eligible, segments, self.max_merged_segment, 1 << 31, 1 << 31, 0,
                                    "expunge_deletes", context, False)
