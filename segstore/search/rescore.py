"""Two-phase rescoring rules for quantized fields (vector-semantics.md §3).

* ``rescore: {"oversample_factor": f}`` with f in [1.0, 100.0] (user-provided); ``{}`` -> 1.0 (user-provided);
  ``true`` -> 1.0 (not user-provided); ``false`` -> no rescoring even on ``on_disk``; absent -> the field
  default below. A user value always wins over the default.
* Field default (released 3.x semantics, index created on 3.3): only when the user *typed* ``mode: on_disk``
  and the level is 4x/8x/16x/32x: 5.0 when the level is not 4x and the dimension is <= 1000, else the level
  default (4x 1.0, 8x 2.0, 16x 3.0, 32x 3.0). Everything else (``in_memory``, 1x, 2x, or a compression set
  without ``mode: on_disk``) has no default rescoring.
* The dimension-based override (1.0 at d >= 1000, 2.0 at 768 <= d < 1000, 3.0 below) applies to factors
  that are not user-provided, and only when ``index.knn.disk.vector.shard_level_rescoring_disabled`` is true.
* First-pass size = ``min(10000, max(100, ceil(k * factor)))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from segstore.errors import IllegalArgumentError

__all__ = ["RescoreContext", "resolve_rescore", "default_oversample", "first_pass_k"]

_LEVEL_DEFAULTS = {"4x": 1.0, "8x": 2.0, "16x": 3.0, "32x": 3.0}


@dataclass(frozen=True)
class RescoreContext:
    oversample_factor: float
    user_provided: bool


def default_oversample(mode_typed: str | None, compression: str | None, dimension: int) -> float | None:
    if mode_typed != "on_disk" or compression not in _LEVEL_DEFAULTS:
        return None
    if compression != "4x" and dimension <= 1000:
        return 5.0
    return _LEVEL_DEFAULTS[compression]


def _dimension_factor(dimension: int) -> float:
    if dimension >= 1000:
        return 1.0
    if dimension >= 768:
        return 2.0
    return 3.0


def resolve_rescore(value: Any, *, mode_typed: str | None, compression: str | None, dimension: int,
                    shard_level_rescoring_disabled: bool = False) -> RescoreContext | None:
    """The rescore context of one query (None = no rescoring)."""
    if value is False or value == "false":
        return None
    if value is True or value == "true":
        ctx = RescoreContext(1.0, False)
    elif isinstance(value, dict):
        factor = float(value.get("oversample_factor", 1.0))
        if factor < 1.0:
            raise IllegalArgumentError(f"[knn] errors in rescore parameter [Validation Failed: 1: Oversample "
                                       f"factor [{factor:.6f}] cannot be less than [1.000000];]")
        if factor > 100.0:
            raise IllegalArgumentError(f"[knn] errors in rescore parameter [Validation Failed: 1: Oversample "
                                       f"factor [{factor:.6f}] cannot be more than [100.000000];]")
        ctx = RescoreContext(factor, True)
    elif value is None:
        factor_default = default_oversample(mode_typed, compression, dimension)
        if factor_default is None:
            return None
        ctx = RescoreContext(factor_default, False)
    else:
        raise IllegalArgumentError(f"[knn] errors in rescore parameter [{value}]")
    if shard_level_rescoring_disabled and not ctx.user_provided:
        ctx = RescoreContext(_dimension_factor(dimension), False)
    return ctx


def first_pass_k(k: int, factor: float) -> int:
    return min(10000, max(100, math.ceil(k * factor)))
