"""Merge policies are pure selectors (style rule 6): ``TieredMergePolicy`` with OpenSearch's settings and
Lucene's algorithm (tiers, floor, too-large segments, deletes, skew score, forced and expunge-deletes
merges), ``NoMergePolicy``, and a growth simulation that keeps the segment count logarithmic."""

from __future__ import annotations

import random

import pytest

from segstore.errors import IllegalArgumentError
from segstore.index.merge_policy import (
    MergeContext,
    MergeSpecification,
    NoMergePolicy,
    TieredMergePolicy,
    parse_byte_size,
)
from segstore.index.segment_info import SegmentCommitInfo, SegmentInfo
from segstore.index.settings import IndexSettings

MB = 1 << 20


def seg(name: str, max_doc: int = 1000, del_count: int = 0) -> SegmentCommitInfo:
    return SegmentCommitInfo(SegmentInfo(name, b"\0" * 16, max_doc, "SegStore1"), 1 if del_count else 0, del_count)


def ctx(sizes: dict[str, int], merging: set[str] = frozenset(), forced: dict[str, bool] | None = None) -> MergeContext:
    return MergeContext(frozenset(merging), sizes, forced)


def names(spec: MergeSpecification) -> list[list[str]]:
    return [m.names for m in spec.merges]


# ------------------------------------------------------------------------------------------- settings


def test_defaults_are_opensearch_defaults() -> None:
    p = TieredMergePolicy.from_settings(IndexSettings.parse({}))
    assert (p.segments_per_tier, p.max_merge_at_once, p.max_merged_segment, p.floor_segment,
            p.deletes_pct_allowed, p.force_merge_deletes_pct_allowed) == (10.0, 10, 5 << 30, 2 * MB, 20.0, 10.0)


def test_settings_are_parsed() -> None:
    p = TieredMergePolicy.from_settings(IndexSettings.parse({"index.merge.policy": {
        "segments_per_tier": "4", "max_merge_at_once": 3, "max_merged_segment": "1.5gb",
        "floor_segment": "512kb", "deletes_pct_allowed": "33"}}))
    assert (p.segments_per_tier, p.max_merge_at_once, p.max_merged_segment, p.floor_segment,
            p.deletes_pct_allowed) == (4.0, 3, int(1.5 * (1 << 30)), 512 << 10, 33.0)


def test_max_merge_at_once_is_lowered_to_segments_per_tier() -> None:
    # OpenSearch's MergePolicyConfig.adjustMaxMergeAtOnceIfNeeded
    p = TieredMergePolicy.from_settings({"index.merge.policy.segments_per_tier": 5})
    assert p.max_merge_at_once == 5


@pytest.mark.parametrize(("key", "value", "message"), [
    ("segments_per_tier", 1.5, "Failed to parse value [1.5] for setting [index.merge.policy.segments_per_tier] "
                               "must be >= 2.0"),
    ("max_merge_at_once", 1, "Failed to parse value [1] for setting [index.merge.policy.max_merge_at_once] "
                             "must be >= 2"),
    ("deletes_pct_allowed", 4, "Failed to parse value [4.0] for setting [index.merge.policy.deletes_pct_allowed] "
                               "must be >= 5.0"),
    ("deletes_pct_allowed", 51, "must be <= 50.0"),
    ("floor_segment", "12", "failed to parse setting [index.merge.policy.floor_segment] with value [12] as a "
                            "size in bytes: unit is missing or unrecognized"),
    ("max_merged_segment", "lots", "unit is missing or unrecognized"),
])
def test_invalid_settings(key: str, value: object, message: str) -> None:
    with pytest.raises(IllegalArgumentError) as e:
        TieredMergePolicy.from_settings({f"index.merge.policy.{key}": value})
    assert message in str(e.value)


def test_parse_byte_size() -> None:
    assert [parse_byte_size(v, "x") for v in ("5gb", "2mb", "1.5kb", "10b", "1t", "3 MB")] == [
        5 << 30, 2 << 20, 1536, 10, 1 << 40, 3 << 20]


# ------------------------------------------------------------------------------------- natural merges


def test_no_merge_policy_never_merges_naturally() -> None:
    segs = [seg(f"_{i}") for i in range(50)]
    assert not NoMergePolicy().find_merges(segs, ctx({s.name: 1000 for s in segs}))


def test_below_the_tier_budget_nothing_merges() -> None:
    segs = [seg(f"_{i}") for i in range(10)]
    assert not TieredMergePolicy().find_merges(segs, ctx({s.name: 100_000 for s in segs}))


def test_eleventh_small_segment_triggers_one_merge_of_ten() -> None:
    segs = [seg(f"_{i}") for i in range(11)]
    spec = TieredMergePolicy().find_merges(segs, ctx({s.name: 100_000 for s in segs}))
    assert len(spec.merges) == 1 and len(spec.merges[0].segments) == 10
    order = [s.name for s in segs]  # in index order
    assert spec.merges[0].names == sorted(spec.merges[0].names, key=order.index)


def test_policy_is_pure_and_deterministic() -> None:
    rng = random.Random(1)
    segs = [seg(f"_{i}", 1000, rng.randrange(0, 300)) for i in range(40)]
    sizes = {s.name: rng.randrange(1, 50) * MB for s in segs}
    before = (list(segs), dict(sizes))
    p = TieredMergePolicy()
    a, b = p.find_merges(segs, ctx(sizes)), p.find_merges(segs, ctx(sizes))
    assert names(a) == names(b) and a.merges
    assert (segs, sizes) == before
    picked = [n for m in a.merges for n in m.names]
    assert len(picked) == len(set(picked))  # no segment in two merges


def test_merging_segments_are_never_selected() -> None:
    segs = [seg(f"_{i}") for i in range(25)]
    sizes = {s.name: 100_000 for s in segs}
    busy = {f"_{i}" for i in range(10)}
    spec = TieredMergePolicy().find_merges(segs, ctx(sizes, busy))
    assert spec.merges and not busy & {n for m in spec.merges for n in m.names}


def test_merges_are_balanced_by_size() -> None:
    # 9 big (40 MB) and 20 small (1 MB): the small ones merge together, not into a big one (skew)
    segs = [seg(f"_b{i}") for i in range(9)] + [seg(f"_s{i}") for i in range(20)]
    sizes = {s.name: (40 if s.name.startswith("_b") else 1) * MB for s in segs}
    spec = TieredMergePolicy().find_merges(segs, ctx(sizes))
    assert spec.merges
    for m in spec.merges:
        assert all(n.startswith("_s") for n in m.names), m.names


def test_too_large_segments_are_graced_out() -> None:
    p = TieredMergePolicy(max_merged_segment=100 * MB, segments_per_tier=2, max_merge_at_once=2)
    segs = [seg("_0"), seg("_1"), seg("_2")]
    sizes = {"_0": 60 * MB, "_1": 60 * MB, "_2": 60 * MB}  # each > max/2, no deletes
    assert not p.find_merges(segs, ctx(sizes))


def test_deletes_over_the_allowed_percentage_are_reclaimed() -> None:
    p = TieredMergePolicy()
    segs = [seg("_0", 1000, 0), seg("_1", 1000, 600)]  # 30% of the index deleted > 20%
    spec = p.find_merges(segs, ctx({"_0": 10 * MB, "_1": 10 * MB}))
    assert spec.merges and "_1" in spec.merges[0].names
    # under the allowed percentage nothing happens
    segs = [seg("_0", 1000, 0), seg("_1", 1000, 100)]
    assert not p.find_merges(segs, ctx({"_0": 10 * MB, "_1": 10 * MB}))


def test_size_is_bytes_of_live_docs() -> None:
    c = ctx({"_0": 1000})
    assert c.live_size(seg("_0", 100, 25)) == 750
    assert MergeContext().size_in_bytes(seg("_9", 123)) == 123  # unknown size: max_doc


def test_growth_keeps_segment_count_logarithmic() -> None:
    """Flush 600 segments of 1-3 MB, applying each selected merge at once: the count stays within the
    tier budget and no merge barely grows its largest input (the 1.5x rule)."""
    rng = random.Random(7)
    p = TieredMergePolicy(floor_segment=2 * MB)
    segs: list[SegmentCommitInfo] = []
    sizes: dict[str, int] = {}
    counter = 0
    worst = 0
    rewritten = 0
    for _ in range(600):
        name = f"_{counter}"
        counter += 1
        segs.append(seg(name))
        sizes[name] = rng.randrange(1, 4) * MB
        while spec := p.find_merges(segs, ctx(sizes)):
            for m in spec.merges:
                total = sum(sizes[n] for n in m.names)
                largest = max(sizes[n] for n in m.names)
                assert total >= 1.5 * largest or largest < p.floor_segment, m.names
                rewritten += total
                merged = f"_{counter}"
                counter += 1
                segs = [s for s in segs if s.name not in m.names] + [seg(merged)]
                sizes[merged] = total
                for n in m.names:
                    del sizes[n]
        worst = max(worst, len(segs))
    assert worst <= 30  # ~1.2 GB: a few tiers of <= 10 segments
    flushed = sum(sizes.values())
    assert rewritten < 4 * flushed  # each byte is rewritten about once per tier


# -------------------------------------------------------------------------------------- forced merges


@pytest.mark.parametrize("policy", [TieredMergePolicy(), NoMergePolicy()], ids=["tiered", "none"])
def test_force_merge_to_one(policy) -> None:  # type: ignore[no-untyped-def]
    segs = [seg(f"_{i}") for i in range(25)]
    spec = policy.find_forced_merges(segs, 1, ctx({s.name: (i + 1) * MB for i, s in enumerate(segs)}))
    assert names(spec) == [[s.name for s in segs]]


@pytest.mark.parametrize("policy", [TieredMergePolicy(), NoMergePolicy()], ids=["tiered", "none"])
def test_force_merge_single_segment_only_if_original_with_deletes(policy) -> None:  # type: ignore[no-untyped-def]
    one = [seg("_0", 100, 5)]
    assert names(policy.find_forced_merges(one, 1, ctx({"_0": MB}, forced={"_0": True}))) == [["_0"]]
    assert not policy.find_forced_merges(one, 1, ctx({"_0": MB}, forced={"_0": False}))
    assert not policy.find_forced_merges([seg("_0")], 1, ctx({"_0": MB}))


def test_force_merge_only_touches_segments_to_merge() -> None:
    segs = [seg(f"_{i}") for i in range(6)]
    forced = {"_0": True, "_1": True, "_2": True}
    spec = TieredMergePolicy().find_forced_merges(segs, 1, ctx({s.name: MB for s in segs}, forced=forced))
    assert names(spec) == [["_0", "_1", "_2"]]


def test_force_merge_to_n_segments_converges() -> None:
    p = TieredMergePolicy()
    rng = random.Random(3)
    segs = [seg(f"_{i}") for i in range(37)]
    sizes = {s.name: rng.randrange(1, 100) * MB for s in segs}
    forced = {s.name: True for s in segs}
    counter = 100
    for _ in range(10):
        spec = p.find_forced_merges(segs, 4, ctx(sizes, forced=forced))
        if not spec:
            break
        for m in spec.merges:
            merged = f"_{counter}"
            counter += 1
            sizes[merged] = sum(sizes.pop(n) for n in m.names)
            segs = [s for s in segs if s.name not in m.names] + [seg(merged)]
            for n in m.names:
                forced.pop(n)
            forced[merged] = False
    assert len(segs) <= 4


def test_force_merge_waits_while_its_segments_are_merging() -> None:
    segs = [seg(f"_{i}") for i in range(5)]
    assert not TieredMergePolicy().find_forced_merges(segs, 1, ctx({s.name: MB for s in segs}, {"_0", "_1"}))


def test_force_merge_rejects_zero() -> None:
    with pytest.raises(ValueError):
        TieredMergePolicy().find_forced_merges([seg("_0")], 0, ctx({}))


def test_forced_deletes_merges_use_expunge_threshold() -> None:
    segs = [seg("_0", 100, 5), seg("_1", 100, 11), seg("_2", 100, 40), seg("_3", 100, 0)]
    sizes = {s.name: MB for s in segs}
    spec = TieredMergePolicy().find_forced_deletes_merges(segs, ctx(sizes))
    assert names(spec) == [["_1", "_2"]]  # > 10% deleted (expunge_deletes_allowed), merged together
    spec = NoMergePolicy().find_forced_deletes_merges(segs, ctx(sizes))
    assert names(spec) == [["_0"], ["_1"], ["_2"]]  # the base policy: every segment with deletes, alone
