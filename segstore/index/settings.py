"""Index settings: parsing, defaults and validation with OpenSearch's names and messages.

Settings arrive nested (``{"index": {"knn": true}}``), flat (``{"index.knn": true}``) or without the
``index.`` prefix (``{"knn": true}``); they are normalised to flat ``index.*`` keys with string-typed values
validated per setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from segstore.errors import IllegalArgumentError

__all__ = ["IndexSettings", "flatten_settings", "parse_time_seconds", "DYNAMIC", "PRIVATE", "KNOWN"]

# name -> default (None = no default value, only accepted)
_KNOWN: dict[str, Any] = {
    "index.knn": False,
    "index.knn.algo_param.ef_search": 100,
    "index.knn.derived_source.enabled": None,  # resolved: true when index.knn is true
    "index.knn.advanced.approximate_threshold": 0,
    "index.knn.advanced.filtered_exact_search_threshold": None,
    "index.knn.disk.vector.shard_level_rescoring_disabled": False,
    "index.translog.durability": "request",
    "index.translog.sync_interval": "5s",
    "index.translog.flush_threshold_size": "512mb",
    "index.number_of_shards": 1,
    "index.number_of_replicas": 1,
    "index.refresh_interval": "1s",
    "index.max_result_window": 10000,
    "index.max_inner_result_window": 100,
    "index.merge.policy.segments_per_tier": 10.0,
    "index.merge.policy.max_merge_at_once": 10,
    "index.merge.policy.max_merged_segment": "5gb",
    "index.merge.policy.floor_segment": "2mb",
    "index.merge.policy.deletes_pct_allowed": 20.0,
    "index.merge.policy.expunge_deletes_allowed": 10.0,
    "index.merge.scheduler.max_thread_count": None,  # OpenSearch: max(1, min(4, cores / 2)), see merge_scheduler
    "index.mapping.total_fields.limit": 1000,
    "index.mapping.depth.limit": 20,
    # Read-only settings OpenSearch reports; accepted so a GET _settings body can be PUT back.
    "index.uuid": None,
    "index.creation_date": None,
    "index.provided_name": None,
    "index.version.created": None,
}
KNOWN = frozenset(_KNOWN)
# Settings an open index can change (``Property.Dynamic`` in OpenSearch and the k-NN plugin)
DYNAMIC = frozenset({
    "index.knn.algo_param.ef_search", "index.knn.advanced.approximate_threshold",
    "index.knn.advanced.filtered_exact_search_threshold", "index.knn.disk.vector.shard_level_rescoring_disabled",
    "index.translog.durability", "index.translog.sync_interval", "index.translog.flush_threshold_size",
    "index.number_of_replicas", "index.refresh_interval", "index.max_result_window", "index.max_inner_result_window",
    "index.merge.policy.segments_per_tier", "index.merge.policy.max_merge_at_once",
    "index.merge.policy.max_merged_segment", "index.merge.policy.floor_segment",
    "index.merge.policy.deletes_pct_allowed", "index.merge.policy.expunge_deletes_allowed",
    "index.merge.scheduler.max_thread_count", "index.mapping.total_fields.limit", "index.mapping.depth.limit",
})
# ``Property.PrivateIndex``: managed by OpenSearch, never updatable
PRIVATE = frozenset({"index.uuid", "index.creation_date", "index.provided_name", "index.version.created"})


def flatten_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Flatten nested settings and add the ``index.`` prefix where it is missing."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix if prefix.startswith("index.") else f"index.{prefix}"] = value

    walk("", settings or {})
    return flat


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise IllegalArgumentError(
        f"Failed to parse value [{value}] as only [true] or [false] are allowed.", "illegal_argument_exception"
    )


def _int(name: str, value: Any, minimum: int | None = None) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        iv = int(value)
        if isinstance(value, float) and iv != value:
            raise ValueError
    except (TypeError, ValueError):
        raise IllegalArgumentError(f"Failed to parse value [{value}] for setting [{name}]") from None
    if minimum is not None and iv < minimum:
        raise IllegalArgumentError(f"Failed to parse value [{iv}] for setting [{name}] must be >= {minimum}")
    return iv


def parse_time_seconds(value: Any, name: str) -> float:
    """Parse OpenSearch time values (``5s``, ``100ms``, ``1m``) into seconds."""
    s = str(value).strip()
    for unit, mult in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0), ("d", 86400.0)):
        if s.endswith(unit) and s[: -len(unit)].replace(".", "", 1).lstrip("-").isdigit():
            return float(s[: -len(unit)]) * mult
    if s == "-1":
        return -1.0
    raise IllegalArgumentError(
        f"failed to parse setting [{name}] with value [{value}] as a time value: unit is missing or unrecognized"
    )


@dataclass(frozen=True)
class IndexSettings:
    """Validated settings of one index. ``raw`` keeps every flat key as given (for ``GET _settings``)."""

    raw: dict[str, Any]
    knn: bool
    ef_search: int
    derived_source: bool
    approximate_threshold: int
    durability: str
    sync_interval: float

    @classmethod
    def parse(cls, settings: Mapping[str, Any] | None, *, source_enabled: bool = True) -> "IndexSettings":
        flat = flatten_settings(settings)
        for name in flat:
            if name not in _KNOWN:
                raise IllegalArgumentError(
                    f"unknown setting [{name}] please check that any required plugins are installed, "
                    "or check the breaking changes documentation for removed settings"
                )
        knn = _bool("index.knn", flat.get("index.knn", False))
        ds_value = flat.get("index.knn.derived_source.enabled")
        if ds_value is None:
            derived = knn  # the k-NN setting provider injects true for index.knn: true indices
        else:
            derived = _bool("index.knn.derived_source.enabled", ds_value)
            if derived and not knn:
                raise IllegalArgumentError(
                    'Index setting "index.knn" must be true in order to enabled derived source'
                )
        durability = str(flat.get("index.translog.durability", "request")).lower()
        if durability not in ("request", "async"):
            raise IllegalArgumentError(
                f"Failed to parse value [{flat['index.translog.durability']}] for setting "
                "[index.translog.durability]: only [REQUEST, ASYNC] are allowed"
            )
        # Merge settings fail index creation, not the first refresh (OpenSearch's names, bounds, messages).
        from segstore.index.merge_policy import TieredMergePolicy  # noqa: PLC0415 - avoids an import cycle
        from segstore.index.merge_scheduler import ConcurrentMergeScheduler  # noqa: PLC0415

        TieredMergePolicy.from_settings(flat)
        ConcurrentMergeScheduler.from_settings(flat)
        _check_values(flat)
        return cls(
            raw=flat,
            knn=knn,
            ef_search=_int("index.knn.algo_param.ef_search", flat.get("index.knn.algo_param.ef_search", 100), 2),
            derived_source=derived and source_enabled,
            approximate_threshold=_int(
                "index.knn.advanced.approximate_threshold", flat.get("index.knn.advanced.approximate_threshold", 0)
            ),
            durability=durability,
            sync_interval=parse_time_seconds(flat.get("index.translog.sync_interval", "5s"),
                                             "index.translog.sync_interval"),
        )

    def get(self, name: str, default: Any = None) -> Any:
        return self.raw.get(name, _KNOWN.get(name, default) if default is None else default)


def _check_values(flat: dict[str, Any]) -> None:
    """Type and bound checks of the plain dynamic settings (``Setting#get`` in OpenSearch)."""
    for name, minimum in (("index.number_of_replicas", 0), ("index.max_result_window", 1),
                          ("index.max_inner_result_window", 0), ("index.mapping.total_fields.limit", 0),
                          ("index.mapping.depth.limit", 1)):
        if flat.get(name) is not None:
            _int(name, flat[name], minimum)
    if flat.get("index.refresh_interval") is not None:
        parse_time_seconds(flat["index.refresh_interval"], "index.refresh_interval")
    sync = flat.get("index.translog.sync_interval")
    if sync is not None and parse_time_seconds(sync, "index.translog.sync_interval") < 0.1:
        raise IllegalArgumentError(f"failed to parse value [{sync}] for setting [index.translog.sync_interval], "
                                   "must be >= [100ms]")
